package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
	"github.com/mifsec/mifsec/test/daemon"
	"github.com/mifsec/mifsec/test/mif"
	"github.com/mifsec/mifsec/test/strongswan"
	"github.com/mifsec/mifsec/test/strongswan/vici"
	"github.com/mifsec/mifsec/test/topo"
)

// The mobility benchmarks (bench/mobility.sh runs them, 20 rounds each,
// docs/benchmarks-mobility.md holds the figures). All systems run in the
// topology of test/topo (end user with a RAN and a WLAN link to the
// gateway, server behind it) with a 1,000 datagrams/s flow from the end
// user's inner address to the server. Two sniffers on the end user's links
// timestamp every ESP packet each sends (kernel time), so "first packet on
// the new path" is read off the wire, the same way for every system.
//
//	outage     the link carrying the flow goes down (netlink, from this
//	           process: the instant the kernel raises the event); outage =
//	           first ESP on the other link, and first delivery of a datagram
//	           sent after the loss, minus that instant. Then the link comes
//	           back and the flow settles before the next round.
//	migrate    MigrateIkeSa to the other interface under the flow, both
//	           links up: datagrams lost per move, time to the first ESP on
//	           the target link.
//	steer      UpdateSteeringRule swaps the targets of the flow's rule
//	           (multipath): time from the call to the first ESP on the new
//	           link, datagrams lost.
//
// Systems: mifsec-mobike (mifsec↔mifsec, one IKE SA, RFC 4555 moves),
// mifsec-multipath (mifsec↔mifsec, one IKE SA per path, the rule re-pins
// the flow), mifsec-sw-gw (mifsec end user, strongSwan gateway) and
// strongswan (strongSwan↔strongSwan, MOBIKE, kernel-libipsec).
func BenchmarkMobility(b *testing.B) {
	for _, sys := range []struct {
		name  string
		setup func(*testing.B) *system
	}{
		{"mifsec-mobike", setupMifsecMOBIKE},
		{"mifsec-multipath", setupMifsecMultipath},
		{"mifsec-sw-gw", setupMifsecSwGW},
		{"strongswan", setupStrongSwan},
	} {
		b.Run(sys.name, func(b *testing.B) {
			s := sys.setup(b)
			b.Run("outage", s.benchOutage)
			if s.migrate != nil {
				b.Run("migrate", s.benchMigrate)
			}
			if s.steer != nil {
				b.Run("steer", s.benchSteer)
			}
		})
	}
}

const (
	psk    = "mobility-bench-psk-0123456789"
	gwID   = "gw.example.net"
	ueID   = "ue1@example.net"
	ikeP   = "aes256gcm16-prfsha256-x25519"
	espP   = "aes256gcm16"
	rate   = 1000
	giveUp = 20 * time.Second // a round fails when the flow is not back by then
)

var links = []string{topo.RAN, topo.WLAN}

func other(link string) string {
	if link == topo.RAN {
		return topo.WLAN
	}
	return topo.RAN
}

// iface is the mifsec interface id of a link.
func iface(link string) string { return strings.TrimSuffix(link, "0") }

// system is one pair of peers with a tunnel up and what it can be asked.
type system struct {
	tp      *topo.Topology
	vip     netip.Addr
	sniff   map[string]*sniffer
	port    uint16
	id      uint32
	migrate func(ctx context.Context, to string) error // MigrateIkeSa to link; nil: not offered
	steer   func(ctx context.Context, to string) error // point the flow's rule at link; nil: no rules
}

func ctxB(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	b.Cleanup(cancel)
	return ctx
}

func newSystem(b *testing.B, tp *topo.Topology, vip netip.Addr) *system {
	s := &system{tp: tp, vip: vip, sniff: map[string]*sniffer{}, port: 7400}
	for _, l := range links {
		sn, err := sniff(tp.UE, l)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(sn.Close)
		s.sniff[l] = sn
	}
	return s
}

// flow starts a fresh 1,000/s flow to the server (its own port and id).
func (s *system) flow(b *testing.B, ctx context.Context) (*mif.Sender, *mif.Receiver) {
	s.port++
	s.id++
	r, err := mif.Listen(s.tp.SRV, netip.AddrPortFrom(topo.SRV, s.port))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	snd, err := mif.StartFlow(ctx, s.tp.UE, mif.FlowOptions{Src: netip.AddrPortFrom(s.vip, 0), Dst: r.Addr(), ID: s.id, Rate: rate})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { snd.Stop() })
	return snd, r
}

