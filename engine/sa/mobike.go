package sa

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/ike"
)

// MOBIKE (RFC 4555): address announcements, path tests, make-before-break
// moves of the IKE SA and all its Child SAs, and recovery when the path in
// use stops answering.
//
// A move (CmdMigrate) is a path test on the new pair (§3.10), then
// UPDATE_SA_ADDRESSES with COOKIE2 and NAT-D on it (§3.5, §3.7); only its
// answer moves the IKE SA and the Child SAs. Requests that must go out on
// another pair than the IKE SA's are "pinned" to it.

// Bounds and schedule of MOBIKE.
const (
	maxAddrs = 16 // addresses kept from one announcement
	maxPairs = 16 // candidate pairs tried in a recovery
	// pathTestTries is how many retransmissions a path test gets before the
	// move fails: the test is then resent on the path in use, so its
	// Message ID is not lost.
	pathTestTries = 2
	// recoverAfter: once a request on the path in use has been
	// retransmitted this often, its retransmissions also go to every other
	// candidate pair (§3.5: "several retransmissions without an answer").
	recoverAfter = 2
	cookie2Len   = 16 // strongSwan's length; 8..64 allowed (§4.2.5)
)

// mobike is the MOBIKE and path state of an IKE SA.
type mobike struct {
	peerAddrs []netip.Addr // the peer's announced additional addresses
	addrs     []netip.Addr // ours from CmdAnnounce (announced = true)
	announced bool
	rtt       time.Duration
	sent      *request // the request last (re)transmitted on s.cur (at its sentAt)
	pins      []*pin
	mig       *migration
	// recovering is the request whose retransmissions go to every pair.
	recovering *request
	// The last UPDATE_SA_ADDRESSES processed (§3.5: ignore older ones).
	updSession *session
	updID      uint32
}

// mobState returns the MOBIKE state, made on first use.
func (s *IKE) mobState() *mobike {
	if s.mob == nil {
		s.mob = new(mobike)
	}
	return s.mob
}

// dropMob forgets the MOBIKE state once nothing is left in it.
func (s *IKE) dropMob() {
	if m := s.mob; m != nil && m.peerAddrs == nil && m.addrs == nil && !m.announced && len(m.pins) == 0 &&
		m.mig == nil && m.recovering == nil && m.updSession == nil {
		s.mob = nil
	}
}

// mig is the move in progress, if any.
func (s *IKE) mig() *migration {
	if s.mob == nil {
		return nil
	}
	return s.mob.mig
}

// clearMig ends the move in progress.
func (s *IKE) clearMig() {
	if s.mob != nil {
		s.mob.mig = nil
	}
}

// recovering is the request whose retransmissions go to every pair.
func (s *IKE) recovering() *request {
	if s.mob == nil {
		return nil
	}
	return s.mob.recovering
}

// peerAddrs are the peer's announced additional addresses.
func (s *IKE) peerAddrs() []netip.Addr {
	if s.mob == nil {
		return nil
	}
	return s.mob.peerAddrs
}

// announced reports whether CmdAnnounce set our addresses (mob.addrs).
func (s *IKE) announced() bool { return s.mob != nil && s.mob.announced }

// pin sends a request on its own address pair, not the IKE SA's.
type pin struct {
	r             *request
	local, remote netip.AddrPort
	test          bool // a path test: resent on the path in use when it fails
	natd          bool // NAT-D payloads to compute for the pair and session
	sentAt        time.Time
	fail          func(now time.Time)
}

// migration is a move in progress.
type migration struct {
	local, remote netip.AddrPort
	reason        Reason
	req           *request // the path test or the UPDATE in flight
	update        bool     // req is the UPDATE_SA_ADDRESSES
	cookie        []byte
	noNATs        bool // the UPDATE carries NO_NATS_ALLOWED
	natRetried    bool
}

type tickMark struct {
	r     *request
	tries int
}

func (s *IKE) mobikeOn() bool { return s.cfg != nil && s.cfg.MOBIKE && s.caps.has(capMOBIKE) }

// canMove: only the MOBIKE initiator moves SAs (RFC 4555 §1.3, §3.5).
func (s *IKE) canMove() bool {
	return s.mobikeOn() && s.origRole == Initiator && s.state == StateEstablished
}

