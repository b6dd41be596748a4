package engine

import (
	"context"
	"net/netip"
	"slices"
	"strings"
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

// mergedPolicy is one data-plane outbound policy standing for the
// identical-selector policies of several SA machines.
type mergedPolicy struct {
	key, conn string
	pol       dataplane.Policy // ID: the first member's; SPIs: the union
	members   map[uint64]*policyMember
	order     []uint64 // member policy ids, first come first
	installed bool
}

type policyMember struct {
	sa   *ikeSA
	spis []uint32
}

func selectorsKey(sels []dataplane.Selector) string {
	parts := make([]string, len(sels))
	for i, s := range sels {
		parts[i] = FormatSelector(s)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// mergeOp intercepts an SA machine's outbound policy operation and the
// outbound address updates of a MOBIKE move; it reports whether it handled
// it. It also follows the inbound SAs for the steering table (steerSAOp).
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
		id := op.Policy.ID
		mp := st.mp.members[id]
		if mp == nil {
			key := s.conn + "|" + selectorsKey(op.Policy.Local) + "|" + selectorsKey(op.Policy.Remote)
			if mp = st.mp.merged[key]; mp == nil {
				mp = &mergedPolicy{key: key, conn: s.conn, pol: op.Policy, members: map[uint64]*policyMember{}}
				mp.pol.SPIs = nil
				st.mp.merged[key] = mp
				cp := st.mp.connPols[s.conn]
				if cp == nil {
					cp = map[*mergedPolicy]struct{}{}
					st.mp.connPols[s.conn] = cp
				}
				cp[mp] = struct{}{}
			}
			st.mp.members[id] = mp
			mp.order = append(mp.order, id)
		}
		mp.members[id] = &policyMember{sa: s, spis: slices.Clone(op.Policy.SPIs)}
		if !slices.Contains(s.multi.pols, mp) {
			s.multi.pols = append(s.multi.pols, mp)
		}
		st.pushMerged(mp)
		return true
	case sa.OpDeletePolicy:
		mp := st.mp.members[op.PolicyID]
		if mp == nil {
			return false
		}
		delete(st.mp.members, op.PolicyID)
		delete(mp.members, op.PolicyID)
		mp.order = slices.DeleteFunc(mp.order, func(x uint64) bool { return x == op.PolicyID })
		if !slices.ContainsFunc(mp.order, func(id uint64) bool { return mp.members[id].sa == s }) {
			s.multi.pols = slices.DeleteFunc(s.multi.pols, func(x *mergedPolicy) bool { return x == mp })
		}
		if len(mp.members) > 0 {
			st.pushMerged(mp)
			return true
		}
		delete(st.mp.merged, mp.key)
		if cp := st.mp.connPols[mp.conn]; cp != nil {
			delete(cp, mp)
			if len(cp) == 0 {
				delete(st.mp.connPols, mp.conn)
			}
		}
		st.mp.steer.pols.del(mp.pol.ID)
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
	return false
}

// pushMerged writes mp's steering entry (so that the table knows every
// SA's path before the data plane can pick it) and installs the union.
func (st *state) pushMerged(mp *mergedPolicy) {
	var spis []uint32
	for _, id := range mp.order {
		for _, spi := range mp.members[id].spis {
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
			if s.up && (primary == nil || s.name < primary.name) {
				primary = s
			}
		}
		if primary == nil {
			continue
		}
		for _, p := range st.connPaths(c.ID) {
			if !p.cand || st.saOf(p) != nil || now.Before(p.retryAt) || !st.linkOK(p) || st.cloneAsked(p) {
				continue
			}
			p.retryAt = now.Add(multipathRetry)
			if st.clonePath(c, primary, p) {
				continue
			}
			p.noClone = false // one full IKE SA after a failed clone; then cloning again
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
	if p.noClone || !c.MOBIKE || !in.Capabilities.Clone || !in.Capabilities.MOBIKE || !in.MOBIKEInitiator {
		return false
	}
	st.mp.cloneQ[orig] = append(st.mp.cloneQ[orig], p)
	st.e.log.Info("cloning an IKE SA for a path", "connection", c.ID, "ike_sa", orig.name, "path", p.name())
	st.later(func() {
		if _, ok := st.rt.all[orig]; ok {
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
	s.vips, s.peerID = ev.VirtualIPs, ev.PeerID.String()
	st.mp.clones[s] = &cloneSetup{from: orig.path, to: p}
	was := s.path
	st.linkPath(s, p)
	view := st.ikeView(s)
	st.e.log.Info("IKE SA cloned", "connection", s.conn, "ike_sa", s.name, "clone_of", orig.name, "path", p.name())
	st.publish(Event{Type: EventIKESAUp, Reason: "cloned", IKESA: &view})
	st.pathsTouched("ike_sa_cloned", was, p)
	st.mp.migrating[s] = "clone"
	st.later(func() {
		if _, ok := st.rt.all[s]; ok && st.mp.clones[s] != nil {
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
	p.noClone, p.retryAt = true, time.Time{}
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
		st.e.log.Warn("clone moved to another path than asked", "ike_sa", s.name, "path", s.path.name(), "asked", cs.to.name())
	}
	c := st.connections[s.conn]
	if c == nil || len(c.Children) == 0 {
		st.clonePlaced(s)
		return true
	}
	st.later(func() {
		if _, ok := st.rt.all[s]; !ok || s.path == nil {
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
	st.e.log.Warn("clone not moved to its path, deleting it", "ike_sa", s.name, "path", cs.to.name())
	cs.to.noClone, cs.to.retryAt = true, time.Time{}
	st.later(func() {
		if _, ok := st.rt.all[s]; ok {
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
	cfg, err := st.saConfig(c, netip.AddrPortFrom(p.local, port), netip.AddrPortFrom(p.remote, c.RemotePort))
	if err != nil {
		return err
	}
	cfg.NoInitialContact = true
	cfg.Path = p.tag
	if err := st.rt.tr.ListenNAT(p.local); err != nil {
		st.e.log.Debug("NAT-T port", "local", p.local, "error", err)
	}
	st.e.log.Info("starting a path's IKE SA", "path", p.name())
	m, out := sa.NewInitiator(cfg, st.e.cfg.Now(), st.rt.rng)
	s := &ikeSA{conn: c.ID, m: m, hidx: -1, path: p}
	st.rt.all[s] = struct{}{}
	st.apply(s, out)
	return nil
}

// defaultPath is where conn's flows go without a rule: the first member
// of its merged policies (the data plane's first SA).
func (st *state) defaultPath(conn string) *path {
	for mp := range st.mp.connPols[conn] {
		if len(mp.order) == 0 {
			continue
		}
		if m := mp.members[mp.order[0]]; m.sa.path != nil {
			return m.sa.path
		}
	}
	return nil
}
