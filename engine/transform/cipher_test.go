package transform

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/mifsec/mifsec/engine/ike"
)

// cipherCases are the SK ciphers this package offers.
var cipherCases = []struct {
	name  string
	suite Suite
}{
	{"aes128gcm16", Suite{Protocol: ike.ProtoIKE, Encr: ike.EncrAESGCM16, KeyBits: 128, PRF: ike.PRFHMACSHA256, Group: ike.GroupCurve25519}},
	{"aes256gcm16", Suite{Protocol: ike.ProtoIKE, Encr: ike.EncrAESGCM16, KeyBits: 256, PRF: ike.PRFHMACSHA256, Group: ike.GroupCurve25519}},
	{"chacha20poly1305", Suite{Protocol: ike.ProtoIKE, Encr: ike.EncrChaCha20Poly1305, PRF: ike.PRFHMACSHA256, Group: ike.GroupCurve25519}},
	{"aes128-sha256", Suite{Protocol: ike.ProtoIKE, Encr: ike.EncrAESCBC, KeyBits: 128, Integ: ike.IntegHMACSHA256_128, PRF: ike.PRFHMACSHA256, Group: ike.GroupCurve25519}},
	{"aes256-sha384", Suite{Protocol: ike.ProtoIKE, Encr: ike.EncrAESCBC, KeyBits: 256, Integ: ike.IntegHMACSHA384_192, PRF: ike.PRFHMACSHA256, Group: ike.GroupCurve25519}},
	{"aes256-sha512", Suite{Protocol: ike.ProtoIKE, Encr: ike.EncrAESCBC, KeyBits: 256, Integ: ike.IntegHMACSHA512_256, PRF: ike.PRFHMACSHA256, Group: ike.GroupCurve25519}},
	{"aes128-sha1", Suite{Protocol: ike.ProtoIKE, Encr: ike.EncrAESCBC, KeyBits: 128, Integ: ike.IntegHMACSHA1_96, PRF: ike.PRFHMACSHA256, Group: ike.GroupCurve25519}},
}

