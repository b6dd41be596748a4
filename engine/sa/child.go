package sa

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/transform"
)

type childState uint8

const (
	childActive   childState = iota + 1
	childRekeyed             // replaced by a rekey, waiting for its DELETE
	childDeleting            // our DELETE is outstanding
	// childDraining: replaced and deleted; only the inbound half is left,
	// for packets the peer sealed before it switched (see drain). It is no
	// longer a Child SA: not listed, not looked up, no events.
	childDraining
)

var childStateNames = [...]string{"", "installed", "rekeyed", "deleting", "draining"}

// maxDraining bounds the inbound halves one IKE SA keeps after rekeys
// (an authenticated peer may rekey as fast as it likes).
const maxDraining = 16

// ts returns the Child SA's selectors: its own, else its policy group's.
func (c *childSA) ts() (local, remote []ike.TrafficSelector) {
	switch {
	case c.ownTSOf() != nil:
		return c.x.ownTS.local, c.x.ownTS.remote
	case c.group != nil:
		return c.group.local, c.group.remote
	}
	return nil, nil
}

// childSA is one negotiated pair of ESP SAs (RFC 7296 §1.3, §2.17).
type childSA struct {
	cfg           *ChildConfig
	inSPI, outSPI uint32
	suite         transform.Suite
	mode          dataplane.Mode
	// x holds what only rekeys set (childRare); nil for most Child SAs.
	x               *childRare
	group           *policyGroup
	state           childState
	inGone, outGone bool
	encap           bool
	weInitiated     bool
	// Instants as stamps of the IKE SA (8 bytes each, not 24).
	created           stamp
	rekeyAt, expireAt stamp
	deleteAt          stamp
	nonces            *nonces // of the rekey that created it (§2.8.1), else nil
}

// childRare is the state of a Child SA that only rekeys set, apart so that
// a Child SA without it takes the 96-byte size class (per-SA memory); it
// goes when its last field is cleared.
type childRare struct {
	rekey   *childOffer // our rekey of this SA in flight
	peerNew *childSA    // the SA the peer made by rekeying this one meanwhile
	// waitFor is set on the SA we made answering the peer's rekey of
	// waitFor: outbound traffic stays on waitFor until the peer deletes it,
	// since the peer installs its new inbound SA only when our response
	// arrives (strongSwan 5.9.6+ does the same as a rekey responder).
	waitFor *childSA
	// ownTS holds the Child SA's selectors when they are not its policy
	// group's (a rekey that changed them); nil: the group's (ts).
	ownTS *tsPack
}

func (c *childSA) rekeyOf() *childOffer {
	if c.x == nil {
		return nil
	}
	return c.x.rekey
}

func (c *childSA) peerNewOf() *childSA {
	if c.x == nil {
		return nil
	}
	return c.x.peerNew
}

func (c *childSA) waitForOf() *childSA {
	if c.x == nil {
		return nil
	}
	return c.x.waitFor
}

func (c *childSA) ownTSOf() *tsPack {
	if c.x == nil {
		return nil
	}
	return c.x.ownTS
}

// rare returns the rare state, made on first use (set) or nil (clear).
func (c *childSA) rare(set bool) *childRare {
	if c.x == nil && set {
		c.x = new(childRare)
	}
	return c.x
}

// settled drops the rare state once empty.
func (c *childSA) settled() {
	if x := c.x; x != nil && *x == (childRare{}) {
		c.x = nil
	}
}

func (c *childSA) setRekey(o *childOffer) {
	if x := c.rare(o != nil); x != nil {
		x.rekey = o
		c.settled()
	}
}

func (c *childSA) setPeerNew(n *childSA) {
	if x := c.rare(n != nil); x != nil {
		x.peerNew = n
		c.settled()
	}
}

func (c *childSA) setWaitFor(w *childSA) {
	if x := c.rare(w != nil); x != nil {
		x.waitFor = w
		c.settled()
	}
}

func (c *childSA) setOwnTS(p *tsPack) {
	if x := c.rare(p != nil); x != nil {
		x.ownTS = p
		c.settled()
	}
}

// policyGroup is the pair of policies of one logical Child SA: it lives
// across rekeys, its SPIs follow the SAs. Its selectors are those of its
// first Child SA, whose slices it shares (as do later Child SAs with the
// same ones); the data plane's form is made only for policy operations.
type policyGroup struct {
	idIn, idOut uint64
	// local and remote are its selectors (packTS), shared with its first
	// Child SA.
	local, remote []ike.TrafficSelector
	// spis are the SPIs its policies point at: nIn inbound, then the
	// outbound one (one slice, one allocation, for both).
	spis      []uint32
	nIn       uint16
	installed bool
}

