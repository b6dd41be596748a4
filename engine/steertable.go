package engine

import (
	"math"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/sa"
)

// The steering table: what the data plane reads on every packet through
// the Steering hook (Pick, Observe), and how the state goroutine keeps it
// current. It is kept per merged outbound policy and per connection, and
// each event rewrites only what it touched: an IKE SA's policies and
// inbound SPIs, a connection's rule choices. Readers take no lock and
// allocate nothing; every entry they load is immutable.
//
// A policy has an entry only when Pick can do something with it: it is
// merged (multipath.go: only then can it have two SAs to choose from) and
// its connection is a responder (return traffic follows the flow's
// inbound path, DESIGN.md §4) or a rule can apply to it. Otherwise Pick
// answers 0, the policy's first SA, as it would with an entry. Likewise
// only the inbound SAs of the members of merged policies are mapped to
// their paths for Observe: a flow's return matters only where there is a
// choice.

// steerer is the dataplane.Steering (and FlowObserver) the engine installs.
type steerer struct {
	pols   cowMap[uint64, *polSteer] // merged outbound policy id →
	inPath cowMap[uint32, uint32]    // inbound SPI → path tag
	// flows remembers the path each flow last came in on; pins the path a
	// load-balanced flow was given.
	flows, pins flowCache
}

// polSteer is what Pick needs of one merged outbound policy.
type polSteer struct {
	// symmetric: without a matching rule, return traffic follows the path
	// the flow last came in on (a gateway, DESIGN.md §4).
	symmetric bool
	spis      []spiTag   // the policy's outbound SPIs and their paths
	conn      *connSteer // the rules of the policy's connection
}

type spiTag struct{ spi, tag uint32 }

// connSteer holds a connection's compiled rules, swapped whole when its
// paths or the rules change; every policy entry of the connection points
// at it, so a new choice reaches all of them at once.
type connSteer struct{ rules atomic.Pointer[[]tableRule] }

// tableRule is a rule as one connection sees it: the match and the
// connection's choice of paths.
type tableRule struct {
	src, dst     []netip.Prefix
	proto        uint8
	sport, dport [2]uint16 // inclusive; {0, 0} = any
	dscp         uint64
	lb           bool
	choice       tableChoice
}

type tableChoice struct {
	tags    []uint32  // preference order (first usable wins), or the LB set
	weights []float64 // LB only
}

func (r *tableRule) match(f *dataplane.Flow) bool {
	if r.proto != 0 && f.Protocol != r.proto {
		return false
	}
	if r.dscp != 0 && r.dscp&(1<<(f.DSCP&63)) == 0 {
		return false
	}
	if r.sport != [2]uint16{} && (f.SrcPort < r.sport[0] || f.SrcPort > r.sport[1]) {
		return false
	}
	if r.dport != [2]uint16{} && (f.DstPort < r.dport[0] || f.DstPort > r.dport[1]) {
		return false
	}
	return inPrefixes(r.src, f.Src) && inPrefixes(r.dst, f.Dst)
}

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	if len(ps) == 0 {
		return true
	}
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Pick implements dataplane.Steering: the first matching rule decides;
// without one, a gateway answers on the flow's inbound path; else 0 (the
// policy's first SA).
func (s *steerer) Pick(f dataplane.Flow, policy uint64, spis []uint32) uint32 {
	if len(spis) < 2 {
		return 0
	}
	ps, ok := s.pols.get(policy)
	if !ok {
		return 0
	}
	if rules := ps.conn.rules.Load(); rules != nil {
		for i := range *rules {
			r := &(*rules)[i]
			if len(r.choice.tags) == 0 || !r.match(&f) {
				continue
			}
			if !r.lb {
				for _, tag := range r.choice.tags {
					if spi := ps.spiOn(tag, spis); spi != 0 {
						return spi
					}
				}
				continue
			}
			if spi := s.balance(ps, &r.choice, &f, spis); spi != 0 {
				return spi
			}
		}
	}
	if ps.symmetric {
		if tag := s.flows.get(flowHash(&f, false)); tag != 0 {
			return ps.spiOn(tag, spis)
		}
	}
	return 0
}

