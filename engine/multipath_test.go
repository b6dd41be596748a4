package engine

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/iface/ifacetest"
	"github.com/mifsec/mifsec/engine/sa"
	"github.com/mifsec/mifsec/engine/transport"
)

// mwire joins fake transports that may own several addresses each, with
// per-direction delays and drops, for multi-interface tests.
type mwire struct {
	mu    sync.Mutex
	ends  map[netip.Addr]*mtransport
	delay map[[2]netip.Addr]time.Duration // (from, to) address pair
	drop  map[[2]netip.Addr]bool
	// filter, if set, sees every datagram first; false keeps it from
	// the wire (the filter may deliver it later with inject).
	filter func(p transport.Packet) bool
}

// inject delivers p (as the filter got it) to the end owning p.Local.
func (w *mwire) inject(p transport.Packet) {
	w.mu.Lock()
	dst := w.ends[p.Local.Addr()]
	w.mu.Unlock()
	if dst != nil {
		dst.in <- p
	}
}

type mtransport struct {
	w  *mwire
	in chan transport.Packet
}

func (w *mwire) end(addrs ...string) *mtransport {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := &mtransport{w: w, in: make(chan transport.Packet, 1024)}
	for _, a := range addrs {
		w.ends[netip.MustParseAddr(a)] = t
	}
	return t
}

func (w *mwire) set(from, to string, d time.Duration, drop bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := [2]netip.Addr{netip.MustParseAddr(from), netip.MustParseAddr(to)}
	w.delay[k], w.drop[k] = d, drop
	w.delay[[2]netip.Addr{k[1], k[0]}], w.drop[[2]netip.Addr{k[1], k[0]}] = d, drop
}

func (t *mtransport) Send(local, remote netip.AddrPort, msg []byte) error {
	t.w.mu.Lock()
	dst := t.w.ends[remote.Addr()]
	k := [2]netip.Addr{local.Addr(), remote.Addr()}
	d, drop, filter := t.w.delay[k], t.w.drop[k], t.w.filter
	t.w.mu.Unlock()
	if dst == nil || drop {
		return nil
	}
	p := transport.Packet{Local: remote, Remote: local, Data: append([]byte(nil), msg...)}
	if filter != nil && !filter(p) {
		return nil
	}
	deliver := func() {
		select {
		case dst.in <- p:
		default:
		}
	}
	if d > 0 {
		time.AfterFunc(d, deliver)
	} else {
		deliver()
	}
	return nil
}
func (t *mtransport) Packets() <-chan transport.Packet { return t.in }
func (t *mtransport) ListenNAT(netip.Addr) error       { return nil }
func (t *mtransport) Port() uint16                     { return 500 }
func (t *mtransport) NATPort() uint16                  { return 4500 }

// fakeDP records SAs and policies and steers like a data plane: per flow,
// the Out policy whose selectors match, then the Steering hook.
type fakeDP struct {
	mu    sync.Mutex
	sas   map[uint32]dataplane.SA // outbound and inbound by SPI
	pols  map[uint64]dataplane.Policy
	steer dataplane.Steering
	ev    chan dataplane.Event
}

func newFakeDP() *fakeDP {
	return &fakeDP{sas: map[uint32]dataplane.SA{}, pols: map[uint64]dataplane.Policy{}, ev: make(chan dataplane.Event)}
}

