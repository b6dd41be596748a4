package strongswan

import (
	"crypto/x509"
	"encoding/pem"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mifsec/mifsec/test/strongswan/vici"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("%s differs (go test -update rewrites it):\n%s", name, got)
	}
}

// fullConfig uses every field of the configuration types.
func fullConfig() Config {
	return Config{
		Name:              "full",
		Log:               map[string]int{"ike": 4, "mgr": 0},
		InstallVirtualIP:  No,
		MakeBeforeBreak:   true,
		RetransmitTimeout: 1500 * time.Millisecond,
		RetransmitBase:    1.4,
		RetransmitTries:   2,
		Charon:            []string{"keep_alive = 5s"},
		Connections: []Connection{{
			Name: "c1", LocalAddrs: []string{"198.51.100.2"}, RemoteAddrs: []string{"198.51.100.1", "203.0.113.1"},
			LocalPort: 500, RemotePort: 4500, Proposals: []string{"aes256gcm16-prfsha256-x25519", "aes128-sha256-modp2048"},
			VIPs: []string{"0.0.0.0"}, Pools: []string{"p"}, Mobike: No, Encap: true, Fragmentation: "yes",
			SendCertReq: Yes, Unique: "never", Keyingtries: 3, DPDDelay: 10 * time.Second, DPDTimeout: 30 * time.Second,
			RekeyTime: time.Hour, ReauthTime: -1, OverTime: 90 * time.Second,
			Local:  Auth{Auth: "pubkey", ID: "ue1@example.net", Certs: []string{"ue.pem"}},
			Remote: Auth{Auth: "pubkey", ID: "gw.example.net", CACerts: []string{"ca.pem"}},
			Children: []Child{{
				Name: "net", LocalTS: []string{"dynamic"}, RemoteTS: []string{"192.0.2.0/24", "198.18.0.0/15"},
				ESPProposals: []string{"aes256gcm16-x25519", "aes256gcm16"}, Mode: "tunnel", StartAction: "start",
				DPDAction: "restart", CloseAction: "none", RekeyTime: 20 * time.Minute, LifeTime: 22 * time.Minute,
				RekeyBytes: 1 << 30, RekeyPackets: 1000000,
			}, {Name: "second"}},
			Extra: map[string]string{"aggressive": "no", "dscp": "000000"},
		}},
		Pools: []Pool{{Name: "p", Addrs: "10.45.0.0/24", DNS: []string{"192.0.2.53"}}},
		Secrets: []PSK{
			{Name: "a", IDs: []string{"ue1@example.net", "gw.example.net"}, Secret: vici.Secret(`q"uo\te`)},
			{Secret: vici.Secret("any")},
		},
	}
}

func TestSwanctlConfGolden(t *testing.T) {
	got, err := SwanctlConf(fullConfig())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "full-swanctl.conf", got)
	got, err = SwanctlConf(gwConfig())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "gw-swanctl.conf", got)
}

func TestStrongswanConfGolden(t *testing.T) {
	golden(t, "full-strongswan.conf", StrongswanConf(fullConfig(), "/tmp/mfsw-full"))
	golden(t, "default-strongswan.conf", StrongswanConf(Config{Name: "d"}, "/tmp/mfsw-d"))
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"connection without name", Config{Connections: []Connection{{}}}, "connection without a name"},
		{"child without name", Config{Connections: []Connection{{Name: "c", Children: []Child{{}}}}}, "child without a name"},
		{"pool without addrs", Config{Pools: []Pool{{Name: "p"}}}, `pool "p" needs`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := SwanctlConf(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"aes256gcm16-prfsha256-x25519", "aes256gcm16-prfsha256-x25519"},
		{"192.0.2.0/24, 198.18.0.0/15", "192.0.2.0/24, 198.18.0.0/15"},
		{"%any", "%any"},
		{"ue1@example.net", "ue1@example.net"},
		{"", `""`},
		{"C=CH, O=strongSwan, CN=gw", `"C=CH, O=strongSwan, CN=gw"`},
		{" lead", `" lead"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"x{y}", `"x{y}"`},
		{"x#y", `"x#y"`},
		{"l1\nl2\t", `"l1\nl2\t"`},
	} {
		if got := quote(tc.in); got != tc.want {
			t.Errorf("quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestPSKString(t *testing.T) {
	p := PSK{Name: "x", IDs: []string{"a"}, Secret: vici.Secret("topsecret")}
	for _, s := range []string{p.String(), p.Secret.String()} {
		if strings.Contains(s, "topsecret") || !strings.Contains(s, "[redacted]") {
			t.Fatalf("leak: %s", s)
		}
	}
}

func TestCerts(t *testing.T) {
	ca, err := NewCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Issue("gw", CertOptions{
		DNSNames: []string{"gw.example.net"}, IPs: []netip.Addr{netip.MustParseAddr("198.51.100.1")},
		Emails: []string{"gw@example.net"}, Lifetime: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for _, name := range []string{"gw.example.net", "198.51.100.1"} {
		if _, err := c.Cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := c.Cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "other.example.net"}); err == nil {
		t.Error("verified for a name it does not hold")
	}
	if !ca.Cert.IsCA || c.Cert.IsCA || c.Cert.Subject.CommonName != "gw" || c.Cert.EmailAddresses[0] != "gw@example.net" {
		t.Errorf("fields: CA %v, leaf CA %v, CN %q", ca.Cert.IsCA, c.Cert.IsCA, c.Cert.Subject.CommonName)
	}
	// The PEMs are what swanctl expects in x509ca/, x509/ and ecdsa/.
	for _, b := range [][]byte{ca.PEM, c.PEM} {
		if blk, _ := pem.Decode(b); blk == nil || blk.Type != "CERTIFICATE" {
			t.Fatalf("certificate PEM %q", b)
		}
	}
	blk, _ := pem.Decode(c.KeyPEM())
	if blk == nil || blk.Type != "EC PRIVATE KEY" {
		t.Fatal("key PEM is not SEC1")
	}
	k, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil || !k.PublicKey.Equal(c.Cert.PublicKey) || !k.Equal(c.Key()) {
		t.Fatalf("key does not match the certificate: %v", err)
	}
	if s := c.String() + ca.String(); strings.Contains(s, "PRIVATE") || !strings.Contains(s, "CN=gw") {
		t.Fatalf("String: %s", s)
	}
	kp := c.KeyPEM()
	c.Destroy()
	for _, b := range kp {
		if b != 0 {
			t.Fatal("Destroy left key bytes")
		}
	}
	if c.Key() != nil || c.KeyPEM() != nil {
		t.Fatal("Destroy kept the key")
	}
}
