package engine

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func tctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func wantReason(t *testing.T, err error, code Code, reason, field string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != code || e.Reason != reason || (field != "" && e.Field != field) {
		t.Fatalf("got %v (%+v), want %v %s %s", err, e, code, reason, field)
	}
}

func TestSecrets(t *testing.T) {
	e, _ := newEngine(t, t.TempDir())
	in, err := e.CreateSecret(tctx(t), "psk", SecretPSK, []byte("correct horse battery"))
	if err != nil || in.Description != "21-byte pre-shared key" {
		t.Fatalf("%+v %v", in, err)
	}
	_, err = e.CreateSecret(tctx(t), "short", SecretPSK, []byte("abc"))
	wantReason(t, err, InvalidArgument, "INVALID_SECRET_VALUE", "secret.value")
	_, err = e.CreateSecret(tctx(t), "key", SecretPrivateKey, []byte("not pem"))
	wantReason(t, err, InvalidArgument, "INVALID_SECRET_VALUE", "secret.value")
	_, err = e.CreateSecret(tctx(t), "psk", SecretPSK, []byte("another long value"))
	wantReason(t, err, AlreadyExists, "SECRET_ALREADY_EXISTS", "secret_id")
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	kin, err := e.CreateSecret(tctx(t), "key", SecretPrivateKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil || kin.Description != "ECDSA P-256 private key" {
		t.Fatalf("%+v %v", kin, err)
	}
	list, more, err := e.ListSecrets(tctx(t), "", 10)
	if err != nil || more || len(list) != 2 || list[0].ID != "key" {
		t.Fatalf("%+v %v", list, err)
	}
	// Nothing printable of the engine's secret holds the value.
	e2, err := do(tctx(t), e, func(st *state) (string, error) {
		return fmt.Sprintf("%v %+v %#v", st.secrets["psk"], st.secrets["psk"], *st.secrets["psk"]), nil
	})
	if err != nil || strings.Contains(e2, "horse") {
		t.Fatalf("secret leaked in %q", e2)
	}
	if err := e.DeleteSecret(tctx(t), "psk"); err != nil {
		t.Fatal(err)
	}
	wantReason(t, e.DeleteSecret(tctx(t), "psk"), NotFound, "SECRET_NOT_FOUND", "name")
}

func TestPools(t *testing.T) {
	e, _ := newEngine(t, t.TempDir())
	p, err := e.CreatePool(tctx(t), "ue", PoolSpec{Ranges: []string{"10.45.0.0/24", "fd00:45::/120"}, DNS: []netip.Addr{netip.MustParseAddr("192.0.2.53")}})
	if err != nil || p.Size != 254+256 {
		t.Fatalf("%+v %v", p, err)
	}
	_, err = e.CreatePool(tctx(t), "other", PoolSpec{Ranges: []string{"10.45.0.100-10.45.1.5"}})
	wantReason(t, err, InvalidArgument, "OVERLAPPING_POOL_RANGES", "pool.ranges[0]")
	_, err = e.CreatePool(tctx(t), "self", PoolSpec{Ranges: []string{"10.9.0.0/24", "10.9.0.128/25"}})
	wantReason(t, err, InvalidArgument, "OVERLAPPING_POOL_RANGES", "pool.ranges[1]")
	_, err = e.CreatePool(tctx(t), "bad", PoolSpec{Ranges: []string{"10.9.0.9-10.9.0.1"}})
	wantReason(t, err, InvalidArgument, "INVALID_POOL_RANGE", "pool.ranges[0]")
	_, err = e.CreatePool(tctx(t), "empty", PoolSpec{})
	wantReason(t, err, InvalidArgument, "INVALID_POOL_RANGE", "pool.ranges")

	// Same identity, same address; another identity, the next one.
	addrs, _ := do(tctx(t), e, func(st *state) ([]netip.Addr, error) {
		pl := st.pools["ue"]
		a1, _ := pl.lease("@alice", false, time.Now())
		b1, _ := pl.lease("@bob", false, time.Now())
		pl.release("@alice", a1)
		a2, _ := pl.lease("@alice", false, time.Now())
		a6, _ := pl.lease("@alice", true, time.Now())
		return []netip.Addr{a1, b1, a2, a6}, nil
	})
	if addrs[0].String() != "10.45.0.1" || addrs[1].String() != "10.45.0.2" || addrs[2] != addrs[0] || addrs[3].String() != "fd00:45::" {
		t.Fatalf("leases %v", addrs)
	}
	// Shrinking ranges below an online lease is refused.
	_, err = e.UpdatePool(tctx(t), "ue", PoolSpec{Ranges: []string{"10.45.0.128/25"}}, []string{"ranges"})
	wantReason(t, err, FailedPrecondition, "LEASE_IN_USE", "pool.ranges")
}

func TestPoolExhaustion(t *testing.T) {
	e, _ := newEngine(t, t.TempDir())
	if _, err := e.CreatePool(tctx(t), "tiny", PoolSpec{Ranges: []string{"10.1.0.1-10.1.0.2"}}); err != nil {
		t.Fatal(err)
	}
	errs, _ := do(tctx(t), e, func(st *state) ([]error, error) {
		pl := st.pools["tiny"]
		var out []error
		for _, id := range []string{"a", "b", "c"} {
			_, err := pl.lease(id, false, time.Now())
			out = append(out, err)
		}
		return out, nil
	})
	if errs[0] != nil || errs[1] != nil || errs[2] == nil {
		t.Fatalf("exhaustion: %v", errs)
	}
}

func TestConnectionValidation(t *testing.T) {
	e, _ := newEngine(t, t.TempDir())
	if _, err := e.CreateSecret(tctx(t), "psk", SecretPSK, []byte("0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreatePool(tctx(t), "ue", PoolSpec{Ranges: []string{"10.45.0.0/24"}}); err != nil {
		t.Fatal(err)
	}
	good := func() ConnectionSpec {
		return ConnectionSpec{Role: RoleResponder, LocalID: "@gw.example", RemoteID: "%any",
			LocalAuth: AuthSpec{PSKSecret: "psk"}, RemoteAuth: AuthSpec{PSKSecret: "psk"}, Pool: "ue",
			Children: []ChildSpec{{Name: "net", LocalTS: []string{"192.0.2.0/24"}, RemoteTS: []string{"0.0.0.0/0"}}}}
	}
	if _, err := e.CreateConnection(tctx(t), "gw", good()); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mod    func(*ConnectionSpec)
		reason string
		field  string
	}{
		{"bad ike proposal", func(s *ConnectionSpec) { s.IKEProposals = []string{"aes256gcm16-prfsha256-bogus"} }, "INVALID_PROPOSAL", "connection.ike_proposals"},
		{"bad esp proposal", func(s *ConnectionSpec) { s.Children[0].ESPProposals = []string{"aes128-frobnicate"} }, "INVALID_PROPOSAL", "connection.children[0].esp_proposals"},
		{"unknown secret", func(s *ConnectionSpec) { s.LocalAuth.PSKSecret = "nope" }, "SECRET_NOT_FOUND", "connection.local_auth.psk_secret"},
		{"unknown pool", func(s *ConnectionSpec) { s.Pool = "nope" }, "POOL_NOT_FOUND", "connection.pool"},
		{"selector families", func(s *ConnectionSpec) { s.Children[0].RemoteTS = []string{"::/0"} }, "SELECTOR_FAMILY_MISMATCH", "connection.children[0].remote_ts"},
		{"bad selector", func(s *ConnectionSpec) { s.Children[0].LocalTS = []string{"10.0.0.0/8[tcp/99999]"} }, "INVALID_TRAFFIC_SELECTOR", "connection.children[0].local_ts[0]"},
		{"bad identity", func(s *ConnectionSpec) { s.LocalID = "%any" }, "INVALID_IDENTITY", "connection.local_id"},
		{"no role", func(s *ConnectionSpec) { s.Role = 0 }, "INVALID_ROLE", "connection.role"},
		{"initiator without peer", func(s *ConnectionSpec) { s.Role = RoleInitiator; s.Pool = "" }, "MISSING_FIELD", "connection.remote_addresses"},
		{"no auth", func(s *ConnectionSpec) { s.RemoteAuth = AuthSpec{} }, "MISSING_FIELD", "connection.remote_auth"},
		{"duplicate child", func(s *ConnectionSpec) { s.Children = append(s.Children, s.Children[0]) }, "DUPLICATE_CHILD", "connection.children[1].name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := good()
			c.mod(&s)
			_, err := e.CreateConnection(tctx(t), "x", s)
			wantReason(t, err, InvalidArgument, c.reason, c.field)
		})
	}
	wantReason(t, e.DeleteSecret(tctx(t), "psk"), FailedPrecondition, "SECRET_IN_USE", "name")
	wantReason(t, e.DeletePool(tctx(t), "ue"), FailedPrecondition, "POOL_IN_USE", "name")
	got, err := e.GetConnection(tctx(t), "gw")
	if err != nil || got.IKEProposals[0] != DefaultIKEProposals[0] || got.Children[0].Mode == 0 || got.RemotePort != 500 {
		t.Fatalf("defaults not applied: %+v %v", got, err)
	}
}

