package engine

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/iface"
	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/internal/few"
	"github.com/mifsec/mifsec/engine/sa"
	"github.com/mifsec/mifsec/engine/transport"
)

// The IKE runtime: the live IKE SAs of the connections, driven by the state
// goroutine. Each sa.IKE machine is sans-IO; this file feeds it datagrams,
// commands, deadlines and data-plane events, and carries out what it
// returns: datagrams to send, data-plane operations, events.

// IKETransport is what the runtime needs from engine/transport.
type IKETransport interface {
	Send(local, remote netip.AddrPort, msg []byte) error
	Packets() <-chan transport.Packet
	ListenNAT(addr netip.Addr) error
	Port() uint16
	NATPort() uint16
}

// ikeSA is one live IKE SA. A gateway holds one per peer: fields that
// are rarely set (API callers waiting, the down detail) live in rare.
type ikeSA struct {
	m    *sa.IKE
	conn string
	// spii is the initiator SPI of the current IKE SA, which names it
	// (name: 16 hex digits made on demand, not a string per IKE SA).
	spii uint64
	// due is the deadline while in the timer heap, as an offset from
	// runtime.t0 (8 bytes where a time.Time takes 24: per-SA memory).
	due time.Duration
	// applies counts outputs applied, to spot nested applies.
	applies uint32
	hidx    int32 // index in the timer heap, -1 when not in it
	// cidx is 1 + its index in runtime.byConn[conn]; 0: not indexed.
	cidx    int32
	up      bool
	downWhy sa.Reason
	bound   few.List[uint64] // IKE SPIs bound to it in bySPI
	spis    few.List[uint32] // inbound ESP SPIs installed for it (owner in espIn)
	// peerH is the byPeer key it is filed under (runtime.peerHash of its
	// connection and peer identity), 0 when not filed; peerNext is the
	// next IKE SA filed under the same key.
	peerH    uint64
	peerNext *ikeSA
	routes   []netip.Prefix
	addrs    []netip.Prefix // virtual IPs it holds on the TUN (addrUsers)
	// half is set while a responder is half-open (counted by the cookies).
	half *halfOpenKey
	// path is the path the IKE SA lives on (paths.go, linkPath); multi is
	// its place there and in the steering table (steertable.go).
	path  *path
	multi saMulti
	rare  *saRare
}

// saRare holds what few IKE SAs ever have: API callers waiting for them
// and the detail of why they went down.
type saRare struct {
	waiters     []chan initResult
	rekeyW      []chan rekeyResult
	childRekeyW []childWaiter
	downText    string
}

func (s *ikeSA) rarely() *saRare {
	if s.rare == nil {
		s.rare = &saRare{}
	}
	return s.rare
}

// addWaiter, addRekeyWaiter and addChildRekeyWaiter register API callers.
func (s *ikeSA) addWaiter(w chan initResult) { r := s.rarely(); r.waiters = append(r.waiters, w) }
func (s *ikeSA) addRekeyWaiter(w chan rekeyResult) {
	r := s.rarely()
	r.rekeyW = append(r.rekeyW, w)
}
func (s *ikeSA) addChildRekeyWaiter(w childWaiter) {
	r := s.rarely()
	r.childRekeyW = append(r.childRekeyW, w)
}

// rekeyed answers the callers waiting for an IKE SA rekey.
func (s *ikeSA) rekeyed(name string) {
	if s.rare == nil {
		return
	}
	for _, w := range s.rare.rekeyW {
		w <- rekeyResult{name: name}
	}
	s.rare.rekeyW = nil
}

// setDown records why the IKE SA went down.
func (s *ikeSA) setDown(why sa.Reason, detail string) {
	s.downWhy = why
	if detail != "" || s.rare != nil {
		s.rarely().downText = detail
	}
}

// downDetail is the detail setDown recorded.
func (s *ikeSA) downDetail() string {
	if s.rare == nil {
		return ""
	}
	return s.rare.downText
}

// name is the IKE SA's API name: its initiator SPI in 16 hex digits (""
// before it has one).
func (s *ikeSA) name() string { return saName(s.spii).String() }

// logName is the name as a log value: the string is made only if the line
// is written.
func (s *ikeSA) logName() saName { return saName(s.spii) }

// saName is an IKE SA's initiator SPI, printed as its name.
type saName uint64

func (n saName) String() string {
	if n == 0 {
		return ""
	}
	return spiName(uint64(n))
}

