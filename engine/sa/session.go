package sa

import (
	"bytes"
	"errors"
	"net/netip"
	"time"
	"unique"

	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/transform"
)

// session is one IKE SA on the wire: SPIs, keys and message state. An IKE
// value holds the current session and, during an IKE rekey (RFC 7296
// §2.18), the ones being created or retired.
type session struct {
	spii, spir uint64
	initiator  bool // original initiator of this IKE SA: sets the I flag (§2.2)
	deleting   bool // our DELETE of this IKE SA is outstanding
	suite      transform.Suite
	// algs is the suite's name for Info, made on first use and shared by
	// the sessions of that suite (8 bytes and no string of its own).
	algs    unique.Handle[string]
	keys    *transform.Keys
	out, in transform.Cipher
	nonces  *nonces // of the rekey that made it (§2.8.2), else nil

	nextReq uint32   // Message ID of our next request (§2.2)
	expect  uint32   // Message ID of the peer's next request
	req     *request // our outstanding request: window 1 (§2.3)
	resp    *cachedResp
	// x holds what a session has only for a while (sessionRare); nil for
	// an idle one.
	x *sessionRare
	// rtt is the IKE SA's last round-trip time, kept here (passed on by
	// an IKE rekey).
	rtt time.Duration
}

// sessionRare is the state a session holds only for a while, apart so
// that an idle session takes the 128-byte size class (per-SA memory);
// it goes when the last of it does (settle).
type sessionRare struct {
	queue []*request // requests waiting for the window (queued)
	// asm reassembles fragmented requests [0] and responses [1] (RFC
	// 7383); made at the first fragment, dropped once both are idle.
	asm *[2]assembly
	// retireAt drops a session the peer should delete but did not (a
	// stamp of its IKE SA).
	retireAt stamp
}

// rare returns the rare state, made on first use.
func (ss *session) rare() *sessionRare {
	if ss.x == nil {
		ss.x = new(sessionRare)
	}
	return ss.x
}

// settle drops the rare state once empty.
func (ss *session) settle() {
	if x := ss.x; x != nil && len(x.queue) == 0 && x.asm == nil && x.retireAt == 0 {
		ss.x = nil
	}
}

// assembler is the fragment reassembly state, nil without.
func (ss *session) assembler() *[2]assembly {
	if ss.x == nil {
		return nil
	}
	return ss.x.asm
}

// retireAt is when to drop a session the peer did not delete, 0 for none.
func (ss *session) retireAt() stamp {
	if ss.x == nil {
		return 0
	}
	return ss.x.retireAt
}

func (ss *session) setRetireAt(at stamp) {
	if at != 0 {
		ss.rare().retireAt = at
	} else if ss.x != nil {
		ss.x.retireAt = 0
		ss.settle()
	}
}

// nonces are Ni and Nr of the exchange that made an SA.
type nonces struct{ ni, nr []byte }

func newNonces(ni, nr []byte) *nonces { return &nonces{ni: bytes.Clone(ni), nr: bytes.Clone(nr)} }

// pair returns both, nil without.
func (n *nonces) pair() (ni, nr []byte) {
	if n == nil {
		return nil, nil
	}
	return n.ni, n.nr
}

// maxQueue bounds the requests waiting for the window.
const maxQueue = 16

// assembly collects the fragments of one message (RFC 7383 §2.6).
type assembly struct {
	r  *ike.Reassembler
	id uint32
	on bool
}

// Reassembly limits: IKE_AUTH with a certificate chain is the largest
// message we expect.
const (
	maxFragments    = 64
	maxReassembled  = 64 << 10
	maxDatagramSize = 64 << 10
)

func (a *assembly) add(id uint32, f ike.Fragment) (ike.PayloadType, []byte, bool, error) {
	if a.r == nil {
		a.r = ike.NewReassembler(maxFragments, maxReassembled)
	}
	if !a.on || a.id != id {
		a.r.Reset()
		a.id, a.on = id, true
	}
	first, inner, done, err := a.r.Add(f)
	if done {
		a.on = false
	}
	return first, inner, done, err
}

type request struct {
	exch     ike.ExchangeType
	payloads []ike.Payload
	id       uint32
	packets  [][]byte
	one      [1][]byte // backs packets when the request is one datagram
	local    netip.AddrPort
	remote   netip.AddrPort
	tries    int
	deadline time.Time
	sentAt   time.Time // last (re)transmission on the path in use, for the RTT (mobike.go)
	// limit, when set, bounds the whole exchange: it fails at giveUpAt
	// even when retransmissions are left (liveness checks, DPDTimeout).
	limit    time.Duration
	giveUpAt time.Time
	offer    *childOffer // the Child SA this request proposes, if any
	onResp   func(now time.Time, m *inbound)
	onFail   func(now time.Time)
}

