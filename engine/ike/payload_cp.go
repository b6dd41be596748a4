package ike

import (
	"encoding/binary"
	"net/netip"
)

// Config is the Configuration payload (RFC 7296 §3.15).
type Config struct {
	CFGType    CPType
	Attributes []CPAttribute
}

// CPAttribute is one configuration attribute (§3.15.1). An empty Value asks
// for the attribute in a CFG_REQUEST.
type CPAttribute struct {
	Type  CPAttributeType // 15 bits; the R bit is not kept
	Value []byte
}

func (*Config) Type() PayloadType { return PayloadCP }

// cpValueLens lists the allowed value lengths of attributes with a fixed
// format: RFC 7296 §3.15.1, RFC 7651 §3 (P-CSCF), 0 always allowed.
var cpValueLens = map[CPAttributeType]int{
	CPInternalIP4Address: 4, CPInternalIP4Netmask: 4, CPInternalIP4DNS: 4, CPInternalIP4NBNS: 4,
	CPInternalIP4DHCP: 4, CPInternalIP6Address: 17, CPInternalIP6DNS: 16, CPInternalIP6DHCP: 16,
	CPInternalIP4Subnet: 8, CPInternalIP6Subnet: 17, CPPCSCFIP4Address: 4, CPPCSCFIP6Address: 16,
}

func checkCPValue(t CPAttributeType, v []byte) string {
	if n, ok := cpValueLens[t]; ok && len(v) != 0 && len(v) != n {
		return t.String() + " of " + itoa(len(v)) + " octets, want 0 or " + itoa(n)
	}
	if t == CPSupportedAttributes && len(v)%2 != 0 {
		return "SUPPORTED_ATTRIBUTES of odd length"
	}
	return ""
}

func (p *Config) appendBody(dst []byte) ([]byte, error) {
	dst = append(dst, byte(p.CFGType), 0, 0, 0)
	for _, a := range p.Attributes {
		if a.Type > 0x7fff {
			return nil, encodeError(PayloadCP, "attribute type above 15 bits")
		}
		if len(a.Value) > 0xffff {
			return nil, encodeError(PayloadCP, "attribute value longer than 65535 octets")
		}
		if r := checkCPValue(a.Type, a.Value); r != "" {
			return nil, encodeError(PayloadCP, r)
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(a.Type))
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(a.Value)))
		dst = append(dst, a.Value...)
	}
	return dst, nil
}

func (p *Config) decodeBody(b []byte) error {
	if len(b) < 4 {
		return syntaxError(PayloadCP, "shorter than 4 octets")
	}
	p.CFGType = CPType(b[0])
	p.Attributes = nil
	if n := countAttributes(b[4:]); n > 0 {
		p.Attributes = make([]CPAttribute, 0, n)
	}
	for b = b[4:]; len(b) > 0; {
		if len(b) < 4 {
			return syntaxError(PayloadCP, "truncated attribute header")
		}
		// §3.15.1: the R bit is reserved and ignored on receipt.
		t := CPAttributeType(binary.BigEndian.Uint16(b[0:2]) & 0x7fff)
		n := int(binary.BigEndian.Uint16(b[2:4]))
		if 4+n > len(b) {
			return syntaxError(PayloadCP, t.String()+" Length beyond the payload")
		}
		v := nilIfEmpty(b[4 : 4+n])
		if r := checkCPValue(t, v); r != "" {
			return syntaxError(PayloadCP, r)
		}
		p.Attributes = append(p.Attributes, CPAttribute{Type: t, Value: v})
		b = b[4+n:]
	}
	return nil
}

// countAttributes counts the attributes of a CP body (§3.15.1) as far as
// their headers are well formed, so decodeBody allocates once.
func countAttributes(b []byte) int {
	n := 0
	for len(b) >= 4 {
		l := 4 + int(binary.BigEndian.Uint16(b[2:4]))
		if l > len(b) {
			break
		}
		n++
		b = b[l:]
	}
	return n
}

// Addr returns the address of a 4-octet IPv4 attribute (INTERNAL_IP4_ADDRESS,
// _NETMASK, _DNS, _NBNS, _DHCP, P_CSCF_IP4_ADDRESS) or a 16-octet IPv6 one
// (INTERNAL_IP6_DNS, _DHCP, P_CSCF_IP6_ADDRESS).
func (a CPAttribute) Addr() (netip.Addr, bool) {
	switch a.Type {
	case CPInternalIP4Address, CPInternalIP4Netmask, CPInternalIP4DNS, CPInternalIP4NBNS,
		CPInternalIP4DHCP, CPPCSCFIP4Address:
		if len(a.Value) == 4 {
			return netip.AddrFrom4([4]byte(a.Value)), true
		}
	case CPInternalIP6DNS, CPInternalIP6DHCP, CPPCSCFIP6Address:
		if len(a.Value) == 16 {
			return netip.AddrFrom16([16]byte(a.Value)), true
		}
	}
	return netip.Addr{}, false
}

// Prefix returns the value of INTERNAL_IP6_ADDRESS or INTERNAL_IP6_SUBNET
// (16-octet address + prefix length, §3.15.1) or INTERNAL_IP4_SUBNET
// (address + netmask; a non-contiguous mask is rejected).
func (a CPAttribute) Prefix() (netip.Prefix, bool) {
	switch a.Type {
	case CPInternalIP6Address, CPInternalIP6Subnet:
		if len(a.Value) != 17 || a.Value[16] > 128 {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(netip.AddrFrom16([16]byte(a.Value[:16])), int(a.Value[16])), true
	case CPInternalIP4Subnet:
		if len(a.Value) != 8 {
			return netip.Prefix{}, false
		}
		m := binary.BigEndian.Uint32(a.Value[4:])
		bits := 0
		for m&0x80000000 != 0 {
			bits++
			m <<= 1
		}
		if m != 0 {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(a.Value[:4])), bits), true
	}
	return netip.Prefix{}, false
}

// CPAddr builds an address attribute, e.g. CPAddr(CPInternalIP4DNS, dns) or
// CPAddr(CPPCSCFIP6Address, pcscf) (RFC 7651).
func CPAddr(t CPAttributeType, a netip.Addr) CPAttribute {
	return CPAttribute{Type: t, Value: a.AsSlice()}
}

// CPPrefix builds INTERNAL_IP6_ADDRESS / INTERNAL_IP6_SUBNET (address +
// prefix length) or INTERNAL_IP4_SUBNET (address + netmask) (§3.15.1).
func CPPrefix(t CPAttributeType, p netip.Prefix) CPAttribute {
	if p.Addr().Is4() {
		a := p.Addr().As4()
		v := append(a[:], 0, 0, 0, 0)
		binary.BigEndian.PutUint32(v[4:], ^uint32(0)<<(32-p.Bits()))
		if p.Bits() == 0 {
			binary.BigEndian.PutUint32(v[4:], 0)
		}
		return CPAttribute{Type: t, Value: v}
	}
	a := p.Addr().As16()
	return CPAttribute{Type: t, Value: append(a[:], byte(p.Bits()))}
}

// CPRequest is an empty attribute asking for t in a CFG_REQUEST (§2.19).
func CPRequest(t CPAttributeType) CPAttribute { return CPAttribute{Type: t} }
