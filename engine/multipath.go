package engine

import (
	"cmp"
	"context"
	"encoding/binary"
	"net/netip"
	"slices"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/sa"
)

// Multipath connections keep one IKE SA per usable path (DESIGN.md §1 G1,
// G2; PROTOCOL.md items 67, 69). When the peer announced
// CLONE_IKE_SA_SUPPORTED, each extra path gets an RFC 7791 clone of an
// authenticated IKE SA (CmdClone), moved onto the path with MOBIKE
// (CmdMigrate, RFC 4555 §3.5) and given its Child SAs there
// (CmdCreateChild): no second authentication. Against a standard peer, or
// when cloning fails, each extra path is a fully authenticated IKE SA
// without INITIAL_CONTACT (P5), asking for the same inner address. The Child SAs of all paths have the same selectors
// (RFC 7296 §2.8 allows parallel SAs): the outbound policies the SA
// machines emit are merged here into one data-plane policy listing every
// path's outbound SA, and the steering hook picks one per flow. Inbound
// policies pass through: every path's inbound SA is accepted.

// multipathRetry spaces attempts to set up a path's IKE SA.
const multipathRetry = 5 * time.Second

// outPol is one outbound policy of the SA machines, filed by connection
// and selectors (policyKey). Alone with its selectors, the usual case (one
// IKE SA per connection and peer), it passes through to the data plane as
// its SA machine made it and the steering table holds nothing for it: Pick
// has nothing to choose among fewer than two SAs. A second policy with the
// same selectors (another path's IKE SA, a make-before-break
// re-authentication, another peer proposing the same selectors), or a
// policy with several SAs, turns it into a mergedPolicy, until one member
// with at most one SA is left: that one is alone again, under the data
// plane's id (multi.alias when it is not its own, as after a
// re-authentication).
type outPol struct {
	key    string
	id     uint64        // the data plane's policy id: the first member's
	sa     *ikeSA        // alone: its IKE SA (merged: nil)
	spi    uint32        // alone: its outbound SA, 0 for none (RFC 4303 §2.1 reserves SPI 0)
	merged *mergedPolicy // several members
}

// own is the SA machine's id of a lone policy.
func (st *state) own(o *outPol) uint64 {
	if len(st.mp.alias) > 0 {
		if id, ok := st.mp.alias[o]; ok {
			return id
		}
	}
	return o.id
}

// mergedPolicy is one data-plane outbound policy standing for the
// identical-selector policies of several SA machines.
type mergedPolicy struct {
	conn      string
	pol       dataplane.Policy // ID: the first member's; SPIs: the union
	members   []policyMember   // first come first
	installed bool
}

type policyMember struct {
	id   uint64 // the SA machine's policy id
	sa   *ikeSA
	spis []uint32
}

// first is the IKE SA whose SA the data plane uses without a pick.
func (o *outPol) first() *ikeSA {
	if o.merged == nil {
		return o.sa
	}
	if len(o.merged.members) == 0 {
		return nil
	}
	return o.merged.members[0].sa
}

// member is the index of s's policy id among mp's members, or -1.
func (mp *mergedPolicy) member(s *ikeSA, id uint64) int {
	return slices.IndexFunc(mp.members, func(m policyMember) bool { return m.id == id && m.sa == s })
}

// has reports whether s is a member of mp.
func (mp *mergedPolicy) has(s *ikeSA) bool {
	return slices.ContainsFunc(mp.members, func(m policyMember) bool { return m.sa == s })
}

// outPolOf is s's outbound policy of id (the SA machine's), or nil.
func (st *state) outPolOf(s *ikeSA, id uint64) *outPol {
	for i := range s.multi.numPols() {
		if o := s.multi.polAt(i); o.merged == nil && o.sa == s && st.own(o) == id || o.merged != nil && o.merged.member(s, id) >= 0 {
			return o
		}
	}
	return nil
}

