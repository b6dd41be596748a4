package sa

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/transform"
)

// Second addresses of each host, and the NAT some tests put on a path.
var (
	ip1I   = addrI.Addr()
	ip2I   = netip.MustParseAddr("192.0.2.2")
	ip1R   = addrR.Addr()
	ip2R   = netip.MustParseAddr("198.51.100.2")
	ip3R   = netip.MustParseAddr("198.51.100.3")
	natHop = netip.MustParseAddrPort("203.0.113.77:40500")
)

func at4500(a netip.Addr) netip.AddrPort { return netip.AddrPortFrom(a, natTPort) }

// mnode is one IKE SA machine of a host in the mesh.
type mnode struct {
	ike      *IKE
	ops      []DataplaneOp
	events   []Event
	deadline time.Time
	done     bool
	bound    map[uint64]bool
}

// host is one end with all its IKE SAs (clones included).
type host struct {
	name string
	ms   []*mnode
}

type mpacket struct {
	from, to *host
	sent     Datagram // as the sender gave it
	dg       Datagram // as the receiver sees it
}

// mesh connects the two hosts of an established pump, routing by IKE SPI
// as the glue does, with per-path failures and address rewriting.
type mesh struct {
	t    testing.TB
	now  time.Time
	a, b *host // a holds the original initiator
	wire []mpacket
	// cut drops a datagram (sender's view); rewrite changes the
	// receiver's view (a NAT); onDeliver sees a datagram before it is
	// handled.
	cut       func(pk mpacket) bool
	rewrite   func(pk *mpacket)
	onDeliver func(pk mpacket, to *mnode)
	seen      []mpacket
}

func meshFrom(p *pump) *mesh {
	conv := func(n *node) *mnode {
		m := &mnode{ike: n.ike, ops: slices.Clone(n.ops), events: slices.Clone(n.events), deadline: n.deadline, done: n.done,
			bound: map[uint64]bool{}}
		for k := range n.bound {
			m.bound[k] = true
		}
		return m
	}
	return &mesh{t: p.t, now: p.now, a: &host{name: "a", ms: []*mnode{conv(p.i)}}, b: &host{name: "b", ms: []*mnode{conv(p.r)}}}
}

func (m *mesh) other(h *host) *host {
	if h == m.a {
		return m.b
	}
	return m.a
}

func (m *mesh) take(h *host, n *mnode, o Output) {
	n.ops = append(n.ops, o.DataplaneOps...)
	n.events = append(n.events, o.Events...)
	n.deadline = o.Deadline
	n.done = n.done || o.Done
	for _, s := range o.Bind {
		n.bound[s] = true
	}
	for _, s := range o.Unbind {
		delete(n.bound, s)
	}
	if o.Spawn != nil {
		c := &mnode{ike: o.Spawn.IKE, bound: map[uint64]bool{}}
		h.ms = append(h.ms, c)
		m.take(h, c, o.Spawn.Output)
	}
	for _, d := range o.Datagrams {
		pk := mpacket{from: h, to: m.other(h), sent: d,
			dg: Datagram{Local: d.Remote, Remote: d.Local, Data: bytes.Clone(d.Data)}}
		if m.cut != nil && m.cut(pk) {
			continue
		}
		if m.rewrite != nil {
			m.rewrite(&pk)
		}
		m.seen = append(m.seen, pk)
		m.wire = append(m.wire, pk)
	}
}

// route finds the machine bound to the datagram's local SPI.
func (m *mesh) route(pk mpacket) *mnode {
	h, err := ike.DecodeHeader(pk.dg.Data)
	if err != nil {
		return nil
	}
	spi := h.SPIi
	if h.IsInitiator() {
		spi = h.SPIr
	}
	for _, n := range pk.to.ms {
		if n.bound[spi] && !n.done {
			return n
		}
	}
	return nil
}

func (m *mesh) step() bool {
	if len(m.wire) > 0 {
		pk := m.wire[0]
		m.wire = m.wire[1:]
		if n := m.route(pk); n != nil {
			if m.onDeliver != nil {
				m.onDeliver(pk, n)
			}
			m.take(pk.to, n, n.ike.Handle(m.now, pk.dg))
		}
		return true
	}
	h, n := m.earliest()
	if n == nil {
		return false
	}
	if n.deadline.After(m.now) {
		m.now = n.deadline
	}
	m.take(h, n, n.ike.Handle(m.now, Tick{}))
	return true
}

func (m *mesh) earliest() (*host, *mnode) {
	var bh *host
	var bn *mnode
	for _, h := range []*host{m.a, m.b} {
		for _, n := range h.ms {
			if !n.done && !n.deadline.IsZero() && (bn == nil || n.deadline.Before(bn.deadline)) {
				bh, bn = h, n
			}
		}
	}
	return bh, bn
}

// settle delivers everything in flight without moving the clock.
func (m *mesh) settle() {
	for range 10000 {
		if len(m.wire) == 0 {
			return
		}
		m.step()
	}
	m.t.Fatalf("mesh did not settle")
}

// advance moves the clock by d, firing deadlines on the way.
func (m *mesh) advance(d time.Duration) {
	end := m.now.Add(d)
	for range 100000 {
		m.settle()
		h, n := m.earliest()
		if n == nil || n.deadline.After(end) {
			m.now = end
			return
		}
		if n.deadline.After(m.now) {
			m.now = n.deadline
		}
		m.take(h, n, n.ike.Handle(m.now, Tick{}))
	}
	m.t.Fatalf("advance did not finish")
}

