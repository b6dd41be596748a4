package engine

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/iface"
	"github.com/mifsec/mifsec/engine/sa"
)

// A path is one local interface × one remote address of a connection
// (DESIGN.md §2, connections/{c}/paths/{id}). One IKE SA lives on a path
// (G1); steering rules choose among a connection's paths per flow. Paths
// are derived: an initiator's candidates come from its usable interfaces
// and the peer's address, and every IKE SA puts its own path in place.
//
// Work per event is kept to what the event touched: each path lists its
// IKE SAs (linkPath), paths are indexed by connection, and what may have
// changed a path's state marks it dirty (markPath); settlePaths derives
// again only the dirty paths and steers again only their connections.

// PathState is the lifecycle of a path.
type PathState uint8

const (
	PathDown       PathState = iota + 1 // no link, address or IKE SA
	PathConnecting                      // its IKE SA is being set up
	PathUp                              // IKE SA up and answering
	PathSilent                          // IKE SA up but probes go unanswered
)

var pathStateNames = [...]string{"", "down", "connecting", "up", "silent"}

func (s PathState) String() string {
	if s > 0 && int(s) < len(pathStateNames) {
		return pathStateNames[s]
	}
	return fmt.Sprintf("path_state(%d)", s)
}

// silentAfter is the number of unanswered probes that make a path silent.
const silentAfter = 3

type pathKey struct {
	conn, iface string
	remote      netip.Addr
}

// path is kept small (160 bytes): every initiator connection has one
// and a gateway one per peer address. What only probed and multipath
// paths need is in pathProbe, made on first use.
type path struct {
	pathKey
	id    string
	local netip.Addr
	// sas are the IKE SAs on the path (linkPath): one, or two while one
	// replaces another; many on a gateway whose peers share an address.
	// best is the one saOf picks, unless bestStale.
	sas  []*ikeSA
	best *ikeSA
	pb   *pathProbe
	// lastOK: when the path last answered (IKE_AUTH, a move, a probe),
	// in ns since the Unix epoch; 0: never.
	lastOK    int64
	tag       uint32 // dataplane.SA.Path and the steering table's key
	cidx      int32  // 1 + its index in multi.byConn[conn]
	state     PathState
	down      downReason
	cand      bool // an initiator's candidate (listed even without an IKE SA)
	bestStale bool
}

// pathProbe is what probing a path (liveness checks on its IKE SA, RFC
// 7296 §2.4, or MOBIKE path tests, RFC 4555 §3.10) and setting up a
// multipath connection's IKE SA on it keep.
type pathProbe struct {
	rtt       time.Duration // smoothed, RFC 6298 §2 (alpha 1/8)
	probes    uint64
	lost      uint64
	probeBase uint64
	misses    int
	probing   *ikeSA
	probeSent time.Time
	nextProbe time.Time
	verifyW   []*verifyWait
	retryAt   time.Time // multipath: next attempt to set up its IKE SA
	probeMOB  bool      // the probe is a MOBIKE path test (CmdProbe → EventProbe)
	noClone   bool      // multipath: cloning failed here, the next attempt is a full IKE SA
}

// probe is p's probing state, made on first use.
func (p *path) probe() *pathProbe {
	if p.pb == nil {
		p.pb = &pathProbe{}
	}
	return p.pb
}

// The reads of p's probing state (zero when it has none).
func (p *path) rtt() time.Duration {
	if p.pb == nil {
		return 0
	}
	return p.pb.rtt
}

func (p *path) misses() int {
	if p.pb == nil {
		return 0
	}
	return p.pb.misses
}

func (p *path) probing() *ikeSA {
	if p.pb == nil {
		return nil
	}
	return p.pb.probing
}

func (p *path) waiters() int {
	if p.pb == nil {
		return 0
	}
	return len(p.pb.verifyW)
}

// verified notes that p answered at now (the misses start again).
func (p *path) verified(now time.Time) {
	p.lastOK = now.UnixNano()
	if p.pb != nil {
		p.pb.misses = 0
	}
}

