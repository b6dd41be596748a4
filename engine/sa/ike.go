package sa

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/internal/few"
	"github.com/mifsec/mifsec/engine/transform"
)

// State is the life-cycle state of an IKE SA.
type State uint8

const (
	StateConnecting     State = iota + 1 // IKE_SA_INIT
	StateAuthenticating                  // IKE_AUTH sent (initiator)
	StateEstablished
	StateDeleting // our DELETE of the IKE SA is outstanding
	StateClosed
)

var stateNames = [...]string{"", "connecting", "authenticating", "established", "deleting", "closed"}

func (s State) String() string {
	if int(s) < len(stateNames) && s > 0 {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Ports of IKE and of NAT traversal (RFC 7296 §2.11, §2.23).
const (
	ikePort  = 500
	natTPort = 4500
)

// IKE is one IKE SA and its Child SAs, in either role. See the package
// documentation for the contract with the glue.
type IKE struct {
	cfg      *Config
	path     uint32 // data-plane path tag of new Child SAs (Config.Path, CmdSetPath)
	origRole Role   // role when created; RFC 4555 §1.3 "initiator" keeps it
	state    State
	why      Reason
	// natLocal, natRemote: we are / the peer is behind a NAT (§2.23).
	natLocal, natRemote bool
	natdSeen            bool
	keepLeases          bool  // leases not ours to return (returned, or a clone the pool could not count)
	noIC                bool  // no INITIAL_CONTACT (Config.NoInitialContact or Place)
	nVIP, nDNS          uint8 // in cp
	// startLPort, startRPort: the ports an initiator started from
	// (IKE_SA_INIT goes to port 500 or the configured one, RFC 7296 §2.11);
	// a reauthentication starts from them again.
	startLPort, startRPort uint16
	caps                   capSet

	cur *session
	x   *rare // nil while none of its state is in use

	local, remote netip.AddrPort

	peerID Identity
	ownID  *Identity // our identity when not from Config (localID)

	init *initState

	// cp holds the addresses of the configuration exchange (§2.19): the
	// virtual IPs, ours (initiator) or leased to the peer (responder), then
	// nDNS DNS servers, then the P-CSCF servers (RFC 7651); one slice.
	cp []netip.Addr

	// The Child SAs (childList); their policy groups are reached through
	// them (a group lives while one of its SAs does). The first is
	// inline (most IKE SAs have one).
	children few.List[*childSA]

	// sent is the request last (re)transmitted on cur (at its sentAt);
	// cur.rtt is the round-trip time of the last answered one.
	sent *request
	mob  *mobike // RFC 4555 state (mobike.go); nil while there is none

	created               time.Time
	established, rekeyed  stamp
	lastSeen              stamp
	ikeRekeyAt, ikeLifeAt stamp
	reauthAt              stamp

	stats counters
	// o collects what the input being handled produces; nil between
	// inputs, so an idle IKE SA keeps none.
	o *Output
	// kids is Info's Child SA list, nil until built: built once per input,
	// not once per call (the glue reads Info of every IKE SA on many
	// events: paths, steering).
	kids *kidList
}

// kidList is Info's Child SA list; one allocation with the usual single
// Child SA inside.
type kidList struct {
	l   []ChildInfo
	one [1]ChildInfo
}

// noKids is the list of an IKE SA without live Child SAs (never written).
var noKids = &kidList{}

// rare is the state of an IKE SA that most never have, or have only for
// a while, kept apart so that an idle IKE SA carries one nil pointer for
// it (per-SA memory); finish drops it once empty.
type rare struct {
	retiring []*session // replaced by IKE rekeys, not yet deleted (§2.18)
	later    []delayed
	hooks    *testHooks   // nil outside tests
	log      hclog.Logger // a clone's (with clone_of), else Config.Logger
	whyText  string       // the detail of the reason the IKE SA went down
	replaces uint64       // local SPI of the IKE SA a re-authentication replaces
	rng      io.Reader    // the machine's random source when not its Config's
	ikeRekey *ikeRekey    // our IKE SA rekey in flight (create.go)
}

// rareState returns the rare state, made on first use.
func (s *IKE) rareState() *rare {
	if s.x == nil {
		s.x = new(rare)
	}
	return s.x
}

// dropRare forgets the rare state once nothing is left in it.
func (s *IKE) dropRare() {
	if x := s.x; x != nil && len(x.retiring) == 0 && len(x.later) == 0 && x.hooks == nil && x.log == nil &&
		x.whyText == "" && x.replaces == 0 && x.rng == nil && x.ikeRekey == nil {
		s.x = nil
	}
}

// childList lists the Child SAs, oldest first. It shares the IKE SA's
// storage: write it back with setChildren.
func (s *IKE) childList() []*childSA { return s.children.Items() }

// setChildren replaces the Child SA list.
func (s *IKE) setChildren(l []*childSA) { s.children.Set(l) }

// rekeying is our IKE SA rekey in flight, nil without.
func (s *IKE) rekeying() *ikeRekey {
	if s.x == nil {
		return nil
	}
	return s.x.ikeRekey
}

// setRekeying records our IKE SA rekey in flight (nil: none).
func (s *IKE) setRekeying(r *ikeRekey) {
	if r != nil {
		s.rareState().ikeRekey = r
	} else if s.x != nil {
		s.x.ikeRekey = nil
	}
}

func (s *IKE) retiring() []*session {
	if s.x == nil {
		return nil
	}
	return s.x.retiring
}

// logger is the IKE SA's logger.
func (s *IKE) logger() hclog.Logger {
	switch {
	case s.x != nil && s.x.log != nil:
		return s.x.log
	case s.cfg != nil && s.cfg.Logger != nil:
		return s.cfg.Logger
	}
	return hclog.NewNullLogger()
}

// whyText is the detail of DownReason.
func (s *IKE) whyText() string {
	if s.x == nil {
		return ""
	}
	return s.x.whyText
}

func (s *IKE) replaces() uint64 {
	if s.x == nil {
		return 0
	}
	return s.x.replaces
}

// closeWith marks the IKE SA closed for r.
func (s *IKE) closeWith(r Reason, detail string) {
	s.state, s.why = StateClosed, r
	if detail != "" {
		s.rareState().whyText = detail
	}
}

func (s *IKE) later() []delayed {
	if s.x == nil {
		return nil
	}
	return s.x.later
}

func (s *IKE) hooks() *testHooks {
	if s.x == nil {
		return nil
	}
	return s.x.hooks
}

// vips are our virtual IPs (initiator) or the peer's (responder).
func (s *IKE) vips() []netip.Addr { return s.cp[:s.nVIP:s.nVIP] }

// dns and pcscf are the servers of our CFG_REPLY (initiator).
func (s *IKE) dns() []netip.Addr {
	return s.cp[s.nVIP : s.nVIP+s.nDNS : s.nVIP+s.nDNS]
}

func (s *IKE) pcscf() []netip.Addr { return ro(s.cp[s.nVIP+s.nDNS:]) }

// setCP keeps the addresses of the configuration exchange in one
// allocation (at most 255 of each kind).
func (s *IKE) setCP(vips, dns, pcscf []netip.Addr) {
	vips, dns, pcscf = vips[:min(len(vips), 255)], dns[:min(len(dns), 255)], pcscf[:min(len(pcscf), 255)]
	s.cp, s.nVIP, s.nDNS = nil, uint8(len(vips)), uint8(len(dns))
	if n := len(vips) + len(dns) + len(pcscf); n > 0 {
		s.cp = append(append(append(make([]netip.Addr, 0, n), vips...), dns...), pcscf...)
	}
}

// testHooks let tests see every Child SA and rekeyed IKE SA made (with
// their nonces).
type testHooks struct {
	child   func(c *childSA)
	session func(ss *session)
}

// leased are the addresses the peer leased from Config.Pool (RFC 7296
// §2.19): a responder's virtual IPs.
func (s *IKE) leased() []netip.Addr {
	if s.origRole != Responder {
		return nil
	}
	return s.vips()
}

// stamp is an instant as an offset from the IKE SA's creation, 0 for
// none: 8 bytes where a time.Time takes 24 (per-SA memory).
type stamp int64

// stamp returns t as a stamp (zero t: 0).
func (s *IKE) stamp(t time.Time) stamp {
	if t.IsZero() {
		return 0
	}
	d := stamp(t.Sub(s.created))
	if d >= 0 {
		d++ // 0 is none
	}
	return d
}

// at returns the instant of v (0: the zero time).
func (s *IKE) at(v stamp) time.Time {
	switch {
	case v == 0:
		return time.Time{}
	case v > 0:
		v--
	}
	return s.created.Add(time.Duration(v))
}

// rng is the machine's random source: its own, else its Config's, else
// crypto/rand.
func (s *IKE) rng() io.Reader {
	switch {
	case s.x != nil && s.x.rng != nil:
		return s.x.rng
	case s.cfg != nil && s.cfg.Rand != nil:
		return s.cfg.Rand
	}
	return rand.Reader
}

// rtt is the round-trip time of the last answered request.
func (s *IKE) rtt() time.Duration {
	if s.cur == nil {
		return 0
	}
	return s.cur.rtt
}

// halfOpenAt is when a responder's half-open IKE SA ends, 0 for none.
func (s *IKE) halfOpenAt() stamp {
	if s.init == nil {
		return 0
	}
	return s.init.halfOpenAt
}

// delayed is an action at a time (retries after TEMPORARY_FAILURE).
type delayed struct {
	at time.Time
	fn func(now time.Time)
}

const maxDelayed = 32

// initState is what IKE_SA_INIT leaves for IKE_AUTH (RFC 7296 §2.15).
type initState struct {
	// halfOpenAt ends a responder's half-open IKE SA (RFC 7296 §2.6)
	// that saw no IKE_AUTH request.
	halfOpenAt  stamp
	ni, nr      []byte
	dh          *transform.DHKey
	reqRaw      []byte // the last IKE_SA_INIT request sent (RealMessage1)
	respRaw     []byte // the IKE_SA_INIT response (RealMessage2)
	cookie      []byte
	cookieTries int
	keTries     int
	certReq     []byte // the peer's CERTREQ data
	// psk and trust authenticate IKE_AUTH (Config.Auth, or the peer's
	// from Config.Policy); nothing needs them afterwards.
	psk   transform.Secret
	trust *transform.TrustStore
}

func newIKE(cfg *Config, now time.Time, rng io.Reader, role Role) *IKE {
	s := &IKE{cfg: cfg, origRole: role, state: StateConnecting, created: now, lastSeen: 1} // stamp 1: created
	if rng != nil && rng != rand.Reader && (cfg == nil || rng != cfg.Rand) {
		s.rareState().rng = rng // not the Config's: kept apart (per-SA memory)
	}
	if cfg != nil {
		s.path, s.noIC = cfg.Path, cfg.NoInitialContact
	}
	return s
}

// failed returns a closed machine for a constructor that could not start.
func failed(s *IKE, r Reason, detail string) (*IKE, Output) {
	s.closeWith(r, detail)
	if s.init != nil && s.init.dh != nil {
		s.init.dh.Destroy()
	}
	s.emit(Event{Kind: EventIKEDown, Reason: r, Detail: detail})
	o := s.takeOutput()
	o.Done = true
	return s, o
}

// outBuf holds the Output of one input with room for its usual first
// datagram and bound SPI, so the holder costs no allocation of its own.
type outBuf struct {
	Output
	dg   [1]Datagram
	bind [1]uint64
}

// out returns the Output of the input being handled, made on first use.
func (s *IKE) out() *Output {
	if s.o == nil {
		b := new(outBuf)
		b.Datagrams, b.Bind = b.dg[:0:1], b.bind[:0:1]
		s.o = &b.Output
	}
	return s.o
}

// spawning reports whether this input already spawned an IKE SA.
func (s *IKE) spawning() bool { return s.o != nil && s.o.Spawn != nil }

// takeOutput returns what the input produced and forgets it.
func (s *IKE) takeOutput() Output {
	if s.o == nil {
		return Output{}
	}
	o := *s.o
	s.o = nil
	if len(o.Datagrams) == 0 {
		o.Datagrams = nil
	}
	if len(o.Bind) == 0 {
		o.Bind = nil
	}
	return o
}

// Handle processes one input and returns what to do.
func (s *IKE) Handle(now time.Time, in Input) Output {
	s.takeOutput()
	s.kids = nil // every input may change what Info shows
	if s.state == StateClosed {
		if _, ok := in.(Datagram); ok {
			s.stats.drop(DropClosed)
		}
		return Output{Done: true}
	}
	switch v := in.(type) {
	case Datagram:
		s.handleDatagram(now, v)
	case Command:
		if !s.mobikeCommand(now, v) {
			s.handleCommand(now, v)
		}
	case Tick:
		t := s.beforeTick(now)
		s.handleTick(now)
		s.afterTick(now, t)
	case DataplaneEvent:
		s.handleDataplane(now, v)
	case *Datagram:
		if v != nil {
			s.handleDatagram(now, *v)
		}
	}
	return s.finish(now)
}

func (s *IKE) finish(now time.Time) Output {
	o := s.takeOutput()
	s.dropRare()
	s.dropMob()
	if s.state == StateClosed {
		o.Done = true
		o.Deadline = time.Time{}
		return o
	}
	o.Deadline = s.deadline(now)
	if s.state == StateEstablished && s.cur != nil {
		s.cur.park()
	}
	return o
}

func (s *IKE) emit(e Event) {
	s.kids = nil
	if e.SPIi == 0 && e.SPIr == 0 && s.cur != nil {
		e.SPIi, e.SPIr = s.cur.spii, s.cur.spir
	}
	o := s.out()
	o.Events = append(o.Events, e)
}

// growEvents makes room for n more events at once: an Event is large
// (752 B), and growing the list by appends copies it at each step.
func (s *IKE) growEvents(n int) {
	o := s.out()
	o.Events = slices.Grow(o.Events, n)
}

func (s *IKE) op(o DataplaneOp) {
	s.kids = nil
	out := s.out()
	out.DataplaneOps = append(out.DataplaneOps, o)
}

func (s *IKE) sendPackets(local, remote netip.AddrPort, pk [][]byte) {
	s.kids = nil
	o := s.out()
	for _, p := range pk {
		o.Datagrams = append(o.Datagrams, Datagram{Local: local, Remote: remote, Data: p})
	}
}

// newDH makes a D-H key pair for a KE payload (Config.DH, else inline).
func (s *IKE) newDH(g ike.GroupID) (*transform.DHKey, error) {
	if s.cfg != nil && s.cfg.DH != nil {
		return s.cfg.DH.GenerateDH(g, s.rng())
	}
	return transform.GenerateDH(g, s.rng())
}

// newInitResponderDH makes the D-H pair of our IKE_SA_INIT response: a
// reused one where Config.DH reuses (RFC 7296 §2.12).
func (s *IKE) newInitResponderDH(g ike.GroupID) (*transform.DHKey, error) {
	if s.cfg != nil {
		if r, ok := s.cfg.DH.(ReusingDHSource); ok {
			return r.InitResponderDH(g, s.rng())
		}
	}
	return s.newDH(g)
}

// PeerID is the peer's identity: the one it authenticated with once the
// IKE SA is up (RFC 7296 §2.15), the configured one before (zero: %any).
// Info has it too, at the cost of a full snapshot.
func (s *IKE) PeerID() Identity { return s.peerID }

// SPIs returns the SPIs of the current IKE SA (SPIr is 0 before the
// responder answered).
func (s *IKE) SPIs() (spii, spir uint64) {
	if s.cur == nil {
		return 0, 0
	}
	return s.cur.spii, s.cur.spir
}

// State returns the life-cycle state.
func (s *IKE) State() State { return s.state }

// Stats returns the counters.
func (s *IKE) Stats() Stats { return s.stats.public() }

func (s *IKE) randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.rng(), b); err != nil {
		return nil, err
	}
	return b, nil
}

