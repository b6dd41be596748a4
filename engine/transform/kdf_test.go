package transform

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"hash"
	"testing"
	"unsafe"

	"github.com/mifsec/mifsec/engine/ike"
)

func hmac256(key []byte, data ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil)
}

// prfPlus256 is an independent, literal prf+ (RFC 7296 §2.13) for checks.
func prfPlus256(key, seed []byte, n int) []byte {
	var out, t []byte
	for i := byte(1); len(out) < n; i++ {
		t = hmac256(key, t, seed, []byte{i})
		out = append(out, t...)
	}
	return out[:n]
}

func TestPRFPlusLimit(t *testing.T) {
	p, _ := NewPRF(ike.PRFHMACSHA256)
	if _, err := p.Plus([]byte("k"), []byte("s"), 255*32); err != nil {
		t.Fatalf("255 blocks: %v", err)
	}
	if _, err := p.Plus([]byte("k"), []byte("s"), 255*32+1); !errors.Is(err, ErrTooLong) {
		t.Fatalf("256 blocks: %v", err)
	}
	if _, err := NewPRF(ike.PRFAES128XCBC); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("XCBC: %v", err)
	}
	got, _ := p.Plus([]byte("key"), []byte("seed"), 100)
	if !bytes.Equal(got.Bytes(), prfPlus256([]byte("key"), []byte("seed"), 100)) {
		t.Fatal("prf+ differs from the literal definition")
	}
}

func TestIKEKeyLengths(t *testing.T) {
	cases := []struct {
		props          string
		d, a, e, p, ek int
	}{
		{"aes128gcm16-prfsha256-x25519", 32, 0, 20, 32, 20},
		{"aes256gcm16-prfsha384-ecp384", 48, 0, 36, 48, 36},
		{"chacha20poly1305-prfsha512-ecp521", 64, 0, 36, 64, 36},
		{"aes128-sha256-modp2048", 32, 32, 16, 32, 16},
		{"aes256-sha384-prfsha1-modp3072", 20, 48, 32, 20, 32},
		{"aes256-sha1-modp4096", 20, 20, 32, 20, 32},
		{"aes192-sha512-ecp256", 64, 64, 24, 64, 24},
	}
	for _, c := range cases {
		props, err := ParseProposals(c.props, ike.ProtoIKE)
		if err != nil {
			t.Fatal(err)
		}
		s, err := SuiteOf(props[0])
		if err != nil {
			t.Fatalf("%s: %v", c.props, err)
		}
		k, err := DeriveIKEKeys(s, NewSecret([]byte("seed")), []byte("Ni"), []byte("Nr"), make([]byte, 8), make([]byte, 8))
		if err != nil {
			t.Fatal(err)
		}
		got := []int{k.D.Len(), k.AI.Len(), k.AR.Len(), k.EI.Len(), k.ER.Len(), k.PI.Len(), k.PR.Len()}
		want := []int{c.d, c.a, c.a, c.e, c.e, c.p, c.p}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: lengths %v, want %v", c.props, got, want)
			}
		}
		// The initiator's out cipher talks to the responder's in cipher.
		iOut, iIn, err := k.Ciphers(true)
		if err != nil {
			t.Fatal(err)
		}
		rOut, rIn, _ := k.Ciphers(false)
		for _, pair := range [][2]Cipher{{iOut, rIn}, {rOut, iIn}} {
			aad := testHeader(pair[0], 5, false, 0)
			msg, _ := SealPayload(pair[0], bytes.Clone(aad), []byte("hello"))
			if got, err := OpenPayload(pair[1], msg, len(aad)); err != nil || string(got) != "hello" {
				t.Fatalf("%s: %q %v", c.props, got, err)
			}
		}
		if _, err := OpenPayload(iIn, mustSeal(t, iOut), 32); err == nil {
			t.Fatalf("%s: a message opened with the other direction's key", c.props)
		}
		// Without SK_pi and SK_pr: the same other keys, the old ones
		// zeroed, the ciphers built before still working.
		wantKeys := [][]byte{bytes.Clone(k.D.Bytes()), bytes.Clone(k.AI.Bytes()), bytes.Clone(k.AR.Bytes()), bytes.Clone(k.EI.Bytes()), bytes.Clone(k.ER.Bytes())}
		old := k
		k = k.WithoutAuth()
		for i, s := range []Secret{k.D, k.AI, k.AR, k.EI, k.ER} {
			if !bytes.Equal(s.Bytes(), wantKeys[i]) {
				t.Fatalf("%s: key %d differs after WithoutAuth", c.props, i)
			}
		}
		if k.PI.Len() != 0 || k.PR.Len() != 0 || old.D.Len() != 0 || old.PI.Len() != 0 || old.PR.Len() != 0 || old.ER.Len() != 0 {
			t.Fatalf("%s: WithoutAuth left SK_p* or the old keys", c.props)
		}
		k2Out, k2In, err := k.Ciphers(false)
		if err != nil {
			t.Fatal(err)
		}
		for _, pair := range [][2]Cipher{{iOut, k2In}, {k2Out, iIn}} {
			aad := testHeader(pair[0], 5, false, 0)
			msg, _ := SealPayload(pair[0], bytes.Clone(aad), []byte("hello"))
			if got, err := OpenPayload(pair[1], msg, len(aad)); err != nil || string(got) != "hello" {
				t.Fatalf("%s after WithoutAuth: %q %v", c.props, got, err)
			}
		}
		k.Zero()
		if k.D.Len() != 0 || k.EI.Len() != 0 {
			t.Fatal("Zero left key bytes")
		}
	}
	if _, err := DeriveIKEKeys(Suite{Protocol: ike.ProtoIKE, Encr: ike.EncrAESGCM16, KeyBits: 128, PRF: ike.PRFHMACSHA256, Group: ike.GroupECP256},
		NewSecret([]byte("s")), nil, nil, make([]byte, 4), make([]byte, 8)); !errors.Is(err, ErrBadKey) {
		t.Fatalf("4-byte SPI: %v", err)
	}
}

