package interop

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
	"github.com/mifsec/mifsec/test/daemon"
	"github.com/mifsec/mifsec/test/strongswan"
	"github.com/mifsec/mifsec/test/strongswan/vici"
	"github.com/mifsec/mifsec/test/topo"
)

// pairing says who plays which end.
type pairing int

const (
	mifsecToSW     pairing = iota + 1 // mifsec end user, strongSwan gateway
	swToMifsec                        // strongSwan end user, mifsec gateway
	mifsecToMifsec                    // mifsecd at both ends
)

var pairings = []struct {
	name string
	p    pairing
}{
	{"mifsec-ue_strongswan-gw", mifsecToSW},
	{"strongswan-ue_mifsec-gw", swToMifsec},
	{"mifsec-ue_mifsec-gw", mifsecToMifsec},
}

// options of one tunnel.
type options struct {
	certs        bool
	ueIKE, gwIKE []string // IKE proposals; defaults when nil
	ueDPD, gwDPD *mifsecv1.Dpd
	// daemonArgs are extra mifsecd flags for both mifsec ends.
	daemonArgs []string
}

// tunnel is one end user and one gateway in their own topology. Exactly
// one of ueD/ueSW and one of gwD/gwSW is set. Both ends dump their logs
// when the test fails (daemon.Start, strongswan.Start).
type tunnel struct {
	t          *testing.T
	p          pairing
	tp         *topo.Topology
	ueD, gwD   *daemon.Daemon
	ueSW, gwSW *strongswan.Charon
}

func newTunnel(t *testing.T, p pairing, o options) *tunnel {
	t.Helper()
	tn := &tunnel{t: t, p: p, tp: topo.Build(t)}
	var (
		ca             *strongswan.CA
		ueCert, gwCert *strongswan.Cert
	)
	if o.certs {
		var err error
		if ca, err = strongswan.NewCA("interopca"); err != nil {
			t.Fatal(err)
		}
		if gwCert, err = ca.Issue("gw", strongswan.CertOptions{DNSNames: []string{gwID}}); err != nil {
			t.Fatal(err)
		}
		if ueCert, err = ca.Issue("ue", strongswan.CertOptions{Emails: []string{ueID}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ueCert.Destroy(); gwCert.Destroy() })
	}
	certAuth := func(c *strongswan.Cert) (*mifsecv1.Authentication, *mifsecv1.Authentication) {
		return &mifsecv1.Authentication{Method: &mifsecv1.Authentication_Certificate{Certificate: &mifsecv1.CertificateAuth{
				CertificatePem: string(c.PEM), KeySecret: "secrets/key"}}},
			&mifsecv1.Authentication{Method: &mifsecv1.Authentication_Certificate{Certificate: &mifsecv1.CertificateAuth{
				CaPem: string(ca.PEM)}}}
	}
	swCerts := func(cfg *strongswan.Config, own *strongswan.Cert, localID, remoteID string) {
		c := &cfg.Connections[0]
		cfg.Secrets = nil
		cfg.CAs, cfg.Certs = []*strongswan.CA{ca}, []*strongswan.Cert{own}
		c.Local = strongswan.Auth{Auth: "pubkey", ID: localID, Certs: []string{own.File()}}
		c.Remote = strongswan.Auth{Auth: "pubkey", ID: remoteID, CACerts: []string{ca.File()}}
		c.SendCertReq = strongswan.Yes // certificates go only when asked (send_cert = ifasked)
	}
	keyOf := func(c *strongswan.Cert) []byte {
		if c == nil {
			return nil
		}
		return []byte(c.KeyPEM())
	}
	// The gateway first: the end user initiates to it.
	switch p {
	case mifsecToSW:
		tn.gwSW = swGateway(t, tn.tp, func(cfg *strongswan.Config) {
			if o.gwIKE != nil {
				cfg.Connections[0].Proposals = o.gwIKE
			}
			if o.certs {
				swCerts(cfg, gwCert, gwID, ueID)
			}
		})
	default:
		tn.gwD = mifsecGW(t, tn.tp, keyOf(gwCert), func(c *mifsecv1.Connection) {
			if o.gwIKE != nil {
				c.IkeProposals = o.gwIKE
			}
			if o.gwDPD != nil {
				c.Dpd = o.gwDPD
			}
			if o.certs {
				c.LocalAuth, c.RemoteAuth = certAuth(gwCert)
			}
		}, o.daemonArgs...)
	}
	switch p {
	case swToMifsec:
		tn.ueSW = swUE(t, tn.tp, func(cfg *strongswan.Config) {
			if o.ueIKE != nil {
				cfg.Connections[0].Proposals = o.ueIKE
			}
			if o.certs {
				swCerts(cfg, ueCert, ueID, gwID)
			}
		})
	default:
		tn.ueD = mifsecUEKey(t, tn.tp, keyOf(ueCert), func(c *mifsecv1.Connection) {
			if o.ueIKE != nil {
				c.IkeProposals = o.ueIKE
			}
			if o.ueDPD != nil {
				c.Dpd = o.ueDPD
			}
			if o.certs {
				c.LocalAuth, c.RemoteAuth = certAuth(ueCert)
			}
		}, o.daemonArgs...)
	}
	return tn
}

