package engine

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/iface"
	"github.com/mifsec/mifsec/engine/sa"
)

// Mobility: what the engine does when interfaces, addresses and paths
// come and go (DESIGN.md §4 "Interface lost", "API Migrate"): flows are
// re-pinned to the next path of their rule, extra paths' IKE SAs follow
// their interface, and the peers hear about our usable addresses.

// saUp puts an established IKE SA on the path of its addresses; IKE_AUTH
// just went both ways there, so the path counts as verified.
func (st *state) saUp(s *ikeSA) {
	in := s.m.Info()
	old := s.path
	st.attachPath(s, in.Local.Addr(), in.Remote.Addr())
	if p := s.path; p != nil {
		now := st.e.cfg.Now()
		p.verified(now)
		if p.pb != nil {
			p.pb.nextProbe = now
		}
	}
	if _, ok := st.mp.announce[s]; !ok && st.announces(s, &in) {
		// What IKE_AUTH carried (the IKE SAs announce does not concern
		// keep nothing).
		st.mp.announce[s] = announcedFirst(&in)
	}
	st.pathsTouched("ike_sa_up", old, s.path)
	st.reconcileMultipath()
	st.announce(s, "ike_sa_up")
}

// saGone updates the paths once an IKE SA was dropped.
func (st *state) saGone(s *ikeSA) {
	delete(st.mp.announce, s)
	delete(st.mp.migrating, s)
	delete(st.mp.cloneQ, s)
	delete(st.mp.clones, s)
	delete(st.mp.peerClones, s)
	delete(st.mp.lostLocal, s)
	st.dropHolds(s)
	delete(st.mp.premove, s)
	for _, w := range st.mp.migrateW[s] {
		w <- migrateResult{err: st.downError(s)}
	}
	delete(st.mp.migrateW, s)
	if p := s.path; p != nil && p.probing() == s {
		p.pb.probing = nil
	}
	st.unlinkPath(s)
	st.pathsTouched("ike_sa_down")
	st.reconcileMultipath()
}

// interfaceChanged follows a change of an interface (API or netlink):
// paths on a lost link go down and their flows move; new links get paths.
func (st *state) interfaceChanged(before, after *Interface) {
	why := "interface_changed"
	switch {
	case before == nil:
		why = "interface_added"
	case after == nil:
		why = "interface_deleted"
	case before.State == iface.Up && after.State != iface.Up:
		why = "link_down"
	case before.State != iface.Up && after.State == iface.Up:
		why = "link_up"
	default:
		removed, added := diffPrefixes(before.Addrs, after.Addrs)
		if len(removed) > 0 {
			why = "address_removed"
		} else if len(added) > 0 {
			why = "address_added"
		}
	}
	st.pathsChanged(why)
	st.checkHolds(st.e.cfg.Now(), why)
	st.moveLostSAs(why)
	st.reconcileMultipath()
	st.announceAll(why)
}

// drainInterface withdraws ifc before it is deleted: its paths stop
// carrying flows (re-pinned to the next path of their rule, with events),
// then the extra paths' IKE SAs on it are deleted.
func (st *state) drainInterface(ifc *Interface) {
	saved := *ifc.clone()
	// Seen from the paths, the interface is gone from now on.
	ifc.State, ifc.Addrs = iface.Absent, nil
	st.pathsChanged("interface_deleted")
	*ifc = saved
	for _, s := range st.rt.sas() {
		p := s.path
		if p == nil || p.iface != ifc.ID {
			continue
		}
		if c := st.connections[s.conn]; c != nil && c.Multipath && st.otherPathUp(s) {
			st.drive(s, sa.Command{Kind: sa.CmdTerminate})
		}
	}
	// Single-path IKE SAs move away, then the peers hear the address list
	// without the interface's addresses; the IKE window of one keeps the
	// UPDATE_SA_ADDRESSES exchange ahead of the announcement.
	ifc.State, ifc.Addrs = iface.Absent, nil
	st.checkHolds(st.e.cfg.Now(), "interface_deleted")
	st.moveLostSAs("interface_deleted")
	st.announceAll("interface_deleted")
	*ifc = saved
}

