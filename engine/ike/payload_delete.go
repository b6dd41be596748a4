package ike

import "encoding/binary"

// Delete is the Delete payload (RFC 7296 §3.11). For the IKE SA there are no SPIs (SPI
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
