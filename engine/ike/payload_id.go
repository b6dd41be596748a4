package ike

import "net/netip"

// Identification is the IDi (or, with Responder set, IDr) payload (RFC 7296 §3.5).
type Identification struct {
	Responder bool
	IDType    IDType
	Data      []byte
}

func (p *Identification) Type() PayloadType {
	if p.Responder {
		return PayloadIDr
	}
	return PayloadIDi
}

// RestOfIDPayload returns ID Type, the three RESERVED octets and the data: the
// ID payload body that enters the AUTH computation (RFC 7296 §2.15).
func (p *Identification) RestOfIDPayload() []byte {
	b, _ := p.appendBody(make([]byte, 0, 4+len(p.Data)))
	return b
}

// Addr returns the address of an ID_IPV4_ADDR or ID_IPV6_ADDR identity.
func (p *Identification) Addr() (netip.Addr, bool) {
	switch {
	case p.IDType == IDIPv4Addr && len(p.Data) == 4:
		return netip.AddrFrom4([4]byte(p.Data)), true
	case p.IDType == IDIPv6Addr && len(p.Data) == 16:
		return netip.AddrFrom16([16]byte(p.Data)), true
	}
	return netip.Addr{}, false
}

// IdentificationFromAddr builds an ID_IPV4_ADDR or ID_IPV6_ADDR identity.
func IdentificationFromAddr(a netip.Addr, responder bool) *Identification {
	if a.Is4() {
		b := a.As4()
		return &Identification{Responder: responder, IDType: IDIPv4Addr, Data: b[:]}
	}
	b := a.As16()
	return &Identification{Responder: responder, IDType: IDIPv6Addr, Data: b[:]}
}

func (p *Identification) appendBody(dst []byte) ([]byte, error) {
	dst = append(dst, byte(p.IDType), 0, 0, 0)
	return append(dst, p.Data...), nil
}

func (p *Identification) decodeBody(b []byte) error {
	if len(b) < 4 {
		return syntaxError(p.Type(), "shorter than 4 octets")
	}
	p.IDType = IDType(b[0])
	p.Data = nilIfEmpty(b[4:])
	switch {
	case p.IDType == IDIPv4Addr && len(p.Data) != 4:
		return syntaxError(p.Type(), "ID_IPV4_ADDR of "+itoa(len(p.Data))+" octets")
	case p.IDType == IDIPv6Addr && len(p.Data) != 16:
		return syntaxError(p.Type(), "ID_IPV6_ADDR of "+itoa(len(p.Data))+" octets")
	}
	return nil
}
