package xfrm

// Tests against a kernel with ESP. They run in the test VM (test/vm/run.sh
// sets MIFSEC_VM_TEST=1) and are skipped elsewhere: build machines have no
// kernel ESP. Everything happens in two network namespaces joined by a veth
// pair, created and removed here.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

func needVM(t *testing.T) {
	t.Helper()
	if os.Getenv("MIFSEC_VM_TEST") != "1" {
		t.Skip("needs a kernel with ESP: run test/vm/run.sh")
	}
}

// side is one end of the lab: a namespace and its data plane.
type side struct {
	name string
	ns   netns.NsHandle
	h    *netlink.Handle
	dp   *DataPlane
}

// inNS runs f with the calling thread in ns (sockets opened by f stay there).
func inNS(t *testing.T, ns netns.NsHandle, f func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	f()
	if err := netns.Set(orig); err != nil {
		t.Fatalf("cannot return to the original namespace: %v", err) // thread stays locked and dies
	}
	runtime.UnlockOSThread()
}

func newNS(t *testing.T) netns.NsHandle {
	t.Helper()
	var ns netns.NsHandle
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	if ns, err = netns.New(); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatal(err)
	}
	runtime.UnlockOSThread()
	t.Cleanup(func() { ns.Close() })
	return ns
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func addr(t *testing.T, h *netlink.Handle, link netlink.Link, cidr string) {
	t.Helper()
	a, err := netlink.ParseAddr(cidr)
	must(t, "parse "+cidr, err)
	// ip addr add CIDR dev LINK
	must(t, "addr add "+cidr, h.AddrAdd(link, a))
}

// newLab builds A (10.0.0.1 and 10.0.0.11 on va) ↔ B (10.0.0.2 on vb); the
// inner networks 172.16.{1,11,21}.1 (A) and 172.16.{2,12,22}.1 (B) live on lo.
func newLab(t *testing.T, binding Binding) (a, b *side) {
	a = &side{name: "A", ns: newNS(t)}
	b = &side{name: "B", ns: newNS(t)}
	for _, s := range []*side{a, b} {
		h, err := netlink.NewHandleAt(s.ns, unix.NETLINK_ROUTE, unix.NETLINK_XFRM)
		must(t, "handle", err)
		s.h = h
		t.Cleanup(h.Close)
	}
	// ip link add va type veth peer name vb netns B
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "va"}, PeerName: "vb", PeerNamespace: netlink.NsFd(int(b.ns))}
	must(t, "veth", a.h.LinkAdd(veth))
	for _, s := range []*side{a, b} {
		lo, err := s.h.LinkByName("lo")
		must(t, "lo", err)
		must(t, "lo up", s.h.LinkSetUp(lo))
		vname, peer, outer := "va", "10.0.0.2", []string{"10.0.0.1/24", "10.0.0.11/24"}
		inner := []string{"172.16.1.1/32", "172.16.11.1/32", "172.16.21.1/32"}
		if s == b {
			vname, peer, outer = "vb", "10.0.0.1", []string{"10.0.0.2/24"}
			inner = []string{"172.16.2.1/32", "172.16.12.1/32", "172.16.22.1/32"}
		}
		v, err := s.h.LinkByName(vname)
		must(t, vname, err)
		for _, c := range outer {
			addr(t, s.h, v, c)
		}
		for _, c := range inner {
			addr(t, s.h, lo, c)
		}
		must(t, vname+" up", s.h.LinkSetUp(v))
		// ip route add 172.16.0.0/16 via PEER
		_, dst, _ := net.ParseCIDR("172.16.0.0/16")
		must(t, "route", s.h.RouteAdd(&netlink.Route{Dst: dst, Gw: net.ParseIP(peer)}))
		dp, err := New(Config{Binding: binding, NetNS: fmt.Sprintf("/proc/self/fd/%d", int(s.ns))}, hclog.New(&hclog.LoggerOptions{Name: s.name, Level: hclog.Debug, Output: testWriter{t}}))
		must(t, "New", err)
		s.dp = dp
	}
	return a, b
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// child is one Child SA: a pair of SAs and a pair of policies on each side.
type child struct {
	suite        dataplane.Suite
	path         uint32
	esn          bool
	limits       dataplane.Limits // on A's outbound SA
	spiAB, spiBA uint32
	netA, netB   string // inner /24s
	hostA, hostB string
}