// balance picks a load-balanced flow's SA: its pinned path while that is
// in the set, else weighted rendezvous hashing (highest score w/-ln(u)),
// which moves only the flows of a path that left.
func (s *steerer) balance(ps *polSteer, ch *tableChoice, f *dataplane.Flow, spis []uint32) uint32 {
	h := flowHash(f, false)
	if tag := s.pins.get(h); tag != 0 && slices.Contains(ch.tags, tag) {
		if spi := ps.spiOn(tag, spis); spi != 0 {
			return spi
		}
	}
	var best, bestSPI uint32
	bestScore := -1.0
	for i, tag := range ch.tags {
		spi := ps.spiOn(tag, spis)
		if spi == 0 {
			continue
		}
		u := (float64(mix(h^uint64(tag)*0x9e3779b97f4a7c15)>>11) + 0.5) / (1 << 53)
		score := ch.weights[i] / -math.Log(u)
		if score > bestScore {
			best, bestSPI, bestScore = tag, spi, score
		}
	}
	if best != 0 {
		s.pins.put(h, best)
	}
	return bestSPI
}

// Observe implements dataplane.FlowObserver: remember the path an inbound
// flow arrived on, for symmetric return.
func (s *steerer) Observe(f dataplane.Flow, spi uint32) {
	if tag, _ := s.inPath.get(spi); tag != 0 {
		s.flows.put(flowHash(&f, true), tag)
	}
}

// spiOn is the SA among spis that lives on path tag, or 0.
func (ps *polSteer) spiOn(tag uint32, spis []uint32) uint32 {
	for _, spi := range spis {
		for _, x := range ps.spis {
			if x.spi == spi && x.tag == tag {
				return spi
			}
		}
	}
	return 0
}

// cowMap is a map the packet path reads without a lock while the state
// goroutine writes it: each shard is an immutable map replaced by a copy
// on every write, so a write costs 1/cowShards of the entries.
type cowMap[K uint32 | uint64, V any] struct {
	shards [cowShards]atomic.Pointer[map[K]V]
}

const cowShards = 256

func cowShard[K uint32 | uint64](k K) int { return int(mix(uint64(k)) & (cowShards - 1)) }

func (m *cowMap[K, V]) get(k K) (V, bool) {
	sh := m.shards[cowShard(k)].Load()
	if sh == nil {
		var zero V
		return zero, false
	}
	v, ok := (*sh)[k]
	return v, ok
}

func (m *cowMap[K, V]) set(k K, v V) {
	i := cowShard(k)
	var next map[K]V
	if old := m.shards[i].Load(); old != nil {
		next = make(map[K]V, len(*old)+1)
		for x, y := range *old {
			next[x] = y
		}
	} else {
		next = make(map[K]V, 1)
	}
	next[k] = v
	m.shards[i].Store(&next)
}

func (m *cowMap[K, V]) del(k K) {
	i := cowShard(k)
	old := m.shards[i].Load()
	if old == nil {
		return
	}
	if _, ok := (*old)[k]; !ok {
		return
	}
	if len(*old) == 1 {
		m.shards[i].Store(nil)
		return
	}
	next := make(map[K]V, len(*old)-1)
	for x, y := range *old {
		if x != k {
			next[x] = y
		}
	}
	m.shards[i].Store(&next)
}

// replace swaps in all of all's entries at once (one copy, however many
// entries change).
func (m *cowMap[K, V]) replace(all map[K]V) {
	var next [cowShards]map[K]V
	for k, v := range all {
		i := cowShard(k)
		if next[i] == nil {
			next[i] = map[K]V{}
		}
		next[i][k] = v
	}
	for i := range next {
		if next[i] == nil {
			m.shards[i].Store(nil)
			continue
		}
		sh := next[i]
		m.shards[i].Store(&sh)
	}
}

// flowCache is a bounded, lock-free map from flow hashes to path tags:
// one atomic word per slot holds the hash's upper half and the tag; each
// flow has two candidate slots (2-way), so that collisions rarely evict.
// An evicted flow is simply decided again.
type flowCache struct{ slots [flowSlots]atomic.Uint64 }