func (m *mesh) command(h *host, n *mnode, c Command) {
	m.take(h, n, n.ike.Handle(m.now, c))
}

func (n *mnode) count(k EventKind) int {
	c := 0
	for _, e := range n.events {
		if e.Kind == k {
			c++
		}
	}
	return c
}

func (n *mnode) last(k EventKind) (Event, bool) {
	for i := len(n.events) - 1; i >= 0; i-- {
		if n.events[i].Kind == k {
			return n.events[i], true
		}
	}
	return Event{}, false
}

// updates returns the OpUpdateSA operations after the first skip ops.
func (n *mnode) updates(skip int) []DataplaneOp {
	var out []DataplaneOp
	for _, o := range n.ops[skip:] {
		if o.Kind == OpUpdateSA {
			out = append(out, o)
		}
	}
	return out
}

// peek decrypts a datagram with the keys of the machine it goes to.
func peek(t testing.TB, recv *IKE, data []byte) (ike.Header, []ike.Payload) {
	t.Helper()
	h, err := ike.DecodeHeader(data)
	if err != nil {
		t.Fatal(err)
	}
	ss := recv.sessionFor(h)
	msg, err := ike.Decode(data)
	if err == nil && ss != nil {
		err = ss.ciphers() // parked while idle
	}
	if err != nil || ss == nil {
		t.Fatalf("cannot open %v: %v", h.Exchange, err)
	}
	sk, ok := msg.Payloads[len(msg.Payloads)-1].(*ike.Encrypted)
	if !ok {
		t.Fatalf("not an SK message")
	}
	buf := bytes.Clone(data)
	off, err := ike.EncryptedOffset(buf)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := transform.OpenPayload(ss.in, buf, off)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := ike.DecodePayloads(sk.First, inner)
	if err != nil {
		t.Fatal(err)
	}
	return h, ps
}

func notifyIn(ps []ike.Payload, t ike.NotifyType) *ike.Notify {
	for _, n := range payloadsOf[*ike.Notify](ps) {
		if n.NotifyType == t {
			return n
		}
	}
	return nil
}

// mobikeMesh establishes a MOBIKE IKE SA between a (192.0.2.1, also
// 192.0.2.2) and b (198.51.100.1, also 198.51.100.2).
func mobikeMesh(t *testing.T, seed uint64, edit func(ini, resp *Config)) *mesh {
	t.Helper()
	p := establish(t, seed, func(ini, resp *Config) {
		ini.MOBIKE, resp.MOBIKE = true, true
		ini.AdditionalAddrs = []netip.Addr{ip2I}
		resp.AdditionalAddrs = []netip.Addr{ip2R}
		if edit != nil {
			edit(ini, resp)
		}
	})
	m := meshFrom(p)
	if l, r := m.a.ms[0].ike.Info().Local, m.a.ms[0].ike.Info().Remote; l != at4500(ip1I) || r != at4500(ip1R) {
		t.Fatalf("initiator on %v -> %v, want port 4500 (RFC 4555 §3.3)", l, r)
	}
	return m
}

// checkPair fails unless both ends' IKE SAs and every update of their
// Child SAs are on the pair (a's view).
func checkPair(t *testing.T, a, b *mnode, local, remote netip.AddrPort, skipA, skipB int) {
	t.Helper()
	if i := a.ike.Info(); i.Local != local || i.Remote != remote {
		t.Errorf("a on %v -> %v, want %v -> %v", i.Local, i.Remote, local, remote)
	}
	if i := b.ike.Info(); i.Local != remote || i.Remote != local {
		t.Errorf("b on %v -> %v, want %v -> %v", i.Local, i.Remote, remote, local)
	}
	for _, side := range []struct {
		n             *mnode
		skip          int
		local, remote netip.AddrPort
	}{{a, skipA, local, remote}, {b, skipB, remote, local}} {
		ups := side.n.updates(side.skip)
		kids := side.n.ike.Info().Children
		if len(ups) != 2*len(kids) || len(kids) == 0 {
			t.Errorf("%d OpUpdateSA for %d Child SAs", len(ups), len(kids))
		}
		for _, c := range kids {
			for _, d := range []struct {
				spi uint32
				dir dataplane.Direction
			}{{c.InSPI, dataplane.In}, {c.OutSPI, dataplane.Out}} {
				if !slices.ContainsFunc(ups, func(o DataplaneOp) bool {
					return o.SPI == d.spi && o.Dir == d.dir && o.Update.Local == side.local && o.Update.Remote == side.remote
				}) {
					t.Errorf("no OpUpdateSA of %08x/%v to %v -> %v: %v", d.spi, d.dir, side.local, side.remote, ups)
				}
			}
		}
	}
}