func (s *IKE) randomSPI() (uint64, error) {
	for range 8 {
		b, err := s.randomBytes(8)
		if err != nil {
			return 0, err
		}
		if v := binary.BigEndian.Uint64(b); v != 0 {
			return v, nil
		}
	}
	return 0, errors.New("sa: random source returns zeros")
}

// jitter returns d less a random part of the configured jitter (§2.8.1).
func (s *IKE) jitter(d time.Duration) time.Duration {
	j := s.cfg.Lifetimes.Jitter
	if d <= 0 || j <= 0 {
		return d
	}
	if j > d/2 {
		j = d / 2
	}
	b, err := s.randomBytes(8)
	if err != nil {
		return d
	}
	return d - time.Duration(binary.BigEndian.Uint64(b)%uint64(j))
}

func (s *IKE) fragLocal() bool { return !s.cfg.NoFragmentation }

// fragOK: RFC 7383 §2.3, fragment only when both sides announced support.
func (s *IKE) fragOK() bool { return s.fragLocal() && s.caps.has(capFragmentation) }

// sessions lists every session in lookup order.
func (s *IKE) sessions() []*session {
	out := make([]*session, 0, 4)
	if s.cur != nil {
		out = append(out, s.cur)
	}
	if r := s.rekeying(); r != nil {
		if r.ours != nil {
			out = append(out, r.ours)
		}
		if r.peer != nil {
			out = append(out, r.peer)
		}
	}
	return append(out, s.retiring()...)
}

