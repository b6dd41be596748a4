package transform

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/ike"
)

func TestPSKAuth(t *testing.T) {
	p := mustPRF(t, ike.PRFHMACSHA256)
	msg, nonce, skp, id := []byte("IKE_SA_INIT bytes"), testKey(32, 1), testKey(32, 2), []byte{2, 0, 0, 0, 'a', '.', 'b'}
	so := SignedOctets(p, msg, nonce, NewSecret(skp), id)
	// RealMessage | Nonce | prf(SK_p, RestOfIDPayload) (RFC 7296 §2.15).
	want := append(append(bytes.Clone(msg), nonce...), hmac256(skp, id)...)
	if !bytes.Equal(so, want) {
		t.Fatal("signed octets layout")
	}
	psk := []byte("correct horse battery staple")
	auth := PSKAuth(p, NewSecret(psk), so)
	if !bytes.Equal(auth, hmac256(hmac256(psk, []byte("Key Pad for IKEv2")), so)) {
		t.Fatal("PSK AUTH differs from prf(prf(secret, pad), octets)")
	}
	if err := VerifyPSKAuth(p, NewSecret(psk), so, auth); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{auth[:31], append(bytes.Clone(auth), 0), append([]byte{auth[0] ^ 1}, auth[1:]...)} {
		err := VerifyPSKAuth(p, NewSecret(psk), so, bad)
		var e *Error
		if !errors.As(err, &e) || e.Notify != ike.AuthenticationFailed {
			t.Fatalf("bad AUTH: %v", err)
		}
	}
	if VerifyPSKAuth(p, NewSecret([]byte("wrong")), so, auth) == nil {
		t.Fatal("wrong PSK accepted")
	}
}

func testSigners(t *testing.T) map[string]crypto.Signer {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]crypto.Signer{"p256": p256, "p384": p384, "p521": p521, "ed25519": ed, "rsa": rk}
}

// TestAlgorithmIDs compares our DER with the AlgorithmIdentifiers of
// RFC 7427 Appendix A and RFC 8420.
func TestAlgorithmIDs(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"ecdsa-with-sha256", algorithmID(oidECDSASHA256, 0), "300a06082a8648ce3d040302"},
		{"ecdsa-with-sha384", algorithmID(oidECDSASHA384, 0), "300a06082a8648ce3d040303"},
		{"ecdsa-with-sha512", algorithmID(oidECDSASHA512, 0), "300a06082a8648ce3d040304"},
		{"ed25519", algorithmID(oidEd25519, 0), "300506032b6570"},
		{"sha256WithRSAEncryption", algorithmID(oidSHA256WithRSA, 0), "300d06092a864886f70d01010b0500"},
		{"RSASSA-PSS SHA-256", algorithmID(oidRSAPSS, crypto.SHA256),
			"304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120"},
	}
	for _, c := range cases {
		if hex.EncodeToString(c.got) != c.want {
			t.Errorf("%s: %x, want %s", c.name, c.got, c.want)
		}
	}
}

func TestSignatures(t *testing.T) {
	octets := []byte("signed octets of IKE_AUTH")
	keys := testSigners(t)
	wantHash := map[string]ike.HashAlgorithm{"p256": ike.HashSHA256, "p384": ike.HashSHA384, "p521": ike.HashSHA512, "ed25519": ike.HashIdentity, "rsa": ike.HashSHA256}
	for name, k := range keys {
		s, err := NewSigner(k)
		if err != nil {
			t.Fatal(err)
		}
		if s.Hash() != wantHash[name] {
			t.Errorf("%s: hash %v", name, s.Hash())
		}
		auth, err := s.Sign(nil, octets)
		if err != nil {
			t.Fatal(err)
		}
		if int(auth[0]) != len(s.algID) || !bytes.Equal(auth[1:1+auth[0]], s.algID) {
			t.Fatalf("%s: AUTH data does not start with length | AlgorithmIdentifier", name)
		}
		if err := VerifySignature(k.Public(), octets, auth); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if VerifySignature(k.Public(), append(bytes.Clone(octets), 'x'), auth) == nil {
			t.Fatalf("%s: other octets verify", name)
		}
		bad := bytes.Clone(auth)
		bad[len(bad)-1] ^= 1
		if VerifySignature(k.Public(), octets, bad) == nil {
			t.Fatalf("%s: damaged signature verifies", name)
		}
		for other, ok := range keys {
			if other != name && VerifySignature(ok.Public(), octets, auth) == nil {
				t.Fatalf("%s signature verifies with the %s key", name, other)
			}
		}
	}
	// strongSwan's default for RSA under method 14: PKCS#1 v1.5 with SHA-256.
	rk := keys["rsa"].(*rsa.PrivateKey)
	d := sha256.Sum256(octets)
	sig, _ := rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA256, d[:])
	alg := algorithmID(oidSHA256WithRSA, 0)
	auth := append(append([]byte{byte(len(alg))}, alg...), sig...)
	if err := VerifySignature(rk.Public(), octets, auth); err != nil {
		t.Fatalf("PKCS#1 v1.5: %v", err)
	}
	for _, bad := range [][]byte{nil, {0}, {50, 1, 2}, append([]byte{3}, 0x30, 0x01, 0x05)} {
		if err := VerifySignature(rk.Public(), octets, bad); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("malformed AUTH %x: %v", bad, err)
		}
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := NewSigner(small); err == nil {
		t.Error("1024-bit RSA accepted")
	}
}

