package userspace

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/esp"
)

// The namespace tests build two network namespaces joined by a veth pair,
// run one data plane in each (created from this process: the TUN and the
// sockets stay in the namespace they were created in), and push real
// traffic through with ping and iperf3.
//
// Addresses come from 198.18.0.0/15 (RFC 2544 benchmarking) and
// 2001:2::/48 (RFC 5180): the underlay is 198.18.0.0/24 or 2001:2::/64, the
// inner networks 198.19.1.0/24 and 198.19.2.0/24, or 2001:2:0:1::/64 and
// 2001:2:0:2::/64.

var nsSeq atomic.Int32

type nsPair struct {
	a, b           string // namespace names
	dpa, dpb       *DataPlane
	outA, outB     netip.AddrPort
	innerA, innerB string // an address of each end's inner network
}

// nsOpts chooses the data planes' setup.
type nsOpts struct {
	offload bool
	v6      bool // IPv6 outer and inner addresses
	plain   bool // plain ESP (IP protocol 50) instead of ESP-in-UDP
}

// nsAddrs is one family's addressing plan.
type nsAddrs struct {
	outerA, outerB string // underlay, with prefix length
	innerA, innerB string // TUN addresses, with prefix length
	netA, netB     string // inner networks
}

var nsPlan = map[bool]nsAddrs{
	false: {"198.18.0.1/24", "198.18.0.2/24", "198.19.1.1/24", "198.19.2.1/24", "198.19.1.0/24", "198.19.2.0/24"},
	true:  {"2001:2::1/64", "2001:2::2/64", "2001:2:0:1::1/64", "2001:2:0:2::1/64", "2001:2:0:1::/64", "2001:2:0:2::/64"},
}

// addrArgs is `ip addr add` for an address, without DAD for IPv6 (the test
// cannot wait for it).
func addrArgs(ns, addr, dev string) []string {
	a := []string{"ip", "-n", ns, "addr", "add", addr, "dev", dev}
	if pfx(addr).Addr().Is6() {
		a = append(a, "nodad")
	}
	return a
}

func needNamespaces(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("namespace test needs root (ip netns, TUN)")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("namespace test needs %s in PATH", tool)
		}
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("namespace test needs /dev/net/tun")
	}
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNSPair creates the namespaces, the veth and both data planes with
// ESP-in-UDP tunnels both ways over IPv4.
func newNSPair(t *testing.T, offload bool) *nsPair {
	t.Helper()
	return newNSPairWith(t, nsOpts{offload: offload})
}

// newNamespaces creates two namespaces joined by veth pairs named after
// links (A's end is <a><link>, B's <b><link>), all up, with lo. Everything
// is removed at the end of the test.
func newNamespaces(t *testing.T, links ...string) (a, b string) {
	t.Helper()
	id := fmt.Sprintf("mfs%d%d", os.Getpid()%100000, nsSeq.Add(1))
	a, b = id+"a", id+"b"
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", a).Run()
		exec.Command("ip", "netns", "del", b).Run()
	})
	run(t, "ip", "netns", "add", a)
	run(t, "ip", "netns", "add", b)
	for i, l := range links {
		run(t, "ip", "link", "add", a+l, "netns", a, "address", vethMAC(i, 0), "type", "veth",
			"peer", "name", b+l, "netns", b, "address", vethMAC(i, 1))
	}
	for _, ns := range []string{a, b} {
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
		for _, l := range links {
			run(t, "ip", "-n", ns, "link", "set", ns+l, "up")
		}
	}
	return a, b
}

// vethMAC is the MAC address of end (0 = A, 1 = B) of the i-th veth pair.
func vethMAC(i, end int) string { return fmt.Sprintf("02:00:00:00:%02x:%02x", i, 0xa+end) }

// staticNeighbours gives both ends of the i-th veth pair a permanent
// neighbour entry for the other's address: IPv6 neighbour discovery right
// after the addresses appear can lose its first solicitation (the
// solicited-node group is joined asynchronously) and stall for a second.
func staticNeighbours(t *testing.T, a, b, link string, i int, addrA, addrB netip.Addr) {
	t.Helper()
	run(t, "ip", "-n", a, "neigh", "replace", addrB.String(), "lladdr", vethMAC(i, 1), "dev", a+link, "nud", "permanent")
	run(t, "ip", "-n", b, "neigh", "replace", addrA.String(), "lladdr", vethMAC(i, 0), "dev", b+link, "nud", "permanent")
}