// otherPathUp reports whether s's connection has another usable path.
func (st *state) otherPathUp(s *ikeSA) bool {
	for _, p := range st.connPaths(s.conn) {
		if p != s.path && p.usable() {
			return true
		}
	}
	return false
}

// announceable lists the addresses conn may announce besides inUse (RFC
// 4555 §3.6): those of the interfaces it may use (local_interfaces; all
// when empty) whose link is up, never link-local or loopback.
func (st *state) announceable(c *connection, inUse netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, ifc := range sortedInterfaces(st.interfaces) {
		if ifc.State != iface.Up || len(c.LocalInterfaces) > 0 && !slices.Contains(c.LocalInterfaces, ifc.ID) {
			continue
		}
		for _, p := range ifc.Addrs {
			a := p.Addr()
			if a == inUse.Unmap() || a.IsLinkLocalUnicast() || a.IsLoopback() || slices.Contains(out, a) {
				continue
			}
			out = append(out, a)
		}
	}
	return out
}

// announceAll sends every MOBIKE IKE SA the current list of our other
// usable addresses when it changed (CmdAnnounce, RFC 4555 §3.6: each list
// replaces the previous one). It is for changes of our addresses; an
// IKE SA's own events need only announce.
func (st *state) announceAll(why string) {
	for _, s := range st.sortedSAs() {
		if st.rt.live(s) {
			st.announce(s, why)
		}
	}
}

// announces reports whether announce concerns s: a MOBIKE IKE SA of a
// MOBIKE connection.
func (st *state) announces(s *ikeSA, in *sa.Info) bool {
	c := st.connections[s.conn]
	return c != nil && c.MOBIKE && in.Capabilities.MOBIKE
}

// announcedFirst is what IKE_AUTH carried: our other addresses, never the
// one in use (RFC 4555 §3.4). Counting that one in made every responder
// send its unchanged list again at once, a request with Message ID 0 that
// strongSwan drops while it still handles the IKE_AUTH response ("already
// processing"); retransmitting it then held back DPD.
func announcedFirst(in *sa.Info) []netip.Addr {
	return slices.DeleteFunc(slices.Clone(in.LocalAddrs), func(a netip.Addr) bool {
		return a.Unmap() == in.Local.Addr().Unmap()
	})
}

// announce sends s the current list of our other usable addresses when
// it is a MOBIKE IKE SA and the list changed.
func (st *state) announce(s *ikeSA, why string) {
	c := st.connections[s.conn]
	if c == nil || !s.up || !c.MOBIKE {
		return
	}
	in := s.m.Info()
	if !st.announces(s, &in) {
		return
	}
	addrs := st.announceable(c, in.Local.Addr())
	prev, ok := st.mp.announce[s]
	if !ok {
		prev = announcedFirst(&in) // it became a MOBIKE connection since
	}
	cmd := sa.Command{Kind: sa.CmdAnnounce, Addrs: slices.Clone(addrs)}
	lost := st.lostInUse(s)
	if lost {
		// Our address in use is gone and only the peer may move the
		// SA: the list goes out on a pair that works (§3.6), which
		// also tells the peer to move at once (peerLost).
		var ok bool
		if cmd.Local, cmd.Remote, ok = st.lostPair(s, c); !ok || st.mp.lostLocal[s] == in.Local.Addr() {
			lost = false
		}
	}
	if slices.Equal(addrs, prev) && !lost {
		st.mp.announce[s] = addrs
		return
	}
	st.mp.announce[s] = addrs
	if lost {
		st.mp.lostLocal[s] = in.Local.Addr()
		st.e.log.Debug("address in use lost, announcing on another pair", "connection", s.conn, "ike_sa", s.logName(),
			"lost", in.Local.Addr(), "local", cmd.Local, "remote", cmd.Remote)
	}
	st.drive(s, cmd)
	view := st.ikeView(s)
	st.e.log.Debug("addresses announced", "connection", s.conn, "ike_sa", s.logName(), "count", len(addrs), "cause", why)
	st.publish(Event{Type: EventAddressesAnnounced, Reason: why, IKESA: &view, Conn: s.conn, Addrs: addrs})
}