// active waits until one link carries the flow steadily (at least 80% of
// its packets over 200 ms, and the same link twice in a row) and
// returns it.
func (s *system) active(b *testing.B, snd *mif.Sender, r *mif.Receiver) string {
	deadline := time.Now().Add(giveUp)
	prev, last := "", ""
	for time.Now().Before(deadline) {
		start := time.Now()
		n0 := len(r.Arrivals(s.id))
		time.Sleep(200 * time.Millisecond)
		got := len(r.Arrivals(s.id)) - n0
		cur := ""
		for _, l := range links {
			if n := s.sniff[l].Since(start); n >= rate/5*8/10 && got >= rate/5*8/10 {
				cur = l
			}
		}
		if cur != "" && cur == prev {
			return cur
		}
		prev = cur
		last = fmt.Sprintf("%d datagrams delivered, ESP on %s %d, on %s %d in 200 ms (sender: %d sent)", got,
			links[0], s.sniff[links[0]].Since(start), links[1], s.sniff[links[1]].Since(start), snd.Sent())
	}
	b.Fatalf("the flow did not settle on one link within %v: %s", giveUp, last)
	return ""
}

func setLink(ns *topo.Netns, link string, up bool) error {
	return ns.Do(func() error {
		l, err := netlink.LinkByName(link)
		if err != nil {
			return err
		}
		if up {
			return netlink.LinkSetUp(l)
		}
		return netlink.LinkSetDown(l)
	})
}

// round is one measured move.
type round struct {
	wire, deliver time.Duration // to the first ESP on the new link, to the first delivery
	call          time.Duration // the API call's own duration (migrate, steer)
	lo, hi        uint64        // sequence numbers sent during the round
}

func (s *system) benchOutage(b *testing.B) {
	ctx := ctxB(b)
	snd, r := s.flow(b, ctx)
	rounds := make([]round, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		act := s.active(b, snd, r)
		rd := round{lo: snd.Sent()}
		b.StartTimer()
		t0 := time.Now()
		if err := setLink(s.tp.UE, act, false); err != nil {
			b.Fatal(err)
		}
		for {
			if a, ok := mif.Resumed(r.Arrivals(s.id), t0); ok {
				rd.deliver = a.Recv.Sub(t0)
				break
			}
			if time.Since(t0) > giveUp {
				b.Fatalf("round %d: no datagram sent after the loss of %s arrived within %v", i, act, giveUp)
			}
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		rd.wire = s.firstOn(b, other(act), t0) // the sniffer may lag the receiver
		rd.hi = snd.Sent()
		rounds = append(rounds, rd)
		if err := s.tp.UE.LinkUp(ctx, act); err != nil {
			b.Fatal(err)
		}
		time.Sleep(time.Second) // let the link's return settle (paths, MOBIKE re-evaluation)
	}
	s.report(b, "outage", snd, r, rounds)
}

func (s *system) benchMigrate(b *testing.B) {
	ctx := ctxB(b)
	snd, r := s.flow(b, ctx)
	rounds := make([]round, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		act := s.active(b, snd, r)
		rd := round{lo: snd.Sent()}
		b.StartTimer()
		t0 := time.Now()
		if err := s.migrate(ctx, other(act)); err != nil {
			b.Fatalf("round %d: migrate to %s: %v", i, other(act), err)
		}
		rd.call = time.Since(t0)
		b.StopTimer()
		rd.wire = s.firstOn(b, other(act), t0)
		time.Sleep(300 * time.Millisecond)
		rd.hi = snd.Sent()
		rounds = append(rounds, rd)
	}
	s.report(b, "migrate", snd, r, rounds)
}

func (s *system) benchSteer(b *testing.B) {
	ctx := ctxB(b)
	snd, r := s.flow(b, ctx)
	rounds := make([]round, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		act := s.active(b, snd, r)
		rd := round{lo: snd.Sent()}
		b.StartTimer()
		t0 := time.Now()
		if err := s.steer(ctx, other(act)); err != nil {
			b.Fatalf("round %d: steer to %s: %v", i, other(act), err)
		}
		rd.call = time.Since(t0)
		b.StopTimer()
		rd.wire = s.firstOn(b, other(act), t0)
		time.Sleep(300 * time.Millisecond)
		rd.hi = snd.Sent()
		rounds = append(rounds, rd)
	}
	s.report(b, "steer", snd, r, rounds)
}

// firstOn waits for the first ESP on link at or after t0.
func (s *system) firstOn(b *testing.B, link string, t0 time.Time) time.Duration {
	for time.Since(t0) < giveUp {
		if at, ok := s.sniff[link].First(t0); ok {
			return at.Sub(t0)
		}
		time.Sleep(time.Millisecond)
	}
	b.Fatalf("no ESP on %s within %v", link, giveUp)
	return 0
}

// report stops the flow, counts each round's losses and reports the
// percentiles as metrics (and every round in the log).
func (s *system) report(b *testing.B, what string, snd *mif.Sender, r *mif.Receiver, rounds []round) {
	sent, _, _ := snd.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r.Drain(ctx, s.id, 200*time.Millisecond)
	arr := r.Arrivals(s.id)
	all := mif.Analyze(arr, sent)
	var wire, deliver, call []time.Duration
	var lost []float64
	var log strings.Builder
	for i, rd := range rounds {
		st := segment(arr, rd.lo, rd.hi)
		lost = append(lost, float64(st.Lost))
		wire, deliver, call = append(wire, rd.wire), append(deliver, rd.deliver), append(call, rd.call)
		fmt.Fprintf(&log, "  %s round %2d: first ESP on the new link %8v  first delivery %8v  call %8v  lost %4d  dup %d  reordered %d\n",
			what, i+1, rd.wire.Round(10*time.Microsecond), rd.deliver.Round(10*time.Microsecond), rd.call.Round(10*time.Microsecond),
			st.Lost, st.Duplicates, st.Reordered)
	}
	b.Logf("%d rounds; whole flow: %v\n%s", len(rounds), all, log.String())
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(pct(wire, 50)), "wire-p50-ms")
	b.ReportMetric(ms(pct(wire, 99)), "wire-p99-ms")
	if what == "outage" {
		b.ReportMetric(ms(pct(deliver, 50)), "deliver-p50-ms")
		b.ReportMetric(ms(pct(deliver, 99)), "deliver-p99-ms")
	} else {
		b.ReportMetric(ms(pct(call, 50)), "call-p50-ms")
	}
	var tot float64
	for _, l := range lost {
		tot += l
	}
	b.ReportMetric(tot/float64(max(len(lost), 1)), "lost/round")
	b.ReportMetric(float64(all.Duplicates), "dup")
	b.ReportMetric(float64(all.MaxReorder), "max-reorder")
	b.ReportMetric(0, "ns/op") // the rounds' wall time says nothing
}

