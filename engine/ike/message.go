package ike

import (
	"encoding/binary"
	"slices"
)

// Wire sizes (RFC 7296 §3.1, §3.2; RFC 7383 §2.5).
const (
	HeaderLen         = 28 // fixed IKE header
	PayloadHeaderLen  = 4  // generic payload header
	FragmentHeaderLen = 8  // SKF generic header + Fragment Number + Total Fragments
	MaxMessageLen     = 1<<32 - 1
	maxPayloadLen     = 0xffff // Payload Length is 16 bits
	version2          = 0x20   // Major 2, Minor 0 (§3.1)
)

// Flags are the IKE header flags (RFC 7296 §3.1).
type Flags uint8

const (
	FlagInitiator Flags = 0x08 // I: sent by the original initiator of the IKE SA
	FlagVersion   Flags = 0x10 // V: never set by IKEv2 (§3.1)
	FlagResponse  Flags = 0x20 // R: this message is a response
)

func (f Flags) String() string {
	s := ""
	add := func(n string) {
		if s != "" {
			s += "|"
		}
		s += n
	}
	if f&FlagInitiator != 0 {
		add("I")
	}
	if f&FlagVersion != 0 {
		add("V")
	}
	if f&FlagResponse != 0 {
		add("R")
	}
	if rest := f &^ (FlagInitiator | FlagVersion | FlagResponse); rest != 0 {
		add("0x" + hex2(uint8(rest)))
	}
	if s == "" {
		return "0"
	}
	return s
}

func hex2(b uint8) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&0xf]})
}

// Header is the fixed IKE header (RFC 7296 §3.1) without the fields the
// encoder derives: Next Payload (from the first payload), Version (always 2.0
// on send; the minor version is ignored on receipt) and Length.
type Header struct {
	SPIi      uint64
	SPIr      uint64
	Exchange  ExchangeType
	Flags     Flags
	MessageID uint32
}

// Message is an IKE message: header and payloads in wire order. An SK or SKF
// payload (*Encrypted, *EncryptedFragment), if present, is the last (§3.14).
type Message struct {
	Header
	Payloads []Payload
}

// IsResponse reports whether the R flag is set.
func (h *Header) IsResponse() bool { return h.Flags&FlagResponse != 0 }

// IsInitiator reports whether the I flag is set.
func (h *Header) IsInitiator() bool { return h.Flags&FlagInitiator != 0 }

func (h *Header) appendTo(dst []byte, next PayloadType, length uint32) []byte {
	dst = binary.BigEndian.AppendUint64(dst, h.SPIi)
	dst = binary.BigEndian.AppendUint64(dst, h.SPIr)
	dst = append(dst, byte(next), version2, byte(h.Exchange), byte(h.Flags))
	dst = binary.BigEndian.AppendUint32(dst, h.MessageID)
	return binary.BigEndian.AppendUint32(dst, length)
}

// Encode returns the wire form of m.
func (m *Message) Encode() ([]byte, error) { return m.AppendEncode(nil) }

// AppendEncode appends the wire form of m to dst. Next Payload fields and all
// lengths and counts are derived from the payloads.
func (m *Message) AppendEncode(dst []byte) ([]byte, error) {
	start := len(dst)
	dst = slices.Grow(dst, HeaderLen+chainHint(m.Payloads))
	dst = m.Header.appendTo(dst, PayloadNone, 0)
	dst, first, err := appendChain(dst, m.Payloads, true)
	if err != nil {
		return nil, err
	}
	n := len(dst) - start
	if uint64(n) > MaxMessageLen {
		return nil, encodeError(PayloadNone, "message longer than 2^32-1 octets")
	}
	dst[start+16] = byte(first)
	binary.BigEndian.PutUint32(dst[start+24:], uint32(n))
	return dst, nil
}

