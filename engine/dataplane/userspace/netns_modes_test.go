package userspace

import (
	"context"
	"net/netip"
	"testing"

	"github.com/mifsec/mifsec/engine/dataplane"
)

// checkFlowed checks that every SA of the A<->B pair carried at least min
// packets and dropped none (a replayed TCP retransmission aside).
func checkFlowed(t *testing.T, dpa, dpb *DataPlane, min uint64) {
	t.Helper()
	ctx := context.Background()
	for _, x := range []struct {
		dp  *DataPlane
		spi uint32
		dir dataplane.Direction
	}{{dpa, 0x1001, dataplane.Out}, {dpb, 0x1001, dataplane.In}, {dpb, 0x2002, dataplane.Out}, {dpa, 0x2002, dataplane.In}} {
		c, err := x.dp.Counters(ctx, x.spi, x.dir)
		must(t, err)
		if c.Packets < min {
			t.Errorf("spi 0x%x %v: %d packets, want at least %d", x.spi, x.dir, c.Packets, min)
		}
		for r, v := range c.Drops {
			if v != 0 && r != "replay" {
				t.Errorf("spi 0x%x %v: drops %s = %d", x.spi, x.dir, r, v)
			}
		}
	}
	if t.Failed() {
		t.Logf("A: %+v\nB: %+v", dpa.Stats(), dpb.Stats())
	}
}

// Tunnel mode over IPv6 outer addresses (IPv6 inside) and over plain ESP
// (IP protocol 50, raw sockets) for both families.
func TestNamespaceFamiliesAndPlainESP(t *testing.T) {
	needNamespaces(t, "ping", "iperf3")
	tests := []struct {
		name string
		o    nsOpts
		secs int // iperf3 seconds, 0 = ping only
	}{
		{"ipv6 esp-in-udp", nsOpts{v6: true, offload: true}, 1},
		{"ipv4 plain esp", nsOpts{plain: true, offload: true}, 1},
		{"ipv6 plain esp", nsOpts{v6: true, plain: true}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newNSPairWith(t, tc.o)
			ping(t, p.a, p.innerB)
			ping(t, p.b, p.innerA)
			if tc.secs > 0 {
				bps := iperf(t, p, tc.secs)
				t.Logf("iperf3 %s: %.0f Mbit/s", tc.name, bps/1e6)
			}
			checkFlowed(t, p.dpa, p.dpb, 6)
		})
	}
}

// TestNamespaceTransport protects traffic between the two hosts' own
// addresses with transport-mode ESP. Topology, per namespace:
//
//	<ns>h  198.19.0.{1,2}/24 (or 2001:2:0:10::{1,2}/64): the hosts' addresses
//	<ns>o  198.18.0.{1,2}/24 (or 2001:2::{1,2}/64): the outer path
//	<ns>t  the TUN, with a host route to the peer's address (src = ours)
//
// The host route beats the connected /24 of <ns>h, so the hosts' traffic
// enters the TUN, and the ESP leaves on <ns>o: it cannot loop into the TUN.
// The counters prove both directions went through ESP.
func TestNamespaceTransport(t *testing.T) {
	needNamespaces(t, "ping", "iperf3")
	tests := []struct {
		name     string
		v6       bool
		plain    bool
		offload  bool
		secs     int
		host     [2]string
		outer    [2]string
		hostBits int
	}{
		{"ipv4 esp-in-udp", false, false, true, 1, [2]string{"198.19.0.1", "198.19.0.2"}, [2]string{"198.18.0.1", "198.18.0.2"}, 24},
		{"ipv6 plain esp", true, true, false, 1, [2]string{"2001:2:0:10::1", "2001:2:0:10::2"}, [2]string{"2001:2::1", "2001:2::2"}, 64},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newNamespaces(t, "h", "o")
			outerBits := 24
			if tc.v6 {
				outerBits = 64
			}
			ns := [2]string{a, b}
			dps := [2]*DataPlane{}
			for i := range 2 {
				run(t, addrArgs(ns[i], netip.PrefixFrom(netip.MustParseAddr(tc.host[i]), tc.hostBits).String(), ns[i]+"h")...)
				run(t, addrArgs(ns[i], netip.PrefixFrom(netip.MustParseAddr(tc.outer[i]), outerBits).String(), ns[i]+"o")...)
				dp, err := New(Config{TUN: ns[i] + "t", NetNS: "/var/run/netns/" + ns[i], Port: 4501, DisableOffload: !tc.offload}, nil)
				must(t, err)
				t.Cleanup(func() { dp.Close() })
				dps[i] = dp
				peer := netip.MustParseAddr(tc.host[1-i])
				run(t, "ip", "-n", ns[i], "route", "add", netip.PrefixFrom(peer, peer.BitLen()).String(), "dev", dp.TUNName(), "src", tc.host[i])
			}
			staticNeighbours(t, a, b, "o", 1, netip.MustParseAddr(tc.outer[0]), netip.MustParseAddr(tc.outer[1]))
			ctx := context.Background()
			hostTS := func(i int) []dataplane.Selector {
				h := netip.MustParseAddr(tc.host[i])
				return []dataplane.Selector{{Prefix: netip.PrefixFrom(h, h.BitLen())}}
			}
			outer := func(i int) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr(tc.outer[i]), 4501) }
			for _, x := range []struct {
				from, to int
				spi      uint32
				key      byte
			}{{0, 1, 0x1001, 1}, {1, 0, 0x2002, 2}} {
				out := dataplane.SA{
					SPI: x.spi, Direction: dataplane.Out, Mode: dataplane.Transport, Suite: dataplane.SuiteAESGCM128,
					Keys: testKeys(x.key), Local: outer(x.from), Remote: outer(x.to), Encap: !tc.plain,
					LocalTS: hostTS(x.from), RemoteTS: hostTS(x.to),
				}
				in := out
				in.Direction, in.Keys, in.ReplayWindow = dataplane.In, testKeys(x.key), 1024
				in.Local, in.Remote, in.LocalTS, in.RemoteTS = out.Remote, out.Local, out.RemoteTS, out.LocalTS
				must(t, dps[x.from].AddSA(ctx, out))
				must(t, dps[x.to].AddSA(ctx, in))
				must(t, dps[x.from].AddPolicy(ctx, dataplane.Policy{ID: 1, Direction: dataplane.Out, Action: dataplane.Protect,
					Local: out.LocalTS, Remote: out.RemoteTS, SPIs: []uint32{x.spi}}))
			}
			ping(t, a, tc.host[1])
			ping(t, b, tc.host[0])
			bps := iperfBetween(t, a, tc.host[0], b, tc.host[1], tc.secs)
			t.Logf("iperf3 transport %s: %.0f Mbit/s", tc.name, bps/1e6)
			checkFlowed(t, dps[0], dps[1], 6)
		})
	}
}