// ourAddrs are our additional addresses: the last CmdAnnounce, else the
// configured ones.
func (s *IKE) ourAddrs() []netip.Addr {
	if s.announced() {
		return slices.Clone(s.mob.addrs)
	}
	if s.cfg == nil {
		return nil
	}
	return slices.Clone(s.cfg.AdditionalAddrs)
}

// Placement is what differs between IKE SAs sharing one Config.
type Placement struct {
	// Path is the data-plane path tag of the Child SAs the IKE SA creates
	// (as Config.Path, CmdSetPath).
	Path uint32
	// Addrs are our additional addresses, announced in IKE_AUTH when
	// MOBIKE is on (RFC 4555 §3.4; as Config.AdditionalAddrs). Not copied.
	Addrs []netip.Addr
	// NoInitialContact omits INITIAL_CONTACT (as Config.NoInitialContact).
	NoInitialContact bool
}

// Place sets what differs between IKE SAs sharing one Config (a gateway's
// responders, a connection's IKE SAs). It sends nothing; call it before
// the machine's second input.
func (s *IKE) Place(p Placement) {
	s.path = p.Path
	s.noIC = s.noIC || p.NoInitialContact
	if len(p.Addrs) > 0 {
		m := s.mobState()
		m.addrs, m.announced = p.Addrs, true
	}
}

// ownAddrs are our additional addresses as announced now (nil: none).
func (s *IKE) ownAddrs() []netip.Addr {
	a := s.localAddrs()
	if len(a) == 0 {
		return nil
	}
	return a
}

// mobikeCommand handles the MOBIKE and clone commands; false for others.
func (s *IKE) mobikeCommand(now time.Time, c Command) bool {
	switch c.Kind {
	case CmdAnnounce:
		s.announce(now, c.Addrs, c.Local, c.Remote)
	case CmdMigrate:
		s.migrate(now, c.Local, c.Remote)
	case CmdProbe:
		s.probe(now, c.Local, c.Remote)
	case CmdClone:
		s.clone(now)
	case CmdSetPath:
		s.path = c.Path
	default:
		return false
	}
	return true
}

// addrNotifies lists our other addresses, or NO_ADDITIONAL_ADDRESSES
// (RFC 4555 §3.4: not the one in use).
func (s *IKE) addrNotifies() []ike.Payload {
	var ps []ike.Payload
	var seen []netip.Addr
	for _, a := range s.ourAddrs() {
		a = a.Unmap()
		if !a.IsValid() || a.IsUnspecified() || a == s.local.Addr().Unmap() || slices.Contains(seen, a) || len(seen) >= maxAddrs {
			continue
		}
		seen = append(seen, a)
		if a.Is4() {
			ps = append(ps, &ike.Notify{NotifyType: ike.AdditionalIP4Address, Data: a.AsSlice()})
		} else {
			ps = append(ps, &ike.Notify{NotifyType: ike.AdditionalIP6Address, Data: a.AsSlice()})
		}
	}
	if len(ps) == 0 {
		ps = append(ps, &ike.Notify{NotifyType: ike.NoAdditionalAddresses})
	}
	return ps
}

// authAddrNotifies are the address notifies of IKE_AUTH: the responder
// sends them only to an initiator that announced MOBIKE (§3.4).
func (s *IKE) authAddrNotifies() []ike.Payload {
	if !s.cfg.MOBIKE || (s.cur != nil && !s.cur.initiator && !s.caps.has(capMOBIKE)) {
		return nil
	}
	return s.addrNotifies()
}

// learnPeerAddrs records an address announcement; each list replaces the
// previous one (RFC 4555 §3.6). The event carries the pair it came on: a
// pair other than the one in use tells that the peer could not use it.
func (s *IKE) learnPeerAddrs(ps []ike.Payload, d Datagram) {
	if !s.cfg.MOBIKE {
		return
	}
	var addrs []netip.Addr
	found := false
	for _, n := range payloadsOf[*ike.Notify](ps) {
		switch n.NotifyType {
		case ike.NoAdditionalAddresses:
			found = true
		case ike.AdditionalIP4Address, ike.AdditionalIP6Address:
			found = true
			if a, ok := n.Addr(); ok && !slices.Contains(addrs, a) && len(addrs) < maxAddrs && !a.IsUnspecified() {
				addrs = append(addrs, a)
			}
		}
	}
	if !found {
		return
	}
	if addrs != nil || s.mob != nil {
		s.mobState().peerAddrs = addrs
	}
	s.emit(Event{Kind: EventPeerAddresses, PeerAddrs: slices.Clone(addrs), PeerID: s.peerID, Local: d.Local, Remote: d.Remote})
}

