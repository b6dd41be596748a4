package transform

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"slices"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/mifsec/mifsec/engine/ike"
)

// Cipher protects the content of an Encrypted (SK, RFC 7296 §3.14) or
// Encrypted Fragment (SKF, RFC 7383 §2.5) payload in one direction. AEAD
// (RFC 5282, RFC 7634) and encrypt-then-MAC share it, so the IKE layer never
// branches on the family.
//
// aad is always the message from the first octet of the IKE header through
// the last octet of the SK or SKF generic payload header (the SKF header is
// 8 bytes with fragment number and total), with every length field final:
// it is the AAD of an AEAD (RFC 5282 §5.1, RFC 7383 §2.5) and the prefix the
// ICV of encrypt-then-MAC covers (RFC 7296 §3.14: the whole message minus
// the ICV). Use SealedLen to fill in the lengths before sealing.
//
// A Cipher is safe for concurrent use.
type Cipher interface {
	// SealedLen is the length of IV | ciphertext | ICV for n plaintext
	// bytes, padding and pad length included.
	SealedLen(n int) int
	// Seal pads plaintext (RFC 7296 §3.14), encrypts it under a fresh IV and
	// appends IV | ciphertext | ICV to dst. plaintext may sit in dst's spare
	// capacity (in-place); aad may be dst itself: Seal(msg, msg, inner).
	Seal(dst, aad, plaintext []byte) ([]byte, error)
	// Open checks and decrypts sealed (IV | ciphertext | ICV) and appends the
	// inner payloads, padding removed, to dst. sealed is used as scratch and
	// is undefined afterwards; dst may be sealed[:0] to decrypt in place.
	Open(dst, aad, sealed []byte) ([]byte, error)
	// IVLen and ICVLen are the sizes of the fixed parts around the ciphertext.
	IVLen() int
	ICVLen() int
	// Destroy clears the key material the Cipher can reach.
	Destroy()
}

// NewCipher builds the Cipher for a suite from SK_e (key | salt for AEAD)
// and SK_a (empty for AEAD). The Cipher keeps its own copies of the keys.
func NewCipher(s Suite, encKey, integKey Secret) (Cipher, error) {
	e, err := lookupEncr(s.Encr, s.KeyBits)
	if err != nil {
		return nil, err
	}
	ek := encKey.Bytes()
	if len(ek) != e.keyLen+e.saltLen {
		return nil, errorf(ReasonBadKey, "%v key is %d bytes, want %d", s.Encr, len(ek), e.keyLen+e.saltLen)
	}
	if e.aead {
		if s.Integ != ike.IntegNone || integKey.Len() != 0 {
			return nil, errorf(ReasonBadProposal, "AEAD %v with integrity %v (RFC 5282 §8)", s.Encr, s.Integ)
		}
		return newAEADCipher(s.Encr, e, ek, rand.Reader)
	}
	return newCBCCipher(e, s.Integ, ek, integKey.Bytes())
}

// growBody extends dst by n bytes without writing them and returns the
// whole slice and the new part.
func growBody(dst []byte, n int) (out, body []byte) {
	out = slices.Grow(dst, n)[:len(dst)+n]
	return out, out[len(dst):]
}

// aeadCipher implements Cipher for AES-GCM-16 and ChaCha20-Poly1305.
type aeadCipher struct {
	spec encrSpec
	id   ike.EncrID

	mu    sync.Mutex
	aead  cipher.AEAD
	nonce *[12]byte // salt | IV; guarded by mu; behind a pointer so fmt never shows the salt
	next  uint64    // IV of the next Seal; starts at a random value
	left  uint64    // IVs left before the counter would repeat
}

func newAEADCipher(id ike.EncrID, e encrSpec, keySalt []byte, rng io.Reader) (*aeadCipher, error) {
	key, salt := keySalt[:e.keyLen], keySalt[e.keyLen:]
	var a cipher.AEAD
	var err error
	if id == ike.EncrChaCha20Poly1305 {
		a, err = chacha20poly1305.New(key)
	} else {
		var b cipher.Block
		if b, err = aes.NewCipher(key); err == nil {
			a, err = cipher.NewGCM(b) // 16-byte tag, 12-byte nonce
		}
	}
	if err != nil {
		return nil, errorf(ReasonBadKey, "%v: %v", id, err)
	}
	// One allocation for the Cipher and its nonce; only the nonce pointer
	// leads from the Cipher to the salt.
	box := &struct {
		c     aeadCipher
		nonce [12]byte
	}{c: aeadCipher{spec: e, id: id, aead: a, left: ^uint64(0)}}
	c := &box.c
	c.nonce = &box.nonce
	copy(c.nonce[:4], salt)
	// RFC 5282 §3.1: the IV must never repeat under one key. A counter does
	// that; starting it at a random point keeps two Ciphers wrongly built
	// from one key from colliding in practice.
	if _, err := io.ReadFull(rng, c.nonce[4:]); err != nil {
		return nil, errorf(ReasonBadKey, "IV counter seed: %v", err)
	}
	c.next = binary.BigEndian.Uint64(c.nonce[4:])
	return c, nil
}