// parseSAName is the initiator SPI an IKE SA name stands for (16
// lowercase hex digits, as spiName writes them).
func parseSAName(name string) (uint64, bool) {
	if len(name) != 16 {
		return 0, false
	}
	var v uint64
	for i := range len(name) {
		c := name[i]
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | uint64(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, v != 0
}

// MarshalText gives JSON log lines the name as a string.
func (n saName) MarshalText() ([]byte, error) { return []byte(n.String()), nil }

// peer is the identity the peer authenticated as, in ParseIdentity's
// syntax (made on demand: byPeer files IKE SAs by a hash of it).
func (s *ikeSA) peer() string { return s.m.PeerID().String() }

type initResult struct {
	name string
	err  error
	seq  uint64 // the last event published before the answer
}

type childWaiter struct {
	spi uint32
	c   chan rekeyResult
}

func (s *ikeSA) resolveChildRekey(old uint32, name string) {
	if s.rare == nil {
		return
	}
	s.rare.childRekeyW = slices.DeleteFunc(s.rare.childRekeyW, func(w childWaiter) bool {
		if w.spi == old {
			w.c <- rekeyResult{name: name}
			return true
		}
		return false
	})
}

func (s *ikeSA) resolveChildRekeyErr(spi uint32, why sa.Reason) {
	if s.rare == nil {
		return
	}
	s.rare.childRekeyW = slices.DeleteFunc(s.rare.childRekeyW, func(w childWaiter) bool {
		if w.spi == spi {
			w.c <- rekeyResult{err: &Error{Code: Unavailable, Reason: "CHILD_SA_FAILED", Msg: "Child SA went down: " + why.String()}}
			return true
		}
		return false
	})
}

type rekeyResult struct {
	name string
	err  error
}

type runtime struct {
	tr    IKETransport
	dp    dataplane.DataPlane
	rng   io.Reader
	bySPI map[uint64]*ikeSA
	// all counts the live IKE SAs (len(all); zero-size elements: no
	// memory). They are listed in byConn from their first output to
	// dropSA (live, sas); a set of them cost 37 bytes per IKE SA.
	all    []struct{}
	timers timerHeap
	t0     time.Time // the origin of ikeSA.due
	timer  *time.Timer
	espIn  map[uint32]*ikeSA
	// byConn and byPeer index the IKE SAs by connection and by connection
	// and peer identity, so that per-connection lookups and INITIAL_CONTACT
	// do not walk every IKE SA of the node. Slices, not sets: an initiator
	// connection has one IKE SA (a map each cost 270 bytes), a peer
	// usually one. Loops that may drop IKE SAs walk a copy (connSAList).
	byConn map[string][]*ikeSA
	// byPeer lists the IKE SAs of a (conn, peer) through peerNext, first
	// filed first (no slice per peer), under peerHash(conn, peer): an
	// 8-byte key where the strings took 32 and a string per IKE SA.
	byPeer   map[uint64]*ikeSA
	peerSeed maphash.Seed
	// halfOpen routes retransmitted IKE_SA_INIT requests (SPIr = 0) to the
	// responder they created, by initiator SPI and address.
	halfOpen map[halfOpenKey]*ikeSA
	// routeUsers counts the IKE SAs that need each route into the TUN.
	routeUsers map[netip.Prefix]int
	// addrUsers counts the IKE SAs holding each virtual IP on the TUN
	// (the IKE SAs of one connection's paths share its inner address).
	addrUsers map[netip.Prefix]int
	cookies   *sa.Cookies
	// invalidSPI rate-limits INVALID_IKE_SPI replies (RFC 7296 §2.21.4).
	invalidSPIAt    time.Time
	invalidSPICount int
	stats           RuntimeStats
	// dh makes D-H pairs ahead of time (nil with a Config.Rand: tests
	// want every random byte from their reader).
	dh *dhPool
	// routes changes kernel routes and addresses (iface; tests record).
	routes routeOps
	// routeSrc caches the kernel's source addresses towards peers
	// (localFor, saconfig.go); routeGet asks the kernel.
	routeSrc routeCache
	routeGet func(remote netip.Addr) ([]netip.Addr, error)
	// ikeLog is the engine's "ike" logger, parent of the connections' ones.
	ikeLog hclog.Logger
}

// routeOps are the kernel changes that bring inner traffic to the TUN.
type routeOps struct {
	addRoute func(link string, dst netip.Prefix, src netip.Addr) error
	delRoute func(link string, dst netip.Prefix) error
	addAddr  func(link string, p netip.Prefix) error
	delAddr  func(link string, p netip.Prefix) error
	pinHost  func(peer netip.Addr) (netip.Prefix, error)
	// close releases what the operations hold (nil: nothing).
	close func() error
	// forget drops what is cached about a link ("" every link; nil: none).
	forget func(link string)
}

type halfOpenKey struct {
	spii   uint64
	remote netip.AddrPort
}

// RuntimeStats counts what the runtime dropped or did.
type RuntimeStats struct {
	IKEIn, IKEOut    uint64
	UnknownSPI       uint64
	CookiesSent      uint64
	Malformed        uint64
	NoConnection     uint64
	SendErrors       uint64
	DataplaneErrors  uint64
	HandshakesOK     uint64
	HandshakesFailed uint64
	// EventsDropped counts events a watcher did not get because it was cut
	// off for lagging behind (Config.WatchBuffer).
	EventsDropped uint64
	// Exchanges counts IKE messages by exchange type and direction:
	// requests served (received) and responses received (our requests
	// answered), from the header of every datagram routed to an IKE SA.
	Exchanges map[ExchangeKey]uint64
	// Handshake is the time from the first IKE_SA_INIT to the IKE SA being
	// established, in HandshakeBuckets (upper bounds).
	Handshake HandshakeHistogram
}

// ExchangeKey names an exchange type (IANA name) and a result.
type ExchangeKey struct {
	Exchange string
	Result   string // "request" (served) or "response" (answered)
}

// HandshakeBuckets are the upper bounds of the handshake histogram.
var HandshakeBuckets = []time.Duration{time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second}

// HandshakeHistogram is cumulative: Buckets[i] counts handshakes that took
// at most HandshakeBuckets[i].
type HandshakeHistogram struct {
	Count   uint64
	Sum     time.Duration
	Buckets []uint64
}

func (h *HandshakeHistogram) observe(d time.Duration) {
	if h.Buckets == nil {
		h.Buckets = make([]uint64, len(HandshakeBuckets))
	}
	h.Count++
	h.Sum += d
	for i, b := range HandshakeBuckets {
		if d <= b {
			h.Buckets[i]++
		}
	}
}

func (rs RuntimeStats) clone() RuntimeStats {
	c := rs
	c.Exchanges = make(map[ExchangeKey]uint64, len(rs.Exchanges))
	for k, v := range rs.Exchanges {
		c.Exchanges[k] = v
	}
	c.Handshake.Buckets = slices.Clone(rs.Handshake.Buckets)
	return c
}

func (rt *runtime) countExchange(h ike.Header) {
	if rt.stats.Exchanges == nil {
		rt.stats.Exchanges = map[ExchangeKey]uint64{}
	}
	res := "request"
	if h.Flags&ike.FlagResponse != 0 {
		res = "response"
	}
	rt.stats.Exchanges[ExchangeKey{h.Exchange.String(), res}]++
}

type timerHeap []*ikeSA

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = int32(i), int32(j)
}
func (h *timerHeap) Push(x any) { s := x.(*ikeSA); s.hidx = int32(len(*h)); *h = append(*h, s) }
func (h *timerHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	s.hidx = -1
	return s
}

func newRuntime(cfg Config) *runtime {
	rt := &runtime{tr: cfg.Transport, dp: cfg.Dataplane, rng: cfg.Rand, bySPI: map[uint64]*ikeSA{},
		espIn: map[uint32]*ikeSA{}, timer: time.NewTimer(time.Hour),
		byConn: map[string][]*ikeSA{}, byPeer: map[uint64]*ikeSA{}, peerSeed: maphash.MakeSeed(),
		halfOpen: map[halfOpenKey]*ikeSA{}, routeUsers: map[netip.Prefix]int{}, addrUsers: map[netip.Prefix]int{},
		routes: kernelRouteOps(iface.NewRoutes()), routeGet: kernelRouteSources}
	if rt.rng == nil {
		rt.rng = rand.Reader
		rt.dh = newDHPool(dhPoolSize, cfg.DHReuse)
	}
	rt.cookies = sa.NewCookies(rt.rng)
	rt.timer.Stop()
	return rt
}

// spiName names an IKE SA: its initiator SPI in 16 hex digits.
func spiName(spi uint64) string { return hexName(spi, 16) }

// childName names a Child SA: its inbound SPI in 8 hex digits.
func childName(spi uint32) string { return hexName(uint64(spi), 8) }

// hexName writes the low n (at most 16) hex digits of v, zero-padded.
func hexName(v uint64, n int) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := n - 1; i >= 0; i-- {
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b[:n])
}

