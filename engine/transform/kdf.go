package transform

import (
	"fmt"
)

// SKEYSEED = prf(Ni | Nr, g^ir) (RFC 7296 §2.14). The nonces are the PRF
// key; HMAC accepts any key length, so no fixed-key split applies.
func SKEYSEED(p PRF, ni, nr []byte, gir Secret) Secret {
	var sc [stackScratch]byte
	buf := scratch(sc[:], len(ni)+len(nr)+p.macScratch(gir.Len()))
	key := append(append(buf, ni...), nr...)
	s, out := newSecret(p.Size())
	p.hmac(out[:0], key[len(key):], key, gir.Bytes())
	clear(key)
	return s
}

// RekeySKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), for a new IKE SA
// made by rekeying (RFC 7296 §2.18). p is the PRF of the old IKE SA.
func RekeySKEYSEED(p PRF, oldSKd, gir Secret, ni, nr []byte) Secret {
	var sc [stackScratch]byte
	w := scratch(sc[:], p.macScratch(gir.Len()+len(ni)+len(nr)))
	s, out := newSecret(p.Size())
	p.hmac(out[:0], w, oldSKd.Bytes(), gir.Bytes(), ni, nr)
	return s
}

// Keys is the key material of one IKE SA (RFC 7296 §2.14). It prints
// "[redacted]" and Zero clears all of it.
type Keys struct {
	Suite Suite
	PRF   PRF
	D     Secret // SK_d: derives Child SA keys and rekeyed IKE SAs
	AI    Secret // SK_ai: integrity, initiator to responder (empty for AEAD)
	AR    Secret // SK_ar
	EI    Secret // SK_ei: encryption, initiator to responder (key | salt for AEAD)
	ER    Secret // SK_er
	PI    Secret // SK_pi: AUTH of the initiator
	PR    Secret // SK_pr
}

// DeriveIKEKeys computes {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi |
// SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) (RFC 7296 §2.14) for the
// negotiated IKE suite.
func DeriveIKEKeys(s Suite, skeyseed Secret, ni, nr, spii, spir []byte) (*Keys, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if len(spii) != 8 || len(spir) != 8 {
		return nil, errorf(ReasonBadKey, "IKE SPIs are %d and %d bytes, want 8", len(spii), len(spir))
	}
	p, err := NewPRF(s.PRF)
	if err != nil {
		return nil, err
	}
	var sc [stackScratch]byte
	seed := scratch(sc[:], len(ni)+len(nr)+16)
	seed = append(append(append(append(seed, ni...), nr...), spii...), spir...)
	dl, al, el := p.KeyLen(), s.IntegKeyLen(), s.EncrKeyLen()
	km, err := p.plus(skeyseed.Bytes(), seed, dl+2*al+2*el+2*dl)
	if err != nil {
		return nil, err
	}
	// The keys share km, and their cells the allocation of Keys.
	box := &struct {
		Keys
		cells [7]secretCell
	}{Keys: Keys{Suite: s, PRF: p}}
	k := &box.Keys
	splitInto(km, box.cells[:], []*Secret{&k.D, &k.AI, &k.AR, &k.EI, &k.ER, &k.PI, &k.PR}, []int{dl, al, al, el, el, dl, dl})
	return k, nil
}

// compactInline is the room for key bytes inside the allocation of the
// Keys WithoutAuth returns for suites with SK_a* (AES-CBC with a SHA-256
// PRF and HMAC-SHA-256: 128 bytes; the whole stays in the 384-byte size
// class).
const compactInline = 128

// Keys of an AEAD IKE SA after IKE_AUTH: SK_d, SK_ei and SK_er only (no
// SK_a*, RFC 5282 §7), so three cells; keys3 fits the 256-byte size class
// (SHA-256 PRF with AES-128-GCM: 72 bytes of keys), keys3m the 288-byte
// one (with AES-256-GCM or ChaCha20-Poly1305: 104), keys3l the 320-byte
// one (up to a SHA-512 PRF with 256-bit keys: 136).
type keys3 struct {
	Keys
	cells [3]secretCell
	buf   [72]byte
}

type keys3m struct {
	Keys
	cells [3]secretCell
	buf   [104]byte
}

type keys3l struct {
	Keys
	cells [3]secretCell
	buf   [136]byte
}

