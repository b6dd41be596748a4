package engine

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/iface"
	"github.com/mifsec/mifsec/engine/iface/ifacetest"
	"github.com/mifsec/mifsec/engine/sa"
)

// A move
// must go to the address the peer announced on the new access (RFC 4555
// §3.6), not to the old remote address through the new interface.
// Regression: the engine kept the remote address, so the path test went
// to an unreachable pair, the move failed and the IKE SA died.
const (
	gwW, gwR = "192.0.2.1", "203.0.113.1"
	ueW, ueR = "192.0.2.2", "203.0.113.2"
)

// twoAccessPair builds a gateway with one address per access network,
// each reachable only through the matching access of the end user
// (test/topo's layout), and an end user with a connection to gwW (and
// gwR when multipath).
func twoAccessPair(t *testing.T, multipath bool) (ue, gw *Engine, ul *ifacetest.Fake) {
	t.Helper()
	ue, gw, ul, _, _ = twoAccessPairWire(t, multipath)
	return ue, gw, ul
}

// twoAccessPairWire is twoAccessPair with the gateway's links and the wire.
func twoAccessPairWire(t *testing.T, multipath bool) (ue, gw *Engine, ul, gl *ifacetest.Fake, w *mwire) {
	t.Helper()
	w = &mwire{ends: map[netip.Addr]*mtransport{}, delay: map[[2]netip.Addr]time.Duration{}, drop: map[[2]netip.Addr]bool{}}
	w.set(ueR, gwW, 0, true)
	w.set(ueW, gwR, 0, true)
	mk := func(links *ifacetest.Fake, tr *mtransport) *Engine {
		e, err := New(Config{StateDir: t.TempDir(), Links: links, Transport: tr, Dataplane: newFakeDP(),
			Retransmit: sa.Retransmit{Timeout: 300 * time.Millisecond, Factor: 1.5, Tries: 4}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		if _, err := e.CreateSecret(tctx(t), "psk", SecretPSK, []byte("a-long-shared-secret")); err != nil {
			t.Fatal(err)
		}
		return e
	}
	gl = ifacetest.New()
	gl.AddLink("eth0", gwW+"/24")
	gl.AddLink("eth1", gwR+"/24")
	gw = mk(gl, w.end(gwW, gwR))
	ul = ifacetest.New()
	ul.AddLink("wlan0", ueW+"/24")
	ul.AddLink("rmnet0", ueR+"/24")
	ue = mk(ul, w.end(ueW, ueR))
	ctx := tctx(t)
	for _, x := range []struct {
		e        *Engine
		id, link string
		at       AccessType
		prio     uint32
	}{{gw, "w", "eth0", AccessWired, 0}, {gw, "r", "eth1", AccessWired, 0},
		{ue, "wlan", "wlan0", AccessWLAN, 10}, {ue, "ran", "rmnet0", AccessRAN, 5}} {
		if _, err := x.e.CreateInterface(ctx, x.id, InterfaceSpec{Link: x.link, AccessType: x.at, Priority: x.prio}, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := gw.CreatePool(ctx, "ue", PoolSpec{Ranges: []string{"10.45.0.0/24"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.CreateConnection(ctx, "ues", ConnectionSpec{Role: RoleResponder, LocalID: "@gw.example", RemoteID: "%any",
		LocalAuth: AuthSpec{PSKSecret: "psk"}, RemoteAuth: AuthSpec{PSKSecret: "psk"}, Pool: "ue", MOBIKE: true,
		Children: []ChildSpec{{Name: "net", LocalTS: []string{"198.18.0.0/24"}}}}); err != nil {
		t.Fatal(err)
	}
	remotes := []string{gwW}
	if multipath {
		remotes = append(remotes, gwR)
	}
	if _, err := ue.CreateConnection(ctx, "gw", ConnectionSpec{Role: RoleInitiator, LocalID: "@ue.example", RemoteID: "@gw.example",
		LocalAuth: AuthSpec{PSKSecret: "psk"}, RemoteAuth: AuthSpec{PSKSecret: "psk"}, RemoteAddrs: remotes,
		LocalInterfaces: []string{"wlan", "ran"}, VirtualIP4: true, MOBIKE: true, Multipath: multipath,
		Children: []ChildSpec{{Name: "net", RemoteTS: []string{"198.18.0.0/24"}}}}); err != nil {
		t.Fatal(err)
	}
	return ue, gw, ul, gl, w
}

func TestMoveUsesPeerAnnouncedAddress(t *testing.T) {
	ue, gw, ul := twoAccessPair(t, false)
	ctx := tctx(t)
	name, err := ue.InitiateConnection(ctx, "gw", "")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the gateway's RAN address learned", func() bool {
		v, err := ue.GetIKESA(ctx, "gw", name)
		return err == nil && v.Local.Addr().String() == ueW && len(peerAddrs(t, ue, name)) > 0
	})
	if got := peerAddrs(t, ue, name); len(got) != 1 || got[0].String() != gwR {
		t.Fatalf("peer addresses %v, want [%s]", got, gwR)
	}
	sub, err := ue.Watch(ctx, WatchFilter{Categories: []Category{CategoryMobility}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ul.SetState("wlan0", iface.Down)
	evs := collect(t, sub, func(ev Event) bool { return ev.Type == EventIKESAMigrated })
	mv := evs[len(evs)-1]
	if mv.Reason != "link_down" || mv.IKESA.Local.Addr().String() != ueR || mv.IKESA.Remote.Addr().String() != gwR {
		t.Fatalf("moved to %v↔%v (%s), want %s↔%s", mv.IKESA.Local, mv.IKESA.Remote, mv.Reason, ueR, gwR)
	}
	waitFor(t, "the gateway follows", func() bool {
		l, _, _ := gw.ListIKESAs(ctx, "ues", "", 10)
		return len(l) == 1 && l[0].Remote.Addr().String() == ueR && l[0].Local.Addr().String() == gwR
	})
	// The API picks the same way: back to WLAN means the gateway's WLAN address.
	ul.SetState("wlan0", iface.Up)
	waitFor(t, "wlan usable", func() bool { p := pathsOf(t, ue, "gw"); _, ok := p["wlan-192-0-2-1"]; return ok })
	v, err := ue.MigrateIKESA(ctx, "gw", name, "wlan", "")
	if err != nil {
		t.Fatal(err)
	}
	if v.Local.Addr().String() != ueW || v.Remote.Addr().String() != gwW {
		t.Fatalf("MigrateIKESA to wlan: %v↔%v", v.Local, v.Remote)
	}
}

// peerAddrs reads an IKE SA's learned peer addresses from the state.
func peerAddrs(t *testing.T, e *Engine, name string) []netip.Addr {
	t.Helper()
	out, err := do(tctx(t), e, func(st *state) ([]netip.Addr, error) {
		s, err := st.findIKE("gw", name)
		if err != nil {
			return nil, err
		}
		return s.m.Info().PeerAddrs, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A multipath end user configured with both of the gateway's addresses
// gets one path per access, each to the address that access reaches.
// Regression: every path went to the first remote address, so the WLAN
// path's IKE SA could never be set up.
func TestMultipathPathPerAccess(t *testing.T) {
	ue, gw, _ := twoAccessPair(t, true)
	if _, err := ue.InitiateConnection(tctx(t), "gw", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both paths up", func() bool {
		ps := pathsOf(t, ue, "gw")
		return len(upSAs(t, ue)) == 2 && len(upSAs(t, gw)) == 2 &&
			ps["wlan-192-0-2-1"].State == PathUp && ps["ran-203-0-113-1"].State == PathUp
	})
}
