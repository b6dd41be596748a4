package sa

import (
	"encoding/binary"
	"slices"
	"time"

	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/transform"
)

// RFC 7791 cloning: a CREATE_CHILD_SA exchange shaped like an IKE SA rekey
// (RFC 7296 §1.3.2) with N(CLONE_IKE_SA) in the request:
//
//	HDR, SK {N(CLONE_IKE_SA), SA, Ni, KEi} -->
//	                 <-- HDR, SK {SA, Nr, KEr}
//
// The new IKE SA gets fresh SPIs and keys derived as for a rekey (§2.18),
// but the old one stays with its Child SAs. The clone has no Child SAs; it
// keeps the authenticated identities, the capabilities and the MOBIKE
// state, and the glue moves it to another path with CmdMigrate. Only a
// peer that sent CLONE_IKE_SA_SUPPORTED is asked: any other would take the
// request for a rekey.

// cloneState is our clone request in flight.
type cloneState struct {
	spi     uint64
	ni      []byte
	dh      *transform.DHKey
	retries int
}

func (s *IKE) cloneFailed(r Reason, n ike.NotifyType, detail string) {
	s.logger().Warn("IKE SA clone failed", "reason", r.String(), "detail", detail)
	s.emit(Event{Kind: EventCloneFailed, Reason: r, Notify: n, Detail: detail})
}

// clone sends the CLONE_IKE_SA request (CmdClone).
func (s *IKE) clone(now time.Time) {
	switch {
	case s.state != StateEstablished:
		s.cloneFailed(ReasonTemporaryFailure, 0, "the IKE SA is "+s.state.String())
		return
	case !s.cfg.Clone:
		s.cloneFailed(ReasonUnsupported, 0, "cloning is not enabled here")
		return
	case !s.caps.has(capClone):
		s.cloneFailed(ReasonUnsupported, 0, "the peer did not send CLONE_IKE_SA_SUPPORTED (RFC 7791)")
		return
	}
	spi, err := s.randomSPI()
	if err != nil {
		s.cloneFailed(ReasonInternal, 0, err.Error())
		return
	}
	s.sendClone(now, &cloneState{spi: spi}, s.cur.suite.Group)
}

func (s *IKE) sendClone(now time.Time, c *cloneState, g ike.GroupID) {
	ni, err := s.randomBytes(nonceLen)
	if err != nil {
		s.cloneFailed(ReasonInternal, 0, err.Error())
		return
	}
	dh, err := s.newDH(g)
	if err != nil {
		s.cloneFailed(ReasonInternal, 0, err.Error())
		return
	}
	if c.dh != nil {
		c.dh.Destroy()
	}
	c.ni, c.dh = ni, dh
	props := slices.Clone(s.cfg.IKEProposals)
	for i := range props {
		props[i].SPI = binary.BigEndian.AppendUint64(nil, c.spi)
	}
	ss := s.cur
	ok := s.request(now, ss, &request{exch: ike.CreateChildSA,
		payloads: []ike.Payload{&ike.Notify{NotifyType: ike.CloneIKESA}, &ike.SA{Proposals: props},
			&ike.Nonce{Data: ni}, &ike.KE{Group: g, Data: dh.PublicValue()}},
		onResp: func(now time.Time, m *inbound) { s.cloneResponse(now, ss, m, c) },
		onFail: func(now time.Time) {
			c.dh.Destroy()
			s.down(now, ReasonDPDTimeout, 0, "no answer to the clone request")
		}})
	if !ok {
		dh.Destroy()
		s.cloneFailed(ReasonInternal, 0, "too many requests queued")
	}
}