func (c *aeadCipher) IVLen() int  { return c.spec.ivLen }
func (c *aeadCipher) ICVLen() int { return c.spec.icvLen }

// SealedLen: AEAD needs no alignment, so the sender adds no padding, only
// the Pad Length octet (RFC 7296 §3.14, RFC 5282 §3).
func (c *aeadCipher) SealedLen(n int) int { return c.spec.ivLen + n + 1 + c.spec.icvLen }

func (c *aeadCipher) Seal(dst, aad, plaintext []byte) ([]byte, error) {
	c.mu.Lock()
	if c.aead == nil {
		c.mu.Unlock()
		return dst, errDestroyed
	}
	if c.left == 0 {
		c.mu.Unlock()
		return dst, ErrIVExhausted
	}
	iv := c.next
	c.next++
	c.left--
	out := c.sealIV(dst, aad, plaintext, iv)
	c.mu.Unlock()
	return out, nil
}

// sealIV seals with a given IV; c.mu must be held.
func (c *aeadCipher) sealIV(dst, aad, plaintext []byte, iv uint64) []byte {
	ivLen, n := c.spec.ivLen, len(plaintext)+1
	out, body := growBody(dst, c.SealedLen(len(plaintext)))
	copy(body[ivLen:], plaintext) // memmove: plaintext may already be in place
	body[ivLen+n-1] = 0           // Pad Length
	binary.BigEndian.PutUint64(c.nonce[4:], iv)
	copy(body, c.nonce[4:])
	c.aead.Seal(body[ivLen:ivLen], c.nonce[:], body[ivLen:ivLen+n], aad)
	return out
}

func (c *aeadCipher) Open(dst, aad, sealed []byte) ([]byte, error) {
	ivLen := c.spec.ivLen
	if len(sealed) < ivLen+1+c.spec.icvLen {
		return dst, errOpenShort
	}
	ct := sealed[ivLen:]
	c.mu.Lock()
	if c.aead == nil {
		c.mu.Unlock()
		return dst, errDestroyed
	}
	copy(c.nonce[4:], sealed[:ivLen])
	pt, err := c.aead.Open(ct[:0], c.nonce[:], ct, aad)
	c.mu.Unlock()
	if err != nil {
		return dst, errOpenICV
	}
	return unpad(dst, pt, 1)
}

func (c *aeadCipher) Destroy() {
	c.mu.Lock()
	clear(c.nonce[:])
	c.aead = nil // the key schedule inside crypto/cipher cannot be cleared
	c.mu.Unlock()
}

func (c *aeadCipher) String() string             { return c.id.String() + " " + redacted }
func (c *aeadCipher) GoString() string           { return c.String() }
func (c *aeadCipher) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// unpad strips padding and the Pad Length octet (RFC 7296 §3.14; padding
// content is not checked) and appends the rest to dst.
func unpad(dst, pt []byte, block int) ([]byte, error) {
	if len(pt) == 0 || len(pt)%block != 0 {
		return dst, errOpenAlign
	}
	pad := int(pt[len(pt)-1])
	if pad+1 > len(pt) {
		return dst, errOpenPadding
	}
	return append(dst, pt[:len(pt)-1-pad]...), nil
}

// cbcCipher implements Cipher for AES-CBC with an HMAC ICV (encrypt-then-MAC,
// RFC 7296 §3.14).
type cbcCipher struct {
	spec   encrSpec
	icvLen int

	mu      sync.Mutex
	block   cipher.Block
	enc     cipher.BlockMode
	dec     cipher.BlockMode
	mac     hash.Hash
	iv      *[16]byte // guarded by mu
	sum     *[64]byte // full HMAC output; guarded by mu
	rng     io.Reader
	integID ike.IntegID
}

type ivSetter interface{ SetIV([]byte) }

func newCBCCipher(e encrSpec, integ ike.IntegID, key, integKey []byte) (*cbcCipher, error) {
	is, err := lookupInteg(integ)
	if err != nil {
		return nil, err
	}
	if len(integKey) != is.keyLen {
		return nil, errorf(ReasonBadKey, "%v key is %d bytes, want %d", integ, len(integKey), is.keyLen)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, errorf(ReasonBadKey, "AES: %v", err)
	}
	// One allocation for the Cipher, its IV and its MAC output; only
	// pointers lead from the Cipher to them.
	box := &struct {
		c   cbcCipher
		iv  [16]byte
		sum [64]byte
	}{c: cbcCipher{spec: e, icvLen: is.icvLen, block: b, mac: hmac.New(is.hash, integKey), rng: rand.Reader, integID: integ}}
	c := &box.c
	c.iv, c.sum = &box.iv, &box.sum
	c.enc = cipher.NewCBCEncrypter(b, c.iv[:])
	c.dec = cipher.NewCBCDecrypter(b, c.iv[:])
	return c, nil
}