func keysFor(t *testing.T, s dataplane.Suite) dataplane.Keys {
	su := suites[s]
	k := dataplane.Keys{Enc: make([]byte, su.encLen), Integ: make([]byte, su.authLen)}
	_, err := rand.Read(k.Enc)
	must(t, "rand", err)
	_, err = rand.Read(k.Integ)
	must(t, "rand", err)
	return k
}

func sel(p string) []dataplane.Selector {
	return []dataplane.Selector{{Prefix: netip.MustParsePrefix(p)}}
}

func ap(s string) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr(s), 0) }

// install puts child c on both sides, A at aAddr, B at 10.0.0.2.
func install(t *testing.T, ctx context.Context, a, b *side, c child, id uint64, aAddr string) {
	t.Helper()
	kAB, kBA := keysFor(t, c.suite), keysFor(t, c.suite)
	defer kAB.Zero()
	defer kBA.Zero()
	base := dataplane.SA{Mode: dataplane.Tunnel, Suite: c.suite, ESN: c.esn, ReplayWindow: 64, Path: c.path}
	for _, x := range []struct {
		s             *side
		local, remote string
		lts, rts      string
		out, in       uint32
		limits        dataplane.Limits
	}{
		{a, aAddr, "10.0.0.2", c.netA, c.netB, c.spiAB, c.spiBA, c.limits},
		{b, "10.0.0.2", aAddr, c.netB, c.netA, c.spiBA, c.spiAB, dataplane.Limits{}},
	} {
		out := base
		out.SPI, out.Direction, out.Local, out.Remote = x.out, dataplane.Out, ap(x.local), ap(x.remote)
		out.LocalTS, out.RemoteTS, out.Limits = sel(x.lts), sel(x.rts), x.limits
		in := out
		in.SPI, in.Direction, in.Limits = x.in, dataplane.In, dataplane.Limits{}
		if x.s == a {
			out.Keys, in.Keys = kAB, kBA
		} else {
			out.Keys, in.Keys = kBA, kAB
		}
		must(t, x.s.name+" AddSA out", x.s.dp.AddSA(ctx, out))
		must(t, x.s.name+" AddSA in", x.s.dp.AddSA(ctx, in))
		must(t, x.s.name+" AddPolicy out", x.s.dp.AddPolicy(ctx, dataplane.Policy{ID: id, Direction: dataplane.Out, Local: sel(x.lts), Remote: sel(x.rts), Action: dataplane.Protect, SPIs: []uint32{x.out}, Priority: 100}))
		must(t, x.s.name+" AddPolicy in", x.s.dp.AddPolicy(ctx, dataplane.Policy{ID: id + 1, Direction: dataplane.In, Local: sel(x.lts), Remote: sel(x.rts), Action: dataplane.Protect, SPIs: []uint32{x.in}, Priority: 100}))
	}
}

// ping sends n ICMP echo requests from src (in s's namespace) to dst and
// returns how many were answered.
func ping(t *testing.T, s *side, src, dst string, n int) int {
	return pingMarked(t, s, src, dst, n, 0)
}

// pingMarked pings with SO_MARK = mark on the socket (0: unmarked).
func pingMarked(t *testing.T, s *side, src, dst string, n int, mark uint32) int {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			if mark != 0 {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
			}
		}); err != nil {
			return err
		}
		return serr
	}}
	var conn net.PacketConn
	var err error
	inNS(t, s.ns, func() { conn, err = lc.ListenPacket(context.Background(), "ip4:icmp", src) })
	must(t, "icmp socket", err)
	defer conn.Close()
	got := 0
	id := os.Getpid() & 0xffff
	for seq := 1; seq <= n; seq++ {
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("mifsec")}}
		b, _ := msg.Marshal(nil)
		if _, err := conn.WriteTo(b, &net.IPAddr{IP: net.ParseIP(dst)}); err != nil {
			t.Logf("ping %s → %s seq %d: %v", src, dst, seq, err)
			continue
		}
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			_ = conn.SetReadDeadline(deadline)
			buf := make([]byte, 1500)
			nr, from, err := conn.ReadFrom(buf)
			if err != nil {
				break
			}
			m, err := icmp.ParseMessage(1, buf[:nr])
			if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq && from.String() == dst {
				got++
				break
			}
		}
	}
	return got
}

