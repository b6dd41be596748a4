package transform

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mifsec/mifsec/engine/ike"
)

// readVectors loads testdata/<name> into v.
func readVectors(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestVectorsKDF(t *testing.T) {
	var f struct {
		Vectors []struct {
			Name, PRF, Ni, Nr, Gir, Skeyseed, Spii, Spir, DKM string
			DKMLen                                            int `json:"dkm_len"`
		}
	}
	readVectors(t, "ikev2_kdf_sha2_cavp.json", &f)
	if len(f.Vectors) != 6 {
		t.Fatalf("%d vectors, want 6", len(f.Vectors))
	}
	prfs := map[string]ike.PRFID{"(5)": ike.PRFHMACSHA256, "(6)": ike.PRFHMACSHA384, "(7)": ike.PRFHMACSHA512}
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			id := prfs[v.PRF[strings.LastIndex(v.PRF, "("):]]
			p, err := NewPRF(id)
			if err != nil {
				t.Fatal(err)
			}
			ni, nr := unhex(t, v.Ni), unhex(t, v.Nr)
			seed := SKEYSEED(p, ni, nr, NewSecret(unhex(t, v.Gir)))
			if !bytes.Equal(seed.Bytes(), unhex(t, v.Skeyseed)) {
				t.Fatalf("SKEYSEED = %x, want %s", seed.Bytes(), v.Skeyseed)
			}
			s := append(append(append(append([]byte{}, ni...), nr...), unhex(t, v.Spii)...), unhex(t, v.Spir)...)
			dkm, err := p.Plus(seed.Bytes(), s, v.DKMLen)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(dkm.Bytes(), unhex(t, v.DKM)) {
				t.Fatalf("prf+ = %x, want %s", dkm.Bytes(), v.DKM)
			}
			// The same bytes through DeriveIKEKeys: SK_d is the first PRF-length
			// block, the rest follows in RFC 7296 §2.14 order.
			suite := Suite{Protocol: ike.ProtoIKE, Encr: ike.EncrAESGCM16, KeyBits: 256, PRF: id, Group: ike.GroupCurve25519}
			k, err := DeriveIKEKeys(suite, seed, ni, nr, unhex(t, v.Spii), unhex(t, v.Spir))
			if err != nil {
				t.Fatal(err)
			}
			var cat []byte
			for _, x := range []Secret{k.D, k.AI, k.AR, k.EI, k.ER, k.PI, k.PR} {
				cat = append(cat, x.Bytes()...)
			}
			if n := min(len(cat), v.DKMLen); !bytes.Equal(cat[:n], dkm.Bytes()[:n]) {
				t.Fatalf("DeriveIKEKeys differs from prf+ in the first %d bytes", n)
			}
		})
	}
}

func TestVectorsECP(t *testing.T) {
	var f struct {
		Vectors []struct {
			Group      ike.GroupID `json:"dh_group"`
			Name, I, R string
			KEI        string `json:"ke_payload_data_initiator"`
			KER        string `json:"ke_payload_data_responder"`
			Gir        string `json:"shared_secret_gir"`
		}
	}
	readVectors(t, "ecp_dh_rfc5903.json", &f)
	if len(f.Vectors) != 3 {
		t.Fatalf("%d vectors, want 3", len(f.Vectors))
	}
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			checkDHPair(t, v.Group, unhex(t, v.I), unhex(t, v.R), unhex(t, v.KEI), unhex(t, v.KER), unhex(t, v.Gir))
		})
	}
}

// checkDHPair builds both sides from their private values and checks the
// KE data each sends and the secret each computes.
func checkDHPair(t *testing.T, g ike.GroupID, privI, privR, keI, keR, gir []byte) {
	t.Helper()
	spec, err := lookupGroup(g)
	if err != nil {
		t.Fatal(err)
	}
	ki, err := newDHKey(g, spec, privI)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := newDHKey(g, spec, privR)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ki.PublicValue(), keI) {
		t.Errorf("initiator KE data = %x, want %x", ki.PublicValue(), keI)
	}
	if !bytes.Equal(kr.PublicValue(), keR) {
		t.Errorf("responder KE data = %x, want %x", kr.PublicValue(), keR)
	}
	for name, c := range map[string]struct {
		k    *DHKey
		peer []byte
	}{"initiator": {ki, keR}, "responder": {kr, keI}} {
		s, err := c.k.SharedSecret(c.peer)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(s.Bytes(), gir) {
			t.Errorf("%s g^ir = %x, want %x", name, s.Bytes(), gir)
		}
	}
}

