package ike

import "encoding/binary"

// KE is the Key Exchange payload (RFC 7296 §3.4). Data is the public value:
// MODP left-padded to the prime length, ECP x|y (RFC 5903 §7), Curve25519 u.
type KE struct {
	Group GroupID
	Data  []byte
}

func (*KE) Type() PayloadType { return PayloadKE }

func (p *KE) appendBody(dst []byte) ([]byte, error) {
	dst = binary.BigEndian.AppendUint16(dst, uint16(p.Group))
	dst = append(dst, 0, 0)
	return append(dst, p.Data...), nil
}

func (p *KE) decodeBody(b []byte) error {
	if len(b) < 4 {
		return syntaxError(PayloadKE, "shorter than 4 octets")
	}
	p.Group = GroupID(binary.BigEndian.Uint16(b[0:2]))
	p.Data = nilIfEmpty(b[4:])
	return nil
}
