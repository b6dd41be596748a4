package transform

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/mifsec/mifsec/engine/ike"
)

// TestRedaction formats every type that holds key material with %v, %+v,
// %#v, %s, %x, %q, directly, through a pointer and inside structs with
// exported and unexported fields, and fails if any key byte shows up, as
// raw bytes, as hex or as a Go byte list.
func TestRedaction(t *testing.T) {
	// Distinctive key bytes: 0xA5, 0x5A, ... patterns unlikely in addresses.
	key := bytes.Repeat([]byte{0xA5, 0x5A, 0xC3, 0x3C}, 16)
	suite := Suite{Protocol: ike.ProtoIKE, Encr: ike.EncrAESGCM16, KeyBits: 256, PRF: ike.PRFHMACSHA256, Group: ike.GroupCurve25519}
	cbcSuite := Suite{Protocol: ike.ProtoIKE, Encr: ike.EncrAESCBC, KeyBits: 256, Integ: ike.IntegHMACSHA256_128, PRF: ike.PRFHMACSHA256, Group: ike.GroupCurve25519}
	secret := NewSecret(key)
	keys, err := DeriveIKEKeys(suite, secret, key[:16], key[16:32], key[:8], key[8:16])
	if err != nil {
		t.Fatal(err)
	}
	child, err := DeriveChildKeys(keys, Suite{Protocol: ike.ProtoESP, Encr: ike.EncrAESCBC, KeyBits: 256, Integ: ike.IntegHMACSHA512_256}, secret, key[:16], key[:16])
	if err != nil {
		t.Fatal(err)
	}
	gcm, _ := NewCipher(suite, NewSecret(key[:36]), Secret{})
	cbc, _ := NewCipher(cbcSuite, NewSecret(key[:32]), NewSecret(key[:32]))
	spec, _ := lookupGroup(ike.GroupCurve25519)
	dh, err := newDHKey(ike.GroupCurve25519, spec, bytes.Clone(key[:32]))
	if err != nil {
		t.Fatal(err)
	}
	modp, _ := GenerateDH(ike.GroupMODP2048, nil)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), nil)
	signer, _ := NewSigner(ek)

	// Every secret whose bytes must not appear.
	var needles [][]byte
	needles = append(needles, key, key[:16])
	for _, s := range []Secret{keys.D, keys.EI, keys.ER, keys.PI, keys.PR, child.EncrI, child.IntegI, child.EncrR, child.IntegR} {
		needles = append(needles, s.Bytes())
	}
	needles = append(needles, modp.priv.scalar.Bytes(), ek.D.Bytes())

	type exported struct {
		S Secret
		K Keys
		C ChildKeys
		X Cipher
		D *DHKey
		G *Signer
	}
	type unexported struct {
		s Secret
		k Keys
		c ChildKeys
		x Cipher
		d DHKey
		m DHKey
		g Signer
	}
	values := map[string]any{
		"Secret": secret, "*Secret": &secret, "Keys": *keys, "*Keys": keys, "ChildKeys": *child, "*ChildKeys": child,
		"gcm": gcm, "cbc": cbc, "*DHKey": dh, "modp": modp, "*Signer": signer,
		"exported":   exported{secret, *keys, *child, gcm, dh, signer},
		"*exported":  &exported{secret, *keys, *child, cbc, modp, signer},
		"unexported": unexported{secret, *keys, *child, cbc, *dh, *modp, *signer},
		"slice":      []any{secret, keys, cbc},
		"map":        map[string]Secret{"k": secret},
	}
	for name, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
			out := fmt.Sprintf(verb, v)
			for _, n := range needles {
				if len(n) < 8 {
					continue
				}
				probe := n[:8]
				lower := strings.ToLower(out)
				if bytes.Contains([]byte(out), probe) ||
					strings.Contains(lower, hex.EncodeToString(probe)) ||
					strings.Contains(out, strings.Trim(fmt.Sprint(probe), "[]")) ||
					strings.Contains(lower, fmt.Sprintf("%#v", probe)[len("[]byte{"):len("[]byte{")+20]) {
					t.Fatalf("%s with %s leaks key bytes: %s", name, verb, out)
				}
			}
		}
		// Methods cannot run on unexported fields: there only addresses show.
		if !strings.Contains(fmt.Sprintf("%+v", v), redacted) && name != "unexported" {
			t.Errorf("%s: %%+v does not say %s: %+v", name, redacted, v)
		}
	}
}
