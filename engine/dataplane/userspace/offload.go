package userspace

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Offloads between the kernel and the TUN device (IFF_VNET_HDR): every packet
// is preceded by a struct virtio_net_hdr (virtio spec v1.2 §5.1.6, Linux
// include/uapi/linux/virtio_net.h). The kernel hands us TCP/UDP superpackets
// (TSO/USO) with a partial checksum, which gsoSplit cuts into MTU-sized
// packets; on the way back coalesceTCP glues consecutive TCP segments of a
// flow into one superpacket so the kernel runs its receive path once per
// batch instead of once per segment (what GRO does on a NIC).

const (
	vnetHdrLen = 10 // sizeof(struct virtio_net_hdr)

	vnetFlagNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM

	gsoNone  = 0    // VIRTIO_NET_HDR_GSO_NONE
	gsoTCPv4 = 1    // VIRTIO_NET_HDR_GSO_TCPV4
	gsoUDP   = 3    // VIRTIO_NET_HDR_GSO_UDP (UFO, never enabled here)
	gsoTCPv6 = 4    // VIRTIO_NET_HDR_GSO_TCPV6
	gsoUDPL4 = 5    // VIRTIO_NET_HDR_GSO_UDP_L4 (USO)
	gsoECN   = 0x80 // VIRTIO_NET_HDR_GSO_ECN

	protoTCP = 6
	protoUDP = 17

	tcpFlagFIN = 0x01
	tcpFlagSYN = 0x02
	tcpFlagRST = 0x04
	tcpFlagPSH = 0x08
	tcpFlagACK = 0x10
	tcpFlagURG = 0x20
	tcpFlagECE = 0x40
	tcpFlagCWR = 0x80

	maxIPPacket = 65535
)

// vnetHdr is struct virtio_net_hdr; the legacy TUN header is in host byte order.
type vnetHdr struct {
	flags      uint8
	gsoType    uint8
	hdrLen     uint16
	gsoSize    uint16
	csumStart  uint16
	csumOffset uint16
}

func (h *vnetHdr) decode(b []byte) {
	h.flags = b[0]
	h.gsoType = b[1]
	h.hdrLen = binary.NativeEndian.Uint16(b[2:])
	h.gsoSize = binary.NativeEndian.Uint16(b[4:])
	h.csumStart = binary.NativeEndian.Uint16(b[6:])
	h.csumOffset = binary.NativeEndian.Uint16(b[8:])
}

func (h *vnetHdr) encode(b []byte) {
	b[0] = h.flags
	b[1] = h.gsoType
	binary.NativeEndian.PutUint16(b[2:], h.hdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.gsoSize)
	binary.NativeEndian.PutUint16(b[6:], h.csumStart)
	binary.NativeEndian.PutUint16(b[8:], h.csumOffset)
}

// OffloadError reports a superpacket from the kernel that cannot be split.
type OffloadError struct{ Reason string }

func (e *OffloadError) Error() string { return "userspace: offload: " + e.Reason }

// errTooManySegments: the output batch cannot hold every segment.
var errTooManySegments = errors.New("userspace: superpacket has more segments than the batch holds")

// segmentCount returns how many packets gsoSplit will produce for pkt.
func segmentCount(h *vnetHdr, pkt []byte) int {
	if h.gsoType&^gsoECN == gsoNone || h.gsoSize == 0 {
		return 1
	}
	hl, err := l4HeaderEnd(h, pkt)
	if err != nil || hl >= len(pkt) {
		return 1
	}
	sz := int(h.gsoSize)
	return (len(pkt) - hl + sz - 1) / sz
}

// l4HeaderEnd returns the length of the IP and TCP/UDP headers of a
// superpacket. csum_start marks the L4 header, as the kernel sets it for
// CHECKSUM_PARTIAL; hdr_len is not trusted (it is only a hint in the spec).
func l4HeaderEnd(h *vnetHdr, pkt []byte) (int, error) {
	cs := int(h.csumStart)
	switch h.gsoType &^ gsoECN {
	case gsoTCPv4, gsoTCPv6:
		if cs+20 > len(pkt) {
			return 0, &OffloadError{Reason: "short TCP header"}
		}
		thl := int(pkt[cs+12]>>4) * 4
		if thl < 20 || cs+thl > len(pkt) {
			return 0, &OffloadError{Reason: "bad TCP data offset"}
		}
		return cs + thl, nil
	case gsoUDPL4:
		if cs+8 > len(pkt) {
			return 0, &OffloadError{Reason: "short UDP header"}
		}
		return cs + 8, nil
	}
	return 0, &OffloadError{Reason: fmt.Sprintf("gso type %d", h.gsoType)}
}