// newNSPairWith builds the namespaces and the data planes with tunnel-mode
// SAs both ways, as o says.
func newNSPairWith(t *testing.T, o nsOpts) *nsPair {
	t.Helper()
	pl := nsPlan[o.v6]
	p := &nsPair{}
	p.a, p.b = newNamespaces(t, "v")
	run(t, addrArgs(p.a, pl.outerA, p.a+"v")...)
	run(t, addrArgs(p.b, pl.outerB, p.b+"v")...)
	p.outA = netip.AddrPortFrom(pfx(pl.outerA).Addr(), 4501)
	p.outB = netip.AddrPortFrom(pfx(pl.outerB).Addr(), 4501)
	staticNeighbours(t, p.a, p.b, "v", 0, p.outA.Addr(), p.outB.Addr())
	p.innerA, p.innerB = pfx(pl.innerA).Addr().String(), pfx(pl.innerB).Addr().String()
	mk := func(ns, addr, route string) *DataPlane {
		dp, err := New(Config{
			TUN: ns + "t", NetNS: "/var/run/netns/" + ns, Port: 4501, DisableOffload: !o.offload,
			Addresses: []netip.Prefix{pfx(addr)}, Routes: []netip.Prefix{pfx(route)},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { dp.Close() })
		return dp
	}
	p.dpa = mk(p.a, pl.innerA, pl.netB)
	p.dpb = mk(p.b, pl.innerB, pl.netA)
	ctx := context.Background()
	sa := func(spi uint32, dir dataplane.Direction, local, remote netip.AddrPort, lts, rts string, key byte) dataplane.SA {
		return dataplane.SA{
			SPI: spi, Direction: dir, Mode: dataplane.Tunnel, Suite: dataplane.SuiteAESGCM128, Keys: testKeys(key),
			Local: local, Remote: remote, Encap: !o.plain, ReplayWindow: 1024,
			LocalTS: sel(lts), RemoteTS: sel(rts),
		}
	}
	must(t, p.dpa.AddSA(ctx, sa(0x1001, dataplane.Out, p.outA, p.outB, pl.netA, pl.netB, 1)))
	must(t, p.dpb.AddSA(ctx, sa(0x1001, dataplane.In, p.outB, p.outA, pl.netB, pl.netA, 1)))
	must(t, p.dpb.AddSA(ctx, sa(0x2002, dataplane.Out, p.outB, p.outA, pl.netB, pl.netA, 2)))
	must(t, p.dpa.AddSA(ctx, sa(0x2002, dataplane.In, p.outA, p.outB, pl.netA, pl.netB, 2)))
	// A third SA into B, fed only by the test (drop checks).
	must(t, p.dpb.AddSA(ctx, sa(0x3003, dataplane.In, p.outB, p.outA, pl.netB, pl.netA, 3)))
	must(t, p.dpa.AddPolicy(ctx, dataplane.Policy{ID: 1, Direction: dataplane.Out, Action: dataplane.Protect,
		Local: sel(pl.netA), Remote: sel(pl.netB), SPIs: []uint32{0x1001}}))
	must(t, p.dpb.AddPolicy(ctx, dataplane.Policy{ID: 1, Direction: dataplane.Out, Action: dataplane.Protect,
		Local: sel(pl.netB), Remote: sel(pl.netA), SPIs: []uint32{0x2002}}))
	return p
}

// ping wants three echo replies within 5 s. -w, not -W: once a reply came
// back, -W waits only two round trips for the others, which a loaded
// machine can miss; with -w, ping exits 0 only when all three came back.
// Losses inside the data plane show in the SA counters (checkFlowed).
func ping(t *testing.T, ns, dst string) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-w", "5", dst).CombinedOutput()
	if err != nil {
		t.Fatalf("ping %s from %s: %v\n%s", dst, ns, err, out)
	}
}

// iperf runs a TCP iperf3 test from A to B's inner address and returns the
// received rate.
func iperf(t *testing.T, p *nsPair, secs int) float64 {
	t.Helper()
	return iperfBetween(t, p.a, p.innerA, p.b, p.innerB, secs)
}

// iperfBetween runs iperf3 from src (in namespace a) to dst (in b).
func iperfBetween(t *testing.T, a, src, b, dst string, secs int) float64 {
	t.Helper()
	srv := exec.Command("ip", "netns", "exec", b, "iperf3", "-s", "-1", "-B", dst, "-p", "5301")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		srv.Process.Kill()
		srv.Wait()
	}()
	var out []byte
	var err error
	for range 20 { // until the server listens
		out, err = exec.Command("ip", "netns", "exec", a, "iperf3", "-c", dst, "-B", src, "-p", "5301",
			"-t", fmt.Sprint(secs), "-J").Output()
		if !strings.Contains(string(out), "unable to connect") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("iperf3: %v\n%s", err, out)
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &r); err != nil || r.End.SumReceived.BitsPerSecond <= 0 {
		t.Fatalf("iperf3 output: %v\n%s", err, out)
	}
	return r.End.SumReceived.BitsPerSecond
}

