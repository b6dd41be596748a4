package ike

import (
	"encoding/binary"
	"net/netip"
)

// TrafficSelector is one TS_IPV4_ADDR_RANGE or TS_IPV6_ADDR_RANGE entry
// (RFC 7296 §3.13.1). The TS Type follows from the address family of Start,
// which End must share. IPProtocol 0 means any; ports 0..65535 mean any; for
// ICMP the type and code are packed into the ports (§3.13.1).
type TrafficSelector struct {
	IPProtocol uint8
	StartPort  uint16
	EndPort    uint16
	Start      netip.Addr
	End        netip.Addr
}

// TSType returns the selector's TS Type.
func (ts TrafficSelector) TSType() TSType {
	if ts.Start.Is4() {
		return TSIPv4AddrRange
	}
	return TSIPv6AddrRange
}

// TrafficSelectors is the TSi (or, with Responder set, TSr) payload (§3.13).
type TrafficSelectors struct {
	Responder bool
	Selectors []TrafficSelector
}

func (p *TrafficSelectors) Type() PayloadType {
	if p.Responder {
		return PayloadTSr
	}
	return PayloadTSi
}

func (p *TrafficSelectors) appendBody(dst []byte) ([]byte, error) {
	if len(p.Selectors) == 0 || len(p.Selectors) > 0xff {
		return nil, encodeError(p.Type(), "needs 1..255 traffic selectors")
	}
	dst = append(dst, byte(len(p.Selectors)), 0, 0, 0)
	for _, ts := range p.Selectors {
		switch {
		case ts.Start.Is4() && ts.End.Is4():
			dst = append(dst, byte(TSIPv4AddrRange), ts.IPProtocol, 0, 16)
		case ts.Start.Is6() && ts.End.Is6() && ts.Start.Zone() == "" && ts.End.Zone() == "":
			dst = append(dst, byte(TSIPv6AddrRange), ts.IPProtocol, 0, 40)
		default:
			return nil, encodeError(p.Type(), "selector addresses "+ts.Start.String()+"-"+ts.End.String()+" are not one family without zone")
		}
		dst = binary.BigEndian.AppendUint16(dst, ts.StartPort)
		dst = binary.BigEndian.AppendUint16(dst, ts.EndPort)
		dst = append(dst, ts.Start.AsSlice()...)
		dst = append(dst, ts.End.AsSlice()...)
	}
	return dst, nil
}

func (p *TrafficSelectors) decodeBody(b []byte) error {
	pt := p.Type()
	if len(b) < 4 {
		return syntaxError(pt, "shorter than 4 octets")
	}
	n := int(b[0])
	if n == 0 {
		return syntaxError(pt, "Number of TSs is 0")
	}
	b = b[4:]
	p.Selectors = make([]TrafficSelector, 0, n)
	for i := 0; i < n; i++ {
		if len(b) < 4 {
			return syntaxError(pt, "truncated traffic selector")
		}
		t, slen := TSType(b[0]), int(binary.BigEndian.Uint16(b[2:4]))
		if slen < 8 || slen > len(b) {
			return syntaxError(pt, "bad Selector Length "+itoa(slen))
		}
		var alen int
		switch t {
		case TSIPv4AddrRange:
			alen = 4
		case TSIPv6AddrRange:
			alen = 16
		default:
			// Other TS types (RFC 4595, RFC 9478) are not supported; the
			// peer is told the selectors are unacceptable.
			return &Error{Notify: TSUnacceptable, Reason: pt.String() + ": unsupported TS Type " + t.String()}
		}
		if slen != 8+2*alen {
			return syntaxError(pt, t.String()+" with Selector Length "+itoa(slen))
		}
		ts := TrafficSelector{
			IPProtocol: b[1],
			StartPort:  binary.BigEndian.Uint16(b[4:6]),
			EndPort:    binary.BigEndian.Uint16(b[6:8]),
		}
		ts.Start, _ = netip.AddrFromSlice(b[8 : 8+alen])
		ts.End, _ = netip.AddrFromSlice(b[8+alen : 8+2*alen])
		p.Selectors = append(p.Selectors, ts)
		b = b[slen:]
	}
	if len(b) != 0 {
		return syntaxError(pt, "octets after the last traffic selector")
	}
	return nil
}
