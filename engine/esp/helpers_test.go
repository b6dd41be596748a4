package esp

import (
	"encoding/binary"
	"testing"

	"github.com/mifsec/mifsec/engine/dataplane"
)

var allSuites = []dataplane.Suite{
	dataplane.SuiteAESGCM128,
	dataplane.SuiteAESGCM256,
	dataplane.SuiteChaCha20Poly1305,
	dataplane.SuiteAESCBC128HMACSHA256,
	dataplane.SuiteAESCBC256HMACSHA256,
	dataplane.SuiteAESCBC128HMACSHA1,
	dataplane.SuiteAESCBC256HMACSHA384,
	dataplane.SuiteAESCBC256HMACSHA512,
}

// testKeys returns deterministic keys of the right sizes for suite.
func testKeys(suite dataplane.Suite) dataplane.Keys {
	p, _ := suiteParams(suite)
	k := dataplane.Keys{Enc: make([]byte, p.encKey)}
	for i := range k.Enc {
		k.Enc[i] = byte(i*7 + 1)
	}
	if p.integ > 0 {
		k.Integ = make([]byte, p.integ)
		for i := range k.Integ {
			k.Integ[i] = byte(i*13 + 5)
		}
	}
	return k
}

// pair builds an outbound and an inbound SA sharing keys; mod edits the
// config of both.
func pair(t testing.TB, suite dataplane.Suite, mod func(*Config)) (out, in *SA) {
	t.Helper()
	c := Config{SPI: 0x1000, Suite: suite, Keys: testKeys(suite), Mode: dataplane.Tunnel, ReplayWindow: 64}
	if mod != nil {
		mod(&c)
	}
	var err error
	if out, err = NewSA(c); err != nil {
		t.Fatal(err)
	}
	if in, err = NewSA(c); err != nil {
		t.Fatal(err)
	}
	return out, in
}

// ipv4 returns an IPv4 packet of n bytes (n ≥ 20) with a valid Total Length.
func ipv4(n int) []byte {
	p := make([]byte, n)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:4], uint16(n))
	p[9] = 17
	for i := 20; i < n; i++ {
		p[i] = byte(i)
	}
	return p
}

// ipv6 returns an IPv6 packet of n bytes (n ≥ 40).
func ipv6(n int) []byte {
	p := make([]byte, n)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:6], uint16(n-40))
	p[6] = 17
	for i := 40; i < n; i++ {
		p[i] = byte(i)
	}
	return p
}

// seal copies inner into a fresh buffer sized by Overhead and seals it with
// the next sequence number.
func seal(t testing.TB, s *SA, inner []byte, nh uint8) []byte {
	t.Helper()
	pkt, err := sealErr(s, inner, nh)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	return pkt
}

func sealErr(s *SA, inner []byte, nh uint8) ([]byte, error) {
	head, tail := s.Overhead()
	buf := make([]byte, head+len(inner), head+len(inner)+tail)
	copy(buf[head:], inner)
	seq, err := s.NextSeq()
	if err != nil {
		return nil, err
	}
	return s.SealInPlace(buf, len(inner), nh, seq)
}
