package sa

import (
	"net/netip"
	"time"

	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/transform"
)

// AuthError reports why AUTH failed (RFC 7296 §2.15, §2.21.2).
type AuthError struct{ Reason string }

func (e *AuthError) Error() string { return "sa: authentication failed: " + e.Reason }

// makeAuth computes our AUTH payload and the CERT payloads that go with it.
func (s *IKE) makeAuth(ss *session, realMsg, peerNonce []byte, skp transform.Secret, id *ike.Identification) (*ike.Auth, []ike.Payload, error) {
	signed := transform.SignedOctets(ss.keys.PRF, realMsg, peerNonce, skp, id.RestOfIDPayload())
	if s.init.psk.Len() > 0 {
		return &ike.Auth{Method: ike.AuthSharedKeyMIC, Data: transform.PSKAuth(ss.keys.PRF, s.init.psk, signed)}, nil, nil
	}
	if len(s.cfg.Auth.Certs) == 0 || s.cfg.Auth.Key == nil {
		return nil, nil, &AuthError{Reason: "no shared key and no certificate to authenticate with"}
	}
	signer, err := transform.NewSigner(s.cfg.Auth.Key)
	if err != nil {
		return nil, nil, err
	}
	sig, err := signer.Sign(s.rng(), signed)
	if err != nil {
		return nil, nil, err
	}
	certs := make([]ike.Payload, 0, len(s.cfg.Auth.Certs))
	for _, c := range s.cfg.Auth.Certs {
		certs = append(certs, &ike.Cert{Encoding: ike.CertX509Signature, Data: c.Raw})
	}
	// RFC 7427 §3: method 14, whatever the key type.
	return &ike.Auth{Method: ike.AuthDigitalSignature, Data: sig}, certs, nil
}

// verifyAuth checks the peer's AUTH payload over its signed octets.
func (s *IKE) verifyAuth(now time.Time, ss *session, ps []ike.Payload, realMsg, ourNonce []byte, skp transform.Secret, id *ike.Identification) error {
	auth := payloadOf[*ike.Auth](ps)
	if auth == nil {
		return &AuthError{Reason: "no AUTH payload"}
	}
	signed := transform.SignedOctets(ss.keys.PRF, realMsg, ourNonce, skp, id.RestOfIDPayload())
	switch auth.Method {
	case ike.AuthSharedKeyMIC:
		if s.init.psk.Len() == 0 {
			return &AuthError{Reason: "peer used a shared key, none configured"}
		}
		return transform.VerifyPSKAuth(ss.keys.PRF, s.init.psk, signed, auth.Data)
	case ike.AuthDigitalSignature:
		if s.init.trust == nil {
			return &AuthError{Reason: "peer used a signature, no trust store configured"}
		}
		var certs [][]byte
		for _, c := range payloadsOf[*ike.Cert](ps) {
			if c.Encoding == ike.CertX509Signature {
				certs = append(certs, c.Data)
			}
		}
		leaf, err := s.init.trust.Verify(certs, now)
		if err != nil {
			return err
		}
		// RFC 4945 §3.1: the identity must be in the certificate.
		if err := transform.MatchID(leaf, id.IDType, id.Data); err != nil {
			return err
		}
		return transform.VerifySignature(leaf.PublicKey, signed, auth.Data)
	}
	return &AuthError{Reason: "unsupported AUTH method " + auth.Method.String()}
}

// learnAuthCaps reads the capability notifies of IKE_AUTH.
func (s *IKE) learnAuthCaps(ps []ike.Payload, d Datagram) (initialContact bool) {
	for _, n := range payloadsOf[*ike.Notify](ps) {
		switch n.NotifyType {
		case ike.MOBIKESupported:
			s.caps.set(capMOBIKE)
		case ike.CloneIKESASupported:
			s.caps.set(capClone)
		case ike.ESPTFCPaddingNotSupported:
			s.caps.set(capNoTFC)
		case ike.ChildlessIKEv2Supported:
			s.caps.set(capChildless)
		case ike.InitialContact:
			initialContact = true
		}
	}
	s.learnPeerAddrs(ps, d)
	return initialContact
}

