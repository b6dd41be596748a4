package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding"
	"fmt"
	"hash"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/mifsec/mifsec/engine/dataplane"
)

// params are the wire sizes of a suite.
type params struct {
	aead    bool
	chacha  bool // AEAD is ChaCha20-Poly1305, else AES-GCM
	encKey  int  // bytes of Keys.Enc (AEAD: key ‖ 4-byte salt)
	integ   int  // bytes of Keys.Integ (0 for AEAD)
	ivLen   int  // explicit IV on the wire
	icvLen  int
	align   int // Pad Length ‖ Next Header end on this boundary (RFC 4303 §2.4)
	newHash func() hash.Hash
}

const saltLen = 4 // RFC 4106 §4, RFC 7634 §2

func suiteParams(s dataplane.Suite) (params, bool) {
	switch s {
	case dataplane.SuiteAESGCM128:
		return params{aead: true, encKey: 16 + saltLen, ivLen: 8, icvLen: 16, align: 4}, true // RFC 4106 §3, §8.1
	case dataplane.SuiteAESGCM256:
		return params{aead: true, encKey: 32 + saltLen, ivLen: 8, icvLen: 16, align: 4}, true
	case dataplane.SuiteChaCha20Poly1305:
		return params{aead: true, chacha: true, encKey: chacha20poly1305.KeySize + saltLen, ivLen: 8, icvLen: 16, align: 4}, true // RFC 7634 §2
	case dataplane.SuiteAESCBC128HMACSHA256:
		return params{encKey: 16, integ: 32, ivLen: aes.BlockSize, icvLen: 16, align: aes.BlockSize, newHash: sha256.New}, true // RFC 4868 §2.1
	case dataplane.SuiteAESCBC256HMACSHA256:
		return params{encKey: 32, integ: 32, ivLen: aes.BlockSize, icvLen: 16, align: aes.BlockSize, newHash: sha256.New}, true
	case dataplane.SuiteAESCBC128HMACSHA1:
		return params{encKey: 16, integ: 20, ivLen: aes.BlockSize, icvLen: 12, align: aes.BlockSize, newHash: sha1.New}, true // RFC 2404 §2
	case dataplane.SuiteAESCBC256HMACSHA384:
		return params{encKey: 32, integ: 48, ivLen: aes.BlockSize, icvLen: 24, align: aes.BlockSize, newHash: sha512.New384}, true
	case dataplane.SuiteAESCBC256HMACSHA512:
		return params{encKey: 32, integ: 64, ivLen: aes.BlockSize, icvLen: 32, align: aes.BlockSize, newHash: sha512.New}, true
	}
	return params{}, false
}

// ConfigError reports an invalid Config; Field names the offending field.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string { return "esp: invalid config: " + e.Field + ": " + e.Reason }

// cbcMode is a cipher.BlockMode whose IV can be reset; crypto/cipher's CBC
// modes implement it, which lets a pooled mode serve many packets.
type cbcMode interface {
	cipher.BlockMode
	SetIV([]byte)
}

// hashState is a hash whose state can be saved and restored; the SHA-1 and
// SHA-2 digests of the standard library implement it.
type hashState interface {
	hash.Hash
	encoding.BinaryMarshaler
	encoding.BinaryUnmarshaler
}

// keyed is the expanded key material of one SA. Everything in it that we own
// is wiped by wipe; the AES round keys inside crypto/aes and the key copy
// inside x/crypto's ChaCha20-Poly1305 are not reachable and are only released.
type keyed struct {
	aead  cipher.AEAD
	salt  [saltLen]byte
	block cipher.Block
	// HMAC (RFC 2104) as saved hash states after absorbing K^ipad and K^opad.
	innerState, outerState []byte
	pool                   sync.Pool // *scratch
}

// scratch is per-goroutine working memory for one packet: the nonce, the
// AAD and, for CBC suites, CBC modes and a hash. Taken from keyed.pool.
type scratch struct {
	nonce [saltLen + 8]byte
	aad   [12]byte
	hi    [4]byte
	sum   [sha512.Size]byte
	enc   cbcMode
	dec   cbcMode
	h     hashState
}

func newKeyed(p params, k dataplane.Keys) (*keyed, error) {
	ks := &keyed{}
	if p.aead {
		key := k.Enc[:len(k.Enc)-saltLen]
		copy(ks.salt[:], k.Enc[len(k.Enc)-saltLen:])
		var err error
		if p.chacha {
			ks.aead, err = chacha20poly1305.New(key)
		} else {
			var b cipher.Block
			if b, err = aes.NewCipher(key); err == nil {
				ks.aead, err = cipher.NewGCM(b) // 16-byte tag, 12-byte nonce
			}
		}
		if err != nil {
			return nil, &ConfigError{Field: "keys.enc", Reason: err.Error()}
		}
		ks.pool.New = func() any { return &scratch{} }
		return ks, nil
	}
	b, err := aes.NewCipher(k.Enc)
	if err != nil {
		return nil, &ConfigError{Field: "keys.enc", Reason: err.Error()}
	}
	ks.block = b
	if ks.innerState, ks.outerState, err = hmacStates(p.newHash, k.Integ); err != nil {
		return nil, &ConfigError{Field: "keys.integ", Reason: err.Error()}
	}
	var zeroIV [aes.BlockSize]byte
	newHash := p.newHash
	ks.pool.New = func() any {
		sc := &scratch{}
		sc.enc = cipher.NewCBCEncrypter(b, zeroIV[:]).(cbcMode)
		sc.dec = cipher.NewCBCDecrypter(b, zeroIV[:]).(cbcMode)
		sc.h = newHash().(hashState)
		return sc
	}
	return ks, nil
}

// hmacStates returns the saved hash states after absorbing K^ipad and K^opad
// (RFC 2104 §2), so that each packet starts from them.
func hmacStates(newHash func() hash.Hash, key []byte) (inner, outer []byte, err error) {
	h, ok := newHash().(hashState)
	if !ok {
		return nil, nil, fmt.Errorf("hash cannot save its state")
	}
	bs := h.BlockSize()
	k := make([]byte, bs)
	defer clear(k)
	if len(key) > bs {
		h.Write(key)
		h.Sum(k[:0])
		h.Reset()
	} else {
		copy(k, key)
	}
	pad := make([]byte, bs)
	defer clear(pad)
	for i := range k {
		pad[i] = k[i] ^ 0x36
	}
	h.Write(pad)
	if inner, err = h.MarshalBinary(); err != nil {
		return nil, nil, err
	}
	h.Reset()
	for i := range k {
		pad[i] = k[i] ^ 0x5c
	}
	h.Write(pad)
	if outer, err = h.MarshalBinary(); err != nil {
		clear(inner)
		return nil, nil, err
	}
	h.Reset()
	return inner, outer, nil
}

func (*keyed) String() string   { return "[redacted]" }
func (*keyed) GoString() string { return "[redacted]" }

func (ks *keyed) wipe() {
	clear(ks.salt[:])
	clear(ks.innerState)
	clear(ks.outerState)
	ks.aead, ks.block = nil, nil
}
