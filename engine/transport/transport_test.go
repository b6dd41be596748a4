package transport

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeEncap records what goes through the NAT-T port.
type fakeEncap struct {
	h    func(local, remote netip.AddrPort, msg []byte)
	sent [][]byte
}

func (f *fakeEncap) Listen(netip.AddrPort) error { return nil }
func (f *fakeEncap) SendIKE(_, _ netip.AddrPort, msg []byte) error {
	f.sent = append(f.sent, msg)
	return nil
}
func (f *fakeEncap) SetIKEHandler(h func(local, remote netip.AddrPort, msg []byte)) { f.h = h }

func TestLoopback(t *testing.T) {
	enc := &fakeEncap{}
	a, err := New(Config{Port: 15500, NATPort: 15501}, enc, hclog.NewNullLogger())
	if err != nil {
		t.Skipf("cannot bind: %v", err)
	}
	defer a.Close()
	b, err := New(Config{Port: 15502}, nil, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	lo := netip.MustParseAddr("127.0.0.1")
	if err := b.Send(netip.AddrPortFrom(lo, 15502), netip.AddrPortFrom(lo, 15500), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-a.Packets():
		if string(p.Data) != "hello" || p.Local != netip.AddrPortFrom(lo, 15500) || p.Remote != netip.AddrPortFrom(lo, 15502) {
			t.Fatalf("got %+v", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received")
	}
	// NAT-T: sending from the NAT port uses the encap; its handler delivers.
	if err := a.Send(netip.AddrPortFrom(lo, 15501), netip.AddrPortFrom(lo, 4500), []byte("x")); err != nil || len(enc.sent) != 1 {
		t.Fatalf("encap send: %v %d", err, len(enc.sent))
	}
	enc.h(netip.AddrPortFrom(lo, 15501), netip.AddrPortFrom(lo, 4500), []byte("natt"))
	if p := <-a.Packets(); string(p.Data) != "natt" {
		t.Fatalf("got %+v", p)
	}
	if err := b.Send(netip.AddrPortFrom(lo, 4500), netip.AddrPortFrom(lo, 15500), nil); err == nil {
		t.Fatal("NAT-T send without an encap succeeded")
	}
}

// TestLoopback6 sends and receives over ::1 (skipped without IPv6).
func TestLoopback6(t *testing.T) {
	a, err := New(Config{Port: 15510}, nil, hclog.NewNullLogger())
	if err != nil {
		t.Skipf("cannot bind: %v", err)
	}
	defer a.Close()
	if a.v6 == nil {
		t.Skip("no IPv6 socket")
	}
	lo := netip.MustParseAddr("::1")
	// A burst: several datagrams may come back from one receive call.
	const n = 40
	for i := range n {
		if err := a.Send(netip.AddrPortFrom(lo, 15510), netip.AddrPortFrom(lo, 15510), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case p := <-a.Packets():
			if len(p.Data) != 1 || p.Data[0] != byte(i) || p.Local != netip.AddrPortFrom(lo, 15510) || p.Remote != netip.AddrPortFrom(lo, 15510) {
				t.Fatalf("datagram %d: got %+v", i, p)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("datagram %d not received", i)
		}
	}
}

// BenchmarkLoopback is one IKE-sized datagram sent and received over
// 127.0.0.1: the allocations of Send and of the reader.
func BenchmarkLoopback(b *testing.B) {
	a, err := New(Config{Port: 15520}, nil, hclog.NewNullLogger())
	if err != nil {
		b.Skipf("cannot bind: %v", err)
	}
	defer a.Close()
	lo := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 15520)
	msg := make([]byte, 300)
	b.ReportAllocs()
	for range b.N {
		if err := a.Send(lo, lo, msg); err != nil {
			b.Fatal(err)
		}
		<-a.Packets()
	}
}

// SetInline: the reader hands datagrams to the inline handler, queues
// those it declines, queues everything once it is removed, and NAT-T
// datagrams (the data plane's goroutine) always.
func TestInline(t *testing.T) {
	enc := &fakeEncap{}
	a, err := New(Config{Port: 15530, NATPort: 15531}, enc, hclog.NewNullLogger())
	if err != nil {
		t.Skipf("cannot bind: %v", err)
	}
	defer a.Close()
	lo := netip.MustParseAddr("127.0.0.1")
	from, to := netip.AddrPortFrom(lo, 15530), netip.AddrPortFrom(lo, 15530)
	got := make(chan Packet, 10)
	var decline atomic.Bool
	a.SetInline(func(p Packet) bool {
		if decline.Load() {
			return false
		}
		got <- p
		return true
	})
	recv := func(c <-chan Packet, what string) Packet {
		t.Helper()
		select {
		case p := <-c:
			return p
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: nothing", what)
		}
		return Packet{}
	}
	if err := a.Send(from, to, []byte("inline")); err != nil {
		t.Fatal(err)
	}
	if p := recv(got, "inline"); string(p.Data) != "inline" || p.Local != to || p.Remote != from {
		t.Fatalf("inline got %+v", p)
	}
	enc.h(netip.AddrPortFrom(lo, 15531), netip.AddrPortFrom(lo, 4500), []byte("natt"))
	if p := recv(a.Packets(), "NAT-T"); string(p.Data) != "natt" {
		t.Fatalf("NAT-T got %+v", p)
	}
	decline.Store(true)
	a.Send(from, to, []byte("declined"))
	if p := recv(a.Packets(), "declined"); string(p.Data) != "declined" {
		t.Fatalf("declined got %+v", p)
	}
	a.SetInline(nil)
	a.Send(from, to, []byte("queued"))
	if p := recv(a.Packets(), "queued"); string(p.Data) != "queued" {
		t.Fatalf("queued got %+v", p)
	}
	if len(got) != 0 {
		t.Fatalf("inline handler got %d more", len(got))
	}
}