func newPolicyGroup(idIn, idOut uint64, ts tsPack) *policyGroup {
	return &policyGroup{idIn: idIn, idOut: idOut, local: ts.local, remote: ts.remote}
}

// sel returns the group's selectors.
func (g *policyGroup) sel() tsPack { return tsPack{g.local, g.remote} }

// in and out are the SPIs of its inbound and outbound policies.
func (g *policyGroup) in() []uint32  { return g.spis[:g.nIn:g.nIn] }
func (g *policyGroup) out() []uint32 { return g.spis[g.nIn:] }

// shareTS are the lists the selectors of the offer's Child SA may share:
// those of the SA it rekeys (§2.9.2), else the configured ones.
func (o *childOffer) shareTS() (local, remote []ike.TrafficSelector) {
	if o.old != nil {
		return o.old.ts()
	}
	return o.cfg.LocalTS, o.cfg.RemoteTS
}

// childOffer is a Child SA we proposed and wait to hear about.
type childOffer struct {
	cfg      *ChildConfig
	old      *childSA // the SA being rekeyed, if any
	inSPI    uint32
	props    []ike.Proposal
	ni       []byte
	dh       *transform.DHKey
	tsi, tsr []ike.TrafficSelector
	mode     dataplane.Mode
	retries  int
	released bool
}

func spiBytes(spi uint32) []byte { return binary.BigEndian.AppendUint32(nil, spi) }

func withoutDH(p ike.Proposal) ike.Proposal {
	p.Transforms = slices.DeleteFunc(slices.Clone(p.Transforms), func(t ike.Transform) bool { return t.Type == ike.TransformDH })
	return p
}

// offerTS computes the selectors to propose for a new Child SA.
func (s *IKE) offerTS(cfg *ChildConfig, ikeAuth bool) (tsi, tsr []ike.TrafficSelector) {
	switch {
	case len(cfg.LocalTS) > 0:
		tsi = slices.Clone(cfg.LocalTS)
	case ikeAuth && s.origRole == Initiator && (s.cfg.VirtualIP.IPv4 || s.cfg.VirtualIP.IPv6):
		// §2.19: propose everything, the responder narrows to our address.
		if s.cfg.VirtualIP.IPv4 {
			tsi = append(tsi, anyTS(false))
		}
		if s.cfg.VirtualIP.IPv6 {
			tsi = append(tsi, anyTS(true))
		}
	case len(s.vips()) > 0 && s.origRole == Initiator:
		for _, v := range s.vips() {
			tsi = append(tsi, HostTS(v))
		}
	default:
		tsi = []ike.TrafficSelector{HostTS(s.local.Addr())}
	}
	tsr = s.remoteTSConf(cfg)
	return tsi, tsr
}

// remoteTSConf is the peer's side of a Child SA config: "dynamic" is the
// address leased to the peer or its IKE address.
func (s *IKE) remoteTSConf(cfg *ChildConfig) []ike.TrafficSelector {
	if len(cfg.RemoteTS) > 0 {
		return slices.Clone(cfg.RemoteTS)
	}
	if l := s.leased(); len(l) > 0 {
		var ts []ike.TrafficSelector
		for _, v := range l {
			ts = append(ts, HostTS(v))
		}
		return ts
	}
	return []ike.TrafficSelector{HostTS(s.remote.Addr())}
}

func (s *IKE) localTSConf(cfg *ChildConfig) []ike.TrafficSelector {
	if len(cfg.LocalTS) > 0 {
		return slices.Clone(cfg.LocalTS)
	}
	if len(s.vips()) > 0 && s.origRole == Initiator {
		var ts []ike.TrafficSelector
		for _, v := range s.vips() {
			ts = append(ts, HostTS(v))
		}
		return ts
	}
	return []ike.TrafficSelector{HostTS(s.local.Addr())}
}

// newOffer prepares a Child SA proposal: SPI, proposals, nonce and, for
// PFS, a KE (none in IKE_AUTH, §1.2).
func (s *IKE) newOffer(cfg *ChildConfig, old *childSA, ikeAuth bool) (*childOffer, error) {
	spi, err := s.cfg.SPIs.AllocSPI()
	if err != nil {
		return nil, err
	}
	o := &childOffer{cfg: cfg, old: old, inSPI: spi, mode: cfg.mode()}
	for _, p := range cfg.Proposals {
		p.SPI = spiBytes(spi)
		if ikeAuth {
			p = withoutDH(p)
		}
		o.props = append(o.props, p)
	}
	if old != nil {
		l, r := old.ts()
		o.tsi, o.tsr = slices.Clone(l), slices.Clone(r)
	} else {
		o.tsi, o.tsr = s.offerTS(cfg, ikeAuth)
	}
	if !ikeAuth {
		if err := s.rekeyOfferKE(o, transform.OfferedGroup(o.props)); err != nil {
			o.release(s)
			return nil, err
		}
	}
	return o, nil
}

