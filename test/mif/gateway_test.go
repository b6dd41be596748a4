package mif

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
	"github.com/mifsec/mifsec/test/topo"
)

// Scenario 2: a strongSwan end user roams (its RAN address is removed);
// it moves itself to WLAN with UPDATE_SA_ADDRESSES (RFC 4555 §3.5) and
// the mifsec gateway follows: its SA addresses change to the ones the
// update came from, traffic goes on, and the move is on Watch.
func TestStrongSwanUserRoams(t *testing.T) {
	t.Parallel()
	tp := topo.Build(t)
	gw := mifsecGW(t, tp, nil)
	ue := swUE(t, tp, nil, topo.GWRAN)
	ctx := ctxT(t)
	rec := record(t, ctx, "gw", gw)
	if err := ue.Vici().Initiate(ctx, "net", "gw"); err != nil {
		t.Fatalf("strongSwan initiate: %v", err)
	}
	sas, err := ue.Vici().ListSAs(ctx, "gw")
	if err != nil || len(sas) != 1 || len(sas[0].LocalVIPs) != 1 {
		t.Fatalf("strongSwan end user SAs %+v %v", sas, err)
	}
	vip := sas[0].LocalVIPs[0]
	sa := ikeSA(t, ctx, gw, "ues")
	if host(sa.LocalAddress) != topo.GWRAN || host(sa.RemoteAddress) != topo.UERAN || !sa.PeerMobike {
		t.Fatalf("gateway IKE SA %v", sa)
	}
	f := startFlow(t, ctx, tp, vip, 7101, 1)
	f.flowing(t, 100, 5*time.Second)
	m := rec.mark()
	if err := tp.UE.AddrDel(ctx, topo.RAN, topo.UERAN.String()+"/24"); err != nil {
		t.Fatal(err)
	}
	_, mig := rec.wait(t, m, 20*time.Second, "IKE_SA_MIGRATED", is(mifsecv1.EventType_EVENT_TYPE_IKE_SA_MIGRATED))
	if s := mig.GetIkeSa(); host(s.LocalAddress) != topo.GWWLAN || host(s.RemoteAddress) != topo.UEWLAN {
		t.Fatalf("gateway followed to %s↔%s, want WLAN", s.LocalAddress, s.RemoteAddress)
	}
	eventually(t, 10*time.Second, "gateway SA and Child SA on WLAN", func() (bool, string) {
		sas := ikeSAs(t, ctx, gw, "ues")
		if len(sas) != 1 {
			return false, "no single IKE SA"
		}
		kids := childSAs(t, ctx, gw, sas[0].Name)
		ok := host(sas[0].RemoteAddress) == topo.UEWLAN && len(kids) == 1 && host(kids[0].RemoteAddress) == topo.UEWLAN
		return ok, sas[0].LocalAddress + "↔" + sas[0].RemoteAddress
	})
	f.flowing(t, 300, 10*time.Second)
	st := f.stop(ctx)
	t.Logf("strongSwan roamed; gateway event %s; flow %v", evString(mig), st)
	if st.Duplicates != 0 {
		t.Fatalf("duplicates: %v", st)
	}
	// Return traffic follows too: the server reaches the end user.
	ps, err := tp.SRV.Ping(ctx, topo.PingOptions{Dst: vip, Count: 20, Rate: 50})
	if err != nil || ps.Lost != 0 {
		t.Fatalf("ping from the server to the end user after the roam: %v %v", ps, err)
	}
}

