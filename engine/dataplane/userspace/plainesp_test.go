package userspace

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
)

// capture records where the in-memory network carried each packet.
type capture struct {
	mu   sync.Mutex
	dsts []netip.AddrPort
}

func (c *capture) tap(n *memNet) {
	n.mu.Lock()
	n.tap = func(_, dst netip.AddrPort, _ []byte) {
		c.mu.Lock()
		c.dsts = append(c.dsts, dst)
		c.mu.Unlock()
	}
	n.mu.Unlock()
}

// take returns the destinations seen since the last call.
func (c *capture) take() []netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.dsts
	c.dsts = nil
	return d
}

// TestPlainESP carries tunnel- and transport-mode traffic in plain ESP (IP
// protocol 50, port 0 on the twin network) for both outer families.
func TestPlainESP(t *testing.T) {
	tests := []struct {
		name           string
		outerA, outerB string
		mode           dataplane.Mode
		tsA, tsB       string
		pktAB, pktBA   []byte
	}{
		{"ipv4 tunnel", "192.0.2.1:4500", "192.0.2.2:4500", dataplane.Tunnel, "10.0.1.0/24", "10.0.2.0/24",
			ipv4UDP("10.0.1.1", "10.0.2.1", 1, 2, []byte("a to b")), ipv4UDP("10.0.2.1", "10.0.1.1", 2, 1, []byte("b to a"))},
		{"ipv6 tunnel", "[2001:db8::1]:4500", "[2001:db8::2]:4500", dataplane.Tunnel, "2001:db8:1::/64", "2001:db8:2::/64",
			hostPkt("2001:db8:1::1", "2001:db8:2::1", protoUDP, udpL4(1, 2, "a to b")), hostPkt("2001:db8:2::1", "2001:db8:1::1", protoTCP, tcpL4(2, 1, "b to a"))},
		{"ipv4 transport", "192.0.2.1:4500", "192.0.2.2:4500", dataplane.Transport, "192.0.2.1/32", "192.0.2.2/32",
			hostPkt("192.0.2.1", "192.0.2.2", protoTCP, tcpL4(1, 2, "a to b")), hostPkt("192.0.2.2", "192.0.2.1", protoICMP, echoL4(false, "b to a"))},
		{"ipv6 transport", "[2001:db8::1]:4500", "[2001:db8::2]:4500", dataplane.Transport, "2001:db8::1/128", "2001:db8::2/128",
			hostPkt("2001:db8::1", "2001:db8::2", protoICMPv6, echoL4(true, "a to b")), hostPkt("2001:db8::2", "2001:db8::1", protoUDP, udpL4(2, 1, "b to a"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newMemNet()
			var seen capture
			seen.tap(n)
			a := newSide(t, n, tc.outerA, "")
			b := newSide(t, n, tc.outerB, "")
			link(t, a, b, 0x1001, 1, tc.mode, false, sel(tc.tsA), sel(tc.tsB))
			link(t, b, a, 0x2002, 2, tc.mode, false, sel(tc.tsB), sel(tc.tsA))
			for _, x := range []struct {
				from, to *side
				pkt      []byte
			}{{a, b, tc.pktAB}, {b, a, tc.pktBA}} {
				x.from.tun.in <- append([]byte(nil), x.pkt...)
				if got := recvTUN(t, x.to); !bytes.Equal(got, x.pkt) {
					t.Errorf("got\n% x\nwant\n% x", got, x.pkt)
				}
				want := netip.AddrPortFrom(x.to.outer.Addr(), 0)
				if d := seen.take(); len(d) != 1 || d[0] != want {
					t.Errorf("carried to %v, want plain ESP to %v", d, want)
				}
			}
		})
	}
}

// Every plain ESP packet is ESP: no marker makes it IKE, reserved SPIs and
// unparsable IPv4 headers are malformed.
func TestPlainESPInbound(t *testing.T) {
	n := newMemNet()
	a := newSide(t, n, "192.0.2.1:4500", "10.0.1.0/24")
	b := newSide(t, n, "192.0.2.2:4500", "10.0.2.0/24")
	link(t, a, b, 0x1001, 1, dataplane.Tunnel, false, sel("10.0.1.0/24"), sel("10.0.2.0/24"))
	ike := make(chan []byte, 1)
	b.dp.SetIKEHandler(func(_, _ netip.AddrPort, msg []byte) { ike <- msg })
	// Open the raw socket's reader on B without traffic of its own.
	a.tun.in <- ipv4UDP("10.0.1.1", "10.0.2.1", 1, 2, []byte("first"))
	recvTUN(t, b)

	src, dst := a.outer.Addr(), b.outer.Addr()
	marker := append([]byte{0, 0, 0, 0}, bytes.Repeat([]byte{0x21}, 28)...)
	reserved := append([]byte{0, 0, 0, 7}, make([]byte, 28)...)
	unknown := append([]byte{0, 0, 0x77, 0x77}, make([]byte, 28)...)
	tests := []struct {
		name   string
		send   func()
		reason string // data-plane-wide drop expected to grow
	}{
		{"non-esp marker", func() { n.deliverESP(src, dst, marker) }, "malformed"},
		{"reserved spi", func() { n.deliverESP(src, dst, reserved) }, "malformed"},
		{"short", func() { n.deliverESP(src, dst, []byte{0, 0, 0x10, 0x01}) }, "malformed"},
		{"unknown spi", func() { n.deliverESP(src, dst, unknown) }, "unknown_spi"},
		{"bad ipv4 header", func() { rawIPv4(n, dst, []byte{0x45, 0, 0xff, 0xff}) }, "malformed"},
		{"ipv4 header length too small", func() {
			p := make([]byte, 40)
			p[0] = 0x44
			binary.BigEndian.PutUint16(p[2:], 40)
			rawIPv4(n, dst, p)
		}, "malformed"},
	}
	for _, tc := range tests {
		before := b.dp.Stats().Drops[tc.reason]
		tc.send()
		waitFor(t, tc.name, func() bool { return b.dp.Stats().Drops[tc.reason] == before+1 })
	}
	select {
	case m := <-ike:
		t.Errorf("plain ESP reached the IKE handler: % x", m)
	case <-time.After(50 * time.Millisecond):
	}
	noTUN(t, b)
}

// rawIPv4 puts bytes as they would come from an IPv4 raw socket on dst's queue.
func rawIPv4(n *memNet, dst netip.Addr, p []byte) {
	n.mu.Lock()
	c := n.esps[dst]
	n.mu.Unlock()
	c.ch <- memDgram{src: netip.AddrPortFrom(dst, 0), data: append([]byte(nil), p...)}
}

// An SA moves between ESP-in-UDP and plain ESP (MOBIKE after the NAT went
// away, RFC 4555 §3.5) while packets flow: none is lost. Packets still in
// flight on the old path may arrive after the first ones on the new path
// (another socket, another reader), within the replay window.
func TestMoveBetweenEncapAndPlain(t *testing.T) {
	n := newMemNet()
	var seen capture
	seen.tap(n)
	a := newSide(t, n, "192.0.2.1:4500", "10.0.1.0/24")
	b := newSide(t, n, "192.0.2.2:4500", "10.0.2.0/24")
	link(t, a, b, 0x1001, 1, dataplane.Tunnel, true, sel("10.0.1.0/24"), sel("10.0.2.0/24"))
	ctx := context.Background()
	// Both ends move their SA, as MOBIKE does (the inbound one first, so
	// B listens for plain ESP before A sends it).
	move := func(encap bool) {
		t.Helper()
		must(t, b.dp.UpdateSA(ctx, 0x1001, dataplane.In, dataplane.AddrUpdate{Local: b.outer, Remote: a.outer, Encap: encap}))
		must(t, a.dp.UpdateSA(ctx, 0x1001, dataplane.Out, dataplane.AddrUpdate{Local: a.outer, Remote: b.outer, Encap: encap}))
	}
	const K = 100
	seq := 0
	send := func() {
		for range K {
			a.tun.in <- ipv4UDP("10.0.1.1", "10.0.2.1", 1, uint16(seq), nil)
			seq++
		}
	}
	recv := func() {
		t.Helper()
		got := map[uint16]bool{}
		for range K {
			got[binary.BigEndian.Uint16(recvTUN(t, b)[22:])] = true
		}
		for i := seq - K; i < seq; i++ {
			if !got[uint16(i)] {
				t.Fatalf("packet %d lost", i)
			}
		}
	}
	send()
	move(false) // while the first packets are still queued
	recv()
	send()
	recv()
	move(true)
	send()
	recv()
	const N = 3 * K
	var udp, plain int
	for _, d := range seen.take() {
		if d.Port() == 0 {
			plain++
		} else {
			udp++
		}
	}
	if udp < K || plain < K || udp+plain != N {
		t.Errorf("%d in UDP, %d plain, want both and %d in all", udp, plain, N)
	}
}
