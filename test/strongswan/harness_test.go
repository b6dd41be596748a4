package strongswan

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mifsec/mifsec/test/strongswan/vici"
	"github.com/mifsec/mifsec/test/topo"
)

const (
	ikeProposal = "aes256gcm16-prfsha256-x25519"
	espProposal = "aes256gcm16-x25519"
	gwID        = "gw.example.net"
	ueID        = "ue1@example.net"
)

var testPSK = []byte("mifsec-test-psk-0123456789")

// gwConfig is the strongSwan gateway of the issue topology: responder on
// both access addresses, virtual IPs from the pool, LAN behind it.
func gwConfig() Config {
	return Config{
		Name: "gw",
		Connections: []Connection{{
			Name:        "ue",
			LocalAddrs:  []string{topo.GWRAN.String(), topo.GWWLAN.String()},
			RemoteAddrs: []string{"%any"},
			Proposals:   []string{ikeProposal},
			Pools:       []string{"ue_pool"},
			Mobike:      Yes,
			SendCertReq: No,
			Unique:      "replace",
			Local:       Auth{Auth: "psk", ID: gwID},
			Remote:      Auth{Auth: "psk", ID: ueID},
			Children: []Child{{
				Name: "net", LocalTS: []string{topo.LANNet.String()}, RemoteTS: []string{"dynamic"},
				ESPProposals: []string{espProposal}, DPDAction: "clear",
			}},
		}},
		Pools:   []Pool{{Name: "ue_pool", Addrs: topo.VIPPool.String()}},
		Secrets: []PSK{{Name: "ue", IDs: []string{gwID, ueID}, Secret: testPSK}},
	}
}

// ueConfig is a strongSwan end user initiating to the gateway's RAN
// address and asking for a virtual IP.
func ueConfig() Config {
	return Config{
		Name:              "ue",
		RetransmitTimeout: 2 * time.Second,
		Connections: []Connection{{
			Name:        "gw",
			RemoteAddrs: []string{topo.GWRAN.String()},
			Proposals:   []string{ikeProposal},
			VIPs:        []string{"0.0.0.0"},
			Mobike:      Yes,
			SendCertReq: No,
			Local:       Auth{Auth: "psk", ID: ueID},
			Remote:      Auth{Auth: "psk", ID: gwID},
			Children: []Child{{
				Name: "net", RemoteTS: []string{topo.LANNet.String()},
				ESPProposals: []string{espProposal}, StartAction: "none", DPDAction: "restart",
			}},
		}},
		Secrets: []PSK{{Name: "gw", IDs: []string{ueID, gwID}, Secret: testPSK}},
	}
}

var vip = netip.MustParseAddr("10.45.0.1")

func waitEvent(t *testing.T, ctx context.Context, sub *vici.Subscription, name string, match func(vici.Event) bool) vici.Event {
	t.Helper()
	ev, err := sub.Wait(ctx, func(e vici.Event) bool { return e.Name == name && (match == nil || match(e)) })
	if err != nil {
		t.Fatalf("waiting for %s: %v", name, err)
	}
	return ev
}

func isUp(want bool) func(vici.Event) bool {
	return func(e vici.Event) bool { up, _, err := e.UpDown(); return err == nil && up == want }
}