func (s *IKE) authNotifies() []ike.Payload {
	var ps []ike.Payload
	if s.cfg.MOBIKE {
		ps = append(ps, &ike.Notify{NotifyType: ike.MOBIKESupported})
	}
	if s.cfg.Clone {
		ps = append(ps, &ike.Notify{NotifyType: ike.CloneIKESASupported})
	}
	return append(ps, s.authAddrNotifies()...)
}

// sendAuth sends the initiator's IKE_AUTH request (RFC 7296 §1.2,
// PROTOCOL.md item 19 for the order).
func (s *IKE) sendAuth(now time.Time) {
	ss := s.cur
	idi := s.localID().payload(false)
	auth, certs, err := s.makeAuth(ss, s.init.reqRaw, s.init.nr, ss.keys.PI, idi)
	if err != nil {
		s.down(now, ReasonInternal, 0, err.Error())
		return
	}
	ps := append([]ike.Payload{idi}, certs...)
	if !s.noIC {
		ps = append(ps, &ike.Notify{NotifyType: ike.InitialContact})
	}
	if s.init.trust != nil {
		ps = append(ps, &ike.CertReq{Encoding: ike.CertX509Signature, Data: s.init.trust.CertReq()})
	}
	if !s.peerID.IsAny() {
		ps = append(ps, s.peerID.payload(true))
	}
	ps = append(ps, auth)
	if cp := s.cpRequest(); cp != nil {
		ps = append(ps, cp)
	}
	var offer *childOffer
	for i := range s.cfg.Children {
		if s.cfg.Children[i].Start == StartNow {
			offer, err = s.newOffer(&s.cfg.Children[i], nil, true)
			if err != nil {
				s.emit(Event{Kind: EventChildFailed, Reason: ReasonInternal, Detail: err.Error(), Child: ChildInfo{Name: s.cfg.Children[i].Name}})
				offer = nil
			}
			break
		}
	}
	if offer != nil {
		ps = append(ps, offer.payloads(true)...)
	}
	ps = append(ps, s.authNotifies()...)
	s.request(now, ss, &request{exch: ike.IKEAuth, payloads: ps,
		onResp: func(now time.Time, m *inbound) { s.authResponse(now, ss, m, offer) },
		onFail: func(now time.Time) {
			offer.release(s)
			s.down(now, ReasonTimeout, 0, "no answer to IKE_AUTH")
		}})
}

// authFailedNotify tells the peer its AUTH failed, in a request we do not
// wait for (RFC 7296 §2.21.2), before the SA goes.
func (s *IKE) authFailedNotify(ss *session) {
	h := ss.header(ike.Informational, ss.nextReq, false)
	if pk, err := s.seal(ss, h, []ike.Payload{&ike.Notify{NotifyType: ike.AuthenticationFailed}}, s.local, s.remote, nil); err == nil {
		ss.nextReq++
		s.sendPackets(s.local, s.remote, pk)
	}
}

