package sa

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/transform"
)

// nonceLen is the length of our nonces: 32 octets, at least half the key
// of every PRF we offer (RFC 7296 §2.10).
const nonceLen = 32

// maxInitRetries bounds COOKIE and INVALID_KE_PAYLOAD round trips.
const maxInitRetries = 3

// natSum is the NAT_DETECTION_*_IP data: SHA-1(SPIi | SPIr | IP | Port)
// (RFC 7296 §2.23).
func natSum(spii, spir uint64, ap netip.AddrPort) [sha1.Size]byte {
	var b [8 + 8 + 16 + 2]byte
	binary.BigEndian.PutUint64(b[0:], spii)
	binary.BigEndian.PutUint64(b[8:], spir)
	n := 16
	if a := ap.Addr().Unmap(); a.Is4() {
		a4 := a.As4()
		n += copy(b[n:], a4[:])
	} else {
		a16 := a.As16()
		n += copy(b[n:], a16[:])
	}
	binary.BigEndian.PutUint16(b[n:], ap.Port())
	return sha1.Sum(b[:n+2])
}

// natNotifies are NAT_DETECTION_SOURCE_IP and _DESTINATION_IP for a
// message from src to dst (RFC 7296 §2.23), both hashes in one allocation.
func natNotifies(spii, spir uint64, src, dst netip.AddrPort) (*ike.Notify, *ike.Notify) {
	h := new([2 * sha1.Size]byte)
	*(*[sha1.Size]byte)(h[:sha1.Size]) = natSum(spii, spir, src)
	*(*[sha1.Size]byte)(h[sha1.Size:]) = natSum(spii, spir, dst)
	return &ike.Notify{NotifyType: ike.NATDetectionSourceIP, Data: h[:sha1.Size:sha1.Size]},
		&ike.Notify{NotifyType: ike.NATDetectionDestinationIP, Data: h[sha1.Size:]}
}

// natMatch compares the NAT_DETECTION_* notifies in ps with the hashes of
// the addresses the message came on (local: ours, remote: the peer's):
// natLocal when we are behind a NAT, natRemote when the peer is; seen is
// false without both kinds of notify (RFC 7296 §2.23).
func natMatch(ps []ike.Payload, spii, spir uint64, local, remote netip.AddrPort) (natLocal, natRemote, seen bool) {
	var srcSeen, dstSeen, srcOK, dstOK bool
	var peer, us [sha1.Size]byte
	for _, p := range ps {
		n, ok := p.(*ike.Notify)
		if !ok || (n.NotifyType != ike.NATDetectionSourceIP && n.NotifyType != ike.NATDetectionDestinationIP) {
			continue
		}
		if !srcSeen && !dstSeen {
			peer, us = natSum(spii, spir, remote), natSum(spii, spir, local)
		}
		if n.NotifyType == ike.NATDetectionSourceIP {
			srcSeen, srcOK = true, srcOK || bytes.Equal(n.Data, peer[:])
		} else {
			dstSeen, dstOK = true, dstOK || bytes.Equal(n.Data, us[:])
		}
	}
	if !srcSeen || !dstSeen {
		return false, false, false
	}
	return !dstOK, !srcOK, true
}

// NewInitiator starts an IKE SA as the original initiator. Its Output
// carries the IKE_SA_INIT request. On a configuration error the machine
// is returned closed, with an EventIKEDown saying why, and Done set.
func NewInitiator(cfg *Config, now time.Time, rng io.Reader) (*IKE, Output) {
	if cfg == nil {
		return NewInitiatorAt(cfg, netip.AddrPort{}, netip.AddrPort{}, now, rng)
	}
	return NewInitiatorAt(cfg, cfg.Local, cfg.Remote, now, rng)
}