func (s *IKE) sessionFor(h ike.Header) *session {
	for _, ss := range s.sessions() {
		if h.SPIi != ss.spii {
			continue
		}
		if h.SPIr == ss.spir {
			return ss
		}
		// The IKE_SA_INIT response carries the responder's new SPI, or 0 for
		// COOKIE and error notifies (§2.6, §2.21.1).
		if h.Exchange == ike.IKESAInit && ss.initiator && ss.spir == 0 && h.IsResponse() {
			return ss
		}
		// A retransmitted IKE_SA_INIT request still has SPIr 0.
		if h.Exchange == ike.IKESAInit && !ss.initiator && h.SPIr == 0 && !h.IsResponse() {
			return ss
		}
	}
	return nil
}

func (s *IKE) handleDatagram(now time.Time, d Datagram) {
	if len(d.Data) > maxDatagramSize {
		s.stats.drop(DropMalformed)
		return
	}
	h, err := ike.DecodeHeader(d.Data)
	if err != nil {
		s.stats.drop(DropMalformed)
		return
	}
	ss := s.sessionFor(h)
	if ss == nil {
		s.stats.drop(DropWrongSPI)
		return
	}
	msg, raw, err := ike.DecodeOwned(d.Data)
	if err != nil {
		s.stats.drop(DropMalformed)
		return
	}
	// §3.1: the I flag marks the original initiator of this IKE SA.
	if h.IsInitiator() == ss.initiator {
		s.stats.drop(DropUnexpected)
		return
	}
	if h.Exchange == ike.IKESAInit {
		s.handleInit(now, ss, msg, d)
		return
	}
	if ss.keys == nil {
		s.stats.drop(DropWrongState)
		return
	}
	if h.IsResponse() {
		if ss.req == nil || ss.req.id != h.MessageID || ss.req.exch != h.Exchange {
			s.stats.drop(DropUnexpected)
			return
		}
		r := s.open(ss, h, raw, msg, true)
		if r.drop {
			s.stats.drop(r.reason)
			return
		}
		if !r.complete {
			return
		}
		req := ss.req
		ss.req = nil
		s.stats.responses++
		s.lastSeen = s.stamp(now)
		s.peerMoved(ss, d)
		s.answered(now, ss, req, d)
		if s.sent == req {
			// Its RTT is taken: an idle SA keeps no answered request
			// (payloads, packets, callbacks) alive.
			s.sent = nil
		}
		in := &inbound{hdr: h, payloads: r.payloads, dg: d}
		if r.decode != nil {
			// §2.21: a response we cannot parse fails the request.
			var ie *ike.Error
			n := ike.InvalidSyntax
			if errors.As(r.decode, &ie) {
				n = ie.Notify
			}
			in.payloads = []ike.Payload{&ike.Notify{NotifyType: n}}
		}
		req.onResp(now, in)
		s.pump(now, ss)
		return
	}
	switch {
	case h.MessageID == ss.expect:
	case ss.resp != nil && h.MessageID == ss.resp.id:
		// §2.1: a retransmitted request gets the cached response, after its
		// integrity is checked; with fragments, once, on fragment 1.
		r := s.open(ss, h, raw, msg, false)
		if r.drop {
			s.stats.drop(r.reason)
			return
		}
		if r.first {
			s.stats.resent()
			s.sendPackets(d.Local, d.Remote, ss.resp.packets())
		}
		return
	default:
		s.stats.drop(DropBadMessageID)
		return
	}
	r := s.open(ss, h, raw, msg, true)
	if r.drop {
		s.stats.drop(r.reason)
		return
	}
	if !r.complete {
		return
	}
	ss.expect++
	s.stats.requests++
	s.lastSeen = s.stamp(now)
	s.peerMoved(ss, d)
	in := &inbound{hdr: h, payloads: r.payloads, dg: d}
	if r.decode != nil {
		var ie *ike.Error
		n := &ike.Notify{NotifyType: ike.InvalidSyntax}
		if errors.As(r.decode, &ie) && ie.Notify != 0 {
			n = &ike.Notify{NotifyType: ie.Notify, Data: ie.Data}
		}
		s.respond(now, ss, in, []ike.Payload{n})
		if h.Exchange == ike.IKEAuth && s.state == StateConnecting {
			s.down(now, ReasonProtocolError, n.NotifyType, "IKE_AUTH request: "+r.decode.Error())
		}
		return
	}
	s.handleRequest(now, ss, in)
}

