package mif

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
	"github.com/mifsec/mifsec/test/daemon"
	"github.com/mifsec/mifsec/test/strongswan"
	"github.com/mifsec/mifsec/test/strongswan/vici"
	"github.com/mifsec/mifsec/test/topo"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	psk     = "mif-psk-0123456789abcdef"
	gwID    = "gw.example.net"
	ueID    = "ue1@example.net"
	ikeP    = "aes256gcm16-prfsha256-x25519"
	espP    = "aes256gcm16"
	timeout = 90 * time.Second
	// rate is the packet rate of the flows the scenarios measure.
	rate = 1000
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// node is one mifsecd with its clients.
type node struct {
	*daemon.Daemon
	steer mifsecv1.SteeringServiceClient
}

// mifsecNode starts mifsecd (userspace data plane) in ns with its RAN and
// WLAN links registered as interfaces "ran" (priority 10) and "wlan"
// (priority 20) and the PSK as "secrets/psk".
func mifsecNode(t *testing.T, ns *topo.Netns) *node {
	d := daemon.Start(t, ns, "--dataplane", "userspace")
	n := &node{Daemon: d, steer: mifsecv1.NewSteeringServiceClient(d.Client.Conn())}
	ctx := ctxT(t)
	for _, i := range []struct {
		id, link string
		at       mifsecv1.AccessType
		prio     uint32
	}{{"ran", topo.RAN, mifsecv1.AccessType_ACCESS_TYPE_RAN, 10}, {"wlan", topo.WLAN, mifsecv1.AccessType_ACCESS_TYPE_WLAN, 20}} {
		if _, err := d.Client.Interfaces.CreateInterface(ctx, &mifsecv1.CreateInterfaceRequest{InterfaceId: i.id,
			Interface: &mifsecv1.Interface{Link: i.link, AccessType: i.at, Priority: i.prio}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Client.Secrets.CreateSecret(ctx, &mifsecv1.CreateSecretRequest{SecretId: "psk",
		Secret: &mifsecv1.Secret{Type: mifsecv1.SecretType_SECRET_TYPE_PSK, Data: &mifsecv1.Secret_Text{Text: psk}}}); err != nil {
		t.Fatal(err)
	}
	return n
}

func pskAuth() *mifsecv1.Authentication {
	return &mifsecv1.Authentication{Method: &mifsecv1.Authentication_PskSecret{PskSecret: "secrets/psk"}}
}

// mifsecUE starts the end user: connection "gw" to remote over both
// links, asking for a virtual IP, child "net" to the LAN; mod adjusts it.
func mifsecUE(t *testing.T, tp *topo.Topology, remote netip.Addr, mod func(*mifsecv1.Connection)) *node {
	n := mifsecNode(t, tp.UE)
	mobike := true
	conn := &mifsecv1.Connection{
		Role: mifsecv1.Role_ROLE_INITIATOR, LocalId: ueID, RemoteId: "@" + gwID,
		LocalAuth: pskAuth(), RemoteAuth: pskAuth(),
		IkeProposals: []string{ikeP}, EspProposals: []string{espP},
		RemoteAddresses: []string{remote.String()}, LocalInterfaces: []string{"interfaces/ran", "interfaces/wlan"},
		RequestVirtualIp4: true, Mobike: &mobike,
		Dpd:      &mifsecv1.Dpd{Interval: durationpb.New(0)},
		Children: []*mifsecv1.Child{{Name: "net", RemoteTs: []string{topo.LANNet.String()}}},
	}
	if mod != nil {
		mod(conn)
	}
	if _, err := n.Client.Connections.CreateConnection(ctxT(t), &mifsecv1.CreateConnectionRequest{ConnectionId: "gw", Connection: conn}); err != nil {
		t.Fatal(err)
	}
	return n
}

// mifsecGW starts the gateway: pool "ue" over topo.VIPPool and responder
// connection "ues" leasing from it, the LAN behind.
func mifsecGW(t *testing.T, tp *topo.Topology, mod func(*mifsecv1.Connection)) *node {
	n := mifsecNode(t, tp.GW)
	ctx := ctxT(t)
	if _, err := n.Client.Pools.CreatePool(ctx, &mifsecv1.CreatePoolRequest{PoolId: "ue",
		Pool: &mifsecv1.Pool{Ranges: []string{topo.VIPPool.String()}}}); err != nil {
		t.Fatal(err)
	}
	mobike := true
	conn := &mifsecv1.Connection{
		Role: mifsecv1.Role_ROLE_RESPONDER, LocalId: gwID, RemoteId: ueID,
		LocalAuth: pskAuth(), RemoteAuth: pskAuth(),
		IkeProposals: []string{ikeP}, EspProposals: []string{espP},
		Pool: "pools/ue", Mobike: &mobike,
		Dpd:      &mifsecv1.Dpd{Interval: durationpb.New(0)},
		Children: []*mifsecv1.Child{{Name: "net", LocalTs: []string{topo.LANNet.String()}}},
	}
	if mod != nil {
		mod(conn)
	}
	if _, err := n.Client.Connections.CreateConnection(ctx, &mifsecv1.CreateConnectionRequest{ConnectionId: "ues", Connection: conn}); err != nil {
		t.Fatal(err)
	}
	return n
}

// swGateway starts strongSwan as the gateway on both of its access
// addresses, MOBIKE on (its default), PSK, a pool.
func swGateway(t *testing.T, tp *topo.Topology) *strongswan.Charon {
	return strongswan.Start(t, tp.GW, strongswan.Config{
		Name:              "gw",
		RetransmitTimeout: time.Second, RetransmitTries: 3,
		Connections: []strongswan.Connection{{
			Name: "ue", LocalAddrs: []string{topo.GWRAN.String(), topo.GWWLAN.String()},
			Proposals: []string{ikeP}, Pools: []string{"ue_pool"}, Unique: "never", Mobike: strongswan.Yes,
			Local:  strongswan.Auth{Auth: "psk", ID: gwID},
			Remote: strongswan.Auth{Auth: "psk", ID: ueID},
			Children: []strongswan.Child{{Name: "net", LocalTS: []string{topo.LANNet.String()},
				ESPProposals: []string{espP}}},
		}},
		Pools:   []strongswan.Pool{{Name: "ue_pool", Addrs: topo.VIPPool.String()}},
		Secrets: []strongswan.PSK{{IDs: []string{gwID, ueID}, Secret: vici.Secret(psk)}},
	})
}

// swUE starts strongSwan as the end user: connection "gw" from local to
// the gateway's remote address (any local address when local is empty),
// asking for a virtual IP, child "net" started by the test.
func swUE(t *testing.T, tp *topo.Topology, local []string, remote netip.Addr) *strongswan.Charon {
	return strongswan.Start(t, tp.UE, strongswan.Config{
		Name:              "ue",
		RetransmitTimeout: time.Second, RetransmitTries: 6,
		Connections: []strongswan.Connection{{
			Name: "gw", LocalAddrs: local, RemoteAddrs: []string{remote.String()},
			Proposals: []string{ikeP}, VIPs: []string{"0.0.0.0"}, Mobike: strongswan.Yes,
			Local:  strongswan.Auth{Auth: "psk", ID: ueID},
			Remote: strongswan.Auth{Auth: "psk", ID: gwID},
			Children: []strongswan.Child{{Name: "net", RemoteTS: []string{topo.LANNet.String()},
				ESPProposals: []string{espP}, StartAction: "none"}},
		}},
		Secrets: []strongswan.PSK{{IDs: []string{gwID, ueID}, Secret: vici.Secret(psk)}},
	})
}

// initiate brings connection "gw" of n up and returns its IKE SA.
func initiate(t *testing.T, ctx context.Context, n *node) *mifsecv1.IkeSa {
	t.Helper()
	if _, err := n.Client.Connections.InitiateConnection(ctx, &mifsecv1.InitiateConnectionRequest{Name: "connections/gw"}); err != nil {
		t.Fatalf("initiate: %v", err)
	}
	return ikeSA(t, ctx, n, "gw")
}

// ikeSAs lists the IKE SAs of a connection.
func ikeSAs(t *testing.T, ctx context.Context, n *node, conn string) []*mifsecv1.IkeSa {
	t.Helper()
	r, err := n.Client.SAs.ListIkeSas(ctx, &mifsecv1.ListIkeSasRequest{Parent: "connections/" + conn})
	if err != nil {
		t.Fatalf("IKE SAs of %s: %v", conn, err)
	}
	return r.IkeSas
}

// ikeSA returns the one IKE SA of a connection.
func ikeSA(t *testing.T, ctx context.Context, n *node, conn string) *mifsecv1.IkeSa {
	t.Helper()
	sas := ikeSAs(t, ctx, n, conn)
	if len(sas) != 1 {
		t.Fatalf("IKE SAs of %s: %v", conn, sas)
	}
	return sas[0]
}

func childSAs(t *testing.T, ctx context.Context, n *node, ike string) []*mifsecv1.ChildSa {
	t.Helper()
	r, err := n.Client.SAs.ListChildSas(ctx, &mifsecv1.ListChildSasRequest{Parent: ike})
	if err != nil {
		t.Fatal(err)
	}
	return r.ChildSas
}

func paths(t *testing.T, ctx context.Context, n *node, conn string) []*mifsecv1.Path {
	t.Helper()
	r, err := n.Client.Connections.ListPaths(ctx, &mifsecv1.ListPathsRequest{Parent: "connections/" + conn})
	if err != nil {
		t.Fatalf("paths of %s: %v", conn, err)
	}
	return r.Paths
}

// pathOn is the path of conn on interface ifc (nil when none).
func pathOn(t *testing.T, ctx context.Context, n *node, conn, ifc string) *mifsecv1.Path {
	t.Helper()
	for _, p := range paths(t, ctx, n, conn) {
		if p.Interface == "interfaces/"+ifc || p.Interface == ifc {
			return p
		}
	}
	return nil
}

func vipOf(t *testing.T, sa *mifsecv1.IkeSa) netip.Addr {
	t.Helper()
	if len(sa.VirtualIps) != 1 {
		t.Fatalf("virtual IPs %v", sa.VirtualIps)
	}
	return netip.MustParseAddr(sa.VirtualIps[0])
}

// host is the address part of an "a.b.c.d:port" API field.
func host(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr()
	}
	a, _ := netip.ParseAddr(s)
	return a
}

// eventually polls cond every 20 ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, within, detail)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recorder keeps every event of one daemon's Watch stream (all
// categories) in the order it came.
type recorder struct {
	name string
	mu   sync.Mutex
	evs  []*mifsecv1.Event
	err  error
	c    chan struct{} // a token per event
}

// record subscribes to every event of n and waits for the end of the
// snapshot; live events are kept from then on.
func record(t *testing.T, ctx context.Context, name string, n *node) *recorder {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	s, err := n.Client.Events.Watch(ctx, &mifsecv1.WatchRequest{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r := &recorder{name: name, c: make(chan struct{}, 1)}
	snap := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("%s events:\n%s", name, r.dump(0))
		}
	})
	go func() {
		defer close(done)
		live := false
		for {
			m, err := s.Recv()
			if err != nil {
				r.mu.Lock()
				r.err = err
				r.mu.Unlock()
				if !live {
					close(snap)
				}
				return
			}
			ev := m.Event
			if !live {
				if ev.Type == mifsecv1.EventType_EVENT_TYPE_END_OF_SNAPSHOT {
					live = true
					close(snap)
				}
				continue
			}
			r.mu.Lock()
			r.evs = append(r.evs, ev)
			r.mu.Unlock()
			select {
			case r.c <- struct{}{}:
			default:
			}
		}
	}()
	select {
	case <-snap:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no end of snapshot", name)
	}
	if r.err != nil {
		t.Fatalf("%s: watch: %v", name, r.err)
	}
	return r
}

// mark is the number of events so far: wait and find look after it.
func (r *recorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.evs)
}