// rekeyOfferKE gives the offer a fresh nonce and a KE in group g; with
// GroupNone the D-H transforms leave the proposals (no PFS).
func (s *IKE) rekeyOfferKE(o *childOffer, g ike.GroupID) error {
	ni, err := s.randomBytes(nonceLen)
	if err != nil {
		return err
	}
	o.ni = ni
	if o.dh != nil {
		o.dh.Destroy()
		o.dh = nil
	}
	if g == ike.GroupNone {
		for i := range o.props {
			o.props[i] = withoutDH(o.props[i])
		}
		return nil
	}
	o.dh, err = s.newDH(g)
	return err
}

// payloads are the Child SA part of a request, in strongSwan's order
// (PROTOCOL.md P11).
func (o *childOffer) payloads(ikeAuth bool) []ike.Payload {
	var ps []ike.Payload
	if o.old != nil {
		// §1.3.3: the SPI we expect in inbound packets of the old SA.
		ps = append(ps, &ike.Notify{Protocol: ike.ProtoESP, SPI: spiBytes(o.old.inSPI), NotifyType: ike.RekeySA})
	}
	if o.mode == dataplane.Transport {
		ps = append(ps, &ike.Notify{NotifyType: ike.UseTransportMode})
	}
	ps = append(ps, &ike.SA{Proposals: slices.Clone(o.props)})
	if !ikeAuth {
		ps = append(ps, &ike.Nonce{Data: o.ni})
		if o.dh != nil {
			ps = append(ps, &ike.KE{Group: o.dh.Group(), Data: o.dh.PublicValue()})
		}
	}
	return append(ps, &ike.TrafficSelectors{Selectors: o.tsi}, &ike.TrafficSelectors{Responder: true, Selectors: o.tsr})
}

// release returns the offer's SPI (nil-safe, idempotent).
func (o *childOffer) release(s *IKE) {
	if o == nil || o.released {
		return
	}
	o.released = true
	s.cfg.SPIs.ReleaseSPI(o.inSPI)
	if o.dh != nil {
		o.dh.Destroy()
	}
}

// dpSuite maps a negotiated ESP suite to the data plane's.
func dpSuite(s transform.Suite) (dataplane.Suite, bool) {
	switch {
	case s.Encr == ike.EncrAESGCM16 && s.KeyBits == 128:
		return dataplane.SuiteAESGCM128, true
	case s.Encr == ike.EncrAESGCM16 && s.KeyBits == 256:
		return dataplane.SuiteAESGCM256, true
	case s.Encr == ike.EncrChaCha20Poly1305:
		return dataplane.SuiteChaCha20Poly1305, true
	case s.Encr == ike.EncrAESCBC && s.KeyBits == 128 && s.Integ == ike.IntegHMACSHA256_128:
		return dataplane.SuiteAESCBC128HMACSHA256, true
	case s.Encr == ike.EncrAESCBC && s.KeyBits == 256 && s.Integ == ike.IntegHMACSHA256_128:
		return dataplane.SuiteAESCBC256HMACSHA256, true
	case s.Encr == ike.EncrAESCBC && s.KeyBits == 128 && s.Integ == ike.IntegHMACSHA1_96:
		return dataplane.SuiteAESCBC128HMACSHA1, true
	case s.Encr == ike.EncrAESCBC && s.KeyBits == 256 && s.Integ == ike.IntegHMACSHA384_192:
		return dataplane.SuiteAESCBC256HMACSHA384, true
	case s.Encr == ike.EncrAESCBC && s.KeyBits == 256 && s.Integ == ike.IntegHMACSHA512_256:
		return dataplane.SuiteAESCBC256HMACSHA512, true
	}
	return 0, false
}

// childParams is a negotiated Child SA before installation.
type childParams struct {
	cfg           *ChildConfig
	old           *childSA
	suite         transform.Suite
	inSPI, outSPI uint32
	keys          *transform.ChildKeys
	weInitiated   bool
	ts            tsPack
	mode          dataplane.Mode
	ni, nr        []byte
}