func (s *IKE) handleRequest(now time.Time, ss *session, in *inbound) {
	switch in.hdr.Exchange {
	case ike.IKEAuth:
		if ss != s.cur || s.state != StateConnecting || ss.initiator || s.init == nil {
			s.respond(now, ss, in, []ike.Payload{&ike.Notify{NotifyType: ike.InvalidSyntax}})
			return
		}
		s.handleAuthRequest(now, ss, in)
	case ike.CreateChildSA:
		s.handleCreateChildRequest(now, ss, in)
	case ike.Informational:
		s.handleInformationalRequest(now, ss, in)
	default:
		// §2.21: an exchange type we do not know; answer so the peer's
		// window moves on.
		s.stats.drop(DropWrongState)
		s.respond(now, ss, in, []ike.Payload{&ike.Notify{NotifyType: ike.InvalidSyntax}})
	}
}

// peerMoved follows a peer behind a NAT to the address of its last
// authenticated message (RFC 7296 §2.23); with MOBIKE only
// UPDATE_SA_ADDRESSES moves the SA (RFC 4555 §3.8).
func (s *IKE) peerMoved(ss *session, d Datagram) {
	if ss != s.cur || s.state != StateEstablished || !s.natRemote || s.caps.has(capMOBIKE) || d.Remote == s.remote {
		return
	}
	s.logger().Info("peer address changed", "from", s.remote.String(), "to", d.Remote.String())
	s.remote = d.Remote
	for _, c := range s.childList() {
		u := dataplane.AddrUpdate{Local: s.local, Remote: s.remote, Encap: c.encap}
		if !c.inGone {
			s.op(DataplaneOp{Kind: OpUpdateSA, SPI: c.inSPI, Dir: dataplane.In, Update: u})
		}
		if !c.outGone {
			s.op(DataplaneOp{Kind: OpUpdateSA, SPI: c.outSPI, Dir: dataplane.Out, Update: u})
		}
	}
}

