package userspace

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/esp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ipv4UDP builds an IPv4/UDP packet with valid checksums.
func ipv4UDP(src, dst string, sport, dport uint16, payload []byte) []byte {
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	p := make([]byte, 28+len(payload))
	p[0], p[8], p[9] = 0x45, 64, protoUDP
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[10:], checksum(p[:20]))
	u := p[20:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], payload)
	binary.BigEndian.PutUint16(u[6:], ^csumFold(csumAdd(pseudoSum(s[:], d[:], protoUDP, len(u)), u)))
	return p
}

func testKeys(seed byte) dataplane.Keys {
	k := make([]byte, 20) // AES-128 key + 4-byte salt (RFC 4106 §8.1)
	for i := range k {
		k[i] = seed + byte(i)
	}
	return dataplane.Keys{Enc: k}
}

func pfx(s string) netip.Prefix  { return netip.MustParsePrefix(s) }
func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func sel(p string) []dataplane.Selector { return []dataplane.Selector{{Prefix: pfx(p)}} }

type side struct {
	dp    *DataPlane
	tun   *memTUN
	outer netip.AddrPort
	inner string
}

// newSide starts a data plane over the in-memory edges.
func newSide(t *testing.T, n *memNet, outer string, inner string) *side {
	t.Helper()
	tun := newMemTUN()
	c := Config{Workers: 2, Listen: []netip.AddrPort{ap(outer)}}
	c, err := c.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	dp, err := newDataPlane(c, nil, tun, n.listen, n.espHost(ap(outer).Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close() })
	return &side{dp: dp, tun: tun, outer: ap(outer), inner: inner}
}

func saPair(spi uint32, from, to *side, key byte) (out, in dataplane.SA) {
	out = dataplane.SA{
		SPI: spi, Direction: dataplane.Out, Mode: dataplane.Tunnel, Suite: dataplane.SuiteAESGCM128,
		Keys: testKeys(key), Local: from.outer, Remote: to.outer, Encap: true,
		LocalTS: sel(from.inner), RemoteTS: sel(to.inner),
	}
	in = out
	in.Direction = dataplane.In
	in.Keys = testKeys(key)
	in.Local, in.Remote = to.outer, from.outer
	in.LocalTS, in.RemoteTS = sel(to.inner), sel(from.inner)
	in.ReplayWindow = 32 // small: parallel workers must not reorder one SA's packets past it
	return out, in
}

