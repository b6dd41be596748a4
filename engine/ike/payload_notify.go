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
	d := make([]byte, 0, 2*len(hs))
	for _, h := range hs {
		d = binary.BigEndian.AppendUint16(d, uint16(h))
	}
	return &Notify{NotifyType: SignatureHashAlgorithms, Data: d}
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

// Delete is the Delete payload (§3.11). For the IKE SA there are no SPIs (SPI
// Size 0, the SPIs are in the header); for ESP and AH each SPI is 4 octets.
type Delete struct {
	Protocol ProtocolID
	SPIs     []uint32
}

func (*Delete) Type() PayloadType { return PayloadDelete }

func (p *Delete) appendBody(dst []byte) ([]byte, error) {
	size := 4
	switch p.Protocol {
	case ProtoIKE:
		if len(p.SPIs) != 0 {
			return nil, encodeError(PayloadDelete, "IKE SA delete carries no SPIs (RFC 7296 §3.11)")
		}
		size = 0
	case ProtoAH, ProtoESP:
		if len(p.SPIs) == 0 || len(p.SPIs) > 0xffff {
			return nil, encodeError(PayloadDelete, "needs 1..65535 SPIs")
		}
	default:
		return nil, encodeError(PayloadDelete, "protocol "+p.Protocol.String())
	}
	dst = append(dst, byte(p.Protocol), byte(size))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(p.SPIs)))
	for _, s := range p.SPIs {
		dst = binary.BigEndian.AppendUint32(dst, s)
	}
	return dst, nil
}

func (p *Delete) decodeBody(b []byte) error {
	if len(b) < 4 {
		return syntaxError(PayloadDelete, "shorter than 4 octets")
	}
	p.Protocol = ProtocolID(b[0])
	size, n := int(b[1]), int(binary.BigEndian.Uint16(b[2:4]))
	b = b[4:]
	switch p.Protocol {
	case ProtoIKE:
		if size != 0 || n != 0 || len(b) != 0 {
			return syntaxError(PayloadDelete, "IKE SA delete with SPIs (RFC 7296 §3.11: SPI Size 0)")
		}
		p.SPIs = nil
		return nil
	case ProtoAH, ProtoESP:
		if size != 4 {
			return syntaxError(PayloadDelete, "SPI Size "+itoa(size)+" for "+p.Protocol.String())
		}
	default:
		return syntaxError(PayloadDelete, "protocol "+p.Protocol.String())
	}
	if n == 0 || len(b) != 4*n {
		return syntaxError(PayloadDelete, "Num of SPIs "+itoa(n)+" does not match "+itoa(len(b))+" octets")
	}
	p.SPIs = make([]uint32, n)
	for i := range p.SPIs {
		p.SPIs[i] = binary.BigEndian.Uint32(b[4*i:])
	}
	return nil
}