// lostInUse reports whether s is the MOBIKE responder (it cannot move,
// RFC 4555 §1.3) and its address in use left its interface, or that
// interface went down. An address on no managed interface is not judged.
func (st *state) lostInUse(s *ikeSA) bool {
	in := s.m.Info()
	if in.MOBIKEInitiator || s.path == nil || st.interfaces[s.path.iface] == nil || s.path.local != in.Local.Addr().Unmap() {
		return false
	}
	return !st.linkOK(s.path)
}

// lostPair is where a responder that lost its address in use sends its
// announcement: among our usable addresses (the connection's up
// interfaces) and the peer's (in use and announced, §3.6), the pair
// reached best (on-link, then routed), the peer's address in use first on
// ties, then interface priority.
func (st *state) lostPair(s *ikeSA, c *connection) (local, remote netip.AddrPort, ok bool) {
	in := s.m.Info()
	peer := append([]netip.Addr{in.Remote.Addr().Unmap()}, in.PeerAddrs...)
	best, bestPrio := -1, uint32(0)
	for _, ifc := range sortedInterfaces(st.interfaces) {
		if len(c.LocalInterfaces) > 0 && !slices.Contains(c.LocalInterfaces, ifc.ID) {
			continue
		}
		l, usable := usableAddr(ifc, in.Remote.Addr().Unmap())
		if !usable || l == in.Local.Addr().Unmap() {
			continue
		}
		for _, r := range peer {
			r = r.Unmap()
			if r.Is4() != l.Is4() || r.IsUnspecified() {
				continue
			}
			if sc := st.reach(ifc, l, r); sc > best || sc == best && ifc.Priority > bestPrio {
				best, bestPrio = sc, ifc.Priority
				local, remote = netip.AddrPortFrom(l, in.Local.Port()), netip.AddrPortFrom(r, in.Remote.Port())
			}
		}
	}
	return local, remote, best >= 0
}

// peerLost follows a peer announcement that came on another pair than the
// one in use: the peer could not use it (lostPair), so the MOBIKE
// initiator moves at once, make-before-break (path test, then
// UPDATE_SA_ADDRESSES, §3.5), to the pair the announcement came on. A
// multipath connection leaves it: its other paths carry the flows.
func (st *state) peerLost(s *ikeSA, ev sa.Event) {
	c := st.connections[s.conn]
	in := s.m.Info()
	if c == nil || c.Multipath || !c.MOBIKE || !s.up || !in.MOBIKEInitiator || !in.Capabilities.MOBIKE ||
		!ev.Local.IsValid() || !ev.Remote.IsValid() || st.mp.migrating[s] != "" ||
		ev.Local.Addr().Unmap() == in.Local.Addr().Unmap() && ev.Remote.Addr().Unmap() == in.Remote.Addr().Unmap() {
		return
	}
	p := st.pathFor(s.conn, ev.Local.Addr(), ev.Remote.Addr())
	if p == s.path || !st.linkOK(p) {
		return
	}
	st.mp.migrating[s] = "peer_address_lost"
	st.later(func() {
		if st.rt.live(s) && s.up && st.linkOK(p) {
			st.migrate(s, p, "peer_address_lost")
		} else {
			delete(st.mp.migrating, s)
		}
	})
}