// policyKey files an outbound policy by connection and selectors, each
// side's in a canonical order; a selector without protocol matches any
// port (RFC 4301 §4.4.1.1), so its ports are left out. buf is room for
// the key (lookups through string(key) do not allocate).
func policyKey(buf []byte, conn string, local, remote []dataplane.Selector) []byte {
	buf = append(append(buf, conn...), 0) // ValidID: no NUL in an id
	for _, side := range [2][]dataplane.Selector{local, remote} {
		if !slices.IsSortedFunc(side, compareSelector) {
			side = slices.SortedFunc(slices.Values(side), compareSelector)
		}
		buf = binary.AppendUvarint(buf, uint64(len(side)))
		for _, sel := range side {
			a := sel.Prefix.Addr()
			if a.Is4() {
				b := a.As4()
				buf = append(append(buf, 4), b[:]...)
			} else {
				b := a.As16()
				buf = append(append(buf, 6), b[:]...)
			}
			buf = append(buf, byte(sel.Prefix.Bits()), sel.Protocol)
			if sel.Protocol != 0 {
				buf = binary.BigEndian.AppendUint16(buf, sel.PortFrom)
				buf = binary.BigEndian.AppendUint16(buf, sel.PortTo)
			}
		}
	}
	return buf
}

func compareSelector(a, b dataplane.Selector) int {
	if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Protocol, b.Protocol); c != 0 || a.Protocol == 0 {
		return c
	}
	if c := cmp.Compare(a.PortFrom, b.PortFrom); c != 0 {
		return c
	}
	return cmp.Compare(a.PortTo, b.PortTo)
}

// mergeOp intercepts an SA machine's outbound policy operation and the
// outbound address updates of a MOBIKE move; it reports whether it handled
// it (false: the runtime passes the operation on). It also follows the
// inbound SAs for the steering table (steerSAOp).
func (st *state) mergeOp(s *ikeSA, op *sa.DataplaneOp) bool {
	switch op.Kind {
	case sa.OpAddSA, sa.OpDeleteSA:
		st.steerSAOp(s, op)
		if op.Kind == sa.OpDeleteSA && op.Dir == dataplane.Out {
			st.holdGone(s, op.SPI)
		}
	case sa.OpUpdateSA:
		// A MOBIKE move: the outbound half may stay on the old pair for
		// now (make-before-break, mobility.go holdOut).
		return op.Dir == dataplane.Out && st.holdOut(s, op)
	case sa.OpAddPolicy, sa.OpUpdatePolicy:
		if op.Policy.Direction != dataplane.Out {
			return false
		}
		return st.outPolicy(s, &op.Policy)
	case sa.OpDeletePolicy:
		return st.dropOutPolicy(s, &op.PolicyID)
	}
	return false
}

// outPolicy files s's outbound policy pol (added or updated); it reports
// whether the policy is merged (false: it goes to the data plane as is,
// under the data plane's id).
func (st *state) outPolicy(s *ikeSA, pol *dataplane.Policy) bool {
	o := st.outPolOf(s, pol.ID)
	if o == nil {
		var buf [96]byte
		k := policyKey(buf[:0], s.conn, pol.Local, pol.Remote)
		if o = st.mp.pols[string(k)]; o == nil {
			o = &outPol{key: string(k), id: pol.ID}
			st.mp.pols[o.key] = o
			if len(pol.SPIs) <= 1 {
				o.sa, o.spi = s, firstSPI(pol.SPIs)
				s.multi.addPol(o)
				return false
			}
			st.mergePolicy(o, s.conn, pol)
		} else if o.merged == nil {
			st.mergePolicy(o, s.conn, pol)
		}
		if !s.multi.hasPol(o) {
			s.multi.addPol(o)
		}
		o.merged.members = append(o.merged.members, policyMember{id: pol.ID, sa: s})
	} else if o.merged == nil {
		if len(pol.SPIs) <= 1 {
			o.spi = firstSPI(pol.SPIs)
			pol.ID = o.id
			return false
		}
		st.mergePolicy(o, s.conn, pol)
	}
	mp := o.merged
	mp.members[mp.member(s, pol.ID)].spis = slices.Clone(pol.SPIs)
	st.steerIn(s)
	st.pushMerged(mp)
	st.unmergeOne(o)
	return true
}

func firstSPI(spis []uint32) uint32 {
	if len(spis) == 0 {
		return 0
	}
	return spis[0]
}

// mergePolicy turns o into a merged policy (pol gives its selectors); a
// lone member that was passed through is its first member, installed.
func (st *state) mergePolicy(o *outPol, conn string, pol *dataplane.Policy) {
	mp := &mergedPolicy{conn: conn, pol: *pol}
	mp.pol.ID, mp.pol.SPIs = o.id, nil
	if o.sa != nil {
		mp.installed = true
		if o.spi != 0 {
			mp.pol.SPIs = []uint32{o.spi}
		}
		mp.members = append(mp.members, policyMember{id: st.own(o), sa: o.sa, spis: slices.Clone(mp.pol.SPIs)})
		st.steerIn(o.sa)
	}
	delete(st.mp.alias, o)
	o.merged, o.sa, o.spi = mp, nil, 0
	cp := st.mp.connPols[conn]
	if cp == nil {
		cp = map[*mergedPolicy]struct{}{}
		st.mp.connPols[conn] = cp
	}
	cp[mp] = struct{}{}
}