func (s *IKE) authResponse(now time.Time, ss *session, m *inbound, offer *childOffer) {
	fail := func(r Reason, n ike.NotifyType, detail string) {
		offer.release(s)
		if r == ReasonAuthFailed {
			s.emit(Event{Kind: EventAuthFailed, Reason: r, Notify: n, Detail: detail})
		}
		s.down(now, r, n, detail)
	}
	if m.notify(ike.AuthenticationFailed) != nil {
		fail(ReasonAuthFailed, ike.AuthenticationFailed, "the responder refused our AUTH")
		return
	}
	var idr *ike.Identification
	for _, id := range payloadsOf[*ike.Identification](m.payloads) {
		if id.Responder {
			idr = id
		}
	}
	if idr == nil || payloadOf[*ike.Auth](m.payloads) == nil {
		if n := m.errorNotify(); n != nil {
			fail(ReasonPeerError, n.NotifyType, "IKE_AUTH answered with "+n.NotifyType.String())
			return
		}
		fail(ReasonProtocolError, 0, "IKE_AUTH response without IDr or AUTH")
		return
	}
	pid := identityOf(idr)
	if !s.cfg.RemoteID.Matches(pid) {
		s.authFailedNotify(ss)
		fail(ReasonAuthFailed, 0, "peer identity "+pid.String()+" is not "+s.cfg.RemoteID.String())
		return
	}
	if err := s.verifyAuth(now, ss, m.payloads, s.init.respRaw, s.init.ni, ss.keys.PR, idr); err != nil {
		s.authFailedNotify(ss)
		fail(ReasonAuthFailed, 0, err.Error())
		return
	}
	s.peerID = pid
	ss.authDone()
	s.learnAuthCaps(m.payloads, m.dg)
	s.readCPReply(m.payloads)
	s.established = s.stamp(now)
	s.state = StateEstablished
	s.scheduleIKE(now)
	s.growEvents(3) // IKE up, capabilities, Child SA up or failed
	s.emit(Event{Kind: EventIKEUp, Caps: s.caps.public(), VirtualIPs: s.vips(), PeerID: s.peerID, Replaces: s.replaces()})
	s.emit(Event{Kind: EventPeerCapabilities, Caps: s.caps.public(), PeerID: s.peerID})
	if offer != nil {
		if (s.cfg.VirtualIP.IPv4 || s.cfg.VirtualIP.IPv6) && len(s.vips()) == 0 && m.errorNotify() == nil {
			// §2.19: we asked for an address and got none. The responder
			// may have made the Child SA anyway: delete its half.
			if payloadOf[*ike.SA](m.payloads) != nil {
				spi := offer.inSPI
				offer.released = true
				s.request(now, ss, &request{exch: ike.Informational,
					payloads: []ike.Payload{&ike.Delete{Protocol: ike.ProtoESP, SPIs: []uint32{spi}}},
					onResp:   func(time.Time, *inbound) { s.cfg.SPIs.ReleaseSPI(spi) },
					onFail:   func(now time.Time) { s.down(now, ReasonDPDTimeout, 0, "no answer to DELETE") }})
			}
			offer.release(s)
			s.emit(Event{Kind: EventChildFailed, Reason: ReasonCPFailed, Child: ChildInfo{Name: offer.cfg.Name},
				Detail: "no virtual IP assigned"})
		} else {
			s.completeChild(now, ss, m, offer)
		}
	}
	// IKE_AUTH is done: the IKE_SA_INIT messages, nonces and DH key are
	// no longer needed (RFC 7296 §2.15 signs them once); later exchanges
	// carry their own nonces.
	s.init = nil
	s.startChildren(now)
}

