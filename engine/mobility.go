package engine

import (
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
	st.attachPath(s, in.Local.Addr(), in.Remote.Addr())
	if p := s.path; p != nil {
		now := st.e.cfg.Now()
		p.lastOK, p.okSent, p.misses = now, now, 0
		p.nextProbe = now
	}
	st.pathsChanged("ike_sa_up")
	st.reconcileMultipath()
}

// saGone updates the paths once an IKE SA was dropped.
func (st *state) saGone(s *ikeSA) {
	delete(st.mp.announce, s)
	if p := s.path; p != nil && p.probing == s {
		p.probing = nil
	}
	st.pathsChanged("ike_sa_down")
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
	st.reconcileMultipath()
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
	for s := range st.rt.all {
		p := s.path
		if p == nil || p.iface != ifc.ID {
			continue
		}
		if c := st.connections[s.conn]; c != nil && c.Multipath && st.otherPathUp(s) {
			st.drive(s, sa.Command{Kind: sa.CmdTerminate})
		}
	}
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