// dropOutPolicy takes s's outbound policy *id away; it reports whether
// the policy was merged (false: the deletion goes to the data plane as
// is, *id set to the data plane's id).
func (st *state) dropOutPolicy(s *ikeSA, id *uint64) bool {
	o := st.outPolOf(s, *id)
	if o == nil {
		return false
	}
	mp := o.merged
	if mp == nil {
		s.multi.dropPol(o)
		if st.mp.pols[o.key] == o {
			delete(st.mp.pols, o.key)
		}
		delete(st.mp.alias, o)
		*id = o.id
		return false
	}
	i := mp.member(s, *id)
	mp.members = slices.Delete(mp.members, i, i+1)
	if !mp.has(s) {
		s.multi.dropPol(o)
		st.unsteerLone(s)
	}
	if len(mp.members) > 0 {
		st.pushMerged(mp)
		st.unmergeOne(o)
		return true
	}
	if st.mp.pols[o.key] == o {
		delete(st.mp.pols, o.key)
	}
	st.unlistMerged(mp)
	if mp.installed && st.rt.dp != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := st.rt.dp.DeletePolicy(ctx, mp.pol.ID); err != nil {
			st.rt.stats.DataplaneErrors++
			st.e.log.Warn("data plane operation failed", "connection", mp.conn, "op", "delete_policy", "error", err)
		}
	}
	return true
}

// unlistMerged takes mp out of its connection's list and the steering
// table.
func (st *state) unlistMerged(mp *mergedPolicy) {
	if cp := st.mp.connPols[mp.conn]; cp != nil {
		delete(cp, mp)
		if len(cp) == 0 {
			delete(st.mp.connPols, mp.conn)
		}
	}
	st.mp.steer.pols.del(mp.pol.ID)
}

// unmergeOne makes merged o alone again when one member with at most one
// SA is left (the data plane has it under o.id: pushMerged made it so).
func (st *state) unmergeOne(o *outPol) {
	mp := o.merged
	if len(mp.members) != 1 || len(mp.members[0].spis) > 1 {
		return
	}
	m := mp.members[0]
	st.unlistMerged(mp)
	o.merged, o.sa, o.spi = nil, m.sa, firstSPI(m.spis)
	if m.id != o.id {
		st.mp.alias[o] = m.id
	}
	st.unsteerLone(m.sa)
}

// unsteerLone takes s's inbound SPIs out of the steering table when s is
// in no merged policy.
func (st *state) unsteerLone(s *ikeSA) {
	for i := range s.multi.numPols() {
		if s.multi.polAt(i).merged != nil {
			return
		}
	}
	st.unsteerIn(s)
}