// gwConn is the gateway's connection name (mifsec) or config (strongSwan).
func (tn *tunnel) gwConn() string {
	if tn.gwD != nil {
		return "ues"
	}
	return "ue"
}

// up establishes the tunnel from the end user and returns its virtual IP.
func (tn *tunnel) up(ctx context.Context) netip.Addr {
	t := tn.t
	t.Helper()
	if tn.ueD != nil {
		if _, err := tn.ueD.Client.Connections.InitiateConnection(ctx, &mifsecv1.InitiateConnectionRequest{Name: "connections/gw"}); err != nil {
			t.Fatalf("initiate: %v", err)
		}
		return vip(t, ikeSA(t, tn.ueD, "gw"))
	}
	if err := tn.ueSW.Vici().Initiate(ctx, "net", "gw"); err != nil {
		t.Fatalf("strongSwan initiate: %v", err)
	}
	sas, err := tn.ueSW.Vici().ListSAs(ctx, "gw")
	if err != nil || len(sas) != 1 || len(sas[0].LocalVIPs) != 1 {
		t.Fatalf("strongSwan end user SAs %+v %v", sas, err)
	}
	return sas[0].LocalVIPs[0]
}

// upRetry is up for lossy paths: the end user initiates again when an
// attempt times out, as an orchestrator would (strongSwan's keyingtries),
// at most tries times; each attempt is a full retransmission schedule.
// (A strongSwan end user whose every IKE_SA_INIT answer within the
// gateway's 30 s half-open time was lost gave up once in CI.)
func (tn *tunnel) upRetry(ctx context.Context, tries int) netip.Addr {
	t := tn.t
	t.Helper()
	if tn.ueD == nil {
		for attempt := 1; ; attempt++ {
			err := tn.ueSW.Vici().Initiate(ctx, "net", "gw")
			if err == nil {
				break
			}
			if attempt == tries || ctx.Err() != nil {
				t.Fatalf("strongSwan initiate (attempt %d of %d): %v", attempt, tries, err)
			}
			t.Logf("strongSwan attempt %d failed under loss (%v); initiating again", attempt, err)
		}
		sas, err := tn.ueSW.Vici().ListSAs(ctx, "gw")
		if err != nil || len(sas) != 1 || len(sas[0].LocalVIPs) != 1 {
			t.Fatalf("strongSwan end user SAs %+v %v", sas, err)
		}
		return sas[0].LocalVIPs[0]
	}
	for attempt := 1; ; attempt++ {
		_, err := tn.ueD.Client.Connections.InitiateConnection(ctx, &mifsecv1.InitiateConnectionRequest{Name: "connections/gw"})
		if err == nil {
			return vip(t, ikeSA(t, tn.ueD, "gw"))
		}
		if attempt == tries || ctx.Err() != nil {
			t.Fatalf("initiate (attempt %d of %d): %v", attempt, tries, err)
		}
		t.Logf("attempt %d timed out under loss (%v); initiating again", attempt, err)
	}
}