// lastVerified is when p last answered (zero: never).
func (p *path) lastVerified() time.Time {
	if p.lastOK == 0 {
		return time.Time{}
	}
	return time.Unix(0, p.lastOK)
}

// downReason says why a path is not up (PathView.DownReason).
type downReason uint8

const (
	downNone downReason = iota
	downLink
	downNoSA
	downConnecting
	downSilent
)

var downReasonNames = [...]string{"", "link_down", "no_ike_sa", "ike_sa_connecting", "silent"}

func (r downReason) String() string {
	if int(r) < len(downReasonNames) {
		return downReasonNames[r]
	}
	return fmt.Sprintf("down_reason(%d)", r)
}

// better reports whether a is preferred to b as a path's IKE SA:
// established first, then the greater name.
func better(a, b *ikeSA) bool { return a.up && !b.up || a.up == b.up && a.spii > b.spii }

// add lists s on p (in constant time).
func (p *path) add(s *ikeSA) {
	p.sas = append(p.sas, s)
	s.multi.pidx = int32(len(p.sas))
	if !p.bestStale && (p.best == nil || better(s, p.best)) {
		p.best = s
	}
}

// remove takes s off p's list (in constant time).
func (p *path) remove(s *ikeSA) {
	i := int(s.multi.pidx) - 1
	if i < 0 || i >= len(p.sas) || p.sas[i] != s {
		return
	}
	last := len(p.sas) - 1
	p.sas[i] = p.sas[last]
	p.sas[i].multi.pidx = int32(i + 1)
	p.sas[last] = nil
	p.sas = p.sas[:last]
	s.multi.pidx = 0
	if p.best == s {
		p.best, p.bestStale = nil, len(p.sas) > 0
	}
}

func (p *path) name() string { return p.conn + "/paths/" + p.id }
func (p *path) usable() bool { return p.state == PathUp }

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// verifyWait is closed when every path it waits for answered a probe sent
// after since.
type verifyWait struct {
	n     int
	since time.Time
	c     chan struct{}
}

// multi is the multi-interface state: paths, steering rules, merged
// policies and the compiled table. Owned by the state goroutine.
type multi struct {
	rules   map[string]*steeringRule
	paths   map[pathKey]*path
	byTag   map[uint32]*path
	byConn  map[string][]*path // path.cidx: its place
	nextTag uint32
	// dirty: paths whose state may have changed since settlePaths last
	// derived it; probed: the paths armProbes and probeTick look at
	// (steered, up or silent).
	dirty  map[*path]struct{}
	probed map[*path]struct{}
	// derived counts the paths settlePaths derived (tests keep it per
	// event independent of the number of paths).
	derived uint64
	// mpConns: the multipath initiator connections, sorted.
	mpConns []string
	// pols: the outbound policies of the SA machines by connection and
	// selectors (multipath.go); connPols: the merged ones by connection.
	pols     map[string]*outPol
	alias    map[*outPol]uint64 // the SA machine's id of a lone policy, when not the data plane's
	connPols map[string]map[*mergedPolicy]struct{}
	steer    *steerer
	cells    map[string]*connSteer // per connection, its compiled rules
	probe    *time.Timer
	probeAt  time.Time
	announce map[*ikeSA][]netip.Addr // last address list sent per IKE SA
	// migrating: why each IKE SA is being moved; migrateW: API waiters.
	migrating map[*ikeSA]string
	migrateW  map[*ikeSA][]chan migrateResult
	// RFC 7791 clones (multipath.go): cloneQ, the paths each IKE SA's
	// clone requests in flight are for, in order; clones, our clones on
	// their way to their path; peerClones, clones the peer made that it
	// has not moved yet.
	cloneQ     map[*ikeSA][]*path
	clones     map[*ikeSA]*cloneSetup
	peerClones map[*ikeSA]bool
	// lostLocal: the address in use an IKE SA lost and that the peer was
	// told about (mobility.go, RFC 4555 §3.6).
	lostLocal map[*ikeSA]netip.Addr
	// holds: Child SAs' outbound halves kept on the old address pair
	// after a make-before-break MOBIKE move, by outbound SPI (mobility.go).
	holds map[uint32]*outHold
	// premove: per IKE SA under an API move, the outbound SPIs its Child
	// SAs had when the move started; true once the peer replaced that
	// Child SA by a rekey during the move (only those are held).
	premove map[*ikeSA]map[uint32]bool
	// deferred runs on the next turn of the state loop (the probe timer).
	deferred []func()
}