const flowSlots = 1 << 16

func flowSlotsOf(h uint64) (uint64, uint64) { return h & (flowSlots - 1), (h >> 16) & (flowSlots - 1) }

func (c *flowCache) get(h uint64) uint32 {
	i, j := flowSlotsOf(h)
	for _, k := range [2]uint64{i, j} {
		if v := c.slots[k].Load(); v != 0 && v>>32 == h>>32 {
			return uint32(v)
		}
	}
	return 0
}

func (c *flowCache) put(h uint64, tag uint32) {
	i, j := flowSlotsOf(h)
	v := h>>32<<32 | uint64(tag)
	for _, k := range [2]uint64{i, j} {
		if old := c.slots[k].Load(); old == 0 || old>>32 == h>>32 {
			c.slots[k].Store(v)
			return
		}
	}
	c.slots[i].Store(v)
}

// flowHash hashes a flow's 5-tuple (FNV-1a); reversed hashes an inbound
// packet as its outbound reply, so both ends of a flow meet.
func flowHash(f *dataplane.Flow, reversed bool) uint64 {
	src, dst, sp, dp := f.Src, f.Dst, f.SrcPort, f.DstPort
	if reversed {
		src, dst, sp, dp = dst, src, dp, sp
	}
	h := uint64(14695981039346656037)
	add := func(b byte) { h = (h ^ uint64(b)) * 1099511628211 }
	a, b := src.As16(), dst.As16()
	for i := range a {
		add(a[i])
	}
	for i := range b {
		add(b[i])
	}
	add(f.Protocol)
	add(byte(sp >> 8))
	add(byte(sp))
	add(byte(dp >> 8))
	add(byte(dp))
	return mix(h)
}

// mix is the splitmix64 finaliser.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// recompile rebuilds every connection's rule choices and every policy
// entry, then reports the flows each rule moved (why: the cause). It is
// for what concerns all connections: rules, interfaces, the start.
func (st *state) recompile(why string) {
	conns := sortedKeys(st.connections)
	moves := st.steerConns(conns)
	for _, r := range st.mp.rules {
		r.fresh = false
	}
	for id := range st.mp.cells {
		if _, ok := st.connections[id]; !ok {
			delete(st.mp.cells, id)
		}
	}
	all := map[uint64]*polSteer{}
	for _, cp := range st.mp.connPols {
		for mp := range cp {
			if ps := st.polEntry(mp); ps != nil {
				all[mp.pol.ID] = ps
			}
		}
	}
	st.mp.steer.pols.replace(all)
	for _, p := range st.mp.paths {
		st.refreshProbe(p)
	}
	st.flowsMoved(moves, why)
}

// ruled reports whether a rule can apply to conn.
func (st *state) ruled(conn string) bool {
	for _, r := range st.mp.rules {
		if r.Match.Connection == "" || r.Match.Connection == conn {
			return true
		}
	}
	return false
}

// flowMove is a rule's choice change for one connection (flowsMoved).
type flowMove struct {
	r             *steeringRule
	conn          string
	before, after []uint32
}