func TestNamespacePingIperf(t *testing.T) {
	needNamespaces(t, "ping", "iperf3")
	for _, tc := range []struct {
		name    string
		offload bool
		secs    int
	}{
		{"offload", true, 2},
		{"no_offload", false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newNSPair(t, tc.offload)
			ping(t, p.a, "198.19.2.1")
			ping(t, p.b, "198.19.1.1")
			bps := iperf(t, p, tc.secs)
			if bps <= 0 {
				t.Fatalf("iperf3 moved nothing")
			}
			t.Logf("iperf3 %s: %.0f Mbit/s", tc.name, bps/1e6)
			ctx := context.Background()
			for _, x := range []struct {
				dp  *DataPlane
				spi uint32
				dir dataplane.Direction
			}{{p.dpa, 0x1001, dataplane.Out}, {p.dpb, 0x1001, dataplane.In}, {p.dpb, 0x2002, dataplane.Out}, {p.dpa, 0x2002, dataplane.In}} {
				c, err := x.dp.Counters(ctx, x.spi, x.dir)
				must(t, err)
				if c.Packets < 6 {
					t.Errorf("spi 0x%x %v: %d packets", x.spi, x.dir, c.Packets)
				}
				for r, v := range c.Drops {
					if v != 0 && r != "replay" { // TCP may see a retransmitted duplicate; nothing else
						t.Errorf("spi 0x%x %v: drops %s = %d", x.spi, x.dir, r, v)
					}
				}
			}
		})
	}
}

// TestNamespaceDrops sends crafted ESP packets into B through the veth: a
// good one, the same again (replay), one with a wrong ICV and one whose
// inner source is outside the SA's selectors; only the first reaches B.
func TestNamespaceDrops(t *testing.T) {
	needNamespaces(t)
	p := newNSPair(t, true)
	sealer, err := esp.NewSA(esp.Config{SPI: 0x3003, Suite: dataplane.SuiteAESGCM128, Keys: testKeys(3), Mode: dataplane.Tunnel})
	must(t, err)
	defer sealer.Zero()
	seal := func(pkt []byte) []byte {
		seq, err := sealer.NextSeq()
		must(t, err)
		head, tail := sealer.Overhead()
		buf := make([]byte, head+len(pkt), head+len(pkt)+tail)
		copy(buf[head:], pkt)
		b, err := sealer.SealInPlace(buf, len(pkt), esp.NextHeaderIPv4, seq)
		must(t, err)
		return b
	}
	good := seal(ipv4UDP("198.19.1.1", "198.19.2.1", 9, 9, []byte("good")))
	badICV := seal(ipv4UDP("198.19.1.1", "198.19.2.1", 9, 9, []byte("bad icv")))
	badICV[len(badICV)-1] ^= 0x80
	spoofed := seal(ipv4UDP("203.0.113.7", "198.19.2.1", 9, 9, []byte("spoofed")))

	// A UDP socket inside namespace A, from another port than the data
	// plane's, and a receiver for the inner packets inside namespace B.
	nsA, err := openNS("/var/run/netns/" + p.a)
	must(t, err)
	defer nsA.close()
	nsB, err := openNS("/var/run/netns/" + p.b)
	must(t, err)
	defer nsB.close()
	var c, rx *net.UDPConn
	must(t, nsA.do(func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(198, 18, 0, 1)})
		return err
	}))
	defer c.Close()
	must(t, nsB.do(func() error {
		var err error
		rx, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 9})
		return err
	}))
	defer rx.Close()
	dst := net.UDPAddrFromAddrPort(p.outB)
	ctx := context.Background()
	get := func() dataplane.Counters {
		cs, err := p.dpb.Counters(ctx, 0x3003, dataplane.In)
		must(t, err)
		return cs
	}
	tests := []struct {
		name    string
		pkt     []byte
		deliver string // payload expected at the inner receiver
		reason  string // drop counter expected to grow
	}{
		{"good", good, "good", ""},
		{"replayed", good, "", "replay"},
		{"wrong icv", badICV, "", "icv"},
		{"inner source outside selectors", spoofed, "", "selector_mismatch"},
	}
	buf := make([]byte, 2048)
	for _, tc := range tests {
		before := get()
		if _, err := c.WriteToUDP(tc.pkt, dst); err != nil {
			t.Fatal(err)
		}
		if tc.reason != "" {
			waitFor(t, tc.name, func() bool { return get().Drops[tc.reason] == before.Drops[tc.reason]+1 })
		}
		wait := 200 * time.Millisecond
		if tc.deliver != "" {
			wait = 5 * time.Second
		}
		rx.SetReadDeadline(time.Now().Add(wait))
		n, _, err := rx.ReadFromUDP(buf)
		switch {
		case tc.deliver != "" && (err != nil || string(buf[:n]) != tc.deliver):
			t.Errorf("%s: received %q, %v; want %q", tc.name, buf[:n], err, tc.deliver)
		case tc.deliver == "" && err == nil:
			t.Errorf("%s: delivered %q", tc.name, buf[:n])
		}
		for r, v := range get().Drops {
			if r != tc.reason && v != before.Drops[r] {
				t.Errorf("%s: drops[%s] moved %d -> %d", tc.name, r, before.Drops[r], v)
			}
		}
	}
	// An unknown SPI is counted on the data plane.
	unknown := append([]byte(nil), good...)
	unknown[0], unknown[1], unknown[2], unknown[3] = 0, 0, 0x77, 0x77
	if _, err := c.WriteToUDP(unknown, dst); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "unknown_spi", func() bool { return p.dpb.Stats().Drops["unknown_spi"] >= 1 })
}
