package sa

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/transform"
)

// TestKDFVectors runs the NIST CAVP IKEv2 KDF vectors through deriveIKE, the
// path both roles use: SKEYSEED = prf(Ni | Nr, g^ir), then
// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED,
// Ni | Nr | SPIi | SPIr) (RFC 7296 §2.14).
func TestKDFVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/ikev2_kdf_sha2_cavp.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Vectors []struct {
			Name, PRF, Ni, Nr, Gir, Skeyseed, Spii, Spir, Dkm string
		} `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	h := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			var id ike.PRFID
			var integ string
			switch {
			case strings.Contains(v.PRF, "256"):
				id, integ = ike.PRFHMACSHA256, "sha256"
			case strings.Contains(v.PRF, "384"):
				id, integ = ike.PRFHMACSHA384, "sha384"
			case strings.Contains(v.PRF, "512"):
				id, integ = ike.PRFHMACSHA512, "sha512"
			default:
				t.Fatalf("PRF %q", v.PRF)
			}
			props := mustProps(t, "aes256-"+integ+"-x25519", ike.ProtoIKE)
			suite, err := transform.SuiteOf(props[0])
			if err != nil {
				t.Fatal(err)
			}
			prf, _ := transform.NewPRF(id)
			skeyseed := transform.SKEYSEED(prf, h(v.Ni), h(v.Nr), transform.NewSecret(h(v.Gir)))
			if !bytes.Equal(skeyseed.Bytes(), h(v.Skeyseed)) {
				t.Fatalf("SKEYSEED %x", skeyseed.Bytes())
			}
			ss := &session{spii: binary.BigEndian.Uint64(h(v.Spii)), spir: binary.BigEndian.Uint64(h(v.Spir)), initiator: true}
			if err := deriveIKE(ss, suite, skeyseed, h(v.Ni), h(v.Nr)); err != nil {
				t.Fatal(err)
			}
			k := ss.keys
			var got []byte
			for _, s := range []transform.Secret{k.D, k.AI, k.AR, k.EI, k.ER, k.PI, k.PR} {
				got = append(got, s.Bytes()...)
			}
			want := h(v.Dkm)
			n := min(len(got), len(want))
			if n < 64 || !bytes.Equal(got[:n], want[:n]) {
				t.Fatalf("key material differs from DKM (compared %d octets)", n)
			}
		})
	}
}