// decodeHeader checks the fixed header of b (RFC 7296 §3.1, §2.5) and returns
// it with the first payload type.
func decodeHeader(b []byte) (Header, PayloadType, error) {
	if len(b) < HeaderLen {
		return Header{}, 0, &Error{Notify: InvalidSyntax, Reason: "message shorter than the IKE header: " + itoa(len(b)) + " octets"}
	}
	// §2.5: a major version we cannot handle gets INVALID_MAJOR_VERSION; the
	// minor version is ignored.
	if major := b[17] >> 4; major != 2 {
		return Header{}, 0, &Error{Notify: InvalidMajorVersion, Reason: "major version " + itoa(int(major))}
	}
	length := binary.BigEndian.Uint32(b[24:28])
	if uint64(length) != uint64(len(b)) {
		return Header{}, 0, &Error{Notify: InvalidSyntax, Reason: "header Length " + itoa(int(length)) + " does not match datagram length " + itoa(len(b))}
	}
	h := Header{
		SPIi:      binary.BigEndian.Uint64(b[0:8]),
		SPIr:      binary.BigEndian.Uint64(b[8:16]),
		Exchange:  ExchangeType(b[18]),
		Flags:     Flags(b[19]),
		MessageID: binary.BigEndian.Uint32(b[20:24]),
	}
	return h, PayloadType(b[16]), nil
}

// DecodeHeader decodes and checks only the fixed header of a message, e.g. to
// find the IKE SA before decoding the rest.
func DecodeHeader(b []byte) (Header, error) {
	h, _, err := decodeHeader(b)
	return h, err
}

// Decode decodes a whole IKE message. Decoded payloads refer to a private copy
// of b, so b may be reused afterwards. Errors are *Error.
func Decode(b []byte) (*Message, error) {
	m, _, err := DecodeOwned(b)
	return m, err
}

// DecodeOwned is Decode that also returns its copy of the whole message
// (header included), which the payloads refer to: the caller may decrypt
// the SK or SKF payload in place there (transform.OpenPayload) instead of
// copying the datagram once more.
func DecodeOwned(b []byte) (*Message, []byte, error) {
	h, first, err := decodeHeader(b)
	if err != nil {
		return nil, nil, err
	}
	whole := slices.Clone(b)
	own := whole[HeaderLen:]
	c := countChain(first, own)
	// The Message, for up to 8 payloads the payload slice, and the SK
	// payload in one block.
	box := new(struct {
		m  Message
		ps [8]Payload
		sk Encrypted
	})
	var ps []Payload // nil when there are none, as before a round trip
	switch {
	case c.payloads == 0:
	case c.payloads <= len(box.ps):
		ps = box.ps[:0]
	default:
		ps = make([]Payload, 0, c.payloads)
	}
	a := newPayloadAlloc(c)
	a.sk = &box.sk
	ps, err = decodeChain(first, own, true, ps, a)
	if err != nil {
		return nil, nil, err
	}
	box.m = Message{Header: h, Payloads: ps}
	return &box.m, whole, nil
}

// DecodePayloads decodes a decrypted inner payload chain (RFC 7296 §3.14)
// whose first payload is first. Payloads refer to b. SK and SKF are not
// allowed inside it.
func DecodePayloads(first PayloadType, b []byte) ([]Payload, error) {
	c := countChain(first, b)
	var ps []Payload
	if c.payloads > 0 {
		ps = make([]Payload, 0, c.payloads)
	}
	return decodeChain(first, b, false, ps, newPayloadAlloc(c))
}

// EncodePayloads encodes an inner payload chain for an SK or SKF payload and
// returns the type of its first payload (the SK Next Payload value).
func EncodePayloads(ps []Payload) (first PayloadType, b []byte, err error) {
	b, first, err = appendChain(make([]byte, 0, chainHint(ps)), ps, false)
	return first, b, err
}