func (rt *runtime) packets() <-chan transport.Packet {
	if rt.tr == nil {
		return nil
	}
	return rt.tr.Packets()
}

func (rt *runtime) dpEvents() <-chan dataplane.Event {
	if rt.dp == nil {
		return nil
	}
	return rt.dp.Events()
}

// AllocSPI implements sa.SPIAllocator: random, non-zero, above the range
// reserved by IANA (RFC 4303 §2.1), unique on this node.
func (rt *runtime) AllocSPI() (uint32, error) {
	var b [4]byte
	for range 64 {
		if _, err := io.ReadFull(rt.rng, b[:]); err != nil {
			return 0, err
		}
		spi := binary.BigEndian.Uint32(b[:])
		if spi < 256 {
			continue
		}
		if _, used := rt.espIn[spi]; !used {
			rt.espIn[spi] = nil // owner set when the SA is installed
			return spi, nil
		}
	}
	return 0, fmt.Errorf("no free SPI")
}

// ReleaseSPI implements sa.SPIAllocator.
func (rt *runtime) ReleaseSPI(spi uint32) { delete(rt.espIn, spi) }

// packet handles one received IKE datagram.
func (st *state) packet(p transport.Packet) {
	rt := st.rt
	rt.stats.IKEIn++
	h, err := ike.DecodeHeader(p.Data)
	if err != nil {
		rt.stats.Malformed++
		return
	}
	// The local SPI is the responder's when the sender was the original
	// initiator of the IKE SA (I flag, RFC 7296 §3.1).
	local := h.SPIi
	if h.Flags&ike.FlagInitiator != 0 {
		local = h.SPIr
	}
	if s := rt.bySPI[local]; s != nil && local != 0 {
		rt.countExchange(h)
		st.drive(s, sa.Datagram{Local: p.Local, Remote: p.Remote, Data: p.Data})
		return
	}
	if h.Exchange != ike.IKESAInit || h.SPIr != 0 || h.Flags&ike.FlagResponse != 0 || h.MessageID != 0 {
		rt.stats.UnknownSPI++
		st.invalidSPI(p)
		return
	}
	if s := rt.halfOpen[halfOpenKey{h.SPIi, p.Remote}]; s != nil {
		st.drive(s, sa.Datagram{Local: p.Local, Remote: p.Remote, Data: p.Data})
		return
	}
	st.newResponder(p)
}

