package transform

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"hash"

	"github.com/mifsec/mifsec/engine/ike"
)

// PRF is a negotiated pseudorandom function (transform type 2). Only the
// HMAC PRFs exist here, so the preferred key length is the output length
// (RFC 7296 §2.13; RFC 4868 §2.3 for SHA-2, RFC 2104 for SHA-1).
type PRF struct {
	id   ike.PRFID
	hash func() hash.Hash
	size int
}

// NewPRF returns the PRF for id.
func NewPRF(id ike.PRFID) (PRF, error) {
	switch id {
	case ike.PRFHMACSHA1:
		return PRF{id, sha1.New, sha1.Size}, nil
	case ike.PRFHMACSHA256:
		return PRF{id, sha256.New, sha256.Size}, nil
	case ike.PRFHMACSHA384:
		return PRF{id, sha512.New384, sha512.Size384}, nil
	case ike.PRFHMACSHA512:
		return PRF{id, sha512.New, sha512.Size}, nil
	}
	return PRF{}, errorf(ReasonUnsupported, "PRF %v", id)
}

// ID is the transform ID.
func (p PRF) ID() ike.PRFID { return p.id }

// Size is the output length in bytes.
func (p PRF) Size() int { return p.size }

// KeyLen is the length of SK_d, SK_pi and SK_pr (RFC 7296 §2.14: the
// preferred key length of the PRF).
func (p PRF) KeyLen() int { return p.size }

// Sum returns prf(key, data[0] | data[1] | ...).
func (p PRF) Sum(key []byte, data ...[]byte) []byte {
	m := hmac.New(p.hash, key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil)
}

// maxPlusBlocks is the prf+ limit: the counter is one octet (RFC 7296 §2.13).
const maxPlusBlocks = 255

// Plus returns the first n bytes of prf+(key, seed) (RFC 7296 §2.13):
// T1 = prf(K, S | 0x01), Tk = prf(K, Tk-1 | S | k), for at most 255 blocks.
func (p PRF) Plus(key, seed []byte, n int) (Secret, error) {
	if n < 0 || n > maxPlusBlocks*p.size {
		return Secret{}, errorf(ReasonTooLong, "prf+ of %d bytes exceeds 255 blocks of %d", n, p.size)
	}
	out := make([]byte, 0, n+p.size)
	m := hmac.New(p.hash, key)
	var t []byte
	for i := 1; len(out) < n; i++ {
		m.Reset()
		m.Write(t)
		m.Write(seed)
		m.Write([]byte{byte(i)})
		t = m.Sum(out)[len(out):]
		out = out[:len(out)+len(t)]
	}
	clear(out[n:cap(out)])
	return adoptSecret(out[:n:n]), nil
}
