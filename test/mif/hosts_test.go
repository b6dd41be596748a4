package mif

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
	"github.com/mifsec/mifsec/test/topo"
)

// The hosts' own addresses in scenario 7 (on their loopback; RFC 2544
// benchmarking range), what the transport-mode SA protects.
var (
	ueHost = netip.MustParseAddr("198.18.7.1")
	gwHost = netip.MustParseAddr("198.18.7.2")
)

// hostConn is a host-to-host connection between the two hosts' own
// addresses, transport mode (RFC 4303 §3.1.1), MOBIKE on, both accesses.
func hostConn(role mifsecv1.Role, localID, remoteID string, local, remote netip.Addr, peer []string) *mifsecv1.Connection {
	mobike := true
	return &mifsecv1.Connection{
		Role: role, LocalId: localID, RemoteId: remoteID,
		LocalAuth: pskAuth(), RemoteAuth: pskAuth(),
		IkeProposals: []string{ikeP}, EspProposals: []string{espP},
		RemoteAddresses: peer, LocalInterfaces: []string{"interfaces/ran", "interfaces/wlan"},
		Mobike: &mobike, Dpd: &mifsecv1.Dpd{Interval: durationpb.New(0)},
		Children: []*mifsecv1.Child{{Name: "host", Mode: mifsecv1.IpsecMode_IPSEC_MODE_TRANSPORT,
			LocalTs: []string{netip.PrefixFrom(local, 32).String()}, RemoteTs: []string{netip.PrefixFrom(remote, 32).String()}}},
	}
}