// pushMerged writes mp's steering entry (so that the table knows every
// SA's path before the data plane can pick it) and installs the union.
func (st *state) pushMerged(mp *mergedPolicy) {
	var spis []uint32
	for _, m := range mp.members {
		for _, spi := range m.spis {
			if !slices.Contains(spis, spi) {
				spis = append(spis, spi)
			}
		}
	}
	changed := !slices.Equal(spis, mp.pol.SPIs)
	mp.pol.SPIs = spis
	st.steerPolicy(mp)
	if st.rt.dp == nil || (mp.installed && !changed) {
		mp.installed = true
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	pol := mp.pol
	pol.SPIs = slices.Clone(spis)
	if mp.installed {
		err = st.rt.dp.UpdatePolicy(ctx, pol)
	} else {
		err = st.rt.dp.AddPolicy(ctx, pol)
	}
	mp.installed = true
	if err != nil {
		st.rt.stats.DataplaneErrors++
		st.e.log.Warn("data plane operation failed", "connection", mp.conn, "op", "merged_policy", "error", err)
	}
}

// attachPath puts s on the path of its current addresses.
func (st *state) attachPath(s *ikeSA, local, remote netip.Addr) {
	if !local.IsValid() || !remote.IsValid() {
		return
	}
	st.linkPath(s, st.pathFor(s.conn, local, remote))
}

// reconcileMultipath starts the missing IKE SAs of multipath initiator
// connections that have one established.
func (st *state) reconcileMultipath() {
	if st.rt.tr == nil {
		return
	}
	now := st.e.cfg.Now()
	for _, id := range slices.Clone(st.mp.mpConns) {
		c := st.connections[id]
		if c == nil || c.Role != RoleInitiator || !c.Multipath {
			continue
		}
		var primary *ikeSA
		for _, s := range st.rt.byConn[c.ID] {
			if s.up && (primary == nil || s.spii < primary.spii) {
				primary = s
			}
		}
		if primary == nil {
			continue
		}
		for _, p := range st.connPaths(c.ID) {
			if !p.cand || st.saOf(p) != nil || p.pb != nil && now.Before(p.pb.retryAt) || !st.linkOK(p) || st.cloneAsked(p) {
				continue
			}
			p.probe().retryAt = now.Add(multipathRetry)
			if st.clonePath(c, primary, p) {
				continue
			}
			p.pb.noClone = false // one full IKE SA after a failed clone; then cloning again
			if err := st.startPathSA(c, p); err != nil {
				st.e.log.Warn("could not start a path's IKE SA", "path", p.name(), "error", err)
			}
		}
	}
}

// cloneSetup is one of our clones on its way to its path: moving there,
// then creating its Child SAs. The path counts as connecting until the
// first Child SA is up.
type cloneSetup struct {
	from, to *path
	moved    bool
}

// cloneAsked reports whether a clone request for p is in flight.
func (st *state) cloneAsked(p *path) bool {
	for _, q := range st.mp.cloneQ {
		if slices.Contains(q, p) {
			return true
		}
	}
	return false
}

// clonePath asks orig for an RFC 7791 clone to put on p, when the peer
// supports cloning and MOBIKE (the clone is moved with UPDATE_SA_ADDRESSES)
// and p has not just seen a clone fail; it reports whether it did.
func (st *state) clonePath(c *connection, orig *ikeSA, p *path) bool {
	in := orig.m.Info()
	if p.pb != nil && p.pb.noClone || !c.MOBIKE || !in.Capabilities.Clone || !in.Capabilities.MOBIKE || !in.MOBIKEInitiator {
		return false
	}
	st.mp.cloneQ[orig] = append(st.mp.cloneQ[orig], p)
	st.e.log.Debug("cloning an IKE SA for a path", "connection", c.ID, "ike_sa", orig.logName(), "path", p.name())
	st.later(func() {
		if st.rt.live(orig) {
			st.drive(orig, sa.Command{Kind: sa.CmdClone})
		}
	})
	return true
}

// cloneUp takes an RFC 7791 clone's EventIKEUp: ours goes on to its path
// (CmdMigrate; true), the peer's is an IKE SA like any other until the
// peer moves it (false).
func (st *state) cloneUp(s *ikeSA, ev sa.Event) bool {
	orig := st.rt.bySPI[ev.ClonedFrom]
	q := st.mp.cloneQ[orig]
	if orig == nil || len(q) == 0 {
		st.mp.peerClones[s] = true
		return false
	}
	p := q[0]
	if st.mp.cloneQ[orig] = q[1:]; len(q) == 1 {
		delete(st.mp.cloneQ, orig)
	}
	st.mp.clones[s] = &cloneSetup{from: orig.path, to: p}
	was := s.path
	st.linkPath(s, p)
	view := st.ikeView(s)
	st.e.log.Debug("IKE SA cloned", "connection", s.conn, "ike_sa", s.logName(), "clone_of", orig.logName(), "path", p.name())
	st.publish(Event{Type: EventIKESAUp, Reason: "cloned", IKESA: &view})
	st.pathsTouched("ike_sa_cloned", was, p)
	st.mp.migrating[s] = "clone"
	st.later(func() {
		if st.rt.live(s) && st.mp.clones[s] != nil {
			st.migrate(s, p, "clone")
		}
	})
	return true
}

// cloneFailed takes EventCloneFailed of orig: the path it was for gets a
// fully authenticated IKE SA at once.
func (st *state) cloneFailed(orig *ikeSA, ev sa.Event) {
	q := st.mp.cloneQ[orig]
	if len(q) == 0 {
		return
	}
	p := q[0]
	if st.mp.cloneQ[orig] = q[1:]; len(q) == 1 {
		delete(st.mp.cloneQ, orig)
	}
	st.e.log.Warn("IKE SA clone failed, a full IKE SA instead", "connection", orig.conn, "path", p.name(),
		"reason", ev.Reason, "detail", ev.Detail)
	st.cloneFallback(p)
}

// cloneFallback makes the next attempt on p a full IKE SA, now.
func (st *state) cloneFallback(p *path) {
	p.probe().noClone, p.pb.retryAt = true, time.Time{}
	st.reconcileMultipath()
}

// cloneMoved follows our clone's move (EventMigrated): it takes its
// path's tag for the Child SAs it creates now. It reports whether s was
// a clone on its way.
func (st *state) cloneMoved(s *ikeSA) bool {
	cs := st.mp.clones[s]
	if cs == nil || cs.moved {
		return false
	}
	cs.moved = true
	if s.path != cs.to {
		st.e.log.Warn("clone moved to another path than asked", "ike_sa", s.logName(), "path", s.path.name(), "asked", cs.to.name())
	}
	c := st.connections[s.conn]
	if c == nil || len(c.Children) == 0 {
		st.clonePlaced(s)
		return true
	}
	st.later(func() {
		if !st.rt.live(s) || s.path == nil {
			return
		}
		st.drive(s, sa.Command{Kind: sa.CmdSetPath, Path: s.path.tag})
		for _, ch := range c.Children {
			st.drive(s, sa.Command{Kind: sa.CmdCreateChild, Name: ch.Name})
		}
	})
	return true
}

// clonePlaced ends a clone's setup (its first Child SA is up, or failed):
// from now on it is its path's IKE SA.
func (st *state) clonePlaced(s *ikeSA) {
	if cs := st.mp.clones[s]; cs == nil || !cs.moved {
		return
	}
	delete(st.mp.clones, s)
	s.up = true
	st.upChanged(s)
	st.saUp(s)
}

// cloneMoveFailed: our clone could not move to its path; it is deleted and
// the path gets a full IKE SA.
func (st *state) cloneMoveFailed(s *ikeSA) bool {
	cs := st.mp.clones[s]
	if cs == nil || cs.moved {
		return false
	}
	delete(st.mp.clones, s)
	st.e.log.Warn("clone not moved to its path, deleting it", "ike_sa", s.logName(), "path", cs.to.name())
	cs.to.probe().noClone, cs.to.pb.retryAt = true, time.Time{}
	st.later(func() {
		if st.rt.live(s) {
			st.drive(s, sa.Command{Kind: sa.CmdTerminate})
		}
	})
	return true
}

// peerCloneMoved gives a clone the peer made the tag of the path the
// peer moved it to.
func (st *state) peerCloneMoved(s *ikeSA) {
	if !st.mp.peerClones[s] || s.path == nil {
		return
	}
	delete(st.mp.peerClones, s)
	tag := s.path.tag
	// CmdSetPath sends nothing: no timer to spoil.
	st.drive(s, sa.Command{Kind: sa.CmdSetPath, Path: tag})
}

// startPathSA sets up a fully authenticated IKE SA on p, without
// INITIAL_CONTACT so that the peer keeps the other paths' (PROTOCOL.md P5).
func (st *state) startPathSA(c *connection, p *path) error {
	port := st.rt.tr.Port()
	cfg, err := st.saTemplate(c)
	if err != nil {
		return err
	}
	if err := st.rt.tr.ListenNAT(p.local); err != nil {
		st.e.log.Debug("NAT-T port", "local", p.local, "error", err)
	}
	st.e.log.Debug("starting a path's IKE SA", "path", p.name())
	m, out := sa.NewInitiatorAt(cfg, netip.AddrPortFrom(p.local, port), netip.AddrPortFrom(p.remote, c.RemotePort), st.e.cfg.Now(), st.rt.rng)
	m.Place(sa.Placement{Path: p.tag, Addrs: st.startAddrs(c, p.local), NoInitialContact: true})
	s := &ikeSA{conn: c.ID, m: m, hidx: -1, path: p}
	st.apply(s, out)
	return nil
}

// defaultPath is where conn's flows go without a rule: the path of the
// first member of one of its policies (the data plane's first SA).
func (st *state) defaultPath(conn string) *path {
	for _, s := range st.rt.byConn[conn] {
		for i := range s.multi.numPols() {
			if f := s.multi.polAt(i).first(); f != nil && f.path != nil {
				return f.path
			}
		}
	}
	return nil
}