// later runs f on the next turn of the state loop. A command for an IKE SA
// given while the runtime applies that SA's own output goes through here:
// the outer apply would otherwise set the SA's timer from its older
// deadline, and a request the command sent would never be retransmitted.
func (st *state) later(f func()) {
	st.mp.deferred = append(st.mp.deferred, f)
	st.armProbes()
}

// runDeferred runs what later queued, in order.
func (st *state) runDeferred() {
	for len(st.mp.deferred) > 0 {
		f := st.mp.deferred[0]
		st.mp.deferred = st.mp.deferred[1:]
		f()
	}
	st.mp.deferred = nil
}

func newMulti() *multi {
	m := &multi{rules: map[string]*steeringRule{}, paths: map[pathKey]*path{}, byTag: map[uint32]*path{},
		byConn: map[string][]*path{}, dirty: map[*path]struct{}{}, probed: map[*path]struct{}{},
		pols: map[string]*outPol{}, alias: map[*outPol]uint64{}, steer: &steerer{},
		connPols: map[string]map[*mergedPolicy]struct{}{}, cells: map[string]*connSteer{},
		probe: time.NewTimer(time.Hour), announce: map[*ikeSA][]netip.Addr{},
		migrating: map[*ikeSA]string{}, migrateW: map[*ikeSA][]chan migrateResult{},
		cloneQ: map[*ikeSA][]*path{}, clones: map[*ikeSA]*cloneSetup{}, peerClones: map[*ikeSA]bool{},
		lostLocal: map[*ikeSA]netip.Addr{}, holds: map[uint32]*outHold{}, premove: map[*ikeSA]map[uint32]bool{}}
	m.probe.Stop()
	return m
}

// probeC is the probe timer's channel for the state loop.
func (m *multi) probeC() <-chan time.Time { return m.probe.C }

// pathID makes a readable resource id: interface, then the remote address
// with '.' and ':' as '-'.
func pathID(ifc string, remote netip.Addr, tag uint32) string {
	b := remote.AppendTo(append(append(make([]byte, 0, len(ifc)+40), ifc...), '-'))
	for i := len(ifc) + 1; i < len(b); i++ {
		if b[i] == '.' || b[i] == ':' {
			b[i] = '-'
		}
	}
	id := string(b)
	if ValidID(id) != nil {
		id = fmt.Sprintf("%s-p%d", ifc, tag)
	}
	return id
}

// ifaceOf names the interface holding address a, the first by id when
// several do ("unmanaged" if none).
func (st *state) ifaceOf(a netip.Addr) string {
	a = a.Unmap()
	id := ""
	for _, ifc := range st.interfaces {
		if (id == "" || ifc.ID < id) && slices.ContainsFunc(ifc.Addrs, func(p netip.Prefix) bool { return p.Addr() == a }) {
			id = ifc.ID
		}
	}
	if id == "" {
		return "unmanaged"
	}
	return id
}

// pathFor finds or creates the path of conn from local to remote.
func (st *state) pathFor(conn string, local, remote netip.Addr) *path {
	k := pathKey{conn: conn, iface: st.ifaceOf(local), remote: remote.Unmap()}
	if p := st.mp.paths[k]; p != nil {
		if local.IsValid() && p.local != local.Unmap() {
			p.local = local.Unmap()
			st.markPath(p)
		}
		return p
	}
	st.mp.nextTag++
	p := &path{pathKey: k, tag: st.mp.nextTag, local: local.Unmap(), state: PathDown}
	p.id = pathID(k.iface, k.remote, p.tag)
	st.mp.paths[k] = p
	st.mp.byTag[p.tag] = p
	ps := append(st.mp.byConn[conn], p)
	st.mp.byConn[conn] = ps
	p.cidx = int32(len(ps))
	// Dirty: one that nothing claims goes at the next settlePaths.
	st.markPath(p)
	return p
}

