package engine

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/iface"
	"github.com/mifsec/mifsec/engine/iface/ifacetest"
	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/sa"
)

// tunDP is a fake data plane with a TUN, so that the glue routes into it.
type tunDP struct{ *fakeDP }

func (tunDP) TUNName() string { return "mifsec0" }

// orderLog records, in order, what a node did to the kernel and the wire.
type orderLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *orderLog) add(s string) {
	l.mu.Lock()
	l.ops = append(l.ops, s)
	l.mu.Unlock()
}

func (l *orderLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ops)
}

// sendLog is a transport that logs the exchange of what it sends.
type sendLog struct {
	*fakeTransport
	log *orderLog
}

func (t sendLog) Send(local, remote netip.AddrPort, msg []byte) error {
	if h, err := ike.DecodeHeader(msg); err == nil {
		dir := "request"
		if h.IsResponse() {
			dir = "response"
		}
		t.log.add("send " + h.Exchange.String() + " " + dir)
	}
	return t.fakeTransport.Send(local, remote, msg)
}

// recordRoutes replaces e's kernel route changes with entries in l.
func recordRoutes(t *testing.T, e *Engine, l *orderLog) {
	t.Helper()
	if _, err := do(tctx(t), e, func(st *state) (struct{}, error) {
		st.rt.routes = routeOps{
			addRoute: func(_ string, p netip.Prefix, _ netip.Addr) error { l.add("route " + p.String()); return nil },
			delRoute: func(_ string, p netip.Prefix) error { l.add("unroute " + p.String()); return nil },
			addAddr:  func(_ string, p netip.Prefix) error { l.add("address " + p.String()); return nil },
			delAddr:  func(_ string, p netip.Prefix) error { l.add("unaddress " + p.String()); return nil },
			pinHost:  func(a netip.Addr) (netip.Prefix, error) { return netip.PrefixFrom(a, a.BitLen()), nil },
		}
		return struct{}{}, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestResponderRoutesBeforeAnswer: the gateway routes the virtual IP it
// leased into the TUN before its IKE_AUTH answer leaves: the end user
// sends as soon as it has the answer, and the replies to that traffic
// must find the route (test/interop TestRekeyUnderTraffic lost the first
// echo reply, IpExtInNoRoutes on the gateway).
func TestResponderRoutesBeforeAnswer(t *testing.T) {
	w := &wire{}
	var gwLog orderLog
	mk := func(addr string, tr IKETransport) *Engine {
		links := ifacetest.New()
		links.AddLink("eth0", addr+"/24")
		e, err := New(Config{StateDir: t.TempDir(), Links: links, Transport: tr, Dataplane: tunDP{newFakeDP()},
			Retransmit: sa.Retransmit{Timeout: 200 * time.Millisecond, Factor: 1.5, Tries: 4}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		if _, err := e.CreateInterface(tctx(t), "wan", InterfaceSpec{Link: "eth0", AccessType: AccessWired}, false); err != nil {
			t.Fatal(err)
		}
		if _, err := e.CreateSecret(tctx(t), "psk", SecretPSK, []byte("a-long-shared-secret")); err != nil {
			t.Fatal(err)
		}
		return e
	}
	gw := mk("192.0.2.1", sendLog{w.end("192.0.2.1"), &gwLog})
	ue := mk("192.0.2.2", w.end("192.0.2.2"))
	recordRoutes(t, gw, &gwLog)
	var ueLog orderLog
	recordRoutes(t, ue, &ueLog)
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
	if _, err := ue.InitiateConnection(tctx(t), "gw", ""); err != nil {
		t.Fatal(err)
	}
	got := gwLog.list()
	route := slices.Index(got, "route 10.45.0.1/32")
	answer := slices.Index(got, "send IKE_AUTH response")
	if route < 0 || answer < 0 || route > answer {
		t.Fatalf("gateway did %s; want the virtual IP routed before the IKE_AUTH answer", strings.Join(got, ", "))
	}
	if n := len(slices.DeleteFunc(slices.Clone(got), func(op string) bool { return op != "route 10.45.0.1/32" })); n != 1 {
		t.Errorf("virtual IP routed %d times: %v", n, got)
	}
	// The end user holds its virtual IP on the TUN while the IKE SA
	// lives and takes it off when the SA goes (addresses piled up).
	if got := ueLog.list(); !slices.Contains(got, "address 10.45.0.1/32") || slices.Contains(got, "unaddress 10.45.0.1/32") {
		t.Fatalf("end user did %s; want the virtual IP added and kept", strings.Join(got, ", "))
	}
	if err := ue.TerminateConnection(tctx(t), "gw"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(ueLog.list(), "unaddress 10.45.0.1/32") {
		if time.Now().After(deadline) {
			t.Fatalf("end user did %s; want the virtual IP removed after the IKE SA went", strings.Join(ueLog.list(), ", "))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLinkChangeForgetsRouteIndex: a link change makes the route
// operations look the link's index up again (it may have been renamed or
// recreated under its name).
func TestLinkChangeForgetsRouteIndex(t *testing.T) {
	links := ifacetest.New()
	links.AddLink("eth0", "192.0.2.1/24")
	e, err := New(Config{StateDir: t.TempDir(), Links: links, Transport: (&wire{}).end("192.0.2.1")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	var forgot orderLog
	if _, err := do(tctx(t), e, func(st *state) (struct{}, error) {
		st.rt.routes.forget = func(link string) { forgot.add(link) }
		return struct{}{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	links.SetState("eth0", iface.Down)
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(forgot.list(), "eth0") {
		if time.Now().After(deadline) {
			t.Fatalf("forgot %v after a change of eth0", forgot.list())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