func TestMOBIKEAnnounce(t *testing.T) {
	m := mobikeMesh(t, 300, nil)
	a, b := m.a.ms[0], m.b.ms[0]
	// IKE_AUTH carried the lists both ways (RFC 4555 §3.4).
	if got := a.ike.Info().PeerAddrs; !slices.Equal(got, []netip.Addr{ip2R}) {
		t.Fatalf("initiator learnt %v", got)
	}
	if got := b.ike.Info().PeerAddrs; !slices.Equal(got, []netip.Addr{ip2I}) {
		t.Fatalf("responder learnt %v", got)
	}
	if !a.ike.Info().Capabilities.MOBIKE || !b.ike.Info().Capabilities.MOBIKE {
		t.Fatal("MOBIKE not negotiated")
	}
	for _, tc := range []struct {
		name  string
		from  *host
		addrs []netip.Addr
		want  []netip.Addr
		nonot bool // NO_ADDITIONAL_ADDRESSES expected
	}{
		{"responder adds one", m.b, []netip.Addr{ip2R, ip3R}, []netip.Addr{ip2R, ip3R}, false},
		{"the address in use is not announced", m.b, []netip.Addr{ip1R, ip3R}, []netip.Addr{ip3R}, false},
		{"initiator has no other", m.a, nil, nil, true},
		{"initiator again", m.a, []netip.Addr{ip2I, netip.MustParseAddr("2001:db8::1")}, []netip.Addr{ip2I, netip.MustParseAddr("2001:db8::1")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from, to := a, b
			if tc.from == m.b {
				from, to = b, a
			}
			var sawNoAddr bool
			m.onDeliver = func(pk mpacket, n *mnode) {
				if n == to && pk.from == tc.from {
					if h, ps := peek(t, n.ike, pk.dg.Data); !h.IsResponse() && notifyIn(ps, ike.NoAdditionalAddresses) != nil {
						sawNoAddr = true
					}
				}
			}
			before := to.count(EventPeerAddresses)
			m.command(tc.from, from, Command{Kind: CmdAnnounce, Addrs: tc.addrs})
			m.settle()
			m.onDeliver = nil
			if got := to.ike.Info().PeerAddrs; !slices.Equal(got, tc.want) {
				t.Errorf("peer addresses %v, want %v", got, tc.want)
			}
			e, ok := to.last(EventPeerAddresses)
			if !ok || to.count(EventPeerAddresses) != before+1 || !slices.Equal(e.PeerAddrs, tc.want) {
				t.Errorf("event %+v", e)
			}
			if sawNoAddr != tc.nonot {
				t.Errorf("NO_ADDITIONAL_ADDRESSES sent: %v", sawNoAddr)
			}
			if !slices.Equal(from.ike.Info().LocalAddrs, tc.addrs) {
				t.Errorf("LocalAddrs %v", from.ike.Info().LocalAddrs)
			}
		})
	}
	if a.count(EventMigrated)+b.count(EventMigrated) != 0 || a.ike.State() != StateEstablished {
		t.Fatal("an announcement moved something")
	}
}

func TestMOBIKEMigrate(t *testing.T) {
	m := mobikeMesh(t, 301, nil)
	a, b := m.a.ms[0], m.b.ms[0]
	skipA, skipB := len(a.ops), len(b.ops)
	newL, newR := at4500(ip2I), at4500(ip2R)
	var kinds []string
	var cookie []byte
	m.onDeliver = func(pk mpacket, n *mnode) {
		if pk.from != m.a || n != b {
			return
		}
		h, ps := peek(t, b.ike, pk.dg.Data)
		if h.IsResponse() {
			return
		}
		onNew := pk.sent.Local == newL && pk.sent.Remote == newR
		switch {
		case notifyIn(ps, ike.UpdateSAAddresses) != nil:
			kinds = append(kinds, "update")
			if !onNew || b.count(EventMigrated) != 0 {
				t.Errorf("UPDATE_SA_ADDRESSES on %v -> %v", pk.sent.Local, pk.sent.Remote)
			}
			c := notifyIn(ps, ike.Cookie2)
			if c == nil || len(c.Data) != cookie2Len || notifyIn(ps, ike.NATDetectionSourceIP) == nil || notifyIn(ps, ike.NoNATsAllowed) == nil {
				t.Errorf("UPDATE_SA_ADDRESSES without COOKIE2, NAT-D or NO_NATS_ALLOWED: %v", ps)
			} else {
				cookie = c.Data
			}
		case notifyIn(ps, ike.NATDetectionSourceIP) != nil && onNew:
			kinds = append(kinds, "path_test")
		}
	}
	m.command(m.a, a, Command{Kind: CmdMigrate, Local: newL, Remote: newR})
	m.settle()
	if !slices.Equal(kinds, []string{"path_test", "update"}) {
		t.Fatalf("exchanges on the new path: %v, want a path test, then the update", kinds)
	}
	if cookie == nil {
		t.Fatal("no COOKIE2")
	}
	checkPair(t, a, b, newL, newR, skipA, skipB)
	ea, _ := a.last(EventMigrated)
	eb, _ := b.last(EventMigrated)
	if ea.Reason != ReasonAddressChange || ea.OldLocal != at4500(ip1I) || ea.Local != newL || ea.Remote != newR {
		t.Errorf("initiator event %+v", ea)
	}
	if eb.Reason != ReasonPeerUpdate || eb.OldRemote != at4500(ip1I) || eb.Remote != newL || eb.Local != newR {
		t.Errorf("responder event %+v", eb)
	}
	if a.ike.Info().RTT < 0 {
		t.Errorf("RTT %v", a.ike.Info().RTT)
	}
	// Later exchanges use the new pair, and the Child SAs keep working.
	m.onDeliver = nil
	n := len(m.seen)
	m.command(m.b, b, Command{Kind: CmdLiveness})
	m.command(m.a, a, Command{Kind: CmdRekeyChild, SPI: a.ike.Info().Children[0].InSPI})
	m.settle()
	for _, pk := range m.seen[n:] {
		if pk.from == m.a && (pk.sent.Local != newL || pk.sent.Remote != newR) || pk.from == m.b && (pk.sent.Local != newR || pk.sent.Remote != newL) {
			t.Errorf("%s sent on %v -> %v after the move", pk.from.name, pk.sent.Local, pk.sent.Remote)
		}
	}
	if a.count(EventChildRekeyed) != 1 || a.ike.State() != StateEstablished || b.ike.State() != StateEstablished {
		t.Fatalf("after the move: %v / %v", a.events, b.events)
	}
	for _, c := range a.ike.Info().Children {
		if c.State == "installed" && len(a.ops) > 0 {
			var add *dataplane.SA
			for i := range a.ops {
				if a.ops[i].Kind == OpAddSA && a.ops[i].SA.SPI == c.OutSPI {
					add = &a.ops[i].SA
				}
			}
			if add == nil || add.Local != newL || add.Remote != newR {
				t.Errorf("rekeyed Child SA not on the new pair: %+v", add)
			}
		}
	}
}