// connect installs SAs both ways and the outbound policies.
func connect(t *testing.T, a, b *side, spiAB, spiBA uint32) {
	t.Helper()
	ctx := context.Background()
	for _, x := range []struct {
		from, to *side
		spi      uint32
		key      byte
	}{{a, b, spiAB, 1}, {b, a, spiBA, 2}} {
		out, in := saPair(x.spi, x.from, x.to, x.key)
		must(t, x.from.dp.AddSA(ctx, out))
		must(t, x.to.dp.AddSA(ctx, in))
		must(t, x.from.dp.AddPolicy(ctx, dataplane.Policy{
			ID: uint64(x.spi), Direction: dataplane.Out, Action: dataplane.Protect,
			Local: sel(x.from.inner), Remote: sel(x.to.inner), SPIs: []uint32{x.spi},
		}))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func recvTUN(t *testing.T, s *side) []byte {
	t.Helper()
	select {
	case p := <-s.tun.out:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no packet on the TUN")
		return nil
	}
}

func noTUN(t *testing.T, s *side) {
	t.Helper()
	select {
	case p := <-s.tun.out:
		t.Fatalf("unexpected packet on the TUN: % x", p[:min(len(p), 28)])
	case <-time.After(100 * time.Millisecond):
	}
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func counters(t *testing.T, s *side, spi uint32, dir dataplane.Direction) dataplane.Counters {
	t.Helper()
	c, err := s.dp.Counters(context.Background(), spi, dir)
	must(t, err)
	return c
}

func TestTunnelBothWays(t *testing.T) {
	n := newMemNet()
	a := newSide(t, n, "192.0.2.1:4500", "10.0.1.0/24")
	b := newSide(t, n, "192.0.2.2:4500", "10.0.2.0/24")
	connect(t, a, b, 0x1001, 0x2002)

	tests := []struct {
		name     string
		from, to *side
		pkt      []byte
		spiOut   uint32
	}{
		{"a to b", a, b, ipv4UDP("10.0.1.1", "10.0.2.1", 1000, 2000, []byte("hello b")), 0x1001},
		{"b to a", b, a, ipv4UDP("10.0.2.1", "10.0.1.1", 2000, 1000, bytes.Repeat([]byte{7}, 1300)), 0x2002},
		{"a to b empty", a, b, ipv4UDP("10.0.1.9", "10.0.2.9", 1, 2, nil), 0x1001},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := counters(t, tc.to, tc.spiOut, dataplane.In)
			tc.from.tun.in <- append([]byte(nil), tc.pkt...)
			got := recvTUN(t, tc.to)
			if !bytes.Equal(got, tc.pkt) {
				t.Fatalf("got % x\nwant % x", got, tc.pkt)
			}
			after := counters(t, tc.to, tc.spiOut, dataplane.In)
			if after.Packets != before.Packets+1 || after.Bytes != before.Bytes+uint64(len(tc.pkt)) {
				t.Errorf("inbound counters %+v -> %+v", before, after)
			}
			out := counters(t, tc.from, tc.spiOut, dataplane.Out)
			if out.Packets == 0 || out.LastUsed.IsZero() {
				t.Errorf("outbound counters not updated: %+v", out)
			}
		})
	}
}

// A batch of many packets keeps its order.
func TestBatchOrder(t *testing.T) {
	n := newMemNet()
	a := newSide(t, n, "192.0.2.1:4500", "10.0.1.0/24")
	b := newSide(t, n, "192.0.2.2:4500", "10.0.2.0/24")
	connect(t, a, b, 0x1001, 0x2002)
	const N = 500
	go func() {
		for i := range N {
			a.tun.in <- ipv4UDP("10.0.1.1", "10.0.2.1", 1000, uint16(i), []byte{byte(i)})
		}
	}()
	for i := range N {
		p := recvTUN(t, b)
		if port := binary.BigEndian.Uint16(p[22:]); port != uint16(i) {
			t.Fatalf("packet %d has port %d: reordered", i, port)
		}
	}
	if c := counters(t, b, 0x1001, dataplane.In); len(c.Drops) != 0 || c.Packets != N {
		t.Errorf("inbound %d packets, drops %v", c.Packets, c.Drops)
	}
}

func TestInboundDrops(t *testing.T) {
	n := newMemNet()
	a := newSide(t, n, "192.0.2.1:4500", "10.0.1.0/24")
	b := newSide(t, n, "192.0.2.2:4500", "10.0.2.0/24")
	connect(t, a, b, 0x1001, 0x2002)
	// The test seals with its own copy of the A->B SA.
	out, _ := saPair(0x1001, a, b, 1)
	sealer, err := esp.NewSA(esp.Config{SPI: out.SPI, Suite: out.Suite, Keys: out.Keys, Mode: dataplane.Tunnel})
	must(t, err)
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
	good := seal(ipv4UDP("10.0.1.1", "10.0.2.1", 1, 2, []byte("ok")))
	badICV := seal(ipv4UDP("10.0.1.1", "10.0.2.1", 1, 2, []byte("icv")))
	badICV[len(badICV)-1] ^= 1
	outside := seal(ipv4UDP("10.9.9.9", "10.0.2.1", 1, 2, []byte("spoofed source")))
	wrongDst := seal(ipv4UDP("10.0.1.1", "10.0.3.1", 1, 2, []byte("outside local ts")))
	unknown := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(unknown, 0x7777)

	tests := []struct {
		name    string
		pkt     []byte
		deliver bool
		reason  string // SA drop counter expected to grow
	}{
		{"good", good, true, ""},
		{"replayed", good, false, "replay"},
		{"wrong icv", badICV, false, "icv"},
		{"inner source outside selectors", outside, false, "selector_mismatch"},
		{"inner destination outside selectors", wrongDst, false, "selector_mismatch"},
		{"unknown spi", unknown, false, ""},
		{"short", []byte{0, 0, 1, 0, 0}, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := counters(t, b, 0x1001, dataplane.In)
			gbefore := b.dp.Stats()
			n.deliver(a.outer, b.outer, tc.pkt)
			if tc.deliver {
				recvTUN(t, b)
			} else {
				noTUN(t, b)
			}
			after := counters(t, b, 0x1001, dataplane.In)
			if tc.reason != "" && after.Drops[tc.reason] != before.Drops[tc.reason]+1 {
				t.Errorf("drops[%s] %d -> %d", tc.reason, before.Drops[tc.reason], after.Drops[tc.reason])
			}
			// A dropped packet is a drop only, not also a delivered one.
			wantPkts, wantBytes := before.Packets, before.Bytes
			if tc.deliver {
				wantPkts, wantBytes = wantPkts+1, wantBytes+uint64(len("ok")+28)
			}
			if after.Packets != wantPkts || after.Bytes != wantBytes {
				t.Errorf("packets/bytes %d/%d -> %d/%d, want %d/%d", before.Packets, before.Bytes, after.Packets, after.Bytes, wantPkts, wantBytes)
			}
			if tc.name == "unknown spi" {
				if g := b.dp.Stats().Drops["unknown_spi"]; g != gbefore.Drops["unknown_spi"]+1 {
					t.Errorf("unknown_spi %d -> %d", gbefore.Drops["unknown_spi"], g)
				}
			}
			if tc.name == "short" {
				if g := b.dp.Stats().Drops["malformed"]; g != gbefore.Drops["malformed"]+1 {
					t.Errorf("malformed %d -> %d", gbefore.Drops["malformed"], g)
				}
			}
		})
	}
}