// oneSA lists the SAs of c and requires exactly one IKE_SA.
func oneSA(t *testing.T, ctx context.Context, c *Charon) vici.IKESA {
	t.Helper()
	sas, err := c.Vici().ListSAs(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(sas) != 1 {
		t.Fatalf("%s: %d IKE_SAs, want 1: %+v", c.Name(), len(sas), sas)
	}
	return sas[0]
}

func installed(t *testing.T, sa vici.IKESA) vici.ChildSA {
	t.Helper()
	c, ok := sa.Child("net", vici.ChildInstalled)
	if !ok {
		t.Fatalf("%s: no INSTALLED CHILD_SA net: %+v", sa.Name, sa.Children)
	}
	return c
}

func pingThrough(t *testing.T, ctx context.Context, tp *topo.Topology, count int) topo.PingStats {
	t.Helper()
	s, err := tp.UE.Ping(ctx, topo.PingOptions{Src: vip, Dst: topo.SRV, Count: count, Rate: 100, Grace: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The harness with strongSwan on both ends: PSK, virtual IP from the
// gateway's pool, traffic ue → srv through the tunnel, vici listings,
// events, rekeys from either end and termination.
func TestTunnelPSK(t *testing.T) {
	tp := topo.Build(t)
	gw := Start(t, tp.GW, gwConfig())
	ue := Start(t, tp.UE, ueConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	all := []string{vici.EventIKEUpDown, vici.EventChildUpDown, vici.EventIKERekey, vici.EventChildRekey}
	ueEv, err := ue.Subscribe(ctx, all...)
	if err != nil {
		t.Fatal(err)
	}
	gwEv, err := gw.Subscribe(ctx, all...)
	if err != nil {
		t.Fatal(err)
	}

	if err := ue.Vici().Initiate(ctx, "net", "gw"); err != nil {
		t.Fatalf("initiate: %v", err)
	}
	_, upSA, _ := waitEvent(t, ctx, ueEv, vici.EventIKEUpDown, isUp(true)).UpDown()
	waitEvent(t, ctx, ueEv, vici.EventChildUpDown, isUp(true))
	waitEvent(t, ctx, gwEv, vici.EventIKEUpDown, isUp(true))
	waitEvent(t, ctx, gwEv, vici.EventChildUpDown, isUp(true))

	u, g := oneSA(t, ctx, ue), oneSA(t, ctx, gw)
	if u.State != vici.IKEEstablished || !u.Initiator || g.Initiator ||
		u.Local != netip.AddrPortFrom(topo.UERAN, 4500) || u.Remote != netip.AddrPortFrom(topo.GWRAN, 4500) ||
		u.LocalID != ueID || u.RemoteID != gwID || g.RemoteID != ueID ||
		u.InitiatorSPI != g.InitiatorSPI || u.ResponderSPI != g.ResponderSPI || u.InitiatorSPI != upSA.InitiatorSPI ||
		len(u.LocalVIPs) != 1 || u.LocalVIPs[0] != vip || len(g.RemoteVIPs) != 1 || g.RemoteVIPs[0] != vip ||
		u.EncrAlg != "AES_GCM_16" || u.DHGroup != "CURVE_25519" {
		t.Fatalf("IKE_SAs do not match:\nue %+v\ngw %+v", u, g)
	}
	uc, gc := installed(t, u), installed(t, g)
	if uc.SPIIn != gc.SPIOut || uc.SPIOut != gc.SPIIn || !uc.Encap ||
		len(uc.RemoteTS) != 1 || uc.RemoteTS[0] != topo.LANNet.String() ||
		len(gc.RemoteTS) != 1 || gc.RemoteTS[0] != "10.45.0.1/32" {
		t.Fatalf("CHILD_SAs do not match:\nue %+v\ngw %+v", uc, gc)
	}
	pools, err := gw.Vici().Pools(ctx)
	if err != nil || len(pools) != 1 || pools[0].Online != 1 || len(pools[0].Leases) != 1 ||
		pools[0].Leases[0].Address != vip.String() || pools[0].Leases[0].Identity != ueID {
		t.Fatalf("pools %+v, %v", pools, err)
	}

	s := pingThrough(t, ctx, tp, 100)
	t.Logf("ue %v → srv through the tunnel: %v", vip, s)
	if s.Lost != 0 || s.Duplicates != 0 {
		t.Fatalf("ping through the tunnel: %v", s)
	}
	uc = installed(t, oneSA(t, ctx, ue))
	if uc.PacketsOut < 100 || uc.PacketsIn < 100 || uc.BytesOut < 100*84 {
		t.Fatalf("ue CHILD_SA counters after 100 pings: %+v", uc)
	}

	// CHILD_SA rekey started by the ue.
	if n, err := ue.Vici().Rekey(ctx, vici.Rekey{Child: "net"}); err != nil || n != 1 {
		t.Fatalf("rekey child: %d, %v", n, err)
	}
	_, old, nw, err := waitEvent(t, ctx, ueEv, vici.EventChildRekey, nil).ChildRekey()
	if err != nil || old.SPIIn != uc.SPIIn || nw.SPIIn == uc.SPIIn || nw.SPIOut == uc.SPIOut || nw.State != vici.ChildInstalled {
		t.Fatalf("child-rekey: old %+v new %+v %v", old, nw, err)
	}
	waitEvent(t, ctx, gwEv, vici.EventChildRekey, nil)
	if s := pingThrough(t, ctx, tp, 20); s.Lost != 0 {
		t.Fatalf("ping after CHILD_SA rekey: %v", s)
	}

	// IKE_SA rekey started by the gateway (the responder).
	if n, err := gw.Vici().Rekey(ctx, vici.Rekey{IKE: "ue"}); err != nil || n != 1 {
		t.Fatalf("rekey IKE: %d, %v", n, err)
	}
	o, n, err := waitEvent(t, ctx, ueEv, vici.EventIKERekey, nil).IKERekey()
	if err != nil || o.InitiatorSPI != u.InitiatorSPI || n.InitiatorSPI == u.InitiatorSPI || n.State != vici.IKEEstablished {
		t.Fatalf("ike-rekey: old %+v new %+v %v", o, n, err)
	}
	waitEvent(t, ctx, gwEv, vici.EventIKERekey, nil)
	if s := pingThrough(t, ctx, tp, 20); s.Lost != 0 {
		t.Fatalf("ping after IKE_SA rekey: %v", s)
	}

	st, err := gw.Vici().Stats(ctx)
	if err != nil || st.IKESAs != 1 || !slices.Contains(st.Plugins, "kernel-libipsec") {
		t.Fatalf("stats %+v, %v", st, err)
	}

	if err := ue.Vici().Terminate(ctx, "gw"); err != nil {
		t.Fatalf("terminate: %v", err)
	}
	waitEvent(t, ctx, gwEv, vici.EventIKEUpDown, isUp(false))
	if sas, err := ue.Vici().ListSAs(ctx, ""); err != nil || len(sas) != 0 {
		t.Fatalf("SAs after terminate: %+v, %v", sas, err)
	}
	if ueEv.Dropped() != 0 || gwEv.Dropped() != 0 {
		t.Fatalf("events dropped: ue %d gw %d", ueEv.Dropped(), gwEv.Dropped())
	}
}