// request sends r on ss, or queues it while the window is full (§2.3).
func (s *IKE) request(now time.Time, ss *session, r *request) bool {
	if ss.req != nil {
		if len(ss.queued()) >= maxQueue {
			return false
		}
		ss.setQueued(append(ss.queued(), r))
		return true
	}
	s.transmit(now, ss, r)
	return true
}

func (s *IKE) transmit(now time.Time, ss *session, r *request) {
	r.local, r.remote = s.pathOf(now, ss, r)
	if r.packets == nil {
		r.id = ss.nextReq
		pk, err := s.seal(ss, ss.header(r.exch, r.id, false), r.payloads, r.local, r.remote, &r.one)
		if err != nil {
			s.logger().Error("cannot encode request", "exchange", r.exch.String(), "error", err)
			if r.onFail != nil {
				r.onFail(now)
			}
			return
		}
		ss.nextReq++
		r.packets = pk
	}
	r.tries = 0
	r.giveUpAt = time.Time{}
	if r.limit > 0 {
		r.giveUpAt = now.Add(r.limit)
	}
	r.deadline = s.retryAt(now, r)
	ss.req = r
	s.sendPackets(r.local, r.remote, r.packets)
}

func (s *IKE) pump(now time.Time, ss *session) {
	for ss.req == nil && len(ss.queued()) > 0 && s.state != StateClosed {
		r := ss.queued()[0]
		ss.setQueued(ss.queued()[1:])
		s.transmit(now, ss, r)
	}
}

