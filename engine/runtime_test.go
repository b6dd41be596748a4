package engine

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/iface/ifacetest"
	"github.com/mifsec/mifsec/engine/sa"
	"github.com/mifsec/mifsec/engine/transport"
)

// wire joins fake transports in memory: what one sends, the owner of the
// destination address receives.
type wire struct {
	mu    sync.Mutex
	ends  map[netip.Addr]*fakeTransport
	drops func(from, to netip.AddrPort) bool
}

type fakeTransport struct {
	w    *wire
	addr netip.Addr
	in   chan transport.Packet
}

func (w *wire) end(a string) *fakeTransport {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ends == nil {
		w.ends = map[netip.Addr]*fakeTransport{}
	}
	t := &fakeTransport{w: w, addr: netip.MustParseAddr(a), in: make(chan transport.Packet, 1024)}
	w.ends[t.addr] = t
	return t
}

func (t *fakeTransport) Send(local, remote netip.AddrPort, msg []byte) error {
	t.w.mu.Lock()
	dst := t.w.ends[remote.Addr()]
	drop := t.w.drops != nil && t.w.drops(local, remote)
	t.w.mu.Unlock()
	if dst == nil || drop {
		return nil
	}
	select {
	case dst.in <- transport.Packet{Local: remote, Remote: local, Data: append([]byte(nil), msg...)}:
	default:
	}
	return nil
}
func (t *fakeTransport) Packets() <-chan transport.Packet { return t.in }
func (t *fakeTransport) ListenNAT(netip.Addr) error       { return nil }
func (t *fakeTransport) Port() uint16                     { return 500 }
func (t *fakeTransport) NATPort() uint16                  { return 4500 }

// pair builds a gateway and an end user engine joined by a wire, with a PSK
// connection between them.
func pair(t *testing.T) (ue, gw *Engine) {
	t.Helper()
	ue, gw, _ = pairOn(t)
	return ue, gw
}

// pairOn is pair that also returns the wire, for tests that cut it or
// inject datagrams.
func pairOn(t testing.TB) (ue, gw *Engine, w *wire) {
	t.Helper()
	return pairWith(t, func(f *fakeTransport) IKETransport { return f })
}