// Scenario 7: two mifsec hosts, each with a RAN and a WLAN link, protect
// the traffic between their own addresses with a transport-mode Child SA,
// carried on WLAN. Both lose WLAN at the same moment. The end user (the
// MOBIKE initiator) moves to the pair its RAN link reaches among the
// gateway's announced addresses (RFC 4555 §3.6); the gateway, which lost
// its address in use, announces its list on the RAN pair; traffic resumes
// both ways and every step is on Watch.
func TestHostsBothLoseWLAN(t *testing.T) {
	t.Parallel()
	tp := topo.Build(t)
	ctx := ctxT(t)
	for _, h := range []struct {
		ns   *topo.Netns
		addr netip.Addr
	}{{tp.UE, ueHost}, {tp.GW, gwHost}} {
		if err := h.ns.AddrAdd(ctx, "lo", netip.PrefixFrom(h.addr, 32).String()); err != nil {
			t.Fatal(err)
		}
	}
	gw, ue := mifsecNode(t, tp.GW), mifsecNode(t, tp.UE)
	if _, err := gw.Client.Connections.CreateConnection(ctx, &mifsecv1.CreateConnectionRequest{ConnectionId: "ue",
		Connection: hostConn(mifsecv1.Role_ROLE_RESPONDER, gwID, ueID, gwHost, ueHost, nil)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ue.Client.Connections.CreateConnection(ctx, &mifsecv1.CreateConnectionRequest{ConnectionId: "gw",
		Connection: hostConn(mifsecv1.Role_ROLE_INITIATOR, ueID, "@"+gwID, ueHost, gwHost, []string{topo.GWWLAN.String()})}); err != nil {
		t.Fatal(err)
	}
	urec, grec := record(t, ctx, "ue", ue), record(t, ctx, "gw", gw)
	sa := initiate(t, ctx, ue)
	if host(sa.LocalAddress) != topo.UEWLAN || host(sa.RemoteAddress) != topo.GWWLAN || !sa.PeerMobike {
		t.Fatalf("IKE SA not on WLAN with MOBIKE: %v", sa)
	}
	kids := childSAs(t, ctx, ue, sa.Name)
	if len(kids) != 1 || kids[0].Mode != mifsecv1.IpsecMode_IPSEC_MODE_TRANSPORT {
		t.Fatalf("Child SAs %v", kids)
	}
	urec.wait(t, 0, 5*time.Second, "the gateway's RAN address learned", func(ev *mifsecv1.Event) bool {
		return ev.Type == mifsecv1.EventType_EVENT_TYPE_PEER_ADDRESSES && contains(ev.Addresses, topo.GWRAN.String())
	})
	r, err := Listen(tp.GW, netip.AddrPortFrom(gwHost, 7701))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	s, err := StartFlow(ctx, tp.UE, FlowOptions{Src: netip.AddrPortFrom(ueHost, 0), Dst: r.Addr(), ID: 1, Rate: rate})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	f := &flowAt{s: s, r: r}
	f.flowing(t, 200, 5*time.Second)

	// Both lose WLAN at the same moment.
	um, gm := urec.mark(), grec.mark()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, ns := range []*topo.Netns{tp.UE, tp.GW} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = ns.LinkDown(ctx, topo.WLAN)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	_, down := urec.wait(t, um, 5*time.Second, "INTERFACE_LINK_DOWN", is(mifsecv1.EventType_EVENT_TYPE_INTERFACE_LINK_DOWN))
	_, mig := urec.wait(t, um, 10*time.Second, "IKE_SA_MIGRATED", is(mifsecv1.EventType_EVENT_TYPE_IKE_SA_MIGRATED))
	if s := mig.GetIkeSa(); host(s.LocalAddress) != topo.UERAN || host(s.RemoteAddress) != topo.GWRAN {
		t.Fatalf("end user moved to %s↔%s, want RAN↔the gateway's RAN address", s.LocalAddress, s.RemoteAddress)
	}
	_, gmig := grec.wait(t, gm, 10*time.Second, "gateway IKE_SA_MIGRATED", is(mifsecv1.EventType_EVENT_TYPE_IKE_SA_MIGRATED))
	if s := gmig.GetIkeSa(); host(s.LocalAddress) != topo.GWRAN || host(s.RemoteAddress) != topo.UERAN {
		t.Fatalf("gateway followed to %s↔%s", s.LocalAddress, s.RemoteAddress)
	}
	f.flowing(t, 300, 10*time.Second)
	urec.wait(t, um, 5*time.Second, "PATH_UP", is(mifsecv1.EventType_EVENT_TYPE_PATH_UP))
	urec.wait(t, um, 5*time.Second, "PATH_DOWN", is(mifsecv1.EventType_EVENT_TYPE_PATH_DOWN))
	if mig.Reason == "peer_address_lost" {
		// The gateway's announcement over RAN (it lost WLAN too) can reach
		// the end user before its own netlink event: it moves first, and
		// its WLAN path goes down with or after that.
		urec.inOrder(t, um, mifsecv1.EventType_EVENT_TYPE_IKE_SA_MIGRATED, mifsecv1.EventType_EVENT_TYPE_PATH_UP)
	} else {
		urec.inOrder(t, um, mifsecv1.EventType_EVENT_TYPE_INTERFACE_LINK_DOWN, mifsecv1.EventType_EVENT_TYPE_PATH_DOWN,
			mifsecv1.EventType_EVENT_TYPE_IKE_SA_MIGRATED, mifsecv1.EventType_EVENT_TYPE_PATH_UP)
	}
	// The gateway follows the end user's UPDATE_SA_ADDRESSES, which may
	// overtake its own netlink event: both must be there, in either order.
	grec.wait(t, gm, 5*time.Second, "gateway INTERFACE_LINK_DOWN", is(mifsecv1.EventType_EVENT_TYPE_INTERFACE_LINK_DOWN))
	netlinkAt := down.Time.AsTime()
	first, ok := Resumed(f.r.Arrivals(1), netlinkAt)
	if !ok {
		t.Fatal("no datagram sent after the link loss arrived")
	}
	st := f.stop(ctx)
	t.Logf("both WLAN links lost: IKE SA moved +%v after the end user's netlink event (%s), first datagram on RAN +%v; flow %v",
		mig.Time.AsTime().Sub(netlinkAt).Round(time.Microsecond), mig.Reason, first.Recv.Sub(netlinkAt).Round(time.Microsecond), st)
	if st.Duplicates != 0 {
		t.Fatalf("duplicates: %v", st)
	}
	// Both ends' SAs are on RAN, and the gateway host reaches the end
	// user's own address through the SA (its route into the TUN, source
	// its own address).
	sa = ikeSA(t, ctx, ue, "gw")
	kids = childSAs(t, ctx, ue, sa.Name)
	if len(kids) != 1 || host(kids[0].LocalAddress) != topo.UERAN || host(kids[0].RemoteAddress) != topo.GWRAN || kids[0].PacketsOut < 500 {
		t.Fatalf("end user's Child SA after the loss: %v", kids)
	}
	ps, err := tp.GW.Ping(ctx, topo.PingOptions{Dst: ueHost, Count: 20, Rate: 50})
	if err != nil || ps.Lost != 0 {
		t.Fatalf("ping from the gateway host to the end user host: %+v %v", ps, err)
	}
	gsa := ikeSA(t, ctx, gw, "ue")
	if gk := childSAs(t, ctx, gw, gsa.Name); len(gk) != 1 || gk[0].PacketsIn < 500 || gk[0].PacketsOut < 20 {
		t.Fatalf("gateway's Child SA: %v", gk)
	}
}
