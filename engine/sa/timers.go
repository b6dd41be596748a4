package sa

import (
	"net/netip"
	"slices"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
)

func due(t, now time.Time) bool { return !t.IsZero() && !now.Before(t) }

// scheduleIKE sets the IKE SA lifetimes from now (establishment or rekey).
func (s *IKE) scheduleIKE(now time.Time) {
	l := s.cfg.Lifetimes
	s.ikeRekeyAt, s.ikeLifeAt = 0, 0
	if l.IKERekey > 0 {
		s.ikeRekeyAt = s.stamp(now.Add(s.jitter(l.IKERekey)))
	}
	if l.IKELife > 0 {
		s.ikeLifeAt = s.stamp(now.Add(l.IKELife))
	}
	if l.Reauth > 0 && s.reauthAt == 0 && s.origRole == Initiator {
		s.reauthAt = s.stamp(now.Add(s.jitter(l.Reauth)))
	}
}

// deadline is the earliest time the machine needs a Tick.
func (s *IKE) deadline(now time.Time) time.Time {
	var d time.Time
	min := func(t time.Time) {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	for _, ss := range s.sessions() {
		if ss.req != nil {
			min(ss.req.deadline)
		}
		min(s.at(ss.retireAt()))
	}
	min(s.at(s.halfOpenAt()))
	if s.state == StateEstablished {
		if s.cfg.DPD > 0 && s.cur.req == nil && len(s.cur.queued()) == 0 {
			min(s.at(s.lastSeen).Add(s.cfg.DPD))
		}
		if s.rekeying() == nil {
			min(s.at(s.ikeRekeyAt))
		}
		min(s.at(s.ikeLifeAt))
		min(s.at(s.reauthAt))
		for _, c := range s.childList() {
			if c.state == childActive && c.rekeyOf() == nil && c.peerNewOf() == nil {
				min(s.at(c.rekeyAt))
			}
			min(s.at(c.expireAt))
			min(s.at(c.deleteAt))
		}
	}
	for _, l := range s.later() {
		min(l.at)
	}
	return d
}

func (s *IKE) handleTick(now time.Time) {
	for _, ss := range s.sessions() {
		r := ss.req
		if r == nil || !due(r.deadline, now) {
			continue
		}
		// A bounded request (limit) fails at giveUpAt, not after Tries.
		if (r.limit == 0 && r.tries >= s.cfg.retransmit().Tries) || due(r.giveUpAt, now) {
			ss.req = nil
			if r.onFail != nil {
				r.onFail(now)
			}
			if s.state == StateClosed {
				return
			}
			s.pump(now, ss)
			continue
		}
		// §2.1: the same bytes again, every fragment.
		r.tries++
		r.deadline = s.retryAt(now, r)
		s.stats.retransmitted()
		s.sendPackets(r.local, r.remote, r.packets)
	}
	if due(s.at(s.halfOpenAt()), now) {
		s.down(now, ReasonTimeout, 0, "no IKE_AUTH after IKE_SA_INIT")
		return
	}
	for _, ss := range slices.Clone(s.retiring()) {
		if due(s.at(ss.retireAt()), now) {
			s.dropSession(now, ss)
		}
	}
	if s.state == StateEstablished {
		switch {
		case due(s.at(s.ikeLifeAt), now):
			s.terminate(now, ReasonExpired)
			return
		case due(s.at(s.reauthAt), now):
			s.reauthAt = 0
			s.reauthenticate(now)
		case due(s.at(s.ikeRekeyAt), now) && s.rekeying() == nil:
			s.ikeRekeyAt = 0
			s.rekeyIKE(now)
		}
		if s.cfg.DPD > 0 && due(s.at(s.lastSeen).Add(s.cfg.DPD), now) {
			s.liveness(now)
		}
		for _, c := range slices.Clone(s.childList()) {
			if !slices.Contains(s.childList(), c) || s.state != StateEstablished {
				continue
			}
			switch {
			case due(s.at(c.expireAt), now):
				c.expireAt = 0
				s.deleteChild(now, c, ReasonExpired)
			case due(s.at(c.deleteAt), now):
				c.deleteAt = 0
				switch c.state {
				case childRekeyed:
					s.deleteRekeyed(now, c)
				case childDeleting, childDraining:
					s.removeChild(now, c, ReasonRekeyed, false)
				}
			case due(s.at(c.rekeyAt), now) && c.state == childActive && c.rekeyOf() == nil && c.peerNewOf() == nil:
				c.rekeyAt = 0
				s.rekeyChild(now, c)
			}
		}
	}
	if x := s.x; x != nil && len(x.later) > 0 && s.state != StateClosed {
		var run []delayed
		x.later = slices.DeleteFunc(x.later, func(l delayed) bool {
			if due(l.at, now) {
				run = append(run, l)
				return true
			}
			return false
		})
		for _, l := range run {
			if s.state == StateClosed {
				return
			}
			l.fn(now)
		}
	}
}

func (s *IKE) handleCommand(now time.Time, c Command) {
	if c.Kind == CmdTerminate {
		s.terminate(now, ReasonLocalDelete)
		return
	}
	if s.state != StateEstablished {
		if c.Kind == CmdCreateChild {
			s.emit(Event{Kind: EventChildFailed, Reason: ReasonTemporaryFailure, Child: ChildInfo{Name: c.Name},
				Detail: "the IKE SA is " + s.state.String()})
		}
		return
	}
	switch c.Kind {
	case CmdInitiate:
		s.startChildren(now)
	case CmdCreateChild:
		cfg := c.Child
		if cfg == nil {
			for i := range s.cfg.Children {
				if s.cfg.Children[i].Name == c.Name {
					cfg = &s.cfg.Children[i]
				}
			}
		} else {
			cp := *cfg
			if cp.Mode == 0 {
				cp.Mode = dataplane.Tunnel
			}
			cfg = &cp
		}
		if cfg == nil || len(cfg.Proposals) == 0 {
			s.emit(Event{Kind: EventChildFailed, Reason: ReasonInternal, Child: ChildInfo{Name: c.Name}, Detail: "no such child config"})
			return
		}
		s.createChild(now, cfg)
	case CmdRekeyChild:
		if ch := s.childBySPI(c.SPI); ch != nil {
			s.rekeyChild(now, ch)
		}
	case CmdDeleteChild:
		if ch := s.childBySPI(c.SPI); ch != nil {
			s.deleteChild(now, ch, ReasonLocalDelete)
		}
	case CmdRekeyIKE:
		s.rekeyIKE(now)
	case CmdLiveness:
		s.liveness(now)
	case CmdReauthenticate:
		s.reauthenticate(now)
	}
}

// startChildren creates the StartNow Child SAs that do not exist.
func (s *IKE) startChildren(now time.Time) {
	if s.origRole == Initiator && (s.cfg.VirtualIP.IPv4 || s.cfg.VirtualIP.IPv6) && len(s.vips()) == 0 {
		// No virtual IP: our selectors would be wrong (§2.19).
		return
	}
	for i := range s.cfg.Children {
		cfg := &s.cfg.Children[i]
		if cfg.Start == StartNow && !s.liveChild(cfg.Name) {
			s.createChild(now, cfg)
		}
	}
}

func (s *IKE) handleDataplane(now time.Time, e DataplaneEvent) {
	if s.state != StateEstablished {
		return
	}
	c := s.childBySPI(e.SPI)
	if c == nil {
		// A draining inbound half that hit its hard limit: the data plane
		// removed it already.
		i := slices.IndexFunc(s.childList(), func(d *childSA) bool { return !d.live() && d.inSPI == e.SPI })
		if i >= 0 && e.Kind == dataplane.HardExpired {
			d := s.childList()[i]
			d.inGone = true
			s.removeChild(now, d, ReasonRekeyed, false)
		}
		return
	}
	switch e.Kind {
	case dataplane.SoftExpired, dataplane.SeqExhausted:
		s.rekeyChild(now, c)
	case dataplane.HardExpired:
		// The data plane removed that SA already.
		if e.SPI == c.inSPI {
			c.inGone = true
		} else {
			c.outGone = true
		}
		s.syncPolicy(c.group)
		s.deleteChild(now, c, ReasonExpired)
	}
}

// reauthenticate starts a new IKE SA with the same configuration
// (make-before-break); when it is up (EventIKEUp with Replaces set) the
// glue terminates this one.
func (s *IKE) reauthenticate(now time.Time) {
	if s.origRole != Initiator || s.spawning() {
		return
	}
	// From the addresses in use (a MOBIKE move may have changed them) and
	// the ports the IKE SA started from; without INITIAL_CONTACT (P5: the
	// old IKE SA still exists); sharing the Config.
	local := netip.AddrPortFrom(s.local.Addr(), s.startLPort)
	if s.startLPort == 0 {
		local = netip.AddrPort{} // started unbound: the glue picks again
	}
	n, out := NewInitiatorAt(s.cfg, local, netip.AddrPortFrom(s.remote.Addr(), s.startRPort), now, s.rng())
	n.Place(Placement{Path: s.path, Addrs: s.ownAddrs(), NoInitialContact: true})
	n.rareState().replaces = s.cur.localSPI()
	s.out().Spawn = &Spawned{IKE: n, Output: out}
}
