package engine

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// A lost IKE_SA_INIT response: the end user sends the same request again
// and the gateway answers it from its half-open IKE SA with the same
// response (RFC 7296 §2.1), several times if need be; the IKE SA comes
// up.
func TestInitResponseLost(t *testing.T) {
	for _, lose := range []int{1, 3} {
		ue, gw, w := pairOn(t)
		var fromGW atomic.Int32
		gwAddr := netip.MustParseAddr("192.0.2.1")
		w.mu.Lock()
		w.drops = func(from, to netip.AddrPort) bool {
			return from.Addr() == gwAddr && fromGW.Add(1) <= int32(lose)
		}
		w.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if _, err := ue.InitiateConnection(ctx, "gw", ""); err != nil {
			t.Fatalf("lose %d: %v", lose, err)
		}
		cancel()
		st, err := gw.Stats(tctx(t))
		if err != nil || st.HalfOpenIKESAs != 0 || st.IKESAs != 1 {
			t.Fatalf("lose %d: gateway %+v %v", lose, st, err)
		}
		if n := fromGW.Load(); n < int32(lose)+2 {
			t.Fatalf("lose %d: the gateway sent %d datagrams", lose, n)
		}
	}
}