func (s *IKE) childLifetimes(cfg *ChildConfig) (rekey, life time.Duration) {
	rekey, life = cfg.RekeyTime, cfg.LifeTime
	if rekey == 0 {
		rekey = s.cfg.Lifetimes.ChildRekey
	}
	if life == 0 {
		life = s.cfg.Lifetimes.ChildLife
	}
	return rekey, life
}

// installChild turns KEYMAT into two data-plane SAs and the policies.
func (s *IKE) installChild(now time.Time, p childParams) *childSA {
	ds, _ := dpSuite(p.suite)
	outEnc, outInt, inEnc, inInt := p.keys.EncrR, p.keys.IntegR, p.keys.EncrI, p.keys.IntegI
	if p.weInitiated {
		outEnc, outInt, inEnc, inInt = p.keys.EncrI, p.keys.IntegI, p.keys.EncrR, p.keys.IntegR
	}
	c := &childSA{cfg: p.cfg, inSPI: p.inSPI, outSPI: p.outSPI, suite: p.suite, mode: p.mode,
		state: childActive, encap: s.natLocal || s.natRemote,
		created: s.stamp(now), weInitiated: p.weInitiated}
	if p.old != nil {
		// Only a rekey can collide with the peer's rekey of the same SA,
		// settled by the nonces (§2.8.1).
		c.nonces = newNonces(p.ni, p.nr)
	}
	if !p.weInitiated && p.old != nil {
		// We answer the peer's rekey: the peer installs this SA only when
		// our answer arrives, so outbound stays on old until then, from
		// the first policy update on (see waitFor).
		c.setWaitFor(p.old)
	}
	lsel, rsel := selectors(p.ts.local), selectors(p.ts.remote)
	base := dataplane.SA{Mode: p.mode, Suite: ds, ESN: p.suite.ESN, Local: s.local, Remote: s.remote,
		Encap: c.encap, LocalTS: lsel, RemoteTS: rsel, Limits: p.cfg.Limits, Path: s.path}
	in := base
	in.SPI, in.Direction = p.inSPI, dataplane.In
	in.Keys = dataplane.Keys{Enc: bytes.Clone(inEnc.Bytes()), Integ: bytes.Clone(inInt.Bytes())}
	switch w := p.cfg.ReplayWindow; {
	case w == 0:
		in.ReplayWindow = 64
	case w > 0:
		in.ReplayWindow = min(w, 4096)
	}
	out := base
	out.SPI, out.Direction = p.outSPI, dataplane.Out
	out.Keys = dataplane.Keys{Enc: bytes.Clone(outEnc.Bytes()), Integ: bytes.Clone(outInt.Bytes())}
	out.TFCPadding = p.cfg.TFCPadding && !s.caps.has(capNoTFC) && p.mode == dataplane.Tunnel
	p.keys.Zero()
	// Both SAs and, for a new group, both policies: one allocation.
	o := s.out()
	o.DataplaneOps = slices.Grow(o.DataplaneOps, 4)
	s.op(DataplaneOp{Kind: OpAddSA, SA: in})
	s.op(DataplaneOp{Kind: OpAddSA, SA: out})
	if p.old != nil && p.old.group != nil {
		c.group = p.old.group
		// A rekey keeps the selectors (§2.9.2): one copy for the group.
		if !p.ts.equal(c.group.sel()) {
			own := p.ts
			c.setOwnTS(&own)
		}
		lsel, rsel = nil, nil // the group's own
	} else {
		c.group = newPolicyGroup(s.policyID(), s.policyID(), p.ts)
	}
	s.setChildren(append(s.childList(), c))
	if h := s.hooks(); h != nil && h.child != nil {
		h.child(c)
	}
	s.syncPolicySel(c.group, lsel, rsel)
	rekey, life := s.childLifetimes(p.cfg)
	if rekey > 0 {
		c.rekeyAt = s.stamp(now.Add(s.jitter(rekey)))
	}
	if life > 0 {
		c.expireAt = s.stamp(now.Add(life))
	}
	return c
}

func (s *IKE) policyID() uint64 {
	b, err := s.randomBytes(8)
	if err != nil {
		return uint64(len(s.childList())+1) << 32
	}
	return binary.BigEndian.Uint64(b) >> 1
}

// syncPolicy brings the group's policies in line with its SAs: outbound
// traffic goes to the newest active SA, inbound is accepted on all.
func (s *IKE) syncPolicy(g *policyGroup) { s.syncPolicySel(g, nil, nil) }

