package ike

import (
	"encoding/binary"
	"net/netip"
)

// Notify is the Notify payload (RFC 7296 §3.10). Protocol and SPI are set
// only when the notification concerns a Child SA (e.g. REKEY_SA: ESP, 4-octet
// SPI); for the IKE SA both are empty (§3.10: SPI Size MUST be zero).
type Notify struct {
	Protocol   ProtocolID
	SPI        []byte
	NotifyType NotifyType
	Data       []byte
}

func (*Notify) Type() PayloadType { return PayloadNotify }

func (p *Notify) appendBody(dst []byte) ([]byte, error) {
	if len(p.SPI) > 0xff {
		return nil, encodeError(PayloadNotify, "SPI longer than 255 octets")
	}
	dst = append(dst, byte(p.Protocol), byte(len(p.SPI)))
	dst = binary.BigEndian.AppendUint16(dst, uint16(p.NotifyType))
	dst = append(dst, p.SPI...)
	return append(dst, p.Data...), nil
}

func (p *Notify) decodeBody(b []byte) error {
	if len(b) < 4 {
		return syntaxError(PayloadNotify, "shorter than 4 octets")
	}
	spiSize := int(b[1])
	if 4+spiSize > len(b) {
		return syntaxError(PayloadNotify, "SPI Size "+itoa(spiSize)+" beyond the payload")
	}
	p.Protocol = ProtocolID(b[0])
	p.NotifyType = NotifyType(binary.BigEndian.Uint16(b[2:4]))
	p.SPI = nilIfEmpty(b[4 : 4+spiSize])
	p.Data = nilIfEmpty(b[4+spiSize:])
	return nil
}

// NotifyGroup is the data of INVALID_KE_PAYLOAD: the accepted group (§3.10.1).
func NotifyGroup(g GroupID) *Notify {
	return &Notify{NotifyType: InvalidKEPayload, Data: binary.BigEndian.AppendUint16(nil, uint16(g))}
}

// Group returns the group of an INVALID_KE_PAYLOAD notify.
func (p *Notify) Group() (GroupID, bool) {
	if p.NotifyType != InvalidKEPayload || len(p.Data) != 2 {
		return 0, false
	}
	return GroupID(binary.BigEndian.Uint16(p.Data)), true
}

// HashAlgorithms returns the list carried by SIGNATURE_HASH_ALGORITHMS
// (RFC 7427 §4): 2-octet hash IDs.
func (p *Notify) HashAlgorithms() ([]HashAlgorithm, bool) {
	if p.NotifyType != SignatureHashAlgorithms || len(p.Data)%2 != 0 {
		return nil, false
	}
	hs := make([]HashAlgorithm, 0, len(p.Data)/2)
	for b := p.Data; len(b) > 0; b = b[2:] {
		hs = append(hs, HashAlgorithm(binary.BigEndian.Uint16(b)))
	}
	return hs, true
}

// NotifyHashAlgorithms builds SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4).
func NotifyHashAlgorithms(hs ...HashAlgorithm) *Notify {
	// The Notify and room for 8 hash algorithms in one allocation.
	box := new(struct {
		n Notify
		d [16]byte
	})
	d := box.d[:0]
	if 2*len(hs) > len(box.d) {
		d = make([]byte, 0, 2*len(hs))
	}
	for _, h := range hs {
		d = binary.BigEndian.AppendUint16(d, uint16(h))
	}
	box.n = Notify{NotifyType: SignatureHashAlgorithms, Data: d}
	return &box.n
}

// Addr returns the address of ADDITIONAL_IP4_ADDRESS (4 octets) or
// ADDITIONAL_IP6_ADDRESS (16 octets) (RFC 4555 §3.4).
func (p *Notify) Addr() (netip.Addr, bool) {
	switch {
	case p.NotifyType == AdditionalIP4Address && len(p.Data) == 4:
		return netip.AddrFrom4([4]byte(p.Data)), true
	case p.NotifyType == AdditionalIP6Address && len(p.Data) == 16:
		return netip.AddrFrom16([16]byte(p.Data)), true
	}
	return netip.Addr{}, false
}
