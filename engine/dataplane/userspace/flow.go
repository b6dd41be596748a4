package userspace

import (
	"encoding/binary"
	"net/netip"

	"github.com/mifsec/mifsec/engine/dataplane"
)

const (
	protoICMP   = 1
	protoSCTP   = 132
	protoICMPv6 = 58
)

// parseFlow fills f from an inner IP packet. hasPorts is false for non-first
// fragments and for protocols without ports: such packets can only match
// selectors with any port (RFC 4301 §4.4.1.1, "OPAQUE").
func parseFlow(p []byte, f *dataplane.Flow) (hasPorts, ok bool) {
	var l4 []byte
	switch {
	case len(p) >= 20 && p[0]>>4 == 4:
		hl := int(p[0]&0xf) * 4
		if hl < 20 || hl > len(p) {
			return false, false
		}
		f.Src = addrFrom(p[12:16])
		f.Dst = addrFrom(p[16:20])
		f.Protocol = p[9]
		f.DSCP = p[1] >> 2
		if binary.BigEndian.Uint16(p[6:])&0x1fff != 0 {
			f.SrcPort, f.DstPort = 0, 0
			return false, true // non-first fragment
		}
		l4 = p[hl:]
	case len(p) >= 40 && p[0]>>4 == 6:
		f.Src = addrFrom(p[8:24])
		f.Dst = addrFrom(p[24:40])
		f.DSCP = uint8(binary.BigEndian.Uint16(p[0:2])>>6) & 0x3f
		nh, off := p[6], 40
		// Walk the extension headers that may precede the transport header
		// (RFC 8200 §4).
		for {
			switch nh {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if off+8 > len(p) {
					return false, false
				}
				nh, off = p[off], off+(int(p[off+1])+1)*8
				continue
			case 44: // fragment
				if off+8 > len(p) {
					return false, false
				}
				first := binary.BigEndian.Uint16(p[off+2:])&0xfff8 == 0
				nh, off = p[off], off+8
				if !first {
					f.Protocol, f.SrcPort, f.DstPort = nh, 0, 0
					return false, true
				}
				continue
			}
			break
		}
		if off > len(p) {
			return false, false
		}
		f.Protocol = nh
		l4 = p[off:]
	default:
		return false, false
	}
	f.SrcPort, f.DstPort = 0, 0
	switch f.Protocol {
	case protoTCP, protoUDP, protoSCTP, 136: // 136 = UDP-Lite
		if len(l4) < 4 {
			return false, true
		}
		f.SrcPort = binary.BigEndian.Uint16(l4[0:2])
		f.DstPort = binary.BigEndian.Uint16(l4[2:4])
		return true, true
	case protoICMP, protoICMPv6:
		// RFC 7296 §3.13.1: type in the high octet, code in the low one.
		if len(l4) < 2 {
			return false, true
		}
		f.SrcPort = uint16(l4[0])<<8 | uint16(l4[1])
		f.DstPort = f.SrcPort
		return true, true
	}
	return false, true
}

// anyPort tells whether a selector leaves the port open.
func anyPort(s *dataplane.Selector) bool {
	return s.PortFrom == 0 && (s.PortTo == 0xffff || s.PortTo == 0)
}

// selMatch checks one address and port against one selector.
func selMatch(s *dataplane.Selector, a netip.Addr, port uint16, proto uint8, hasPorts bool) bool {
	if s.Prefix.IsValid() && !s.Prefix.Contains(a) {
		return false
	}
	if s.Protocol != 0 && s.Protocol != proto {
		return false
	}
	if anyPort(s) {
		return true
	}
	return hasPorts && port >= s.PortFrom && port <= s.PortTo
}

// anyMatch checks against a list of selectors; an empty list matches nothing.
func anyMatch(sels []dataplane.Selector, a netip.Addr, port uint16, proto uint8, hasPorts bool) bool {
	for i := range sels {
		if selMatch(&sels[i], a, port, proto, hasPorts) {
			return true
		}
	}
	return false
}