// syncPolicySel is syncPolicy given the group's selectors in the data
// plane's form (nil: made here when a policy operation needs them).
func (s *IKE) syncPolicySel(g *policyGroup, lsel, rsel []dataplane.Selector) {
	var spis []uint32 // inbound, then outbound: the group's spis
	var cur, fallback, held *childSA
	for _, c := range s.childList() {
		if c.group != g {
			continue
		}
		if !c.inGone {
			spis = append(spis, c.inSPI)
		}
		if c.waitForOf() != nil && (c.waitForOf().outGone || !slices.Contains(s.childList(), c.waitForOf())) {
			c.setWaitFor(nil)
		}
		if !c.outGone {
			switch {
			case c.state == childActive && c.waitForOf() == nil:
				cur = c
			case c.state == childActive:
				held = c
			case fallback == nil:
				fallback = c
			}
		}
	}
	if cur == nil {
		cur = fallback
	}
	if cur == nil {
		cur = held
	}
	nIn := len(spis)
	if cur != nil {
		spis = append(spis, cur.outSPI)
	}
	in, out := spis[:nIn:nIn], spis[nIn:]
	pol := func(id uint64, dir dataplane.Direction, spis []uint32) dataplane.Policy {
		if lsel == nil && rsel == nil {
			lsel, rsel = selectors(g.local), selectors(g.remote)
		}
		return dataplane.Policy{ID: id, Direction: dir, Local: lsel, Remote: rsel, Action: dataplane.Protect, SPIs: spis}
	}
	switch {
	case len(in) == 0 && len(out) == 0:
		if g.installed {
			s.op(DataplaneOp{Kind: OpDeletePolicy, PolicyID: g.idOut})
			s.op(DataplaneOp{Kind: OpDeletePolicy, PolicyID: g.idIn})
			g.installed = false
		}
	case !g.installed:
		s.op(DataplaneOp{Kind: OpAddPolicy, Policy: pol(g.idOut, dataplane.Out, out)})
		s.op(DataplaneOp{Kind: OpAddPolicy, Policy: pol(g.idIn, dataplane.In, in)})
		g.installed = true
	default:
		if !slices.Equal(out, g.out()) {
			s.op(DataplaneOp{Kind: OpUpdatePolicy, Policy: pol(g.idOut, dataplane.Out, out)})
		}
		if !slices.Equal(in, g.in()) {
			s.op(DataplaneOp{Kind: OpUpdatePolicy, Policy: pol(g.idIn, dataplane.In, in)})
		}
	}
	g.spis, g.nIn = spis, uint16(len(in))
}

// removeOut takes the outbound half of c away (a rekeyed SA keeps its
// inbound half a little longer, PROTOCOL.md P9).
func (s *IKE) removeOut(c *childSA) {
	if c.outGone {
		return
	}
	c.outGone = true
	s.syncPolicy(c.group)
	s.op(DataplaneOp{Kind: OpDeleteSA, SPI: c.outSPI, Dir: dataplane.Out})
}

// drain ends a Child SA that another one replaced (a rekey, §2.8, or
// the redundant SA of a collision, §2.8.1) once its DELETE exchange is
// done: the outbound half goes now, the inbound half keeps accepting for
// RekeyedDelete. ESP does not travel with IKE (another socket and queue,
// on both ends), so packets the peer sealed with the old SA just before
// it switched may arrive after the DELETE or its answer; §2.8 lets the
// old SA carry traffic until it is deleted, and strongSwan likewise keeps
// a rekeyed inbound SA for delete_rekeyed_delay (PROTOCOL.md P9).
func (s *IKE) drain(now time.Time, c *childSA) {
	if !slices.Contains(s.childList(), c) || c.state == childDraining {
		return
	}
	if c.rekeyOf() != nil {
		c.rekeyOf().release(s)
		c.setRekey(nil)
	}
	c.setPeerNew(nil)
	c.setWaitFor(nil)
	c.state = childDraining
	c.rekeyAt, c.expireAt = 0, 0
	c.deleteAt = s.stamp(now.Add(s.cfg.rekeyedDelete()))
	s.removeOut(c)
	if c.inGone {
		s.removeChild(now, c, ReasonRekeyed, false)
		return
	}
	// Beyond the bound the oldest draining half goes at once.
	var draining []*childSA
	for _, x := range s.childList() {
		if x.state == childDraining {
			draining = append(draining, x)
		}
	}
	for _, x := range draining[:max(0, len(draining)-maxDraining)] {
		s.removeChild(now, x, ReasonRekeyed, false)
	}
}

// live reports whether c is a Child SA (not just a draining inbound half).
func (c *childSA) live() bool { return c.state != childDraining }

// liveChildren counts the Child SAs, draining halves left out.
func (s *IKE) liveChildren() int {
	n := 0
	for _, c := range s.childList() {
		if c.live() {
			n++
		}
	}
	return n
}