// NewInitiatorAt is NewInitiator starting from local and remote instead
// of the Config's addresses: IKE SAs that share one Config (a connection's
// template) start from their own. Place sets the rest of what differs.
func NewInitiatorAt(cfg *Config, local, remote netip.AddrPort, now time.Time, rng io.Reader) (*IKE, Output) {
	s := newIKE(cfg, now, rng, Initiator)
	if err := cfg.check(true); err != nil {
		return failed(s, ReasonInternal, err.Error())
	}
	if !remote.IsValid() {
		return failed(s, ReasonInternal, (&ConfigError{Field: "remote", Reason: "an initiator needs the peer's address"}).Error())
	}
	c := cfg
	s.local, s.remote = local, remote
	s.startLPort, s.startRPort = local.Port(), remote.Port()
	if !s.local.IsValid() {
		unspec := netip.IPv4Unspecified()
		if remote.Addr().Unmap().Is6() {
			unspec = netip.IPv6Unspecified()
		}
		s.local = netip.AddrPortFrom(unspec, ikePort)
	}
	s.peerID = c.RemoteID
	s.defaultLocalID()
	spi, err := s.randomSPI()
	if err != nil {
		return failed(s, ReasonInternal, err.Error())
	}
	ni, err := s.randomBytes(nonceLen)
	if err != nil {
		return failed(s, ReasonInternal, err.Error())
	}
	dh, err := s.newDH(transform.OfferedGroup(c.IKEProposals))
	if err != nil {
		return failed(s, ReasonInternal, err.Error())
	}
	s.cur = &session{spii: spi, initiator: true}
	s.init = &initState{ni: ni, dh: dh, psk: c.Auth.PSK, trust: c.Auth.Trust}
	if err := s.sendInit(now); err != nil {
		return failed(s, ReasonInternal, err.Error())
	}
	o := s.out()
	o.Bind = append(o.Bind, spi)
	return s, s.finish(now)
}

func (s *IKE) defaultLocalID() {
	if s.cfg.LocalID.IsAny() && (s.cfg.Auth.PSK.Len() > 0 || len(s.cfg.Auth.Certs) == 0) {
		id := IdentityFromAddr(s.local.Addr())
		s.ownID = &id
	}
}

// localID is our identity (RFC 7296 §3.5): Config.LocalID, else our
// certificate's subject, else (ownID) our address when the IKE SA started.
func (s *IKE) localID() Identity {
	switch {
	case s.ownID != nil:
		return *s.ownID
	case s.cfg == nil:
		return AnyID
	case !s.cfg.LocalID.IsAny():
		return s.cfg.LocalID
	case len(s.cfg.Auth.Certs) > 0:
		return Identity{Type: ike.IDDERASN1DN, Data: s.cfg.Auth.Certs[0].RawSubject}
	}
	return AnyID
}

// sendInit sends (or, after COOKIE or INVALID_KE_PAYLOAD, sends again with
// Message ID 0) the IKE_SA_INIT request (RFC 7296 §1.2, §2.6).
func (s *IKE) sendInit(now time.Time) error {
	ss, in := s.cur, s.init
	var ps []ike.Payload
	if in.cookie != nil {
		// §2.6: COOKIE is the first payload of the retried request.
		ps = append(ps, &ike.Notify{NotifyType: ike.Cookie, Data: in.cookie})
	}
	nsrc, ndst := natNotifies(ss.spii, 0, s.local, s.remote)
	ps = append(ps,
		&ike.SA{Proposals: slices.Clone(s.cfg.IKEProposals)},
		&ike.KE{Group: in.dh.Group(), Data: in.dh.PublicValue()},
		&ike.Nonce{Data: in.ni}, nsrc, ndst,
	)
	ps = append(ps, s.initNotifies()...)
	m := ike.Message{Header: ss.header(ike.IKESAInit, 0, false), Payloads: ps}
	raw, err := m.Encode()
	if err != nil {
		return err
	}
	in.reqRaw = raw
	ss.req = nil
	r := &request{exch: ike.IKESAInit, onFail: func(now time.Time) { s.down(now, ReasonTimeout, 0, "no answer to IKE_SA_INIT") }}
	r.one[0] = raw
	r.packets = r.one[:]
	s.transmit(now, ss, r)
	ss.nextReq = 1
	return nil
}

// initNotifies are the capability notifies of IKE_SA_INIT.
func (s *IKE) initNotifies() []ike.Payload {
	var ps []ike.Payload
	if s.fragLocal() {
		ps = append(ps, &ike.Notify{NotifyType: ike.IKEv2FragmentationSupported})
	}
	// RFC 7427 §4: the hashes we can verify, sent whatever our own method.
	ps = append(ps, ike.NotifyHashAlgorithms(transform.SupportedHashes()...))
	return ps
}

// learnInitCaps reads the capability notifies of IKE_SA_INIT.
func (s *IKE) learnInitCaps(ps []ike.Payload) {
	for _, n := range payloadsOf[*ike.Notify](ps) {
		switch n.NotifyType {
		case ike.IKEv2FragmentationSupported:
			s.caps.set(capFragmentation)
		case ike.SignatureHashAlgorithms:
			if hs, ok := n.HashAlgorithms(); ok {
				s.caps.setHashes(hs)
			}
		}
	}
	for _, cr := range payloadsOf[*ike.CertReq](ps) {
		if cr.Encoding == ike.CertX509Signature && len(s.init.certReq) < 20*64 {
			s.init.certReq = append(s.init.certReq, cr.Data...)
		}
	}
}

