package userspace

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// FuzzTransportSplit: any bytes from the TUN give either a refusal or a
// payload that lies inside the packet after a whole IP header.
func FuzzTransportSplit(f *testing.F) {
	f.Add(hostPkt("10.0.0.1", "10.0.0.2", protoUDP, udpL4(1, 2, "abc")))
	f.Add(hostPkt("2001:db8::1", "2001:db8::2", protoTCP, tcpL4(1, 2, "abcd")))
	f.Add(frag4(hostPkt("10.0.0.1", "10.0.0.2", protoUDP, udpL4(1, 2, "abc"))))
	f.Add([]byte{0x60, 0, 0, 0, 0, 16, 0, 64})
	f.Fuzz(func(t *testing.T, p []byte) {
		off, n, nh, ok := transportSplit(p)
		if !ok {
			return
		}
		if off < ipv4HL || n < 0 || off+n > len(p) {
			t.Fatalf("payload [%d:%d] of a %d-byte packet", off, off+n, len(p))
		}
		switch p[0] >> 4 {
		case 4:
			if nh != p[9] || off != int(p[0]&0xf)*4 {
				t.Fatalf("ipv4: off %d nh %d", off, nh)
			}
		case 6:
			if nh != p[6] || off != ipv6HL {
				t.Fatalf("ipv6: off %d nh %d", off, nh)
			}
		default:
			t.Fatalf("accepted IP version %d", p[0]>>4)
		}
	})
}

// FuzzRebuild: whatever a peer sealed, the rebuilt packet has a valid IP
// header, and after fixChecksum a valid TCP/UDP/ICMPv6 checksum.
func FuzzRebuild(f *testing.F) {
	f.Add(false, uint8(protoTCP), tcpL4(1, 2, "x"))
	f.Add(true, uint8(protoUDP), udpL4(1, 2, "x"))
	f.Add(true, uint8(protoICMPv6), echoL4(true, "x"))
	f.Add(false, uint8(protoUDP), []byte{1, 2})
	f.Fuzz(func(t *testing.T, v6 bool, nh uint8, l4 []byte) {
		src, dst := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
		if v6 {
			src, dst = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
		}
		hl := ipHeaderLen(src)
		if hl+len(l4) > maxIPPacket {
			return
		}
		p := make([]byte, hl+len(l4))
		copy(p[hl:], l4)
		putIPHeader(p[:hl], src, dst, nh, len(l4))
		udpZero := nh == protoUDP && !v6 && len(l4) >= 8 && l4[6] == 0 && l4[7] == 0
		fixChecksum(p, hl, nh)
		if v6 {
			if int(binary.BigEndian.Uint16(p[4:])) != len(l4) || p[6] != nh {
				t.Fatal("bad ipv6 header")
			}
		} else if naiveSum(p[:20]) != 0xffff || int(binary.BigEndian.Uint16(p[2:])) != len(p) || p[9] != nh {
			t.Fatal("bad ipv4 header")
		}
		at := csumAt(nh, v6)
		if at < 0 || len(l4) < at+2 || udpZero {
			if string(p[hl:]) != string(l4) {
				t.Fatal("payload changed although it has no checksum to fix")
			}
			return
		}
		got := binary.BigEndian.Uint16(p[hl+at:])
		want := l4Sum(src, dst, nh, p[hl:], at)
		if nh == protoUDP && want == 0 {
			want = 0xffff
		}
		if got != want {
			t.Fatalf("checksum %04x, want %04x", got, want)
		}
	})
}

// BenchmarkTransportRebuild measures what transport mode adds to an
// inbound 1400-byte packet: the copy behind a new IP header, and the
// checksum pass when the addresses come from the outer header.
func BenchmarkTransportRebuild(b *testing.B) {
	payload := tcpL4(40000, 5201, string(make([]byte, 1400-20-20)))
	src, dst := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	buf := make([]byte, inHead+ipv6HL+len(payload))
	for _, fix := range []bool{false, true} {
		name := "selectors"
		if fix {
			name = "outer_checksum"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				p := buf[inHead : inHead+ipv4HL+len(payload)]
				copy(p[ipv4HL:], payload)
				putIPHeader(p[:ipv4HL], src, dst, protoTCP, len(payload))
				if fix {
					fixChecksum(p, ipv4HL, protoTCP)
				}
			}
		})
	}
}

func BenchmarkTransportSplit(b *testing.B) {
	p := hostPkt("10.0.0.1", "10.0.0.2", protoTCP, tcpL4(1, 2, string(make([]byte, 1360))))
	for b.Loop() {
		if _, _, _, ok := transportSplit(p); !ok {
			b.Fatal("refused")
		}
	}
}