// removeChild takes c out of the data plane and the machine; a draining
// half goes without an event (its Child SA was reported rekeyed). The
// last Child SA of a policy group takes the group's draining halves
// along: nothing replaces it, and its policies go with it.
func (s *IKE) removeChild(now time.Time, c *childSA, r Reason, event bool) {
	if !slices.Contains(s.childList(), c) {
		return
	}
	gone := []*childSA{c}
	if c.live() && !slices.ContainsFunc(s.childList(), func(x *childSA) bool { return x != c && x.group == c.group && x.live() }) {
		for _, x := range s.childList() {
			if x != c && x.group == c.group {
				gone = append(gone, x)
			}
		}
	}
	type halves struct{ out, in bool }
	was := make([]halves, len(gone))
	for k, x := range gone {
		was[k] = halves{x.outGone, x.inGone}
		x.outGone, x.inGone = true, true
	}
	o := s.out()
	o.DataplaneOps = slices.Grow(o.DataplaneOps, 2+2*len(gone))
	s.syncPolicy(c.group)
	for k, x := range gone {
		if !was[k].out {
			s.op(DataplaneOp{Kind: OpDeleteSA, SPI: x.outSPI, Dir: dataplane.Out})
		}
		if !was[k].in {
			s.op(DataplaneOp{Kind: OpDeleteSA, SPI: x.inSPI, Dir: dataplane.In})
		}
		s.setChildren(slices.DeleteFunc(s.childList(), func(y *childSA) bool { return y == x }))
		s.cfg.SPIs.ReleaseSPI(x.inSPI)
		if x.rekeyOf() != nil {
			x.rekeyOf().release(s)
		}
	}
	if event && c.live() {
		s.emit(Event{Kind: EventChildDown, Reason: r, Child: s.childInfo(c)})
	}
}

// childBySPI finds a Child SA by either SPI (draining halves left out).
func (s *IKE) childBySPI(spi uint32) *childSA {
	for _, c := range s.childList() {
		if c.live() && (c.inSPI == spi || c.outSPI == spi) {
			return c
		}
	}
	return nil
}

// childByOutSPI finds a Child SA by the peer's inbound SPI, as DELETE and
// REKEY_SA name it (draining halves left out: deleted already).
func (s *IKE) childByOutSPI(spi uint32) *childSA {
	for _, c := range s.childList() {
		if c.live() && c.outSPI == spi {
			return c
		}
	}
	return nil
}