// decodeChain walks a payload chain (RFC 7296 §3.2). outer allows a final SK
// or SKF payload, whose Next Payload names the first inner payload (§3.14).
// The payloads are appended to ps and allocated by a.
func decodeChain(next PayloadType, b []byte, outer bool, ps []Payload, a payloadAlloc) ([]Payload, error) {
	for next != PayloadNone {
		if len(b) < PayloadHeaderLen {
			return nil, syntaxError(next, "truncated generic payload header")
		}
		np := PayloadType(b[0])
		critical := b[1]&0x80 != 0
		plen := int(binary.BigEndian.Uint16(b[2:4]))
		if plen < PayloadHeaderLen {
			return nil, syntaxError(next, "Payload Length "+itoa(plen)+" shorter than its header")
		}
		if plen > len(b) {
			return nil, syntaxError(next, "Payload Length "+itoa(plen)+" beyond the end of the message ("+itoa(len(b))+" octets left)")
		}
		body := b[PayloadHeaderLen:plen]
		if next == PayloadSK || next == PayloadSKF {
			if !outer {
				return nil, syntaxError(next, "encrypted payload inside an encrypted payload")
			}
			if plen != len(b) {
				return nil, syntaxError(next, "not the last payload of the message (RFC 7296 §3.14)")
			}
		}
		p := a.payload(next)
		if p == nil {
			// §2.5: unknown critical payloads reject the message, others are skipped
			// (kept opaque here so the message re-encodes).
			if critical {
				return nil, &Error{Notify: UnsupportedCriticalPayload, Data: []byte{byte(next)},
					Reason: "unknown critical payload " + next.String()}
			}
			p = &Unknown{PayloadType: next}
		}
		if err := p.decodeBody(body); err != nil {
			return nil, err
		}
		switch e := p.(type) {
		case *Encrypted:
			e.First = np
			return append(ps, p), nil
		case *EncryptedFragment:
			e.First = np
			return append(ps, p), nil
		}
		ps = append(ps, p)
		b = b[plen:]
		next = np
	}
	if len(b) != 0 {
		return nil, &Error{Notify: InvalidSyntax, Reason: itoa(len(b)) + " octets after the last payload"}
	}
	return ps, nil
}

// appendChain encodes ps with their generic headers and returns the type of
// the first payload.
func appendChain(dst []byte, ps []Payload, outer bool) ([]byte, PayloadType, error) {
	first := PayloadNone
	prevNext := -1 // offset of the previous payload's Next Payload octet
	for i, p := range ps {
		if p == nil {
			return nil, 0, encodeError(PayloadNone, "nil payload at index "+itoa(i))
		}
		pt := p.Type()
		if pt == PayloadNone {
			return nil, 0, encodeError(PayloadNone, "payload type NONE at index "+itoa(i))
		}
		if pt == PayloadSK || pt == PayloadSKF {
			if !outer {
				return nil, 0, encodeError(pt, "encrypted payload inside an encrypted payload")
			}
			if i != len(ps)-1 {
				return nil, 0, encodeError(pt, "must be the last payload (RFC 7296 §3.14)")
			}
		}
		if prevNext < 0 {
			first = pt
		} else {
			dst[prevNext] = byte(pt)
		}
		start := len(dst)
		prevNext = start
		// §3.2: the critical bit is sent as zero for every payload defined in
		// RFC 7296; the opaque Unknown payloads kept on decode were not critical.
		dst = append(dst, byte(PayloadNone), 0, 0, 0)
		var err error
		dst, err = p.appendBody(dst)
		if err != nil {
			return nil, 0, err
		}
		switch e := p.(type) {
		case *Encrypted:
			dst[start] = byte(e.First)
		case *EncryptedFragment:
			dst[start] = byte(e.First)
		}
		n := len(dst) - start
		if n > maxPayloadLen {
			return nil, 0, encodeError(pt, "payload longer than 65535 octets")
		}
		binary.BigEndian.PutUint16(dst[start+2:], uint16(n))
	}
	return dst, first, nil
}