// invalidSPI answers a request for an unknown IKE SA, at most 10 times a
// second (RFC 7296 §2.21.4: rate-limited, never for responses).
func (st *state) invalidSPI(p transport.Packet) {
	rt := st.rt
	now := st.e.cfg.Now()
	if now.Sub(rt.invalidSPIAt) > time.Second {
		rt.invalidSPIAt, rt.invalidSPICount = now, 0
	}
	if rt.invalidSPICount >= 10 || rt.tr == nil {
		return
	}
	reply, ok := sa.InvalidSPIReply(sa.Datagram{Local: p.Local, Remote: p.Remote, Data: p.Data})
	if !ok {
		return
	}
	rt.invalidSPICount++
	if err := rt.tr.Send(reply.Local, reply.Remote, reply.Data); err == nil {
		rt.stats.IKEOut++
	}
}

func (st *state) newResponder(p transport.Packet) {
	rt := st.rt
	c := st.responderFor(p.Local, p.Remote)
	if c == nil {
		rt.stats.NoConnection++
		st.e.log.Debug("IKE_SA_INIT for no connection", "local", p.Local, "remote", p.Remote)
		return
	}
	msg, err := ike.Decode(p.Data)
	if err != nil {
		rt.stats.Malformed++
		return
	}
	now := st.e.cfg.Now()
	d := sa.Datagram{Local: p.Local, Remote: p.Remote, Data: p.Data}
	// RFC 7296 §2.6: above the half-open threshold, demand a cookie.
	if reply, ok := rt.cookies.AcceptInit(now, d, msg); !ok {
		rt.stats.CookiesSent++
		if reply != nil && rt.tr != nil {
			if err := rt.tr.Send(p.Local, p.Remote, reply); err == nil {
				rt.stats.IKEOut++
			}
		}
		return
	}
	// The connection's IKE SAs share its template (a gateway holds many:
	// no copy per SA); what differs goes to the machine by Place.
	cfg, err := st.saTemplate(c)
	if err != nil {
		st.e.log.Warn("connection unusable", "connection", c.ID, "error", err)
		return
	}
	pth := st.pathFor(c.ID, p.Local.Addr(), p.Remote.Addr())
	m, out := sa.NewResponder(cfg, now, rt.rng, d, msg)
	m.Place(sa.Placement{Path: pth.tag, Addrs: st.startAddrs(c, p.Local.Addr())})
	s := &ikeSA{conn: c.ID, m: m, hidx: -1, path: pth}
	if !out.Done {
		key := halfOpenKey{msg.SPIi, p.Remote}
		s.half = &key
		rt.halfOpen[key] = s
		rt.cookies.Opened()
	}
	st.apply(s, out)
}

