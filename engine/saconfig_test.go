package engine

import (
	"bytes"
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mifsec/mifsec/engine/iface/ifacetest"
	"github.com/mifsec/mifsec/engine/sa"
	"github.com/mifsec/mifsec/engine/transform"
)

// TestSATemplate: the IKE SAs of a responder connection share one
// sa.Config template (children, selectors, PSK), rebuilt when the connection, a pool
// or a secret changes.
func TestSATemplate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gw := scaleGateway(t, &wire{})
	config := func(id string) *sa.Config {
		t.Helper()
		cfg, err := do(ctx, gw, func(st *state) (*sa.Config, error) {
			return st.saTemplate(st.connections[id])
		})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	shared := func(a, b *sa.Config) bool {
		return &a.Children[0] == &b.Children[0] && &a.Children[0].LocalTS[0] == &b.Children[0].LocalTS[0] &&
			&a.Auth.PSK.Bytes()[0] == &b.Auth.PSK.Bytes()[0]
	}
	// The responders share the template itself: their path tag and
	// addresses go to the machine (sa.IKE.Place).
	a, b := config("ues"), config("ues")
	if a != b || !shared(a, b) {
		t.Fatal("two IKE SAs of one connection do not share the template's children and PSK")
	}
	if a.Children[0].Mode == 0 {
		t.Fatal("template child mode left for the machines to default (they would write the shared slice)")
	}
	dns := netip.MustParseAddr("192.0.2.53")
	for _, step := range []struct {
		name   string
		change func() error
		check  func(c *sa.Config) bool
	}{
		{"pool updated", func() error {
			_, err := gw.UpdatePool(ctx, "ue", PoolSpec{DNS: []netip.Addr{dns}}, []string{"dns_servers"})
			return err
		}, func(c *sa.Config) bool { return slices.Equal(c.DNS, []netip.Addr{dns}) }},
		{"secret created", func() error {
			_, err := gw.CreateSecret(ctx, "other", SecretPSK, []byte("another-long-shared-secret"))
			return err
		}, func(*sa.Config) bool { return true }},
		{"connection updated", func() error {
			_, err := gw.UpdateConnection(ctx, "ues", ConnectionSpec{Children: []ChildSpec{{Name: "net", LocalTS: []string{"198.18.1.0/24"}}}}, []string{"children"})
			return err
		}, func(c *sa.Config) bool {
			return c.Children[0].LocalTS[0].Start == netip.MustParseAddr("198.18.1.0")
		}},
	} {
		if err := step.change(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		c := config("ues")
		if shared(b, c) {
			t.Errorf("%s: template not rebuilt", step.name)
		}
		if !step.check(c) {
			t.Errorf("%s: template does not show the change", step.name)
		}
		if !shared(c, config("ues")) {
			t.Errorf("%s: template not kept after the rebuild", step.name)
		}
		b = c
	}
}

// TestLocalForCache: route lookups towards a peer are reused for
// routeSrcTTL and forgotten on link notifications.
func TestLocalForCache(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	now := time.Unix(1e9, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	links := ifacetest.New()
	links.AddLink("eth0", "192.0.2.2/24")
	e, err := New(Config{StateDir: t.TempDir(), Links: links, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	lookups := 0
	src := netip.MustParseAddr("192.0.2.2")
	if _, err := do(ctx, e, func(st *state) (struct{}, error) {
		st.rt.routeGet = func(netip.Addr) ([]netip.Addr, error) { lookups++; return []netip.Addr{src}, nil }
		return struct{}{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	peer := netip.MustParseAddr("198.51.100.7")
	local := func() {
		t.Helper()
		got, err := do(ctx, e, func(st *state) (netip.Addr, error) { return st.localFor(&connection{}, peer) })
		if err != nil || got != src {
			t.Fatalf("localFor = %v, %v; want %v", got, err, src)
		}
	}
	for _, step := range []struct {
		name  string
		do    func()
		count int // lookups after the step and two localFor calls
	}{
		{"first", func() {}, 1},
		{"within the TTL", func() { mu.Lock(); now = now.Add(routeSrcTTL / 2); mu.Unlock() }, 1},
		{"TTL over", func() { mu.Lock(); now = now.Add(routeSrcTTL); mu.Unlock() }, 2},
		{"link notification", func() { links.AddLink("eth1", "203.0.113.2/24") }, 3},
	} {
		step.do()
		deadline := time.Now().Add(5 * time.Second)
		for {
			local()
			local()
			n, _ := do(ctx, e, func(*state) (int, error) { return lookups, nil })
			if n == step.count {
				break
			}
			if n > step.count || time.Now().After(deadline) {
				t.Fatalf("%s: %d route lookups, want %d", step.name, n, step.count)
			}
			time.Sleep(10 * time.Millisecond) // the notification is on its way
		}
	}
}

// TestConnLogger: a connection's IKE logger adds its "connection" field,
// made only when a line is logged.
func TestConnLogger(t *testing.T) {
	var buf bytes.Buffer
	base := hclog.New(&hclog.LoggerOptions{Name: "e", Output: &buf, Level: hclog.Info}).Named("ike")
	l := &connLogger{Logger: base, conn: "c7"}
	l.Debug("hidden")
	if l.IsDebug() || !l.IsInfo() || l.with != nil {
		t.Fatalf("before any line: debug %v info %v made %v", l.IsDebug(), l.IsInfo(), l.with != nil)
	}
	for _, tc := range []struct {
		log  func()
		want []string
	}{
		{func() { l.Info("up", "k", 1) }, []string{"[INFO]  e.ike: up:", "connection=c7", "k=1"}},
		{func() { l.Warn("odd") }, []string{"[WARN]  e.ike: odd:", "connection=c7"}},
		{func() { l.With("clone_of", "x").Error("bad") }, []string{"[ERROR] e.ike: bad:", "connection=c7", "clone_of=x"}},
		{func() { l.Named("sub").Info("named") }, []string{"[INFO]  e.ike.sub: named:", "connection=c7"}},
	} {
		buf.Reset()
		tc.log()
		for _, w := range tc.want {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("logged %q, want %q in it", buf.String(), w)
			}
		}
	}
}

// TestPSKShared: the sa.Config templates of the connections using one
// PSK share one copy of it, zeroed when the secret is deleted (copies per
// template were never zeroed).
func TestPSKShared(t *testing.T) {
	e, _ := newEngine(t, t.TempDir())
	ctx := tctx(t)
	if _, err := e.CreateSecret(ctx, "psk", SecretPSK, []byte("a-long-shared-secret")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if _, err := e.CreateConnection(ctx, id, ConnectionSpec{Role: RoleResponder, LocalID: "@gw.example", RemoteID: "%any",
			LocalAuth: AuthSpec{PSKSecret: "psk"}, RemoteAuth: AuthSpec{PSKSecret: "psk"},
			Children: []ChildSpec{{Name: "net", LocalTS: []string{"198.18.0.0/24"}}}}); err != nil {
			t.Fatal(err)
		}
	}
	psks, err := do(ctx, e, func(st *state) ([]transform.Secret, error) {
		var out []transform.Secret
		for _, id := range []string{"a", "b"} {
			cfg, err := st.saTemplate(st.connections[id])
			if err != nil {
				return nil, err
			}
			out = append(out, cfg.Auth.PSK)
		}
		return out, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if psks[0].Len() == 0 || &psks[0].Bytes()[0] != &psks[1].Bytes()[0] {
		t.Fatal("the two connections' templates do not share the PSK")
	}
	for _, id := range []string{"a", "b"} {
		if err := e.DeleteConnection(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.DeleteSecret(ctx, "psk"); err != nil {
		t.Fatal(err)
	}
	if psks[0].Len() != 0 {
		t.Fatal("the templates' PSK outlived the secret")
	}
}