// sortedSAs lists every IKE SA by connection, then name (as conn/name).
func (st *state) sortedSAs() []*ikeSA {
	out := st.rt.sas()
	slices.SortFunc(out, func(a, b *ikeSA) int {
		if a.conn == b.conn {
			return cmp.Compare(a.spii, b.spii) // the names' order: fixed-width hex
		}
		// conn+"/" against conn+"/" without building them: a connection
		// id that is a prefix of the other is followed by '/'.
		n := min(len(a.conn), len(b.conn))
		if c := strings.Compare(a.conn[:n], b.conn[:n]); c != 0 {
			return c
		}
		if len(a.conn) < len(b.conn) {
			return cmp.Compare('/', b.conn[n])
		}
		return cmp.Compare(a.conn[n], '/')
	})
	return out
}

// moveLostSAs moves the single-path IKE SAs whose path lost its link to
// the best other path of their connection (CmdMigrate: path test, then
// UPDATE_SA_ADDRESSES, RFC 4555 §3.5). Only the MOBIKE initiator moves.
func (st *state) moveLostSAs(why string) {
	for _, s := range st.sortedSAs() {
		c := st.connections[s.conn]
		if c == nil || c.Multipath || !s.up || s.path == nil || st.linkOK(s.path) {
			continue
		}
		in := s.m.Info()
		if !in.MOBIKEInitiator || !in.Capabilities.MOBIKE || !c.MOBIKE {
			continue
		}
		target := st.bestPath(c, s.path, s)
		if target == nil {
			st.e.log.Warn("no path to move the IKE SA to", "connection", s.conn, "ike_sa", s.logName(), "cause", why)
			continue
		}
		st.migrate(s, target, why)
	}
}

// bestPath is the path to move s onto, other than not: over c's usable
// interfaces, the pair pairFor picks, best reachability first, then
// interface priority (higher first), then id.
func (st *state) bestPath(c *connection, not *path, s *ikeSA) *path {
	var best *path
	var bestScore int
	var bestPrio uint32
	for _, ifc := range sortedInterfaces(st.interfaces) {
		if len(c.LocalInterfaces) > 0 && !slices.Contains(c.LocalInterfaces, ifc.ID) {
			continue
		}
		local, remote, score, ok := st.pairFor(s, ifc)
		if !ok {
			continue
		}
		p := st.pathFor(c.ID, local, remote)
		if p == not || !st.linkOK(p) {
			continue
		}
		prio := ifc.Priority
		if best == nil || score > bestScore || score == bestScore && (prio > bestPrio || prio == bestPrio && p.id < best.id) {
			best, bestScore, bestPrio = p, score, prio
		}
	}
	return best
}

// Reachability of a peer address from an interface, best last.
const (
	reachUnknown = iota // only the address in use: nothing better known
	reachRouted         // the kernel routes it from our address out of the interface
	reachOnLink         // inside one of the interface's prefixes
)

// pairFor picks the address pair to move s onto through ifc: our address
// on ifc and, among the peer's address in use and those it announced
// (RFC 4555 §3.6, Info.PeerAddrs) or configured, the one ifc reaches best (on-link, then
// routed). The address in use wins ties: a peer with several access
// networks is often reachable only through the matching one, so keeping
// the old remote address would test a pair that cannot work. ok is false
// when ifc has no usable address.
func (st *state) pairFor(s *ikeSA, ifc *Interface) (local, remote netip.Addr, score int, ok bool) {
	in := s.m.Info()
	cur := in.Remote.Addr().Unmap()
	local, ok = usableAddr(ifc, cur)
	if !ok {
		return netip.Addr{}, netip.Addr{}, 0, false
	}
	remote, score = cur, st.reach(ifc, local, cur)
	// The announced list leaves out the address that was in use when it
	// was sent (§3.4), so the configured addresses count too.
	peer := slices.Clone(in.PeerAddrs)
	if c := st.connections[s.conn]; c != nil {
		peer = append(peer, c.addrs...)
	}
	for _, a := range peer {
		a = a.Unmap()
		if a.Is4() != cur.Is4() || a.IsUnspecified() || a.IsLoopback() || a.IsLinkLocalUnicast() {
			continue
		}
		if sc := st.reach(ifc, local, a); sc > score {
			remote, score = a, sc
		}
	}
	return local, remote, score, true
}

