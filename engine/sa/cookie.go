package sa

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"net/netip"
	"time"

	"github.com/mifsec/mifsec/engine/ike"
)

// Cookies computes and checks the stateless cookies of RFC 7296 §2.6:
//
//	Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>)
//
// with HMAC-SHA-256 keyed by the secret. The secret rotates every Rotate;
// cookies made with the previous secret stay valid for one more period.
// It also counts half-open IKE SAs: above Threshold, AcceptInit demands
// cookies. Not safe for concurrent use (the glue's state goroutine owns it).
type Cookies struct {
	Rotate    time.Duration // 0 = 2 minutes
	Threshold int           // half-open SAs before cookies are required; 0 = 30 (strongSwan)

	rng         io.Reader
	cur, prev   [32]byte
	version     uint8
	rotated     time.Time
	halfOpen    int
	initialized bool
}

// NewCookies makes a cookie jar whose secrets come from rng.
func NewCookies(rng io.Reader) *Cookies { return &Cookies{rng: rng} }

func (c *Cookies) rotate(now time.Time) error {
	period := c.Rotate
	if period <= 0 {
		period = 2 * time.Minute
	}
	if c.initialized && now.Sub(c.rotated) < period {
		return nil
	}
	var next [32]byte
	if _, err := io.ReadFull(c.rng, next[:]); err != nil {
		return err
	}
	if c.initialized {
		c.prev = c.cur
		c.version++
	} else {
		c.prev = next
	}
	c.cur, c.rotated, c.initialized = next, now, true
	clear(next[:])
	return nil
}

func cookieMAC(secret *[32]byte, version uint8, ni []byte, ip netip.Addr, spii uint64) []byte {
	m := hmac.New(sha256.New, secret[:])
	m.Write(ni)
	m.Write(ip.Unmap().AsSlice())
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], spii)
	m.Write(b[:])
	return append([]byte{version}, m.Sum(nil)...)
}

// Compute returns the cookie for an initiator (33 octets, §2.6: 1..64).
func (c *Cookies) Compute(now time.Time, ni []byte, ip netip.Addr, spii uint64) ([]byte, error) {
	if err := c.rotate(now); err != nil {
		return nil, err
	}
	return cookieMAC(&c.cur, c.version, ni, ip, spii), nil
}

// Verify checks a cookie returned by an initiator.
func (c *Cookies) Verify(now time.Time, cookie, ni []byte, ip netip.Addr, spii uint64) bool {
	if err := c.rotate(now); err != nil || len(cookie) != 1+sha256.Size {
		return false
	}
	switch cookie[0] {
	case c.version:
		return hmac.Equal(cookie, cookieMAC(&c.cur, c.version, ni, ip, spii))
	case c.version - 1:
		return hmac.Equal(cookie, cookieMAC(&c.prev, c.version-1, ni, ip, spii))
	}
	return false
}

// Opened and Settled count half-open IKE SAs: call Opened when
// NewResponder returns a live machine, Settled when it reports EventIKEUp
// or Done before that.
func (c *Cookies) Opened() { c.halfOpen++ }

// Settled: see Opened.
func (c *Cookies) Settled() {
	if c.halfOpen > 0 {
		c.halfOpen--
	}
}

// HalfOpen is the current count.
func (c *Cookies) HalfOpen() int { return c.halfOpen }

// Required reports whether new IKE_SA_INIT requests must carry a cookie.
func (c *Cookies) Required() bool {
	t := c.Threshold
	if t <= 0 {
		t = 30
	}
	return c.halfOpen >= t
}

// AcceptInit screens an IKE_SA_INIT request for which no IKE SA exists
// (msg may be nil: it is decoded from d.Data). ok means: go on with
// NewResponder. Otherwise reply, when not nil, is the datagram data to
// send back (HDR(SPIi, 0), N(COOKIE), §2.6); a nil reply means drop.
func (c *Cookies) AcceptInit(now time.Time, d Datagram, msg *ike.Message) (reply []byte, ok bool) {
	if msg == nil {
		m, err := ike.Decode(d.Data)
		if err != nil {
			return nil, false
		}
		msg = m
	}
	h := msg.Header
	if h.Exchange != ike.IKESAInit || h.IsResponse() || !h.IsInitiator() || h.SPIi == 0 || h.SPIr != 0 || h.MessageID != 0 {
		return nil, false
	}
	if !c.Required() {
		return nil, true
	}
	nonce := payloadOf[*ike.Nonce](msg.Payloads)
	if nonce == nil {
		return nil, false
	}
	// §2.6: the cookie comes back as the first payload.
	if len(msg.Payloads) > 0 {
		if n, isN := msg.Payloads[0].(*ike.Notify); isN && n.NotifyType == ike.Cookie &&
			c.Verify(now, n.Data, nonce.Data, d.Remote.Addr(), h.SPIi) {
			return nil, true
		}
	}
	ck, err := c.Compute(now, nonce.Data, d.Remote.Addr(), h.SPIi)
	if err != nil {
		return nil, false
	}
	m := ike.Message{Header: ike.Header{SPIi: h.SPIi, Exchange: ike.IKESAInit, Flags: ike.FlagResponse},
		Payloads: []ike.Payload{&ike.Notify{NotifyType: ike.Cookie, Data: ck}}}
	b, err := m.Encode()
	if err != nil {
		return nil, false
	}
	return b, false
}

// InvalidSPIReply builds the unprotected INVALID_IKE_SPI answer to a
// request for an IKE SA we do not know (RFC 7296 §1.5, §2.21.4): SPIs and
// Message ID copied, R set, exchange INFORMATIONAL. Responses get no
// answer (ok false). Rate limiting is the glue's.
func InvalidSPIReply(d Datagram) (reply Datagram, ok bool) {
	h, err := ike.DecodeHeader(d.Data)
	if err != nil || h.IsResponse() {
		return Datagram{}, false
	}
	rh := ike.Header{SPIi: h.SPIi, SPIr: h.SPIr, Exchange: ike.Informational, MessageID: h.MessageID, Flags: ike.FlagResponse}
	if !h.IsInitiator() {
		rh.Flags |= ike.FlagInitiator
	}
	m := ike.Message{Header: rh, Payloads: []ike.Payload{&ike.Notify{NotifyType: ike.InvalidIKESPI}}}
	b, err := m.Encode()
	if err != nil {
		return Datagram{}, false
	}
	return Datagram{Local: d.Local, Remote: d.Remote, Data: b}, true
}