// pairWith is pairOn with each end's transport made by wrap from its
// fake.
func pairWith(t testing.TB, wrap func(*fakeTransport) IKETransport) (ue, gw *Engine, w *wire) {
	t.Helper()
	w = &wire{}
	mk := func(addr, link string, tr IKETransport) *Engine {
		links := ifacetest.New()
		links.AddLink(link, addr+"/24")
		e, err := New(Config{StateDir: t.TempDir(), Links: links, Transport: tr,
			Retransmit: sa.Retransmit{Timeout: 200 * time.Millisecond, Factor: 1.5, Tries: 4}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		if _, err := e.CreateInterface(tctx(t), "wan", InterfaceSpec{Link: link, AccessType: AccessWired}, false); err != nil {
			t.Fatal(err)
		}
		if _, err := e.CreateSecret(tctx(t), "psk", SecretPSK, []byte("a-long-shared-secret")); err != nil {
			t.Fatal(err)
		}
		return e
	}
	gw = mk("192.0.2.1", "eth0", wrap(w.end("192.0.2.1")))
	ue = mk("192.0.2.2", "eth0", wrap(w.end("192.0.2.2")))
	if _, err := gw.CreatePool(tctx(t), "ue", PoolSpec{Ranges: []string{"10.45.0.0/24"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.CreateConnection(tctx(t), "ues", ConnectionSpec{Role: RoleResponder, LocalID: "@gw.example", RemoteID: "%any",
		LocalAuth: AuthSpec{PSKSecret: "psk"}, RemoteAuth: AuthSpec{PSKSecret: "psk"}, Pool: "ue",
		Children: []ChildSpec{{Name: "net", LocalTS: []string{"198.18.0.0/24"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ue.CreateConnection(tctx(t), "gw", ConnectionSpec{Role: RoleInitiator, LocalID: "@ue.example", RemoteID: "@gw.example",
		LocalAuth: AuthSpec{PSKSecret: "psk"}, RemoteAuth: AuthSpec{PSKSecret: "psk"}, RemoteAddrs: []string{"192.0.2.1"},
		LocalInterfaces: []string{"wan"}, VirtualIP4: true,
		Children: []ChildSpec{{Name: "net", RemoteTS: []string{"198.18.0.0/24"}}}}); err != nil {
		t.Fatal(err)
	}
	return ue, gw, w
}

func TestEnginesEstablishRekeyTerminate(t *testing.T) {
	ue, gw := pair(t)
	establishRekeyTerminate(t, ue, gw)
}

// establishRekeyTerminate runs an end user's IKE SA through its life.
func establishRekeyTerminate(t testing.TB, ue, gw *Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub, err := ue.Watch(ctx, WatchFilter{Categories: []Category{CategoryIKESA, CategoryChildSA}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	name, err := ue.InitiateConnection(ctx, "gw", "")
	if err != nil {
		t.Fatal(err)
	}
	v, err := ue.GetIKESA(ctx, "gw", name)
	if err != nil || v.State != sa.StateEstablished || len(v.VirtualIPs) != 1 || v.VirtualIPs[0].String() != "10.45.0.1" || v.Proposal == "" {
		t.Fatalf("initiator view %+v %v", v, err)
	}
	gsas, _, err := gw.ListIKESAs(ctx, "-", "", 10)
	if err != nil || len(gsas) != 1 || gsas[0].Name != name || gsas[0].RemoteID != "@ue.example" {
		t.Fatalf("gateway sees %+v %v", gsas, err)
	}
	kids, _, err := ue.ListChildSAs(ctx, "gw", name, "", 10)
	if err != nil || len(kids) != 1 || kids[0].RemoteTS[0] != "198.18.0.0/24" || kids[0].LocalTS[0] != "10.45.0.1/32" {
		t.Fatalf("children %+v %v", kids, err)
	}
	c, _ := ue.GetConnection(ctx, "gw")
	if c.State != ConnEstablished || len(c.IKESAs) != 1 {
		t.Fatalf("connection %+v", c)
	}
	p, _ := gw.GetPool(ctx, "ue")
	if p.InUse != 1 || p.Leases[0].Identity != "@ue.example" {
		t.Fatalf("pool %+v", p)
	}

	// Child rekey from the initiator: a new inbound SPI.
	nk, err := ue.RekeyChildSA(ctx, "gw", name, kids[0].Name)
	if err != nil || nk.Name == kids[0].Name {
		t.Fatalf("child rekey: %+v %v", nk, err)
	}
	// IKE rekey: a new IKE SA name.
	nv, err := ue.RekeyIKESA(ctx, "gw", name)
	if err != nil || nv.Name == name || nv.State != sa.StateEstablished {
		t.Fatalf("IKE rekey: %+v %v", nv, err)
	}
	if err := ue.TerminateConnection(ctx, "gw"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, sub, EventIKESADown)
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, _, _ := gw.ListIKESAs(ctx, "-", "", 10)
		if len(l) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway still has %+v", l)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestInitiateFailsWithReason(t *testing.T) {
	ue, gw := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Wrong PSK on the gateway side: authentication fails.
	gw.CreateSecret(ctx, "other", SecretPSK, []byte("not-the-same-secret"))
	if _, err := gw.UpdateConnection(ctx, "ues", ConnectionSpec{LocalAuth: AuthSpec{PSKSecret: "other"}, RemoteAuth: AuthSpec{PSKSecret: "other"}},
		[]string{"local_auth", "remote_auth"}); err != nil {
		t.Fatal(err)
	}
	_, err := ue.InitiateConnection(ctx, "gw", "")
	wantReason(t, err, FailedPrecondition, "IKE_SA_FAILED", "")
}

func waitEvent(t testing.TB, sub *Subscription, want EventType) Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				t.Fatalf("subscription ended: %v", sub.Err())
			}
			if ev.Type == want {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %v event", want)
		}
	}
}