func (d *fakeDP) Name() string { return "fake" }
func (d *fakeDP) AddSA(_ context.Context, s dataplane.SA) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	s.Keys = dataplane.Keys{}
	d.sas[s.SPI] = s
	return nil
}
func (d *fakeDP) UpdateSA(_ context.Context, spi uint32, _ dataplane.Direction, u dataplane.AddrUpdate) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.sas[spi]
	if !ok {
		return dataplane.ErrNotFound
	}
	s.Local, s.Remote, s.Encap = u.Local, u.Remote, u.Encap
	d.sas[spi] = s
	return nil
}
func (d *fakeDP) DeleteSA(_ context.Context, spi uint32, _ dataplane.Direction) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.sas, spi)
	return nil
}
func (d *fakeDP) AddPolicy(_ context.Context, p dataplane.Policy) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.pols[p.ID]; ok {
		return dataplane.ErrExists
	}
	d.pols[p.ID] = p
	return nil
}
func (d *fakeDP) UpdatePolicy(_ context.Context, p dataplane.Policy) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.pols[p.ID]; !ok {
		return dataplane.ErrNotFound
	}
	d.pols[p.ID] = p
	return nil
}
func (d *fakeDP) DeletePolicy(_ context.Context, id uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.pols, id)
	return nil
}
func (d *fakeDP) SetSteering(s dataplane.Steering) { d.mu.Lock(); d.steer = s; d.mu.Unlock() }
func (d *fakeDP) Counters(context.Context, uint32, dataplane.Direction) (dataplane.Counters, error) {
	return dataplane.Counters{}, nil
}
func (d *fakeDP) Events() <-chan dataplane.Event { return d.ev }
func (d *fakeDP) Close() error                   { return nil }

// outPolicies returns the Out policies.
func (d *fakeDP) outPolicies() []dataplane.Policy {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []dataplane.Policy
	for _, p := range d.pols {
		if p.Direction == dataplane.Out {
			out = append(out, p)
		}
	}
	return out
}

func selMatch(sels []dataplane.Selector, a netip.Addr) bool {
	return slices.ContainsFunc(sels, func(s dataplane.Selector) bool { return s.Prefix.Contains(a) })
}

// send classifies an outbound flow like a data plane: the SA it goes on,
// with the SA's path.
func (d *fakeDP) send(f dataplane.Flow) (spi, path uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.pols {
		if p.Direction != dataplane.Out || len(p.SPIs) == 0 || !selMatch(p.Local, f.Src) || !selMatch(p.Remote, f.Dst) {
			continue
		}
		spi = p.SPIs[0]
		if d.steer != nil {
			if x := d.steer.Pick(f, p.ID, p.SPIs); x != 0 {
				spi = x
			}
		}
		return spi, d.sas[spi].Path
	}
	return 0, 0
}

// receive reports an inbound packet of flow f on the SA spi.
func (d *fakeDP) receive(f dataplane.Flow, spi uint32) {
	d.mu.Lock()
	o, _ := d.steer.(dataplane.FlowObserver)
	d.mu.Unlock()
	if o != nil {
		o.Observe(f, spi)
	}
}

// mpair is an end user with two interfaces (wlan: WLAN, priority 10, ran:
// RAN, priority 5) and a gateway with one, joined by an mwire.
type mpair struct {
	w          *mwire
	ue, gw     *Engine
	ueDP, gwDP *fakeDP
	ueLinks    *ifacetest.Fake
}

const (
	gwAddr   = "192.0.2.1"
	wlanAddr = "192.0.2.2"
	ranAddr  = "198.51.100.2"
)

func newMPair(t *testing.T, multipath bool) *mpair {
	return newMPairRT(t, multipath, 300*time.Millisecond)
}