// testCA issues certificates for the chain tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func issue(t *testing.T, parent *testCA, tmpl *x509.Certificate) *testCA {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, parentCert := k, tmpl
	if parent != nil {
		signer, parentCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, &k.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{c, k}
}

func TestCertificates(t *testing.T) {
	now := time.Now()
	ca := func(n int64, name string) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(n), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign}
	}
	root := issue(t, nil, ca(1, "root"))
	inter := issue(t, root, ca(2, "intermediate"))
	other := issue(t, nil, ca(3, "other root"))
	leaf := issue(t, inter, &x509.Certificate{SerialNumber: big.NewInt(4), Subject: pkix.Name{CommonName: "gw"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), DNSNames: []string{"gw.example.net"},
		IPAddresses: []net.IP{net.ParseIP("192.0.2.1")}, EmailAddresses: []string{"ops@example.net"},
		KeyUsage: x509.KeyUsageDigitalSignature})

	store, err := NewTrustStore(root.cert)
	if err != nil {
		t.Fatal(err)
	}
	got, err := store.Verify([][]byte{leaf.cert.Raw, inter.cert.Raw}, now)
	if err != nil || !got.Equal(leaf.cert) {
		t.Fatalf("valid chain: %v", err)
	}
	for name, c := range map[string]struct {
		chain [][]byte
		at    time.Time
	}{
		"missing intermediate": {[][]byte{leaf.cert.Raw}, now},
		"expired":              {[][]byte{leaf.cert.Raw, inter.cert.Raw}, now.Add(2 * time.Hour)},
		"other root":           {[][]byte{other.cert.Raw}, now},
		"garbage":              {[][]byte{{0x30, 0x03, 1, 2, 3}}, now},
		"garbage intermediate": {[][]byte{leaf.cert.Raw, {1}}, now},
		"empty":                {nil, now},
	} {
		if _, err := store.Verify(c.chain, c.at); !errors.Is(err, ErrBadCertificate) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := NewTrustStore(leaf.cert); err == nil {
		t.Error("end-entity certificate accepted as trust anchor")
	}
	// CERTREQ = SHA-1 of the CA's SubjectPublicKeyInfo (RFC 7296 §3.7).
	h := sha1.Sum(root.cert.RawSubjectPublicKeyInfo)
	if !bytes.Equal(store.CertReq(), h[:]) || !Requests(append(bytes.Repeat([]byte{9}, 20), h[:]...), root.cert) || Requests(h[:], other.cert) {
		t.Error("CERTREQ hashes")
	}
	// The leaf's key verifies AUTH made by its private key.
	s, _ := NewSigner(leaf.key)
	auth, _ := s.Sign(nil, []byte("octets"))
	if err := VerifySignature(got.PublicKey, []byte("octets"), auth); err != nil {
		t.Error(err)
	}
	idCases := []struct {
		typ  ike.IDType
		data []byte
		ok   bool
	}{
		{ike.IDFQDN, []byte("GW.example.net"), true},
		{ike.IDFQDN, []byte("other.example.net"), false},
		{ike.IDIPv4Addr, []byte{192, 0, 2, 1}, true},
		{ike.IDIPv4Addr, []byte{192, 0, 2, 2}, false},
		{ike.IDIPv6Addr, []byte{192, 0, 2, 1}, false},
		{ike.IDRFC822Addr, []byte("ops@example.net"), true},
		{ike.IDDERASN1DN, leaf.cert.RawSubject, true},
		{ike.IDDERASN1DN, root.cert.RawSubject, false},
		{ike.IDKeyID, []byte("gw"), false},
	}
	for _, c := range idCases {
		if err := MatchID(got, c.typ, c.data); (err == nil) != c.ok {
			t.Errorf("MatchID(%v, %q) = %v", c.typ, c.data, err)
		}
	}
}