// A move the responder's policy refuses: UNACCEPTABLE_ADDRESSES, and
// nothing moves on either side.
func TestMOBIKEMigrateRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		accept func(l, r netip.AddrPort) bool
		notify ike.NotifyType
	}{
		{"policy refuses the new peer address", func(l, r netip.AddrPort) bool { return r.Addr() != ip2I }, ike.UnacceptableAddresses},
		{"policy refuses the local address", func(l, r netip.AddrPort) bool { return l.Addr() == ip1R }, ike.UnacceptableAddresses},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mobikeMesh(t, 302, func(_, resp *Config) { resp.AcceptAddress = tc.accept })
			a, b := m.a.ms[0], m.b.ms[0]
			skipA, skipB := len(a.ops), len(b.ops)
			m.command(m.a, a, Command{Kind: CmdMigrate, Local: at4500(ip2I), Remote: at4500(ip2R)})
			m.settle()
			e, ok := a.last(EventMigrateFailed)
			if !ok || e.Notify != tc.notify || e.Reason != ReasonPeerError {
				t.Fatalf("failure event %+v", e)
			}
			if len(a.updates(skipA))+len(b.updates(skipB)) != 0 || a.count(EventMigrated)+b.count(EventMigrated) != 0 {
				t.Fatal("something moved")
			}
			if a.ike.Info().Local != at4500(ip1I) || b.ike.Info().Remote != at4500(ip1I) || a.ike.State() != StateEstablished {
				t.Fatalf("addresses changed: %+v", a.ike.Info())
			}
		})
	}
}

// The path test is not answered: the move fails, nothing changes, and
// the IKE SA's Message IDs stay in step.
func TestMOBIKEPathTestFails(t *testing.T) {
	m := mobikeMesh(t, 303, nil)
	a, b := m.a.ms[0], m.b.ms[0]
	skipA, skipB := len(a.ops), len(b.ops)
	m.cut = func(pk mpacket) bool { return pk.sent.Local.Addr() == ip2I || pk.sent.Remote.Addr() == ip2I }
	start := m.now
	m.command(m.a, a, Command{Kind: CmdMigrate, Local: at4500(ip2I), Remote: at4500(ip1R)})
	m.command(m.a, a, Command{Kind: CmdProbe, Local: at4500(ip2I), Remote: at4500(ip2R)})
	m.advance(time.Minute)
	e, ok := a.last(EventMigrateFailed)
	if !ok || e.Reason != ReasonTimeout {
		t.Fatalf("failure event %+v / %v", e, a.events)
	}
	pe, ok := a.last(EventProbe)
	if !ok || pe.OK || pe.Remote != at4500(ip2R) {
		t.Fatalf("probe event %+v", pe)
	}
	if a.ike.Info().Stats.Retransmits == 0 || m.now.Sub(start) < a.ike.pathTestBudget() {
		t.Errorf("path test given up too early")
	}
	if len(a.updates(skipA))+len(b.updates(skipB)) != 0 || a.count(EventMigrated)+b.count(EventMigrated) != 0 {
		t.Fatal("something moved")
	}
	if a.ike.State() != StateEstablished || b.ike.State() != StateEstablished {
		t.Fatalf("IKE SA lost: %v", a.events)
	}
	m.cut = nil
	m.command(m.a, a, Command{Kind: CmdProbe, Local: at4500(ip2I), Remote: at4500(ip2R)})
	m.command(m.a, a, Command{Kind: CmdRekeyChild, SPI: a.ike.Info().Children[0].InSPI})
	m.advance(10 * time.Second)
	if pe, _ := a.last(EventProbe); !pe.OK || pe.RTT < 0 || pe.Local != at4500(ip2I) {
		t.Errorf("probe on a working path: %+v", pe)
	}
	if a.count(EventChildRekeyed) != 1 || a.ike.State() != StateEstablished {
		t.Fatalf("exchanges after the failed test: %v", a.events)
	}
	if a.ike.Info().Local != at4500(ip1I) {
		t.Fatal("a probe moved the IKE SA")
	}
}