func (c *cbcCipher) IVLen() int  { return c.spec.ivLen }
func (c *cbcCipher) ICVLen() int { return c.icvLen }

// SealedLen pads payloads | padding | Pad Length to the block size, with the
// minimum padding (RFC 7296 §3.14).
func (c *cbcCipher) SealedLen(n int) int {
	bs := c.spec.block
	return c.spec.ivLen + (n+1+bs-1)/bs*bs + c.icvLen
}

func (c *cbcCipher) setIV(m cipher.BlockMode, iv []byte) cipher.BlockMode {
	if s, ok := m.(ivSetter); ok {
		s.SetIV(iv)
		return m
	}
	if m == c.enc {
		return cipher.NewCBCEncrypter(c.block, iv)
	}
	return cipher.NewCBCDecrypter(c.block, iv)
}

func (c *cbcCipher) Seal(dst, aad, plaintext []byte) ([]byte, error) {
	ivLen := c.spec.ivLen
	sealedLen := c.SealedLen(len(plaintext))
	ctLen := sealedLen - ivLen - c.icvLen
	out, body := growBody(dst, sealedLen)
	copy(body[ivLen:], plaintext)
	pad := ctLen - len(plaintext) - 1
	clear(body[ivLen+len(plaintext) : ivLen+ctLen-1])
	body[ivLen+ctLen-1] = byte(pad)

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.block == nil {
		return dst, errDestroyed
	}
	// RFC 7296 §3.14: CBC IVs must be random and unpredictable.
	if _, err := io.ReadFull(c.rng, c.iv[:]); err != nil {
		return dst, errorf(ReasonIVExhausted, "random IV: %v", err)
	}
	copy(body, c.iv[:])
	ct := body[ivLen : ivLen+ctLen]
	c.enc = c.setIV(c.enc, c.iv[:])
	c.enc.CryptBlocks(ct, ct)
	c.mac.Reset()
	c.mac.Write(aad)
	c.mac.Write(body[:ivLen+ctLen])
	copy(body[ivLen+ctLen:], c.mac.Sum(c.sum[:0]))
	return out, nil
}

func (c *cbcCipher) Open(dst, aad, sealed []byte) ([]byte, error) {
	ivLen := c.spec.ivLen
	if len(sealed) < ivLen+c.spec.block+c.icvLen {
		return dst, errOpenShort
	}
	covered, icv := sealed[:len(sealed)-c.icvLen], sealed[len(sealed)-c.icvLen:]
	ct := covered[ivLen:]
	if len(ct)%c.spec.block != 0 {
		return dst, errOpenAlign
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.block == nil {
		return dst, errDestroyed
	}
	// The ICV is checked, in constant time, before anything is decrypted.
	c.mac.Reset()
	c.mac.Write(aad)
	c.mac.Write(covered)
	if !hmac.Equal(c.mac.Sum(c.sum[:0])[:c.icvLen], icv) {
		return dst, errOpenICV
	}
	copy(c.iv[:], covered[:ivLen])
	c.dec = c.setIV(c.dec, c.iv[:])
	c.dec.CryptBlocks(ct, ct)
	return unpad(dst, ct, c.spec.block)
}

func (c *cbcCipher) Destroy() {
	c.mu.Lock()
	clear(c.iv[:])
	clear(c.sum[:])
	if c.mac != nil {
		c.mac.Reset()
	}
	c.block, c.enc, c.dec, c.mac = nil, nil, nil, nil
	c.mu.Unlock()
}

func (c *cbcCipher) String() string {
	return fmt.Sprintf("%v-%d+%v %s", ike.EncrAESCBC, c.spec.keyLen*8, c.integID, redacted)
}
func (c *cbcCipher) GoString() string           { return c.String() }
func (c *cbcCipher) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// SealPayload finishes an encrypted message: msg holds the IKE header and
// every payload through the SK or SKF generic header, lengths final (from
// c.SealedLen), and the sealed inner payloads are appended to it.
func SealPayload(c Cipher, msg, inner []byte) ([]byte, error) {
	return c.Seal(msg, msg, inner)
}

// OpenPayload checks and decrypts, in place, a whole received message whose
// SK or SKF payload body starts at offset body (just after its generic
// header) and runs to the end of msg. It returns the inner payloads, a
// sub-slice of msg.
func OpenPayload(c Cipher, msg []byte, body int) ([]byte, error) {
	if body < 0 || body > len(msg) {
		return nil, errOpenShort
	}
	return c.Open(msg[body:body], msg[:body], msg[body:])
}