// handleAuthRequest is the responder's side of IKE_AUTH.
func (s *IKE) handleAuthRequest(now time.Time, ss *session, m *inbound) {
	var idi *ike.Identification
	for _, id := range payloadsOf[*ike.Identification](m.payloads) {
		if !id.Responder {
			idi = id
		}
	}
	if idi == nil || payloadOf[*ike.Auth](m.payloads) == nil {
		s.respond(now, ss, m, []ike.Payload{&ike.Notify{NotifyType: ike.InvalidSyntax}})
		s.down(now, ReasonProtocolError, ike.InvalidSyntax, "IKE_AUTH request without IDi or AUTH")
		return
	}
	pid := identityOf(idi)
	authFail := func(err error) {
		s.respond(now, ss, m, []ike.Payload{&ike.Notify{NotifyType: ike.AuthenticationFailed}})
		s.peerID = pid
		s.emit(Event{Kind: EventAuthFailed, Reason: ReasonAuthFailed, Notify: ike.AuthenticationFailed, Detail: err.Error(), PeerID: pid})
		s.down(now, ReasonAuthFailed, ike.AuthenticationFailed, err.Error())
	}
	if s.cfg.Policy != nil {
		pa, err := s.cfg.Policy(pid)
		if err == nil && pa == nil {
			err = &AuthError{Reason: "no policy for " + pid.String()}
		}
		if err != nil {
			authFail(err)
			return
		}
		if pa.PSK.Len() > 0 {
			s.init.psk = pa.PSK
		}
		if pa.Trust != nil {
			s.init.trust = pa.Trust
		}
		if !pa.ID.Matches(pid) {
			authFail(&AuthError{Reason: "identity " + pid.String() + " is not " + pa.ID.String()})
			return
		}
	} else if !s.cfg.RemoteID.Matches(pid) {
		authFail(&AuthError{Reason: "identity " + pid.String() + " is not " + s.cfg.RemoteID.String()})
		return
	}
	if err := s.verifyAuth(now, ss, m.payloads, s.init.reqRaw, s.init.nr, ss.keys.PI, idi); err != nil {
		authFail(err)
		return
	}
	s.peerID = pid
	initialContact := s.learnAuthCaps(m.payloads, m.dg)
	// RFC 4555 §3.3: the IKE SA's addresses are those of this request
	// (after the initiator floated to port 4500).
	s.local, s.remote = m.dg.Local, m.dg.Remote
	idr := s.localID().payload(true)
	auth, certs, err := s.makeAuth(ss, s.init.respRaw, s.init.ni, ss.keys.PR, idr)
	if err != nil {
		s.respond(now, ss, m, []ike.Payload{&ike.Notify{NotifyType: ike.AuthenticationFailed}})
		s.down(now, ReasonInternal, 0, err.Error())
		return
	}
	ps := append([]ike.Payload{idr}, certs...)
	ps = append(ps, auth)
	cp, cpErr := s.handleCP(m.payloads)
	if cp != nil {
		ps = append(ps, cp)
	}
	var child *childSA
	var childErr *ike.Notify
	if payloadOf[*ike.SA](m.payloads) != nil {
		if cpErr != nil {
			childErr = cpErr
		} else {
			var cps []ike.Payload
			cps, child, childErr = s.acceptChild(now, ss, m, true, nil)
			ps = append(ps, cps...)
		}
		if childErr != nil {
			ps = append(ps, childErr)
		}
	} else if cpErr != nil {
		ps = append(ps, cpErr)
	}
	ps = append(ps, s.authNotifies()...)
	s.respond(now, ss, m, ps)
	ss.authDone()
	s.established = s.stamp(now)
	s.state = StateEstablished
	s.init.halfOpenAt = 0
	s.scheduleIKE(now)
	s.growEvents(3) // IKE up, capabilities, Child SA up or failed
	s.emit(Event{Kind: EventIKEUp, Caps: s.caps.public(), VirtualIPs: s.vips(), PeerID: s.peerID, InitialContact: initialContact})
	s.emit(Event{Kind: EventPeerCapabilities, Caps: s.caps.public(), PeerID: s.peerID})
	if child != nil {
		s.emit(Event{Kind: EventChildUp, Child: s.childInfo(child)})
	} else if childErr != nil {
		s.emit(Event{Kind: EventChildFailed, Reason: notifyReason(childErr.NotifyType), Notify: childErr.NotifyType,
			Detail: "refused the Child SA of IKE_AUTH"})
	}
	s.init = nil // as in handleAuthResponse
}

// notifyReason maps a Child SA error notify to a Reason.
func notifyReason(n ike.NotifyType) Reason {
	switch n {
	case ike.NoProposalChosen:
		return ReasonNoProposalChosen
	case ike.TSUnacceptable, ike.SinglePairRequired:
		return ReasonTSUnacceptable
	case ike.FailedCPRequired, ike.InternalAddressFailure:
		return ReasonCPFailed
	case ike.InvalidKEPayload:
		return ReasonInvalidKE
	case ike.AuthenticationFailed:
		return ReasonAuthFailed
	case ike.TemporaryFailure:
		return ReasonTemporaryFailure
	}
	return ReasonPeerError
}

// cpRequest is the initiator's CFG_REQUEST (RFC 7296 §2.19, RFC 7651).
func (s *IKE) cpRequest() *ike.Config {
	v := s.cfg.VirtualIP
	var attrs []ike.CPAttribute
	if v.IPv4 {
		attrs = append(attrs, ike.CPRequest(ike.CPInternalIP4Address))
		if v.DNS {
			attrs = append(attrs, ike.CPRequest(ike.CPInternalIP4DNS))
		}
		if v.PCSCF {
			attrs = append(attrs, ike.CPRequest(ike.CPPCSCFIP4Address))
		}
	}
	if v.IPv6 {
		attrs = append(attrs, ike.CPRequest(ike.CPInternalIP6Address))
		if v.DNS {
			attrs = append(attrs, ike.CPRequest(ike.CPInternalIP6DNS))
		}
		if v.PCSCF {
			attrs = append(attrs, ike.CPRequest(ike.CPPCSCFIP6Address))
		}
	}
	if len(attrs) == 0 {
		return nil
	}
	return &ike.Config{CFGType: ike.CFGRequest, Attributes: attrs}
}