// reach grades how well ifc reaches remote from local: on-link when one
// of ifc's prefixes holds it, routed when the kernel's route from local
// leaves through ifc's link (policy routing by source included).
func (st *state) reach(ifc *Interface, local, remote netip.Addr) int {
	for _, p := range ifc.Addrs {
		if p.Bits() < p.Addr().BitLen() && p.Masked().Contains(remote) {
			return reachOnLink
		}
	}
	if ifc.Index <= 0 {
		return reachUnknown
	}
	routes, err := netlink.RouteGetWithOptions(remote.AsSlice(), &netlink.RouteGetOptions{SrcAddr: local.AsSlice()})
	if err != nil {
		return reachUnknown
	}
	for _, r := range routes {
		if r.LinkIndex == ifc.Index {
			return reachRouted
		}
	}
	return reachUnknown
}

// migrate asks s to move onto p; EventMigrated or EventMigrateFailed tells
// how it went (mobilityEvent).
func (st *state) migrate(s *ikeSA, p *path, why string) {
	in := s.m.Info()
	local := netip.AddrPortFrom(p.local, in.Local.Port())
	if st.rt.tr != nil {
		local = netip.AddrPortFrom(p.local, st.rt.tr.NATPort())
		if err := st.rt.tr.ListenNAT(p.local); err != nil {
			st.e.log.Debug("NAT-T port", "local", p.local, "error", err)
		}
	}
	remote := netip.AddrPortFrom(p.remote, in.Remote.Port())
	st.mp.migrating[s] = why
	delete(st.mp.premove, s)
	if why == "api" {
		pre := make(map[uint32]bool, len(in.Children))
		for _, c := range in.Children {
			pre[c.OutSPI] = false
		}
		st.mp.premove[s] = pre
	}
	st.e.log.Debug("moving IKE SA", "connection", s.conn, "ike_sa", s.logName(), "to", p.name(), "cause", why)
	st.drive(s, sa.Command{Kind: sa.CmdMigrate, Local: local, Remote: remote})
}

type migrateResult struct {
	view IKESAView
	err  error
}

// mobilityEvent handles the MOBIKE events of an IKE SA machine.
func (st *state) mobilityEvent(s *ikeSA, ev sa.Event) {
	switch ev.Kind {
	case sa.EventMigrated:
		from, was := s.path, s.path
		if cs := st.mp.clones[s]; cs != nil {
			from = cs.from // the clone's original's path
		}
		st.attachPath(s, ev.Local.Addr(), ev.Remote.Addr())
		st.holdsMoved(s)
		delete(st.mp.premove, s)
		if s.path != nil && s.path != was {
			// The Child SAs created from now on (rekeys) carry the new
			// path's tag; CmdSetPath sends nothing.
			st.drive(s, sa.Command{Kind: sa.CmdSetPath, Path: s.path.tag})
		}
		delete(st.mp.lostLocal, s)
		why := st.mp.migrating[s]
		if why == "" {
			why = ev.Reason.String()
		}
		delete(st.mp.migrating, s)
		view := st.ikeView(s)
		e := Event{Type: EventIKESAMigrated, Reason: why, IKESA: &view, Conn: s.conn}
		if from != nil {
			e.From = PathRef{Conn: s.conn, ID: from.id}
		}
		if s.path != nil {
			e.To = PathRef{Conn: s.conn, ID: s.path.id}
			s.path.verified(st.e.cfg.Now())
		}
		st.e.log.Info("IKE SA migrated", "connection", s.conn, "ike_sa", s.logName(), "from", e.From.ID, "to", e.To.ID, "cause", why)
		st.publish(e)
		st.pathsTouched("ike_sa_migrated", was, s.path)
		st.announce(s, "ike_sa_migrated")
		for _, w := range st.mp.migrateW[s] {
			w <- migrateResult{view: view}
		}
		delete(st.mp.migrateW, s)
		if !st.cloneMoved(s) {
			st.peerCloneMoved(s)
		}
	case sa.EventMigrateFailed:
		delete(st.mp.migrating, s)
		delete(st.mp.premove, s)
		st.cloneMoveFailed(s)
		detail := ev.Reason.String()
		if ev.Detail != "" {
			detail += ": " + ev.Detail
		}
		st.e.log.Warn("IKE SA move failed", "connection", s.conn, "ike_sa", s.logName(), "detail", detail)
		for _, w := range st.mp.migrateW[s] {
			w <- migrateResult{err: errf(FailedPrecondition, "MIGRATE_FAILED", "", "the IKE SA was not moved: %s", detail)}
		}
		delete(st.mp.migrateW, s)
	case sa.EventProbe:
		st.probeResult(s, ev)
	case sa.EventPeerAddresses:
		view := st.ikeView(s)
		st.publish(Event{Type: EventPeerAddresses, Reason: "peer_announced", IKESA: &view, Conn: s.conn, Addrs: ev.PeerAddrs})
		st.peerLost(s, ev)
	}
}

