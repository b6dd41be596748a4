package transform

import (
	"bytes"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to Open of every cipher, split into the
// AAD and the SK body at aadLen, both into a fresh buffer and in place. It
// must return an error or the plaintext, never panic; anything it accepts
// must be what a Seal of the result would authenticate.
//
//	go test -run x -fuzz FuzzOpen -parallel 1 -fuzztime 60s ./engine/transform/
func FuzzOpen(f *testing.F) {
	ciphers := make([]Cipher, len(cipherCases))
	for i, cc := range cipherCases {
		ciphers[i] = newTestCipher(f, cc.suite)
	}
	for i, c := range ciphers {
		hdr := testHeader(c, 20, false, 0)
		msg, _ := SealPayload(c, bytes.Clone(hdr), testKey(20, 7))
		f.Add(uint8(i), uint16(len(hdr)), msg)
		f.Add(uint8(i), uint16(len(hdr)), msg[:len(msg)-1])
	}
	f.Fuzz(func(t *testing.T, which uint8, aadLen uint16, data []byte) {
		c := ciphers[int(which)%len(ciphers)]
		split := min(int(aadLen), len(data))
		aad, body := data[:split], bytes.Clone(data[split:])
		pt, err := c.Open(nil, aad, bytes.Clone(body))
		pt2, err2 := c.Open(body[:0], aad, body)
		if (err == nil) != (err2 == nil) || !bytes.Equal(pt, pt2) {
			t.Fatalf("in-place and copying Open disagree: %v / %v", err, err2)
		}
		if err == nil && len(pt) > len(data) {
			t.Fatalf("plaintext longer than the input")
		}
	})
}