// Scenario 3: the gateway gains an interface through the API; the end
// user hears of its address (ADDITIONAL_IP4_ADDRESS, RFC 4555 §3.6); the
// gateway's old address disappears: the gateway, which as MOBIKE
// responder cannot move, announces its list on the pair that still works
// (§3.6), and the end user, seeing it arrive there, moves at once (path
// test, then UPDATE_SA_ADDRESSES), well within a second, instead of
// waiting for its requests on the dead pair to go unanswered (§3.11).
func TestGatewayGainsInterface(t *testing.T) {
	t.Parallel()
	tp := topo.Build(t)
	gw := mifsecGW(t, tp, nil)
	ctx := ctxT(t)
	if _, err := gw.Client.Interfaces.DeleteInterface(ctx, &mifsecv1.DeleteInterfaceRequest{Name: "interfaces/wlan"}); err != nil {
		t.Fatal(err)
	}
	ue := mifsecUE(t, tp, topo.GWRAN, func(c *mifsecv1.Connection) {
		c.Dpd = &mifsecv1.Dpd{Interval: durationpb.New(time.Second), Timeout: durationpb.New(10 * time.Second)}
	})
	urec := record(t, ctx, "ue", ue)
	grec := record(t, ctx, "gw", gw)
	sa := initiate(t, ctx, ue)
	if host(sa.RemoteAddress) != topo.GWRAN {
		t.Fatalf("IKE SA %v", sa)
	}
	vip := vipOf(t, sa)
	f := startFlow(t, ctx, tp, vip, 7201, 1)
	f.flowing(t, 100, 5*time.Second)

	um, gm := urec.mark(), grec.mark()
	if _, err := gw.Client.Interfaces.CreateInterface(ctx, &mifsecv1.CreateInterfaceRequest{InterfaceId: "wlan",
		Interface: &mifsecv1.Interface{Link: topo.WLAN, AccessType: mifsecv1.AccessType_ACCESS_TYPE_WLAN, Priority: 20}}); err != nil {
		t.Fatal(err)
	}
	grec.wait(t, gm, 5*time.Second, "ADDRESSES_ANNOUNCED with WLAN", func(ev *mifsecv1.Event) bool {
		return ev.Type == mifsecv1.EventType_EVENT_TYPE_ADDRESSES_ANNOUNCED && contains(ev.Addresses, topo.GWWLAN.String())
	})
	urec.wait(t, um, 5*time.Second, "PEER_ADDRESSES with the gateway's WLAN", func(ev *mifsecv1.Event) bool {
		return ev.Type == mifsecv1.EventType_EVENT_TYPE_PEER_ADDRESSES && contains(ev.Addresses, topo.GWWLAN.String())
	})

	um, gl := urec.mark(), grec.mark()
	gone := time.Now()
	if err := tp.GW.AddrDel(ctx, topo.RAN, topo.GWRAN.String()+"/24"); err != nil {
		t.Fatal(err)
	}
	_, mig := urec.wait(t, um, 20*time.Second, "IKE_SA_MIGRATED", is(mifsecv1.EventType_EVENT_TYPE_IKE_SA_MIGRATED))
	if s := mig.GetIkeSa(); host(s.LocalAddress) != topo.UEWLAN || host(s.RemoteAddress) != topo.GWWLAN {
		t.Fatalf("end user moved to %s↔%s, want the gateway's WLAN address", s.LocalAddress, s.RemoteAddress)
	}
	if mig.Reason != "peer_address_lost" {
		t.Errorf("moved for %q, want peer_address_lost (the gateway's announcement on the other pair)", mig.Reason)
	}
	if took := mig.Time.AsTime().Sub(gone); took > time.Second {
		t.Fatalf("the end user moved %v after the gateway's address was removed, want < 1 s", took)
	}
	grec.wait(t, gl, 2*time.Second, "gateway IKE_SA_MIGRATED", is(mifsecv1.EventType_EVENT_TYPE_IKE_SA_MIGRATED))
	urec.wait(t, um, 2*time.Second, "end user PATH_UP", is(mifsecv1.EventType_EVENT_TYPE_PATH_UP))
	grec.inOrder(t, gm, mifsecv1.EventType_EVENT_TYPE_INTERFACE_CREATED, mifsecv1.EventType_EVENT_TYPE_ADDRESSES_ANNOUNCED)
	grec.inOrder(t, gl, mifsecv1.EventType_EVENT_TYPE_ADDRESSES_ANNOUNCED, mifsecv1.EventType_EVENT_TYPE_IKE_SA_MIGRATED)
	urec.inOrder(t, um, mifsecv1.EventType_EVENT_TYPE_PEER_ADDRESSES, mifsecv1.EventType_EVENT_TYPE_IKE_SA_MIGRATED,
		mifsecv1.EventType_EVENT_TYPE_PATH_UP)
	f.flowing(t, 200, 10*time.Second)
	first, ok := Resumed(f.r.Arrivals(1), mig.Time.AsTime())
	if !ok {
		t.Fatal("no datagram after the move")
	}
	st := f.stop(ctx)
	t.Logf("gateway address removed: end user moved after %v (%s), traffic back %v later; flow %v",
		mig.Time.AsTime().Sub(gone).Round(time.Millisecond), mig.Reason, first.Recv.Sub(mig.Time.AsTime()).Round(time.Microsecond), st)
	eventually(t, 5*time.Second, "gateway SA on WLAN", func() (bool, string) {
		s := ikeSA(t, ctx, gw, "ues")
		return host(s.LocalAddress) == topo.GWWLAN && host(s.RemoteAddress) == topo.UEWLAN, s.LocalAddress + "↔" + s.RemoteAddress
	})
}