// testKey returns n bytes 0x01, 0x02, ... offset by seed.
func testKey(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

func newTestCipher(t testing.TB, s Suite) Cipher {
	t.Helper()
	c, err := NewCipher(s, NewSecret(testKey(s.EncrKeyLen(), 0x40)), NewSecret(testKey(s.IntegKeyLen(), 0x80)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testHeader builds an IKE header plus an SK (or SKF) generic header whose
// length fields are final for n inner bytes.
func testHeader(c Cipher, n int, skf bool, frag uint16) []byte {
	hdr := make([]byte, 28, 2048)
	copy(hdr, "SPIiSPIiSPIrSPIr")
	hdr[16], hdr[17], hdr[18], hdr[19] = byte(ike.PayloadSK), 0x20, 37, 0x08
	binary.BigEndian.PutUint32(hdr[20:], 7)
	gh := []byte{byte(ike.PayloadNotify), 0, 0, 0}
	if skf {
		hdr[16] = byte(ike.PayloadSKF)
		gh = binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(gh, frag), 3)
	}
	binary.BigEndian.PutUint16(gh[2:], uint16(len(gh)+c.SealedLen(n)))
	hdr = append(hdr, gh...)
	binary.BigEndian.PutUint32(hdr[24:], uint32(len(hdr)+c.SealedLen(n)))
	return hdr
}

func TestCipherRoundTrip(t *testing.T) {
	for _, cc := range cipherCases {
		for _, n := range []int{0, 1, 15, 16, 17, 100, 1400} {
			c := newTestCipher(t, cc.suite)
			inner := testKey(n, 3)
			hdr := testHeader(c, n, false, 0)
			msg, err := SealPayload(c, bytes.Clone(hdr), inner)
			if err != nil {
				t.Fatal(err)
			}
			if len(msg) != len(hdr)+c.SealedLen(n) || binary.BigEndian.Uint32(msg[24:]) != uint32(len(msg)) {
				t.Fatalf("%s/%d: sealed message is %d bytes, header says %d", cc.name, n, len(msg), binary.BigEndian.Uint32(msg[24:]))
			}
			if !bytes.Equal(msg[:len(hdr)], hdr) {
				t.Fatalf("%s/%d: Seal changed the header", cc.name, n)
			}
			if bs := map[bool]int{true: 1, false: 16}[cc.suite.AEAD()]; (len(msg)-len(hdr)-c.IVLen()-c.ICVLen())%bs != 0 {
				t.Fatalf("%s/%d: ciphertext not block aligned", cc.name, n)
			}
			got, err := OpenPayload(c, bytes.Clone(msg), len(hdr))
			if err != nil {
				t.Fatalf("%s/%d: %v", cc.name, n, err)
			}
			if !bytes.Equal(got, inner) {
				t.Fatalf("%s/%d: opened %x, want %x", cc.name, n, got, inner)
			}
			// Into a separate buffer, leaving nothing else changed.
			dst := []byte("prefix")
			got, err = c.Open(dst, msg[:len(hdr)], bytes.Clone(msg[len(hdr):]))
			if err != nil || !bytes.Equal(got, append([]byte("prefix"), inner...)) {
				t.Fatalf("%s/%d: Open into dst = %x, %v", cc.name, n, got, err)
			}
		}
	}
}

// TestCipherInPlace seals plaintext already placed after the IV space and
// right after the header, the two layouts an encoder may produce.
func TestCipherInPlace(t *testing.T) {
	for _, cc := range cipherCases {
		c := newTestCipher(t, cc.suite)
		inner := testKey(77, 9)
		for _, gap := range []int{0, c.IVLen()} {
			hdr := testHeader(c, len(inner), false, 0)
			buf := append(bytes.Clone(hdr), make([]byte, gap)...)
			buf = append(buf, inner...)
			msg, err := SealPayload(c, buf[:len(hdr)], buf[len(hdr)+gap:])
			if err != nil {
				t.Fatal(err)
			}
			got, err := OpenPayload(c, msg, len(hdr))
			if err != nil || !bytes.Equal(got, inner) {
				t.Fatalf("%s gap %d: %x, %v", cc.name, gap, got, err)
			}
		}
	}
}

func TestCipherTamper(t *testing.T) {
	for _, cc := range cipherCases {
		c := newTestCipher(t, cc.suite)
		hdr := testHeader(c, 40, false, 0)
		msg, err := SealPayload(c, bytes.Clone(hdr), testKey(40, 1))
		if err != nil {
			t.Fatal(err)
		}
		for i := range msg {
			bad := bytes.Clone(msg)
			bad[i] ^= 0x01
			if _, err := OpenPayload(c, bad, len(hdr)); !errors.Is(err, ErrIntegrity) {
				t.Fatalf("%s: flipped byte %d of %d: err = %v, want integrity failure", cc.name, i, len(msg), err)
			}
		}
		// A wrong key fails too.
		other, _ := NewCipher(cc.suite, NewSecret(testKey(cc.suite.EncrKeyLen(), 0x41)), NewSecret(testKey(cc.suite.IntegKeyLen(), 0x81)))
		if _, err := OpenPayload(other, bytes.Clone(msg), len(hdr)); !errors.Is(err, ErrIntegrity) {
			t.Fatalf("%s: wrong key: %v", cc.name, err)
		}
	}
}

// TestCipherSKF checks RFC 7383 §2.5: the SKF header, fragment number and
// total included, is authenticated.
func TestCipherSKF(t *testing.T) {
	for _, cc := range cipherCases {
		c := newTestCipher(t, cc.suite)
		hdr := testHeader(c, 50, true, 2)
		msg, err := SealPayload(c, bytes.Clone(hdr), testKey(50, 5))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := OpenPayload(c, bytes.Clone(msg), len(hdr)); err != nil || !bytes.Equal(got, testKey(50, 5)) {
			t.Fatalf("%s: %v", cc.name, err)
		}
		bad := bytes.Clone(msg)
		binary.BigEndian.PutUint16(bad[32:], 1) // fragment number 2 -> 1
		if _, err := OpenPayload(c, bad, len(hdr)); !errors.Is(err, ErrIntegrity) {
			t.Fatalf("%s: changed fragment number accepted: %v", cc.name, err)
		}
	}
}

func TestCipherBadInput(t *testing.T) {
	for _, cc := range cipherCases {
		c := newTestCipher(t, cc.suite)
		aad := testHeader(c, 0, false, 0)
		for n := 0; n < c.IVLen()+c.ICVLen()+1; n++ {
			if _, err := c.Open(nil, aad, make([]byte, n)); err == nil {
				t.Fatalf("%s: %d-byte body accepted", cc.name, n)
			}
		}
		if _, err := OpenPayload(c, aad, len(aad)+1); !errors.Is(err, ErrShortInput) {
			t.Fatalf("%s: body offset past the end: %v", cc.name, err)
		}
	}
}

// TestCipherPadding crafts authentic messages with broken padding: the ICV
// passes, the pad length must still be rejected (RFC 7296 §3.14).
func TestCipherPadding(t *testing.T) {
	for _, cc := range cipherCases {
		c := newTestCipher(t, cc.suite)
		aad := testHeader(c, 16, false, 0)
		// 15 payload bytes then a Pad Length that points before the start.
		pt := append(testKey(15, 0), 255)
		var sealed []byte
		switch x := c.(type) {
		case *aeadCipher:
			// Pad Length 200 with only 15 bytes before it.
			x.mu.Lock()
			binary.BigEndian.PutUint64(x.nonce[4:], 2)
			body := append(make([]byte, 8, 64), append(testKey(15, 0), 200)...)
			copy(body, x.nonce[4:])
			sealed = x.aead.Seal(body[:8], x.nonce[:], body[8:], aad)
			x.mu.Unlock()
		case *cbcCipher:
			body := make([]byte, 16, 64)
			x.enc = x.setIV(x.enc, body[:16])
			ct := bytes.Clone(pt)
			x.enc.CryptBlocks(ct, ct)
			body = append(body, ct...)
			x.mac.Reset()
			x.mac.Write(aad)
			x.mac.Write(body)
			sealed = append(body, x.mac.Sum(nil)[:x.icvLen]...)
		}
		if _, err := c.Open(nil, aad, sealed); !errors.Is(err, ErrBadPadding) {
			t.Fatalf("%s: bad pad length: err = %v", cc.name, err)
		}
	}
}

func TestCipherIVs(t *testing.T) {
	for _, cc := range cipherCases {
		c := newTestCipher(t, cc.suite)
		aad := testHeader(c, 8, false, 0)
		a, _ := c.Seal(nil, aad, testKey(8, 0))
		b, _ := c.Seal(nil, aad, testKey(8, 0))
		if bytes.Equal(a[:c.IVLen()], b[:c.IVLen()]) {
			t.Fatalf("%s: IV repeated", cc.name)
		}
		if x, ok := c.(*aeadCipher); ok {
			// RFC 5282 §3.1: counter IVs, one apart.
			if binary.BigEndian.Uint64(b)-binary.BigEndian.Uint64(a) != 1 {
				t.Fatalf("%s: IVs %x then %x", cc.name, a[:8], b[:8])
			}
			x.left = 0
			if _, err := c.Seal(nil, aad, nil); !errors.Is(err, ErrIVExhausted) {
				t.Fatalf("%s: exhausted counter: %v", cc.name, err)
			}
		}
		c.Destroy()
		if _, err := c.Seal(nil, aad, nil); err == nil {
			t.Fatalf("%s: Seal after Destroy", cc.name)
		}
		if _, err := c.Open(nil, aad, a); err == nil {
			t.Fatalf("%s: Open after Destroy", cc.name)
		}
	}
}

func TestNewCipherErrors(t *testing.T) {
	gcm := cipherCases[0].suite
	cbc := cipherCases[3].suite
	badSuite := gcm
	badSuite.KeyBits = 100
	aeadInteg := gcm
	aeadInteg.Integ = ike.IntegHMACSHA256_128
	cases := []struct {
		name   string
		s      Suite
		ek, ak int
		reason Reason
	}{
		{"short key", gcm, 16, 0, ReasonBadKey},
		{"gcm without salt", gcm, 16 - 4, 0, ReasonBadKey},
		{"bad key length attribute", badSuite, 16, 0, ReasonUnsupported},
		{"aead with integ", aeadInteg, 20, 32, ReasonBadProposal},
		{"cbc short integ key", cbc, 16, 31, ReasonBadKey},
		{"cbc long key", cbc, 32, 32, ReasonBadKey},
	}
	for _, c := range cases {
		_, err := NewCipher(c.s, NewSecret(make([]byte, c.ek)), NewSecret(make([]byte, c.ak)))
		var e *Error
		if !errors.As(err, &e) || e.Reason != c.reason {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.reason)
		}
	}
}

// TestOpenAllocs: SK unprotect with an AEAD allocates nothing.
func TestOpenAllocs(t *testing.T) {
	for _, cc := range cipherCases {
		if !cc.suite.AEAD() {
			continue
		}
		c := newTestCipher(t, cc.suite)
		hdr := testHeader(c, 1400, false, 0)
		msg, _ := SealPayload(c, bytes.Clone(hdr), testKey(1400, 0))
		work := make([]byte, len(msg))
		allocs := testing.AllocsPerRun(100, func() {
			copy(work, msg)
			if _, err := OpenPayload(c, work, len(hdr)); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: Open allocates %.1f times per call", cc.name, allocs)
		}
		// Failure is allocation-free too.
		allocs = testing.AllocsPerRun(100, func() {
			copy(work, msg)
			work[len(work)-1] ^= 1
			if _, err := OpenPayload(c, work, len(hdr)); err == nil {
				t.Fatal("tampered message accepted")
			}
		})
		if allocs != 0 {
			t.Errorf("%s: failed Open allocates %.1f times per call", cc.name, allocs)
		}
	}
}

// TestCipherConcurrent shares one Cipher pair between goroutines (run with
// -race to check the locking).
func TestCipherConcurrent(t *testing.T) {
	for _, cc := range cipherCases {
		c := newTestCipher(t, cc.suite)
		done := make(chan error, 4)
		for g := 0; g < 4; g++ {
			go func() {
				for i := 0; i < 50; i++ {
					hdr := testHeader(c, 30, false, 0)
					msg, err := SealPayload(c, hdr, testKey(30, byte(g)))
					if err == nil {
						var got []byte
						got, err = OpenPayload(c, msg, 32)
						if err == nil && !bytes.Equal(got, testKey(30, byte(g))) {
							err = errors.New("wrong plaintext")
						}
					}
					if err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
		}
		for g := 0; g < 4; g++ {
			if err := <-done; err != nil {
				t.Fatalf("%s: %v", cc.name, err)
			}
		}
	}
}