func TestSelectorSyntax(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.0/8":            "10.0.0.0/8",
		"10.1.2.3":              "10.1.2.3/32",
		"10.0.0.0/8[tcp/443]":   "10.0.0.0/8[6/443]",
		"::/0[udp/1000-2000]":   "::/0[17/1000-2000]",
		"192.0.2.0/24[icmp]":    "192.0.2.0/24[1]",
		"192.0.2.0/24[47/%any]": "192.0.2.0/24[47]",
	} {
		s, err := ParseSelector(in)
		if err != nil || FormatSelector(s) != want {
			t.Errorf("%q: %q %v, want %q", in, FormatSelector(s), err, want)
		}
	}
	for _, bad := range []string{"", "10.0.0.0/33", "10.0.0.0/8[tcp", "10.0.0.0/8[bogus]", "10.0.0.0/8[/80]", "10.0.0.0/8[tcp/9-1]"} {
		if _, err := ParseSelector(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestObjectsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	e, _ := newEngine(t, dir)
	e.CreateSecret(tctx(t), "psk", SecretPSK, []byte("0123456789abcdef"))
	e.CreatePool(tctx(t), "ue", PoolSpec{Ranges: []string{"10.45.0.0/24"}})
	if _, err := e.CreateConnection(tctx(t), "gw", ConnectionSpec{Role: RoleResponder, RemoteID: "%any",
		LocalAuth: AuthSpec{PSKSecret: "psk"}, RemoteAuth: AuthSpec{PSKSecret: "psk"}, Pool: "ue"}); err != nil {
		t.Fatal(err)
	}
	do(tctx(t), e, func(st *state) (netip.Addr, error) { return st.pools["ue"].lease("@alice", false, time.Now()) })
	e.CreatePool(tctx(t), "x", PoolSpec{Ranges: []string{"10.99.0.0/24"}}) // persists the lease too
	e.Close()
	e2, _ := newEngine(t, dir)
	c, err := e2.GetConnection(tctx(t), "gw")
	if err != nil || c.Pool != "ue" {
		t.Fatalf("%+v %v", c, err)
	}
	p, err := e2.GetPool(tctx(t), "ue")
	if err != nil || len(p.Leases) != 1 || p.Leases[0].Identity != "@alice" || p.InUse != 0 {
		t.Fatalf("%+v %v", p, err)
	}
	if s, err := e2.GetSecret(tctx(t), "psk"); err != nil || len(s.UsedBy) != 1 {
		t.Fatalf("%+v %v", s, err)
	}
	fi, err := osStat(dir + "/secrets.json")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secrets file mode %v %v", fi, err)
	}
}