// cachedResp is the response to the peer's last request, kept until the
// next one (RFC 7296 §2.1). The IKE_SA_INIT request a responder answered
// is its initState's reqRaw (56 bytes: the 64-byte size class).
type cachedResp struct {
	id  uint32
	one [1][]byte // the response when it is one datagram
	// frags are its datagrams when there are several (RFC 7383 fragments);
	// behind a pointer, as few responses have them (48-byte size class).
	frags *[][]byte
}

// packets are the response's datagrams.
func (c *cachedResp) packets() [][]byte {
	if c.frags != nil {
		return *c.frags
	}
	return c.one[:]
}

// setPackets keeps pk as the response's datagrams.
func (c *cachedResp) setPackets(pk [][]byte) {
	if len(pk) == 1 {
		c.one[0], c.frags = pk[0], nil
		return
	}
	f := pk
	c.frags = &f
}

// queued are the requests waiting for the window, oldest first.
func (ss *session) queued() []*request {
	if ss.x == nil {
		return nil
	}
	return ss.x.queue
}

// setQueued replaces them.
func (ss *session) setQueued(q []*request) {
	if len(q) > 0 {
		ss.rare().queue = q
	} else if ss.x != nil {
		ss.x.queue = nil
		ss.settle()
	}
}

// inbound is an authenticated, decrypted (or IKE_SA_INIT) message.
type inbound struct {
	hdr      ike.Header
	payloads []ike.Payload
	dg       Datagram
}

func (m *inbound) notify(t ike.NotifyType) *ike.Notify {
	for _, p := range m.payloads {
		if n, ok := p.(*ike.Notify); ok && n.NotifyType == t {
			return n
		}
	}
	return nil
}

// errorNotify returns the first error notify (§3.10.1), if any.
func (m *inbound) errorNotify() *ike.Notify {
	for _, p := range m.payloads {
		if n, ok := p.(*ike.Notify); ok && n.NotifyType.IsError() {
			return n
		}
	}
	return nil
}

func payloadOf[T ike.Payload](ps []ike.Payload) T {
	var zero T
	for _, p := range ps {
		if v, ok := p.(T); ok {
			return v
		}
	}
	return zero
}