// spis are one end's current IKE SA and Child SA SPIs.
type spis struct{ ike, child string }

// end is one side of a tunnel.
type end struct {
	d    *daemon.Daemon
	sw   *strongswan.Charon
	conn string
}

func (tn *tunnel) ue() end { return end{tn.ueD, tn.ueSW, "gw"} }
func (tn *tunnel) gw() end { return end{tn.gwD, tn.gwSW, tn.gwConn()} }

// spis reads the end's SPIs; ok is false while it has not exactly one IKE
// SA with one installed Child SA (for example in the middle of a rekey).
func (e end) spis(ctx context.Context) (s spis, ok bool) {
	if e.d != nil {
		r, err := e.d.Client.SAs.ListIkeSas(ctx, &mifsecv1.ListIkeSasRequest{Parent: "connections/" + e.conn})
		if err != nil || len(r.IkeSas) != 1 || r.IkeSas[0].State != mifsecv1.IkeSaState_IKE_SA_STATE_ESTABLISHED {
			return s, false
		}
		k, err := e.d.Client.SAs.ListChildSas(ctx, &mifsecv1.ListChildSasRequest{Parent: r.IkeSas[0].Name})
		if err != nil || len(k.ChildSas) != 1 || k.ChildSas[0].State != mifsecv1.ChildSaState_CHILD_SA_STATE_INSTALLED {
			return s, false
		}
		return spis{ike: r.IkeSas[0].InitiatorSpi + "/" + r.IkeSas[0].ResponderSpi,
			child: k.ChildSas[0].SpiIn + "/" + k.ChildSas[0].SpiOut}, true
	}
	sas, err := e.sw.Vici().ListSAs(ctx, e.conn)
	if err != nil || len(sas) != 1 || sas[0].State != vici.IKEEstablished || len(sas[0].Children) != 1 {
		return s, false
	}
	c, inst := sas[0].Child("net", vici.ChildInstalled)
	if !inst {
		return s, false
	}
	return spis{ike: fmt.Sprintf("%016x/%016x", sas[0].InitiatorSPI, sas[0].ResponderSPI),
		child: fmt.Sprintf("%08x/%08x", c.SPIIn, c.SPIOut)}, true
}