// retryAt is when r is sent again (or given up): the schedule's next
// timeout, for a bounded request at most a third of its limit and never
// past giveUpAt.
func (s *IKE) retryAt(now time.Time, r *request) time.Time {
	d := s.timeout(r.tries)
	if r.limit > 0 && d > r.limit/3 {
		d = r.limit / 3
	}
	at := now.Add(d)
	if !r.giveUpAt.IsZero() && at.After(r.giveUpAt) {
		at = r.giveUpAt
	}
	return at
}

// timeout is the k-th retransmission timeout (RFC 7296 §2.1).
func (s *IKE) timeout(k int) time.Duration {
	r := s.cfg.retransmit()
	return time.Duration(float64(r.Timeout) * math.Pow(r.Factor, float64(k)))
}

// respond answers the request in on ss and caches the answer (§2.1).
func (s *IKE) respond(now time.Time, ss *session, in *inbound, payloads []ike.Payload) {
	c := &cachedResp{id: in.hdr.MessageID}
	pk, err := s.seal(ss, ss.header(in.hdr.Exchange, in.hdr.MessageID, true), payloads, in.dg.Local, in.dg.Remote, &c.one)
	if err != nil {
		s.logger().Error("cannot encode response", "exchange", in.hdr.Exchange.String(), "error", err)
		return
	}
	c.setPackets(pk)
	ss.resp = c
	s.sendPackets(in.dg.Local, in.dg.Remote, pk)
}

