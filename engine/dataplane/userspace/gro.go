package userspace

import (
	"bytes"
	"encoding/binary"
)

// groPlan groups consecutive TCP segments of a flow found in one batch of
// packets, so the TUN writer can hand each group to the kernel as a single
// GSO superpacket (TCPV4/TCPV6 with a partial checksum). It follows the
// rules of Linux tcp_gro_receive: same addresses, ports, ACK, window and
// options, contiguous sequence numbers, equal segment sizes except a shorter
// last one, only ACK/PSH set, and a PSH ends the group. Packets of one flow
// keep their order; the plan is reused and does not allocate once grown.
type groPlan struct {
	next   []int // next member of the packet's group, -1 at the end
	member []bool
	groups []groGroup
}

type groGroup struct {
	head, last int
	nextSeq    uint32
	segSize    int // payload bytes of every member but the last
	total      int // IP length of the superpacket
	segs       int
	open       bool
	psh        bool
	superseded bool   // a later group of the same flow took over
	hs         tcpSeg // parsed head
}

// tcpSeg is the parsed view of a candidate segment.
type tcpSeg struct {
	v4       bool
	ipHL     int
	thl      int
	payload  int
	seq      uint32
	flags    uint8
	coalesce bool // eligible to join or start a group
}

func parseTCPSeg(p []byte, s *tcpSeg) bool {
	if len(p) < 20 {
		return false
	}
	switch p[0] >> 4 {
	case 4:
		if p[0]&0xf != 5 || p[9] != protoTCP || binary.BigEndian.Uint16(p[6:])&0x3fff != 0 ||
			int(binary.BigEndian.Uint16(p[2:])) != len(p) {
			return false // options, not TCP, a fragment, or padded
		}
		s.v4, s.ipHL = true, 20
	case 6:
		if len(p) < 40 || p[6] != protoTCP || int(binary.BigEndian.Uint16(p[4:]))+40 != len(p) {
			return false // extension headers or padded
		}
		s.v4, s.ipHL = false, 40
	default:
		return false
	}
	if len(p) < s.ipHL+20 {
		return false
	}
	t := p[s.ipHL:]
	s.thl = int(t[12]>>4) * 4
	if s.thl < 20 || s.ipHL+s.thl > len(p) {
		return false
	}
	s.payload = len(p) - s.ipHL - s.thl
	s.seq = binary.BigEndian.Uint32(t[4:])
	s.flags = t[13]
	s.coalesce = s.payload > 0 && s.flags&^(tcpFlagACK|tcpFlagPSH) == 0 && s.flags&tcpFlagACK != 0
	return true
}

// tcpChecksumOK verifies a segment's checksum before it loses it in a merge.
func tcpChecksumOK(p []byte, s *tcpSeg) bool {
	var sum uint64
	if s.v4 {
		sum = pseudoSum(p[12:16], p[16:20], protoTCP, len(p)-s.ipHL)
	} else {
		sum = pseudoSum(p[8:24], p[24:40], protoTCP, len(p)-s.ipHL)
	}
	return csumFold(csumAdd(sum, p[s.ipHL:])) == 0xffff
}

// sameFlow says whether q can follow the group headed by h: identical IP
// header fields (but length, ID and checksum) and TCP header (but sequence,
// flags and checksum).
func sameFlow(h, q []byte, hs, qs *tcpSeg) bool {
	if hs.v4 != qs.v4 || hs.thl != qs.thl {
		return false
	}
	if hs.v4 {
		if h[1] != q[1] || h[6]&0x40 != q[6]&0x40 || h[8] != q[8] || !bytes.Equal(h[12:20], q[12:20]) {
			return false
		}
	} else if !bytes.Equal(h[0:4], q[0:4]) || h[7] != q[7] || !bytes.Equal(h[8:40], q[8:40]) {
		return false
	}
	ht, qt := h[hs.ipHL:hs.ipHL+hs.thl], q[qs.ipHL:qs.ipHL+qs.thl]
	return bytes.Equal(ht[0:4], qt[0:4]) && bytes.Equal(ht[8:12], qt[8:12]) &&
		bytes.Equal(ht[14:16], qt[14:16]) && bytes.Equal(ht[20:], qt[20:])
}

// plan computes the groups of pkts (each pkts[i][offset:] an IP packet).
func (g *groPlan) plan(pkts [][]byte, offset int) {
	n := len(pkts)
	if cap(g.next) < n {
		g.next = make([]int, n)
		g.member = make([]bool, n)
	}
	g.next, g.member = g.next[:n], g.member[:n]
	g.groups = g.groups[:0]
	var qs tcpSeg
	for i := range n {
		g.next[i], g.member[i] = -1, false
		q := pkts[i][offset:]
		if !parseTCPSeg(q, &qs) {
			continue
		}
		match := -1
		for gi := range g.groups {
			gr := &g.groups[gi]
			if !gr.superseded && sameFlow(pkts[gr.head][offset:], q, &gr.hs, &qs) {
				match = gi
				break
			}
		}
		if match >= 0 {
			gr := &g.groups[match]
			if gr.open && qs.coalesce && qs.seq == gr.nextSeq && qs.payload <= gr.segSize &&
				gr.total+qs.payload <= maxIPPacket && tcpChecksumOK(q, &qs) {
				g.next[gr.last] = i
				g.member[i] = true
				gr.last = i
				gr.nextSeq += uint32(qs.payload)
				gr.total += qs.payload
				gr.segs++
				gr.psh = qs.flags&tcpFlagPSH != 0
				gr.open = qs.payload == gr.segSize && !gr.psh
				continue
			}
			// q does not extend the group: the group ends before q.
			gr.open = false
		}
		if !qs.coalesce || qs.flags&tcpFlagPSH != 0 || !tcpChecksumOK(q, &qs) {
			continue
		}
		if match >= 0 {
			g.groups[match].superseded = true
		}
		g.groups = append(g.groups, groGroup{
			head: i, last: i, nextSeq: qs.seq + uint32(qs.payload), segSize: qs.payload,
			total: len(q), segs: 1, open: true, hs: qs,
		})
	}
}

// finishHead rewrites the head packet of a group of segs packets and total
// IP bytes into the superpacket header, and fills the virtio header in the
// headroom just before it. psh is the PSH flag of the last member.
func finishHead(buf []byte, offset int, segSize, total int, psh bool) {
	p := buf[offset:]
	var s tcpSeg
	parseTCPSeg(p, &s)
	var h vnetHdr
	h.flags = vnetFlagNeedsCsum
	h.hdrLen = uint16(s.ipHL + s.thl)
	h.gsoSize = uint16(segSize)
	h.csumStart = uint16(s.ipHL)
	h.csumOffset = 16
	t := p[s.ipHL:]
	if psh {
		t[13] |= tcpFlagPSH
	}
	var sum uint64
	if s.v4 {
		h.gsoType = gsoTCPv4
		binary.BigEndian.PutUint16(p[2:], uint16(total))
		p[10], p[11] = 0, 0
		binary.BigEndian.PutUint16(p[10:], checksum(p[:20]))
		sum = pseudoSum(p[12:16], p[16:20], protoTCP, total-s.ipHL)
	} else {
		h.gsoType = gsoTCPv6
		binary.BigEndian.PutUint16(p[4:], uint16(total-40))
		sum = pseudoSum(p[8:24], p[24:40], protoTCP, total-s.ipHL)
	}
	// CHECKSUM_PARTIAL: the field carries the folded pseudo-header sum.
	binary.BigEndian.PutUint16(t[16:], csumFold(sum))
	h.encode(buf[offset-vnetHdrLen : offset])
}