// The address changes again while the path test waits (§3.5 step 6): the
// move goes to the newest pair only.
func TestMOBIKEAddressChangeWhileWaiting(t *testing.T) {
	m := mobikeMesh(t, 304, nil)
	a, b := m.a.ms[0], m.b.ms[0]
	skipA, skipB := len(a.ops), len(b.ops)
	first := [2]netip.AddrPort{at4500(ip2I), at4500(ip1R)}
	m.cut = func(pk mpacket) bool { return pk.sent.Local.Addr() == ip2I && pk.sent.Remote.Addr() == ip1R }
	m.command(m.a, a, Command{Kind: CmdMigrate, Local: first[0], Remote: first[1]})
	m.advance(1500 * time.Millisecond) // one retransmission of the test
	newL, newR := at4500(ip1I), at4500(ip2R)
	m.command(m.a, a, Command{Kind: CmdMigrate, Local: newL, Remote: newR})
	// The waiting test is sent again on the new pair at once, rather than
	// after its own time is up.
	m.advance(time.Second)
	if a.count(EventMigrated) != 1 {
		t.Fatalf("not moved at once: %v", a.events)
	}
	m.advance(30 * time.Second)
	if a.count(EventMigrated) != 1 || a.count(EventMigrateFailed) != 0 {
		t.Fatalf("events %v", a.events)
	}
	checkPair(t, a, b, newL, newR, skipA, skipB)
}

// The address changes again after UPDATE_SA_ADDRESSES went out: the peer
// took the first pair, so both ends follow it, then move to the newest.
func TestMOBIKEAddressChangeAfterUpdate(t *testing.T) {
	m := mobikeMesh(t, 312, nil)
	a, b := m.a.ms[0], m.b.ms[0]
	skipA, skipB := len(a.ops), len(b.ops)
	first := [2]netip.AddrPort{at4500(ip2I), at4500(ip1R)}
	newL, newR := at4500(ip1I), at4500(ip2R)
	m.onDeliver = func(pk mpacket, n *mnode) {
		if n != b || pk.from != m.a {
			return
		}
		if _, ps := peek(t, b.ike, pk.dg.Data); notifyIn(ps, ike.UpdateSAAddresses) != nil && pk.sent.Local == first[0] {
			m.onDeliver = nil
			m.command(m.a, a, Command{Kind: CmdMigrate, Local: newL, Remote: newR})
		}
	}
	m.command(m.a, a, Command{Kind: CmdMigrate, Local: first[0], Remote: first[1]})
	m.advance(30 * time.Second)
	if a.count(EventMigrateFailed) != 0 || b.count(EventMigrated) != 2 {
		t.Fatalf("events %v / %v", a.events, b.events)
	}
	if e, _ := a.last(EventMigrated); e.Local != newL || e.Remote != newR {
		t.Fatalf("last move %+v", e)
	}
	checkPair(t, a, b, newL, newR, len(a.ops)-2*len(a.ike.Info().Children), len(b.ops)-2*len(b.ike.Info().Children))
	if len(a.updates(skipA)) != 4 || len(b.updates(skipB)) != 4 {
		t.Errorf("%d and %d updates, want two moves", len(a.updates(skipA)), len(b.updates(skipB)))
	}
}

// NO_NATS_ALLOWED (RFC 4555 §3.9): a NAT appears on the new path after the
// path test. The responder answers UNEXPECTED_NAT_DETECTED; with NATs
// forbidden nothing moves, otherwise the update is retried without it
// and the SAs move with UDP encapsulation.
func TestMOBIKENoNATsAllowed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		forbid  bool
		moved   bool
		updates int
	}{
		{"NATs forbidden", true, false, 1},
		{"fall back to NAT-T", false, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mobikeMesh(t, 305, func(ini, _ *Config) { ini.NoNATsAllowed = tc.forbid })
			a, b := m.a.ms[0], m.b.ms[0]
			skipA, skipB := len(a.ops), len(b.ops)
			newL, newR := at4500(ip2I), at4500(ip1R)
			updates := 0
			m.rewrite = func(pk *mpacket) {
				switch {
				case pk.from == m.a && pk.sent.Local == newL:
					if _, ps := peek(t, b.ike, pk.dg.Data); notifyIn(ps, ike.UpdateSAAddresses) != nil {
						updates++
						pk.dg.Remote = natHop // only the update crosses the NAT
					}
				case pk.from == m.b && pk.sent.Remote == natHop:
					pk.dg.Local = newL
				}
			}
			m.command(m.a, a, Command{Kind: CmdMigrate, Local: newL, Remote: newR})
			m.settle()
			if updates != tc.updates {
				t.Errorf("%d updates sent, want %d", updates, tc.updates)
			}
			if !tc.moved {
				e, ok := a.last(EventMigrateFailed)
				if !ok || e.Notify != ike.UnexpectedNATDetected {
					t.Fatalf("failure event %+v", e)
				}
				if len(a.updates(skipA))+len(b.updates(skipB)) != 0 || b.count(EventMigrated) != 0 {
					t.Fatal("something moved")
				}
				return
			}
			if a.count(EventMigrated) != 1 || b.count(EventMigrated) != 1 {
				t.Fatalf("events %v / %v", a.events, b.events)
			}
			if i := b.ike.Info(); i.Remote != natHop || !i.NATRemote {
				t.Errorf("responder on %v nat=%v, want the NAT's address", i.Remote, i.NATRemote)
			}
			if i := a.ike.Info(); i.Local != newL || !i.NATLocal {
				t.Errorf("initiator on %v nat=%v", i.Local, i.NATLocal)
			}
			for _, o := range append(a.updates(skipA), b.updates(skipB)...) {
				if !o.Update.Encap {
					t.Errorf("%v without UDP encapsulation behind a NAT", o)
				}
			}
			for _, o := range b.updates(skipB) {
				if o.Update.Remote != natHop {
					t.Errorf("responder SA to %v", o.Update.Remote)
				}
			}
		})
	}
}

