package transform

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"io"
	"math/big"

	"golang.org/x/crypto/curve25519"

	"github.com/mifsec/mifsec/engine/ike"
)

// groupSpec describes a D-H group (transform type 4).
type groupSpec struct {
	curve  ecdh.Curve // ECP groups (RFC 5903)
	modp   *modpGroup // MODP groups (RFC 3526)
	x25519 bool       // Curve25519 (RFC 8031)
	pubLen int        // KE data length
}

func lookupGroup(g ike.GroupID) (groupSpec, error) {
	switch g {
	case ike.GroupCurve25519:
		return groupSpec{x25519: true, pubLen: curve25519.PointSize}, nil
	case ike.GroupECP256:
		return groupSpec{curve: ecdh.P256(), pubLen: 64}, nil
	case ike.GroupECP384:
		return groupSpec{curve: ecdh.P384(), pubLen: 96}, nil
	case ike.GroupECP521:
		return groupSpec{curve: ecdh.P521(), pubLen: 132}, nil
	case ike.GroupMODP2048, ike.GroupMODP3072, ike.GroupMODP4096:
		m := modpGroups[g]
		return groupSpec{modp: m, pubLen: m.len}, nil
	}
	return groupSpec{}, errorf(ReasonUnsupported, "D-H group %v", g)
}

// DHKey is our ephemeral private value in one D-H group. The private part
// prints "[redacted]" and is cleared by Destroy.
type DHKey struct {
	group ike.GroupID
	spec  groupSpec
	priv  *dhPrivate // behind a pointer so reflection printing shows an address
	pub   []byte
	share *SharedDH // a handle of a shared pair: Destroy releases it
}

// dhPrivate holds only pointers and Secrets, so fmt never shows its bytes.
type dhPrivate struct {
	scalar Secret // X25519 scalar, ECP scalar or MODP exponent, big-endian for ECP/MODP
	// ec (X25519 and ECP) is made once: crypto/ecdh derives the public
	// value in NewPrivateKey, so SharedSecret calls ECDH on it (one scalar
	// multiplication) rather than building a key again (two; so does
	// x/crypto's curve25519.X25519, a wrapper of crypto/ecdh). crypto/ecdh
	// keeps its own copy of the scalar, which cannot be cleared.
	ec  *ecdh.PrivateKey
	exp *big.Int
}

// GenerateDH makes a fresh key pair in group g, reading randomness from rng
// (crypto/rand when nil).
func GenerateDH(g ike.GroupID, rng io.Reader) (*DHKey, error) {
	spec, err := lookupGroup(g)
	if err != nil {
		return nil, err
	}
	if rng == nil {
		rng = rand.Reader
	}
	var n int
	switch {
	case spec.x25519:
		n = curve25519.ScalarSize
	case spec.curve != nil:
		// ecdh.GenerateKey would hide the scalar from Destroy; draw it
		// ourselves with rejection sampling inside NewPrivateKey's range check.
		n = (spec.pubLen / 2)
	default:
		n = spec.modp.expLen
	}
	for tries := 0; ; tries++ {
		s, scalar := newSecret(n) // fresh each try: a failed key owns the last one
		if _, err := io.ReadFull(rng, scalar); err != nil {
			s.Zero()
			return nil, errorf(ReasonBadKey, "random %v private value: %v", g, err)
		}
		if g == ike.GroupECP521 {
			scalar[0] &= 0x01 // 521 bits
		}
		k, err := newDHKeyFrom(g, spec, s)
		if err == nil {
			return k, nil
		}
		s.Zero()
		if tries == 100 {
			return nil, err
		}
	}
}

// newDHKey builds a key from a given private value (known-answer tests use
// it directly). It takes ownership of scalar.
func newDHKey(g ike.GroupID, spec groupSpec, scalar []byte) (*DHKey, error) {
	return newDHKeyFrom(g, spec, adoptSecret(scalar))
}