// detectNAT compares the peer's NAT_DETECTION_* hashes with ours (§2.23).
// spir is the SPIr of the message's header (0 in the request).
func (s *IKE) detectNAT(ps []ike.Payload, spii, spir uint64, d Datagram) {
	if natLocal, natRemote, seen := natMatch(ps, spii, spir, d.Local, d.Remote); seen {
		s.natdSeen, s.natLocal, s.natRemote = true, natLocal, natRemote
	}
}

// deriveIKE computes the keys of ss (RFC 7296 §2.14) and clears gir.
func deriveIKE(ss *session, suite transform.Suite, skeyseed transform.Secret, ni, nr []byte) error {
	defer skeyseed.Zero()
	var spii, spir [8]byte
	binary.BigEndian.PutUint64(spii[:], ss.spii)
	binary.BigEndian.PutUint64(spir[:], ss.spir)
	keys, err := transform.DeriveIKEKeys(suite, skeyseed, ni, nr, spii[:], spir[:])
	if err != nil {
		return err
	}
	out, in, err := keys.Ciphers(ss.initiator)
	if err != nil {
		keys.Zero()
		return err
	}
	ss.suite, ss.keys, ss.out, ss.in = suite, keys, out, in
	return nil
}

// deriveRekeyed is deriveIKE for an IKE SA made by a rekey: it keeps the
// nonces, which settle a collision with the peer's rekey (§2.8.2). Other
// IKE SAs cannot collide and keep none.
func deriveRekeyed(ss *session, suite transform.Suite, skeyseed transform.Secret, ni, nr []byte) error {
	if err := deriveIKE(ss, suite, skeyseed, ni, nr); err != nil {
		return err
	}
	ss.nonces = newNonces(ni, nr)
	ss.authDone() // no IKE_AUTH on a rekeyed IKE SA (§2.18)
	return nil
}

func (s *IKE) handleInit(now time.Time, ss *session, msg *ike.Message, d Datagram) {
	h := msg.Header
	if !h.IsResponse() {
		// A retransmitted IKE_SA_INIT request gets the same response (§2.1).
		// Only while that response is cached: the IKE_SA_INIT state is
		// dropped when IKE_AUTH replaces it.
		if ss.initiator || ss.resp == nil || ss.resp.id != 0 || s.init == nil || s.init.reqRaw == nil ||
			!bytes.Equal(d.Data, s.init.reqRaw) {
			s.stats.drop(DropUnexpected)
			return
		}
		s.stats.resent()
		s.sendPackets(d.Local, d.Remote, ss.resp.packets())
		return
	}
	if !ss.initiator || ss != s.cur || s.state != StateConnecting || ss.req == nil ||
		ss.req.exch != ike.IKESAInit || h.MessageID != 0 {
		s.stats.drop(DropUnexpected)
		return
	}
	s.initResponse(now, ss, &inbound{hdr: h, payloads: msg.Payloads, dg: d})
}