func (r *recorder) since(i int) []*mifsecv1.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*mifsecv1.Event(nil), r.evs[min(i, len(r.evs)):]...)
}

// wait returns the index and the first event after from that match says
// yes to, waiting up to within.
func (r *recorder) wait(t *testing.T, from int, within time.Duration, what string, match func(*mifsecv1.Event) bool) (int, *mifsecv1.Event) {
	t.Helper()
	limit := time.After(within)
	for {
		for i, ev := range r.since(from) {
			if match(ev) {
				return from + i, ev
			}
		}
		select {
		case <-r.c:
		case <-limit:
			t.Fatalf("%s: no %s event within %v; events since:\n%s", r.name, what, within, r.dump(from))
		}
	}
}

func (r *recorder) dump(from int) string {
	var b strings.Builder
	for _, ev := range r.since(from) {
		fmt.Fprintf(&b, "  %s\n", evString(ev))
	}
	return b.String()
}

func evString(ev *mifsecv1.Event) string {
	s := fmt.Sprintf("#%d %s %s", ev.Sequence, ev.Time.AsTime().Format("15:04:05.000000"), strings.TrimPrefix(ev.Type.String(), "EVENT_TYPE_"))
	if ev.Reason != "" {
		s += " reason=" + ev.Reason
	}
	if ev.Connection != "" {
		s += " conn=" + ev.Connection
	}
	if ev.FromPath != "" || ev.ToPath != "" {
		s += " " + ev.FromPath + " → " + ev.ToPath
	}
	if len(ev.Addresses) > 0 {
		s += " addrs=" + strings.Join(ev.Addresses, ",")
	}
	switch x := ev.Subject.(type) {
	case *mifsecv1.Event_Interface:
		s += " " + x.Interface.Name
	case *mifsecv1.Event_IkeSa:
		s += " " + x.IkeSa.Name + " " + x.IkeSa.LocalAddress + "↔" + x.IkeSa.RemoteAddress
	case *mifsecv1.Event_ChildSa:
		s += " " + x.ChildSa.Name
	case *mifsecv1.Event_Path:
		s += " " + x.Path.Name + " " + x.Path.State.String()
	case *mifsecv1.Event_SteeringRule:
		s += " " + x.SteeringRule.Name
	}
	if ev.Address != "" {
		s += " " + ev.Address
	}
	return s
}