func (s *IKE) cloneResponse(now time.Time, old *session, m *inbound, c *cloneState) {
	fail := func(r Reason, n ike.NotifyType, detail string) {
		if c.dh != nil {
			c.dh.Destroy()
		}
		s.cloneFailed(r, n, detail)
	}
	if n := m.errorNotify(); n != nil {
		if g, ok := n.Group(); ok && n.NotifyType == ike.InvalidKEPayload && c.retries < maxInitRetries &&
			transform.GroupOffered(s.cfg.IKEProposals, g) && g != c.dh.Group() {
			c.retries++
			s.sendClone(now, c, g)
			return
		}
		fail(notifyReason(n.NotifyType), n.NotifyType, "peer answered "+n.NotifyType.String())
		return
	}
	sa, nonce, ke := payloadOf[*ike.SA](m.payloads), payloadOf[*ike.Nonce](m.payloads), payloadOf[*ike.KE](m.payloads)
	if sa == nil || nonce == nil || ke == nil || len(sa.Proposals) != 1 || len(sa.Proposals[0].SPI) != 8 ||
		len(nonce.Data) < ike.MinNonceLen || len(nonce.Data) > ike.MaxNonceLen {
		fail(ReasonProtocolError, 0, "malformed clone response")
		return
	}
	chosen := sa.Proposals[0]
	peerSPI := binary.BigEndian.Uint64(chosen.SPI)
	suite, err := transform.SuiteOf(chosen)
	if err == nil {
		_, err = transform.Select(s.cfg.IKEProposals, []ike.Proposal{chosen}, transform.SelectOptions{})
	}
	if err != nil || ke.Group != c.dh.Group() || suite.Group != ke.Group || peerSPI == 0 {
		fail(ReasonNoProposalChosen, 0, "unacceptable clone response")
		return
	}
	gir, err := c.dh.SharedSecret(ke.Data)
	if err != nil {
		fail(ReasonProtocolError, 0, "KEr: "+err.Error())
		return
	}
	c.dh.Destroy()
	c.dh = nil
	// RFC 7296 §2.18 keys from the old SK_d; we initiated, so we are the
	// original initiator of the clone.
	skeyseed := transform.RekeySKEYSEED(old.keys.PRF, old.keys.D, gir, c.ni, nonce.Data)
	gir.Zero()
	ns := &session{spii: c.spi, spir: peerSPI, initiator: true}
	if err := deriveIKE(ns, suite, skeyseed, c.ni, nonce.Data); err != nil {
		fail(ReasonInternal, 0, err.Error())
		return
	}
	ns.authDone() // a clone has no IKE_AUTH (RFC 7791 §2)
	s.spawnClone(now, ns)
}

// handleCloneRequest answers the peer's CLONE_IKE_SA request.
func (s *IKE) handleCloneRequest(now time.Time, ss *session, m *inbound, sa *ike.SA) {
	reply := func(n *ike.Notify) { s.respond(now, ss, m, []ike.Payload{n}) }
	if !s.cfg.Clone {
		// We did not announce support: no clone, and no rekey either.
		reply(&ike.Notify{NotifyType: ike.NoAdditionalSAs})
		return
	}
	if s.rekeying() != nil {
		reply(&ike.Notify{NotifyType: ike.TemporaryFailure})
		return
	}
	ns := s.answerNewIKESA(now, ss, m, sa)
	if ns == nil {
		return
	}
	s.spawnClone(now, ns)
}

// holdLeases makes a gateway's clone a holder of the peer's inner
// addresses too (RFC 7791 §3: the clone carries the same state), so that
// they stay leased while either IKE SA lives. False when the pool gave
// another address (then the original IKE SA returns them, as before).
func (s *IKE) holdLeases() bool {
	vips := s.leased()
	if s.cfg.Pool == nil || len(vips) == 0 {
		return false
	}
	id := s.peerID.String()
	for i, a := range vips {
		got, err := s.cfg.Pool.Lease(id, a.Is6())
		if err != nil || got != a {
			if err == nil {
				s.cfg.Pool.Release(id, got)
			}
			for _, b := range vips[:i] {
				s.cfg.Pool.Release(id, b)
			}
			return false
		}
	}
	return true
}

// spawnClone makes the machine of a clone (session ns) and hands it to
// the glue in Output.Spawn.
func (s *IKE) spawnClone(now time.Time, ns *session) {
	n := newIKE(s.cfg, now, s.rng(), s.origRole)
	n.path = s.path
	n.rareState().log = s.logger().With("clone_of", s.cur.localSPI())
	n.state = StateEstablished
	n.cur = ns
	n.local, n.remote = s.local, s.remote
	n.natLocal, n.natRemote, n.natdSeen = s.natLocal, s.natRemote, s.natdSeen
	n.caps = s.caps
	n.ownID, n.peerID = s.ownID, s.peerID // a clone does not authenticate: no PSK or trust store
	n.setCP(s.vips(), s.dns(), s.pcscf())
	n.keepLeases = !n.holdLeases()
	if m := s.mob; m != nil && (m.peerAddrs != nil || m.announced) {
		nm := n.mobState()
		nm.peerAddrs, nm.addrs, nm.announced = slices.Clone(m.peerAddrs), slices.Clone(m.addrs), m.announced
	}
	n.established = n.stamp(now)
	n.scheduleIKE(now)
	o := n.out()
	o.Bind = append(o.Bind, ns.localSPI())
	n.emit(Event{Kind: EventIKEUp, Caps: n.caps.public(), PeerID: n.peerID, VirtualIPs: slices.Clone(n.vips()), ClonedFrom: s.cur.localSPI()})
	out := n.finish(now)
	s.logger().Info("IKE SA cloned", "clone_spii", ns.spii, "clone_spir", ns.spir)
	if s.spawning() {
		// One spawn per call: the other (a re-authentication) goes first
		// and the clone is closed rather than leaked.
		n.down(now, ReasonInternal, 0, "two spawns in one call")
		s.cloneFailed(ReasonInternal, 0, "a re-authentication started at the same time")
		return
	}
	s.out().Spawn = &Spawned{IKE: n, Output: out}
}