// Both ends lose the link in use at once (192.0.2.1 and 198.51.100.1):
// the initiator's unanswered liveness check goes out on the other pairs,
// 192.0.2.2 -> 198.51.100.2 answers and the SAs move there. With no
// working pair the peer is declared dead.
func TestMOBIKERecovery(t *testing.T) {
	for _, tc := range []struct {
		name  string
		works func(l, r netip.Addr) bool
		moved bool
	}{
		{"the other addresses of both ends", func(l, r netip.Addr) bool { return l == ip2I && r == ip2R }, true},
		{"only the peer's other address", func(l, r netip.Addr) bool { return l == ip1I && r == ip2R }, true},
		{"nothing works", func(l, r netip.Addr) bool { return false }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mobikeMesh(t, 306, func(ini, _ *Config) { ini.DPD = 20 * time.Second })
			a, b := m.a.ms[0], m.b.ms[0]
			skipA, skipB := len(a.ops), len(b.ops)
			m.cut = func(pk mpacket) bool {
				l, r := pk.sent.Local.Addr(), pk.sent.Remote.Addr()
				if pk.from == m.b {
					l, r = r, l
				}
				return !tc.works(l, r)
			}
			m.advance(2 * time.Minute)
			if !tc.moved {
				if e, ok := a.last(EventIKEDown); !ok || e.Reason != ReasonDPDTimeout || a.count(EventMigrated) != 0 {
					t.Fatalf("events %v", a.events)
				}
				return
			}
			e, ok := a.last(EventMigrated)
			if !ok || e.Reason != ReasonPathFailed || a.ike.State() != StateEstablished {
				t.Fatalf("initiator events %v", a.events)
			}
			var l, r netip.Addr
			for _, x := range []netip.Addr{ip1I, ip2I} {
				for _, y := range []netip.Addr{ip1R, ip2R} {
					if tc.works(x, y) {
						l, r = x, y
					}
				}
			}
			checkPair(t, a, b, at4500(l), at4500(r), skipA, skipB)
			if eb, _ := b.last(EventMigrated); eb.Reason != ReasonPeerUpdate {
				t.Errorf("responder event %+v", eb)
			}
			// Liveness checks keep passing on the new pair.
			m.advance(2 * time.Minute)
			if a.ike.State() != StateEstablished || b.ike.State() != StateEstablished || a.count(EventMigrated) != 1 {
				t.Fatalf("after recovery: %v", a.events)
			}
		})
	}
}

// The MOBIKE responder never moves the SAs (RFC 4555 §1.3): CmdMigrate is
// refused and its unanswered requests stay on the path in use.
func TestMOBIKEResponderDoesNotMove(t *testing.T) {
	m := mobikeMesh(t, 307, func(_, resp *Config) { resp.DPD = 20 * time.Second })
	a, b := m.a.ms[0], m.b.ms[0]
	sent := len(m.seen)
	m.command(m.b, b, Command{Kind: CmdMigrate, Local: at4500(ip2R), Remote: at4500(ip1I)})
	if e, ok := b.last(EventMigrateFailed); !ok || e.Reason != ReasonNotMOBIKEInitiator {
		t.Fatalf("event %+v", e)
	}
	if len(m.wire) != 0 || len(m.seen) != sent {
		t.Fatal("the refused move sent something")
	}
	if b.ike.Info().MOBIKEInitiator || !a.ike.Info().MOBIKEInitiator {
		t.Fatal("MOBIKEInitiator wrong")
	}
	var tried []mpacket
	m.cut = func(pk mpacket) bool {
		if pk.from == m.b {
			tried = append(tried, pk)
		}
		return true
	}
	m.advance(3 * time.Minute)
	if e, ok := b.last(EventIKEDown); !ok || e.Reason != ReasonDPDTimeout {
		t.Fatalf("responder events %v", b.events)
	}
	if len(tried) < 3 {
		t.Fatalf("%d retransmissions", len(tried))
	}
	for _, pk := range tried {
		if pk.sent.Local != at4500(ip1R) || pk.sent.Remote != at4500(ip1I) {
			t.Errorf("responder tried %v -> %v", pk.sent.Local, pk.sent.Remote)
		}
	}
}

// A peer without MOBIKE: no move, no probe, nothing sent.
func TestMOBIKENotNegotiated(t *testing.T) {
	m := mobikeMesh(t, 308, func(_, resp *Config) { resp.MOBIKE = false })
	a := m.a.ms[0]
	sent := len(m.seen)
	m.command(m.a, a, Command{Kind: CmdMigrate, Local: at4500(ip2I), Remote: at4500(ip1R)})
	m.command(m.a, a, Command{Kind: CmdProbe, Local: at4500(ip2I), Remote: at4500(ip1R)})
	m.command(m.a, a, Command{Kind: CmdAnnounce, Addrs: []netip.Addr{ip2I}})
	if e, ok := a.last(EventMigrateFailed); !ok || e.Reason != ReasonUnsupported {
		t.Fatalf("event %+v", e)
	}
	if e, ok := a.last(EventProbe); !ok || e.OK || e.Reason != ReasonUnsupported {
		t.Fatalf("event %+v", e)
	}
	if len(m.seen) != sent || len(m.b.ms[0].ike.Info().PeerAddrs) != 0 {
		t.Fatal("sent MOBIKE messages to a peer without MOBIKE")
	}
}

