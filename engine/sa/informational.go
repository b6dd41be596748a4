package sa

import (
	"time"

	"github.com/mifsec/mifsec/engine/ike"
)

// INFORMATIONAL (RFC 7296 §1.4): DELETE, liveness checks, error notifies.

func (s *IKE) handleInformationalRequest(now time.Time, ss *session, m *inbound) {
	var inSPIs []uint32
	for _, d := range payloadsOf[*ike.Delete](m.payloads) {
		switch d.Protocol {
		case ike.ProtoIKE:
			// §1.4.1: the IKE SA and all its Child SAs go; the answer is empty.
			s.respond(now, ss, m, nil)
			if ss == s.cur {
				s.down(now, ReasonPeerDelete, 0, "peer deleted the IKE SA")
			} else {
				s.dropSession(now, ss)
			}
			return
		case ike.ProtoESP:
			for _, spi := range d.SPIs {
				c := s.childByOutSPI(spi)
				if c == nil {
					continue
				}
				switch c.state {
				case childDeleting:
					// §1.4.1: crossing DELETEs; no Delete payload for it in
					// the answer, the inbound half goes with our answer.
					s.removeOut(c)
				case childRekeyed:
					// The peer switched to the new SA before deleting this
					// one: packets it sealed with it may still come (drain).
					inSPIs = append(inSPIs, c.inSPI)
					s.drain(now, c)
				default:
					inSPIs = append(inSPIs, c.inSPI)
					if c.rekeyOf() != nil {
						c.rekeyOf().release(s)
						c.setRekey(nil)
					}
					s.removeChild(now, c, ReasonPeerDelete, true)
				}
			}
		}
	}
	if m.notify(ike.AuthenticationFailed) != nil && !ss.initiator && s.origRole == Responder && s.state == StateEstablished &&
		ss.expect <= 3 {
		// §2.21.2: the initiator refused our AUTH.
		s.respond(now, ss, m, nil)
		s.emit(Event{Kind: EventAuthFailed, Reason: ReasonAuthFailed, Notify: ike.AuthenticationFailed, Detail: "the initiator refused our AUTH"})
		s.down(now, ReasonAuthFailed, ike.AuthenticationFailed, "the initiator refused our AUTH")
		return
	}
	var resp []ike.Payload
	if len(inSPIs) > 0 {
		resp = append(resp, &ike.Delete{Protocol: ike.ProtoESP, SPIs: inSPIs})
	}
	// RFC 4555: addresses, UPDATE_SA_ADDRESSES, NAT-D and COOKIE2 echoes.
	resp = append(resp, s.mobikeInformational(now, ss, m)...)
	// An empty request is a liveness check: the empty answer proves we live.
	s.respond(now, ss, m, resp)
}

// liveness sends an empty INFORMATIONAL (§2.4); no answer after the whole
// retransmission schedule, or within DPDTimeout when set, means the peer
// is dead.
func (s *IKE) liveness(now time.Time) {
	if s.state != StateEstablished || s.cur.req != nil || len(s.cur.queued()) > 0 {
		return // an exchange in flight already tests liveness
	}
	s.request(now, s.cur, &request{exch: ike.Informational, limit: s.cfg.DPDTimeout,
		onResp: func(time.Time, *inbound) {},
		onFail: func(now time.Time) { s.down(now, ReasonDPDTimeout, 0, "peer did not answer the liveness check") }})
}

// terminate deletes the IKE SA (§1.4.1): Child SAs leave the data plane at
// once, the machine ends with the answer or after the retransmissions.
func (s *IKE) terminate(now time.Time, r Reason) {
	switch s.state {
	case StateDeleting, StateClosed:
		return
	case StateConnecting, StateAuthenticating:
		s.down(now, r, 0, "terminated before establishment")
		return
	}
	for _, c := range append([]*childSA(nil), s.childList()...) {
		s.removeChild(now, c, r, true)
	}
	s.state = StateDeleting
	ss := s.cur
	done := func(now time.Time) { s.down(now, r, 0, "deleted") }
	ss.setQueued(nil)
	dreq := &request{exch: ike.Informational, payloads: []ike.Payload{&ike.Delete{Protocol: ike.ProtoIKE}},
		onResp: func(now time.Time, _ *inbound) { done(now) }, onFail: done}
	if ss.req != nil {
		// Wait for the window; whatever is outstanding fails quietly.
		ss.req.onFail = func(time.Time) {}
		ss.req.onResp = func(time.Time, *inbound) {}
	}
	s.request(now, ss, dreq)
}