// MigrateIKESA moves an IKE SA and its Child SAs to an interface (its
// address towards the peer) or a path of the same connection, with MOBIKE
// (RFC 4555 §3.5): a path test first, then UPDATE_SA_ADDRESSES. It returns
// when the SA moved, or with an error and nothing moved.
func (e *Engine) MigrateIKESA(ctx context.Context, conn, name, toInterface, toPath string) (IKESAView, error) {
	wait, err := do(ctx, e, func(st *state) (chan migrateResult, error) {
		s, err := st.findIKE(conn, name)
		if err != nil {
			return nil, err
		}
		c := st.connections[s.conn]
		if !s.up || c == nil {
			return nil, errf(FailedPrecondition, "IKE_SA_NOT_ESTABLISHED", "name", "IKE SA %s is not established", name)
		}
		in := s.m.Info()
		var p *path
		switch {
		case toPath != "":
			for _, x := range st.connPaths(s.conn) {
				if x.id == toPath {
					p = x
				}
			}
			if p == nil {
				return nil, errf(NotFound, "PATH_NOT_FOUND", "path", "connection %q has no path %q", s.conn, toPath)
			}
		case toInterface != "":
			ifc, ok := st.interfaces[toInterface]
			if !ok {
				return nil, errf(NotFound, ReasonInterfaceNotFound, "interface", "interface %q not found", toInterface)
			}
			if len(c.LocalInterfaces) > 0 && !slices.Contains(c.LocalInterfaces, ifc.ID) {
				return nil, errf(FailedPrecondition, "INTERFACE_NOT_ALLOWED", "interface", "connection %q may not use interface %q", s.conn, ifc.ID)
			}
			local, remote, _, ok := st.pairFor(s, ifc)
			if !ok {
				return nil, errf(FailedPrecondition, "NO_LOCAL_ADDRESS", "interface", "interface %q is down or has no address towards %s", ifc.ID, in.Remote.Addr())
			}
			p = st.pathFor(s.conn, local, remote)
		default:
			return nil, errf(InvalidArgument, "MISSING_FIELD", "target", "an interface or a path is required")
		}
		switch {
		case p == s.path:
			return nil, errf(FailedPrecondition, "ALREADY_ON_PATH", "", "IKE SA %s is already on %s", name, p.name())
		case !st.linkOK(p):
			return nil, errf(FailedPrecondition, "PATH_DOWN", "", "path %s has no usable link", p.name())
		case c.Multipath && st.saOf(p) != nil:
			return nil, errf(FailedPrecondition, "PATH_IN_USE", "", "path %s already has its own IKE SA", p.name())
		case !c.MOBIKE || !in.Capabilities.MOBIKE:
			return nil, errf(FailedPrecondition, "MOBIKE_UNSUPPORTED", "", "MOBIKE (RFC 4555) is off here or at the peer")
		case !in.MOBIKEInitiator:
			return nil, errf(FailedPrecondition, "NOT_MOBIKE_INITIATOR", "", "only the MOBIKE initiator moves an IKE SA (RFC 4555 §1.3)")
		}
		w := make(chan migrateResult, 1)
		st.mp.migrateW[s] = append(st.mp.migrateW[s], w)
		st.migrate(s, p, "api")
		return w, nil
	})
	if err != nil {
		return IKESAView{}, err
	}
	select {
	case r := <-wait:
		return r.view, r.err
	case <-ctx.Done():
		return IKESAView{}, ctxError(ctx)
	}
}