func payloadsOf[T ike.Payload](ps []ike.Payload) []T {
	var out []T
	for _, p := range ps {
		if v, ok := p.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func (ss *session) localSPI() uint64 {
	if ss.initiator {
		return ss.spii
	}
	return ss.spir
}

func (ss *session) header(exch ike.ExchangeType, id uint32, response bool) ike.Header {
	h := ike.Header{SPIi: ss.spii, SPIr: ss.spir, Exchange: exch, MessageID: id}
	if ss.initiator {
		h.Flags |= ike.FlagInitiator
	}
	if response {
		h.Flags |= ike.FlagResponse
	}
	return h
}

// ciphers makes sure the IKE ciphers exist: they are built from the keys
// and dropped again while the IKE SA is idle (park), because the AES-GCM
// state of both directions is most of an idle IKE SA's memory.
func (ss *session) ciphers() error {
	if ss.keys == nil {
		return errNoKeys
	}
	if ss.out != nil {
		return nil
	}
	out, in, err := ss.keys.Ciphers(ss.initiator)
	if err != nil {
		return err
	}
	ss.out, ss.in = out, in
	return nil
}

// park drops the ciphers of an idle session (nothing outstanding, nothing
// being reassembled); the next message builds them again from the keys.
func (ss *session) park() {
	if a := ss.assembler(); a != nil && !a[0].on && !a[1].on {
		ss.x.asm = nil
		ss.settle()
	}
	if ss.out == nil || ss.req != nil || len(ss.queued()) > 0 || ss.assembler() != nil {
		return
	}
	ss.out.Destroy()
	ss.in.Destroy()
	ss.out, ss.in = nil, nil
}

// authDone drops SK_pi and SK_pr (zeroed) once the session's IKE_AUTH is
// over or when it has none: they only sign its AUTH payloads (RFC 7296
// §2.15); rekeys and RFC 7791 clones derive from SK_d (§2.18).
func (ss *session) authDone() {
	if ss.keys != nil && ss.keys.PI.Len() > 0 {
		ss.keys = ss.keys.WithoutAuth()
	}
}

// destroy clears the keys of the session.
func (ss *session) destroy() {
	if ss.keys != nil {
		ss.keys.Zero()
	}
	if ss.out != nil {
		ss.out.Destroy()
	}
	if ss.in != nil {
		ss.in.Destroy()
	}
	ss.req, ss.resp = nil, nil
	ss.setQueued(nil)
}

// blockSize is the padding alignment of the IKE cipher (RFC 7296 §3.14).
func blockSize(s transform.Suite) int {
	if s.AEAD() {
		return 1
	}
	return 16 // AES-CBC is the only block cipher transform implements
}

// errNoKeys is returned when a message must be protected before keys exist.
var errNoKeys = errors.New("sa: no IKE SA keys yet")

// seal encrypts payloads into one SK message or, when the peer accepts
// fragments and the message would exceed the MTU, into SKF fragments
// (RFC 7383 §2.5). It returns the datagrams (non-ESP marker excluded); a
// single one in one[:] when one is not nil.
func (s *IKE) seal(ss *session, h ike.Header, payloads []ike.Payload, local, remote netip.AddrPort, one *[1][]byte) ([][]byte, error) {
	if err := ss.ciphers(); err != nil {
		return nil, err
	}
	first, inner, err := ike.EncodePayloads(payloads)
	if err != nil {
		return nil, err
	}
	overhead := 20 + 8
	if remote.Addr().Unmap().Is6() {
		overhead = 40 + 8
	}
	if local.Port() == natTPort || remote.Port() == natTPort {
		overhead += 4
	}
	whole := overhead + ike.HeaderLen + ike.PayloadHeaderLen + ss.out.SealedLen(len(inner))
	if s.fragOK() && whole > s.cfg.fragmentMTU() {
		frags, err := ike.SplitFragments(first, inner, ike.FragmentLayout{
			MaxDatagram: s.cfg.fragmentMTU(), Overhead: overhead,
			IVLen: ss.out.IVLen(), ICVLen: ss.out.ICVLen(), BlockSize: blockSize(ss.suite),
		})
		if err == nil {
			out := make([][]byte, 0, len(frags))
			for _, f := range frags {
				b, err := ike.AppendSKFHeader(nil, h, f.First, f.Number, f.Total, ss.out.SealedLen(len(f.Data)))
				if err == nil {
					b, err = transform.SealPayload(ss.out, b, f.Data)
				}
				if err != nil {
					return nil, err
				}
				out = append(out, b)
			}
			return out, nil
		}
		// The MTU leaves no room for fragments: send the message whole.
	}
	// The header with every length final, then the body sealed after it in
	// the same buffer (AEAD data or ICV input: RFC 7296 §3.14, RFC 5282 §5.1).
	b, err := ike.AppendSKHeader(nil, h, first, ss.out.SealedLen(len(inner)))
	if err == nil {
		b, err = transform.SealPayload(ss.out, b, inner)
	}
	if err != nil {
		return nil, err
	}
	if one == nil {
		return [][]byte{b}, nil
	}
	one[0] = b
	return one[:], nil
}

// openResult is what open found in an encrypted message.
type openResult struct {
	payloads []ike.Payload
	complete bool  // false: a fragment, more to come
	first    bool  // fragment number 1 (or unfragmented)
	decode   error // the inner chain did not decode (an *ike.Error)
	drop     bool  // integrity or fragment failure: drop silently
	reason   DropReason
}

// open authenticates and decrypts an SK message or one SKF fragment
// (RFC 7296 §3.14, RFC 7383 §2.6: fragments are checked before
// reassembly), in place in buf: the copy of the datagram that msg was
// decoded from (ike.DecodeOwned). assemble is false for a retransmitted
// request, whose fragments are only checked.
func (s *IKE) open(ss *session, h ike.Header, buf []byte, msg *ike.Message, assemble bool) openResult {
	if ss.keys == nil || len(msg.Payloads) == 0 {
		return openResult{drop: true, reason: DropNotEncrypted}
	}
	if err := ss.ciphers(); err != nil {
		return openResult{drop: true, reason: DropNotEncrypted}
	}
	off, err := ike.EncryptedOffset(buf)
	if err != nil {
		return openResult{drop: true, reason: DropNotEncrypted}
	}
	switch p := msg.Payloads[len(msg.Payloads)-1].(type) {
	case *ike.Encrypted:
		inner, err := transform.OpenPayload(ss.in, buf, off)
		if err != nil {
			return openResult{drop: true, reason: DropIntegrity}
		}
		ps, err := ike.DecodePayloads(p.First, inner)
		return openResult{payloads: ps, complete: true, first: true, decode: err}
	case *ike.EncryptedFragment:
		if !s.fragLocal() {
			// RFC 7383 §2.3: only after we announced support.
			return openResult{drop: true, reason: DropFragment}
		}
		inner, err := transform.OpenPayload(ss.in, buf, off)
		if err != nil {
			return openResult{drop: true, reason: DropIntegrity}
		}
		if !assemble {
			return openResult{first: p.Number == 1}
		}
		asm := ss.assembler()
		if asm == nil {
			asm = new([2]assembly)
			ss.rare().asm = asm
		}
		a := &asm[0]
		if h.IsResponse() {
			a = &asm[1]
		}
		first, whole, done, err := a.add(h.MessageID, ike.Fragment{First: p.First, Number: p.Number, Total: p.Total, Data: inner})
		if err != nil {
			return openResult{drop: true, reason: DropFragment}
		}
		if !done {
			return openResult{first: p.Number == 1}
		}
		ps, err := ike.DecodePayloads(first, whole)
		return openResult{payloads: ps, complete: true, decode: err}
	}
	return openResult{drop: true, reason: DropNotEncrypted}
}