// responderFor picks the first responder connection (in id order) that
// allows the addresses.
func (st *state) responderFor(local, remote netip.AddrPort) *connection {
	for _, id := range sortedKeys(st.connections) {
		c := st.connections[id]
		if c.Role != RoleResponder {
			continue
		}
		if len(c.addrs) > 0 && !slices.Contains(c.addrs, remote.Addr().Unmap()) {
			continue
		}
		if len(c.LocalInterfaces) > 0 && !st.addrOnInterfaces(local.Addr(), c.LocalInterfaces) {
			continue
		}
		return c
	}
	return nil
}

func (st *state) addrOnInterfaces(a netip.Addr, ids []string) bool {
	for _, id := range ids {
		if ifc, ok := st.interfaces[id]; ok {
			for _, p := range ifc.Addrs {
				if p.Addr() == a.Unmap() {
					return true
				}
			}
		}
	}
	return false
}

// drive hands one input to a machine and applies its output.
func (st *state) drive(s *ikeSA, in sa.Input) {
	st.apply(s, s.m.Handle(st.e.cfg.Now(), in))
}

// apply carries out a machine's output, in the order the contract gives:
// data-plane operations, then datagrams, then events.
func (st *state) apply(s *ikeSA, out sa.Output) {
	rt := st.rt
	// Events below may drive the same machine again (a nested apply); its
	// output is newer than ours, so ours must not overwrite its deadline.
	s.applies++
	gen := s.applies
	if spii, _ := s.m.SPIs(); spii != 0 {
		s.spii = spii
	}
	if s.cidx == 0 {
		// Every new machine's first output comes through here.
		rt.indexConn(s)
		st.linkPath(s, s.path) // named: its path orders its IKE SAs by name
	}
	for _, spi := range out.Unbind {
		if rt.bySPI[spi] == s {
			delete(rt.bySPI, spi)
		}
		s.bound.Remove(spi)
	}
	for _, spi := range out.Bind {
		rt.bySPI[spi] = s
		s.bound.Add(spi)
	}
	if len(out.DataplaneOps) > 0 {
		// One deadline for the output's operations (a timer and a context
		// per operation were a tenth of the engine's allocations).
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if rt.dp != nil {
			ctx, cancel = context.WithTimeout(ctx, dataplaneTimeout)
		}
		for i := range out.DataplaneOps {
			st.dataplaneOp(ctx, s, &out.DataplaneOps[i])
		}
		cancel()
	}
	st.routesFirst(s, out.Events)
	for _, d := range out.Datagrams {
		if rt.tr == nil {
			break
		}
		if err := rt.tr.Send(d.Local, d.Remote, d.Data); err != nil {
			rt.stats.SendErrors++
			st.e.log.Debug("IKE send failed", "local", d.Local, "remote", d.Remote, "error", err)
			continue
		}
		rt.stats.IKEOut++
	}
	for _, ev := range out.Events {
		st.saEvent(s, ev)
	}
	st.answerWaiters(s)
	st.probeCheck(s)
	if out.Spawn != nil {
		child := &ikeSA{conn: s.conn, m: out.Spawn.IKE, hidx: -1, spii: s.spii, path: s.path}
		st.apply(child, out.Spawn.Output)
	}
	if out.Done {
		st.dropSA(s)
		return
	}
	if s.applies != gen {
		return
	}
	st.schedule(s, out.Deadline)
	s.m.Idle()
}

// routesFirst puts the routes of the output's new Child SAs in with its
// data-plane operations, before its datagrams: a responder's IKE_AUTH or
// CREATE_CHILD_SA answer lets the peer send at once, and the replies to
// that traffic need the route into the TUN (a gateway answered IKE_AUTH,
// the end user pinged, the server's echo reply found no route to the
// virtual IP: IpExtInNoRoutes). An initiator's virtual IP is known only
// once its EventIKEUp is handled, so its first routes wait for the event
// as before (the peer sends nothing that needs them first).
func (st *state) routesFirst(s *ikeSA, evs []sa.Event) {
	for _, ev := range evs {
		if ev.Kind != sa.EventChildUp {
			continue
		}
		if s.up || s.m.Role() == sa.Responder || ev.Child.Mode == dataplane.Transport {
			st.installRoutes(s, ev.Child) // idempotent: saEvent finds them in
		}
	}
}