// newDHKeyFrom builds a key around the private value s, which it owns.
func newDHKeyFrom(g ike.GroupID, spec groupSpec, s Secret) (*DHKey, error) {
	// The key and its private part in one allocation.
	box := &struct {
		k DHKey
		p dhPrivate
	}{k: DHKey{group: g, spec: spec}, p: dhPrivate{scalar: s}}
	k := &box.k
	k.priv = &box.p
	scalar := s.Bytes()
	switch {
	case spec.x25519:
		ec, err := ecdh.X25519().NewPrivateKey(scalar)
		if err != nil {
			return nil, errorf(ReasonBadKey, "X25519: %v", err)
		}
		k.priv.ec = ec
		k.pub = ec.PublicKey().Bytes() // RFC 7748 §6.1: X25519(scalar, 9)
	case spec.curve != nil:
		ec, err := spec.curve.NewPrivateKey(scalar)
		if err != nil {
			return nil, errorf(ReasonBadKey, "%v private value: %v", g, err)
		}
		k.priv.ec = ec
		k.pub = ec.PublicKey().Bytes()[1:] // drop the 0x04 prefix: x | y (RFC 5903 §7)
	default:
		x := new(big.Int).SetBytes(scalar)
		if x.Sign() == 0 {
			return nil, errorf(ReasonBadKey, "zero MODP exponent")
		}
		k.priv.exp = x
		k.pub = spec.modp.exp(spec.modp.g, x)
	}
	return k, nil
}

// Group is the D-H group of the key.
func (k *DHKey) Group() ike.GroupID { return k.group }

// PublicValue is the KE payload data: X25519 u-coordinate (RFC 8031 §2),
// ECP x | y (RFC 5903 §7), or MODP g^x left-padded to the prime length
// (RFC 7296 §3.4). The caller must not modify it.
func (k *DHKey) PublicValue() []byte { return k.pub }

// SharedSecret checks the peer's KE data and returns g^ir: the X25519
// output, the ECP x-coordinate (RFC 5903 §7), or the MODP value left-padded
// to the prime length (RFC 7296 §2.14).
func (k *DHKey) SharedSecret(peer []byte) (Secret, error) {
	if k.priv == nil || k.priv.scalar.Len() == 0 {
		return Secret{}, errorf(ReasonBadKey, "D-H key used after Destroy")
	}
	if len(peer) != k.spec.pubLen {
		return Secret{}, &Error{Reason: ReasonBadPublicValue, Notify: ike.InvalidSyntax,
			Detail: fmt.Sprintf("%v KE data is %d bytes, want %d", k.group, len(peer), k.spec.pubLen)}
	}
	switch {
	case k.spec.x25519:
		pub, err := ecdh.X25519().NewPublicKey(peer)
		if err != nil {
			return Secret{}, badPublic(k.group, err.Error())
		}
		// One scalar multiplication; crypto/ecdh fails on an all-zero
		// result, and RFC 8031 §2 says the recipient MUST reject it.
		out, err := k.priv.ec.ECDH(pub)
		if err != nil || subtle.ConstantTimeCompare(out, make([]byte, len(out))) == 1 {
			return Secret{}, badPublic(k.group, "all-zero X25519 shared secret (RFC 8031 §2)")
		}
		return adoptSecret(out), nil
	case k.spec.curve != nil:
		// RFC 5903 §7 / RFC 6989 §2.3: the point must be on the curve;
		// NewPublicKey checks that and rejects the point at infinity.
		pt := make([]byte, 1+len(peer))
		pt[0] = 4
		copy(pt[1:], peer)
		pub, err := k.spec.curve.NewPublicKey(pt)
		if err != nil {
			return Secret{}, badPublic(k.group, "point not on the curve (RFC 6989 §2.3)")
		}
		out, err := k.priv.ec.ECDH(pub)
		if err != nil {
			return Secret{}, badPublic(k.group, err.Error())
		}
		return adoptSecret(out), nil
	default:
		m := k.spec.modp
		y := new(big.Int).SetBytes(peer)
		// RFC 6989 §2.2: with a safe prime, 1 < y < p-1 is the whole check.
		if y.Cmp(bigOne) <= 0 || y.Cmp(m.pMinus1) >= 0 {
			return Secret{}, badPublic(k.group, "MODP value not in 1 < y < p-1 (RFC 6989 §2.2)")
		}
		return adoptSecret(m.exp(y, k.priv.exp)), nil
	}
}

func badPublic(g ike.GroupID, why string) *Error {
	return &Error{Reason: ReasonBadPublicValue, Notify: ike.InvalidSyntax, Group: g, Detail: why}
}

// Destroy clears the private value.
func (k *DHKey) Destroy() {
	if k.priv == nil {
		return
	}
	if s := k.share; s != nil {
		k.priv, k.share = nil, nil
		s.release()
		return
	}
	k.priv.scalar.Zero()
	if k.priv.exp != nil {
		clear(k.priv.exp.Bits())
		k.priv.exp = nil
	}
	k.priv.ec = nil
}

func (k *DHKey) String() string             { return fmt.Sprintf("DHKey(%v) %s", k.group, redacted) }
func (k *DHKey) GoString() string           { return k.String() }
func (k *DHKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

var bigOne = big.NewInt(1)