// holdFor bounds how long a Child SA's outbound half stays on the old
// address pair after a make-before-break move (holdOut).
const holdFor = 2 * time.Second

// outHold is a Child SA whose outbound half still sends on the old address
// pair after an API move of its IKE SA, both pairs working. RFC 4555 §3.5
// moves the Child SAs with the IKE SA, but a peer may keep its own inbound
// half on the old addresses (strongSwan with kernel-libipsec cannot update
// an SA's addresses and rekeys the CHILD_SA instead, dropping ESP for its
// new address under the old SPI until then). The old pair keeps carrying
// the Child SA until the peer shows it moved it: its replacement after a
// rekey (the old SA is deleted; the new one is on the IKE SA's addresses),
// or holdFor; at once when the old path's link fails. Inbound ESP is
// accepted on both pairs throughout (the inbound half moves at once).
type outHold struct {
	s        *ikeSA
	spi      uint32
	upd      dataplane.AddrUpdate // the new pair, applied at release
	from, to *path                // to: known once EventMigrated is handled
	until    time.Time
}

// holdOut decides on the outbound OpUpdateSA of a MOBIKE move of s; it
// reports whether the update is held (not applied now). Only API moves
// hold, and only while the old path's link works: a move after a failure
// switches at once.
func (st *state) holdOut(s *ikeSA, op *sa.DataplaneOp) bool {
	now := st.e.cfg.Now()
	h := st.mp.holds[op.SPI]
	mbb := st.mp.migrating[s] == "api"
	if h != nil {
		// Moved again while held: back onto the held pair (applied, it
		// refreshes ports and encapsulation), or onward.
		back := op.Update.Local.Addr().Unmap() == h.from.local && op.Update.Remote.Addr().Unmap() == h.from.remote
		if back || !mbb || !st.linkOK(h.from) {
			delete(st.mp.holds, op.SPI)
			return false
		}
		h.upd, h.to, h.until = op.Update, nil, now.Add(holdFor)
		return true
	}
	// Only a Child SA the peer rekeyed while the move was under way is
	// held: that is how a peer that cannot move an SA's addresses answers
	// UPDATE_SA_ADDRESSES (strongSwan's update_hosts rekeys a CHILD_SA whose
	// update is NOT_SUPPORTED, before its answer). A peer that moved the
	// SA in place (RFC 4555 §3.5) may look inbound ESP up by destination
	// address (Linux XFRM does), so its SAs leave the old pair at once.
	// The replacement itself is on the new pair at the peer.
	from := s.path
	if !mbb || from == nil || !st.linkOK(from) || !st.mp.premove[s][op.SPI] ||
		op.Update.Local.Addr().Unmap() == from.local && op.Update.Remote.Addr().Unmap() == from.remote {
		return false
	}
	st.mp.holds[op.SPI] = &outHold{s: s, spi: op.SPI, upd: op.Update, from: from, until: now.Add(holdFor)}
	st.e.log.Debug("outbound SA held on the old pair", "connection", s.conn, "ike_sa", s.logName(),
		"spi", spiHex(op.SPI), "path", from.name())
	st.armProbes()
	return true
}

