package sa

import (
	"bytes"
	"encoding/binary"
	"slices"
	"time"

	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/transform"
)

// CREATE_CHILD_SA (RFC 7296 §1.3): new Child SAs, Child SA rekeys, IKE SA
// rekeys, and the collisions between them (§2.8.1, §2.8.2, §2.25).

// ikeRekey is our IKE SA rekey in flight.
type ikeRekey struct {
	spi     uint64
	ni      []byte
	dh      *transform.DHKey
	retries int
	ours    *session // made by our exchange
	peer    *session // made meanwhile by the peer's exchange
	pending bool     // our request is outstanding
}

// redundant reports whether the SA made with nonces a holds the
// lowest of the four nonces against b: "the SA created with the
// lowest of the four nonces" is redundant (§2.8.1), octets compared
// lexicographically, a prefix being lower.
func redundant(a, b *nonces) bool {
	ani, anr := a.pair()
	bni, bnr := b.pair()
	lo := func(x, y []byte) []byte {
		if bytes.Compare(x, y) < 0 {
			return x
		}
		return y
	}
	return bytes.Compare(lo(ani, anr), lo(bni, bnr)) < 0
}

// Bounds on what an authenticated peer can make us keep.
const (
	maxChildren = 256 // Child SAs per IKE SA (NO_ADDITIONAL_SAS beyond)
	maxRetiring = 4   // IKE SAs replaced by rekeys, waiting for DELETE
)

// giveUp is how long a request is retransmitted before it fails.
func (s *IKE) giveUp() time.Duration {
	var d time.Duration
	for k := 0; k <= s.cfg.retransmit().Tries; k++ {
		d += s.timeout(k)
	}
	return d
}

// createChild proposes a new Child SA (§1.3.1).
func (s *IKE) createChild(now time.Time, cfg *ChildConfig) {
	o, err := s.newOffer(cfg, nil, false)
	if err != nil {
		s.emit(Event{Kind: EventChildFailed, Reason: ReasonInternal, Detail: err.Error(), Child: ChildInfo{Name: cfg.Name}})
		return
	}
	s.sendOffer(now, o)
}

func (s *IKE) sendOffer(now time.Time, o *childOffer) {
	ss := s.cur
	r := &request{exch: ike.CreateChildSA, payloads: o.payloads(false), offer: o,
		onResp: func(now time.Time, m *inbound) { s.offerResponse(now, ss, m, o) },
		onFail: func(now time.Time) {
			o.release(s)
			s.down(now, ReasonDPDTimeout, 0, "no answer to CREATE_CHILD_SA")
		}}
	if !s.request(now, ss, r) {
		o.release(s)
		if o.old != nil {
			o.old.setRekey(nil)
		}
		s.emit(Event{Kind: EventChildFailed, Reason: ReasonInternal, Detail: "too many requests queued", Child: ChildInfo{Name: o.cfg.Name}})
	}
}

// retryLater schedules fn after a TEMPORARY_FAILURE (§2.25: "retry later").
func (s *IKE) retryLater(now time.Time, fn func(now time.Time)) {
	d := s.cfg.retransmit().Timeout
	if b, err := s.randomBytes(1); err == nil {
		d += time.Duration(b[0]) * d / 256
	}
	s.after(now.Add(d), fn)
}