// down ends the IKE SA: Child SAs leave the data plane, leases are
// returned, keys cleared.
func (s *IKE) down(now time.Time, r Reason, n ike.NotifyType, detail string) {
	if s.state == StateClosed {
		return
	}
	s.growEvents(len(s.childList()) + 1) // EventChildDown each, EventIKEDown
	for _, c := range append([]*childSA(nil), s.childList()...) {
		s.removeChild(now, c, r, true)
	}
	if s.cfg.Pool != nil && !s.keepLeases {
		for _, a := range s.leased() {
			s.cfg.Pool.Release(s.peerID.String(), a)
		}
		s.keepLeases = true // returned
	}
	e := Event{Kind: EventIKEDown, Reason: r, Notify: n, Detail: detail, PeerID: s.peerID}
	s.emit(e)
	s.logger().Debug("IKE SA down", "reason", r.String(), "detail", detail) // the engine's line is at info
	for _, ss := range s.sessions() {
		ss.destroy()
	}
	if s.init != nil && s.init.dh != nil {
		s.init.dh.Destroy()
	}
	if s.rekeying() != nil && s.rekeying().dh != nil {
		s.rekeying().dh.Destroy()
	}
	s.closeWith(r, detail)
}

// after schedules fn (bounded).
func (s *IKE) after(at time.Time, fn func(now time.Time)) {
	if len(s.later()) < maxDelayed {
		x := s.rareState()
		x.later = append(x.later, delayed{at: at, fn: fn})
	}
}
