package engine

import (
	"net/netip"
	"testing"
	"time"
)

// The gateway (MOBIKE responder, it cannot move the IKE SA) loses its
// address in use: it announces its list on a pair that works (RFC 4555
// §3.6), and the end user, seeing the list arrive there, moves at once
// (path test, then UPDATE_SA_ADDRESSES) instead of waiting for its
// requests on the dead pair to time out.
func TestPeerLosesAddressInUse(t *testing.T) {
	ue, gw, _, gl, w := twoAccessPairWire(t, false)
	ctx := tctx(t)
	name, err := ue.InitiateConnection(ctx, "gw", "")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the peers' other addresses learned", func() bool {
		v, err := ue.GetIKESA(ctx, "gw", name)
		return err == nil && v.Local.Addr().String() == ueW && len(peerAddrs(t, ue, name)) > 0
	})
	usub, err := ue.Watch(ctx, WatchFilter{Categories: []Category{CategoryMobility}})
	if err != nil {
		t.Fatal(err)
	}
	defer usub.Close()
	gsub, err := gw.Watch(ctx, WatchFilter{Categories: []Category{CategoryMobility}})
	if err != nil {
		t.Fatal(err)
	}
	defer gsub.Close()
	// gwW leaves the gateway: nothing reaches it or leaves from it any more.
	w.set(ueW, gwW, 0, true)
	start := time.Now()
	gl.RemoveAddr("eth0", gwW+"/24")
	gevs := collect(t, gsub, isType(EventAddressesAnnounced, ""))
	if a := gevs[len(gevs)-1]; a.Reason != "address_removed" || len(a.Addrs) != 1 || a.Addrs[0].String() != gwR {
		t.Fatalf("gateway announced %+v", a)
	}
	evs := collect(t, usub, isType(EventIKESAMigrated, ""))
	took := time.Since(start)
	learned := index(evs, func(ev Event) bool { return ev.Type == EventPeerAddresses })
	mv := evs[len(evs)-1]
	if learned < 0 || mv.Reason != "peer_address_lost" || mv.IKESA.Local.Addr().String() != ueR || mv.IKESA.Remote.Addr().String() != gwR {
		t.Fatalf("end user moved to %v↔%v (%s) after %v", mv.IKESA.Local, mv.IKESA.Remote, mv.Reason, evs)
	}
	// Retransmissions on the dead pair would take 300 ms and more.
	if took > 250*time.Millisecond {
		t.Fatalf("the move took %v", took)
	}
	waitFor(t, "the gateway follows", func() bool {
		l, _, _ := gw.ListIKESAs(ctx, "ues", "", 10)
		return len(l) == 1 && l[0].Local.Addr() == netip.MustParseAddr(gwR) && l[0].Remote.Addr() == netip.MustParseAddr(ueR)
	})
}
