package userspace

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/mifsec/mifsec/engine/dataplane"
)

// naiveSum is RFC 1071 word by word.
func naiveSum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

func TestChecksum(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 3000)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for _, n := range []int{0, 1, 2, 3, 7, 8, 9, 31, 32, 33, 63, 64, 65, 1399, 1400, 2999} {
		b := buf[:n]
		if got, want := csumFold(csumAdd(0, b)), naiveSum(b); got != want {
			t.Errorf("len %d: got %04x want %04x", n, got, want)
		}
		// Split in two even chunks and one tail.
		if n > 10 {
			k := (n / 3) &^ 1
			if got, want := csumFold(csumAdd(csumAdd(0, b[:k]), b[k:])), naiveSum(b); got != want {
				t.Errorf("len %d split at %d: got %04x want %04x", n, k, got, want)
			}
		}
	}
	all := bytes.Repeat([]byte{0xff}, 4096)
	if got := csumFold(csumAdd(0, all)); got != 0xffff {
		t.Errorf("all ones: %04x", got)
	}
}

// tcpPacket builds a TCP/IP packet (v4 or v6) with a 12-byte option block.
func tcpPacket(v6 bool, seq uint32, flags uint8, payload []byte) []byte {
	ipHL := 20
	if v6 {
		ipHL = 40
	}
	thl := 32
	p := make([]byte, ipHL+thl+len(payload))
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	if v6 {
		src, dst = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
		p[0] = 0x60
		binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
		p[6], p[7] = protoTCP, 64
		copy(p[8:], src.AsSlice())
		copy(p[24:], dst.AsSlice())
	} else {
		p[0], p[1] = 0x45, 0x10
		binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
		binary.BigEndian.PutUint16(p[4:], 0x1234)
		p[6], p[8], p[9] = 0x40, 64, protoTCP
		copy(p[12:], src.AsSlice())
		copy(p[16:], dst.AsSlice())
		binary.BigEndian.PutUint16(p[10:], checksum(p[:20]))
	}
	tc := p[ipHL:]
	binary.BigEndian.PutUint16(tc[0:], 40000)
	binary.BigEndian.PutUint16(tc[2:], 5201)
	binary.BigEndian.PutUint32(tc[4:], seq)
	binary.BigEndian.PutUint32(tc[8:], 777)
	tc[12] = byte(thl/4) << 4
	tc[13] = flags
	binary.BigEndian.PutUint16(tc[14:], 512)
	copy(tc[20:], []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}) // NOP NOP timestamps
	copy(tc[thl:], payload)
	setTCPChecksum(p, ipHL)
	return p
}

func setTCPChecksum(p []byte, ipHL int) {
	tc := p[ipHL:]
	tc[16], tc[17] = 0, 0
	var sum uint64
	if ipHL == 20 {
		sum = pseudoSum(p[12:16], p[16:20], protoTCP, len(tc))
	} else {
		sum = pseudoSum(p[8:24], p[24:40], protoTCP, len(tc))
	}
	binary.BigEndian.PutUint16(tc[16:], ^csumFold(csumAdd(sum, tc)))
}

// tcpValid checks IP and TCP checksums with the naive sum.
func tcpValid(t *testing.T, p []byte, ipHL int) {
	t.Helper()
	if ipHL == 20 && naiveSum(p[:20]) != 0xffff {
		t.Errorf("bad IPv4 header checksum")
	}
	var ps []byte
	if ipHL == 20 {
		ps = append(append(ps, p[12:20]...), 0, protoTCP, byte((len(p)-20)>>8), byte(len(p)-20))
	} else {
		n := len(p) - 40
		ps = append(append(ps, p[8:40]...), 0, 0, byte(n>>8), byte(n), 0, 0, 0, protoTCP)
	}
	if naiveSum(append(ps, p[ipHL:]...)) != 0xffff {
		t.Errorf("bad TCP checksum")
	}
}

// superpacket turns a full TCP packet into what the kernel hands a TUN with
// TSO: partial checksum (pseudo-header sum only).
func superpacket(p []byte, ipHL int, mss int) vnetHdr {
	var sum uint64
	if ipHL == 20 {
		sum = pseudoSum(p[12:16], p[16:20], protoTCP, len(p)-20)
	} else {
		sum = pseudoSum(p[8:24], p[24:40], protoTCP, len(p)-40)
	}
	binary.BigEndian.PutUint16(p[ipHL+16:], csumFold(sum))
	h := vnetHdr{flags: vnetFlagNeedsCsum, gsoType: gsoTCPv4, hdrLen: uint16(ipHL + 32), gsoSize: uint16(mss),
		csumStart: uint16(ipHL), csumOffset: 16}
	if ipHL == 40 {
		h.gsoType = gsoTCPv6
	}
	return h
}

func TestGSOSplitAndCoalesce(t *testing.T) {
	payload := make([]byte, 5000)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	for _, tc := range []struct {
		name string
		v6   bool
		mss  int
		psh  bool
		cwr  bool // CWR on the first segment keeps it out of the merge, as in Linux GRO
	}{
		{"v4", false, 1348, true, false},
		{"v6", true, 1328, true, false},
		{"v4 exact cwr", false, 1000, false, true},
		{"v6 cwr", true, 1328, true, true},
		{"v6 one segment", true, 6000, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ipHL := 20
			if tc.v6 {
				ipHL = 40
			}
			flags := uint8(tcpFlagACK)
			if tc.cwr {
				flags |= tcpFlagCWR
			}
			if tc.psh {
				flags |= tcpFlagPSH
			}
			sp := tcpPacket(tc.v6, 1000, flags, payload)
			h := superpacket(sp, ipHL, tc.mss)
			const off = 16
			bufs := make([][]byte, 8)
			for i := range bufs {
				bufs[i] = make([]byte, off+ipHL+32+tc.mss)
			}
			sizes := make([]int, 8)
			n, err := gsoSplit(&h, sp, bufs, sizes, off)
			if err != nil {
				t.Fatal(err)
			}
			want := (len(payload) + tc.mss - 1) / tc.mss
			if n != want || segmentCount(&h, sp) != want {
				t.Fatalf("%d segments (count says %d), want %d", n, segmentCount(&h, sp), want)
			}
			var got []byte
			segs := make([][]byte, n)
			for i := range n {
				s := bufs[i][off : off+sizes[i]]
				segs[i] = bufs[i][:off+sizes[i]]
				tcpValid(t, s, ipHL)
				th := s[ipHL:]
				if seq := binary.BigEndian.Uint32(th[4:]); seq != uint32(1000+i*tc.mss) {
					t.Errorf("segment %d seq %d", i, seq)
				}
				last := i == n-1
				if (th[13]&tcpFlagPSH != 0) != (last && tc.psh) || (th[13]&tcpFlagCWR != 0) != (i == 0 && tc.cwr) {
					t.Errorf("segment %d flags %02x", i, th[13])
				}
				if !tc.v6 && binary.BigEndian.Uint16(s[4:]) != uint16(0x1234+i) {
					t.Errorf("segment %d IP ID %x", i, binary.BigEndian.Uint16(s[4:]))
				}
				got = append(got, th[32:]...)
			}
			if !bytes.Equal(got, payload) {
				t.Fatal("payload changed by the split")
			}

			// Coalesce them back: one group, rebuilt as the kernel would.
			first := 0
			if tc.cwr {
				first = 1
				got = got[:0]
				got = append(got, segs[0][off+ipHL+32:]...)
			} else {
				got = got[:0]
			}
			var g groPlan
			g.plan(segs, off)
			if n == 1 {
				if len(g.groups) > 1 || (len(g.groups) == 1 && g.groups[0].segs != 1) {
					t.Fatalf("groups %+v", g.groups)
				}
				return
			}
			gi := len(g.groups) - 1
			if gi < 0 || g.groups[gi].head != first || g.groups[gi].segs != n-first {
				t.Fatalf("groups %+v", g.groups)
			}
			gr := g.groups[gi]
			finishHead(segs[first], off, gr.segSize, gr.total, gr.psh)
			var vh vnetHdr
			vh.decode(segs[first][off-vnetHdrLen:])
			if vh.gsoSize != uint16(tc.mss) || int(vh.csumStart) != ipHL || vh.csumOffset != 16 || vh.flags != vnetFlagNeedsCsum {
				t.Errorf("virtio header %+v", vh)
			}
			whole := append([]byte(nil), segs[first][off:off+ipHL+32]...)
			for m := first; m >= 0; m = g.next[m] {
				whole = append(whole, segs[m][off+ipHL+32:]...)
			}
			if len(whole) != gr.total {
				t.Fatalf("superpacket %d bytes, group says %d", len(whole), gr.total)
			}
			// The kernel completes the checksum from the partial sum.
			c := ^csumFold(csumAdd(0, whole[ipHL:]))
			binary.BigEndian.PutUint16(whole[ipHL+16:], c)
			tcpValid(t, whole, ipHL)
			if !bytes.Equal(append(got, whole[ipHL+32:]...), payload) {
				t.Error("payload changed by the merge")
			}
			if (whole[ipHL+13]&tcpFlagPSH != 0) != tc.psh {
				t.Errorf("merged flags %02x", whole[ipHL+13])
			}
		})
	}
}

func TestGSOSplitErrors(t *testing.T) {
	sp := tcpPacket(false, 1, tcpFlagACK, make([]byte, 3000))
	h := superpacket(sp, 20, 1000)
	bufs := [][]byte{make([]byte, 1500), make([]byte, 1500)}
	sizes := make([]int, 2)
	if _, err := gsoSplit(&h, sp, bufs, sizes, 0); err != errTooManySegments {
		t.Errorf("3 segments into 2 buffers: %v", err)
	}
	bad := h
	bad.gsoType = gsoUDP
	if _, err := gsoSplit(&bad, sp, bufs, sizes, 0); err == nil {
		t.Error("UFO accepted")
	}
	bad = h
	bad.csumStart = 10
	if _, err := gsoSplit(&bad, sp, bufs, sizes, 0); err == nil {
		t.Error("csum_start inside the IP header accepted")
	}
	bad = h
	bad.gsoType = gsoTCPv6
	if _, err := gsoSplit(&bad, sp, bufs, sizes, 0); err == nil {
		t.Error("TCPv6 GSO on an IPv4 packet accepted")
	}
	if _, err := gsoSplit(&h, sp[:30], bufs, sizes, 0); err == nil {
		t.Error("truncated header accepted")
	}
}

func TestGSOSplitUDP(t *testing.T) {
	pkt := ipv4UDP("10.0.0.1", "10.0.0.2", 1, 2, make([]byte, 2500))
	// Partial checksum as the kernel leaves it.
	u := pkt[20:]
	binary.BigEndian.PutUint16(u[6:], csumFold(pseudoSum(pkt[12:16], pkt[16:20], protoUDP, len(u))))
	h := vnetHdr{flags: vnetFlagNeedsCsum, gsoType: gsoUDPL4, gsoSize: 1000, csumStart: 20, csumOffset: 6}
	bufs := [][]byte{make([]byte, 1500), make([]byte, 1500), make([]byte, 1500)}
	sizes := make([]int, 3)
	n, err := gsoSplit(&h, pkt, bufs, sizes, 0)
	if err != nil || n != 3 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	for i := range n {
		s := bufs[i][:sizes[i]]
		if naiveSum(s[:20]) != 0xffff {
			t.Errorf("segment %d IP checksum", i)
		}
		ps := append(append([]byte(nil), s[12:20]...), 0, protoUDP, byte((len(s)-20)>>8), byte(len(s)-20))
		if naiveSum(append(ps, s[20:]...)) != 0xffff {
			t.Errorf("segment %d UDP checksum", i)
		}
		if l := int(binary.BigEndian.Uint16(s[24:])); l != len(s)-20 {
			t.Errorf("segment %d UDP length %d", i, l)
		}
	}
	// GSO_NONE with a partial checksum is completed.
	one := ipv4UDP("10.0.0.1", "10.0.0.2", 1, 2, []byte("abc"))
	binary.BigEndian.PutUint16(one[26:], csumFold(pseudoSum(one[12:16], one[16:20], protoUDP, len(one)-20)))
	h1 := vnetHdr{flags: vnetFlagNeedsCsum, csumStart: 20, csumOffset: 6}
	if n, err := gsoSplit(&h1, one, bufs, sizes, 0); err != nil || n != 1 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	if !bytes.Equal(bufs[0][:sizes[0]], ipv4UDP("10.0.0.1", "10.0.0.2", 1, 2, []byte("abc"))) {
		t.Error("checksum not completed")
	}
}