func (s *IKE) offerResponse(now time.Time, ss *session, m *inbound, o *childOffer) {
	old := o.old
	if n := m.errorNotify(); n != nil {
		switch {
		case n.NotifyType == ike.InvalidKEPayload && o.retries < maxInitRetries:
			// §1.3: retry with the group the peer wants, if we offered it.
			if g, ok := n.Group(); ok && transform.GroupOffered(o.props, g) {
				o.retries++
				if err := s.rekeyOfferKE(o, g); err == nil {
					s.sendOffer(now, o)
					return
				}
			}
		case n.NotifyType == ike.NoProposalChosen && o.dh != nil && old != nil && o.retries < maxInitRetries:
			// PROTOCOL.md P4: retry with the KE method of the existing
			// Child SA, then with none.
			g := old.suite.Group
			if g == o.dh.Group() || !transform.GroupOffered(o.props, g) {
				g = ike.GroupNone
			}
			o.retries++
			if err := s.rekeyOfferKE(o, g); err == nil {
				s.sendOffer(now, o)
				return
			}
		case n.NotifyType == ike.TemporaryFailure:
			o.release(s)
			if old != nil {
				old.setRekey(nil)
				s.resolveAfterOurRekeyFailed(now, old)
				if old.peerNewOf() == nil && old.state == childActive && slices.Contains(s.childList(), old) {
					s.retryLater(now, func(now time.Time) {
						if slices.Contains(s.childList(), old) && old.state == childActive {
							s.rekeyChild(now, old)
						}
					})
				}
				return
			}
			cfg := o.cfg
			s.retryLater(now, func(now time.Time) {
				if s.state == StateEstablished && !s.liveChild(cfg.Name) {
					s.createChild(now, cfg)
				}
			})
			return
		case n.NotifyType == ike.ChildSANotFound && old != nil:
			// P9: the peer no longer has it; its DELETE is on the way or lost.
			o.release(s)
			old.setRekey(nil)
			if slices.Contains(s.childList(), old) && old.state == childActive {
				s.deleteChild(now, old, ReasonPeerDelete)
			}
			return
		}
	}
	c, f := s.completeChild(now, ss, m, o)
	if old == nil {
		if f != nil {
			s.emit(Event{Kind: EventChildFailed, Reason: f.reason, Notify: f.notify, Detail: f.detail, Child: ChildInfo{Name: o.cfg.Name}})
			return
		}
		s.emit(Event{Kind: EventChildUp, Child: s.childInfo(c)})
		return
	}
	old.setRekey(nil)
	if f != nil {
		s.logger().Warn("Child SA rekey failed", "child", o.cfg.Name, "reason", f.reason.String(), "detail", f.detail)
		s.resolveAfterOurRekeyFailed(now, old)
		return
	}
	if !slices.Contains(s.childList(), old) {
		// Deleted while we rekeyed it (§2.25.1): the new SA goes too.
		s.deleteChild(now, c, ReasonPeerDelete)
		return
	}
	if peer := old.peerNewOf(); peer != nil {
		old.setPeerNew(nil)
		s.resolveChildCollision(now, old, c, peer)
		return
	}
	old.state = childRekeyed
	s.emit(Event{Kind: EventChildRekeyed, Child: s.childInfo(c), OldChild: s.childInfo(old)})
	s.deleteRekeyed(now, old)
}

// resolveAfterOurRekeyFailed: if the peer rekeyed the SA meanwhile, its
// SA is the successor and the peer deletes the old one.
func (s *IKE) resolveAfterOurRekeyFailed(now time.Time, old *childSA) {
	if peer := old.peerNewOf(); peer != nil {
		old.setPeerNew(nil)
		old.state = childRekeyed
		old.deleteAt = s.stamp(now.Add(s.giveUp() + s.cfg.rekeyedDelete()))
		s.syncPolicy(old.group)
		s.emit(Event{Kind: EventChildRekeyed, Child: s.childInfo(peer), OldChild: s.childInfo(old)})
	}
}

// resolveChildCollision applies §2.8.1 when both ends rekeyed old: the SA
// created with the lowest nonce is redundant and its creator closes it.
func (s *IKE) resolveChildCollision(now time.Time, old, ours, peer *childSA) {
	if redundant(ours.nonces, peer.nonces) {
		s.logger().Debug("Child SA rekey collision lost", "child", old.cfg.Name)
		old.state = childRekeyed
		old.deleteAt = s.stamp(now.Add(s.giveUp() + s.cfg.rekeyedDelete()))
		s.emit(Event{Kind: EventChildRekeyed, Child: s.childInfo(peer), OldChild: s.childInfo(old)})
		s.deleteChild(now, ours, ReasonRedundant)
		return
	}
	s.logger().Debug("Child SA rekey collision won", "child", old.cfg.Name)
	old.state = childRekeyed
	peer.state = childRekeyed // redundant: the peer deletes it
	peer.deleteAt = s.stamp(now.Add(s.giveUp() + s.cfg.rekeyedDelete()))
	s.syncPolicy(old.group)
	s.emit(Event{Kind: EventChildRekeyed, Child: s.childInfo(ours), OldChild: s.childInfo(old)})
	s.deleteRekeyed(now, old)
}