// state finds a kernel state by SPI; printed field by field, because
// netlink v1.3.1's XfrmState.String() dereferences a nil Pcpunum on 6.1.
func state(t *testing.T, s *side, spi uint32) netlink.XfrmState {
	t.Helper()
	// ip xfrm state list
	states, err := s.h.XfrmStateList(netlink.FAMILY_ALL)
	must(t, "state list", err)
	for _, st := range states {
		zeroAlgos(&st)
		if uint32(st.Spi) == spi {
			return st
		}
	}
	t.Fatalf("%s: no state with SPI 0x%08x", s.name, spi)
	return netlink.XfrmState{}
}

func waitEvent(t *testing.T, s *side, match func(dataplane.Event) bool) dataplane.Event {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e := <-s.dp.Events():
			t.Logf("%s event: %s spi=0x%08x dir=%s flow=%s→%s", s.name, e.Kind, e.SPI, e.Direction, e.Flow.Src, e.Flow.Dst)
			if match(e) {
				return e
			}
		case <-timeout:
			t.Fatalf("%s: expected event did not arrive", s.name)
		}
	}
}

func TestVMTunnel(t *testing.T) {
	needVM(t)
	ctx := context.Background()
	a, b := newLab(t, BindMark)
	children := []child{
		{suite: dataplane.SuiteAESGCM128, path: 1, spiAB: 0x1001, spiBA: 0x2001, netA: "172.16.1.0/24", netB: "172.16.2.0/24", hostA: "172.16.1.1", hostB: "172.16.2.1"},
		{suite: dataplane.SuiteAESCBC128HMACSHA256, esn: true, spiAB: 0x1002, spiBA: 0x2002, netA: "172.16.11.0/24", netB: "172.16.12.0/24", hostA: "172.16.11.1", hostB: "172.16.12.1"},
		{suite: dataplane.SuiteChaCha20Poly1305, path: 2, limits: dataplane.Limits{SoftPackets: 3}, spiAB: 0x1003, spiBA: 0x2003, netA: "172.16.21.0/24", netB: "172.16.22.0/24", hostA: "172.16.21.1", hostB: "172.16.22.1"},
	}
	for i, c := range children {
		install(t, ctx, a, b, c, uint64(10*i+1), "10.0.0.1")
	}
	for _, c := range children {
		if got := ping(t, a, c.hostA, c.hostB, 4); got != 4 {
			t.Fatalf("%s: %d of 4 pings answered through ESP", c.suite, got)
		}
		// Both directions went through the SAs, as ESP (the kernel only counts what its states processed).
		for _, x := range []struct {
			s   *side
			spi uint32
			dir dataplane.Direction
		}{{a, c.spiAB, dataplane.Out}, {b, c.spiAB, dataplane.In}, {b, c.spiBA, dataplane.Out}, {a, c.spiBA, dataplane.In}} {
			cnt, err := x.s.dp.Counters(ctx, x.spi, x.dir)
			must(t, "Counters", err)
			t.Logf("%s %s spi=0x%08x %s: packets=%d bytes=%d drops=%v", c.suite, x.s.name, x.spi, x.dir, cnt.Packets, cnt.Bytes, cnt.Drops)
			if cnt.Packets != 4 || cnt.Bytes == 0 || cnt.LastUsed.IsZero() {
				t.Fatalf("%s %s spi=0x%08x %s: counters %+v, want 4 packets", c.suite, x.s.name, x.spi, x.dir, cnt)
			}
		}
	}

	// The soft packet limit (3) of A's ChaCha20 SA was passed: rekey time.
	waitEvent(t, a, func(e dataplane.Event) bool {
		return e.Kind == dataplane.SoftExpired && e.SPI == 0x1003 && e.Direction == dataplane.Out
	})

	// MOBIKE: A moves from 10.0.0.1 to 10.0.0.11 (XFRM_MSG_MIGRATE).
	gcm := children[0]
	newA, oldB := ap("10.0.0.11"), ap("10.0.0.2")
	must(t, "A UpdateSA out", a.dp.UpdateSA(ctx, gcm.spiAB, dataplane.Out, dataplane.AddrUpdate{Local: newA, Remote: oldB}))
	must(t, "A UpdateSA in", a.dp.UpdateSA(ctx, gcm.spiBA, dataplane.In, dataplane.AddrUpdate{Local: newA, Remote: oldB}))
	must(t, "B UpdateSA in", b.dp.UpdateSA(ctx, gcm.spiAB, dataplane.In, dataplane.AddrUpdate{Local: oldB, Remote: newA}))
	must(t, "B UpdateSA out", b.dp.UpdateSA(ctx, gcm.spiBA, dataplane.Out, dataplane.AddrUpdate{Local: oldB, Remote: newA}))
	for _, x := range []struct {
		s        *side
		spi      uint32
		src, dst string
	}{{a, gcm.spiAB, "10.0.0.11", "10.0.0.2"}, {a, gcm.spiBA, "10.0.0.2", "10.0.0.11"}, {b, gcm.spiAB, "10.0.0.11", "10.0.0.2"}, {b, gcm.spiBA, "10.0.0.2", "10.0.0.11"}} {
		st := state(t, x.s, x.spi)
		t.Logf("%s after migrate: spi=0x%08x src=%s dst=%s reqid=%d packets=%d", x.s.name, x.spi, st.Src, st.Dst, st.Reqid, st.Statistics.Packets)
		if !st.Src.Equal(net.ParseIP(x.src)) || !st.Dst.Equal(net.ParseIP(x.dst)) {
			t.Fatalf("%s spi=0x%08x at %s→%s, want %s→%s", x.s.name, x.spi, st.Src, st.Dst, x.src, x.dst)
		}
	}
	if got := ping(t, a, gcm.hostA, gcm.hostB, 3); got != 3 {
		t.Fatalf("after MIGRATE: %d of 3 pings answered", got)
	}
	cnt, err := b.dp.Counters(ctx, gcm.spiAB, dataplane.In)
	must(t, "Counters", err)
	if cnt.Packets < 3 {
		t.Fatalf("B's inbound SA after the move: %d packets, want at least 3", cnt.Packets)
	}
	t.Logf("B inbound 0x%08x after MIGRATE: %d packets (7 if the kernel kept the lifetime counters)", gcm.spiAB, cnt.Packets)

	// Outbound traffic without an SA: the kernel asks for one (ACQUIRE).
	cbc := children[1]
	must(t, "DeleteSA", a.dp.DeleteSA(ctx, cbc.spiAB, dataplane.Out))
	if got := ping(t, a, cbc.hostA, cbc.hostB, 1); got != 0 {
		t.Fatalf("ping answered without an outbound SA")
	}
	e := waitEvent(t, a, func(e dataplane.Event) bool { return e.Kind == dataplane.Acquire })
	if e.Flow.Dst != netip.MustParseAddr(cbc.hostB) || e.Flow.Src != netip.MustParseAddr(cbc.hostA) || e.Flow.Protocol != unix.IPPROTO_ICMP {
		t.Fatalf("acquire flow %+v, want ICMP %s → %s", e.Flow, cbc.hostA, cbc.hostB)
	}

	// Close removes everything it installed.
	for _, s := range []*side{a, b} {
		must(t, s.name+" Close", s.dp.Close())
		if _, ok := <-s.dp.Events(); ok {
			// drain: events may still be queued; the channel must end closed
			for range s.dp.Events() {
			}
		}
		states, err := s.h.XfrmStateList(netlink.FAMILY_ALL)
		must(t, "state list", err)
		pols, err := s.h.XfrmPolicyList(netlink.FAMILY_ALL)
		must(t, "policy list", err)
		left := 0
		for _, st := range states {
			zeroAlgos(&st)
			if st.Spi != 0 { // SPI 0: the kernel's own larval state of the ACQUIRE above
				left++
			}
		}
		if left != 0 || len(pols) != 0 {
			t.Fatalf("%s after Close: %d states, %d policies left", s.name, left, len(pols))
		}
	}
}