// acceptChild negotiates a Child SA the peer asked for, in IKE_AUTH or
// CREATE_CHILD_SA (old: the SA it rekeys). It returns the response
// payloads and the installed SA, or an error notify.
func (s *IKE) acceptChild(now time.Time, ss *session, m *inbound, ikeAuth bool, old *childSA) ([]ike.Payload, *childSA, *ike.Notify) {
	sa := payloadOf[*ike.SA](m.payloads)
	var tsi, tsr *ike.TrafficSelectors
	for _, t := range payloadsOf[*ike.TrafficSelectors](m.payloads) {
		if t.Responder {
			tsr = t
		} else {
			tsi = t
		}
	}
	nonce := payloadOf[*ike.Nonce](m.payloads)
	ke := payloadOf[*ike.KE](m.payloads)
	if sa == nil || tsi == nil || tsr == nil || (!ikeAuth && (nonce == nil || len(nonce.Data) < ike.MinNonceLen || len(nonce.Data) > ike.MaxNonceLen)) {
		return nil, nil, &ike.Notify{NotifyType: ike.InvalidSyntax}
	}
	// §2.9: narrow to the first configured child that overlaps.
	var cfg *ChildConfig
	var ts tsPack
	cands := []*ChildConfig{}
	if old != nil {
		cands = append(cands, old.cfg)
	} else {
		for i := range s.cfg.Children {
			cands = append(cands, &s.cfg.Children[i])
		}
	}
	for _, cc := range cands {
		allowL, allowR := s.localTSConf(cc), s.remoteTSConf(cc)
		if old != nil {
			allowL, allowR = old.ts()
		}
		var rb, lb [4]ike.TrafficSelector // usually enough: no allocation but the kept copy
		r, l := narrow(rb[:0], tsi.Selectors, allowR), narrow(lb[:0], tsr.Selectors, allowL)
		if len(r) > 0 && len(l) > 0 {
			cfg = cc
			shareL, shareR := cc.LocalTS, cc.RemoteTS
			if old != nil {
				shareL, shareR = old.ts() // a rekey keeps them (§2.9.2)
			}
			ts = packTS(l, r, shareL, shareR)
			break
		}
	}
	if cfg == nil {
		return nil, nil, &ike.Notify{NotifyType: ike.TSUnacceptable}
	}
	keGroup := ike.GroupNone
	if ke != nil && !ikeAuth {
		keGroup = ke.Group
	}
	chosen, err := transform.Select(cfg.Proposals, sa.Proposals, transform.SelectOptions{KEGroup: keGroup, IgnoreDH: ikeAuth})
	if err != nil {
		return nil, nil, &ike.Notify{NotifyType: ike.NoProposalChosen}
	}
	if !ikeAuth {
		if err := transform.CheckKE(chosen, keGroup); err != nil {
			var te *transform.Error
			if asTransformError(err, &te) {
				return nil, nil, ike.NotifyGroup(te.Group)
			}
			return nil, nil, &ike.Notify{NotifyType: ike.NoProposalChosen}
		}
	}
	suite, err := transform.SuiteOf(chosen)
	if _, ok := dpSuite(suite); err != nil || !ok || chosen.Protocol != ike.ProtoESP {
		return nil, nil, &ike.Notify{NotifyType: ike.NoProposalChosen}
	}
	if len(chosen.SPI) != 4 || binary.BigEndian.Uint32(chosen.SPI) == 0 {
		return nil, nil, &ike.Notify{NotifyType: ike.InvalidSyntax}
	}
	peerSPI := binary.BigEndian.Uint32(chosen.SPI)
	mode := dataplane.Tunnel
	if m.notify(ike.UseTransportMode) != nil && cfg.mode() == dataplane.Transport {
		mode = dataplane.Transport
	}
	ni, nr := s.init.niNr(ikeAuth)
	var gir transform.Secret
	var dh *transform.DHKey
	if !ikeAuth {
		ni = nonce.Data
		if nr, err = s.randomBytes(nonceLen); err != nil {
			return nil, nil, &ike.Notify{NotifyType: ike.TemporaryFailure}
		}
		if suite.Group != ike.GroupNone {
			if dh, err = s.newDH(suite.Group); err != nil {
				return nil, nil, &ike.Notify{NotifyType: ike.NoProposalChosen}
			}
			defer dh.Destroy()
			if gir, err = dh.SharedSecret(ke.Data); err != nil {
				return nil, nil, &ike.Notify{NotifyType: ike.InvalidSyntax}
			}
			defer gir.Zero()
		}
	}
	inSPI, err := s.cfg.SPIs.AllocSPI()
	if err != nil {
		return nil, nil, &ike.Notify{NotifyType: ike.TemporaryFailure}
	}
	keys, err := transform.DeriveChildKeys(ss.keys, suite, gir, ni, nr)
	if err != nil {
		s.cfg.SPIs.ReleaseSPI(inSPI)
		return nil, nil, &ike.Notify{NotifyType: ike.NoProposalChosen}
	}
	c := s.installChild(now, childParams{cfg: cfg, old: old, suite: suite, inSPI: inSPI, outSPI: peerSPI, keys: keys,
		ts: ts, mode: mode, ni: ni, nr: nr})
	chosen.SPI = spiBytes(inSPI)
	var ps []ike.Payload
	if mode == dataplane.Transport {
		ps = append(ps, &ike.Notify{NotifyType: ike.UseTransportMode})
	}
	ps = append(ps, &ike.SA{Proposals: []ike.Proposal{chosen}})
	if !ikeAuth {
		ps = append(ps, &ike.Nonce{Data: nr})
		if dh != nil {
			ps = append(ps, &ike.KE{Group: dh.Group(), Data: bytes.Clone(dh.PublicValue())})
		}
	}
	ps = append(ps, &ike.TrafficSelectors{Selectors: ts.remote}, &ike.TrafficSelectors{Responder: true, Selectors: ts.local})
	return ps, c, nil
}

func (in *initState) niNr(ikeAuth bool) ([]byte, []byte) {
	if ikeAuth && in != nil {
		return in.ni, in.nr
	}
	return nil, nil
}

// childFailure is why an offer did not become a Child SA.
type childFailure struct {
	reason Reason
	notify ike.NotifyType
	detail string
}

