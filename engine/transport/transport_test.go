package transport

import (
	"net/netip"
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