// steerConns chooses again the paths of conns (sorted) under every rule
// that can apply to them and swaps in their compiled rules. It returns
// the choices that changed, for flowsMoved once the table is in place
// (an event must not announce a move the data plane cannot see yet).
func (st *state) steerConns(conns []string) []flowMove {
	if len(st.mp.rules) == 0 {
		for _, conn := range conns {
			if cs := st.mp.cells[conn]; cs != nil {
				cs.rules.Store(nil)
			}
		}
		return nil
	}
	var moves []flowMove
	lists := make(map[string][]tableRule, len(conns))
	for _, r := range st.sortedRules() {
		base := tableRule{src: r.src, dst: r.dst, proto: uint8(r.Match.Protocol), dscp: r.dscp, lb: r.Mode == SteerLoadBalance}
		if !r.Match.SourcePorts.any() {
			base.sport = [2]uint16{uint16(r.Match.SourcePorts.First), uint16(r.Match.SourcePorts.Last)}
		}
		if !r.Match.DestinationPorts.any() {
			base.dport = [2]uint16{uint16(r.Match.DestinationPorts.First), uint16(r.Match.DestinationPorts.Last)}
		}
		for _, conn := range conns {
			if r.Match.Connection != "" && r.Match.Connection != conn || st.connections[conn] == nil {
				continue
			}
			before := slices.Clone(r.active[conn])
			active, order := st.chooseOrder(r, conn, false)
			tr := base
			tr.choice = tableChoice{tags: order}
			if tr.lb {
				tr.choice = tableChoice{tags: active, weights: st.weights(r, active)}
			}
			lists[conn] = append(lists[conn], tr)
			if len(before) > 0 && !slices.Equal(before, active) {
				moves = append(moves, flowMove{r: r, conn: conn, before: before, after: active})
			}
		}
	}
	for _, conn := range conns {
		l, ok := lists[conn]
		cs := st.mp.cells[conn]
		switch {
		case ok && cs == nil:
			cs = &connSteer{}
			st.mp.cells[conn] = cs
			cs.rules.Store(&l)
		case ok:
			cs.rules.Store(&l)
		case cs != nil:
			cs.rules.Store(nil)
		}
	}
	return moves
}

// polEntry builds mp's entry, or nil when it needs none.
func (st *state) polEntry(mp *mergedPolicy) *polSteer {
	c := st.connections[mp.conn]
	if c == nil || c.Role != RoleResponder && !st.ruled(mp.conn) {
		return nil
	}
	cs := st.mp.cells[mp.conn]
	if cs == nil {
		cs = &connSteer{}
		st.mp.cells[mp.conn] = cs
	}
	ps := &polSteer{symmetric: c.Role == RoleResponder, conn: cs}
	for _, m := range mp.members {
		if m.sa.path == nil {
			continue
		}
		for _, spi := range m.spis {
			ps.spis = append(ps.spis, spiTag{spi: spi, tag: m.sa.path.tag})
		}
	}
	return ps
}

// steerPolicy writes mp's entry (or removes it).
func (st *state) steerPolicy(mp *mergedPolicy) {
	if ps := st.polEntry(mp); ps != nil {
		st.mp.steer.pols.set(mp.pol.ID, ps)
		return
	}
	st.mp.steer.pols.del(mp.pol.ID)
}

// saMulti is what the multi-interface code keeps in an IKE SA: its
// place in its path's list (paths.go), its inbound SPIs, whether the
// steering table maps them to its path (inPath, once it is a member of a
// merged policy) and its outbound policies (multipath.go).
type saMulti struct {
	pidx    int32 // 1 + its index in path.sas; 0: not listed
	steered bool  // its inbound SPIs are in inPath
	in      []uint32
	// Its outbound policies: the first in pol (most IKE SAs have only
	// that one: no allocation), the others behind more (8 bytes where a
	// slice header took 24: the IKE SA record's size class, per-SA memory).
	pol  *outPol
	more *[]*outPol
}

// others are the outbound policies after the first.
func (m *saMulti) others() []*outPol {
	if m.more == nil {
		return nil
	}
	return *m.more
}

// setOthers replaces them.
func (m *saMulti) setOthers(l []*outPol) {
	switch {
	case len(l) == 0:
		m.more = nil
	case m.more == nil:
		nl := l // only this path allocates
		m.more = &nl
	default:
		*m.more = l
	}
}

// numPols is the number of outbound policies; polAt(i) the i-th.
func (m *saMulti) numPols() int {
	if m.pol == nil {
		return 0
	}
	return 1 + len(m.others())
}

func (m *saMulti) polAt(i int) *outPol {
	if i == 0 {
		return m.pol
	}
	return m.others()[i-1]
}

func (m *saMulti) hasPol(o *outPol) bool { return m.pol == o || slices.Contains(m.others(), o) }

func (m *saMulti) addPol(o *outPol) {
	if m.pol == nil {
		m.pol = o
		return
	}
	m.setOthers(append(m.others(), o))
}