// announce sends our new address set, in either role (RFC 4555 §3.6). A
// valid (local, remote) pins it to that pair: our address in use is gone,
// and "the responder uses the additional address list received from the
// initiator, and the list of its own addresses" to pick where to send it
// (§3.6). The answer moves nothing; the peer, if it is the MOBIKE
// initiator, sees where the announcement came from and decides.
func (s *IKE) announce(now time.Time, addrs []netip.Addr, local, remote netip.AddrPort) {
	m := s.mobState()
	m.addrs, m.announced = slices.Clone(addrs), true
	if s.state != StateEstablished || !s.mobikeOn() {
		return // kept for IKE_AUTH and recovery; nothing to tell
	}
	r := &request{exch: ike.Informational, payloads: s.addrNotifies(),
		onResp: func(time.Time, *inbound) {},
		onFail: func(now time.Time) { s.down(now, ReasonDPDTimeout, 0, "no answer to an address announcement") }}
	if !validPair(local, remote) || samePair(local, remote, s.local, s.remote) {
		s.request(now, s.cur, r)
		return
	}
	r.onResp = func(time.Time, *inbound) { s.unpin(r) }
	s.sendPinned(now, r, &pin{local: local, remote: remote})
}

// natdPayloads are NAT_DETECTION_SOURCE_IP and _DESTINATION_IP for a
// message of ss sent from local to remote (RFC 7296 §2.23).
func natdPayloads(ss *session, local, remote netip.AddrPort) []ike.Payload {
	src, dst := natNotifies(ss.spii, ss.spir, local, remote)
	return []ike.Payload{src, dst}
}

// natCheck compares the NAT-D hashes of a message with the addresses it
// came on: natLocal when we are behind a NAT, natRemote when the peer is.
// The hashes cover the SPIs of the IKE SA that carried it (its header).
func natCheck(m *inbound) (natLocal, natRemote, seen bool) {
	return natMatch(m.payloads, m.hdr.SPIi, m.hdr.SPIr, m.dg.Local, m.dg.Remote)
}

