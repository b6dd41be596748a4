package sa

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/transform"
)

var (
	addrI  = netip.MustParseAddrPort("192.0.2.1:500")
	addrR  = netip.MustParseAddrPort("198.51.100.1:500")
	natIP  = netip.MustParseAddr("203.0.113.9")
	epoch  = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	testTS = PrefixTS(netip.MustParsePrefix("10.0.0.0/16"))
)

// detRand is a deterministic random source for a test.
func detRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	return rand.NewChaCha8(s)
}

// spiAlloc is an in-memory SPIAllocator: random, non-zero, unique.
type spiAlloc struct {
	rnd  *rand.Rand
	used map[uint32]bool
	fail bool
}

func newSPIAlloc(seed uint64) *spiAlloc {
	return &spiAlloc{rnd: rand.New(rand.NewPCG(seed, 7)), used: map[uint32]bool{}}
}

func (a *spiAlloc) AllocSPI() (uint32, error) {
	if a.fail {
		return 0, fmt.Errorf("no SPI")
	}
	for {
		v := a.rnd.Uint32()
		if v != 0 && !a.used[v] {
			a.used[v] = true
			return v, nil
		}
	}
}

func (a *spiAlloc) ReleaseSPI(spi uint32) { delete(a.used, spi) }

// testPool hands out 10.10.0.x and fd00::x.
type testPool struct {
	next   int
	leased map[netip.Addr]string
	fail   bool
}

func (p *testPool) Lease(peer string, v6 bool) (netip.Addr, error) {
	if p.fail {
		return netip.Addr{}, fmt.Errorf("pool exhausted")
	}
	if p.leased == nil {
		p.leased = map[netip.Addr]string{}
	}
	p.next++
	a := netip.AddrFrom4([4]byte{10, 10, 0, byte(p.next)})
	if v6 {
		a = netip.AddrFrom16([16]byte{0xfd, 15: byte(p.next)})
	}
	p.leased[a] = peer
	return a, nil
}

func (p *testPool) Release(peer string, a netip.Addr) { delete(p.leased, a) }

