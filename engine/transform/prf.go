package transform

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"

	"github.com/mifsec/mifsec/engine/ike"
)

// PRF is a negotiated pseudorandom function (transform type 2). Only the
// HMAC PRFs exist here, so the preferred key length is the output length
// (RFC 7296 §2.13; RFC 4868 §2.3 for SHA-2, RFC 2104 for SHA-1).
//
// HMAC is computed here over the one-shot digests (sha256.Sum256 and
// kin) in a scratch buffer the caller of hmac provides: no hash state is
// allocated, and the scratch is cleared after use.
type PRF struct {
	id ike.PRFID
	// sz and blk are the output length and the hash's block length (RFC
	// 2104 §2: B), at most 64 and 128: small, as every IKE SA's Keys
	// holds a PRF (per-SA memory).
	sz, blk uint8
}

// Largest block and output of the hashes above (SHA-384/512).
const (
	maxBlock = sha512.BlockSize
	maxSize  = sha512.Size
)

// NewPRF returns the PRF for id.
func NewPRF(id ike.PRFID) (PRF, error) {
	switch id {
	case ike.PRFHMACSHA1:
		return PRF{id, sha1.Size, sha1.BlockSize}, nil
	case ike.PRFHMACSHA256:
		return PRF{id, sha256.Size, sha256.BlockSize}, nil
	case ike.PRFHMACSHA384:
		return PRF{id, sha512.Size384, sha512.BlockSize}, nil
	case ike.PRFHMACSHA512:
		return PRF{id, sha512.Size, sha512.BlockSize}, nil
	}
	return PRF{}, errorf(ReasonUnsupported, "PRF %v", id)
}

// ID is the transform ID.
func (p PRF) ID() ike.PRFID { return p.id }

// Size is the output length in bytes.
func (p PRF) Size() int { return int(p.sz) }

// KeyLen is the length of SK_d, SK_pi and SK_pr (RFC 7296 §2.14: the
// preferred key length of the PRF).
func (p PRF) KeyLen() int { return int(p.sz) }

// blockLen is the block length of the hash.
func (p PRF) blockLen() int { return int(p.blk) }

// digest appends H(m) to dst.
func (p PRF) digest(dst, m []byte) []byte {
	switch p.id {
	case ike.PRFHMACSHA1:
		h := sha1.Sum(m)
		dst = append(dst, h[:]...)
		clear(h[:])
	case ike.PRFHMACSHA256:
		h := sha256.Sum256(m)
		dst = append(dst, h[:]...)
		clear(h[:])
	case ike.PRFHMACSHA384:
		h := sha512.Sum384(m)
		dst = append(dst, h[:]...)
		clear(h[:])
	default:
		h := sha512.Sum512(m)
		dst = append(dst, h[:]...)
		clear(h[:])
	}
	return dst
}

// macScratch is the scratch hmac needs for messages of n bytes.
func (p PRF) macScratch(n int) int { return p.blockLen() + max(n, p.Size()) }

// hmac appends HMAC(key, parts[0] | parts[1] | ...) (RFC 2104 §2) to dst,
// using w as scratch: cap(w) must be at least p.macScratch(total length of
// parts), and w is cleared on return. dst must not overlap w.
func (p PRF) hmac(dst, w, key []byte, parts ...[]byte) []byte {
	var k [maxBlock]byte // K padded with zeros; a key longer than B is hashed first
	if len(key) > p.blockLen() {
		p.digest(k[:0], key)
	} else {
		copy(k[:], key)
	}
	w = w[:p.blockLen()]
	for i := range w {
		w[i] = k[i] ^ 0x36 // ipad
	}
	for _, d := range parts {
		w = append(w, d...)
	}
	var inner [maxSize]byte
	p.digest(inner[:0], w)
	w = w[:p.blockLen()]
	for i := range w {
		w[i] = k[i] ^ 0x5c // opad
	}
	w = append(w, inner[:p.Size()]...)
	dst = p.digest(dst, w)
	clear(w[:cap(w)])
	clear(k[:])
	clear(inner[:])
	return dst
}

// stackScratch bounds the hmac scratch kept on the stack: prf+ seeds and
// AUTH's signed octets of common sizes fit; longer ones get a heap buffer.
const stackScratch = 1536

// Sum returns prf(key, data[0] | data[1] | ...).
func (p PRF) Sum(key []byte, data ...[]byte) []byte {
	var sc [stackScratch]byte
	n := 0
	for _, d := range data {
		n += len(d)
	}
	return p.hmac(make([]byte, 0, p.Size()), scratch(sc[:], p.macScratch(n)), key, data...)
}

// scratch returns sc[:0] when it holds n bytes, else a new buffer.
func scratch(sc []byte, n int) []byte {
	if n <= len(sc) {
		return sc[:0]
	}
	return make([]byte, 0, n)
}

// maxPlusBlocks is the prf+ limit: the counter is one octet (RFC 7296 §2.13).
const maxPlusBlocks = 255

// Plus returns the first n bytes of prf+(key, seed) (RFC 7296 §2.13):
// T1 = prf(K, S | 0x01), Tk = prf(K, Tk-1 | S | k), for at most 255 blocks.
func (p PRF) Plus(key, seed []byte, n int) (Secret, error) {
	b, err := p.plus(key, seed, n)
	if err != nil {
		return Secret{}, err
	}
	return adoptSecret(b), nil
}

// plus is Plus returning the bytes, in one allocation.
func (p PRF) plus(key, seed []byte, n int) ([]byte, error) {
	if n < 0 || n > maxPlusBlocks*p.Size() {
		return nil, errorf(ReasonTooLong, "prf+ of %d bytes exceeds 255 blocks of %d", n, p.Size())
	}
	var sc [stackScratch]byte
	w := scratch(sc[:], p.macScratch(p.Size()+len(seed)+1))
	blocks := (n + p.Size() - 1) / p.Size()
	out := make([]byte, 0, blocks*p.Size())
	var t []byte
	var ctr [1]byte
	for i := 1; i <= blocks; i++ {
		ctr[0] = byte(i)
		out = p.hmac(out, w, key, t, seed, ctr[:])
		t = out[len(out)-p.Size():]
	}
	clear(out[n:])
	return out[:n:n], nil
}