// gsoSplit writes the packets carried by pkt (as read from the TUN, after the
// virtio header) into out[i][offset:], with complete checksums, and their
// lengths into sizes. It returns the number of packets written.
func gsoSplit(h *vnetHdr, pkt []byte, out [][]byte, sizes []int, offset int) (int, error) {
	if len(out) == 0 {
		return 0, errTooManySegments
	}
	gso := h.gsoType &^ gsoECN
	if gso == gsoNone || h.gsoSize == 0 {
		if h.flags&vnetFlagNeedsCsum != 0 {
			if err := finishChecksum(h, pkt); err != nil {
				return 0, err
			}
		}
		if len(out[0]) < offset+len(pkt) {
			return 0, &OffloadError{Reason: "packet larger than buffer"}
		}
		sizes[0] = copy(out[0][offset:], pkt)
		return 1, nil
	}
	if gso == gsoUDP {
		return 0, &OffloadError{Reason: "UFO superpacket"}
	}
	if len(pkt) < 20 {
		return 0, &OffloadError{Reason: "short IP header"}
	}
	v4 := pkt[0]>>4 == 4
	if v4 != (gso != gsoTCPv6) && gso != gsoUDPL4 {
		return 0, &OffloadError{Reason: "gso type does not match IP version"}
	}
	var ipHL int
	switch pkt[0] >> 4 {
	case 4:
		ipHL = int(pkt[0]&0xf) * 4
	case 6:
		ipHL = 40
		if len(pkt) < ipHL {
			return 0, &OffloadError{Reason: "short IPv6 header"}
		}
	default:
		return 0, &OffloadError{Reason: "not an IP packet"}
	}
	if int(h.csumStart) < ipHL {
		return 0, &OffloadError{Reason: "csum_start inside the IP header"}
	}
	hl, err := l4HeaderEnd(h, pkt)
	if err != nil {
		return 0, err
	}
	cs := int(h.csumStart)
	payload := pkt[hl:]
	seg := int(h.gsoSize)
	nseg := (len(payload) + seg - 1) / seg
	if nseg > len(out) {
		return 0, errTooManySegments
	}
	var src, dst []byte
	if v4 {
		src, dst = pkt[12:16], pkt[16:20]
	} else {
		src, dst = pkt[8:24], pkt[24:40]
	}
	isTCP := gso != gsoUDPL4
	var seq0 uint32
	if isTCP {
		seq0 = binary.BigEndian.Uint32(pkt[cs+4:])
	}
	ipID := uint16(0)
	if v4 {
		ipID = binary.BigEndian.Uint16(pkt[4:])
	}
	for i := range nseg {
		chunk := payload[i*seg : min((i+1)*seg, len(payload))]
		total := hl + len(chunk)
		if len(out[i]) < offset+total {
			return 0, &OffloadError{Reason: "segment larger than buffer"}
		}
		o := out[i][offset : offset+total]
		copy(o, pkt[:hl])
		copy(o[hl:], chunk)
		if v4 {
			binary.BigEndian.PutUint16(o[2:], uint16(total))
			binary.BigEndian.PutUint16(o[4:], ipID+uint16(i)) // RFC 6864 §4.1: IDs of TSO segments increment
			o[10], o[11] = 0, 0
			binary.BigEndian.PutUint16(o[10:], checksum(o[:ipHL]))
		} else {
			binary.BigEndian.PutUint16(o[4:], uint16(total-40))
		}
		l4 := o[cs:]
		if isTCP {
			binary.BigEndian.PutUint32(l4[4:], seq0+uint32(i*seg))
			if i != nseg-1 {
				l4[13] &^= tcpFlagFIN | tcpFlagPSH // only the last segment ends the burst
			}
			if i != 0 {
				l4[13] &^= tcpFlagCWR // RFC 3168 §6.1.2: CWR on the first segment only
			}
			l4[16], l4[17] = 0, 0
			sum := csumAdd(pseudoSum(src, dst, protoTCP, len(l4)), l4)
			binary.BigEndian.PutUint16(l4[16:], ^csumFold(sum))
		} else {
			binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
			l4[6], l4[7] = 0, 0
			c := ^csumFold(csumAdd(pseudoSum(src, dst, protoUDP, len(l4)), l4))
			if c == 0 {
				c = 0xffff // RFC 768: a computed zero is sent as all ones
			}
			binary.BigEndian.PutUint16(l4[6:], c)
		}
		sizes[i] = total
	}
	return nseg, nil
}

// finishChecksum completes a CHECKSUM_PARTIAL packet: the field at
// csum_start+csum_offset holds the pseudo-header sum; the checksum covers
// everything from csum_start to the end.
func finishChecksum(h *vnetHdr, pkt []byte) error {
	cs, co := int(h.csumStart), int(h.csumOffset)
	if cs+co+2 > len(pkt) {
		return &OffloadError{Reason: "checksum offset outside the packet"}
	}
	c := ^csumFold(csumAdd(0, pkt[cs:]))
	if c == 0 && co == 6 && cs+8 <= len(pkt) {
		c = 0xffff // UDP (RFC 768)
	}
	binary.BigEndian.PutUint16(pkt[cs+co:], c)
	return nil
}