// deleteRekeyed deletes a replaced SA: outbound now, inbound drains from
// the answer on (drain), or goes after RekeyedDelete without one.
func (s *IKE) deleteRekeyed(now time.Time, old *childSA) {
	old.state = childDeleting
	old.deleteAt = s.stamp(now.Add(s.cfg.rekeyedDelete()))
	s.removeOut(old)
	s.sendDelete(now, old, func(now time.Time) { s.drain(now, old) })
}

// deleteChild deletes a Child SA with an INFORMATIONAL DELETE (§1.4.1);
// a redundant one (§2.8.1) drains like a rekeyed one, since the peer may
// have sent on it before the collision was resolved.
func (s *IKE) deleteChild(now time.Time, c *childSA, r Reason) {
	if c.state == childDeleting || !c.live() {
		return
	}
	c.state = childDeleting
	s.removeOut(c)
	s.sendDelete(now, c, func(now time.Time) {
		if r == ReasonRedundant {
			s.drain(now, c)
			return
		}
		s.removeChild(now, c, r, true)
	})
}

func (s *IKE) sendDelete(now time.Time, c *childSA, done func(now time.Time)) {
	ok := s.request(now, s.cur, &request{exch: ike.Informational,
		payloads: []ike.Payload{&ike.Delete{Protocol: ike.ProtoESP, SPIs: []uint32{c.inSPI}}},
		onResp:   func(now time.Time, _ *inbound) { done(now) },
		onFail: func(now time.Time) {
			done(now)
			s.down(now, ReasonDPDTimeout, 0, "no answer to DELETE")
		}})
	if !ok {
		done(now)
	}
}

// rekeyChild starts a Child SA rekey (§1.3.3).
func (s *IKE) rekeyChild(now time.Time, c *childSA) {
	if s.state != StateEstablished || c.state != childActive || c.rekeyOf() != nil {
		return
	}
	o, err := s.newOffer(c.cfg, c, false)
	if err != nil {
		s.logger().Warn("cannot rekey Child SA", "child", c.cfg.Name, "error", err)
		return
	}
	c.setRekey(o)
	s.sendOffer(now, o)
}

func (s *IKE) handleCreateChildRequest(now time.Time, ss *session, m *inbound) {
	reply := func(t ike.NotifyType) { s.respond(now, ss, m, []ike.Payload{&ike.Notify{NotifyType: t}}) }
	if s.state != StateEstablished && s.state != StateDeleting {
		reply(ike.InvalidSyntax)
		return
	}
	sa := payloadOf[*ike.SA](m.payloads)
	if sa == nil || len(sa.Proposals) == 0 {
		reply(ike.InvalidSyntax)
		return
	}
	// §2.25: nothing new on an IKE SA being deleted or replaced.
	if ss != s.cur || ss.deleting || s.state == StateDeleting {
		reply(ike.TemporaryFailure)
		return
	}
	if sa.Proposals[0].Protocol == ike.ProtoIKE {
		if m.notify(ike.CloneIKESA) != nil {
			s.handleCloneRequest(now, ss, m, sa) // RFC 7791, not a rekey
			return
		}
		if len(s.retiring()) >= maxRetiring {
			reply(ike.TemporaryFailure)
			return
		}
		s.handleIKERekeyRequest(now, ss, m, sa)
		return
	}
	if r := s.rekeying(); r != nil && r.pending {
		// strongSwan child_create.c: no Child SA while rekeying the IKE SA.
		reply(ike.TemporaryFailure)
		return
	}
	var old *childSA
	if n := m.notify(ike.RekeySA); n != nil {
		if n.Protocol != ike.ProtoESP || len(n.SPI) != 4 {
			reply(ike.InvalidSyntax)
			return
		}
		// §1.3.3: the SPI the peer expects inbound, our outbound SPI.
		old = s.childByOutSPI(binary.BigEndian.Uint32(n.SPI))
		if old == nil {
			reply(ike.ChildSANotFound)
			return
		}
		if old.state != childActive {
			reply(ike.TemporaryFailure)
			return
		}
	}
	if old == nil && s.liveChildren() >= maxChildren {
		reply(ike.NoAdditionalSAs)
		return
	}
	ps, c, errN := s.acceptChild(now, ss, m, false, old)
	if errN != nil {
		s.respond(now, ss, m, []ike.Payload{errN})
		return
	}
	s.respond(now, ss, m, ps)
	switch {
	case old == nil:
		s.emit(Event{Kind: EventChildUp, Child: s.childInfo(c)})
	case old.rekeyOf() != nil:
		// Our own rekey of old is in flight: decide when it completes.
		// Meanwhile c waits for old like any SA we answered (waitFor).
		old.setPeerNew(c)
	default:
		// The peer deletes old (§1.3.3); delete it ourselves if it does not.
		// Until then old carries our outbound traffic (see waitFor).
		old.state = childRekeyed
		old.deleteAt = s.stamp(now.Add(s.giveUp() + s.cfg.rekeyedDelete()))
		s.syncPolicy(old.group)
		s.emit(Event{Kind: EventChildRekeyed, Child: s.childInfo(c), OldChild: s.childInfo(old)})
	}
}