// waitSPIs polls until the end is settled and changed says so.
func (e end) waitSPIs(t *testing.T, ctx context.Context, what string, changed func(spis) bool) spis {
	t.Helper()
	for {
		if s, ok := e.spis(ctx); ok && changed(s) {
			return s
		}
		select {
		case <-ctx.Done():
			s, ok := e.spis(context.Background())
			t.Fatalf("%s: SPIs now %+v (settled %v)", what, s, ok)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// rekeyChild starts a Child SA rekey on this end.
func (e end) rekeyChild(t *testing.T, ctx context.Context) {
	t.Helper()
	if e.sw != nil {
		// A just-rekeyed CHILD_SA may linger (delete_rekeyed=no): n can be 2.
		if n, err := e.sw.Vici().Rekey(ctx, vici.Rekey{Child: "net"}); err != nil || n < 1 {
			t.Fatalf("vici rekey child: %d %v", n, err)
		}
		return
	}
	sa := ikeSA(t, e.d, e.conn)
	kids := childSAs(t, e.d, sa.Name)
	if len(kids) != 1 {
		t.Fatalf("children %v", kids)
	}
	if _, err := e.d.Client.SAs.RekeyChildSa(ctx, &mifsecv1.RekeyChildSaRequest{Name: kids[0].Name}); err != nil {
		t.Fatalf("RekeyChildSa: %v", err)
	}
}

// rekeyIKE starts an IKE SA rekey on this end.
func (e end) rekeyIKE(t *testing.T, ctx context.Context) {
	t.Helper()
	if e.sw != nil {
		if n, err := e.sw.Vici().Rekey(ctx, vici.Rekey{IKE: e.conn}); err != nil || n < 1 {
			t.Fatalf("vici rekey IKE: %d %v", n, err)
		}
		return
	}
	if _, err := e.d.Client.SAs.RekeyIkeSa(ctx, &mifsecv1.RekeyIkeSaRequest{Name: ikeSA(t, e.d, e.conn).Name}); err != nil {
		t.Fatalf("RekeyIkeSa: %v", err)
	}
}

// counters describes the end's Child SAs with their packet counters, for
// failure messages (the daemons' debug logs have the final counters of
// SAs already deleted, "data plane operation ... delete_sa").
func (e end) counters(ctx context.Context) string {
	var b strings.Builder
	if e.d != nil {
		r, err := e.d.Client.SAs.ListIkeSas(ctx, &mifsecv1.ListIkeSasRequest{Parent: "connections/" + e.conn})
		if err != nil {
			return err.Error()
		}
		for _, sa := range r.IkeSas {
			k, err := e.d.Client.SAs.ListChildSas(ctx, &mifsecv1.ListChildSasRequest{Parent: sa.Name})
			if err != nil {
				return err.Error()
			}
			for _, c := range k.ChildSas {
				fmt.Fprintf(&b, "[%s/%s %v in %d out %d drops_in %d] ", c.SpiIn, c.SpiOut, c.State, c.PacketsIn, c.PacketsOut, c.DropsIn)
			}
		}
		return b.String()
	}
	sas, err := e.sw.Vici().ListSAs(ctx, e.conn)
	if err != nil {
		return err.Error()
	}
	for _, sa := range sas {
		for _, c := range sa.Children {
			fmt.Fprintf(&b, "[%08x/%08x %s in %d out %d] ", c.SPIIn, c.SPIOut, c.State, c.PacketsIn, c.PacketsOut)
		}
	}
	return b.String()
}

// log is what the end logged so far.
func (e end) log() string {
	if e.d != nil {
		return e.d.Log()
	}
	return e.sw.Log()
}

// 2, 3 and 8: PSK and ECDSA certificates, in each pairing: virtual IP
// from the gateway's pool, ping and a short iperf3 run to the server
// behind the gateway. (mifsec → strongSwan with PSK is
// TestMifsecUEStrongSwanGW.)
func TestTunnels(t *testing.T) {
	for _, pr := range pairings {
		for _, certs := range []bool{false, true} {
			if pr.p == mifsecToSW && !certs {
				continue
			}
			name := pr.name + "/psk"
			if certs {
				name = pr.name + "/ecdsa"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				tn := newTunnel(t, pr.p, options{certs: certs})
				ctx := ctxT(t)
				v := tn.up(ctx)
				if !topo.VIPPool.Contains(v) {
					t.Fatalf("virtual IP %s not from the pool %s", v, topo.VIPPool)
				}
				if _, ok := tn.gw().spis(ctx); !ok {
					t.Fatal("the gateway has no established IKE SA with one Child SA")
				}
				if tn.gwD != nil {
					r, err := tn.gwD.Client.Pools.GetPool(ctx, &mifsecv1.GetPoolRequest{Name: "pools/ue"})
					if err != nil || r.Pool.InUse != 1 || r.Pool.Leases[0].Address != v.String() {
						t.Fatalf("gateway pool %v %v", r, err)
					}
				}
				st, err := tn.tp.UE.Ping(ctx, topo.PingOptions{Src: v, Dst: topo.SRV, Count: 20, Rate: 50})
				if err != nil || st.Lost != 0 {
					t.Fatalf("ping through the tunnel: %v %v", st, err)
				}
				res, err := topo.Iperf3(ctx, tn.tp.UE, tn.tp.SRV, topo.IperfOptions{Server: topo.SRV, Bind: v, Duration: time.Second})
				if err != nil || res.ReceivedBps <= 0 {
					t.Fatalf("iperf3: %+v %v", res, err)
				}
				t.Logf("iperf3 %s: %.0f Mbit/s", name, res.ReceivedBps/1e6)
			})
		}
	}
}

// 4: Child SA and IKE SA rekeys started by each side while a 100 packets/s
// ping runs: the SPIs change and no echo is lost.
func TestRekeyUnderTraffic(t *testing.T) {
	for _, pr := range pairings {
		t.Run(pr.name, func(t *testing.T) {
			t.Parallel()
			tn := newTunnel(t, pr.p, options{})
			ctx := ctxT(t)
			v := tn.up(ctx)
			ue, gw := tn.ue(), tn.gw()
			cur := ue.waitSPIs(t, ctx, "established", func(spis) bool { return true })
			ping, err := tn.tp.UE.StartPing(ctx, topo.PingOptions{Src: v, Dst: topo.SRV, Rate: 100})
			if err != nil {
				t.Fatal(err)
			}
			steps := []struct {
				name  string
				by    end
				rekey func(end, *testing.T, context.Context)
				ike   bool
			}{
				{"child by the end user", ue, end.rekeyChild, false},
				{"child by the gateway", gw, end.rekeyChild, false},
				{"IKE by the end user", ue, end.rekeyIKE, true},
				{"IKE by the gateway", gw, end.rekeyIKE, true},
			}
			for _, s := range steps {
				time.Sleep(300 * time.Millisecond)
				old := cur
				s.rekey(s.by, t, ctx)
				cur = ue.waitSPIs(t, ctx, s.name, func(n spis) bool {
					if s.ike {
						return n.ike != old.ike
					}
					return n.child != old.child
				})
				if s.ike && cur.child != old.child {
					t.Errorf("%s: the Child SA changed too (%s → %s)", s.name, old.child, cur.child)
				}
				t.Logf("%s: %+v → %+v", s.name, old, cur)
			}
			time.Sleep(500 * time.Millisecond)
			st := ping.Stop()
			if st.Lost != 0 || st.Received < 100 {
				t.Fatalf("ping across the rekeys: %v\nend user Child SAs: %s\ngateway Child SAs: %s",
					st, ue.counters(ctx), gw.counters(ctx))
			}
			// Both ends agree on the final SAs.
			g := gw.waitSPIs(t, ctx, "gateway settled", func(spis) bool { return true })
			if g.ike != cur.ike {
				t.Fatalf("IKE SPIs differ: end user %s, gateway %s", cur.ike, g.ike)
			}
			in, out, _ := strings.Cut(cur.child, "/")
			if g.child != out+"/"+in {
				t.Fatalf("Child SPIs do not pair: end user %s, gateway %s", cur.child, g.child)
			}
			t.Logf("ping %v", st)
		})
	}
}

// 5: the end user offers first a group the gateway does not accept
// (ECP-256 before Curve25519): the gateway answers INVALID_KE_PAYLOAD
// (RFC 7296 §1.2) and the retry with Curve25519 succeeds.
func TestInvalidKERetry(t *testing.T) {
	for _, pr := range pairings {
		t.Run(pr.name, func(t *testing.T) {
			t.Parallel()
			tn := newTunnel(t, pr.p, options{
				ueIKE: []string{"aes256gcm16-prfsha256-ecp256-x25519"},
				gwIKE: []string{"aes256gcm16-prfsha256-x25519"},
			})
			ctx := ctxT(t)
			tn.up(ctx)
			if tn.ueD != nil {
				if sa := ikeSA(t, tn.ueD, "gw"); !strings.Contains(sa.Proposal, "x25519") {
					t.Fatalf("proposal %q", sa.Proposal)
				}
			} else {
				sas, err := tn.ueSW.Vici().ListSAs(ctx, "gw")
				if err != nil || len(sas) != 1 || sas[0].DHGroup != "CURVE_25519" {
					t.Fatalf("strongSwan SAs %+v %v", sas, err)
				}
				// charon: "peer didn't accept DH group ECP_256, it requested CURVE_25519".
				if !strings.Contains(tn.ueSW.Log(), "it requested CURVE_25519") {
					t.Fatal("strongSwan's log shows no INVALID_KE_PAYLOAD retry")
				}
			}
			// charon: "DH group ECP_256 unacceptable, requesting CURVE_25519".
			if tn.gwSW != nil && !strings.Contains(tn.gwSW.Log(), "requesting CURVE_25519") {
				t.Fatal("strongSwan's log shows no INVALID_KE_PAYLOAD")
			}
		})
	}
}

// 6: DPD. The path is blackholed (IKE and NAT-T dropped both ways); the
// mifsec ends detect the dead peer within the connection's dpd.interval
// plus dpd.timeout, and the IKE SA goes down with DPD_TIMEOUT on
// EventService.Watch.
func TestDPDBlackhole(t *testing.T) {
	const interval, timeout = time.Second, 3 * time.Second
	dpd := &mifsecv1.Dpd{Interval: durpb(interval), Timeout: durpb(timeout)}
	for _, pr := range pairings {
		t.Run(pr.name, func(t *testing.T) {
			t.Parallel()
			tn := newTunnel(t, pr.p, options{ueDPD: dpd, gwDPD: dpd})
			ctx := ctxT(t)
			tn.up(ctx)
			var watchers []*watch
			for _, e := range []end{tn.ue(), tn.gw()} {
				if e.d != nil {
					watchers = append(watchers, startWatch(t, ctx, e.d, e.conn))
				}
			}
			if _, err := tn.tp.UE.Blackhole(ctx, ""); err != nil {
				t.Fatal(err)
			}
			cut := time.Now()
			for _, w := range watchers {
				ev := w.waitDown(t, interval+timeout+3*time.Second)
				took := time.Since(cut)
				if ev.GetIkeSa().GetDownReason() != mifsecv1.DownReason_DOWN_REASON_DPD_TIMEOUT {
					t.Fatalf("%s: down event %v", w.conn, ev)
				}
				if took > interval+timeout+time.Second {
					t.Fatalf("%s: dead peer detected after %v; dpd %v + %v", w.conn, took, interval, timeout)
				}
				t.Logf("%s: DPD_TIMEOUT after %v of blackhole", w.conn, took.Round(time.Millisecond))
			}
		})
	}
}

// 7: IKE_SA_INIT and IKE_AUTH complete under 30 % random loss both ways.
func TestLoss30(t *testing.T) {
	for _, pr := range pairings {
		t.Run(pr.name, func(t *testing.T) {
			t.Parallel()
			// A quicker retransmission schedule than the 4 s default: under
			// 30% loss an IKE_AUTH can need several tries, and they must fit in
			// the responder's 30 s half-open timeout (RFC 7296 §2.1, §2.6).
			tn := newTunnel(t, pr.p, options{daemonArgs: []string{"--ike-retransmit-timeout", "1s", "--ike-retransmit-base", "1.4", "--ike-retransmit-tries", "8"}})
			ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
			defer cancel()
			rule, err := tn.tp.UE.Loss(ctx, "", 30)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			v := tn.upRetry(ctx, 3)
			t.Logf("established under 30%% loss in %v", time.Since(start).Round(time.Millisecond))
			if err := rule.Remove(ctx); err != nil {
				t.Fatal(err)
			}
			if _, ok := tn.gw().spis(ctx); !ok {
				t.Fatal("the gateway has no established IKE SA with one Child SA")
			}
			st, err := tn.tp.UE.Ping(ctx, topo.PingOptions{Src: v, Dst: topo.SRV, Count: 10, Rate: 50})
			if err != nil || st.Lost != 0 {
				t.Fatalf("ping after the loss: %v %v", st, err)
			}
		})
	}
}
