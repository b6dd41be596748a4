package engine

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/iface/ifacetest"
	"github.com/mifsec/mifsec/engine/sa"
)

// TestMemoryTrim: free heap memory goes back to the kernel once a whole
// interval passed without SA churn after some, once per quiet spell; an
// idle engine never trims, and MemoryTrim < 0 turns it off.
func TestMemoryTrim(t *testing.T) {
	w := &wire{}
	var gwTrims, ueTrims atomic.Int64
	mk := func(addr string, trim time.Duration, n *atomic.Int64) *Engine {
		links := ifacetest.New()
		links.AddLink("eth0", addr+"/24")
		e, err := New(Config{StateDir: t.TempDir(), Links: links, Transport: w.end(addr), MemoryTrim: trim,
			Retransmit: sa.Retransmit{Timeout: 200 * time.Millisecond, Factor: 1.5, Tries: 4}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		if _, err := do(tctx(t), e, func(st *state) (struct{}, error) {
			st.trim.free = func() { n.Add(1) }
			return struct{}{}, nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.CreateInterface(tctx(t), "wan", InterfaceSpec{Link: "eth0", AccessType: AccessWired}, false); err != nil {
			t.Fatal(err)
		}
		if _, err := e.CreateSecret(tctx(t), "psk", SecretPSK, []byte("a-long-shared-secret")); err != nil {
			t.Fatal(err)
		}
		return e
	}
	const every = 20 * time.Millisecond
	gw := mk("192.0.2.1", every, &gwTrims)
	ue := mk("192.0.2.2", -1, &ueTrims)
	time.Sleep(5 * every)
	if n := gwTrims.Load(); n != 0 {
		t.Fatalf("an engine without SAs trimmed %d times", n)
	}
	if _, err := gw.CreateConnection(tctx(t), "ues", ConnectionSpec{Role: RoleResponder, LocalID: "@gw.example", RemoteID: "%any",
		LocalAuth: AuthSpec{PSKSecret: "psk"}, RemoteAuth: AuthSpec{PSKSecret: "psk"},
		Children: []ChildSpec{{Name: "net", LocalTS: []string{"198.18.0.0/24"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ue.CreateConnection(tctx(t), "gw", ConnectionSpec{Role: RoleInitiator, LocalID: "@ue.example", RemoteID: "@gw.example",
		LocalAuth: AuthSpec{PSKSecret: "psk"}, RemoteAuth: AuthSpec{PSKSecret: "psk"}, RemoteAddrs: []string{"192.0.2.1"},
		LocalInterfaces: []string{"wan"}, Children: []ChildSpec{{Name: "net", RemoteTS: []string{"198.18.0.0/24"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ue.InitiateConnection(tctx(t), "gw", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a trim after the SA came up", func() bool { return gwTrims.Load() == 1 })
	time.Sleep(10 * every)
	if n := gwTrims.Load(); n != 1 {
		t.Fatalf("%d trims in a quiet spell, want 1", n)
	}
	if err := ue.TerminateConnection(tctx(t), "gw"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a trim after the SA went", func() bool { return gwTrims.Load() == 2 })
	time.Sleep(10 * every)
	if n, m := gwTrims.Load(), ueTrims.Load(); n != 2 || m != 0 {
		t.Fatalf("trims: gateway %d (want 2), end user with trimming off %d (want 0)", n, m)
	}
}