// dropPath removes p from the registry.
func (st *state) dropPath(p *path) {
	delete(st.mp.paths, p.pathKey)
	delete(st.mp.byTag, p.tag)
	if ps := st.mp.byConn[p.conn]; p.cidx > 0 && int(p.cidx) <= len(ps) && ps[p.cidx-1] == p {
		i, last := int(p.cidx)-1, len(ps)-1
		ps[i] = ps[last]
		ps[i].cidx = int32(i + 1)
		ps[last] = nil
		if last == 0 {
			delete(st.mp.byConn, p.conn)
		} else {
			st.mp.byConn[p.conn] = ps[:last]
		}
		p.cidx = 0
	}
	delete(st.mp.probed, p)
	delete(st.mp.dirty, p)
}

// markPath notes that p's state may have changed (nil: nothing).
func (st *state) markPath(p *path) {
	if p != nil {
		st.mp.dirty[p] = struct{}{}
	}
}

// linkPath puts s on p (nil: on none), in the lists of both paths, and
// moves what the steering table holds of s along.
func (st *state) linkPath(s *ikeSA, p *path) {
	old := s.path
	st.markPath(old)
	st.markPath(p)
	if old == p && s.multi.pidx > 0 {
		return
	}
	if old != nil && s.multi.pidx > 0 {
		old.remove(s)
	}
	s.path = p
	if p != nil {
		p.add(s)
	}
	if old != p {
		st.steerSA(s)
	}
}

// unlinkPath takes s, which is gone, off its path (s.path stays, for
// what still looks at it).
func (st *state) unlinkPath(s *ikeSA) {
	if p := s.path; p != nil && s.multi.pidx > 0 {
		p.remove(s)
		st.markPath(p)
	}
	st.unsteerSA(s)
}

// upChanged follows s.up: its path's state may change, and so may the
// IKE SA saOf picks there.
func (st *state) upChanged(s *ikeSA) {
	p := s.path
	if p == nil || s.multi.pidx == 0 {
		return
	}
	st.markPath(p)
	switch {
	case !s.up && s == p.best:
		p.bestStale = true
	case s.up && !p.bestStale && (p.best == nil || better(s, p.best)):
		p.best = s
	}
}

// candidates lists (interface, local address) pairs an initiator
// connection may use towards remote: its allowed interfaces (all when it
// names none) whose link is up with an address of remote's family.
func (st *state) candidates(c *connection, remote netip.Addr) [][2]string {
	var out [][2]string
	for _, ifc := range sortedInterfaces(st.interfaces) {
		if len(c.LocalInterfaces) > 0 && !slices.Contains(c.LocalInterfaces, ifc.ID) {
			continue
		}
		if a, ok := usableAddr(ifc, remote); ok {
			out = append(out, [2]string{ifc.ID, a.String()})
		}
	}
	return out
}

// remoteFor picks, among a connection's configured remote addresses of
// the first one's family, the one ifc reaches best from local (mobility.go
// reach); the first wins ties. A gateway with one address per access
// network thus gets one path per access.
func (st *state) remoteFor(ifc *Interface, local netip.Addr, addrs []netip.Addr) netip.Addr {
	best, score := addrs[0], -1
	for _, a := range addrs {
		if a.Is4() != addrs[0].Is4() {
			continue
		}
		if sc := st.reach(ifc, local, a); sc > score {
			best, score = a, sc
		}
	}
	return best
}