// EncryptedOffset returns the offset of the SK or SKF payload body (IV first)
// in the encoded message b. b[:off] is the AEAD associated data: "from the
// first octet of the Fixed IKE Header through the last octet of the Payload
// Header of the Encrypted Payload" (RFC 5282 §5.1), for SKF through the
// Total Fragments field (RFC 7383 §2.5). For integrity transforms the ICV
// covers b[:len(b)-icvLen] (RFC 7296 §3.14).
//
// To seal: put an *Encrypted (or *EncryptedFragment) whose Body has the final
// length (IV + ciphertext + ICV) last in the message, Encode it, so every
// Length field is final, then write the IV, ciphertext and ICV into b[off:].
func EncryptedOffset(b []byte) (int, error) {
	_, next, err := decodeHeader(b)
	if err != nil {
		return 0, err
	}
	off := HeaderLen
	for next != PayloadNone {
		if len(b)-off < PayloadHeaderLen {
			return 0, syntaxError(next, "truncated generic payload header")
		}
		plen := int(binary.BigEndian.Uint16(b[off+2 : off+4]))
		if plen < PayloadHeaderLen || plen > len(b)-off {
			return 0, syntaxError(next, "bad Payload Length "+itoa(plen))
		}
		switch next {
		case PayloadSK:
			if off+plen != len(b) {
				return 0, syntaxError(next, "not the last payload of the message (RFC 7296 §3.14)")
			}
			return off + PayloadHeaderLen, nil
		case PayloadSKF:
			if off+plen != len(b) {
				return 0, syntaxError(next, "not the last payload of the message (RFC 7296 §3.14)")
			}
			if plen < FragmentHeaderLen {
				return 0, syntaxError(next, "shorter than the fragment header")
			}
			return off + FragmentHeaderLen, nil
		}
		next = PayloadType(b[off])
		off += plen
	}
	return 0, &Error{Notify: InvalidSyntax, Reason: "message has no SK or SKF payload"}
}

// AppendSKHeader appends to dst the IKE header h and the generic header of
// an SK payload (RFC 7296 §3.14) whose first inner payload is first and
// whose body (IV | ciphertext | ICV) will be bodyLen octets, as the only
// payload, every length final. The result is what the body's AEAD
// associated data (RFC 5282 §5.1) or ICV covers: Cipher.Seal appends the
// body to it, in place when dst has room for bodyLen more octets. It gives
// the bytes Encode and EncryptedOffset give for such a message, without
// building the payload or its body.
func AppendSKHeader(dst []byte, h Header, first PayloadType, bodyLen int) ([]byte, error) {
	return appendSealedHeader(dst, h, PayloadSK, first, 0, 0, bodyLen)
}

// AppendSKFHeader is AppendSKHeader for one Encrypted Fragment payload
// (RFC 7383 §2.5): the result ends with Fragment Number and Total
// Fragments, and first is the first inner payload in fragment 1 only.
func AppendSKFHeader(dst []byte, h Header, first PayloadType, number, total uint16, bodyLen int) ([]byte, error) {
	if number == 0 || number > total {
		return nil, encodeError(PayloadSKF, "Fragment Number "+itoa(int(number))+" outside 1.."+itoa(int(total)))
	}
	return appendSealedHeader(dst, h, PayloadSKF, first, number, total, bodyLen)
}

func appendSealedHeader(dst []byte, h Header, pt, first PayloadType, number, total uint16, bodyLen int) ([]byte, error) {
	hdr := PayloadHeaderLen
	if pt == PayloadSKF {
		hdr = FragmentHeaderLen
	}
	if bodyLen < 0 {
		return nil, encodeError(pt, "negative body length "+itoa(bodyLen))
	}
	if hdr+bodyLen > maxPayloadLen {
		return nil, encodeError(pt, "payload longer than 65535 octets")
	}
	dst = slices.Grow(dst, HeaderLen+hdr+bodyLen)
	dst = h.appendTo(dst, pt, uint32(HeaderLen+hdr+bodyLen))
	dst = append(dst, byte(first), 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(hdr+bodyLen))
	if pt == PayloadSKF {
		dst = binary.BigEndian.AppendUint16(dst, number)
		dst = binary.BigEndian.AppendUint16(dst, total)
	}
	return dst, nil
}