func TestOutboundDropsAndAcquire(t *testing.T) {
	n := newMemNet()
	a := newSide(t, n, "192.0.2.1:4500", "10.0.1.0/24")
	b := newSide(t, n, "192.0.2.2:4500", "10.0.2.0/24")
	ctx := context.Background()
	// A policy whose SA is not installed yet.
	must(t, a.dp.AddPolicy(ctx, dataplane.Policy{
		ID: 1, Direction: dataplane.Out, Action: dataplane.Protect,
		Local: sel("10.0.1.0/24"), Remote: sel("10.0.2.0/24"), SPIs: []uint32{0x1001},
	}))
	must(t, a.dp.AddPolicy(ctx, dataplane.Policy{
		ID: 2, Direction: dataplane.Out, Action: dataplane.Discard,
		Local: sel("10.0.1.0/24"), Remote: sel("10.0.5.0/24"),
	}))
	tests := []struct {
		pkt    []byte
		reason string
	}{
		{ipv4UDP("10.0.1.1", "10.0.2.1", 1, 2, nil), "no_sa"},
		{ipv4UDP("10.0.1.1", "10.0.5.1", 1, 2, nil), "policy_discard"},
		{ipv4UDP("10.0.1.1", "10.0.6.1", 1, 2, nil), "no_policy"},
		{[]byte{0x45, 0, 0}, "malformed"},
	}
	for _, tc := range tests {
		before := a.dp.Stats().Drops[tc.reason]
		a.tun.in <- tc.pkt
		waitFor(t, tc.reason, func() bool { return a.dp.Stats().Drops[tc.reason] == before+1 })
	}
	select {
	case ev := <-a.dp.Events():
		if ev.Kind != dataplane.Acquire || ev.Flow.Dst != netip.MustParseAddr("10.0.2.1") || ev.Flow.Protocol != protoUDP {
			t.Errorf("event %+v, want acquire for 10.0.2.1/udp", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no acquire event")
	}
	// Installing the SA makes the flow go through.
	out, in := saPair(0x1001, a, b, 1)
	must(t, a.dp.AddSA(ctx, out))
	must(t, b.dp.AddSA(ctx, in))
	p := ipv4UDP("10.0.1.1", "10.0.2.1", 1, 2, []byte("now"))
	a.tun.in <- p
	if got := recvTUN(t, b); !bytes.Equal(got, p) {
		t.Fatal("packet changed")
	}
}

type pickSecond struct{}

func (pickSecond) Pick(f dataplane.Flow, policy uint64, spis []uint32) uint32 {
	if f.DstPort == 443 {
		return spis[1]
	}
	return 0
}

// Steering picks between two SAs on two paths; UpdateSA moves one.
func TestSteeringAndMove(t *testing.T) {
	n := newMemNet()
	a := newSide(t, n, "192.0.2.1:4500", "10.0.1.0/24")
	b := newSide(t, n, "192.0.2.2:4500", "10.0.2.0/24")
	connect(t, a, b, 0x1001, 0x2002)
	ctx := context.Background()
	// A second path: A's other address to B's other address.
	must(t, a.dp.Listen(ap("198.51.100.1:4500")))
	must(t, b.dp.Listen(ap("198.51.100.2:4500")))
	out2, in2 := saPair(0x1003, a, b, 3)
	out2.Local, out2.Remote = ap("198.51.100.1:4500"), ap("198.51.100.2:4500")
	must(t, a.dp.AddSA(ctx, out2))
	must(t, b.dp.AddSA(ctx, in2))
	must(t, a.dp.UpdatePolicy(ctx, dataplane.Policy{
		ID: 0x1001, Direction: dataplane.Out, Action: dataplane.Protect,
		Local: sel("10.0.1.0/24"), Remote: sel("10.0.2.0/24"), SPIs: []uint32{0x1001, 0x1003},
	}))
	a.dp.SetSteering(pickSecond{})
	var (
		mu   sync.Mutex
		seen []netip.AddrPort
	)
	n.mu.Lock()
	n.tap = func(src, dst netip.AddrPort, _ []byte) {
		mu.Lock()
		seen = append(seen, dst)
		mu.Unlock()
	}
	n.mu.Unlock()

	tests := []struct {
		port    uint16
		wantDst string
		wantSPI uint32
	}{
		{80, "192.0.2.2:4500", 0x1001},
		{443, "198.51.100.2:4500", 0x1003},
	}
	for _, tc := range tests {
		mu.Lock()
		seen = seen[:0]
		mu.Unlock()
		before := counters(t, b, tc.wantSPI, dataplane.In).Packets
		a.tun.in <- ipv4UDP("10.0.1.1", "10.0.2.1", 1, tc.port, nil)
		recvTUN(t, b)
		mu.Lock()
		if len(seen) != 1 || seen[0] != ap(tc.wantDst) {
			t.Errorf("port %d went to %v, want %s", tc.port, seen, tc.wantDst)
		}
		mu.Unlock()
		if c := counters(t, b, tc.wantSPI, dataplane.In).Packets; c != before+1 {
			t.Errorf("port %d: spi 0x%x packets %d -> %d", tc.port, tc.wantSPI, before, c)
		}
	}

	// Move the first SA to a new local address while packets flow: none is lost.
	const N = 200
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range N {
			a.tun.in <- ipv4UDP("10.0.1.1", "10.0.2.1", 1, 80, []byte{byte(i)})
			if i == N/2 {
				if err := a.dp.UpdateSA(ctx, 0x1001, dataplane.Out, dataplane.AddrUpdate{
					Local: ap("203.0.113.1:4500"), Remote: b.outer, Encap: true,
				}); err != nil {
					t.Error(err)
				}
			}
		}
	}()
	for range N {
		recvTUN(t, b)
	}
	<-done
	n.mu.Lock()
	_, moved := n.conns[ap("203.0.113.1:4500")]
	n.mu.Unlock()
	if !moved {
		t.Error("no socket on the new local address")
	}
}

func TestIKEOnSharedSocket(t *testing.T) {
	n := newMemNet()
	a := newSide(t, n, "192.0.2.1:4500", "10.0.1.0/24")
	b := newSide(t, n, "192.0.2.2:4500", "10.0.2.0/24")
	got := make(chan [3]string, 1)
	b.dp.SetIKEHandler(func(local, remote netip.AddrPort, msg []byte) {
		got <- [3]string{local.String(), remote.String(), string(msg)}
	})
	must(t, a.dp.SendIKE(a.outer, b.outer, []byte("IKE_SA_INIT...")))
	select {
	case g := <-got:
		want := [3]string{"192.0.2.2:4500", "192.0.2.1:4500", "IKE_SA_INIT..."}
		if g != want {
			t.Errorf("got %q, want %q", g, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("IKE message not delivered")
	}
	// Keepalives are swallowed; no socket on an unknown local address.
	n.deliver(a.outer, b.outer, []byte{0xff})
	if err := a.dp.SendIKE(ap("192.0.2.99:4500"), b.outer, []byte("x")); !errors.Is(err, ErrNoSocket) {
		t.Errorf("SendIKE from unknown address: %v", err)
	}
	select {
	case g := <-got:
		t.Errorf("keepalive reached the IKE handler: %q", g)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestLifetimeEvents(t *testing.T) {
	n := newMemNet()
	a := newSide(t, n, "192.0.2.1:4500", "10.0.1.0/24")
	b := newSide(t, n, "192.0.2.2:4500", "10.0.2.0/24")
	ctx := context.Background()
	out, in := saPair(0x1001, a, b, 1)
	out.Limits = dataplane.Limits{SoftPackets: 2, HardPackets: 3}
	must(t, a.dp.AddSA(ctx, out))
	must(t, b.dp.AddSA(ctx, in))
	must(t, a.dp.AddPolicy(ctx, dataplane.Policy{
		ID: 1, Direction: dataplane.Out, Action: dataplane.Protect,
		Local: sel("10.0.1.0/24"), Remote: sel("10.0.2.0/24"), SPIs: []uint32{0x1001},
	}))
	for range 3 {
		a.tun.in <- ipv4UDP("10.0.1.1", "10.0.2.1", 1, 2, nil)
		recvTUN(t, b)
	}
	want := []dataplane.EventKind{dataplane.SoftExpired, dataplane.HardExpired}
	for _, k := range want {
		select {
		case ev := <-a.dp.Events():
			if ev.Kind != k || ev.SPI != 0x1001 || ev.Direction != dataplane.Out {
				t.Errorf("event %v spi 0x%x %v, want %v", ev.Kind, ev.SPI, ev.Direction, k)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %v event", k)
		}
	}
	// The hard-expired SA is removed.
	waitFor(t, "sa removal", func() bool {
		_, err := a.dp.Counters(ctx, 0x1001, dataplane.Out)
		return errors.Is(err, dataplane.ErrNotFound)
	})
}

func TestControlErrors(t *testing.T) {
	n := newMemNet()
	a := newSide(t, n, "192.0.2.1:4500", "10.0.1.0/24")
	b := newSide(t, n, "192.0.2.2:4500", "10.0.2.0/24")
	ctx := context.Background()
	good, goodIn := saPair(0x1001, a, b, 1)
	must(t, a.dp.AddSA(ctx, good))
	badKey := good
	badKey.SPI, badKey.Keys = 0x1004, dataplane.Keys{Enc: []byte{1, 2, 3}}
	noTS := goodIn
	noTS.SPI, noTS.RemoteTS = 0x1005, nil
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"duplicate", a.dp.AddSA(ctx, good), dataplane.ErrExists},
		{"update unknown", a.dp.UpdateSA(ctx, 0x9999, dataplane.Out, dataplane.AddrUpdate{Local: a.outer, Remote: b.outer, Encap: true}), dataplane.ErrNotFound},
		{"delete unknown", a.dp.DeleteSA(ctx, 0x9999, dataplane.In), dataplane.ErrNotFound},
		{"delete unknown policy", a.dp.DeletePolicy(ctx, 42), dataplane.ErrNotFound},
		{"update unknown policy", a.dp.UpdatePolicy(ctx, dataplane.Policy{ID: 42, Direction: dataplane.Out, Action: dataplane.Protect, Local: sel("10.0.0.0/8"), Remote: sel("10.0.0.0/8")}), dataplane.ErrNotFound},
	}
	for _, tc := range tests {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	noMode := good
	noMode.SPI, noMode.Mode = 0x1002, 0
	mixed := good
	mixed.SPI, mixed.Remote = 0x1003, ap("[2001:db8::2]:4500")
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"inbound SA without selectors", a.dp.AddSA(ctx, noTS)},
		{"no mode", a.dp.AddSA(ctx, noMode)},
		{"outer families differ", a.dp.AddSA(ctx, mixed)},
		{"move across families", a.dp.UpdateSA(ctx, 0x1001, dataplane.Out, dataplane.AddrUpdate{Local: a.outer, Remote: ap("[2001:db8::2]:4500"), Encap: true})},
		{"move without addresses", a.dp.UpdateSA(ctx, 0x1001, dataplane.Out, dataplane.AddrUpdate{Encap: true})},
	} {
		var ce *ConfigError
		if !errors.As(tc.err, &ce) {
			t.Errorf("%s: %v, want a *ConfigError", tc.name, tc.err)
		}
	}
	var ee *esp.ConfigError
	if err := a.dp.AddSA(ctx, badKey); !errors.As(err, &ee) {
		t.Errorf("bad key: %v", err)
	}
	must(t, a.dp.DeleteSA(ctx, 0x1001, dataplane.Out))
	if _, err := a.dp.Counters(ctx, 0x1001, dataplane.Out); !errors.Is(err, dataplane.ErrNotFound) {
		t.Errorf("counters after delete: %v", err)
	}
	must(t, a.dp.Close())
	if err := a.dp.AddSA(ctx, good); !errors.Is(err, ErrClosed) {
		t.Errorf("after close: %v", err)
	}
	if _, ok := <-a.dp.Events(); ok {
		t.Error("events not closed")
	}
}