// rekeyIKE starts an IKE SA rekey (§1.3.2).
func (s *IKE) rekeyIKE(now time.Time) {
	if s.state != StateEstablished || s.rekeying() != nil {
		return
	}
	spi, err := s.randomSPI()
	if err != nil {
		return
	}
	r := &ikeRekey{spi: spi}
	s.setRekeying(r)
	s.sendIKERekey(now, r, s.cur.suite.Group)
}

func (s *IKE) sendIKERekey(now time.Time, r *ikeRekey, g ike.GroupID) {
	ni, err := s.randomBytes(nonceLen)
	if err != nil {
		s.setRekeying(nil)
		return
	}
	dh, err := s.newDH(g)
	if err != nil {
		s.setRekeying(nil)
		return
	}
	if r.dh != nil {
		r.dh.Destroy()
	}
	r.ni, r.dh, r.pending = ni, dh, true
	props := slices.Clone(s.cfg.IKEProposals)
	for i := range props {
		props[i].SPI = binary.BigEndian.AppendUint64(nil, r.spi)
	}
	ss := s.cur
	// P11: SA, Ni, KEi.
	ok := s.request(now, ss, &request{exch: ike.CreateChildSA,
		payloads: []ike.Payload{&ike.SA{Proposals: props}, &ike.Nonce{Data: ni}, &ike.KE{Group: g, Data: dh.PublicValue()}},
		onResp:   func(now time.Time, m *inbound) { s.ikeRekeyResponse(now, ss, m, r) },
		onFail: func(now time.Time) {
			s.down(now, ReasonDPDTimeout, 0, "no answer to the IKE SA rekey")
		}})
	if !ok {
		s.setRekeying(nil)
	}
}

func (s *IKE) ikeRekeyFailed(now time.Time, r *ikeRekey, detail string) {
	r.pending = false
	if r.dh != nil {
		r.dh.Destroy()
	}
	if r.peer != nil {
		// The peer's rekey stands (it deletes the old IKE SA).
		s.switchTo(now, r.peer, false)
		return
	}
	s.setRekeying(nil)
	s.logger().Warn("IKE SA rekey failed", "detail", detail)
	s.retryLater(now, func(now time.Time) { s.rekeyIKE(now) })
}