func (s *IKE) initResponse(now time.Time, ss *session, m *inbound) {
	in := s.init
	if n := m.notify(ike.Cookie); n != nil {
		if len(n.Data) < 1 || len(n.Data) > 64 {
			s.stats.drop(DropInvalidPayloads)
			return
		}
		if in.cookieTries >= maxInitRetries {
			s.down(now, ReasonPeerError, ike.Cookie, "responder keeps asking for cookies")
			return
		}
		in.cookieTries++
		in.cookie = bytes.Clone(n.Data)
		s.stats.responses++
		if err := s.sendInit(now); err != nil {
			s.down(now, ReasonInternal, 0, err.Error())
		}
		return
	}
	if n := m.notify(ike.InvalidKEPayload); n != nil {
		g, ok := n.Group()
		if !ok {
			s.stats.drop(DropInvalidPayloads)
			return
		}
		s.stats.responses++
		// §1.2: retry only with a group we offered.
		if !transform.GroupOffered(s.cfg.IKEProposals, g) || g == in.dh.Group() || in.keTries >= maxInitRetries {
			s.down(now, ReasonInvalidKE, ike.InvalidKEPayload, "responder wants "+g.String())
			return
		}
		dh, err := s.newDH(g)
		if err != nil {
			s.down(now, ReasonInternal, 0, err.Error())
			return
		}
		in.dh.Destroy()
		in.dh = dh
		in.keTries++
		if err := s.sendInit(now); err != nil {
			s.down(now, ReasonInternal, 0, err.Error())
		}
		return
	}
	if n := m.errorNotify(); n != nil {
		// §2.21.1: unauthenticated; the exchange fails.
		r := ReasonPeerError
		if n.NotifyType == ike.NoProposalChosen {
			r = ReasonNoProposalChosen
		}
		s.down(now, r, n.NotifyType, "IKE_SA_INIT answered with "+n.NotifyType.String())
		return
	}
	sa, ke, nonce := payloadOf[*ike.SA](m.payloads), payloadOf[*ike.KE](m.payloads), payloadOf[*ike.Nonce](m.payloads)
	if sa == nil || ke == nil || nonce == nil || m.hdr.SPIr == 0 || len(sa.Proposals) != 1 ||
		len(nonce.Data) < ike.MinNonceLen || len(nonce.Data) > ike.MaxNonceLen {
		s.stats.drop(DropInvalidPayloads)
		return
	}
	ss.req = nil
	s.stats.responses++
	chosen := sa.Proposals[0]
	suite, err := transform.SuiteOf(chosen)
	if err == nil {
		// The answer must be one of our proposals, reduced (§2.7).
		_, err = transform.Select(s.cfg.IKEProposals, []ike.Proposal{chosen}, transform.SelectOptions{})
	}
	if err != nil {
		s.down(now, ReasonNoProposalChosen, 0, "responder chose a proposal we did not offer")
		return
	}
	if ke.Group != suite.Group || ke.Group != in.dh.Group() {
		s.down(now, ReasonProtocolError, 0, "KEr group "+ke.Group.String()+" does not match")
		return
	}
	gir, err := in.dh.SharedSecret(ke.Data)
	if err != nil {
		s.down(now, ReasonProtocolError, 0, "KEr: "+err.Error())
		return
	}
	in.dh.Destroy()
	in.nr = bytes.Clone(nonce.Data)
	in.respRaw = bytes.Clone(m.dg.Data)
	ss.spir = m.hdr.SPIr
	prf, _ := transform.NewPRF(suite.PRF)
	skeyseed := transform.SKEYSEED(prf, in.ni, in.nr, gir)
	gir.Zero()
	if err := deriveIKE(ss, suite, skeyseed, in.ni, in.nr); err != nil {
		s.down(now, ReasonInternal, 0, err.Error())
		return
	}
	s.detectNAT(m.payloads, ss.spii, ss.spir, m.dg)
	s.learnInitCaps(m.payloads)
	// §2.23: float to 4500 when a NAT is detected; RFC 4555 §3.3 and
	// strongSwan (P1) also when MOBIKE may follow.
	if (s.natLocal || s.natRemote || (s.cfg.MOBIKE && s.natdSeen)) && s.remote.Port() == ikePort {
		s.remote = netip.AddrPortFrom(s.remote.Addr(), natTPort)
		if s.local.Port() == ikePort {
			s.local = netip.AddrPortFrom(s.local.Addr(), natTPort)
		}
	}
	s.state = StateAuthenticating
	s.sendAuth(now)
}