// is matches an event type.
func is(typ mifsecv1.EventType) func(*mifsecv1.Event) bool {
	return func(ev *mifsecv1.Event) bool { return ev.Type == typ }
}

// flowAt is a flow from src to the server behind the gateway on port,
// with its receiver there.
type flowAt struct {
	s *Sender
	r *Receiver
}

func startFlow(t *testing.T, ctx context.Context, tp *topo.Topology, src netip.Addr, port uint16, id uint32) *flowAt {
	t.Helper()
	r, err := Listen(tp.SRV, netip.AddrPortFrom(topo.SRV, port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	s, err := StartFlow(ctx, tp.UE, FlowOptions{Src: netip.AddrPortFrom(src, 0), Dst: r.Addr(), ID: id, Rate: rate})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return &flowAt{s: s, r: r}
}

// stop ends the flow, waits for what is in flight and returns its stats.
func (f *flowAt) stop(ctx context.Context) Stats {
	sent, _, _ := f.s.Stop()
	f.r.Drain(ctx, f.s.opts.ID, 200*time.Millisecond)
	return f.r.Stats(f.s.opts.ID, sent)
}

// flowing waits until the receiver got n more datagrams of the flow.
func (f *flowAt) flowing(t *testing.T, n int, within time.Duration) {
	t.Helper()
	base := len(f.r.Arrivals(f.s.opts.ID))
	eventually(t, within, "flow delivering", func() (bool, string) {
		got := len(f.r.Arrivals(f.s.opts.ID)) - base
		return got >= n, fmt.Sprintf("%d of %d datagrams (sent %d)", got, n, f.s.Sent())
	})
}

func durpb(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

// inOrder checks scenario 8 on the events after from: sequence numbers
// follow each other without a gap (nothing was left out of the stream),
// and want appears among them in this order.
func (r *recorder) inOrder(t *testing.T, from int, want ...mifsecv1.EventType) {
	t.Helper()
	evs := r.since(from)
	for i := 1; i < len(evs); i++ {
		if evs[i].Sequence != evs[i-1].Sequence+1 {
			t.Fatalf("%s: event #%d follows #%d:\n%s", r.name, evs[i].Sequence, evs[i-1].Sequence, r.dump(from))
		}
	}
	k := 0
	for _, ev := range evs {
		if k < len(want) && ev.Type == want[k] {
			k++
		}
	}
	if k < len(want) {
		t.Fatalf("%s: events out of order, %v missing after %v:\n%s", r.name, want[k], want[:k], r.dump(from))
	}
}