func (s *IKE) ikeRekeyResponse(now time.Time, old *session, m *inbound, r *ikeRekey) {
	if n := m.errorNotify(); n != nil {
		if g, ok := n.Group(); ok && n.NotifyType == ike.InvalidKEPayload && r.retries < maxInitRetries &&
			transform.GroupOffered(s.cfg.IKEProposals, g) && r.peer == nil {
			r.retries++
			s.sendIKERekey(now, r, g)
			return
		}
		s.ikeRekeyFailed(now, r, "peer answered "+n.NotifyType.String())
		return
	}
	sa, nonce, ke := payloadOf[*ike.SA](m.payloads), payloadOf[*ike.Nonce](m.payloads), payloadOf[*ike.KE](m.payloads)
	if sa == nil || nonce == nil || ke == nil || len(sa.Proposals) != 1 || len(sa.Proposals[0].SPI) != 8 ||
		len(nonce.Data) < ike.MinNonceLen || len(nonce.Data) > ike.MaxNonceLen {
		s.ikeRekeyFailed(now, r, "malformed response")
		return
	}
	chosen := sa.Proposals[0]
	peerSPI := binary.BigEndian.Uint64(chosen.SPI)
	suite, err := transform.SuiteOf(chosen)
	if err == nil {
		_, err = transform.Select(s.cfg.IKEProposals, []ike.Proposal{chosen}, transform.SelectOptions{})
	}
	if err != nil || ke.Group != r.dh.Group() || suite.Group != ke.Group || peerSPI == 0 {
		s.ikeRekeyFailed(now, r, "unacceptable response")
		return
	}
	gir, err := r.dh.SharedSecret(ke.Data)
	if err != nil {
		s.ikeRekeyFailed(now, r, err.Error())
		return
	}
	r.dh.Destroy()
	r.dh = nil
	// §2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr); the
	// exchange initiator is the original initiator of the new IKE SA.
	skeyseed := transform.RekeySKEYSEED(old.keys.PRF, old.keys.D, gir, r.ni, nonce.Data)
	gir.Zero()
	ns := &session{spii: r.spi, spir: peerSPI, initiator: true}
	if err := deriveRekeyed(ns, suite, skeyseed, r.ni, nonce.Data); err != nil {
		s.ikeRekeyFailed(now, r, err.Error())
		return
	}
	r.pending = false
	r.ours = ns
	if h := s.hooks(); h != nil && h.session != nil {
		h.session(ns)
	}
	o := s.out()
	o.Bind = append(o.Bind, ns.localSPI())
	if peer := r.peer; peer != nil {
		// §2.8.2: the new IKE SA with the lowest nonce is redundant; its
		// creator deletes it; the survivor inherits the Child SAs.
		if redundant(ns.nonces, peer.nonces) {
			s.logger().Debug("IKE SA rekey collision lost")
			s.switchTo(now, peer, false)
			x := s.rareState()
			x.retiring = append(x.retiring, ns)
			s.deleteSession(now, ns)
			return
		}
		s.logger().Debug("IKE SA rekey collision won")
		peer.setRetireAt(s.stamp(now.Add(s.giveUp())))
		x := s.rareState()
		x.retiring = append(x.retiring, peer)
	}
	s.switchTo(now, ns, true)
}

// switchTo makes ns the current IKE SA; the old one is deleted by us
// (deleteOld) or waits for the peer's DELETE.
func (s *IKE) switchTo(now time.Time, ns *session, deleteOld bool) {
	old := s.cur
	ns.setQueued(append(ns.queued(), old.queued()...))
	old.setQueued(nil)
	ns.rtt = old.rtt
	s.cur = ns
	s.setRekeying(nil)
	s.rekeyed = s.stamp(now)
	s.scheduleIKE(now)
	s.emit(Event{Kind: EventIKERekeyed, SPIi: ns.spii, SPIr: ns.spir, OldSPIi: old.spii, OldSPIr: old.spir})
	if x := s.rareState(); !slices.Contains(x.retiring, old) {
		x.retiring = append(x.retiring, old)
	}
	if deleteOld {
		s.deleteSession(now, old)
	} else {
		old.setRetireAt(s.stamp(now.Add(s.giveUp())))
	}
	s.pump(now, ns)
}

// deleteSession sends DELETE for a retired IKE SA (§1.4.1).
func (s *IKE) deleteSession(now time.Time, ss *session) {
	if ss.deleting {
		return
	}
	ss.deleting = true
	ss.setRetireAt(0)
	done := func(now time.Time) { s.dropSession(now, ss) }
	if !s.request(now, ss, &request{exch: ike.Informational,
		payloads: []ike.Payload{&ike.Delete{Protocol: ike.ProtoIKE}}, onResp: func(now time.Time, _ *inbound) { done(now) },
		onFail: done}) {
		done(now)
	}
}

// dropSession forgets a retired IKE SA; a request of ours still waiting
// on it moves to the current one.
func (s *IKE) dropSession(now time.Time, ss *session) {
	if ss == s.cur {
		return
	}
	if x := s.x; x != nil {
		x.retiring = slices.DeleteFunc(x.retiring, func(r *session) bool { return r == ss })
	}
	if r := s.rekeying(); r != nil {
		if r.peer == ss {
			r.peer = nil
		}
		if r.ours == ss {
			r.ours = nil
		}
	}
	var moved []*request
	if ss.req != nil && ss.req.exch != ike.Informational {
		moved = append(moved, ss.req)
	}
	for _, r := range ss.queued() {
		if r.exch != ike.Informational || r.offer != nil {
			moved = append(moved, r)
		}
	}
	ss.destroy()
	o := s.out()
	o.Unbind = append(o.Unbind, ss.localSPI())
	for _, r := range moved {
		r.packets = nil
		s.request(now, s.cur, r)
	}
}