func mustProps(t testing.TB, s string, proto ike.ProtocolID) []ike.Proposal {
	t.Helper()
	p, err := transform.ParseProposals(s, proto)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustID(t testing.TB, s string) Identity {
	t.Helper()
	id, err := ParseIdentity(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// pskPair returns matching initiator and responder configs: PSK, a
// virtual IP from a pool, the responder's 10.0.0.0/16 behind it.
func pskPair(t testing.TB) (ini, resp *Config) {
	psk := transform.NewSecret([]byte("correct horse battery staple"))
	ikeP := mustProps(t, "aes256gcm16-prfsha256-x25519", ike.ProtoIKE)
	espP := mustProps(t, "aes256gcm16", ike.ProtoESP)
	ini = &Config{Name: "client", Local: addrI, Remote: addrR, LocalID: mustID(t, "@client.example"),
		RemoteID: mustID(t, "@gw.example"), Auth: Auth{PSK: psk}, IKEProposals: ikeP,
		Children:  []ChildConfig{{Name: "net", RemoteTS: []ike.TrafficSelector{testTS}, Proposals: espP}},
		VirtualIP: VirtualIP{IPv4: true, DNS: true}, SPIs: newSPIAlloc(1),
		Retransmit: Retransmit{Timeout: time.Second, Factor: 2, Tries: 3}}
	resp = &Config{Name: "gw", LocalID: mustID(t, "@gw.example"), Auth: Auth{PSK: psk}, IKEProposals: ikeP,
		Children: []ChildConfig{{Name: "net", LocalTS: []ike.TrafficSelector{testTS}, Proposals: espP}},
		Pool:     &testPool{}, DNS: []netip.Addr{netip.MustParseAddr("10.0.0.53")}, SPIs: newSPIAlloc(2),
		Retransmit: Retransmit{Timeout: time.Second, Factor: 2, Tries: 3}}
	return ini, resp
}

// node is one side of the pump with everything it produced.
type node struct {
	name     string
	ike      *IKE
	ops      []DataplaneOp
	events   []Event
	deadline time.Time
	done     bool
	bound    map[uint64]bool
	sent     int
	spawned  []*Spawned
}

func (n *node) take(o Output) {
	n.ops = append(n.ops, o.DataplaneOps...)
	n.events = append(n.events, o.Events...)
	n.deadline = o.Deadline
	if o.Spawn != nil {
		n.spawned = append(n.spawned, o.Spawn)
	}
	n.done = n.done || o.Done
	if n.bound == nil {
		n.bound = map[uint64]bool{}
	}
	for _, s := range o.Bind {
		n.bound[s] = true
	}
	for _, s := range o.Unbind {
		delete(n.bound, s)
	}
}

func (n *node) count(k EventKind) int {
	c := 0
	for _, e := range n.events {
		if e.Kind == k {
			c++
		}
	}
	return c
}

func (n *node) last(k EventKind) (Event, bool) {
	for i := len(n.events) - 1; i >= 0; i-- {
		if n.events[i].Kind == k {
			return n.events[i], true
		}
	}
	return Event{}, false
}

type packet struct {
	to *node
	dg Datagram
}

// pump connects an initiator and a responder in memory. Time is virtual:
// when nothing is in flight it jumps to the earliest deadline.
type pump struct {
	t       testing.TB
	now     time.Time
	i, r    *node
	rcfg    *Config
	rrng    *rand.ChaCha8
	wire    []packet
	loss    float64 // probability of dropping a datagram
	reorder bool
	nat     bool // the initiator sits behind a NAT (source rewritten)
	rnd     *rand.Rand
	cookies *Cookies
	drop    func(p packet) bool // extra filter; true drops
	seen    []packet            // every datagram put on the wire
	first   *Output             // the initiator's first output, sent on the first step
}

func newPump(t testing.TB, ini, resp *Config, seed uint64) *pump {
	p := &pump{t: t, now: epoch, i: &node{name: "initiator"}, r: &node{name: "responder"}, rcfg: resp,
		rrng: detRand(seed + 100), rnd: rand.New(rand.NewPCG(seed, 99))}
	m, out := NewInitiator(ini, p.now, detRand(seed))
	p.i.ike = m
	p.first = &out
	return p
}

func (p *pump) natOut(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(natIP, ap.Port()+20000)
}

func (p *pump) deliverOut(from *node, o Output) {
	from.take(o)
	for _, d := range o.Datagrams {
		from.sent++
		var to *node
		dg := Datagram{Data: bytes.Clone(d.Data)}
		if from == p.i {
			to = p.r
			dg.Local, dg.Remote = d.Remote, d.Local
			if p.nat {
				dg.Remote = p.natOut(d.Local)
			}
		} else {
			to = p.i
			dg.Local, dg.Remote = d.Remote, d.Local
			if p.nat {
				if d.Remote.Addr() != natIP {
					p.t.Fatalf("responder sent to %v, not to the NAT", d.Remote)
				}
				dg.Local = netip.AddrPortFrom(addrI.Addr(), d.Remote.Port()-20000)
			}
		}
		pk := packet{to: to, dg: dg}
		p.seen = append(p.seen, pk)
		p.wire = append(p.wire, pk)
	}
}

// step delivers one datagram or, with none in flight, fires the earliest
// deadline. It returns false when nothing is left to do.
func (p *pump) step() bool {
	if p.first != nil {
		o := *p.first
		p.first = nil
		p.deliverOut(p.i, o)
		return true
	}
	if len(p.wire) > 0 {
		k := 0
		if p.reorder {
			k = p.rnd.IntN(len(p.wire))
		}
		pk := p.wire[k]
		p.wire = append(p.wire[:k], p.wire[k+1:]...)
		if (p.loss > 0 && p.rnd.Float64() < p.loss) || (p.drop != nil && p.drop(pk)) {
			return true
		}
		p.deliver(pk)
		return true
	}
	var next *node
	for _, n := range []*node{p.i, p.r} {
		if n.ike != nil && !n.done && !n.deadline.IsZero() && (next == nil || n.deadline.Before(next.deadline)) {
			next = n
		}
	}
	if next == nil {
		return false
	}
	if next.deadline.After(p.now) {
		p.now = next.deadline
	}
	p.deliverOut(next, next.ike.Handle(p.now, Tick{}))
	return true
}

func (p *pump) deliver(pk packet) {
	n := pk.to
	if n == p.r && (n.ike == nil || n.done) {
		h, err := ike.DecodeHeader(pk.dg.Data)
		if err != nil || h.Exchange != ike.IKESAInit || h.IsResponse() {
			return // the glue would answer INVALID_IKE_SPI
		}
		if p.cookies != nil {
			reply, ok := p.cookies.AcceptInit(p.now, pk.dg, nil)
			if !ok {
				if reply != nil {
					p.deliverOut(p.r, Output{Datagrams: []Datagram{{Local: pk.dg.Local, Remote: pk.dg.Remote, Data: reply}}})
				}
				return
			}
		}
		m, out := NewResponder(p.rcfg, p.now, p.rrng, pk.dg, nil)
		n.ike, n.done = m, false
		p.deliverOut(n, out)
		return
	}
	if n.done {
		return
	}
	p.deliverOut(n, n.ike.Handle(p.now, pk.dg))
}

// run steps until cond holds or nothing is left, within a step budget.
func (p *pump) run(cond func() bool) bool {
	for range 20000 {
		if cond != nil && cond() {
			return true
		}
		if !p.step() {
			return cond == nil || cond()
		}
	}
	p.t.Fatalf("pump did not settle")
	return false
}

// settle runs until nothing is in flight (deadlines may remain).
func (p *pump) settle() {
	for range 20000 {
		if p.first != nil {
			p.step()
		}
		if len(p.wire) == 0 {
			return
		}
		p.step()
	}
	p.t.Fatalf("pump did not settle")
}

// advance moves the clock by d, firing deadlines on the way.
func (p *pump) advance(d time.Duration) {
	end := p.now.Add(d)
	for range 100000 {
		p.settle()
		var next *node
		for _, n := range []*node{p.i, p.r} {
			if n.ike != nil && !n.done && !n.deadline.IsZero() && (next == nil || n.deadline.Before(next.deadline)) {
				next = n
			}
		}
		if next == nil || next.deadline.After(end) {
			p.now = end
			return
		}
		if next.deadline.After(p.now) {
			p.now = next.deadline
		}
		p.deliverOut(next, next.ike.Handle(p.now, Tick{}))
	}
	p.t.Fatalf("advance did not finish")
}

func (p *pump) command(n *node, c Command) {
	p.deliverOut(n, n.ike.Handle(p.now, c))
}

func up(n *node) func() bool {
	return func() bool { return n.ike != nil && n.ike.State() == StateEstablished }
}

// activeSAs replays n's data-plane operations and returns the SAs left.
func activeSAs(n *node) map[string]dataplane.SA {
	m := map[string]dataplane.SA{}
	for _, o := range n.ops {
		switch o.Kind {
		case OpAddSA:
			m[fmt.Sprintf("%08x/%v", o.SA.SPI, o.SA.Direction)] = o.SA
		case OpDeleteSA:
			delete(m, fmt.Sprintf("%08x/%v", o.SPI, o.Dir))
		}
	}
	return m
}

// activePolicies replays n's policy operations.
func activePolicies(t testing.TB, n *node) map[uint64]dataplane.Policy {
	m := map[uint64]dataplane.Policy{}
	for _, o := range n.ops {
		switch o.Kind {
		case OpAddPolicy:
			if _, ok := m[o.Policy.ID]; ok {
				t.Fatalf("%s: policy %d added twice", n.name, o.Policy.ID)
			}
			m[o.Policy.ID] = o.Policy
		case OpUpdatePolicy:
			if _, ok := m[o.Policy.ID]; !ok {
				t.Fatalf("%s: update of unknown policy %d", n.name, o.Policy.ID)
			}
			m[o.Policy.ID] = o.Policy
		case OpDeletePolicy:
			if _, ok := m[o.PolicyID]; !ok {
				t.Fatalf("%s: delete of unknown policy %d", n.name, o.PolicyID)
			}
			delete(m, o.PolicyID)
		}
	}
	return m
}

// liveSAs is activeSAs without the inbound halves left draining after
// rekeys (they have no twin any more).
func liveSAs(n *node) map[string]dataplane.SA {
	m := activeSAs(n)
	if n.ike != nil {
		for _, c := range n.ike.childList() {
			if !c.live() {
				delete(m, fmt.Sprintf("%08x/%v", c.inSPI, dataplane.In))
			}
		}
	}
	return m
}

// checkPaired verifies that every SA of a has its twin on b: a's outbound
// is b's inbound with the same SPI, suite and keys, and vice versa.
// Inbound halves draining after a rekey are left out.
func checkPaired(t testing.TB, a, b *node) int {
	t.Helper()
	as, bs := liveSAs(a), liveSAs(b)
	n := 0
	for _, sa := range as {
		dir := dataplane.In
		if sa.Direction == dataplane.In {
			dir = dataplane.Out
		}
		twin, ok := bs[fmt.Sprintf("%08x/%v", sa.SPI, dir)]
		if !ok {
			t.Errorf("%s SA %08x/%v has no twin on %s", a.name, sa.SPI, sa.Direction, b.name)
			continue
		}
		if twin.Suite != sa.Suite || !bytes.Equal(twin.Keys.Enc, sa.Keys.Enc) || !bytes.Equal(twin.Keys.Integ, sa.Keys.Integ) ||
			twin.Mode != sa.Mode || twin.ESN != sa.ESN {
			t.Errorf("SA %08x: %s and %s disagree on suite, keys or mode", sa.SPI, a.name, b.name)
		}
		if len(sa.Keys.Enc) == 0 {
			t.Errorf("SA %08x without keys", sa.SPI)
		}
		n++
	}
	if len(as) != len(bs) {
		t.Errorf("%s has %d SAs, %s has %d", a.name, len(as), b.name, len(bs))
	}
	return n
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// authExchange carries an IKE_SA_INIT answer d to the initiator i and the
// IKE_AUTH exchange between i and r that follows, and requires both to be
// established.
func authExchange(t *testing.T, now time.Time, i, r *IKE, d Datagram) {
	t.Helper()
	m, peer := i, r
	for range 3 {
		o := m.Handle(now, Datagram{Local: d.Remote, Remote: d.Local, Data: d.Data})
		if len(o.Datagrams) > 0 {
			d = o.Datagrams[0]
		}
		m, peer = peer, m
	}
	if i.State() != StateEstablished || r.State() != StateEstablished {
		t.Fatalf("states %v %v", i.State(), r.State())
	}
}