// WithoutAuth returns a copy of the keys without SK_pi and SK_pr in one
// allocation (two for larger suites) and zeroes k. SK_pi and SK_pr only
// sign the AUTH payloads of IKE_AUTH (RFC 7296 §2.15, §2.16); after it an
// IKE SA needs SK_d (Child SA keys §2.17, rekeys §2.18, RFC 7791 clones)
// and the keys of its messages. Ciphers built from k stay usable: they
// hold their own copies.
func (k *Keys) WithoutAuth() *Keys {
	parts := [5]Secret{k.D, k.AI, k.AR, k.EI, k.ER}
	var lens [5]int
	n := 0
	for i, s := range parts {
		lens[i] = s.Len()
		n += lens[i]
	}
	var (
		nk    *Keys
		cells []secretCell
		buf   []byte
	)
	switch {
	case lens[1] == 0 && lens[2] == 0 && n <= len(keys3{}.buf):
		b := &keys3{Keys: Keys{Suite: k.Suite, PRF: k.PRF}}
		nk, cells, buf = &b.Keys, b.cells[:], b.buf[:0:n]
	case lens[1] == 0 && lens[2] == 0 && n <= len(keys3m{}.buf):
		b := &keys3m{Keys: Keys{Suite: k.Suite, PRF: k.PRF}}
		nk, cells, buf = &b.Keys, b.cells[:], b.buf[:0:n]
	case lens[1] == 0 && lens[2] == 0 && n <= len(keys3l{}.buf):
		b := &keys3l{Keys: Keys{Suite: k.Suite, PRF: k.PRF}}
		nk, cells, buf = &b.Keys, b.cells[:], b.buf[:0:n]
	default:
		b := &struct {
			Keys
			cells [5]secretCell
			buf   [compactInline]byte
		}{Keys: Keys{Suite: k.Suite, PRF: k.PRF}}
		nk, cells, buf = &b.Keys, b.cells[:], b.buf[:0:compactInline]
		if n > compactInline {
			buf = make([]byte, 0, n)
		}
	}
	// Only the keys the suite has get a cell; the others stay the empty
	// Secret.
	out := [5]*Secret{&nk.D, &nk.AI, &nk.AR, &nk.EI, &nk.ER}
	j := 0
	for i, s := range parts {
		if lens[i] == 0 {
			continue
		}
		buf = append(buf, s.Bytes()...)
		out[j], lens[j] = out[i], lens[i]
		j++
	}
	splitInto(buf[:n:n], cells[:j], out[:j], lens[:j])
	k.Zero()
	return nk
}

// Ciphers builds the Cipher for each direction: out protects what we send,
// in checks what we receive.
func (k *Keys) Ciphers(initiator bool) (out, in Cipher, err error) {
	ci, err := NewCipher(k.Suite, k.EI, k.AI)
	if err != nil {
		return nil, nil, err
	}
	cr, err := NewCipher(k.Suite, k.ER, k.AR)
	if err != nil {
		ci.Destroy()
		return nil, nil, err
	}
	if initiator {
		return ci, cr, nil
	}
	return cr, ci, nil
}

// Zero clears every key.
func (k *Keys) Zero() {
	for _, s := range []Secret{k.D, k.AI, k.AR, k.EI, k.ER, k.PI, k.PR} {
		s.Zero()
	}
}

func (k Keys) String() string {
	return fmt.Sprintf("Keys{%v/%v/%v/%v %s}", k.Suite.Encr, k.Suite.Integ, k.Suite.PRF, k.Suite.Group, redacted)
}
func (k Keys) GoString() string           { return k.String() }
func (k Keys) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// ChildKeys is the KEYMAT of one Child SA split per direction (RFC 7296
// §2.17): I = initiator to responder, R = responder to initiator.
type ChildKeys struct {
	Suite  Suite
	EncrI  Secret // key | salt for AEAD (RFC 4106 §8.1, RFC 7634 §2)
	IntegI Secret
	EncrR  Secret
	IntegR Secret
}

// DeriveChildKeys computes KEYMAT = prf+(SK_d, Ni | Nr), or with PFS
// prf+(SK_d, g^ir (new) | Ni | Nr), with the nonces of the exchange that
// creates the Child SA (RFC 7296 §2.17). Pass a zero Secret for gir without
// PFS. All keys of the initiator-to-responder SA come first, encryption
// before integrity.
func DeriveChildKeys(k *Keys, child Suite, gir Secret, ni, nr []byte) (*ChildKeys, error) {
	if err := child.validate(); err != nil {
		return nil, err
	}
	var sc [stackScratch]byte
	seed := scratch(sc[:], gir.Len()+len(ni)+len(nr))
	seed = append(append(append(seed, gir.Bytes()...), ni...), nr...)
	defer clear(seed)
	el, al := child.EncrKeyLen(), child.IntegKeyLen()
	km, err := k.PRF.plus(k.D.Bytes(), seed, 2*(el+al))
	if err != nil {
		return nil, err
	}
	box := &struct {
		ChildKeys
		cells [4]secretCell
	}{ChildKeys: ChildKeys{Suite: child}}
	c := &box.ChildKeys
	splitInto(km, box.cells[:], []*Secret{&c.EncrI, &c.IntegI, &c.EncrR, &c.IntegR}, []int{el, al, el, al})
	return c, nil
}

// Zero clears every key.
func (c *ChildKeys) Zero() {
	for _, s := range []Secret{c.EncrI, c.IntegI, c.EncrR, c.IntegR} {
		s.Zero()
	}
}

func (c ChildKeys) String() string {
	return fmt.Sprintf("ChildKeys{%v/%v esn=%v %s}", c.Suite.Encr, c.Suite.Integ, c.Suite.ESN, redacted)
}
func (c ChildKeys) GoString() string           { return c.String() }
func (c ChildKeys) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }
