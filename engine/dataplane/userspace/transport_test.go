package userspace

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mifsec/mifsec/engine/dataplane"
)

// l4Sum computes a TCP/UDP/ICMPv6 checksum the slow way, over an explicit
// pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1), with the checksum field of
// l4 (at at) taken as zero.
func l4Sum(src, dst netip.Addr, proto uint8, l4 []byte, at int) uint16 {
	var ph []byte
	ph = append(ph, src.AsSlice()...)
	ph = append(ph, dst.AsSlice()...)
	if src.Is4() {
		ph = append(ph, 0, proto, byte(len(l4)>>8), byte(len(l4)))
	} else {
		ph = append(ph, 0, 0, byte(len(l4)>>8), byte(len(l4)), 0, 0, 0, proto)
	}
	b := append(ph, l4...)
	b[len(ph)+at], b[len(ph)+at+1] = 0, 0
	return ^naiveSum(b)
}

// csumAt is where the checksum of an upper-layer protocol sits, or -1.
func csumAt(proto uint8, v6 bool) int {
	switch {
	case proto == protoTCP:
		return 16
	case proto == protoUDP:
		return 6
	case proto == protoICMPv6 && v6:
		return 2
	}
	return -1
}

// hostPkt builds an IP packet as the rebuild does (TTL 64; IPv4 with DF and
// ID 0), with the upper-layer checksum set.
func hostPkt(src, dst string, proto uint8, l4 []byte) []byte {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	hl := ipHeaderLen(s)
	p := make([]byte, hl+len(l4))
	copy(p[hl:], l4)
	if s.Is4() {
		p[0], p[6], p[8], p[9] = 0x45, 0x40, 64, proto
		binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
		copy(p[12:], s.AsSlice())
		copy(p[16:], d.AsSlice())
		binary.BigEndian.PutUint16(p[10:], ^naiveSum(p[:20]))
	} else {
		p[0], p[6], p[7] = 0x60, proto, 64
		binary.BigEndian.PutUint16(p[4:], uint16(len(l4)))
		copy(p[8:], s.AsSlice())
		copy(p[24:], d.AsSlice())
	}
	if at := csumAt(proto, s.Is6()); at >= 0 {
		binary.BigEndian.PutUint16(p[hl+at:], l4Sum(s, d, proto, p[hl:], at))
	}
	return p
}

func udpL4(sport, dport uint16, payload string) []byte {
	b := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	copy(b[8:], payload)
	return b
}

func tcpL4(sport, dport uint16, payload string) []byte {
	b := make([]byte, 20+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], 1000)
	binary.BigEndian.PutUint32(b[8:], 2000)
	b[12], b[13] = 5<<4, tcpFlagACK|tcpFlagPSH
	binary.BigEndian.PutUint16(b[14:], 65535)
	copy(b[20:], payload)
	return b
}

// echoL4 is an ICMP (type 8) or ICMPv6 (type 128) echo request; the
// ICMPv4 checksum, which has no pseudo-header, is set here.
func echoL4(v6 bool, payload string) []byte {
	b := make([]byte, 8+len(payload))
	b[0] = 8
	if v6 {
		b[0] = 128
	}
	binary.BigEndian.PutUint16(b[4:], 0x77)
	binary.BigEndian.PutUint16(b[6:], 1)
	copy(b[8:], payload)
	if !v6 {
		binary.BigEndian.PutUint16(b[2:], ^naiveSum(b))
	}
	return b
}

// link installs the outbound SA and policy on from and the inbound SA on to.
func link(t *testing.T, from, to *side, spi uint32, key byte, mode dataplane.Mode, encap bool, fromTS, toTS []dataplane.Selector) {
	t.Helper()
	ctx := context.Background()
	out := dataplane.SA{
		SPI: spi, Direction: dataplane.Out, Mode: mode, Suite: dataplane.SuiteAESGCM128, Keys: testKeys(key),
		Local: from.outer, Remote: to.outer, Encap: encap, LocalTS: fromTS, RemoteTS: toTS,
	}
	in := out
	in.Direction, in.Keys, in.ReplayWindow = dataplane.In, testKeys(key), 1024
	in.Local, in.Remote, in.LocalTS, in.RemoteTS = to.outer, from.outer, toTS, fromTS
	must(t, from.dp.AddSA(ctx, out))
	must(t, to.dp.AddSA(ctx, in))
	must(t, from.dp.AddPolicy(ctx, dataplane.Policy{
		ID: uint64(spi), Direction: dataplane.Out, Action: dataplane.Protect,
		Local: fromTS, Remote: toTS, SPIs: []uint32{spi},
	}))
}

// TestTransportMode sends TCP, UDP and ICMP through transport-mode SAs both
// ways and checks the rebuilt packets: addresses from single-host selectors
// (upper layer untouched), or from the outer addresses when the selectors
// are ranges (checksums recomputed over the new pseudo-header).
func TestTransportMode(t *testing.T) {
	tests := []struct {
		name             string
		outerA, outerB   string
		tsA, tsB         string // selectors of A's and B's side
		srcA, srcB       string // addresses the hosts' stacks use
		wantA, wantB     string // addresses the peer sees them as
		checksumsChanged bool
	}{
		{"ipv4 hosts", "192.0.2.1:4500", "192.0.2.2:4500", "10.0.0.1/32", "10.0.0.2/32",
			"10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.2", false},
		{"ipv6 hosts", "[2001:db8::1]:4500", "[2001:db8::2]:4500", "2001:db8:1::1/128", "2001:db8:1::2/128",
			"2001:db8:1::1", "2001:db8:1::2", "2001:db8:1::1", "2001:db8:1::2", false},
		{"ipv6 hosts over ipv4", "192.0.2.1:4500", "192.0.2.2:4500", "2001:db8:1::1/128", "2001:db8:1::2/128",
			"2001:db8:1::1", "2001:db8:1::2", "2001:db8:1::1", "2001:db8:1::2", false},
		{"ipv4 ranges: outer addresses", "192.0.2.1:4500", "192.0.2.2:4500", "192.0.2.0/24", "192.0.2.0/24",
			"192.0.2.11", "192.0.2.12", "192.0.2.1", "192.0.2.2", true},
		{"ipv6 ranges: outer addresses", "[2001:db8::1]:4500", "[2001:db8::2]:4500", "2001:db8::/64", "2001:db8::/64",
			"2001:db8::11", "2001:db8::12", "2001:db8::1", "2001:db8::2", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newMemNet()
			a := newSide(t, n, tc.outerA, "")
			b := newSide(t, n, tc.outerB, "")
			link(t, a, b, 0x1001, 1, dataplane.Transport, true, sel(tc.tsA), sel(tc.tsB))
			link(t, b, a, 0x2002, 2, dataplane.Transport, true, sel(tc.tsB), sel(tc.tsA))
			v6 := netip.MustParseAddr(tc.srcA).Is6()
			icmp := uint8(protoICMP)
			if v6 {
				icmp = protoICMPv6
			}
			for _, dir := range []struct {
				from, to   *side
				src, dst   string
				wSrc, wDst string
				spi        uint32
			}{
				{a, b, tc.srcA, tc.srcB, tc.wantA, tc.wantB, 0x1001},
				{b, a, tc.srcB, tc.srcA, tc.wantB, tc.wantA, 0x2002},
			} {
				var bytesIn uint64
				l4s := []struct {
					proto uint8
					l4    []byte
				}{
					{protoUDP, udpL4(5353, 53, "query")},
					{protoTCP, tcpL4(40000, 22, "ssh bytes")},
					{icmp, echoL4(v6, "ping")},
					{protoUDP, udpL4(1, 2, "")},
				}
				for _, x := range l4s {
					dir.from.tun.in <- hostPkt(dir.src, dir.dst, x.proto, x.l4)
					got := recvTUN(t, dir.to)
					want := hostPkt(dir.wSrc, dir.wDst, x.proto, x.l4)
					if !bytes.Equal(got, want) {
						t.Errorf("proto %d: got\n% x\nwant\n% x", x.proto, got, want)
					}
					// Unchanged addresses leave the upper layer byte for byte.
					hl := ipHeaderLen(netip.MustParseAddr(dir.src))
					sent := hostPkt(dir.src, dir.dst, x.proto, x.l4)
					if same := bytes.Equal(got[ipHeaderLen(netip.MustParseAddr(dir.wSrc)):], sent[hl:]); same == tc.checksumsChanged && csumAt(x.proto, v6) >= 0 && len(x.l4) > 0 {
						t.Errorf("proto %d: upper layer changed = %v, want %v", x.proto, !same, tc.checksumsChanged)
					}
					bytesIn += uint64(len(x.l4))
				}
				c := counters(t, dir.to, dir.spi, dataplane.In)
				if c.Packets != uint64(len(l4s)) || c.Bytes != bytesIn || len(c.Drops) != 0 {
					t.Errorf("spi 0x%x in: %d packets, %d bytes, drops %v; want %d, %d", dir.spi, c.Packets, c.Bytes, c.Drops, len(l4s), bytesIn)
				}
			}
		})
	}
}

// Fragments cannot go out in transport mode; a selector mismatch after the
// rebuild counts as a drop only.
func TestTransportDrops(t *testing.T) {
	n := newMemNet()
	a := newSide(t, n, "192.0.2.1:4500", "")
	b := newSide(t, n, "192.0.2.2:4500", "")
	dnsOnly := []dataplane.Selector{{Prefix: pfx("10.0.0.2/32"), Protocol: protoUDP, PortFrom: 53, PortTo: 53}}
	// A sends anything to B; B accepts only UDP to its port 53.
	ctx := context.Background()
	must(t, a.dp.AddSA(ctx, dataplane.SA{SPI: 0x1001, Direction: dataplane.Out, Mode: dataplane.Transport,
		Suite: dataplane.SuiteAESGCM128, Keys: testKeys(1), Local: a.outer, Remote: b.outer, Encap: true,
		LocalTS: sel("10.0.0.1/32"), RemoteTS: sel("10.0.0.2/32")}))
	must(t, a.dp.AddPolicy(ctx, dataplane.Policy{ID: 1, Direction: dataplane.Out, Action: dataplane.Protect,
		Local: sel("10.0.0.1/32"), Remote: sel("10.0.0.2/32"), SPIs: []uint32{0x1001}}))
	must(t, b.dp.AddSA(ctx, dataplane.SA{SPI: 0x1001, Direction: dataplane.In, Mode: dataplane.Transport,
		Suite: dataplane.SuiteAESGCM128, Keys: testKeys(1), Local: b.outer, Remote: a.outer, Encap: true,
		LocalTS: dnsOnly, RemoteTS: sel("10.0.0.1/32"), ReplayWindow: 64}))

	frag := frag4(hostPkt("10.0.0.1", "10.0.0.2", protoUDP, udpL4(5353, 53, "first fragment")))
	tests := []struct {
		name    string
		pkt     []byte
		deliver bool
		outDrop string // drop on A's outbound SA
		inDrop  string // drop on B's inbound SA
	}{
		{"dns", hostPkt("10.0.0.1", "10.0.0.2", protoUDP, udpL4(5353, 53, "q")), true, "", ""},
		{"fragment", frag, false, "transport_fragment", ""},
		{"tcp outside b's selectors", hostPkt("10.0.0.1", "10.0.0.2", protoTCP, tcpL4(1, 53, "x")), false, "", "selector_mismatch"},
		{"udp to another port", hostPkt("10.0.0.1", "10.0.0.2", protoUDP, udpL4(1, 54, "x")), false, "", "selector_mismatch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ob, ib := counters(t, a, 0x1001, dataplane.Out), counters(t, b, 0x1001, dataplane.In)
			a.tun.in <- tc.pkt
			if tc.deliver {
				recvTUN(t, b)
			}
			if tc.outDrop != "" {
				waitFor(t, tc.outDrop, func() bool { return counters(t, a, 0x1001, dataplane.Out).Drops[tc.outDrop] == ob.Drops[tc.outDrop]+1 })
			}
			if tc.inDrop != "" {
				waitFor(t, tc.inDrop, func() bool { return counters(t, b, 0x1001, dataplane.In).Drops[tc.inDrop] == ib.Drops[tc.inDrop]+1 })
			}
			if !tc.deliver {
				noTUN(t, b)
			}
			ia := counters(t, b, 0x1001, dataplane.In)
			want := ib.Packets
			if tc.deliver {
				want++
			}
			if ia.Packets != want {
				t.Errorf("b inbound packets %d -> %d, want %d", ib.Packets, ia.Packets, want)
			}
		})
	}
}

func TestTransportSplit(t *testing.T) {
	v4 := hostPkt("10.0.0.1", "10.0.0.2", protoUDP, udpL4(1, 2, "abc"))
	v4opt := make([]byte, len(v4)+4) // IHL 6: one word of options
	copy(v4opt, v4[:20])
	copy(v4opt[24:], v4[20:])
	v4opt[0] = 0x46
	binary.BigEndian.PutUint16(v4opt[2:], uint16(len(v4opt)))
	padded := append(append([]byte(nil), v4...), 0, 0, 0, 0)
	offset := append([]byte(nil), v4...)
	offset[7] = 1 // fragment offset 8
	v6 := hostPkt("2001:db8::1", "2001:db8::2", protoTCP, tcpL4(1, 2, "abcd"))
	withExt := func(hdrs ...byte) []byte {
		// IPv6 with the given extension headers (8 bytes each) before UDP.
		l4 := udpL4(1, 2, "x")
		p := make([]byte, 40, 40+8*len(hdrs)+len(l4))
		copy(p, v6[:40])
		p[6] = hdrs[0]
		for i := range hdrs {
			next := byte(protoUDP)
			if i+1 < len(hdrs) {
				next = hdrs[i+1]
			}
			p = append(p, next, 0, 0, 0, 0, 0, 0, 0)
		}
		p = append(p, l4...)
		binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
		return p
	}
	tests := []struct {
		name string
		pkt  []byte
		off  int
		n    int
		nh   uint8
		ok   bool
	}{
		{"ipv4", v4, 20, len(v4) - 20, protoUDP, true},
		{"ipv4 options", v4opt, 24, len(v4) - 20, protoUDP, true},
		{"ipv4 padded after total length", padded, 20, len(v4) - 20, protoUDP, true},
		{"ipv4 more fragments", frag4(v4), 0, 0, 0, false},
		{"ipv4 fragment offset", offset, 0, 0, 0, false},
		{"ipv4 total length too big", v4[:len(v4)-1], 0, 0, 0, false},
		{"ipv4 short", v4[:19], 0, 0, 0, false},
		{"ipv6", v6, 40, len(v6) - 40, protoTCP, true},
		{"ipv6 hop-by-hop, destination options", withExt(0, 60), 40, 16 + 9, 0, true},
		{"ipv6 fragment header", withExt(protoFragment6), 0, 0, 0, false},
		{"ipv6 fragment after hop-by-hop", withExt(0, protoFragment6), 0, 0, 0, false},
		{"ipv6 payload length too big", v6[:len(v6)-1], 0, 0, 0, false},
		{"not ip", []byte{0x55, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}, 0, 0, 0, false},
	}
	for _, tc := range tests {
		off, n, nh, ok := transportSplit(tc.pkt)
		if ok != tc.ok || (ok && (off != tc.off || n != tc.n || nh != tc.nh)) {
			t.Errorf("%s: got %d %d %d %v, want %d %d %d %v", tc.name, off, n, nh, ok, tc.off, tc.n, tc.nh, tc.ok)
		}
	}
}

// frag4 sets More Fragments on a copy of an IPv4 packet.
func frag4(p []byte) []byte {
	q := append([]byte(nil), p...)
	q[6] |= 0x20
	q[10], q[11] = 0, 0
	binary.BigEndian.PutUint16(q[10:], ^naiveSum(q[:20]))
	return q
}

func TestNewRebuild(t *testing.T) {
	sa := func(lts, rts []dataplane.Selector) *dataplane.SA {
		return &dataplane.SA{LocalTS: lts, RemoteTS: rts, Local: ap("192.0.2.1:4500"), Remote: ap("192.0.2.2:4500")}
	}
	host := func(s string, proto uint8, port uint16) dataplane.Selector {
		return dataplane.Selector{Prefix: pfx(s), Protocol: proto, PortFrom: port, PortTo: port}
	}
	tests := []struct {
		name     string
		sa       *dataplane.SA
		fromTS   bool
		src, dst string
	}{
		{"hosts", sa(sel("10.0.0.1/32"), sel("10.0.0.2/32")), true, "10.0.0.2", "10.0.0.1"},
		{"one host, several ports", sa([]dataplane.Selector{host("10.0.0.1/32", 6, 22), host("10.0.0.1/32", 17, 53)}, sel("10.0.0.2/32")), true, "10.0.0.2", "10.0.0.1"},
		{"two hosts", sa([]dataplane.Selector{host("10.0.0.1/32", 0, 0), host("10.0.0.3/32", 0, 0)}, sel("10.0.0.2/32")), false, "192.0.2.2", "192.0.2.1"},
		{"range", sa(sel("10.0.0.0/24"), sel("10.0.0.2/32")), false, "192.0.2.2", "192.0.2.1"},
		{"families differ", sa(sel("10.0.0.1/32"), sel("2001:db8::2/128")), false, "192.0.2.2", "192.0.2.1"},
		{"ipv6 hosts", sa(sel("2001:db8::1/128"), sel("2001:db8::2/128")), true, "2001:db8::2", "2001:db8::1"},
	}
	for _, tc := range tests {
		rb := newRebuild(tc.sa)
		src, dst := rb.addrs(&endpoint{local: tc.sa.Local, remote: tc.sa.Remote})
		if rb.fromTS != tc.fromTS || src.String() != tc.src || dst.String() != tc.dst {
			t.Errorf("%s: fromTS %v, %s -> %s; want %v, %s -> %s", tc.name, rb.fromTS, src, dst, tc.fromTS, tc.src, tc.dst)
		}
	}
}