func (st *state) schedule(s *ikeSA, at time.Time) {
	rt := st.rt
	if !at.IsZero() {
		if rt.t0.IsZero() {
			rt.t0 = at
		}
		s.due = at.Sub(rt.t0)
	}
	switch {
	case at.IsZero() && s.hidx >= 0:
		heap.Remove(&rt.timers, int(s.hidx))
	case at.IsZero():
	case s.hidx >= 0:
		heap.Fix(&rt.timers, int(s.hidx))
	default:
		heap.Push(&rt.timers, s)
	}
	st.armTimer()
}

func (st *state) armTimer() {
	rt := st.rt
	rt.timer.Stop()
	if len(rt.timers) == 0 {
		return
	}
	d := rt.t0.Add(rt.timers[0].due).Sub(st.e.cfg.Now())
	if d < 0 {
		d = 0
	}
	rt.timer.Reset(d)
}

// tick drives every machine whose deadline has passed.
func (st *state) tick() {
	rt := st.rt
	now := st.e.cfg.Now()
	for len(rt.timers) > 0 && !rt.t0.Add(rt.timers[0].due).After(now) {
		s := heap.Pop(&rt.timers).(*ikeSA)
		s.due = 0
		st.drive(s, sa.Tick{})
	}
	st.armTimer()
}

func (st *state) dropSA(s *ikeSA) {
	rt := st.rt
	for _, spi := range s.bound.Items() {
		if rt.bySPI[spi] == s {
			delete(rt.bySPI, spi)
		}
	}
	if s.hidx >= 0 {
		heap.Remove(&rt.timers, int(s.hidx))
	}
	for _, spi := range s.spis.Items() {
		if rt.espIn[spi] == s {
			delete(rt.espIn, spi)
		}
	}
	s.spis = few.List[uint32]{}
	rt.unindexConn(s)
	st.unfilePeer(s)
	st.removeRoutes(s)
	st.settle(s)
	if r := s.rare; r != nil {
		for _, w := range r.waiters {
			w <- initResult{err: st.downError(s)}
		}
		r.waiters = nil
		for _, w := range r.rekeyW {
			w <- rekeyResult{err: st.downError(s)}
		}
		r.rekeyW = nil
		for _, w := range r.childRekeyW {
			w.c <- rekeyResult{err: st.downError(s)}
		}
		r.childRekeyW = nil
	}
	st.armTimer()
	st.saGone(s)
}

// answerWaiters tells InitiateConnection callers that s is up, once the
// output that brought it up was applied (data plane, routes, events): the
// caller may send through the tunnel at once.
func (st *state) answerWaiters(s *ikeSA) {
	if !s.up || s.rare == nil || len(s.rare.waiters) == 0 {
		return
	}
	for _, w := range s.rare.waiters {
		w <- initResult{name: s.name(), seq: st.seq}
	}
	s.rare.waiters = nil
}

func (st *state) downError(s *ikeSA) error {
	why := s.downWhy.String()
	if d := s.downDetail(); d != "" {
		why += ": " + d
	}
	code := Unavailable
	switch s.downWhy {
	case sa.ReasonAuthFailed, sa.ReasonNoProposalChosen, sa.ReasonInvalidKE, sa.ReasonTSUnacceptable, sa.ReasonCPFailed:
		code = FailedPrecondition
	case sa.ReasonTimeout, sa.ReasonDPDTimeout:
		code = DeadlineExceeded
	}
	return &Error{Code: code, Reason: "IKE_SA_FAILED", Msg: "IKE SA failed: " + why}
}

// dataplaneTimeout bounds the data-plane operations of one machine output.
const dataplaneTimeout = 5 * time.Second

