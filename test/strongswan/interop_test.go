package strongswan

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mifsec/mifsec/test/strongswan/vici"
	"github.com/mifsec/mifsec/test/topo"
)

// Certificate authentication both ways; the end user's connection is
// loaded over vici (certificate data instead of file names).
func TestTunnelCerts(t *testing.T) {
	Require(t)
	ca, err := NewCA("testca")
	if err != nil {
		t.Fatal(err)
	}
	gwCert, err := ca.Issue("gw", CertOptions{DNSNames: []string{gwID}, IPs: []netip.Addr{topo.GWRAN, topo.GWWLAN}})
	if err != nil {
		t.Fatal(err)
	}
	ueCert, err := ca.Issue("ue", CertOptions{Emails: []string{ueID}})
	if err != nil {
		t.Fatal(err)
	}
	gcfg := gwConfig()
	gcfg.Secrets = nil
	gcfg.CAs, gcfg.Certs = []*CA{ca}, []*Cert{gwCert}
	gcfg.Connections[0].Local = Auth{Auth: "pubkey", ID: gwID, Certs: []string{gwCert.File()}}
	gcfg.Connections[0].Remote = Auth{Auth: "pubkey", ID: ueID, CACerts: []string{ca.File()}}
	// Certificates are sent only when asked (send_cert = ifasked).
	gcfg.Connections[0].SendCertReq = Yes
	ucfg := ueConfig()
	conn := ucfg.Connections[0]
	conn.Local = Auth{Auth: "pubkey", ID: ueID, Certs: []string{ueCert.File()}}
	conn.Remote = Auth{Auth: "pubkey", ID: gwID, CACerts: []string{ca.File()}}
	conn.SendCertReq = Yes
	ucfg.Connections, ucfg.Secrets = nil, nil
	ucfg.CAs, ucfg.Certs = []*CA{ca}, []*Cert{ueCert}

	tp := topo.Build(t)
	Start(t, tp.GW, gcfg)
	ue := Start(t, tp.UE, ucfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A connection expecting another gateway identity fails, with the
	// reason in the error (before the good one: INITIAL_CONTACT would
	// replace it on the gateway).
	bad := conn
	bad.Name = "bad"
	bad.Remote.ID = "other.example.net"
	bad.Children = []Child{{Name: "badnet", RemoteTS: []string{topo.LANNet.String()}, ESPProposals: []string{espProposal}}}
	if err := ue.LoadConn(ctx, bad); err != nil {
		t.Fatal(err)
	}
	err = ue.Vici().Initiate(ctx, "badnet", "bad")
	var ce *vici.CommandError
	if !errors.As(err, &ce) || len(ce.Log) == 0 {
		t.Fatalf("initiate against the wrong identity: %v", err)
	}
	t.Logf("expected failure: %v (%d log lines)", err, len(ce.Log))

	if err := ue.LoadConn(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if err := ue.Vici().Initiate(ctx, "net", "gw"); err != nil {
		t.Fatalf("initiate: %v", err)
	}
	u := oneSA(t, ctx, ue)
	if u.RemoteID != gwID || u.LocalID != ueID || len(u.LocalVIPs) != 1 {
		t.Fatalf("ue IKE_SA %+v", u)
	}
	installed(t, u)
	if s := pingThrough(t, ctx, tp, 10); s.Lost != 0 {
		t.Fatalf("ping: %v", s)
	}
}

// MOBIKE (RFC 4555) between two strongSwans: the ue loses its RAN
// address and moves the IKE_SA to WLAN; the ping flow running across the
// move measures the outage.
func TestMOBIKEHandover(t *testing.T) {
	tp := topo.Build(t)
	gw := Start(t, tp.GW, gwConfig())
	ue := Start(t, tp.UE, ueConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	if err := ue.Vici().Initiate(ctx, "net", "gw"); err != nil {
		t.Fatal(err)
	}
	flow, err := tp.UE.StartPing(ctx, topo.PingOptions{Src: vip, Dst: topo.SRV, Rate: 50})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := tp.UE.AddrDel(ctx, topo.RAN, netip.PrefixFrom(topo.UERAN, 24).String()); err != nil {
		t.Fatal(err)
	}
	moved := time.Now()
	var u vici.IKESA
	for {
		u = oneSA(t, ctx, ue)
		_, ok := u.Child("net", vici.ChildInstalled)
		if ok && u.Local.Addr() == topo.UEWLAN && u.Remote.Addr() == topo.GWWLAN {
			break
		}
		if time.Since(moved) > 15*time.Second {
			t.Fatalf("IKE_SA did not move to WLAN: %+v", u)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("IKE_SA on WLAN %v after %v", u.Local, time.Since(moved).Round(time.Millisecond))
	time.Sleep(time.Second)
	s := flow.Stop()
	t.Logf("ping across the handover: %v", s)
	if s.Received == 0 || s.Outage > 5*time.Second || s.Duplicates != 0 {
		t.Fatalf("handover: %v", s)
	}
	if g := oneSA(t, ctx, gw); g.Remote.Addr() != topo.UEWLAN {
		t.Fatalf("gateway still sees %v", g.Remote)
	}
	if s := pingThrough(t, ctx, tp, 20); s.Lost != 0 {
		t.Fatalf("ping after the handover: %v", s)
	}
}

// The nftables blackhole stops IKE; the retransmission settings of Config
// bound how long an initiation takes to fail.
func TestBlackholeRetransmit(t *testing.T) {
	tp := topo.Build(t)
	Start(t, tp.GW, gwConfig())
	ucfg := ueConfig()
	ucfg.RetransmitTimeout, ucfg.RetransmitBase, ucfg.RetransmitTries = 300*time.Millisecond, 1.5, 1
	ue := Start(t, tp.UE, ucfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rule, err := tp.GW.Blackhole(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = ue.Vici().Initiate(ctx, "net", "gw")
	var ce *vici.CommandError
	// 0.3 s, then 0.45 s, then give up (retransmit_tries = 1).
	if !errors.As(err, &ce) || time.Since(start) > 5*time.Second {
		t.Fatalf("initiate into a blackhole: %v after %v", err, time.Since(start))
	}
	t.Logf("initiate failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if err := rule.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ue.Vici().Initiate(ctx, "net", "gw"); err != nil {
		t.Fatalf("initiate after removing the blackhole: %v", err)
	}
}

// Commands of the vici client against a real charon.
func TestViciCommands(t *testing.T) {
	Require(t)
	ns := topo.NewNetns(t, "vici")
	c := Start(t, ns, Config{Name: "cmds", Log: map[string]int{"cfg": 1}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v := c.Vici()

	ver, err := v.Version(ctx)
	if err != nil || ver.Daemon != "charon" || !strings.HasPrefix(ver.Version, "5.") {
		t.Fatalf("version %+v, %v", ver, err)
	}
	if err := v.LoadPool(ctx, "p2", vici.Pool{Addrs: "10.46.0.0/28", DNS: []string{"192.0.2.53"}}); err != nil {
		t.Fatal(err)
	}
	pools, err := v.Pools(ctx)
	if err != nil || len(pools) != 1 || pools[0].Name != "p2" || pools[0].Size == 0 || pools[0].Online != 0 {
		t.Fatalf("pools %+v, %v", pools, err)
	}
	if err := v.LoadShared(ctx, vici.Shared{ID: "k1", Data: vici.Secret("abc"), Owners: []string{"a@example.net"}}); err != nil {
		t.Fatal(err)
	}
	conn := Connection{Name: "x", RemoteAddrs: []string{"192.0.2.99"}, Local: Auth{Auth: "psk"}, Remote: Auth{Auth: "psk"},
		Children: []Child{{Name: "xc", RemoteTS: []string{"10.0.0.0/8"}}}}
	if err := c.LoadConn(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if conns, err := v.Conns(ctx); err != nil || !slices.Equal(conns, []string{"x"}) {
		t.Fatalf("conns %v, %v", conns, err)
	}
	if out, err := c.Swanctl(ctx, "--list-conns"); err != nil || !strings.Contains(out, "xc: TUNNEL") {
		t.Fatalf("swanctl --list-conns: %v\n%s", err, out)
	}
	if err := v.UnloadConn(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if conns, err := v.Conns(ctx); err != nil || len(conns) != 0 {
		t.Fatalf("conns after unload %v, %v", conns, err)
	}

	ca, err := NewCA("ca2")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("leaf", CertOptions{DNSNames: []string{"leaf.example.net"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.LoadCert(ctx, "X509", "CA", ca.PEM); err != nil {
		t.Fatal(err)
	}
	if err := v.LoadKey(ctx, "ECDSA", cert.KeyPEM()); err != nil {
		t.Fatal(err)
	}
	if err := v.ClearCreds(ctx); err != nil {
		t.Fatal(err)
	}

	// Failures come back typed, with charon's reason, and the client
	// stays usable.
	var ce *vici.CommandError
	if err := v.Initiate(ctx, "nope", ""); !errors.As(err, &ce) || !strings.Contains(ce.Reason, "nope") {
		t.Fatalf("initiate unknown child: %v", err)
	}
	if err := v.UnloadPool(ctx, "nope"); !errors.As(err, &ce) {
		t.Fatalf("unload unknown pool: %v", err)
	}
	if err := v.LoadConn(ctx, "broken", vici.NewMessage().Set("proposals", "no-such-algorithm")); !errors.As(err, &ce) {
		t.Fatalf("load broken conn: %v", err)
	}
	if _, err := v.Call(ctx, "no-such-command", nil); !errors.Is(err, vici.ErrUnknownCommand) {
		t.Fatalf("unknown command: %v", err)
	}
	if _, err := v.Subscribe(ctx, "no-such-event"); !errors.Is(err, vici.ErrUnknownEvent) {
		t.Fatalf("unknown event: %v", err)
	}
	if st, err := v.Stats(ctx); err != nil || st.Workers == 0 || st.IKESAs != 0 {
		t.Fatalf("stats %+v, %v", st, err)
	}

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if !c.Exited() || c.Stop() != nil {
		t.Fatal("Stop is not final and idempotent")
	}
	if !strings.Contains(c.Log(), "Starting IKE charon daemon") {
		t.Fatalf("log:\n%s", c.Log())
	}
}