// The coalescer keeps per-flow order and refuses what Linux GRO refuses.
func TestGROPlan(t *testing.T) {
	seg := func(port uint16, seq uint32, flags uint8, n int) []byte {
		p := tcpPacket(false, seq, flags, bytes.Repeat([]byte{byte(seq)}, n))
		binary.BigEndian.PutUint16(p[20:], port)
		setTCPChecksum(p, 20)
		return p
	}
	badSum := seg(1, 200, tcpFlagACK, 100)
	badSum[len(badSum)-1] ^= 1
	const A = tcpFlagACK
	tests := []struct {
		name   string
		pkts   [][]byte
		groups [][]int // members of each group of 2+, in order
	}{
		{"one flow", [][]byte{seg(1, 0, A, 100), seg(1, 100, A, 100), seg(1, 200, A, 50)}, [][]int{{0, 1, 2}}},
		{"two flows interleaved", [][]byte{seg(1, 0, A, 100), seg(2, 0, A, 100), seg(1, 100, A, 100), seg(2, 100, A, 100)}, [][]int{{0, 2}, {1, 3}}},
		{"pure ACK splits", [][]byte{seg(1, 0, A, 100), seg(1, 100, A, 0), seg(1, 100, A, 100), seg(1, 200, A, 100)}, [][]int{{2, 3}}},
		{"gap", [][]byte{seg(1, 0, A, 100), seg(1, 150, A, 100), seg(1, 250, A, 100)}, [][]int{{1, 2}}},
		{"psh ends", [][]byte{seg(1, 0, A, 100), seg(1, 100, A|tcpFlagPSH, 100), seg(1, 200, A, 100), seg(1, 300, A, 100)}, [][]int{{0, 1}, {2, 3}}},
		{"short ends", [][]byte{seg(1, 0, A, 100), seg(1, 100, A, 60), seg(1, 160, A, 100), seg(1, 260, A, 100)}, [][]int{{0, 1}, {2, 3}}},
		{"bigger does not join", [][]byte{seg(1, 0, A, 100), seg(1, 100, A, 120)}, nil},
		{"bad checksum", [][]byte{seg(1, 0, A, 100), seg(1, 100, A, 100), badSum, seg(1, 300, A, 100)}, [][]int{{0, 1}}},
		{"syn", [][]byte{seg(1, 0, A|tcpFlagSYN, 100), seg(1, 100, A, 100)}, nil},
		{"fin", [][]byte{seg(1, 0, A, 100), seg(1, 100, A|tcpFlagFIN, 100)}, nil},
		{"udp between", [][]byte{seg(1, 0, A, 100), ipv4UDP("10.0.0.1", "10.0.0.2", 1, 2, nil), seg(1, 100, A, 100)}, [][]int{{0, 2}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const off = 16
			bufs := make([][]byte, len(tc.pkts))
			for i, p := range tc.pkts {
				bufs[i] = append(make([]byte, off), p...)
			}
			var g groPlan
			g.plan(bufs, off)
			var got [][]int
			for _, gr := range g.groups {
				if gr.segs < 2 {
					continue
				}
				var m []int
				for i := gr.head; i >= 0; i = g.next[i] {
					m = append(m, i)
				}
				got = append(got, m)
			}
			if len(got) != len(tc.groups) {
				t.Fatalf("groups %v, want %v", got, tc.groups)
			}
			for i := range got {
				if !equalInts(got[i], tc.groups[i]) {
					t.Fatalf("groups %v, want %v", got, tc.groups)
				}
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseFlow(t *testing.T) {
	v6 := tcpPacket(true, 1, tcpFlagACK, nil)
	v6[0] = 0x6b // traffic class 0xb8: DSCP 46
	v6[1] = 0x80
	frag := ipv4UDP("10.0.0.1", "10.0.0.2", 1, 2, nil)
	binary.BigEndian.PutUint16(frag[6:], 185) // offset 1480: not the first fragment
	icmp := ipv4UDP("10.0.0.1", "10.0.0.2", 0, 0, nil)
	icmp[9] = protoICMP
	icmp[20], icmp[21] = 8, 0 // echo request
	tests := []struct {
		name     string
		pkt      []byte
		ok, port bool
		proto    uint8
		sp, dp   uint16
		dscp     uint8
	}{
		{"udp4", ipv4UDP("10.0.0.1", "10.0.0.2", 53, 5353, nil), true, true, protoUDP, 53, 5353, 0},
		{"tcp6", v6, true, true, protoTCP, 40000, 5201, 46},
		{"fragment", frag, true, false, protoUDP, 0, 0, 0},
		{"icmp", icmp, true, true, protoICMP, 0x0800, 0x0800, 0},
		{"garbage", []byte{0x12, 0x34}, false, false, 0, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f dataplane.Flow
			port, ok := parseFlow(tc.pkt, &f)
			if ok != tc.ok || port != tc.port {
				t.Fatalf("ok=%v ports=%v", ok, port)
			}
			if !ok {
				return
			}
			if f.Protocol != tc.proto || f.SrcPort != tc.sp || f.DstPort != tc.dp || f.DSCP != tc.dscp {
				t.Errorf("flow %+v", f)
			}
		})
	}
}