// NewResponder creates the responder's IKE SA from an IKE_SA_INIT request
// (msg, or decoded from req.Data when nil) that AcceptInit let through.
// The Output carries the IKE_SA_INIT response. If the request cannot be
// accepted the Output carries the error notify (RFC 7296 §2.21.1) and the
// machine is returned closed with Done.
func NewResponder(cfg *Config, now time.Time, rng io.Reader, req Datagram, msg *ike.Message) (*IKE, Output) {
	s := newIKE(cfg, now, rng, Responder)
	c := cfg
	err := cfg.check(false)
	if err != nil {
		return failed(s, ReasonInternal, err.Error())
	}
	if msg == nil {
		if msg, err = ike.Decode(req.Data); err != nil {
			s.stats.drop(DropMalformed)
			return failed(s, ReasonProtocolError, err.Error())
		}
	}
	h := msg.Header
	if h.Exchange != ike.IKESAInit || h.IsResponse() || !h.IsInitiator() || h.SPIi == 0 || h.SPIr != 0 || h.MessageID != 0 {
		s.stats.drop(DropUnexpected)
		return failed(s, ReasonProtocolError, "not a first IKE_SA_INIT request")
	}
	s.local, s.remote = req.Local, req.Remote
	s.peerID = c.RemoteID
	s.defaultLocalID()
	reply := func(n *ike.Notify) {
		m := ike.Message{Header: ike.Header{SPIi: h.SPIi, Exchange: ike.IKESAInit, Flags: ike.FlagResponse},
			Payloads: []ike.Payload{n}}
		if b, err := m.Encode(); err == nil {
			s.sendPackets(req.Local, req.Remote, [][]byte{b})
		}
	}
	sa, ke, nonce := payloadOf[*ike.SA](msg.Payloads), payloadOf[*ike.KE](msg.Payloads), payloadOf[*ike.Nonce](msg.Payloads)
	if sa == nil || ke == nil || nonce == nil || len(nonce.Data) < ike.MinNonceLen || len(nonce.Data) > ike.MaxNonceLen {
		reply(&ike.Notify{NotifyType: ike.InvalidSyntax})
		return failed(s, ReasonProtocolError, "IKE_SA_INIT without SA, KE or a valid nonce")
	}
	chosen, err := transform.Select(c.IKEProposals, sa.Proposals, transform.SelectOptions{KEGroup: ke.Group})
	if err != nil {
		reply(&ike.Notify{NotifyType: ike.NoProposalChosen})
		return failed(s, ReasonNoProposalChosen, "offered "+transform.FormatProposals(sa.Proposals))
	}
	if err := transform.CheckKE(chosen, ke.Group); err != nil {
		// §1.2: tell the initiator which group we want.
		var te *transform.Error
		if errors.As(err, &te) {
			reply(ike.NotifyGroup(te.Group))
		}
		return failed(s, ReasonInvalidKE, err.Error())
	}
	suite, err := transform.SuiteOf(chosen)
	if err != nil {
		reply(&ike.Notify{NotifyType: ike.NoProposalChosen})
		return failed(s, ReasonNoProposalChosen, err.Error())
	}
	spir, err := s.randomSPI()
	if err != nil {
		return failed(s, ReasonInternal, err.Error())
	}
	nr, err := s.randomBytes(nonceLen)
	if err != nil {
		return failed(s, ReasonInternal, err.Error())
	}
	dh, err := s.newInitResponderDH(suite.Group)
	if err != nil {
		return failed(s, ReasonInternal, err.Error())
	}
	s.init = &initState{ni: bytes.Clone(nonce.Data), nr: nr, dh: dh, reqRaw: bytes.Clone(req.Data), psk: c.Auth.PSK, trust: c.Auth.Trust}
	gir, err := dh.SharedSecret(ke.Data)
	if err != nil {
		reply(&ike.Notify{NotifyType: ike.InvalidSyntax})
		return failed(s, ReasonProtocolError, "KEi: "+err.Error())
	}
	ss := &session{spii: h.SPIi, spir: spir}
	s.cur = ss
	prf, _ := transform.NewPRF(suite.PRF)
	skeyseed := transform.SKEYSEED(prf, s.init.ni, nr, gir)
	gir.Zero()
	if err := deriveIKE(ss, suite, skeyseed, s.init.ni, nr); err != nil {
		return failed(s, ReasonInternal, err.Error())
	}
	s.detectNAT(msg.Payloads, h.SPIi, 0, req)
	s.learnInitCaps(msg.Payloads)
	nsrc, ndst := natNotifies(h.SPIi, spir, req.Local, req.Remote)
	ps := []ike.Payload{
		&ike.SA{Proposals: []ike.Proposal{chosen}},
		&ike.KE{Group: suite.Group, Data: dh.PublicValue()},
		&ike.Nonce{Data: nr},
		nsrc, ndst,
	}
	if s.init.trust != nil {
		ps = append(ps, &ike.CertReq{Encoding: ike.CertX509Signature, Data: s.init.trust.CertReq()})
	}
	ps = append(ps, s.initNotifies()...)
	m := ike.Message{Header: ss.header(ike.IKESAInit, 0, true), Payloads: ps}
	raw, err := m.Encode()
	if err != nil {
		return failed(s, ReasonInternal, err.Error())
	}
	dh.Destroy()
	s.init.respRaw = raw
	ss.resp = &cachedResp{id: 0}
	ss.resp.one[0] = raw
	ss.expect = 1
	s.stats.requests++
	s.sendPackets(req.Local, req.Remote, ss.resp.packets())
	s.init.halfOpenAt = s.stamp(now.Add(c.halfOpenTimeout()))
	o := s.out()
	o.Bind = append(o.Bind, spir)
	return s, s.finish(now)
}
