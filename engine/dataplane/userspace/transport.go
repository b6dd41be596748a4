package userspace

import (
	"encoding/binary"
	"net/netip"

	"github.com/mifsec/mifsec/engine/dataplane"
)

// Transport mode over a TUN (RFC 4303 §3.1.1). The engine routes the peer's
// own address into the TUN; outbound, the IP header of a packet read there
// is dropped and only what follows it is sealed, with Next Header = the IP
// protocol. Inbound, the opened payload gets an IP header again, built from
// the SA: source = the peer, destination = us.
//
// Deviations a TUN imposes, all harmless for host-to-host traffic:
//   - IPv4 options and the TOS/DSCP byte are not carried (the outer header,
//     which would have been the packet's own, is the UDP or raw socket's).
//   - IPv6 extension headers between the fixed header and the upper layer
//     travel inside ESP; the rebuilt packet has them right after its fixed
//     header again, so the receiving stack sees them in their place.
//   - Fragments are refused: transport mode applies to whole datagrams only
//     (RFC 4303 §3.1.1), and the rebuilt header could not carry the
//     fragment's identity. Size the TUN MTU so the kernel does not fragment.

const (
	protoFragment6 = 44 // IPv6 Fragment header (RFC 8200 §4.5)
	ipv4HL         = 20
	ipv6HL         = 40
	rebuildTTL     = 64 // RFC 1700 default TTL / hop limit
)

// transportSplit finds what an outbound transport-mode SA protects in the
// packet p: everything after the IP header. It returns the offset and length
// of that payload and its Next Header, or ok = false for a fragment or a
// malformed header.
func transportSplit(p []byte) (off, n int, nh uint8, ok bool) {
	switch {
	case len(p) >= ipv4HL && p[0]>>4 == 4:
		hl := int(p[0]&0xf) * 4
		total := int(binary.BigEndian.Uint16(p[2:4]))
		if hl < ipv4HL || total < hl || total > len(p) {
			return 0, 0, 0, false
		}
		if binary.BigEndian.Uint16(p[6:8])&0x3fff != 0 { // MF or a fragment offset
			return 0, 0, 0, false
		}
		return hl, total - hl, p[9], true
	case len(p) >= ipv6HL && p[0]>>4 == 6:
		n := int(binary.BigEndian.Uint16(p[4:6]))
		if ipv6HL+n > len(p) {
			return 0, 0, 0, false
		}
		// Refuse a Fragment header anywhere before the upper layer (RFC 8200 §4.1 order).
		for h, o := p[6], ipv6HL; ; {
			switch h {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if o+8 > ipv6HL+n {
					return 0, 0, 0, false
				}
				h, o = p[o], o+(int(p[o+1])+1)*8
				continue
			case protoFragment6:
				return 0, 0, 0, false
			}
			break
		}
		return ipv6HL, n, p[6], true
	}
	return 0, 0, 0, false
}

// rebuild says which addresses an inbound transport-mode SA writes into the
// IP header it rebuilds.
type rebuild struct {
	// fromTS: src and dst are the single hosts of the SA's selectors. A peer
	// only seals packets its own policy matched, and those selectors are the
	// same hosts, so the upper-layer checksums it computed cover exactly
	// these addresses. Otherwise the SA's outer addresses stand in (what
	// the packet's own header held in classic transport mode) and TCP/UDP/
	// ICMPv6 checksums are recomputed: ESP already vouched for the bytes
	// (RFC 3948 §3.1.2 allows this for transport mode).
	fromTS   bool
	src, dst netip.Addr
}

// newRebuild picks the rebuild addresses of an inbound SA.
func newRebuild(sa *dataplane.SA) rebuild {
	src, dst := singleHost(sa.RemoteTS), singleHost(sa.LocalTS)
	if src.IsValid() && dst.IsValid() && src.Is4() == dst.Is4() {
		return rebuild{fromTS: true, src: src, dst: dst}
	}
	return rebuild{}
}

// addrs returns the source and destination for a packet that arrived on ep.
func (r *rebuild) addrs(ep *endpoint) (src, dst netip.Addr) {
	if r.fromTS {
		return r.src, r.dst
	}
	return ep.remote.Addr(), ep.local.Addr()
}

// singleHost returns the one host every selector names, or the zero Addr
// if they name a range or several hosts.
func singleHost(sels []dataplane.Selector) netip.Addr {
	var a netip.Addr
	for _, s := range sels {
		p := s.Prefix
		if !p.IsValid() || p.Bits() != p.Addr().BitLen() {
			return netip.Addr{}
		}
		pa := p.Addr().Unmap()
		if a.IsValid() && a != pa {
			return netip.Addr{}
		}
		a = pa
	}
	return a
}

// ipHeaderLen is the length of the header rebuilt for addresses of a's family.
func ipHeaderLen(a netip.Addr) int {
	if a.Is4() {
		return ipv4HL
	}
	return ipv6HL
}

// putIPHeader writes an IPv4 or IPv6 header for n bytes of upper-layer
// payload with protocol nh into b, which is exactly the header's length.
// IPv4: DF set and ID 0, as for any atomic datagram (RFC 6864 §4.1).
func putIPHeader(b []byte, src, dst netip.Addr, nh uint8, n int) {
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		b[0], b[1] = 0x45, 0
		binary.BigEndian.PutUint16(b[2:], uint16(ipv4HL+n))
		b[4], b[5], b[6], b[7] = 0, 0, 0x40, 0
		b[8], b[9], b[10], b[11] = rebuildTTL, nh, 0, 0
		copy(b[12:16], s[:])
		copy(b[16:20], d[:])
		binary.BigEndian.PutUint16(b[10:], checksum(b[:ipv4HL]))
		return
	}
	s, d := src.As16(), dst.As16()
	b[0], b[1], b[2], b[3] = 0x60, 0, 0, 0
	binary.BigEndian.PutUint16(b[4:], uint16(n))
	b[6], b[7] = nh, rebuildTTL
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
}

// fixChecksum recomputes the upper-layer checksum of a rebuilt packet p
// (header of hl bytes, protocol nh) over its new pseudo-header: TCP (RFC 9293
// §3.1), UDP (RFC 768; an IPv4 zero checksum means none and stays), ICMPv6
// (RFC 4443 §2.3). Other protocols carry no pseudo-header.
func fixChecksum(p []byte, hl int, nh uint8) {
	l4 := p[hl:]
	var at int
	switch nh {
	case protoTCP:
		at = 16
	case protoUDP:
		at = 6
		if hl == ipv4HL && len(l4) >= 8 && l4[6] == 0 && l4[7] == 0 {
			return
		}
	case protoICMPv6:
		if hl != ipv6HL {
			return
		}
		at = 2
	default:
		return
	}
	if len(l4) < at+2 {
		return
	}
	var sum uint64
	if hl == ipv4HL {
		sum = pseudoSum(p[12:16], p[16:20], nh, len(l4))
	} else {
		sum = pseudoSum(p[8:24], p[24:40], nh, len(l4))
	}
	l4[at], l4[at+1] = 0, 0
	c := ^csumFold(csumAdd(sum, l4))
	if c == 0 && nh == protoUDP {
		c = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(l4[at:], c)
}