// An IKE rekey by the responder swaps the IKEv2 roles but not the MOBIKE
// initiator (RFC 4555 §1.3, PROTOCOL.md P10).
func TestMOBIKEInitiatorSurvivesRekey(t *testing.T) {
	m := mobikeMesh(t, 309, nil)
	a, b := m.a.ms[0], m.b.ms[0]
	m.command(m.b, b, Command{Kind: CmdRekeyIKE})
	m.advance(30 * time.Second)
	if b.count(EventIKERekeyed) != 1 || a.ike.Info().Role != Responder || b.ike.Info().Role != Initiator {
		t.Fatalf("rekey: %v, roles %v/%v", b.events, a.ike.Info().Role, b.ike.Info().Role)
	}
	if !a.ike.Info().MOBIKEInitiator || b.ike.Info().MOBIKEInitiator {
		t.Fatal("the MOBIKE initiator moved with the rekey")
	}
	m.command(m.b, b, Command{Kind: CmdMigrate, Local: at4500(ip2R), Remote: at4500(ip1I)})
	if e, _ := b.last(EventMigrateFailed); e.Reason != ReasonNotMOBIKEInitiator {
		t.Fatalf("responder moved: %+v", e)
	}
	skipA, skipB := len(a.ops), len(b.ops)
	m.command(m.a, a, Command{Kind: CmdMigrate, Local: at4500(ip2I), Remote: at4500(ip1R)})
	m.settle()
	checkPair(t, a, b, at4500(ip2I), at4500(ip1R), skipA, skipB)
}

// A COOKIE2 that does not come back closes the IKE SA (RFC 4555 §3.7).
func TestMOBIKECookie2Mismatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		echo []byte
	}{
		{"altered", bytes.Repeat([]byte{7}, cookie2Len)},
		{"missing", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mobikeMesh(t, 310, nil)
			a := m.a.ms[0]
			s := a.ike
			mg := &migration{local: at4500(ip2I), remote: at4500(ip1R), reason: ReasonAddressChange}
			s.mobState().mig = mg
			s.takeOutput()
			s.sendUpdate(m.now, mg, true)
			r := mg.req
			var ps []ike.Payload
			if tc.echo != nil {
				ps = append(ps, &ike.Notify{NotifyType: ike.Cookie2, Data: tc.echo})
			}
			r.onResp(m.now, &inbound{hdr: ike.Header{Exchange: ike.Informational, Flags: ike.FlagResponse}, payloads: ps,
				dg: Datagram{Local: mg.local, Remote: mg.remote}})
			if s.State() != StateClosed || s.Info().DownReason != ReasonProtocolError || len(s.Info().Children) != 0 {
				t.Fatalf("state %v reason %v", s.State(), s.Info().DownReason)
			}
			if s.o != nil && slices.ContainsFunc(s.o.Events, func(e Event) bool { return e.Kind == EventMigrated }) {
				t.Fatal("moved")
			}
		})
	}
}

func TestNoNATsData(t *testing.T) {
	for _, tc := range []struct {
		src, dst netip.AddrPort
		n        int
	}{
		{netip.MustParseAddrPort("192.0.2.1:4500"), netip.MustParseAddrPort("198.51.100.1:4500"), 12},
		{netip.MustParseAddrPort("[2001:db8::1]:4500"), netip.MustParseAddrPort("[2001:db8::2]:500"), 36},
	} {
		b := noNATsData(tc.src, tc.dst)
		src, dst, ok := parseNoNATs(b)
		if len(b) != tc.n || !ok || src != tc.src || dst != tc.dst {
			t.Errorf("%v %v: %x -> %v %v %v", tc.src, tc.dst, b, src, dst, ok)
		}
	}
	for _, bad := range [][]byte{nil, make([]byte, 11), make([]byte, 13), make([]byte, 35)} {
		if _, _, ok := parseNoNATs(bad); ok {
			t.Errorf("%d octets accepted", len(bad))
		}
	}
}

// A move and an IKE rekey at the same time: the NAT-D of the path test
// and of the update follow the IKE SA that carries them, so no NAT is
// seen where there is none.
func TestMOBIKEMigrateDuringIKERekey(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rekeyB bool // the responder rekeys
	}{
		{"initiator rekeys first", false},
		{"responder rekeys first", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mobikeMesh(t, 311, nil)
			a, b := m.a.ms[0], m.b.ms[0]
			skipA, skipB := len(a.ops), len(b.ops)
			if tc.rekeyB {
				m.command(m.b, b, Command{Kind: CmdRekeyIKE})
			} else {
				m.command(m.a, a, Command{Kind: CmdRekeyIKE})
			}
			m.command(m.a, a, Command{Kind: CmdMigrate, Local: at4500(ip2I), Remote: at4500(ip1R)})
			m.advance(time.Minute)
			if a.count(EventIKERekeyed) != 1 || a.count(EventMigrated) != 1 || b.count(EventMigrated) != 1 {
				t.Fatalf("events %v / %v", a.events, b.events)
			}
			checkPair(t, a, b, at4500(ip2I), at4500(ip1R), skipA, skipB)
			for _, n := range []*mnode{a, b} {
				if i := n.ike.Info(); i.NATLocal || i.NATRemote {
					t.Errorf("a NAT seen: %+v", i)
				}
				for _, o := range n.updates(0) {
					if o.Update.Encap {
						t.Errorf("UDP encapsulation without a NAT: %v", o)
					}
				}
			}
		})
	}
}