func (st *state) dataplaneOp(ctx context.Context, s *ikeSA, op *sa.DataplaneOp) {
	rt := st.rt
	if st.e.log.IsDebug() {
		st.logOp(s, op)
	}
	if st.mergeOp(s, op) {
		return
	}
	if op.Kind == sa.OpAddSA {
		defer op.SA.Keys.Zero()
		if op.SA.Direction == dataplane.In {
			rt.espIn[op.SA.SPI] = s
			s.spis.Add(op.SA.SPI)
		}
	}
	if rt.dp == nil {
		return
	}
	var err error
	switch op.Kind {
	case sa.OpAddSA:
		err = rt.dp.AddSA(ctx, op.SA)
	case sa.OpUpdateSA:
		err = rt.dp.UpdateSA(ctx, op.SPI, op.Dir, op.Update)
	case sa.OpDeleteSA:
		err = rt.dp.DeleteSA(ctx, op.SPI, op.Dir)
		if op.Dir == dataplane.In {
			delete(rt.espIn, op.SPI)
			s.spis.Remove(op.SPI)
		}
	case sa.OpAddPolicy:
		err = rt.dp.AddPolicy(ctx, op.Policy)
	case sa.OpUpdatePolicy:
		err = rt.dp.UpdatePolicy(ctx, op.Policy)
	case sa.OpDeletePolicy:
		err = rt.dp.DeletePolicy(ctx, op.PolicyID)
	}
	if err != nil {
		rt.stats.DataplaneErrors++
		st.e.log.Warn("data plane operation failed", "connection", s.conn, "op", op.String(), "error", err)
	}
}