// noNATsData is the NO_NATS_ALLOWED data: source and destination
// address, then source and destination port (RFC 4555 §4.2.6).
func noNATsData(src, dst netip.AddrPort) []byte {
	b := append(src.Addr().Unmap().AsSlice(), dst.Addr().Unmap().AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}

func parseNoNATs(b []byte) (src, dst netip.AddrPort, ok bool) {
	var n int
	switch len(b) {
	case 12:
		n = 4
	case 36:
		n = 16
	default:
		return src, dst, false
	}
	sa, _ := netip.AddrFromSlice(b[:n])
	da, _ := netip.AddrFromSlice(b[n : 2*n])
	return netip.AddrPortFrom(sa, binary.BigEndian.Uint16(b[2*n:])), netip.AddrPortFrom(da, binary.BigEndian.Uint16(b[2*n+2:])), true
}

func samePair(l1, r1, l2, r2 netip.AddrPort) bool {
	return l1.Addr().Unmap() == l2.Addr().Unmap() && l1.Port() == l2.Port() &&
		r1.Addr().Unmap() == r2.Addr().Unmap() && r1.Port() == r2.Port()
}

func validPair(local, remote netip.AddrPort) bool {
	return local.IsValid() && remote.IsValid() && !remote.Addr().IsUnspecified() &&
		local.Addr().Unmap().Is4() == remote.Addr().Unmap().Is4()
}

func (s *IKE) pinOf(r *request) *pin {
	if r == nil || s.mob == nil {
		return nil
	}
	for _, p := range s.mob.pins {
		if p.r == r {
			return p
		}
	}
	return nil
}

func (s *IKE) unpin(r *request) {
	if s.mob != nil {
		s.mob.pins = slices.DeleteFunc(s.mob.pins, func(p *pin) bool { return p.r == r })
	}
}

// pathOf is the address pair a request goes out on when first sent: its
// pin's, or the IKE SA's. NAT-D of a pinned request is computed here, for
// the session that carries it.
func (s *IKE) pathOf(now time.Time, ss *session, r *request) (netip.AddrPort, netip.AddrPort) {
	if ss == s.cur {
		s.sent, r.sentAt = r, now
	}
	p := s.pinOf(r)
	if p == nil {
		return s.local, s.remote
	}
	p.sentAt = now
	if p.natd && r.packets == nil {
		ps := slices.DeleteFunc(slices.Clone(r.payloads), func(x ike.Payload) bool {
			n, ok := x.(*ike.Notify)
			return ok && (n.NotifyType == ike.NATDetectionSourceIP || n.NotifyType == ike.NATDetectionDestinationIP)
		})
		r.payloads = append(ps, natdPayloads(ss, p.local, p.remote)...)
	}
	return p.local, p.remote
}

// sendPinned queues r on the current IKE SA, pinned to a pair.
func (s *IKE) sendPinned(now time.Time, r *request, p *pin) bool {
	p.r = r
	m := s.mobState()
	m.pins = append(m.pins, p)
	if !s.request(now, s.cur, r) {
		s.unpin(r)
		return false
	}
	return true
}

// pathTestBudget is how long a path test waits: the first pathTestTries
// retransmissions of the schedule.
func (s *IKE) pathTestBudget() time.Duration {
	var d time.Duration
	for k := 0; k <= pathTestTries; k++ {
		d += s.timeout(k)
	}
	return d
}

// pathTest sends an INFORMATIONAL with NAT-D on a pair (§3.10).
func (s *IKE) pathTest(now time.Time, local, remote netip.AddrPort, onResp func(now time.Time, r *request, m *inbound), fail func(now time.Time)) (*request, bool) {
	r := &request{exch: ike.Informational, payloads: natdPayloads(s.cur, local, remote), limit: s.pathTestBudget()}
	r.onResp = func(now time.Time, m *inbound) {
		s.unpin(r)
		onResp(now, r, m)
	}
	// The test is resent on the path in use before its limit (beforeTick):
	// reaching this means that was not possible either.
	r.onFail = func(now time.Time) {
		s.unpin(r)
		fail(now)
		s.down(now, ReasonDPDTimeout, 0, "no answer to a path test")
	}
	return r, s.sendPinned(now, r, &pin{local: local, remote: remote, test: true, natd: true, fail: fail})
}

// probe answers CmdProbe with EventProbe; nothing moves.
func (s *IKE) probe(now time.Time, local, remote netip.AddrPort) {
	ev := Event{Kind: EventProbe, Local: local, Remote: remote}
	switch {
	case s.state != StateEstablished:
		ev.Reason, ev.Detail = ReasonTemporaryFailure, "the IKE SA is "+s.state.String()
	case !s.mobikeOn():
		ev.Reason, ev.Detail = ReasonUnsupported, "MOBIKE is not in use"
	case !validPair(local, remote):
		ev.Reason, ev.Detail = ReasonInternal, "invalid address pair"
	default:
		_, ok := s.pathTest(now, local, remote, func(now time.Time, r *request, m *inbound) {
			p := ev
			p.OK = true
			p.RTT = s.rtt()
			s.emit(p)
		}, func(time.Time) {
			p := ev
			p.Reason, p.Detail = ReasonTimeout, "path test unanswered"
			s.emit(p)
		})
		if ok {
			return
		}
		ev.Reason, ev.Detail = ReasonInternal, "too many requests queued"
	}
	s.emit(ev)
}

func (s *IKE) migrateFailed(local, remote netip.AddrPort, r Reason, n ike.NotifyType, detail string) {
	s.logger().Warn("MOBIKE move failed", "local", local.String(), "remote", remote.String(), "reason", r.String(), "detail", detail)
	s.emit(Event{Kind: EventMigrateFailed, Reason: r, Notify: n, Detail: detail, Local: local, Remote: remote,
		OldLocal: s.local, OldRemote: s.remote})
}

// migrate starts a make-before-break move to (local, remote) (§3.5).
func (s *IKE) migrate(now time.Time, local, remote netip.AddrPort) {
	switch {
	case s.state != StateEstablished:
		s.migrateFailed(local, remote, ReasonTemporaryFailure, 0, "the IKE SA is "+s.state.String())
		return
	case !s.mobikeOn():
		s.migrateFailed(local, remote, ReasonUnsupported, 0, "MOBIKE is not in use")
		return
	case s.origRole != Initiator:
		s.migrateFailed(local, remote, ReasonNotMOBIKEInitiator, 0, "only the MOBIKE initiator moves the IKE SA (RFC 4555 §1.3)")
		return
	case !validPair(local, remote):
		s.migrateFailed(local, remote, ReasonInternal, 0, "invalid address pair")
		return
	}
	mg := &migration{local: local, remote: remote, reason: ReasonAddressChange}
	if old := s.mig(); old != nil && !old.update {
		// §3.5 step 6: the addresses changed again; an unanswered path test
		// now tests the new pair, its old answer can no longer come.
		if p := s.pinOf(old.req); p != nil {
			p.local, p.remote = local, remote
			r := old.req
			mg.req = r
			s.mobState().mig = mg
			if r.packets != nil && s.cur.req == r {
				r.local, r.remote = local, remote
				r.tries, r.giveUpAt = 0, now.Add(r.limit)
				r.deadline = s.retryAt(now, r)
				p.sentAt = now
				s.sendPackets(local, remote, r.packets)
			}
			return
		}
	}
	s.mobState().mig = mg
	s.startPathTest(now, mg)
}

func (s *IKE) startPathTest(now time.Time, mg *migration) {
	var r *request
	r, ok := s.pathTest(now, mg.local, mg.remote, s.pathTestAnswered, func(time.Time) {
		// The migration that owns r now (it may have been retargeted).
		if cur := s.mig(); cur != nil && cur.req == r {
			s.clearMig()
			s.migrateFailed(cur.local, cur.remote, ReasonTimeout, 0, "path test unanswered")
		}
	})
	if !ok {
		s.clearMig()
		s.migrateFailed(mg.local, mg.remote, ReasonInternal, 0, "too many requests queued")
		return
	}
	mg.req = r
}

func (s *IKE) pathTestAnswered(now time.Time, r *request, m *inbound) {
	mg := s.mig()
	if mg == nil || mg.req != r || s.state != StateEstablished {
		return // superseded (§3.5 step 6)
	}
	if !samePair(m.dg.Local, m.dg.Remote, mg.local, mg.remote) {
		// A late answer on another pair proves nothing about this one.
		s.startPathTest(now, mg)
		return
	}
	natL, natR, seen := natCheck(m)
	pathNAT := seen && (natL || natR)
	if pathNAT && s.cfg.NoNATsAllowed {
		s.clearMig()
		s.migrateFailed(mg.local, mg.remote, ReasonUnsupported, ike.UnexpectedNATDetected, "a NAT on the new path and NATs are not allowed (RFC 4555 §3.9)")
		return
	}
	s.sendUpdate(now, mg, !pathNAT && !s.natLocal && !s.natRemote)
}

// sendUpdate sends UPDATE_SA_ADDRESSES on the migration's pair (§3.5).
// NO_NATS_ALLOWED goes with it when NAT-T is not in use (§3.9).
func (s *IKE) sendUpdate(now time.Time, mg *migration, noNATs bool) {
	cookie, err := s.randomBytes(cookie2Len)
	if err != nil {
		s.clearMig()
		s.migrateFailed(mg.local, mg.remote, ReasonInternal, 0, err.Error())
		return
	}
	ps := []ike.Payload{&ike.Notify{NotifyType: ike.UpdateSAAddresses}}
	ps = append(ps, natdPayloads(s.cur, mg.local, mg.remote)...)
	if noNATs {
		ps = append(ps, &ike.Notify{NotifyType: ike.NoNATsAllowed, Data: noNATsData(mg.local, mg.remote)})
	}
	ps = append(ps, &ike.Notify{NotifyType: ike.Cookie2, Data: cookie})
	r := &request{exch: ike.Informational, payloads: ps}
	r.onResp = func(now time.Time, m *inbound) {
		s.unpin(r)
		s.updateAnswered(now, mg, r, m, cookie)
	}
	r.onFail = func(now time.Time) {
		s.unpin(r)
		if s.mig() == mg {
			s.clearMig()
			s.migrateFailed(mg.local, mg.remote, ReasonTimeout, 0, "no answer to UPDATE_SA_ADDRESSES")
		}
		s.down(now, ReasonDPDTimeout, 0, "no answer to UPDATE_SA_ADDRESSES")
	}
	mg.req, mg.update, mg.cookie, mg.noNATs = r, true, cookie, noNATs
	if !s.sendPinned(now, r, &pin{local: mg.local, remote: mg.remote, natd: true}) {
		s.clearMig()
		s.migrateFailed(mg.local, mg.remote, ReasonInternal, 0, "too many requests queued")
	}
}

func (s *IKE) updateAnswered(now time.Time, mg *migration, r *request, m *inbound, cookie []byte) {
	// §3.7: the COOKIE2 must come back unchanged, or the IKE SA closes.
	if n := m.notify(ike.Cookie2); n == nil || !bytes.Equal(n.Data, cookie) {
		if s.mig() != nil && s.mig().req == r {
			s.clearMig()
		}
		s.down(now, ReasonProtocolError, ike.Cookie2, "COOKIE2 not echoed in the UPDATE_SA_ADDRESSES answer (RFC 4555 §3.7)")
		return
	}
	if s.state != StateEstablished {
		return
	}
	if cur := s.mig(); cur == nil || cur.req != r {
		// Superseded (§3.5 step 6): the newer move goes on, but the peer
		// did take these addresses, so ours follow until it is done.
		if m.errorNotify() == nil {
			if natL, natR, seen := natCheck(m); seen {
				s.natLocal, s.natRemote, s.natdSeen = natL, natR, true
			}
			s.moveTo(now, mg.local, mg.remote, mg.reason)
		}
		return
	}
	s.clearMig()
	if n := m.errorNotify(); n != nil {
		if n.NotifyType == ike.UnexpectedNATDetected && mg.noNATs && !mg.natRetried && !s.cfg.NoNATsAllowed {
			// §3.9: a NAT after all; again without NO_NATS_ALLOWED, so the
			// peer uses NAT-D and UDP encapsulation.
			mg.natRetried = true
			s.mobState().mig = mg
			s.sendUpdate(now, mg, false)
			return
		}
		s.migrateFailed(mg.local, mg.remote, ReasonPeerError, n.NotifyType, "peer answered "+n.NotifyType.String())
		return
	}
	if natL, natR, seen := natCheck(m); seen {
		s.natLocal, s.natRemote, s.natdSeen = natL, natR, true
	}
	s.moveTo(now, mg.local, mg.remote, mg.reason)
}

// moveTo switches the IKE SA and every Child SA to a new pair; UDP
// encapsulation follows NAT detection (RFC 4555 §3.3, §3.5).
func (s *IKE) moveTo(now time.Time, local, remote netip.AddrPort, why Reason) {
	oldL, oldR := s.local, s.remote
	s.local, s.remote = local, remote
	encap := s.natLocal || s.natRemote
	for _, c := range s.childList() {
		c.encap = encap
		u := dataplane.AddrUpdate{Local: local, Remote: remote, Encap: encap}
		if !c.inGone {
			s.op(DataplaneOp{Kind: OpUpdateSA, SPI: c.inSPI, Dir: dataplane.In, Update: u})
		}
		if !c.outGone {
			s.op(DataplaneOp{Kind: OpUpdateSA, SPI: c.outSPI, Dir: dataplane.Out, Update: u})
		}
	}
	// §3.5 step 4: outstanding requests are retransmitted on the new path.
	for _, ss := range s.sessions() {
		if r := ss.req; r != nil && s.pinOf(r) == nil {
			r.local, r.remote = local, remote
		}
	}
	if s.mob != nil {
		s.mob.recovering = nil
	}
	s.logger().Debug("IKE SA moved", "from_local", oldL.String(), "from_remote", oldR.String(),
		"local", local.String(), "remote", remote.String(), "reason", why.String(), "encap", encap)
	s.emit(Event{Kind: EventMigrated, Reason: why, Local: local, Remote: remote, OldLocal: oldL, OldRemote: oldR})
}

// mobikeInformational processes the MOBIKE notifies of an INFORMATIONAL
// request and returns what the answer carries.
func (s *IKE) mobikeInformational(now time.Time, ss *session, m *inbound) []ike.Payload {
	var ps []ike.Payload
	if ss == s.cur && s.state == StateEstablished && s.cfg.MOBIKE {
		s.learnPeerAddrs(m.payloads, m.dg)
		if m.notify(ike.UpdateSAAddresses) != nil {
			if n := s.peerUpdate(now, ss, m); n != nil {
				ps = append(ps, n)
			}
		}
	}
	if m.notify(ike.NATDetectionSourceIP) != nil {
		// §3.8: NAT-D in any INFORMATIONAL is answered with ours.
		ps = append(ps, natdPayloads(ss, m.dg.Local, m.dg.Remote)...)
	}
	if n := m.notify(ike.Cookie2); n != nil {
		// §3.7: copied unchanged into the answer.
		ps = append(ps, &ike.Notify{NotifyType: ike.Cookie2, Data: bytes.Clone(n.Data)})
	}
	return ps
}

// peerUpdate is the MOBIKE responder's UPDATE_SA_ADDRESSES (RFC 4555
// §3.5); it returns the error notify of a refusal.
func (s *IKE) peerUpdate(now time.Time, ss *session, m *inbound) *ike.Notify {
	if !s.caps.has(capMOBIKE) || s.origRole != Responder {
		// §1.3: only the MOBIKE initiator moves the SAs.
		s.stats.drop(DropUnexpected)
		return nil
	}
	// 1. Ignore an update older than one already processed.
	if mob := s.mob; mob != nil && mob.updSession == ss && m.hdr.MessageID < mob.updID {
		return nil
	}
	mob := s.mobState()
	mob.updSession, mob.updID = ss, m.hdr.MessageID
	// 2. NO_NATS_ALLOWED: the addresses the peer sent from and to must be
	// those we see (§3.9).
	if n := m.notify(ike.NoNATsAllowed); n != nil {
		src, dst, ok := parseNoNATs(n.Data)
		if !ok {
			return &ike.Notify{NotifyType: ike.InvalidSyntax}
		}
		if !samePair(src, dst, m.dg.Remote, m.dg.Local) {
			s.logger().Warn("UPDATE_SA_ADDRESSES through a NAT refused", "sent_from", src.String(), "seen_from", m.dg.Remote.String())
			return &ike.Notify{NotifyType: ike.UnexpectedNATDetected}
		}
	}
	// 3. Local policy on the new pair.
	if f := s.cfg.AcceptAddress; f != nil && !f(m.dg.Local, m.dg.Remote) {
		s.logger().Warn("UPDATE_SA_ADDRESSES to an unacceptable pair", "local", m.dg.Local.String(), "remote", m.dg.Remote.String())
		return &ike.Notify{NotifyType: ike.UnacceptableAddresses}
	}
	// 4, 5. The new addresses come from the IP header; NAT-T is redone.
	natL, natR, seen := natCheck(m)
	if !seen {
		natL, natR = false, false
	}
	changed := natL != s.natLocal || natR != s.natRemote
	s.natLocal, s.natRemote = natL, natR
	if seen {
		s.natdSeen = true
	}
	if changed || !samePair(m.dg.Local, m.dg.Remote, s.local, s.remote) {
		s.moveTo(now, m.dg.Local, m.dg.Remote, ReasonPeerUpdate)
	}
	return nil
}

// beforeTick resends a path test that ran out of time on the path in use
// (so its Message ID is not lost) and reports the failure; it returns the
// current request, to see afterwards whether it was retransmitted.
func (s *IKE) beforeTick(now time.Time) tickMark {
	for _, ss := range s.sessions() {
		r := ss.req
		p := s.pinOf(r)
		if p == nil || !p.test || !due(r.giveUpAt, now) {
			continue
		}
		s.unpin(r)
		r.local, r.remote = s.local, s.remote
		r.limit, r.giveUpAt, r.tries = 0, time.Time{}, 0
		r.deadline = s.retryAt(now, r)
		r.onResp = func(time.Time, *inbound) {}
		r.onFail = func(now time.Time) {
			s.down(now, ReasonDPDTimeout, 0, "no answer to a path test, also on the path in use")
		}
		s.stats.retransmitted()
		s.sendPackets(r.local, r.remote, r.packets)
		if ss == s.cur {
			s.sent, r.sentAt = r, now
		}
		p.fail(now)
	}
	if s.cur == nil || s.cur.req == nil {
		return tickMark{}
	}
	return tickMark{r: s.cur.req, tries: s.cur.req.tries}
}

// afterTick starts failure recovery (RFC 4555 §3.5, §3.11): once a
// request on the path in use has gone unanswered recoverAfter times, its
// retransmissions also go to every other candidate pair; the answer's pair
// is where the SAs move (answered).
func (s *IKE) afterTick(now time.Time, t tickMark) {
	if s.state != StateEstablished || s.cur == nil {
		return
	}
	if mg := s.mig(); mg != nil && !s.requestLive(mg.req) {
		s.clearMig()
		s.migrateFailed(mg.local, mg.remote, ReasonInternal, 0, "the request of the move was dropped")
	}
	r := s.cur.req
	if r == nil || r != t.r || r.tries <= t.tries {
		return
	}
	s.sent, r.sentAt = r, now
	if !s.canMove() || s.mig() != nil || s.pinOf(r) != nil || r.tries < recoverAfter {
		return
	}
	pairs := s.candidatePairs()
	if len(pairs) == 0 {
		return
	}
	if s.recovering() != r {
		s.logger().Info("path in use unanswered, trying other address pairs", "pairs", len(pairs))
	}
	s.mobState().recovering = r
	for _, p := range pairs {
		s.sendPackets(p[0], p[1], r.packets)
	}
}

// requestLive reports whether r is outstanding or queued on any session.
func (s *IKE) requestLive(r *request) bool {
	for _, ss := range s.sessions() {
		if ss.req == r || slices.Contains(ss.queued(), r) {
			return true
		}
	}
	return false
}

// candidatePairs are the address pairs other than the one in use: ours
// (in use and additional) × the peer's (in use and announced), same
// family, on the ports in use.
func (s *IKE) candidatePairs() [][2]netip.AddrPort {
	locals := append([]netip.Addr{s.local.Addr().Unmap()}, s.ourAddrs()...)
	remotes := append([]netip.Addr{s.remote.Addr().Unmap()}, s.peerAddrs()...)
	var out [][2]netip.AddrPort
	for i, l := range locals {
		l = l.Unmap()
		if !l.IsValid() || l.IsUnspecified() || slices.Contains(locals[:i], l) {
			continue
		}
		for j, r := range remotes {
			r = r.Unmap()
			if !r.IsValid() || l.Is4() != r.Is4() || slices.Contains(remotes[:j], r) || len(out) >= maxPairs {
				continue
			}
			lp, rp := netip.AddrPortFrom(l, s.local.Port()), netip.AddrPortFrom(r, s.remote.Port())
			if !samePair(lp, rp, s.local, s.remote) {
				out = append(out, [2]netip.AddrPort{lp, rp})
			}
		}
	}
	return out
}

// answered sees every answer before its handler: the RTT, and whether an
// answer to a recovery's retransmission came on another pair.
func (s *IKE) answered(now time.Time, ss *session, req *request, d Datagram) {
	if p := s.pinOf(req); p != nil && s.cur != nil {
		s.cur.rtt = now.Sub(p.sentAt)
	} else if req == s.sent && s.cur != nil {
		s.cur.rtt = now.Sub(req.sentAt)
	}
	if req != s.recovering() {
		return
	}
	if s.mob != nil {
		s.mob.recovering = nil
	}
	if ss != s.cur || !s.canMove() || s.mig() != nil || samePair(d.Local, d.Remote, s.local, s.remote) {
		return
	}
	// The answer proves this pair both ways; UPDATE_SA_ADDRESSES on it
	// goes out at once, ahead of the queue.
	mg := &migration{local: d.Local, remote: d.Remote, reason: ReasonPathFailed}
	s.mobState().mig = mg
	s.sendUpdate(now, mg, !s.natLocal && !s.natRemote)
}