// completeChild installs the Child SA the responder accepted, or says why not.
func (s *IKE) completeChild(now time.Time, ss *session, m *inbound, o *childOffer) (*childSA, *childFailure) {
	ikeAuth := m.hdr.Exchange == ike.IKEAuth
	fail := func(r Reason, n ike.NotifyType, d string) (*childSA, *childFailure) {
		o.release(s)
		f := &childFailure{reason: r, notify: n, detail: d}
		if ikeAuth {
			s.emit(Event{Kind: EventChildFailed, Reason: r, Notify: n, Detail: d, Child: ChildInfo{Name: o.cfg.Name}})
		}
		return nil, f
	}
	if n := m.errorNotify(); n != nil {
		return fail(notifyReason(n.NotifyType), n.NotifyType, "peer answered "+n.NotifyType.String())
	}
	sa := payloadOf[*ike.SA](m.payloads)
	var tsi, tsr *ike.TrafficSelectors
	for _, t := range payloadsOf[*ike.TrafficSelectors](m.payloads) {
		if t.Responder {
			tsr = t
		} else {
			tsi = t
		}
	}
	if sa == nil || tsi == nil || tsr == nil || len(sa.Proposals) != 1 {
		if ikeAuth && sa == nil {
			return fail(ReasonPeerError, 0, "no Child SA in the IKE_AUTH response")
		}
		return fail(ReasonProtocolError, 0, "response without SA, TSi or TSr")
	}
	chosen := sa.Proposals[0]
	suite, err := transform.SuiteOf(chosen)
	if err == nil {
		_, err = transform.Select(o.props, []ike.Proposal{chosen}, transform.SelectOptions{IgnoreDH: ikeAuth})
	}
	if _, ok := dpSuite(suite); err != nil || !ok {
		return fail(ReasonNoProposalChosen, 0, "responder chose a proposal we did not offer")
	}
	if len(chosen.SPI) != 4 || binary.BigEndian.Uint32(chosen.SPI) == 0 {
		return fail(ReasonProtocolError, 0, "bad ESP SPI in the response")
	}
	if !subsetTS(tsi.Selectors, o.tsi) || !subsetTS(tsr.Selectors, o.tsr) {
		return fail(ReasonTSUnacceptable, 0, "responder widened the traffic selectors")
	}
	mode := dataplane.Tunnel
	if m.notify(ike.UseTransportMode) != nil && o.mode == dataplane.Transport {
		mode = dataplane.Transport
	}
	if mode != o.mode {
		return fail(ReasonNoProposalChosen, 0, "responder refused "+o.mode.String()+" mode")
	}
	ni, nr := s.init.niNr(ikeAuth)
	var gir transform.Secret
	if !ikeAuth {
		nonce := payloadOf[*ike.Nonce](m.payloads)
		if nonce == nil || len(nonce.Data) < ike.MinNonceLen || len(nonce.Data) > ike.MaxNonceLen {
			return fail(ReasonProtocolError, 0, "response without a valid nonce")
		}
		ni, nr = o.ni, nonce.Data
		if suite.Group != ike.GroupNone {
			ke := payloadOf[*ike.KE](m.payloads)
			if o.dh == nil || ke == nil || ke.Group != o.dh.Group() {
				return fail(ReasonProtocolError, 0, "PFS group without a matching KEr")
			}
			if gir, err = o.dh.SharedSecret(ke.Data); err != nil {
				return fail(ReasonProtocolError, 0, "KEr: "+err.Error())
			}
			defer gir.Zero()
		}
	}
	keys, err := transform.DeriveChildKeys(ss.keys, suite, gir, ni, nr)
	if err != nil {
		return fail(ReasonInternal, 0, err.Error())
	}
	if o.dh != nil {
		o.dh.Destroy()
	}
	o.released = true // the SPI now belongs to the Child SA
	shL, shR := o.shareTS()
	c := s.installChild(now, childParams{cfg: o.cfg, old: o.old, suite: suite, inSPI: o.inSPI,
		outSPI: binary.BigEndian.Uint32(chosen.SPI), keys: keys, weInitiated: true,
		ts: packTS(tsi.Selectors, tsr.Selectors, shL, shR), mode: mode, ni: ni, nr: nr})
	if ikeAuth {
		s.emit(Event{Kind: EventChildUp, Child: s.childInfo(c)})
	}
	return c, nil
}

// liveChild reports whether a Child SA of the named config exists or is
// being negotiated.
func (s *IKE) liveChild(name string) bool {
	for _, c := range s.childList() {
		if c.cfg.Name == name && c.state != childDeleting && c.live() {
			return true
		}
	}
	for _, ss := range s.sessions() {
		for _, r := range append([]*request{ss.req}, ss.queued()...) {
			if r != nil && r.offer != nil && r.offer.old == nil && r.offer.cfg.Name == name {
				return true
			}
		}
	}
	return false
}

func asTransformError(err error, te **transform.Error) bool { return errors.As(err, te) }