func mustSeal(t *testing.T, c Cipher) []byte {
	aad := testHeader(c, 5, false, 0)
	msg, err := SealPayload(c, aad, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// TestChildKeys checks KEYMAT with and without PFS (RFC 7296 §2.17) against
// the literal prf+, and its split: I->R encryption, integrity, then R->I.
func TestChildKeys(t *testing.T) {
	s := Suite{Protocol: ike.ProtoIKE, Encr: ike.EncrAESGCM16, KeyBits: 256, PRF: ike.PRFHMACSHA256, Group: ike.GroupCurve25519}
	skd := testKey(32, 0x10)
	k := &Keys{Suite: s, PRF: mustPRF(t, ike.PRFHMACSHA256), D: NewSecret(skd)}
	ni, nr, gir := []byte("nonce-i-16bytes!"), []byte("nonce-r-16bytes!"), testKey(32, 0x77)
	cases := []struct {
		esp string
		pfs bool
		e   int
		a   int
	}{
		{"aes128gcm16", false, 20, 0},
		{"aes256gcm16-esn", true, 36, 0},
		{"chacha20poly1305", false, 36, 0},
		{"aes128-sha256", false, 16, 32},
		{"aes256-sha512-modp2048", true, 32, 64},
		{"aes128-sha1", true, 16, 20},
	}
	for _, c := range cases {
		props, err := ParseProposals(c.esp, ike.ProtoESP)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := SuiteOf(props[0])
		if err != nil {
			t.Fatalf("%s: %v", c.esp, err)
		}
		var g Secret
		seed := append(append([]byte{}, ni...), nr...)
		if c.pfs {
			g = NewSecret(gir)
			seed = append(append([]byte{}, gir...), seed...)
		}
		ck, err := DeriveChildKeys(k, cs, g, ni, nr)
		if err != nil {
			t.Fatal(err)
		}
		want := prfPlus256(skd, seed, 2*(c.e+c.a))
		got := append(append(append(append([]byte{}, ck.EncrI.Bytes()...), ck.IntegI.Bytes()...), ck.EncrR.Bytes()...), ck.IntegR.Bytes()...)
		if !bytes.Equal(got, want) || ck.EncrI.Len() != c.e || ck.IntegR.Len() != c.a {
			t.Fatalf("%s pfs=%v: KEYMAT split wrong", c.esp, c.pfs)
		}
		if cs.ESN != (c.esp == "aes256gcm16-esn") {
			t.Fatalf("%s: ESN %v", c.esp, cs.ESN)
		}
		ck.Zero()
		if ck.EncrI.Len() != 0 {
			t.Fatal("Zero left key bytes")
		}
	}
}

func mustPRF(t *testing.T, id ike.PRFID) PRF {
	p, err := NewPRF(id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRekeySKEYSEED: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr) (RFC 7296 §2.18).
func TestRekeySKEYSEED(t *testing.T) {
	p := mustPRF(t, ike.PRFHMACSHA256)
	old, gir, ni, nr := testKey(32, 1), testKey(32, 2), testKey(16, 3), testKey(16, 4)
	got := RekeySKEYSEED(p, NewSecret(old), NewSecret(gir), ni, nr)
	if !bytes.Equal(got.Bytes(), hmac256(old, gir, ni, nr)) {
		t.Fatal("rekey SKEYSEED mismatch")
	}
	// The initial SKEYSEED keys the PRF with the nonces, not SK_d.
	if !bytes.Equal(SKEYSEED(p, ni, nr, NewSecret(gir)).Bytes(), hmac256(append(bytes.Clone(ni), nr...), gir)) {
		t.Fatal("SKEYSEED mismatch")
	}
}

func TestSecretZero(t *testing.T) {
	b := []byte{1, 2, 3}
	s := NewSecret(b)
	inner := s.Bytes()
	cp := s
	s.Zero()
	if !bytes.Equal(inner, []byte{0, 0, 0}) || cp.Len() != 0 || b[0] != 1 {
		t.Fatal("Zero did not clear every copy, or touched the caller's slice")
	}
	var empty Secret
	empty.Zero()
	if empty.Bytes() != nil {
		t.Fatal("zero Secret not empty")
	}
}

// TestPRFAgainstHMAC checks the one-shot HMAC of every PRF against
// crypto/hmac for keys shorter than, equal to and longer than the block
// (RFC 2104 §2 hashes the last), and data that fits the stack scratch or
// not; prf+, SKEYSEED and the rekey SKEYSEED against the literal
// definitions built on crypto/hmac.
func TestPRFAgainstHMAC(t *testing.T) {
	hashes := map[ike.PRFID]func() hash.Hash{
		ike.PRFHMACSHA1: sha1.New, ike.PRFHMACSHA256: sha256.New,
		ike.PRFHMACSHA384: sha512.New384, ike.PRFHMACSHA512: sha512.New,
	}
	for id, h := range hashes {
		p := mustPRF(t, id)
		ref := func(key []byte, data ...[]byte) []byte {
			m := hmac.New(h, key)
			for _, d := range data {
				m.Write(d)
			}
			return m.Sum(nil)
		}
		for _, kl := range []int{0, 1, 20, p.blockLen() - 1, p.blockLen(), p.blockLen() + 1, 512} {
			for _, dl := range []int{0, 1, 64, stackScratch - p.blockLen(), stackScratch, 5000} {
				key, data := testKey(kl, 1), testKey(dl, 2)
				if got, want := p.Sum(key, data[:dl/2], data[dl/2:]), ref(key, data); !bytes.Equal(got, want) {
					t.Fatalf("%v key %d data %d: prf %x, want %x", id, kl, dl, got, want)
				}
				lit := func(n int) []byte {
					var out, t []byte
					for i := byte(1); len(out) < n; i++ {
						t = ref(key, t, data, []byte{i})
						out = append(out, t...)
					}
					return out[:n]
				}
				for _, n := range []int{0, 1, p.Size(), 3*p.Size() - 1, 200} {
					got, err := p.Plus(key, data, n)
					if err != nil || !bytes.Equal(got.Bytes(), lit(n)) {
						t.Fatalf("%v key %d seed %d: prf+ of %d differs (%v)", id, kl, dl, n, err)
					}
				}
				ni, nr := key[:kl/2], key[kl/2:]
				if got := SKEYSEED(p, ni, nr, NewSecret(data)); !bytes.Equal(got.Bytes(), ref(key, data)) {
					t.Fatalf("%v nonces %d gir %d: SKEYSEED differs", id, kl, dl)
				}
				if got := RekeySKEYSEED(p, NewSecret(key), NewSecret(data), ni, nr); !bytes.Equal(got.Bytes(), ref(key, data, ni, nr)) {
					t.Fatalf("%v SK_d %d gir %d: rekey SKEYSEED differs", id, kl, dl)
				}
			}
		}
	}
}

// TestKeyDerivationAllocs bounds the allocations of key derivation: prf+
// output and one block for the Keys and their cells; a SKEYSEED is one.
func TestKeyDerivationAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	s := Suite{Protocol: ike.ProtoIKE, Encr: ike.EncrAESGCM16, KeyBits: 128, PRF: ike.PRFHMACSHA256, Group: ike.GroupCurve25519}
	child := Suite{Protocol: ike.ProtoESP, Encr: ike.EncrAESGCM16, KeyBits: 128}
	p := mustPRF(t, ike.PRFHMACSHA256)
	ni, nr, gir := testKey(32, 1), testKey(32, 2), NewSecret(testKey(32, 3))
	spi := make([]byte, 8)
	cases := []struct {
		name string
		max  float64
		f    func()
	}{
		{"SKEYSEED", 1, func() { SKEYSEED(p, ni, nr, gir).Zero() }},
		{"RekeySKEYSEED", 1, func() { RekeySKEYSEED(p, gir, gir, ni, nr).Zero() }},
		{"DeriveIKEKeys", 2, func() {
			k, _ := DeriveIKEKeys(s, gir, ni, nr, spi, spi)
			k.Zero()
		}},
		{"DeriveChildKeys", 4, func() {
			k, _ := DeriveIKEKeys(s, gir, ni, nr, spi, spi)
			c, _ := DeriveChildKeys(k, child, Secret{}, ni, nr)
			c.Zero()
			k.Zero()
		}},
		{"NewSecret", 1, func() { NewSecret(ni).Zero() }},
	}
	for _, c := range cases {
		if got := testing.AllocsPerRun(20, c.f); got > c.max {
			t.Errorf("%s: %v allocations, want at most %v", c.name, got, c.max)
		}
	}
}

// An AEAD IKE SA's keys after IKE_AUTH are one allocation of the 256-byte
// size class (SHA-256 PRF, 128-bit key), the 288-byte (256-bit key) or the
// 320-byte one: three cells and the key bytes, no SK_a* cells (per-SA
// memory).
func TestWithoutAuthCompact(t *testing.T) {
	if s := unsafe.Sizeof(keys3{}); s > 256 {
		t.Fatalf("keys3 is %d bytes, want at most 256", s)
	}
	if s := unsafe.Sizeof(keys3m{}); s > 288 {
		t.Fatalf("keys3m is %d bytes, want at most 288", s)
	}
	if s := unsafe.Sizeof(keys3l{}); s > 320 {
		t.Fatalf("keys3l is %d bytes, want at most 320", s)
	}
	for _, props := range []string{"aes128gcm16-prfsha256-x25519", "aes256gcm16-prfsha256-x25519", "chacha20poly1305-prfsha512-ecp521", "aes128-sha256-modp2048"} {
		ps, err := ParseProposals(props, ike.ProtoIKE)
		if err != nil {
			t.Fatal(err)
		}
		s, err := SuiteOf(ps[0])
		if err != nil {
			t.Fatal(err)
		}
		k, err := DeriveIKEKeys(s, NewSecret([]byte("seed")), []byte("Ni"), []byte("Nr"), make([]byte, 8), make([]byte, 8))
		if err != nil {
			t.Fatal(err)
		}
		d := bytes.Clone(k.D.Bytes())
		if n := testing.AllocsPerRun(20, func() { k = k.WithoutAuth() }); n != 1 {
			t.Fatalf("%s: WithoutAuth made %v allocations, want 1", props, n)
		}
		if !bytes.Equal(k.D.Bytes(), d) || k.PI.Len() != 0 {
			t.Fatalf("%s: SK_d changed or SK_pi kept over repeated WithoutAuth", props)
		}
		k.Zero()
	}
}