// FuzzMOBIKEInformational sends arbitrary payload chains, properly
// protected, from any address, to an established MOBIKE responder: no
// panic, bounded output, and the SAs move only on UPDATE_SA_ADDRESSES, to
// the pair the request came on and never to one the policy refuses.
func FuzzMOBIKEInformational(f *testing.F) {
	v4 := netip.MustParseAddr("192.0.2.9").AsSlice()
	for _, ps := range [][]ike.Payload{
		{&ike.Notify{NotifyType: ike.UpdateSAAddresses}, &ike.Notify{NotifyType: ike.NATDetectionSourceIP, Data: make([]byte, 20)},
			&ike.Notify{NotifyType: ike.NATDetectionDestinationIP, Data: make([]byte, 20)},
			&ike.Notify{NotifyType: ike.NoNATsAllowed, Data: noNATsData(at4500(ip2I), at4500(ip1R))},
			&ike.Notify{NotifyType: ike.Cookie2, Data: make([]byte, 16)}},
		{&ike.Notify{NotifyType: ike.UpdateSAAddresses}, &ike.Notify{NotifyType: ike.NoNATsAllowed, Data: []byte{1, 2, 3}}},
		{&ike.Notify{NotifyType: ike.AdditionalIP4Address, Data: v4}, &ike.Notify{NotifyType: ike.AdditionalIP6Address, Data: make([]byte, 16)}},
		{&ike.Notify{NotifyType: ike.NoAdditionalAddresses}, &ike.Notify{NotifyType: ike.AdditionalIP4Address, Data: v4[:3]}},
		{&ike.Notify{NotifyType: ike.Cookie2, Data: make([]byte, 100)}, &ike.Notify{NotifyType: ike.NATDetectionSourceIP}},
		{&ike.Delete{Protocol: ike.ProtoIKE}, &ike.Notify{NotifyType: ike.UpdateSAAddresses}},
	} {
		first, inner, err := ike.EncodePayloads(ps)
		if err != nil {
			f.Fatal(err)
		}
		for from := range uint8(4) {
			f.Add(uint8(first), inner, from)
		}
	}
	f.Fuzz(func(t *testing.T, first uint8, inner []byte, from uint8) {
		ps, err := ike.DecodePayloads(ike.PayloadType(first), inner)
		if err != nil {
			return // the codec's own fuzz targets cover that
		}
		m := mobikeMesh(t, 320, func(_, resp *Config) {
			resp.AcceptAddress = func(l, r netip.AddrPort) bool { return r.Addr() != ip3R }
		})
		a, b := m.a.ms[0].ike, m.b.ms[0]
		srcs := []netip.AddrPort{at4500(ip1I), at4500(ip2I), at4500(ip3R), natHop}
		src := srcs[int(from)%len(srcs)]
		ss := a.cur
		pk, err := a.seal(ss, ss.header(ike.Informational, ss.nextReq, false), ps, src, at4500(ip1R), nil)
		if err != nil {
			return
		}
		ss.nextReq++
		before := b.ike.Info()
		for _, d := range pk {
			check(t, b.ike, b.ike.Handle(m.now, Datagram{Local: at4500(ip1R), Remote: src, Data: d}))
		}
		after := b.ike.Info()
		if after.Remote != before.Remote && (after.Remote != src || notifyIn(ps, ike.UpdateSAAddresses) == nil) {
			t.Fatalf("moved to %v on %v from %v", after.Remote, ps, src)
		}
		if after.Remote.Addr() == ip3R {
			t.Fatal("moved to an address the policy refuses")
		}
	})
}

// A responder whose address in use is gone sends its new list on the
// pair the glue gives (RFC 4555 §3.6); the initiator learns it with the
// pair it came on, and nothing moves until the initiator decides.
func TestMOBIKEAnnouncePinned(t *testing.T) {
	m := mobikeMesh(t, 310, nil)
	a, b := m.a.ms[0], m.b.ms[0]
	// The responder's address in use (ip1R) no longer sends or receives.
	m.cut = func(pk mpacket) bool {
		return pk.sent.Local.Addr() == ip1R || pk.sent.Remote.Addr() == ip1R
	}
	for _, tc := range []struct {
		name          string
		local, remote netip.AddrPort // the responder's view; zero: the pair in use
		wantL, wantR  netip.AddrPort // the initiator's view of the arrival
	}{
		{"pinned to the other pair", at4500(ip2R), at4500(ip2I), at4500(ip2I), at4500(ip2R)},
		{"the pair in use is not a pin", at4500(ip1R), at4500(ip1I), netip.AddrPort{}, netip.AddrPort{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := a.count(EventPeerAddresses)
			m.command(m.b, b, Command{Kind: CmdAnnounce, Addrs: []netip.Addr{ip2R}, Local: tc.local, Remote: tc.remote})
			m.settle()
			if !tc.wantL.IsValid() {
				// Sent on the pair in use, which is cut: nothing arrives.
				if a.count(EventPeerAddresses) != before {
					t.Fatalf("announcement on the cut pair arrived: %v", a.events)
				}
				return
			}
			e, ok := a.last(EventPeerAddresses)
			if !ok || a.count(EventPeerAddresses) != before+1 || e.Local != tc.wantL || e.Remote != tc.wantR {
				t.Fatalf("event %+v", e)
			}
			if (b.ike.mob != nil && len(b.ike.mob.pins) != 0) || b.ike.cur.req != nil {
				t.Fatalf("the pinned announcement was not answered on its pair")
			}
		})
	}
	if a.count(EventMigrated)+b.count(EventMigrated) != 0 {
		t.Fatal("an announcement moved something")
	}
	if i := b.ike.Info(); i.Local != at4500(ip1R) {
		t.Fatalf("responder on %v", i.Local)
	}
}