func spiHex(spi uint32) string { return fmt.Sprintf("0x%08x", spi) }

// moveRekeyed notes that the peer replaced a Child SA of s by a rekey
// while s is under an API move (holdOut).
func (st *state) moveRekeyed(s *ikeSA, old sa.ChildInfo) {
	if pre := st.mp.premove[s]; pre != nil {
		if _, ok := pre[old.OutSPI]; ok {
			pre[old.OutSPI] = true
		}
	}
}

// holdsMoved notes where s's held Child SAs are going (EventMigrated).
func (st *state) holdsMoved(s *ikeSA) {
	for _, h := range st.mp.holds {
		if h.s == s && h.to == nil {
			h.to = s.path
		}
	}
}

// holdGone ends the hold of an outbound SA that is deleted: a rekey
// replaced it (the new SA is on the IKE SA's addresses), or its IKE SA
// went.
func (st *state) holdGone(s *ikeSA, spi uint32) {
	h := st.mp.holds[spi]
	if h == nil {
		return
	}
	delete(st.mp.holds, spi)
	if st.rt.live(s) && s.up {
		st.holdEnded(h, "child_sa_rekeyed")
	}
}

// checkHolds releases the holds that timed out, and those whose old path
// lost its link (why names that change; "" from the timer).
func (st *state) checkHolds(now time.Time, why string) {
	if len(st.mp.holds) == 0 {
		return
	}
	var due []*outHold
	for _, h := range st.mp.holds {
		if !st.linkOK(h.from) || !now.Before(h.until) {
			due = append(due, h)
		}
	}
	slices.SortFunc(due, func(a, b *outHold) int { return cmp.Compare(a.spi, b.spi) })
	for _, h := range due {
		cause := "hold_timeout"
		if !st.linkOK(h.from) {
			cause = "old_path_lost"
			if why != "" {
				cause = why
			}
		}
		st.releaseHold(h, cause)
	}
	st.armProbes()
}

// releaseHold moves a held outbound SA onto its new pair now.
func (st *state) releaseHold(h *outHold, why string) {
	delete(st.mp.holds, h.spi)
	if st.rt.dp != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := st.rt.dp.UpdateSA(ctx, h.spi, dataplane.Out, h.upd)
		cancel()
		if err != nil {
			st.rt.stats.DataplaneErrors++
			st.e.log.Warn("data plane operation failed", "connection", h.s.conn, "op", "update_sa", "spi", spiHex(h.spi), "error", err)
		}
	}
	st.holdEnded(h, why)
}

// holdEnded tells that a held Child SA's outbound traffic now leaves on
// its IKE SA's path: EventFlowsMoved from the old path to the new one.
func (st *state) holdEnded(h *outHold, why string) {
	s := h.s
	to := h.to
	if to == nil {
		to = s.path
	}
	view := st.ikeView(s)
	ev := Event{Type: EventFlowsMoved, Reason: why, IKESA: &view, Conn: s.conn, From: PathRef{Conn: s.conn, ID: h.from.id}}
	if to != nil {
		ev.To = PathRef{Conn: s.conn, ID: to.id}
	}
	st.e.log.Debug("Child SA outbound moved", "connection", s.conn, "ike_sa", s.logName(), "spi", spiHex(h.spi),
		"from", ev.From.ID, "to", ev.To.ID, "cause", why)
	st.publish(ev)
}

// dropHolds forgets the holds of s, which is gone.
func (st *state) dropHolds(s *ikeSA) {
	for spi, h := range st.mp.holds {
		if h.s == s {
			delete(st.mp.holds, spi)
		}
	}
}