func newMPairRT(t *testing.T, multipath bool, rto time.Duration) *mpair {
	t.Helper()
	m := &mpair{w: &mwire{ends: map[netip.Addr]*mtransport{}, delay: map[[2]netip.Addr]time.Duration{}, drop: map[[2]netip.Addr]bool{}},
		ueDP: newFakeDP(), gwDP: newFakeDP()}
	mk := func(links *ifacetest.Fake, tr *mtransport, dp *fakeDP) *Engine {
		e, err := New(Config{StateDir: t.TempDir(), Links: links, Transport: tr, Dataplane: dp,
			Retransmit: sa.Retransmit{Timeout: rto, Factor: 1.5, Tries: 4}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		if _, err := e.CreateSecret(tctx(t), "psk", SecretPSK, []byte("a-long-shared-secret")); err != nil {
			t.Fatal(err)
		}
		return e
	}
	gl := ifacetest.New()
	gl.AddLink("eth0", gwAddr+"/24")
	m.gw = mk(gl, m.w.end(gwAddr), m.gwDP)
	m.ueLinks = ifacetest.New()
	m.ueLinks.AddLink("wlan0", wlanAddr+"/24")
	m.ueLinks.AddLink("rmnet0", ranAddr+"/24")
	m.ue = mk(m.ueLinks, m.w.end(wlanAddr, ranAddr), m.ueDP)
	for _, x := range []struct {
		id, link string
		at       AccessType
		prio     uint32
	}{{"wlan", "wlan0", AccessWLAN, 10}, {"ran", "rmnet0", AccessRAN, 5}} {
		if _, err := m.ue.CreateInterface(tctx(t), x.id, InterfaceSpec{Link: x.link, AccessType: x.at, Priority: x.prio}, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.gw.CreateInterface(tctx(t), "wan", InterfaceSpec{Link: "eth0", AccessType: AccessWired}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := m.gw.CreatePool(tctx(t), "ue", PoolSpec{Ranges: []string{"10.45.0.0/24"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.gw.CreateConnection(tctx(t), "ues", ConnectionSpec{Role: RoleResponder, LocalID: "@gw.example", RemoteID: "%any",
		LocalAuth: AuthSpec{PSKSecret: "psk"}, RemoteAuth: AuthSpec{PSKSecret: "psk"}, Pool: "ue", MOBIKE: true,
		Children: []ChildSpec{{Name: "net", LocalTS: []string{"198.18.0.0/24"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ue.CreateConnection(tctx(t), "gw", ConnectionSpec{Role: RoleInitiator, LocalID: "@ue.example", RemoteID: "@gw.example",
		LocalAuth: AuthSpec{PSKSecret: "psk"}, RemoteAuth: AuthSpec{PSKSecret: "psk"}, RemoteAddrs: []string{gwAddr},
		LocalInterfaces: []string{"wlan", "ran"}, VirtualIP4: true, MOBIKE: true, Multipath: multipath,
		Children: []ChildSpec{{Name: "net", RemoteTS: []string{"198.18.0.0/24"}}}}); err != nil {
		t.Fatal(err)
	}
	return m
}

// waitFor polls cond until it holds or 10 s passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func upSAs(t *testing.T, e *Engine) []IKESAView {
	l, _, err := e.ListIKESAs(tctx(t), "-", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(l, func(v IKESAView) bool { return v.State != sa.StateEstablished })
}

func pathsOf(t *testing.T, e *Engine, conn string) map[string]PathView {
	l, _, err := e.ListPaths(tctx(t), conn, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]PathView{}
	for _, p := range l {
		out[p.ID] = p
	}
	return out
}

// establish brings the multipath connection up on both paths.
func (m *mpair) establish(t *testing.T) {
	t.Helper()
	if _, err := m.ue.InitiateConnection(tctx(t), "gw", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two IKE SAs on both ends, both paths up", func() bool {
		ps := pathsOf(t, m.ue, "gw")
		return len(upSAs(t, m.ue)) == 2 && len(upSAs(t, m.gw)) == 2 &&
			ps["wlan-192-0-2-1"].State == PathUp && ps["ran-192-0-2-1"].State == PathUp
	})
}

var flowA = dataplane.Flow{Src: netip.MustParseAddr("10.45.0.1"), Dst: netip.MustParseAddr("198.18.0.7"), Protocol: 6, SrcPort: 40000, DstPort: 443}

// pathOfFlow returns the path id the end user sends f on.
func (m *mpair) pathOfFlow(t *testing.T, f dataplane.Flow) string {
	t.Helper()
	_, tag := m.ueDP.send(f)
	for _, p := range pathsOf(t, m.ue, "gw") {
		if m.tagOf(t, p.ID) == tag {
			return p.ID
		}
	}
	return ""
}

// tagOf finds the data-plane path tag of a path through its IKE SA's SAs.
func (m *mpair) tagOf(t *testing.T, id string) uint32 {
	t.Helper()
	p := pathsOf(t, m.ue, "gw")[id]
	kids, _, _ := m.ue.ListChildSAs(tctx(t), "gw", p.IKESA, "", 10)
	m.ueDP.mu.Lock()
	defer m.ueDP.mu.Unlock()
	for _, k := range kids {
		if s, ok := m.ueDP.sas[k.SPIOut]; ok {
			return s.Path
		}
	}
	return 0
}

func TestMultipathEstablishment(t *testing.T) {
	m := newMPair(t, true)
	m.establish(t)
	// Both IKE SAs survive on the gateway: the second carried no
	// INITIAL_CONTACT (which would have replaced the first), and both
	// got the same inner address.
	time.Sleep(100 * time.Millisecond)
	gsas := upSAs(t, m.gw)
	if len(gsas) != 2 || gsas[0].RemoteID != "@ue.example" || gsas[1].RemoteID != "@ue.example" {
		t.Fatalf("gateway IKE SAs %+v", gsas)
	}
	usas := upSAs(t, m.ue)
	if len(usas[0].VirtualIPs) != 1 || !slices.Equal(usas[0].VirtualIPs, usas[1].VirtualIPs) {
		t.Fatalf("inner addresses differ: %v %v", usas[0].VirtualIPs, usas[1].VirtualIPs)
	}
	if usas[0].Local.Addr() == usas[1].Local.Addr() {
		t.Fatalf("both IKE SAs on %v", usas[0].Local)
	}
	// One merged outbound policy per end, listing both paths' SAs, each
	// SA tagged with its own path.
	for _, x := range []struct {
		name string
		dp   *fakeDP
	}{{"end user", m.ueDP}, {"gateway", m.gwDP}} {
		pols := x.dp.outPolicies()
		if len(pols) != 1 || len(pols[0].SPIs) != 2 {
			t.Fatalf("%s: outbound policies %+v", x.name, pols)
		}
		x.dp.mu.Lock()
		a, b := x.dp.sas[pols[0].SPIs[0]], x.dp.sas[pols[0].SPIs[1]]
		x.dp.mu.Unlock()
		if a.Path == 0 || b.Path == 0 || a.Path == b.Path || a.Local.Addr() == b.Local.Addr() && a.Remote.Addr() == b.Remote.Addr() {
			t.Fatalf("%s: SAs not on distinct paths: %+v / %+v", x.name, a, b)
		}
	}
	checkIndex(t, m.ue, "end user")
	checkIndex(t, m.gw, "gateway")
	ps := pathsOf(t, m.ue, "gw")
	if len(ps) != 2 {
		t.Fatalf("paths %+v", ps)
	}
	for id, p := range ps {
		if p.IKESA == "" || p.Interface == "" || p.LastVerified.IsZero() {
			t.Fatalf("path %s: %+v", id, p)
		}
	}
	// Without a rule the end user uses the first path's SA.
	if got := m.pathOfFlow(t, flowA); got == "" {
		t.Fatalf("flow not sent")
	}
}

func TestSteeringModes(t *testing.T) {
	m := newMPair(t, true)
	m.establish(t)
	ctx := tctx(t)
	const wlan, ran = "wlan-192-0-2-1", "ran-192-0-2-1"
	web := FlowMatch{Protocol: 6, DestinationPorts: PortRange{First: 443}}
	tests := []struct {
		name string
		spec SteeringSpec
		flow dataplane.Flow
		want string
	}{
		{"active-standby", SteeringSpec{Match: web, Mode: SteerActiveStandby, Targets: []SteeringTarget{{Interface: "ran"}, {Interface: "wlan"}}}, flowA, ran},
		{"priority by interface priority", SteeringSpec{Match: web, Mode: SteerPriority}, flowA, wlan},
		{"priority by access type", SteeringSpec{Match: web, Mode: SteerPriority, Targets: []SteeringTarget{{AccessType: AccessRAN}, {AccessType: AccessWLAN}}}, flowA, ran},
		{"no match: default path", SteeringSpec{Match: FlowMatch{Protocol: 17}, Mode: SteerActiveStandby, Targets: []SteeringTarget{{Interface: "ran"}}}, flowA, ""},
		{"dscp", SteeringSpec{Match: FlowMatch{DSCP: []uint32{46}}, Mode: SteerActiveStandby, Targets: []SteeringTarget{{Interface: "ran"}}},
			dataplane.Flow{Src: flowA.Src, Dst: flowA.Dst, Protocol: 17, DSCP: 46}, ran},
		{"smallest delay", SteeringSpec{Match: web, Mode: SteerSmallestDelay}, flowA, ""},
	}
	def := m.pathOfFlow(t, flowA)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.ue.CreateSteeringRule(ctx, "r", tc.spec); err != nil {
				t.Fatal(err)
			}
			defer m.ue.DeleteSteeringRule(ctx, "r")
			want := tc.want
			if want == "" {
				want = def
			}
			if tc.spec.Mode == SteerSmallestDelay {
				// Equal RTTs: either; the choice must be the rule's active path.
				r, _ := m.ue.GetSteeringRule(ctx, "r")
				if len(r.ActivePaths) != 1 {
					t.Fatalf("active %+v", r.ActivePaths)
				}
				want = r.ActivePaths[0].ID
			}
			if got := m.pathOfFlow(t, tc.flow); got != want {
				t.Fatalf("flow on %q, want %q", got, want)
			}
		})
	}
}

func TestLoadBalanceSticky(t *testing.T) {
	m := newMPair(t, true)
	m.establish(t)
	ctx := tctx(t)
	if _, err := m.ue.CreateSteeringRule(ctx, "lb", SteeringSpec{Mode: SteerLoadBalance,
		Targets: []SteeringTarget{{Interface: "wlan", Weight: 3}, {Interface: "ran", Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	first := map[uint16]string{}
	count := map[string]int{}
	for port := uint16(1000); port < 3000; port++ {
		f := flowA
		f.SrcPort = port
		p := m.pathOfFlow(t, f)
		first[port] = p
		count[p]++
	}
	share := float64(count["wlan-192-0-2-1"]) / 2000
	if share < 0.68 || share > 0.82 {
		t.Fatalf("wlan share %.2f, want about 0.75 (%v)", share, count)
	}
	// Sticky: the same flows stay where they are after the table is
	// rebuilt (an unrelated rule is added).
	if _, err := m.ue.CreateSteeringRule(ctx, "other", SteeringSpec{Match: FlowMatch{Protocol: 17}, Mode: SteerPriority}); err != nil {
		t.Fatal(err)
	}
	// and when the weights change, flows already pinned keep their path.
	if _, err := m.ue.UpdateSteeringRule(ctx, "lb", SteeringSpec{Targets: []SteeringTarget{{Interface: "wlan", Weight: 1}, {Interface: "ran", Weight: 5}}}, []string{"targets"}); err != nil {
		t.Fatal(err)
	}
	for port := uint16(1000); port < 3000; port++ {
		f := flowA
		f.SrcPort = port
		if p := m.pathOfFlow(t, f); p != first[port] {
			t.Fatalf("flow %d moved from %s to %s", port, first[port], p)
		}
	}
}

func TestSmallestDelayFollowsRTT(t *testing.T) {
	m := newMPair(t, true)
	m.establish(t)
	ctx := tctx(t)
	m.w.set(wlanAddr, gwAddr, 2*time.Millisecond, false)
	m.w.set(ranAddr, gwAddr, 25*time.Millisecond, false)
	if _, err := m.ue.CreateSteeringRule(ctx, "fast", SteeringSpec{Mode: SteerSmallestDelay, ProbeInterval: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "wlan chosen for its smaller RTT", func() bool { return m.pathOfFlow(t, flowA) == "wlan-192-0-2-1" })
	m.w.set(wlanAddr, gwAddr, 60*time.Millisecond, false)
	waitFor(t, "ran chosen once wlan became slower", func() bool { return m.pathOfFlow(t, flowA) == "ran-192-0-2-1" })
	ps := pathsOf(t, m.ue, "gw")
	if ps["ran-192-0-2-1"].RTT >= ps["wlan-192-0-2-1"].RTT || ps["ran-192-0-2-1"].Probes == 0 {
		t.Fatalf("paths %+v", ps)
	}
}

func TestGatewaySymmetricReturn(t *testing.T) {
	m := newMPair(t, true)
	m.establish(t)
	ctx := tctx(t)
	// The gateway's view: each IKE SA's inbound SA is on its own path.
	gsas := upSAs(t, m.gw)
	in := map[string]uint32{} // remote address → inbound SPI on the gateway
	for _, s := range gsas {
		kids, _, _ := m.gw.ListChildSAs(ctx, s.Conn, s.Name, "", 10)
		in[s.Remote.Addr().String()] = kids[0].SPIIn
	}
	up := dataplane.Flow{Src: flowA.Src, Dst: flowA.Dst, Protocol: 6, SrcPort: 40000, DstPort: 443}
	back := dataplane.Flow{Src: up.Dst, Dst: up.Src, Protocol: 6, SrcPort: 443, DstPort: 40000}
	for _, from := range []string{ranAddr, wlanAddr, ranAddr} {
		m.gwDP.receive(up, in[from])
		spi, _ := m.gwDP.send(back)
		m.gwDP.mu.Lock()
		got := m.gwDP.sas[spi].Remote.Addr().String()
		m.gwDP.mu.Unlock()
		if got != from {
			t.Fatalf("flow came in from %s, answer goes to %s", from, got)
		}
	}
	// A rule on the gateway overrides the symmetric default.
	if _, err := m.gw.CreateSteeringRule(ctx, "to-wlan", SteeringSpec{Mode: SteerSmallestDelay}); err != nil {
		t.Fatal(err)
	}
	r, _ := m.gw.GetSteeringRule(ctx, "to-wlan")
	m.gwDP.receive(up, in[ranAddr])
	m.gwDP.receive(up, in[wlanAddr])
	spi, tag := m.gwDP.send(back)
	want := m.gw.pathTag(t, r.ActivePaths[0].ID)
	if spi == 0 || len(r.ActivePaths) != 1 || tag != want {
		t.Fatalf("rule %+v: answer on path tag %d, want %d", r, tag, want)
	}
}

// pathTag reads a path's data-plane tag (test helper).
func (e *Engine) pathTag(t *testing.T, id string) uint32 {
	tag, err := do(tctx(t), e, func(st *state) (uint32, error) {
		for _, p := range st.mp.paths {
			if p.id == id {
				return p.tag, nil
			}
		}
		return 0, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

func TestPickDoesNotAllocate(t *testing.T) {
	m := newMPair(t, true)
	m.establish(t)
	if _, err := m.ue.CreateSteeringRule(tctx(t), "lb", SteeringSpec{Mode: SteerLoadBalance,
		Targets: []SteeringTarget{{Interface: "wlan", Weight: 1}, {Interface: "ran", Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	pol := m.ueDP.outPolicies()[0]
	m.ueDP.mu.Lock()
	s := m.ueDP.steer
	m.ueDP.mu.Unlock()
	f := flowA
	if n := testing.AllocsPerRun(1000, func() {
		f.SrcPort++
		if s.Pick(f, pol.ID, pol.SPIs) == 0 {
			t.Fatal("no pick")
		}
		s.(dataplane.FlowObserver).Observe(f, 1)
	}); n != 0 {
		t.Fatalf("%v allocations per Pick", n)
	}
}
