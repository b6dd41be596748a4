package strongswan

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mifsec/mifsec/test/strongswan/vici"
	"github.com/mifsec/mifsec/test/topo"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// BenchmarkHandshake measures a full IKE_SA + CHILD_SA setup (IKE_SA_INIT
// and IKE_AUTH with PSK, virtual IP, NAT-T) between two strongSwans, driven
// over vici, and the teardown: the baseline mifsec's handshake benchmark
// compares against. Run it alone (bench/handshake.sh): both charons share
// the machine's cores with the benchmark.
func BenchmarkHandshake(b *testing.B) {
	tp := topo.Build(b)
	Start(b, tp.GW, gwConfig())
	ue := Start(b, tp.UE, ueConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ev, err := ue.Subscribe(ctx, vici.EventIKEUpDown)
	if err != nil {
		b.Fatal(err)
	}
	var setup time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := ue.Vici().Initiate(ctx, "net", "gw"); err != nil {
			b.Fatalf("initiate %d: %v", i, err)
		}
		setup += time.Since(start)
		if err := ue.Vici().Terminate(ctx, "gw"); err != nil {
			b.Fatalf("terminate %d: %v", i, err)
		}
		// Wait for the down event so the next round starts from nothing.
		if _, err := ev.Wait(ctx, func(e vici.Event) bool { up, _, _ := e.UpDown(); return !up }); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(setup.Microseconds())/float64(b.N)/1000, "ms/setup")
}