func (s *IKE) handleIKERekeyRequest(now time.Time, ss *session, m *inbound, sa *ike.SA) {
	reply := func(n *ike.Notify) { s.respond(now, ss, m, []ike.Payload{n}) }
	if r := s.rekeying(); r != nil && (r.peer != nil || !r.pending) {
		reply(&ike.Notify{NotifyType: ike.TemporaryFailure})
		return
	}
	ns := s.answerNewIKESA(now, ss, m, sa)
	if ns == nil {
		return
	}
	o := s.out()
	o.Bind = append(o.Bind, ns.localSPI())
	if h := s.hooks(); h != nil && h.session != nil {
		h.session(ns)
	}
	if r := s.rekeying(); r != nil {
		r.peer = ns // decided when our own exchange ends
		return
	}
	s.switchTo(now, ns, false)
}

// answerNewIKESA negotiates the new IKE SA a CREATE_CHILD_SA request asks
// for (an IKE rekey, RFC 7296 §1.3.2, or an RFC 7791 clone): proposal and
// KE, fresh SPI, nonce and D-H, keys from SK_d (§2.18), and sends the
// response. It returns the new session, or nil after answering with the
// error notify.
func (s *IKE) answerNewIKESA(now time.Time, ss *session, m *inbound, sa *ike.SA) *session {
	reply := func(n *ike.Notify) { s.respond(now, ss, m, []ike.Payload{n}) }
	nonce, ke := payloadOf[*ike.Nonce](m.payloads), payloadOf[*ike.KE](m.payloads)
	if nonce == nil || ke == nil || len(nonce.Data) < ike.MinNonceLen || len(nonce.Data) > ike.MaxNonceLen {
		reply(&ike.Notify{NotifyType: ike.InvalidSyntax})
		return nil
	}
	chosen, err := transform.Select(s.cfg.IKEProposals, sa.Proposals, transform.SelectOptions{KEGroup: ke.Group})
	if err != nil {
		reply(&ike.Notify{NotifyType: ike.NoProposalChosen})
		return nil
	}
	if err := transform.CheckKE(chosen, ke.Group); err != nil {
		var te *transform.Error
		if asTransformError(err, &te) {
			reply(ike.NotifyGroup(te.Group))
		} else {
			reply(&ike.Notify{NotifyType: ike.NoProposalChosen})
		}
		return nil
	}
	suite, err := transform.SuiteOf(chosen)
	if err != nil || len(chosen.SPI) != 8 || binary.BigEndian.Uint64(chosen.SPI) == 0 {
		reply(&ike.Notify{NotifyType: ike.InvalidSyntax})
		return nil
	}
	spi, err1 := s.randomSPI()
	nr, err2 := s.randomBytes(nonceLen)
	dh, err3 := s.newDH(suite.Group)
	if err1 != nil || err2 != nil || err3 != nil {
		reply(&ike.Notify{NotifyType: ike.TemporaryFailure})
		return nil
	}
	defer dh.Destroy()
	gir, err := dh.SharedSecret(ke.Data)
	if err != nil {
		reply(&ike.Notify{NotifyType: ike.InvalidSyntax})
		return nil
	}
	skeyseed := transform.RekeySKEYSEED(ss.keys.PRF, ss.keys.D, gir, nonce.Data, nr)
	gir.Zero()
	ns := &session{spii: binary.BigEndian.Uint64(chosen.SPI), spir: spi}
	if err := deriveRekeyed(ns, suite, skeyseed, nonce.Data, nr); err != nil {
		reply(&ike.Notify{NotifyType: ike.NoProposalChosen})
		return nil
	}
	chosen.SPI = binary.BigEndian.AppendUint64(nil, spi)
	s.respond(now, ss, m, []ike.Payload{&ike.SA{Proposals: []ike.Proposal{chosen}}, &ike.Nonce{Data: nr},
		&ike.KE{Group: suite.Group, Data: bytes.Clone(dh.PublicValue())}})
	return ns
}
