package interop

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
	"github.com/mifsec/mifsec/test/daemon"
	"github.com/mifsec/mifsec/test/topo"
)

// cpuTicks is utime+stime of the mifsecd in ns, in clock ticks (/proc).
func cpuTicks(b testing.TB, ns *topo.Netns) int64 {
	pids, err := ns.Pids(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	for _, pid := range pids {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(comm)) != "mifsecd" {
			continue
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			b.Fatal(err)
		}
		// Fields after the command name (which may hold spaces).
		f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+2:]))
		var u, s int64
		fmt.Sscan(f[11], &u)
		fmt.Sscan(f[12], &s)
		return u + s
	}
	b.Fatalf("no mifsecd in %s", ns)
	return 0
}

// clockTick is USER_HZ on Linux.
const clockTick = 10 * time.Millisecond

// BenchmarkMifsecHandshake measures full IKE SA + first Child SA setups
// (IKE_SA_INIT, IKE_AUTH with PSK, x25519, virtual IP, NAT-T) between two
// mifsecd (userspace data plane) in the issue topology, driven over the
// gRPC API like strongSwan's baseline over vici (test/strongswan
// BenchmarkHandshake): each round is InitiateConnection, then
// TerminateConnection and waiting for the IKE SA to be gone. conc
// connections (own identities) run rounds in parallel. Metrics:
// setups/s over the whole loop (teardown included), ms/setup (initiate
// latency) and CPU ms per round of each daemon (teardown included).
// Run through bench/handshake.sh.
func BenchmarkMifsecHandshake(b *testing.B) {
	for _, conc := range []int{1, 16} {
		b.Run(fmt.Sprintf("conc=%d", conc), func(b *testing.B) {
			tp := topo.Build(b)
			gw := mifsecGW(b, tp, nil, func(c *mifsecv1.Connection) { c.RemoteId = "%any" })
			ue := mifsecNode(b, tp.UE, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			defer cancel()
			for i := range conc {
				conn := &mifsecv1.Connection{
					Role: mifsecv1.Role_ROLE_INITIATOR, LocalId: fmt.Sprintf("ue%d@example.net", i), RemoteId: "@" + gwID,
					LocalAuth:    &mifsecv1.Authentication{Method: &mifsecv1.Authentication_PskSecret{PskSecret: "secrets/psk"}},
					RemoteAuth:   &mifsecv1.Authentication{Method: &mifsecv1.Authentication_PskSecret{PskSecret: "secrets/psk"}},
					IkeProposals: []string{ikeP}, EspProposals: []string{espP},
					RemoteAddresses: []string{topo.GWRAN.String()}, LocalInterfaces: []string{"interfaces/ran"},
					RequestVirtualIp4: true, Dpd: &mifsecv1.Dpd{Interval: durpb(0)},
					Children: []*mifsecv1.Child{{Name: "net", RemoteTs: []string{topo.LANNet.String()}}},
				}
				if _, err := ue.Client.Connections.CreateConnection(ctx, &mifsecv1.CreateConnectionRequest{
					ConnectionId: fmt.Sprintf("gw%d", i), Connection: conn}); err != nil {
					b.Fatal(err)
				}
			}
			// One warm-up round per connection (TUN routes, first leases).
			for i := range conc {
				if err := round(ctx, ue, fmt.Sprintf("gw%d", i), nil); err != nil {
					b.Fatal(err)
				}
			}
			ue0, gw0 := cpuTicks(b, tp.UE), cpuTicks(b, tp.GW)
			var (
				mu      sync.Mutex
				latency time.Duration
				first   error
				wg      sync.WaitGroup
			)
			b.ResetTimer()
			start := time.Now()
			for w := range conc {
				n := b.N / conc
				if w < b.N%conc {
					n++
				}
				wg.Add(1)
				go func(conn string, n int) {
					defer wg.Done()
					var lat time.Duration
					for range n {
						if err := round(ctx, ue, conn, &lat); err != nil {
							mu.Lock()
							first = err
							mu.Unlock()
							return
						}
					}
					mu.Lock()
					latency += lat
					mu.Unlock()
				}(fmt.Sprintf("gw%d", w), n)
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if first != nil {
				b.Fatalf("%v\nue log:\n%s\ngw log:\n%s", first, ue.Log(), gw.Log())
			}
			ue1, gw1 := cpuTicks(b, tp.UE), cpuTicks(b, tp.GW)
			n := float64(b.N)
			b.ReportMetric(n/elapsed.Seconds(), "setups/s")
			b.ReportMetric(float64(latency.Microseconds())/n/1000, "ms/setup")
			b.ReportMetric(float64(time.Duration(ue1-ue0)*clockTick)/float64(time.Millisecond)/n, "ue-cpu-ms/round")
			b.ReportMetric(float64(time.Duration(gw1-gw0)*clockTick)/float64(time.Millisecond)/n, "gw-cpu-ms/round")
		})
	}
}

// round establishes conn, tears it down and waits until its IKE SA is
// gone; lat, when not nil, accumulates the initiate latency.
func round(ctx context.Context, d *daemon.Daemon, conn string, lat *time.Duration) error {
	t0 := time.Now()
	if _, err := d.Client.Connections.InitiateConnection(ctx, &mifsecv1.InitiateConnectionRequest{Name: "connections/" + conn}); err != nil {
		return fmt.Errorf("initiate %s: %w", conn, err)
	}
	if lat != nil {
		*lat += time.Since(t0)
	}
	if _, err := d.Client.Connections.TerminateConnection(ctx, &mifsecv1.TerminateConnectionRequest{Name: "connections/" + conn}); err != nil {
		return fmt.Errorf("terminate %s: %w", conn, err)
	}
	for {
		r, err := d.Client.SAs.ListIkeSas(ctx, &mifsecv1.ListIkeSasRequest{Parent: "connections/" + conn})
		if err != nil {
			return err
		}
		if len(r.IkeSas) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}