// usableAddr is ifc's first address of remote's family a tunnel may use.
func usableAddr(ifc *Interface, remote netip.Addr) (netip.Addr, bool) {
	if ifc.State != iface.Up {
		return netip.Addr{}, false
	}
	for _, p := range ifc.Addrs {
		a := p.Addr()
		if a.Is4() == remote.Is4() && !a.IsLinkLocalUnicast() && !a.IsLoopback() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// syncPaths brings the whole registry in line (syncConn for every
// connection, and the paths of connections that are gone lose their
// candidacy); every path is dirty afterwards.
func (st *state) syncPaths() {
	for _, p := range st.mp.paths {
		p.cand = false
		st.markPath(p)
	}
	st.mp.mpConns = st.mp.mpConns[:0]
	for _, id := range sortedKeys(st.connections) {
		st.syncConn(id)
	}
}

// syncConn brings conn's paths in line: an initiator's candidate paths
// exist (pathFor), the others lose their candidacy and go at the next
// settlePaths unless an IKE SA or a verify waiter holds them.
func (st *state) syncConn(conn string) {
	for _, p := range st.mp.byConn[conn] {
		p.cand = false
		st.markPath(p)
	}
	st.mp.mpConns = slices.DeleteFunc(st.mp.mpConns, func(x string) bool { return x == conn })
	c := st.connections[conn]
	if c == nil || c.Role != RoleInitiator {
		return
	}
	if c.Multipath {
		i, _ := slices.BinarySearch(st.mp.mpConns, conn)
		st.mp.mpConns = slices.Insert(st.mp.mpConns, i, conn)
	}
	if len(c.addrs) == 0 {
		return
	}
	for _, cand := range st.candidates(c, c.addrs[0]) {
		local := netip.MustParseAddr(cand[1])
		p := st.pathFor(c.ID, local, st.remoteFor(st.interfaces[cand[0]], local, c.addrs))
		p.cand = true
	}
}

// saOf is the IKE SA on p: an established one if any, else one being
// set up (the greatest name first).
func (st *state) saOf(p *path) *ikeSA {
	if p.bestStale {
		p.best, p.bestStale = nil, false
		for _, s := range p.sas {
			if p.best == nil || better(s, p.best) {
				p.best = s
			}
		}
	}
	return p.best
}

// connPaths lists conn's paths in id order.
func (st *state) connPaths(conn string) []*path {
	out := slices.Clone(st.mp.byConn[conn])
	slices.SortFunc(out, func(a, b *path) int { return strings.Compare(a.id, b.id) })
	return out
}

// linkOK reports whether p's interface is up and still holds p.local.
func (st *state) linkOK(p *path) bool {
	ifc := st.interfaces[p.iface]
	if ifc == nil {
		return p.iface == "unmanaged"
	}
	if ifc.State != iface.Up {
		return false
	}
	return slices.ContainsFunc(ifc.Addrs, func(x netip.Prefix) bool { return x.Addr() == p.local })
}

func (st *state) pathState(p *path) (PathState, downReason) {
	if !st.linkOK(p) {
		return PathDown, downLink
	}
	s := st.saOf(p)
	switch {
	case s == nil:
		return PathDown, downNoSA
	case !s.up:
		return PathConnecting, downConnecting
	case p.misses() >= silentAfter:
		return PathSilent, downSilent
	}
	return PathUp, downNone
}

// pathsChanged re-derives every path's state, reports transitions and
// recompiles the whole steering table; why is the cause for the events.
// It is for what concerns every path: interfaces, the start.
func (st *state) pathsChanged(why string) {
	st.syncPaths()
	st.settlePaths(why, true)
}

// connPathsChanged follows a change of conn's configuration (added,
// updated, removed): its candidate paths, their states, its rules' choices
// and its policies' entries.
func (st *state) connPathsChanged(conn, why string) {
	st.syncConn(conn)
	st.settlePaths(why, false)
	for mp := range st.mp.connPols[conn] {
		st.steerPolicy(mp)
	}
	if _, ok := st.connections[conn]; !ok {
		delete(st.mp.cells, conn)
	}
}

// pathsTouched re-derives the state of the given paths (and of any other
// dirty one), reports transitions and steers their connections again.
func (st *state) pathsTouched(why string, ps ...*path) {
	for _, p := range ps {
		st.markPath(p)
	}
	st.settlePaths(why, false)
}

// settlePaths derives the dirty paths' states in name order, drops those
// nothing holds (neither candidacy, IKE SA nor verify waiter), reports
// transitions, then recompiles (full) or steers again the dirty paths'
// connections.
func (st *state) settlePaths(why string, full bool) {
	// An event touches a path or two: no allocation for those.
	var dirtyBuf [8]*path
	var connBuf [4]string
	dirty, conns := dirtyBuf[:0], connBuf[:0]
	for p := range st.mp.dirty {
		if st.mp.paths[p.pathKey] == p {
			dirty = append(dirty, p)
		}
	}
	clear(st.mp.dirty)
	st.mp.derived += uint64(len(dirty))
	slices.SortFunc(dirty, compareNames)
	for _, p := range dirty {
		if !slices.Contains(conns, p.conn) {
			conns = append(conns, p.conn)
		}
		if !p.cand && len(p.sas) == 0 && p.waiters() == 0 {
			st.dropPath(p)
			continue
		}
		next, reason := st.pathState(p)
		p.down = reason
		if next == p.state {
			continue
		}
		was := p.state
		p.state = next
		if (reason == downLink || reason == downNoSA) && p.pb != nil {
			p.pb.misses = 0
		}
		// A path steering chooses among (multipath connection, rule)
		// coming and going is the operator's business; the one path of
		// a connection follows its IKE SA (a line at debug: the IKE SA
		// going down has its own, and one per peer at info floods a
		// gateway).
		logf := st.e.log.Debug
		if _, ok := st.steered(p); ok {
			logf = st.e.log.Info
		} else if !st.e.log.IsDebug() {
			logf = nil
		}
		switch {
		case next == PathUp:
			if logf != nil {
				logf("path up", "path", p.name(), "cause", why)
			}
			v := st.pathView(p, false)
			st.publish(Event{Type: EventPathUp, Reason: why, Path: &v})
		case was == PathUp:
			if logf != nil {
				logf("path down", "path", p.name(), "state", next, "cause", reason)
			}
			v := st.pathView(p, false)
			st.publish(Event{Type: EventPathDown, Reason: reason.String(), Path: &v})
		}
	}
	for _, p := range dirty {
		st.refreshProbe(p)
	}
	if full {
		st.recompile(why)
	} else {
		slices.Sort(conns)
		st.flowsMoved(st.steerConns(conns), why)
	}
	st.armProbes()
}

// compareNames orders paths by name (conn/paths/id) without making the
// names: conn is a prefix of the name and ids hold no '/' (ValidID).
func compareNames(a, b *path) int {
	switch {
	case a.conn == b.conn:
		return strings.Compare(a.id, b.id)
	case strings.HasPrefix(b.conn, a.conn):
		return cmp.Compare('/', b.conn[len(a.conn)])
	case strings.HasPrefix(a.conn, b.conn):
		return cmp.Compare(a.conn[len(b.conn)], '/')
	}
	return strings.Compare(a.conn, b.conn)
}

// PathView is what the API shows of a path.
type PathView struct {
	Conn, ID     string
	Interface    string
	Local        netip.AddrPort
	Remote       netip.AddrPort
	State        PathState
	DownReason   string
	IKESA        string
	NATLocal     bool
	NATRemote    bool
	RTT          time.Duration
	Loss         float64
	Probes, Lost uint64
	LastVerified time.Time
	In, Out      dataplane.Counters
}

func (st *state) pathView(p *path, counters bool) PathView {
	v := PathView{Conn: p.conn, ID: p.id, Interface: p.iface, State: p.state, DownReason: p.down.String(),
		Local: netip.AddrPortFrom(p.local, 0), Remote: netip.AddrPortFrom(p.remote, 0), LastVerified: p.lastVerified()}
	if pb := p.pb; pb != nil {
		v.RTT, v.Loss, v.Probes, v.Lost = pb.rtt, ratio(pb.lost, pb.probes), pb.probes, pb.lost
	}
	if s := st.saOf(p); s != nil {
		in := s.m.Info()
		v.IKESA, v.Local, v.Remote, v.NATLocal, v.NATRemote = s.name(), in.Local, in.Remote, in.NATLocal, in.NATRemote
	}
	if !counters || st.rt.dp == nil {
		return v
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, s := range p.sas {
		for _, c := range s.m.Info().Children {
			if in, err := st.rt.dp.Counters(ctx, c.InSPI, dataplane.In); err == nil {
				v.In.Bytes += in.Bytes
				v.In.Packets += in.Packets
			}
			if out, err := st.rt.dp.Counters(ctx, c.OutSPI, dataplane.Out); err == nil {
				v.Out.Bytes += out.Bytes
				v.Out.Packets += out.Packets
			}
		}
	}
	return v
}

// ListPaths lists the paths of a connection ("-": of all) in name order.
func (e *Engine) ListPaths(ctx context.Context, conn, after string, limit int) ([]PathView, bool, error) {
	if conn != "-" {
		if _, err := do(ctx, e, func(st *state) (*connection, error) { return st.connection(conn, "parent") }); err != nil {
			return nil, false, err
		}
	}
	return listPage(ctx, e, after, limit, func(st *state) []PathView {
		var out []PathView
		for _, p := range st.mp.paths {
			if conn == "-" || p.conn == conn {
				out = append(out, st.pathView(p, true))
			}
		}
		slices.SortFunc(out, func(a, b PathView) int { return strings.Compare(a.Conn+"/"+a.ID, b.Conn+"/"+b.ID) })
		return out
	}, func(v PathView) string { return v.Conn + "/" + v.ID })
}

// steered reports whether p's flows are chosen by steering (a rule can
// apply to its connection, or the connection is multipath): then it is
// probed, and how often.
func (st *state) steered(p *path) (time.Duration, bool) {
	iv, ok := time.Duration(0), false
	for _, r := range st.mp.rules {
		if r.Match.Connection != "" && r.Match.Connection != p.conn {
			continue
		}
		if !ok || r.probeInterval() < iv {
			iv, ok = r.probeInterval(), true
		}
	}
	if c := st.connections[p.conn]; c != nil && c.Multipath && !ok {
		iv, ok = DefaultProbeInterval, true
	}
	return iv, ok || p.waiters() > 0
}

// refreshProbe files p among the probed paths when it is steered and up
// or silent (and still registered), else takes it out.
func (st *state) refreshProbe(p *path) {
	if _, ok := st.steered(p); ok && (p.state == PathUp || p.state == PathSilent) && st.mp.paths[p.pathKey] == p {
		st.mp.probed[p] = struct{}{}
		return
	}
	delete(st.mp.probed, p)
}

// probeTimeout is how long a probe may go unanswered before it counts as
// lost: three intervals, at least a second.
func probeTimeout(iv time.Duration) time.Duration { return max(3*iv, time.Second) }

// armProbes sets the probe timer to the earliest probe work due (now
// when later queued something).
func (st *state) armProbes() {
	var next time.Time
	if len(st.mp.deferred) > 0 {
		next = st.e.cfg.Now()
	}
	for _, h := range st.mp.holds {
		if next.IsZero() || h.until.Before(next) {
			next = h.until
		}
	}
	for p := range st.mp.probed {
		iv, ok := st.steered(p)
		if !ok || p.state != PathUp && p.state != PathSilent {
			continue
		}
		var at time.Time
		if pb := p.pb; pb != nil {
			at = pb.nextProbe
			if pb.probing != nil {
				at = pb.probeSent.Add(probeTimeout(iv))
			}
		}
		if at.IsZero() {
			at = st.e.cfg.Now() // never probed: due now
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	st.mp.probe.Stop()
	st.mp.probeAt = next
	if next.IsZero() {
		return
	}
	st.mp.probe.Reset(max(next.Sub(st.e.cfg.Now()), 0))
}

// probeTick sends the probes due and counts those lost.
func (st *state) probeTick() {
	st.runDeferred()
	now := st.e.cfg.Now()
	st.checkHolds(now, "")
	var silent []*path
	for _, p := range slices.Collect(maps.Keys(st.mp.probed)) {
		iv, ok := st.steered(p)
		if !ok || p.state != PathUp && p.state != PathSilent {
			continue
		}
		pb := p.probe()
		if pb.probing != nil && now.Sub(pb.probeSent) >= probeTimeout(iv) {
			pb.probing = nil
			pb.lost++
			pb.misses++
			if pb.misses == silentAfter {
				silent = append(silent, p)
			}
		}
		if pb.probing == nil && !now.Before(pb.nextProbe) {
			st.sendProbe(p, now, iv)
		}
	}
	if len(silent) > 0 {
		st.pathsTouched("silent", silent...)
		return
	}
	st.armProbes()
}

// sendProbe tests p: with MOBIKE a path test on the IKE SA's own address
// pair (CmdProbe, RFC 4555 §3.10, answered by EventProbe); otherwise a
// liveness check (RFC 7296 §2.4) that any response the SA processes after
// it answers.
func (st *state) sendProbe(p *path, now time.Time, iv time.Duration) {
	s := st.saOf(p)
	if s == nil || !s.up {
		return
	}
	in := s.m.Info()
	c := st.connections[s.conn]
	pb := p.probe()
	pb.probing, pb.probeSent, pb.probeBase = s, now, in.Stats.Responses
	pb.probeMOB = c != nil && c.MOBIKE && in.Capabilities.MOBIKE
	pb.nextProbe = now.Add(iv)
	pb.probes++
	if pb.probeMOB {
		st.drive(s, sa.Command{Kind: sa.CmdProbe, Local: in.Local, Remote: in.Remote})
		return
	}
	st.drive(s, sa.Command{Kind: sa.CmdLiveness})
}

// probeCheck is called after s handled an input: a liveness check is
// answered by any response processed since it was sent.
func (st *state) probeCheck(s *ikeSA) {
	p := s.path
	if p == nil || p.probing() != s || p.pb.probeMOB || s.m.Info().Stats.Responses <= p.pb.probeBase {
		return
	}
	st.probeAnswered(p)
}

// probeResult handles EventProbe of s.
func (st *state) probeResult(s *ikeSA, ev sa.Event) {
	p := s.path
	if p == nil || p.probing() != s || !p.pb.probeMOB {
		return
	}
	if ev.OK {
		st.probeAnswered(p)
		return
	}
	pb := p.pb
	pb.probing = nil
	pb.lost++
	if pb.misses++; pb.misses == silentAfter {
		st.pathsTouched("silent", p)
	}
}

// probeAnswered takes an RTT sample, may bring p back and releases the
// verify waiters the answer satisfies.
func (st *state) probeAnswered(p *path) {
	now := st.e.cfg.Now()
	pb := p.probe()
	sent := pb.probeSent // of the answered probe
	sample := now.Sub(sent)
	if pb.rtt == 0 {
		pb.rtt = sample
	} else {
		pb.rtt += (sample - pb.rtt) / 8
	}
	pb.probing = nil
	wasSilent := pb.misses >= silentAfter
	p.verified(now)
	var again bool
	if len(pb.verifyW) > 0 {
		st.markPath(p) // without waiters it may be held no longer
	}
	pb.verifyW = slices.DeleteFunc(pb.verifyW, func(w *verifyWait) bool {
		if sent.Before(w.since) {
			again = true
			return false
		}
		if w.n--; w.n == 0 {
			close(w.c)
		}
		return true
	})
	if again {
		iv, _ := st.steered(p)
		st.sendProbe(p, now, iv)
	}
	if wasSilent {
		st.pathsTouched("probe_answered", p)
		return
	}
	// SMALLEST_DELAY follows the RTT: steer p's connection again when such
	// a rule can apply to it.
	for _, r := range st.mp.rules {
		if r.Mode == SteerSmallestDelay && (r.Match.Connection == "" || r.Match.Connection == p.conn) {
			st.flowsMoved(st.steerConns([]string{p.conn}), "rtt_changed")
			break
		}
	}
	st.refreshProbe(p)
	st.armProbes()
}

// verify probes paths now and returns a channel closed once each of them
// answered a probe sent from now on.
func (st *state) verify(paths []*path) <-chan struct{} {
	now := st.e.cfg.Now()
	w := &verifyWait{n: len(paths), since: now, c: make(chan struct{})}
	for _, p := range paths {
		pb := p.probe()
		pb.verifyW = append(pb.verifyW, w)
		st.refreshProbe(p)
		iv, _ := st.steered(p)
		if pb.probing == nil {
			st.sendProbe(p, now, iv)
		}
	}
	st.armProbes()
	return w.c
}