func (m *saMulti) dropPol(o *outPol) {
	if m.pol == o {
		m.pol = nil
		if l := m.others(); len(l) > 0 {
			m.pol = l[0]
			m.setOthers(slices.Delete(l, 0, 1))
		}
		return
	}
	m.setOthers(slices.DeleteFunc(m.others(), func(x *outPol) bool { return x == o }))
}

// steerIn maps s's inbound SPIs to its path from now on (s became a
// member of a merged policy).
func (st *state) steerIn(s *ikeSA) {
	if s.multi.steered {
		return
	}
	s.multi.steered = true
	if s.path == nil {
		return
	}
	for _, spi := range s.multi.in {
		st.mp.steer.inPath.set(spi, s.path.tag)
	}
}

// unsteerIn takes s's inbound SPIs out of inPath (s is in no merged
// policy any more).
func (st *state) unsteerIn(s *ikeSA) {
	if !s.multi.steered {
		return
	}
	s.multi.steered = false
	for _, spi := range s.multi.in {
		st.mp.steer.inPath.del(spi)
	}
}

// steerSA rewrites what the table holds of s after s changed paths.
func (st *state) steerSA(s *ikeSA) {
	if !s.multi.steered {
		return
	}
	for _, spi := range s.multi.in {
		if s.path != nil {
			st.mp.steer.inPath.set(spi, s.path.tag)
		} else {
			st.mp.steer.inPath.del(spi)
		}
	}
	for i := range s.multi.numPols() {
		if o := s.multi.polAt(i); o.merged != nil && st.mp.pols[o.key] == o {
			st.steerPolicy(o.merged)
		}
	}
}

// steerSAOp follows s's inbound SAs coming and going (inPath).
func (st *state) steerSAOp(s *ikeSA, op *sa.DataplaneOp) {
	switch {
	case op.Kind == sa.OpAddSA && op.SA.Direction == dataplane.In:
		s.multi.in = append(s.multi.in, op.SA.SPI)
		if s.multi.steered && s.path != nil {
			st.mp.steer.inPath.set(op.SA.SPI, s.path.tag)
		}
	case op.Kind == sa.OpDeleteSA && op.Dir == dataplane.In:
		if i := slices.Index(s.multi.in, op.SPI); i >= 0 {
			s.multi.in = slices.Delete(s.multi.in, i, i+1)
			if s.multi.steered {
				st.mp.steer.inPath.del(op.SPI)
			}
		}
	}
}

// unsteerSA forgets s (it is gone).
func (st *state) unsteerSA(s *ikeSA) {
	if s.multi.steered {
		for _, spi := range s.multi.in {
			st.mp.steer.inPath.del(spi)
		}
	}
	s.multi.in, s.multi.pol, s.multi.more, s.multi.steered = nil, nil, nil, false
}

// flowsMoved publishes what each rule's choice change did to its flows.
func (st *state) flowsMoved(moves []flowMove, why string) {
	for _, m := range moves {
		st.flowMoved(m.r, m.conn, m.before, m.after, why)
	}
}

func (st *state) flowMoved(r *steeringRule, conn string, before, after []uint32, why string) {
	if len(before) == 0 || slices.Equal(before, after) {
		return
	}
	from, to := st.mp.byTag[before[0]], (*path)(nil)
	if len(after) > 0 {
		to = st.mp.byTag[after[0]]
	}
	if r.Mode == SteerLoadBalance {
		// Only the flows of paths that left the set move.
		for _, tag := range before {
			if !slices.Contains(after, tag) {
				from = st.mp.byTag[tag]
				break
			}
		}
		if from == nil || slices.Contains(after, from.tag) {
			return
		}
	}
	v := st.steeringView(r)
	ev := Event{Type: EventFlowsMoved, Reason: why, SteeringRule: &v, Conn: conn}
	if from != nil {
		ev.From = PathRef{Conn: conn, ID: from.id}
	}
	if to != nil {
		ev.To = PathRef{Conn: conn, ID: to.id}
	}
	st.e.log.Info("flows moved", "steering_rule", r.ID, "connection", conn, "from", ev.From.ID, "to", ev.To.ID, "cause", why)
	st.publish(ev)
}