func TestVectorsX25519(t *testing.T) {
	var f struct {
		Vectors []struct {
			Name, Scalar, Output string
			U                    string `json:"u_coordinate"`
			PrivI                string `json:"private_i"`
			PrivR                string `json:"private_r"`
			KEI                  string `json:"public_i_ke_data"`
			KER                  string `json:"public_r_ke_data"`
			Gir                  string `json:"shared_secret_gir"`
		}
	}
	readVectors(t, "x25519_rfc7748_rfc8031.json", &f)
	if len(f.Vectors) != 5 {
		t.Fatalf("%d vectors, want 5", len(f.Vectors))
	}
	spec, _ := lookupGroup(ike.GroupCurve25519)
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			if v.Scalar != "" {
				// Scalar multiplication: the "peer" value is the u-coordinate.
				k, err := newDHKey(ike.GroupCurve25519, spec, unhex(t, v.Scalar))
				if err != nil {
					t.Fatal(err)
				}
				s, err := k.SharedSecret(unhex(t, v.U))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(s.Bytes(), unhex(t, v.Output)) {
					t.Fatalf("X25519 = %x, want %s", s.Bytes(), v.Output)
				}
				return
			}
			checkDHPair(t, ike.GroupCurve25519, unhex(t, v.PrivI), unhex(t, v.PrivR), unhex(t, v.KEI), unhex(t, v.KER), unhex(t, v.Gir))
		})
	}
}

func TestVectorsMODP2048(t *testing.T) {
	var v struct {
		P    string `json:"prime_p"`
		ExpI string `json:"exp_i"`
		ExpR string `json:"exp_r"`
		KEI  string `json:"g_i_ke_data"`
		KER  string `json:"g_r_ke_data"`
		Gir  string `json:"shared_secret_gir"`
	}
	readVectors(t, "modp2048_group14_strongswan.json", &v)
	if got := modpGroups[ike.GroupMODP2048].p.Text(16); got != v.P {
		t.Fatalf("built-in prime differs from the vector's")
	}
	checkDHPair(t, ike.GroupMODP2048, unhex(t, v.ExpI), unhex(t, v.ExpR), unhex(t, v.KEI), unhex(t, v.KER), unhex(t, v.Gir))
}

// TestVectorsChaChaSK checks RFC 7634 Appendix B: an INFORMATIONAL message
// whose SK payload is ChaCha20-Poly1305, sealed and opened through Cipher.
func TestVectorsChaChaSK(t *testing.T) {
	var f struct {
		Vectors []struct {
			Name      string
			Keymat    string `json:"keymat_36_bytes"`
			IV        string
			AAD       string `json:"aad_ike_header_plus_sk_generic_header"`
			Plaintext string
			Message   string `json:"full_ike_message"`
		}
	}
	readVectors(t, "chacha20poly1305_rfc7634.json", &f)
	n := 0
	for _, v := range f.Vectors {
		if v.Message == "" {
			continue // Appendix A is ESP: the data plane's vector
		}
		n++
		t.Run(v.Name, func(t *testing.T) {
			s := Suite{Protocol: ike.ProtoIKE, Encr: ike.EncrChaCha20Poly1305, PRF: ike.PRFHMACSHA256, Group: ike.GroupCurve25519}
			c, err := NewCipher(s, NewSecret(unhex(t, v.Keymat)), Secret{})
			if err != nil {
				t.Fatal(err)
			}
			aad, msg, pt := unhex(t, v.AAD), unhex(t, v.Message), unhex(t, v.Plaintext)
			// The vector's plaintext ends with the Pad Length octet (0).
			inner := pt[:len(pt)-1]
			a := c.(*aeadCipher)
			iv := unhex(t, v.IV)
			var ivn uint64
			for _, b := range iv {
				ivn = ivn<<8 | uint64(b)
			}
			a.mu.Lock()
			sealed := a.sealIV(bytes.Clone(aad), aad, inner, ivn)
			a.mu.Unlock()
			if !bytes.Equal(sealed, msg) {
				t.Fatalf("sealed = %x\nwant     %x", sealed, msg)
			}
			if got := len(aad) + c.SealedLen(len(inner)); got != len(msg) {
				t.Fatalf("SealedLen gives %d, message is %d", got, len(msg))
			}
			got, err := OpenPayload(c, bytes.Clone(msg), len(aad))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, inner) {
				t.Fatalf("opened %x, want %x", got, inner)
			}
		})
	}
	if n != 1 {
		t.Fatalf("%d IKE vectors, want 1", n)
	}
}