// readCPReply takes the addresses from a CFG_REPLY.
func (s *IKE) readCPReply(ps []ike.Payload) {
	cp := payloadOf[*ike.Config](ps)
	if cp == nil || cp.CFGType != ike.CFGReply {
		return
	}
	vips, dns, pcscf := s.vips(), s.dns(), s.pcscf()
	for _, a := range cp.Attributes {
		switch a.Type {
		case ike.CPInternalIP4Address:
			if ip, ok := a.Addr(); ok && ip.Is4() {
				vips = append(vips, ip)
			}
		case ike.CPInternalIP6Address:
			if p, ok := a.Prefix(); ok && p.Addr().Is6() {
				vips = append(vips, p.Addr())
			}
		case ike.CPInternalIP4DNS, ike.CPInternalIP6DNS:
			if ip, ok := a.Addr(); ok {
				dns = append(dns, ip)
			}
		case ike.CPPCSCFIP4Address, ike.CPPCSCFIP6Address:
			if ip, ok := a.Addr(); ok {
				pcscf = append(pcscf, ip)
			}
		}
	}
	s.setCP(vips, dns, pcscf)
}

// handleCP answers a CFG_REQUEST from the pool (responder, §2.19).
func (s *IKE) handleCP(ps []ike.Payload) (*ike.Config, *ike.Notify) {
	cp := payloadOf[*ike.Config](ps)
	if cp == nil || cp.CFGType != ike.CFGRequest {
		if s.cfg.Pool != nil && s.cfg.RequireCP {
			return nil, &ike.Notify{NotifyType: ike.FailedCPRequired}
		}
		return nil, nil
	}
	if s.cfg.Pool == nil {
		return nil, nil
	}
	want := map[ike.CPAttributeType]bool{}
	for _, a := range cp.Attributes {
		want[a.Type] = true
	}
	var attrs []ike.CPAttribute
	var leased []netip.Addr
	for _, fam := range []struct {
		addr, dns, pcscf ike.CPAttributeType
		v6               bool
	}{{ike.CPInternalIP4Address, ike.CPInternalIP4DNS, ike.CPPCSCFIP4Address, false},
		{ike.CPInternalIP6Address, ike.CPInternalIP6DNS, ike.CPPCSCFIP6Address, true}} {
		if !want[fam.addr] {
			continue
		}
		a, err := s.cfg.Pool.Lease(s.peerID.String(), fam.v6)
		if err != nil || !a.IsValid() || a.Is6() != fam.v6 {
			s.logger().Warn("no virtual IP for peer", "peer", s.peerID.String(), "ipv6", fam.v6, "error", err)
			for _, l := range leased {
				s.cfg.Pool.Release(s.peerID.String(), l)
			}
			return nil, &ike.Notify{NotifyType: ike.InternalAddressFailure}
		}
		leased = append(leased, a)
		if fam.v6 {
			attrs = append(attrs, ike.CPPrefix(fam.addr, netip.PrefixFrom(a, 128)))
		} else {
			attrs = append(attrs, ike.CPAddr(fam.addr, a))
		}
		for _, d := range s.cfg.DNS {
			if want[fam.dns] && d.Is6() == fam.v6 {
				attrs = append(attrs, ike.CPAddr(fam.dns, d))
			}
		}
		for _, p := range s.cfg.PCSCF {
			if want[fam.pcscf] && p.Is6() == fam.v6 {
				attrs = append(attrs, ike.CPAddr(fam.pcscf, p))
			}
		}
	}
	s.setCP(leased, nil, nil)
	return &ike.Config{CFGType: ike.CFGReply, Attributes: attrs}, nil
}
