package transform

import (
	"bytes"
	"errors"
	"math/big"
	"testing"

	"github.com/mifsec/mifsec/engine/ike"
)

var allGroups = []ike.GroupID{
	ike.GroupCurve25519, ike.GroupECP256, ike.GroupECP384, ike.GroupECP521,
	ike.GroupMODP2048, ike.GroupMODP3072, ike.GroupMODP4096,
}

func TestDHAgreement(t *testing.T) {
	for _, g := range allGroups {
		a, err := GenerateDH(g, nil)
		if err != nil {
			t.Fatalf("%v: %v", g, err)
		}
		b, err := GenerateDH(g, nil)
		if err != nil {
			t.Fatalf("%v: %v", g, err)
		}
		spec, _ := lookupGroup(g)
		if len(a.PublicValue()) != spec.pubLen || a.Group() != g {
			t.Fatalf("%v: KE data %d bytes, want %d", g, len(a.PublicValue()), spec.pubLen)
		}
		sa, err := a.SharedSecret(b.PublicValue())
		if err != nil {
			t.Fatalf("%v: %v", g, err)
		}
		sb, err := b.SharedSecret(a.PublicValue())
		if err != nil {
			t.Fatalf("%v: %v", g, err)
		}
		if !bytes.Equal(sa.Bytes(), sb.Bytes()) || sa.Len() != map[bool]int{true: spec.pubLen / 2, false: spec.pubLen}[spec.curve != nil] {
			t.Fatalf("%v: secrets differ or have the wrong length (%d)", g, sa.Len())
		}
		a.Destroy()
		if _, err := a.SharedSecret(b.PublicValue()); err == nil {
			t.Fatalf("%v: agreement after Destroy", g)
		}
	}
	if _, err := GenerateDH(ike.GroupMODP1024, nil); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("MODP-1024: %v", err)
	}
}

// TestDHBadPublicValues: the checks of RFC 8031 §2, RFC 6989 §2.2, §2.3.
func TestDHBadPublicValues(t *testing.T) {
	p2048 := modpGroups[ike.GroupMODP2048]
	pad := func(x *big.Int, n int) []byte { return x.FillBytes(make([]byte, n)) }
	ecp, _ := GenerateDH(ike.GroupECP256, nil)
	offCurve := bytes.Clone(ecp.PublicValue())
	offCurve[63] ^= 1
	order1 := make([]byte, 32)
	order1[0] = 1 // u = 1: a low-order point, X25519 output is all zero
	cases := []struct {
		name  string
		g     ike.GroupID
		peer  []byte
		notes string
	}{
		{"x25519 zero point", ike.GroupCurve25519, make([]byte, 32), "all-zero secret"},
		{"x25519 u=1", ike.GroupCurve25519, order1, "all-zero secret"},
		{"x25519 short", ike.GroupCurve25519, make([]byte, 31), "length"},
		{"ecp256 off curve", ike.GroupECP256, offCurve, "not on curve"},
		{"ecp256 zero", ike.GroupECP256, make([]byte, 64), "not on curve"},
		{"ecp256 with 0x04 prefix", ike.GroupECP256, append([]byte{4}, ecp.PublicValue()...), "length"},
		{"ecp384 short", ike.GroupECP384, make([]byte, 95), "length"},
		{"modp y=0", ike.GroupMODP2048, make([]byte, 256), "range"},
		{"modp y=1", ike.GroupMODP2048, pad(big.NewInt(1), 256), "range"},
		{"modp y=p-1", ike.GroupMODP2048, pad(p2048.pMinus1, 256), "range"},
		{"modp y=p", ike.GroupMODP2048, pad(p2048.p, 256), "range"},
		{"modp unpadded", ike.GroupMODP2048, pad(big.NewInt(5), 255), "length"},
	}
	for _, c := range cases {
		k, err := GenerateDH(c.g, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = k.SharedSecret(c.peer)
		var e *Error
		if !errors.As(err, &e) || e.Reason != ReasonBadPublicValue || e.Notify != ike.InvalidSyntax {
			t.Errorf("%s (%s): err = %v", c.name, c.notes, err)
		}
	}
	// y = 2 is in range and works.
	k, _ := GenerateDH(ike.GroupMODP2048, nil)
	if _, err := k.SharedSecret(pad(big.NewInt(2), 256)); err != nil {
		t.Errorf("modp y=2: %v", err)
	}
}

// TestMODPPrimes: every built-in prime is a safe prime of the RFC 3526 form
// (64 leading and trailing one bits) with generator 2.
func TestMODPPrimes(t *testing.T) {
	for g, bits := range map[ike.GroupID]int{ike.GroupMODP2048: 2048, ike.GroupMODP3072: 3072, ike.GroupMODP4096: 4096} {
		m := modpGroups[g]
		if m.p.BitLen() != bits || m.len != bits/8 || m.g.Int64() != 2 {
			t.Fatalf("%v: %d bits", g, m.p.BitLen())
		}
		ones := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 64), big.NewInt(1))
		if new(big.Int).And(m.p, ones).Cmp(ones) != 0 || new(big.Int).Rsh(m.p, uint(bits-64)).Cmp(ones) != 0 {
			t.Fatalf("%v: not of the RFC 3526 form", g)
		}
		q := new(big.Int).Rsh(m.p, 1)
		if !m.p.ProbablyPrime(2) || !q.ProbablyPrime(2) {
			t.Fatalf("%v: not a safe prime", g)
		}
		if m.expLen*8 < map[int]int{2048: 320, 3072: 420, 4096: 480}[bits] {
			t.Fatalf("%v: exponent of %d bits is below RFC 3526 §8", g, m.expLen*8)
		}
	}
}