// logOp logs a data-plane operation at debug level: with timestamps it
// shows the order of SA and policy changes against IKE exchanges (rekeys
// under traffic), and a deleted SA's final counters show what it carried
// and dropped (a sender's outbound packets against the receiver's
// inbound ones). No keys: DataplaneOp.String has none.
func (st *state) logOp(s *ikeSA, op *sa.DataplaneOp) {
	if op.Kind != sa.OpDeleteSA || st.rt.dp == nil {
		st.e.log.Debug("data plane operation", "connection", s.conn, "op", op.String())
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := st.rt.dp.Counters(ctx, op.SPI, op.Dir)
	if err != nil {
		st.e.log.Debug("data plane operation", "connection", s.conn, "op", op.String(), "counters", err.Error())
		return
	}
	st.e.log.Debug("data plane operation", "connection", s.conn, "op", op.String(),
		"packets", c.Packets, "bytes", c.Bytes, "drops", fmt.Sprint(c.Drops))
}

// dpEvent routes a data-plane expiry event to the machine owning the SA.
func (st *state) dpEvent(ev dataplane.Event) {
	s := st.rt.espIn[ev.SPI]
	if s == nil {
	find:
		for _, l := range st.rt.byConn {
			for _, x := range l {
				if x.ownsOut(ev.SPI) {
					s = x
					break find
				}
			}
		}
	}
	if s == nil {
		return
	}
	st.drive(s, sa.DataplaneEvent{Kind: ev.Kind, SPI: ev.SPI})
}

func (s *ikeSA) ownsOut(spi uint32) bool {
	for _, c := range s.m.Info().Children {
		if c.OutSPI == spi {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// startConnections initiates connections with a child to start at once.
func (st *state) startConnections() {
	for _, id := range sortedKeys(st.connections) {
		st.prepare(st.connections[id])
		st.autoStart(st.connections[id])
	}
}

func (st *state) autoStart(c *connection) {
	if c.Role != RoleInitiator || st.rt.tr == nil {
		return
	}
	for _, ch := range c.Children {
		if ch.StartAction == StartStart {
			if _, err := st.initiate(c); err != nil {
				st.e.log.Warn("could not start connection", "connection", c.ID, "error", err)
			}
			return
		}
	}
}

func (st *state) connectionAdded(c *connection) {
	st.prepare(c)
	st.autoStart(c)
	st.connPathsChanged(c.ID, "connection_added")
}

// connectionUpdated leaves running SAs alone: they pick the new settings up
// when they are re-established.
func (st *state) connectionUpdated(old, c *connection) {
	st.prepare(c)
	st.connPathsChanged(c.ID, "connection_updated")
}

// connectionRemoved deletes the connection's SAs.
func (st *state) connectionRemoved(c *connection) {
	for _, s := range st.connSAList(c.ID) {
		st.drive(s, sa.Command{Kind: sa.CmdTerminate})
	}
	st.connPathsChanged(c.ID, "connection_removed")
}

// shutdownSAs sends DELETE for every IKE SA (best effort, no wait) and
// removes their data-plane state and routes.
func (st *state) shutdownSAs() {
	for _, s := range st.rt.sas() {
		st.drive(s, sa.Command{Kind: sa.CmdTerminate})
	}
	for _, s := range st.rt.sas() {
		st.removeRoutes(s)
	}
	st.rt.timer.Stop()
}

// settle ends a responder's half-open period (established or gone).
func (st *state) settle(s *ikeSA) {
	if s.half == nil {
		return
	}
	if st.rt.halfOpen[*s.half] == s {
		delete(st.rt.halfOpen, *s.half)
	}
	s.half = nil
	st.rt.cookies.Settled()
}

// listenNAT opens the NAT-T port on an interface's usable addresses, so
// peers can float to 4500 (RFC 7296 §2.23) or reach us there after MOBIKE.
func (st *state) listenNAT(ifc *Interface) {
	if st.rt.tr == nil {
		return
	}
	for _, p := range ifc.Addrs {
		a := p.Addr()
		if a.IsLinkLocalUnicast() || a.IsLoopback() {
			continue
		}
		if err := st.rt.tr.ListenNAT(a); err != nil {
			st.e.log.Debug("NAT-T port not opened", "address", a, "error", err)
		}
	}
}

// indexConn lists s under its connection.
func (rt *runtime) indexConn(s *ikeSA) {
	l := append(rt.byConn[s.conn], s)
	rt.byConn[s.conn] = l
	s.cidx = int32(len(l))
	rt.all = append(rt.all, struct{}{})
}

// live reports whether s is one of the runtime's IKE SAs: listed in
// byConn from its machine's first output until dropSA.
func (rt *runtime) live(s *ikeSA) bool { return s.cidx != 0 }

// sas lists every IKE SA (a new slice: callers may drop some).
func (rt *runtime) sas() []*ikeSA {
	out := make([]*ikeSA, 0, len(rt.all))
	for _, l := range rt.byConn {
		out = append(out, l...)
	}
	return out
}

// unindexConn takes s off its connection's list in constant time (the
// last one takes its place).
func (rt *runtime) unindexConn(s *ikeSA) {
	if s.cidx == 0 {
		return
	}
	l := rt.byConn[s.conn]
	i, last := int(s.cidx)-1, len(l)-1
	l[i] = l[last]
	l[i].cidx = int32(i + 1)
	l[last] = nil
	if last == 0 {
		delete(rt.byConn, s.conn)
	} else {
		rt.byConn[s.conn] = l[:last]
	}
	s.cidx = 0
	rt.all = rt.all[:len(rt.all)-1]
}

// connSAList is a copy of connection id's IKE SAs, for loops that may
// drop some.
func (st *state) connSAList(id string) []*ikeSA { return slices.Clone(st.rt.byConn[id]) }

// peerHash is the byPeer key of a connection and peer identity (never 0:
// 0 marks an IKE SA not filed).
func (rt *runtime) peerHash(conn, peer string) uint64 {
	var h maphash.Hash
	h.SetSeed(rt.peerSeed)
	h.WriteString(conn)
	h.WriteByte(0) // connection ids hold no NUL (ValidID)
	h.WriteString(peer)
	return h.Sum64() | 1
}

// peersOf lists the IKE SAs filed under conn and peer but skip, first
// filed first (those of another pair whose key collides are left out).
func (rt *runtime) peersOf(conn, peer string, skip *ikeSA) []*ikeSA {
	var l []*ikeSA
	for o := rt.byPeer[rt.peerHash(conn, peer)]; o != nil; o = o.peerNext {
		if o != skip && o.conn == conn && o.peer() == peer {
			l = append(l, o)
		}
	}
	return l
}

// filePeer files s in byPeer under its connection and peer identity peer
// (taking it from where it was filed before).
func (st *state) filePeer(s *ikeSA, peer string) {
	st.unfilePeer(s)
	h := st.rt.peerHash(s.conn, peer)
	if o := st.rt.byPeer[h]; o == nil {
		st.rt.byPeer[h] = s
	} else {
		for o.peerNext != nil {
			o = o.peerNext
		}
		o.peerNext = s
	}
	s.peerH = h
}

// unfilePeer takes s out of byPeer.
func (st *state) unfilePeer(s *ikeSA) {
	if s.peerH == 0 {
		return
	}
	ix := st.rt.byPeer
	var prev *ikeSA
	for o := ix[s.peerH]; o != nil && o != s; o = o.peerNext {
		prev = o
	}
	switch {
	case prev != nil:
		prev.peerNext = s.peerNext
	case s.peerNext != nil:
		ix[s.peerH] = s.peerNext
	default:
		delete(ix, s.peerH)
	}
	s.peerNext, s.peerH = nil, 0
}
