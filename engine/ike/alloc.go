package ike

import "encoding/binary"

// Allocation of decoded payloads and of encode buffers. A decoded message
// takes a few allocations whatever its payload count: a first pass over
// the generic headers (RFC 7296 §3.2) counts the payloads, then the payload
// slice and one block for the first payload of each common type and the
// first Notify payloads are allocated at once (Decode puts the Message, its
// payload slice and an SK payload in one more). A payload retained by a
// caller keeps its block alive (a few hundred octets).

// chainCount is what the first pass found: the payload count and the
// Notify count of a chain, as far as its headers are well formed (the
// decoder reports the faults).
type chainCount struct {
	payloads, notifies, common int
}

func countChain(next PayloadType, b []byte) chainCount {
	var c chainCount
	for next != PayloadNone && len(b) >= PayloadHeaderLen {
		c.payloads++
		switch next {
		case PayloadNotify:
			c.notifies++
		case PayloadSA, PayloadKE, PayloadIDi, PayloadIDr, PayloadAUTH, PayloadNonce, PayloadTSi, PayloadTSr, PayloadCP:
			c.common++
		}
		plen := int(binary.BigEndian.Uint16(b[2:4]))
		if next == PayloadSK || next == PayloadSKF || plen < PayloadHeaderLen || plen > len(b) {
			break
		}
		next = PayloadType(b[0])
		b = b[plen:]
	}
	return c
}

// inlineNotifies is how many Notify payloads commonPayloads holds: a
// handshake message carries a few (NAT detection, fragmentation, hash
// algorithms, INITIAL_CONTACT, MOBIKE_SUPPORTED, ...).
const inlineNotifies = 4

// commonPayloads holds the first payload of each type a handshake message
// carries, and its first Notify payloads.
type commonPayloads struct {
	sa       SA
	ke       KE
	nonce    Nonce
	idi, idr Identification
	auth     Auth
	tsi, tsr TrafficSelectors
	cp       Config
	used     uint16 // bit per field above
	notify   [inlineNotifies]Notify
}

// payloadAlloc hands out the payload structs of one decoded chain.
type payloadAlloc struct {
	common   *commonPayloads
	notifies []Notify   // the next free Notify structs (in common)
	more     []Notify   // then these
	sk       *Encrypted // the SK payload's struct, if the caller has one
}

func newPayloadAlloc(c chainCount) payloadAlloc {
	var a payloadAlloc
	if c.common+c.notifies > 1 {
		a.common = new(commonPayloads)
		a.notifies = a.common.notify[:min(c.notifies, inlineNotifies)]
	}
	if n := c.notifies - len(a.notifies); n > 1 {
		a.more = make([]Notify, n)
	}
	return a
}

// Bits of commonPayloads.used.
const (
	useSA uint16 = 1 << iota
	useKE
	useNonce
	useIDi
	useIDr
	useAUTH
	useTSi
	useTSr
	useCP
)

// take marks field bit of the common block used and reports whether it
// was free.
func (c *commonPayloads) take(bit uint16) bool {
	if c.used&bit != 0 {
		return false
	}
	c.used |= bit
	return true
}

// payload returns an empty payload of a known type, or nil, like
// newPayload.
func (a *payloadAlloc) payload(t PayloadType) Payload {
	if t == PayloadNotify && len(a.notifies) == 0 {
		a.notifies, a.more = a.more, nil
	}
	if t == PayloadNotify && len(a.notifies) > 0 {
		p := &a.notifies[0]
		a.notifies = a.notifies[1:]
		return p
	}
	if t == PayloadSK && a.sk != nil {
		p := a.sk
		a.sk = nil
		return p
	}
	if c := a.common; c != nil {
		switch {
		case t == PayloadSA && c.take(useSA):
			return &c.sa
		case t == PayloadKE && c.take(useKE):
			return &c.ke
		case t == PayloadNonce && c.take(useNonce):
			return &c.nonce
		case t == PayloadIDi && c.take(useIDi):
			return &c.idi
		case t == PayloadIDr && c.take(useIDr):
			c.idr.Responder = true
			return &c.idr
		case t == PayloadAUTH && c.take(useAUTH):
			return &c.auth
		case t == PayloadTSi && c.take(useTSi):
			return &c.tsi
		case t == PayloadTSr && c.take(useTSr):
			c.tsr.Responder = true
			return &c.tsr
		case t == PayloadCP && c.take(useCP):
			return &c.cp
		}
	}
	return newPayload(t)
}

// sizeHint is about the body length of p (at least it for the common
// payloads), so an encoder can size its buffer once; a wrong guess only
// costs a regrowth.
func sizeHint(p Payload) int {
	switch p := p.(type) {
	case *Encrypted:
		return len(p.Body)
	case *EncryptedFragment:
		return 4 + len(p.Body)
	case *Nonce:
		return len(p.Data)
	case *KE:
		return 4 + len(p.Data)
	case *Notify:
		return 4 + len(p.SPI) + len(p.Data)
	case *Identification:
		return 4 + len(p.Data)
	case *Auth:
		return 4 + len(p.Data)
	case *Cert:
		return 1 + len(p.Data)
	case *CertReq:
		return 1 + len(p.Data)
	case *EAP:
		return len(p.Message)
	case *VendorID:
		return len(p.Data)
	case *Unknown:
		return len(p.Body)
	case *Delete:
		return 4 + 4*len(p.SPIs)
	case *SA:
		n := 0
		for _, pr := range p.Proposals {
			n += 8 + len(pr.SPI) + 12*len(pr.Transforms) // §3.3.1, §3.3.2, §3.3.5
		}
		return n
	case *TrafficSelectors:
		return 4 + 40*len(p.Selectors) // §3.13.1: 40 octets for IPv6
	case *Config:
		n := 4
		for _, at := range p.Attributes {
			n += 4 + len(at.Value)
		}
		return n
	}
	return 64
}

// chainHint is about the encoded length of ps, generic headers included.
func chainHint(ps []Payload) int {
	n := 0
	for _, p := range ps {
		if p != nil {
			n += PayloadHeaderLen + sizeHint(p)
		}
	}
	return n
}