// TestVMErrors checks the kernel-facing error mapping.
func TestVMErrors(t *testing.T) {
	needVM(t)
	ctx := context.Background()
	a, _ := newLab(t, BindMark)
	t.Cleanup(func() { a.dp.Close() })
	sa := dataplane.SA{SPI: 0x3001, Direction: dataplane.Out, Mode: dataplane.Tunnel, Suite: dataplane.SuiteAESGCM256,
		Keys: keysFor(t, dataplane.SuiteAESGCM256), Local: ap("10.0.0.1"), Remote: ap("10.0.0.2")}
	must(t, "AddSA", a.dp.AddSA(ctx, sa))
	if err := a.dp.AddSA(ctx, sa); !errors.Is(err, dataplane.ErrExists) {
		t.Fatalf("second AddSA: %v, want ErrExists", err)
	}
	// Another data plane in the same namespace holds the same state: the kernel says EEXIST.
	other, err := New(Config{NetNS: fmt.Sprintf("/proc/self/fd/%d", int(a.ns))}, nil)
	must(t, "New", err)
	if err := other.AddSA(ctx, sa); !errors.Is(err, dataplane.ErrExists) || !errors.Is(err, unix.EEXIST) {
		t.Fatalf("AddSA of a state the kernel has: %v, want ErrExists and EEXIST", err)
	}
	must(t, "Close other", other.Close())
	if err := a.dp.UpdateSA(ctx, 0x9999, dataplane.Out, dataplane.AddrUpdate{Local: ap("10.0.0.11"), Remote: ap("10.0.0.2")}); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("UpdateSA of an unknown SA: %v", err)
	}
	must(t, "DeleteSA", a.dp.DeleteSA(ctx, sa.SPI, sa.Direction))
	if err := a.dp.DeleteSA(ctx, sa.SPI, sa.Direction); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("second DeleteSA: %v, want ErrNotFound", err)
	}
}

