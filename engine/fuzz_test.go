package engine

import (
	"context"
	"net/netip"
	goruntime "runtime"
	"sync"
	"testing"

	"github.com/mifsec/mifsec/engine/transport"
)

// capture is a fake transport that records what its engine sends.
type capture struct {
	*fakeTransport
	mu   sync.Mutex
	sent [][]byte
}

func (c *capture) Send(local, remote netip.AddrPort, msg []byte) error {
	c.mu.Lock()
	c.sent = append(c.sent, append([]byte(nil), msg...))
	c.mu.Unlock()
	return c.fakeTransport.Send(local, remote, msg)
}

// engineSeeds are the datagrams an end user sends for a handshake, a
// rekey and its termination.
func engineSeeds(t testing.TB) [][]byte {
	var ue *capture
	u, gw, _ := pairWith(t, func(f *fakeTransport) IKETransport {
		c := &capture{fakeTransport: f}
		if f.addr == netip.MustParseAddr("192.0.2.2") {
			ue = c
		}
		return c
	})
	establishRekeyTerminate(t, u, gw)
	ue.mu.Lock()
	defer ue.mu.Unlock()
	return ue.sent
}

// FuzzEngineDatagrams feeds arbitrary datagrams, from many source
// addresses, to a gateway engine with a responder connection and a pool:
// no panic, and its state stays bounded (half-open IKE SAs at most the
// cookie threshold, RFC 7296 §2.6; nothing established without
// authentication).
func FuzzEngineDatagrams(f *testing.F) {
	for _, s := range engineSeeds(f) {
		f.Add(s, uint16(1))
	}
	f.Add([]byte{}, uint16(0))
	_, gw, w := pairOn(f)
	in := w.ends[netip.MustParseAddr("192.0.2.1")].in
	local := netip.MustParseAddrPort("192.0.2.1:500")
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte, src uint16) {
		// Source addresses from 203.0.113.0/24 and ports 500/4500-ish.
		a := netip.AddrFrom4([4]byte{203, 0, 113, byte(src)})
		remote := netip.AddrPortFrom(a, 500+uint16(src>>8))
		in <- transport.Packet{Local: local, Remote: remote, Data: data}
		for len(in) > 0 {
			goruntime.Gosched()
		}
		st, err := gw.Stats(ctx) // after the datagram: the loop takes one event at a time
		if err != nil {
			t.Fatal(err)
		}
		if st.HalfOpenIKESAs > 31 || st.IKESAs > 31 {
			t.Fatalf("state grows: %d half-open, %d IKE SAs", st.HalfOpenIKESAs, st.IKESAs)
		}
		l, _, err := gw.ListIKESAs(ctx, "-", "", 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range l {
			if v.State.String() == "ESTABLISHED" {
				t.Fatalf("an IKE SA came up from fuzzed datagrams: %+v", v)
			}
		}
	})
}