// pct is the p-th percentile (nearest rank) of ds.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	k := (p*len(s) + 99) / 100
	return s[max(k, 1)-1]
}

// Setups.

func mifsecNode(b *testing.B, ns *topo.Netns) *daemon.Daemon {
	d := daemon.Start(b, ns, "--dataplane", "userspace", "--log-level", "info")
	ctx := ctxB(b)
	for _, i := range []struct {
		link string
		at   mifsecv1.AccessType
		prio uint32
	}{{topo.RAN, mifsecv1.AccessType_ACCESS_TYPE_RAN, 10}, {topo.WLAN, mifsecv1.AccessType_ACCESS_TYPE_WLAN, 20}} {
		if _, err := d.Client.Interfaces.CreateInterface(ctx, &mifsecv1.CreateInterfaceRequest{InterfaceId: iface(i.link),
			Interface: &mifsecv1.Interface{Link: i.link, AccessType: i.at, Priority: i.prio}}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := d.Client.Secrets.CreateSecret(ctx, &mifsecv1.CreateSecretRequest{SecretId: "psk",
		Secret: &mifsecv1.Secret{Type: mifsecv1.SecretType_SECRET_TYPE_PSK, Data: &mifsecv1.Secret_Text{Text: psk}}}); err != nil {
		b.Fatal(err)
	}
	return d
}

func pskAuth() *mifsecv1.Authentication {
	return &mifsecv1.Authentication{Method: &mifsecv1.Authentication_PskSecret{PskSecret: "secrets/psk"}}
}

func mifsecGW(b *testing.B, tp *topo.Topology) {
	d := mifsecNode(b, tp.GW)
	ctx := ctxB(b)
	if _, err := d.Client.Pools.CreatePool(ctx, &mifsecv1.CreatePoolRequest{PoolId: "ue",
		Pool: &mifsecv1.Pool{Ranges: []string{topo.VIPPool.String()}}}); err != nil {
		b.Fatal(err)
	}
	mobike := true
	if _, err := d.Client.Connections.CreateConnection(ctx, &mifsecv1.CreateConnectionRequest{ConnectionId: "ues",
		Connection: &mifsecv1.Connection{
			Role: mifsecv1.Role_ROLE_RESPONDER, LocalId: gwID, RemoteId: ueID, LocalAuth: pskAuth(), RemoteAuth: pskAuth(),
			IkeProposals: []string{ikeP}, EspProposals: []string{espP}, Pool: "pools/ue", Mobike: &mobike,
			Dpd:      &mifsecv1.Dpd{Interval: durationpb.New(0)},
			Children: []*mifsecv1.Child{{Name: "net", LocalTs: []string{topo.LANNet.String()}}},
		}}); err != nil {
		b.Fatal(err)
	}
}

// mifsecUE starts the end user's connection "gw" over both links to
// remotes, waits for its IKE SAs and returns the daemon and inner address.
func mifsecUE(b *testing.B, tp *topo.Topology, multipath bool, remotes ...netip.Addr) (*daemon.Daemon, netip.Addr) {
	d := mifsecNode(b, tp.UE)
	ctx := ctxB(b)
	mobike := true
	var ra []string
	for _, a := range remotes {
		ra = append(ra, a.String())
	}
	if _, err := d.Client.Connections.CreateConnection(ctx, &mifsecv1.CreateConnectionRequest{ConnectionId: "gw",
		Connection: &mifsecv1.Connection{
			Role: mifsecv1.Role_ROLE_INITIATOR, LocalId: ueID, RemoteId: "@" + gwID, LocalAuth: pskAuth(), RemoteAuth: pskAuth(),
			IkeProposals: []string{ikeP}, EspProposals: []string{espP}, RemoteAddresses: ra,
			LocalInterfaces: []string{"interfaces/ran", "interfaces/wlan"}, RequestVirtualIp4: true, Mobike: &mobike,
			Multipath: multipath, Dpd: &mifsecv1.Dpd{Interval: durationpb.New(0)},
			Children: []*mifsecv1.Child{{Name: "net", RemoteTs: []string{topo.LANNet.String()}}},
		}}); err != nil {
		b.Fatal(err)
	}
	if _, err := d.Client.Connections.InitiateConnection(ctx, &mifsecv1.InitiateConnectionRequest{Name: "connections/gw"}); err != nil {
		b.Fatalf("initiate: %v", err)
	}
	want := 1
	if multipath {
		want = 2
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := d.Client.SAs.ListIkeSas(ctx, &mifsecv1.ListIkeSasRequest{Parent: "connections/gw"})
		if err == nil && len(r.IkeSas) == want && len(r.IkeSas[0].VirtualIps) == 1 {
			return d, netip.MustParseAddr(r.IkeSas[0].VirtualIps[0])
		}
		if time.Now().After(deadline) {
			b.Fatalf("IKE SAs of the end user: %v %v", r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func migrateFunc(d *daemon.Daemon) func(context.Context, string) error {
	return func(ctx context.Context, to string) error {
		r, err := d.Client.SAs.ListIkeSas(ctx, &mifsecv1.ListIkeSasRequest{Parent: "connections/gw"})
		if err != nil {
			return err
		}
		if len(r.IkeSas) != 1 {
			return fmt.Errorf("%d IKE SAs", len(r.IkeSas))
		}
		_, err = d.Client.SAs.MigrateIkeSa(ctx, &mifsecv1.MigrateIkeSaRequest{Name: r.IkeSas[0].Name,
			Target: &mifsecv1.MigrateIkeSaRequest_Interface{Interface: "interfaces/" + iface(to)}})
		return err
	}
}

func setupMifsecMOBIKE(b *testing.B) *system {
	tp := topo.Build(b)
	mifsecGW(b, tp)
	ue, vip := mifsecUE(b, tp, false, topo.GWWLAN)
	s := newSystem(b, tp, vip)
	s.migrate = migrateFunc(ue)
	return s
}

func setupMifsecMultipath(b *testing.B) *system {
	tp := topo.Build(b)
	mifsecGW(b, tp)
	ue, vip := mifsecUE(b, tp, true, topo.GWWLAN, topo.GWRAN)
	steering := mifsecv1.NewSteeringServiceClient(ue.Client.Conn())
	targets := func(first string) []*mifsecv1.SteeringTarget {
		return []*mifsecv1.SteeringTarget{
			{Target: &mifsecv1.SteeringTarget_Interface{Interface: "interfaces/" + iface(first)}},
			{Target: &mifsecv1.SteeringTarget_Interface{Interface: "interfaces/" + iface(other(first))}}}
	}
	// One rule for every UDP flow to the server: WLAN first, RAN standby.
	ctx := ctxB(b)
	if _, err := steering.CreateSteeringRule(ctx, &mifsecv1.CreateSteeringRuleRequest{SteeringRuleId: "bench",
		SteeringRule: &mifsecv1.SteeringRule{
			Match:   &mifsecv1.FlowMatch{Protocol: 17, DestinationPrefixes: []string{topo.SRV.String() + "/32"}},
			Mode:    mifsecv1.SteeringMode_STEERING_MODE_ACTIVE_STANDBY,
			Targets: targets(topo.WLAN), ProbeInterval: durationpb.New(100 * time.Millisecond),
		}}); err != nil {
		b.Fatalf("CreateSteeringRule: %v", err)
	}
	s := newSystem(b, tp, vip)
	s.steer = func(ctx context.Context, to string) error {
		_, err := steering.UpdateSteeringRule(ctx, &mifsecv1.UpdateSteeringRuleRequest{
			SteeringRule: &mifsecv1.SteeringRule{Name: "steeringRules/bench", Targets: targets(to)},
			UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"targets"}}})
		return err
	}
	return s
}

func swGatewayConfig() strongswan.Config {
	return strongswan.Config{
		Name:              "gw",
		RetransmitTimeout: time.Second, RetransmitTries: 3,
		Connections: []strongswan.Connection{{
			Name: "ue", LocalAddrs: []string{topo.GWRAN.String(), topo.GWWLAN.String()},
			Proposals: []string{ikeP}, Pools: []string{"ue_pool"}, Unique: "never", Mobike: strongswan.Yes,
			Local:  strongswan.Auth{Auth: "psk", ID: gwID},
			Remote: strongswan.Auth{Auth: "psk", ID: ueID},
			Children: []strongswan.Child{{Name: "net", LocalTS: []string{topo.LANNet.String()},
				ESPProposals: []string{espP}}},
		}},
		Pools:   []strongswan.Pool{{Name: "ue_pool", Addrs: topo.VIPPool.String()}},
		Secrets: []strongswan.PSK{{IDs: []string{gwID, ueID}, Secret: vici.Secret(psk)}},
	}
}

func setupMifsecSwGW(b *testing.B) *system {
	tp := topo.Build(b)
	strongswan.Start(b, tp.GW, swGatewayConfig())
	ue, vip := mifsecUE(b, tp, false, topo.GWWLAN)
	s := newSystem(b, tp, vip)
	s.migrate = migrateFunc(ue)
	return s
}

func setupStrongSwan(b *testing.B) *system {
	tp := topo.Build(b)
	strongswan.Start(b, tp.GW, swGatewayConfig())
	ue := strongswan.Start(b, tp.UE, strongswan.Config{
		Name:              "ue",
		RetransmitTimeout: time.Second, RetransmitTries: 6,
		Connections: []strongswan.Connection{{
			Name: "gw", RemoteAddrs: []string{topo.GWWLAN.String()},
			Proposals: []string{ikeP}, VIPs: []string{"0.0.0.0"}, Mobike: strongswan.Yes,
			Local:  strongswan.Auth{Auth: "psk", ID: ueID},
			Remote: strongswan.Auth{Auth: "psk", ID: gwID},
			Children: []strongswan.Child{{Name: "net", RemoteTS: []string{topo.LANNet.String()},
				ESPProposals: []string{espP}, StartAction: "none"}},
		}},
		Secrets: []strongswan.PSK{{IDs: []string{gwID, ueID}, Secret: vici.Secret(psk)}},
	})
	ctx := ctxB(b)
	if err := ue.Vici().Initiate(ctx, "net", "gw"); err != nil {
		b.Fatalf("strongSwan initiate: %v", err)
	}
	sas, err := ue.Vici().ListSAs(ctx, "gw")
	if err != nil || len(sas) != 1 || len(sas[0].LocalVIPs) != 1 {
		b.Fatalf("strongSwan end user SAs %+v %v", sas, err)
	}
	return newSystem(b, tp, sas[0].LocalVIPs[0])
}
