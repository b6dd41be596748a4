package engine

import (
	"slices"
	"testing"
	"time"
)

// TestSteeringUpdateLatency: UpdateSteeringRule moves a flow to the other
// path of a multipath connection, over and over (in-memory wire, no
// delay): each call returns with the flow on the new path. The log gives
// the calls' p50 and worst (probe round trip, commit, switch).
func TestSteeringUpdateLatency(t *testing.T) {
	m := newMPairRT(t, true, time.Second)
	m.establish(t)
	ctx := tctx(t)
	targets := func(first, second string) []SteeringTarget {
		return []SteeringTarget{{Interface: first}, {Interface: second}}
	}
	if _, err := m.ue.CreateSteeringRule(ctx, "r", SteeringSpec{Mode: SteerActiveStandby, ProbeInterval: MaxProbeInterval,
		Targets: targets("wlan", "ran")}); err != nil {
		t.Fatal(err)
	}
	ifs := [2]string{"ran", "wlan"}
	paths := map[string]string{"ran": ranPath, "wlan": wlanPath}
	var calls, moves []time.Duration
	for i := range 20 {
		to, other := ifs[i%2], ifs[(i+1)%2]
		_, before := m.ueDP.send(flowA)
		// The flow's packets, as a data plane would pick their SA.
		moved := make(chan time.Time, 1)
		stop := make(chan struct{})
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, tag := m.ueDP.send(flowA); tag != before {
					moved <- time.Now()
					return
				}
				time.Sleep(20 * time.Microsecond)
			}
		}()
		t0 := time.Now()
		if _, err := m.ue.UpdateSteeringRule(ctx, "r", SteeringSpec{Targets: targets(to, other)}, []string{"targets"}); err != nil {
			t.Fatal(err)
		}
		calls = append(calls, time.Since(t0))
		select {
		case at := <-moved:
			moves = append(moves, at.Sub(t0))
		case <-time.After(time.Second):
			t.Fatalf("update %d: the flow did not move", i)
		}
		close(stop)
		if got := m.pathOfFlow(t, flowA); got != paths[to] {
			t.Fatalf("update %d: flow on %s, want %s", i, got, paths[to])
		}
	}
	slices.Sort(calls)
	slices.Sort(moves)
	t.Logf("UpdateSteeringRule over %d calls: flow moved p50 %v, worst %v; call p50 %v, worst %v", len(calls),
		moves[len(moves)/2], moves[len(moves)-1], calls[len(calls)/2], calls[len(calls)-1])
}