// espInUDP opens the UDP socket on port 4500 that hands ESP-in-UDP packets
// to XFRM (UDP_ENCAP_ESPINUDP, RFC 3948); the IKE daemon owns it in real life.
func espInUDP(t *testing.T, s *side) {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_ENCAP, unix.UDP_ENCAP_ESPINUDP)
		}); err != nil {
			return err
		}
		return serr
	}}
	var conn net.PacketConn
	var err error
	inNS(t, s.ns, func() { conn, err = lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:4500") })
	must(t, "UDP encap socket", err)
	t.Cleanup(func() { conn.Close() })
}

func packets(t *testing.T, s *side, spi uint32, dir dataplane.Direction) uint64 {
	t.Helper()
	c, err := s.dp.Counters(context.Background(), spi, dir)
	must(t, "Counters", err)
	return c.Packets
}

// TestVMPaths puts one policy on two paths: path 1 plain ESP from 10.0.0.1,
// path 2 ESP in UDP from 10.0.0.11. Unmarked traffic takes the first SPI's
// path; traffic marked with PathMark(2) takes path 2.
func TestVMPaths(t *testing.T) {
	needVM(t)
	ctx := context.Background()
	a, b := newLab(t, BindMark)
	t.Cleanup(func() { a.dp.Close(); b.dp.Close() })
	espInUDP(t, a)
	espInUDP(t, b)
	type pathSAs struct {
		path         uint32
		aAddr        string
		encap        bool
		spiAB, spiBA uint32
	}
	paths := []pathSAs{{1, "10.0.0.1", false, 0x1101, 0x2101}, {2, "10.0.0.11", true, 0x1102, 0x2102}}
	for _, p := range paths {
		kAB, kBA := keysFor(t, dataplane.SuiteAESGCM128), keysFor(t, dataplane.SuiteAESGCM128)
		port := uint16(0)
		if p.encap {
			port = 4500
		}
		aa := netip.AddrPortFrom(netip.MustParseAddr(p.aAddr), port)
		bb := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), port)
		base := dataplane.SA{Mode: dataplane.Tunnel, Suite: dataplane.SuiteAESGCM128, ReplayWindow: 32, Path: p.path, Encap: p.encap}
		for _, x := range []struct {
			s             *side
			local, remote netip.AddrPort
			out, in       uint32
			kOut, kIn     dataplane.Keys
		}{{a, aa, bb, p.spiAB, p.spiBA, kAB, kBA}, {b, bb, aa, p.spiBA, p.spiAB, kBA, kAB}} {
			out := base
			out.SPI, out.Direction, out.Local, out.Remote, out.Keys = x.out, dataplane.Out, x.local, x.remote, x.kOut
			in := out
			in.SPI, in.Direction, in.Keys = x.in, dataplane.In, x.kIn
			must(t, x.s.name+" AddSA out", x.s.dp.AddSA(ctx, out))
			must(t, x.s.name+" AddSA in", x.s.dp.AddSA(ctx, in))
		}
		kAB.Zero()
		kBA.Zero()
	}
	for _, x := range []struct {
		s        *side
		lts, rts string
		out, in  []uint32
	}{
		{a, "172.16.1.0/24", "172.16.2.0/24", []uint32{0x1101, 0x1102}, []uint32{0x2101, 0x2102}},
		{b, "172.16.2.0/24", "172.16.1.0/24", []uint32{0x2101, 0x2102}, []uint32{0x1101, 0x1102}},
	} {
		must(t, "AddPolicy out", x.s.dp.AddPolicy(ctx, dataplane.Policy{ID: 1, Direction: dataplane.Out, Local: sel(x.lts), Remote: sel(x.rts), Action: dataplane.Protect, SPIs: x.out, Priority: 100}))
		must(t, "AddPolicy in", x.s.dp.AddPolicy(ctx, dataplane.Policy{ID: 2, Direction: dataplane.In, Local: sel(x.lts), Remote: sel(x.rts), Action: dataplane.Protect, SPIs: x.in, Priority: 100}))
	}

	if got := ping(t, a, "172.16.1.1", "172.16.2.1", 2); got != 2 {
		t.Fatalf("unmarked: %d of 2 pings answered", got)
	}
	if p1, p2 := packets(t, a, 0x1101, dataplane.Out), packets(t, a, 0x1102, dataplane.Out); p1 != 2 || p2 != 0 {
		t.Fatalf("unmarked traffic: path 1 %d packets, path 2 %d; want 2 and 0", p1, p2)
	}
	mark, _, err := a.dp.PathMark(2)
	must(t, "PathMark", err)
	if got := pingMarked(t, a, "172.16.1.1", "172.16.2.1", 3, mark); got != 3 {
		t.Fatalf("marked for path 2: %d of 3 pings answered", got)
	}
	if p1, p2, in2 := packets(t, a, 0x1101, dataplane.Out), packets(t, a, 0x1102, dataplane.Out), packets(t, b, 0x1102, dataplane.In); p1 != 2 || p2 != 3 || in2 != 3 {
		t.Fatalf("marked traffic: A path 1 %d, path 2 %d, B got %d on path 2 (UDP); want 2, 3, 3", p1, p2, in2)
	}
	st := state(t, a, 0x1102)
	if st.Encap == nil || st.Encap.SrcPort != 4500 {
		t.Fatalf("path 2 SA not UDP-encapsulated")
	}
	// Rekey-style switch: path 2 becomes the unmarked default.
	must(t, "UpdatePolicy", a.dp.UpdatePolicy(ctx, dataplane.Policy{ID: 1, Direction: dataplane.Out, Local: sel("172.16.1.0/24"), Remote: sel("172.16.2.0/24"), Action: dataplane.Protect, SPIs: []uint32{0x1102, 0x1101}, Priority: 100}))
	if got := ping(t, a, "172.16.1.1", "172.16.2.1", 1); got != 1 {
		t.Fatal("after UpdatePolicy: ping not answered")
	}
	if p2 := packets(t, a, 0x1102, dataplane.Out); p2 != 4 {
		t.Fatalf("after UpdatePolicy: path 2 carried %d packets, want 4", p2)
	}
}
