package mif

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestAnalyze(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(seqs ...uint64) []Arrival {
		var out []Arrival
		for i, q := range seqs {
			ts := t0.Add(time.Duration(i) * time.Millisecond)
			out = append(out, Arrival{Seq: q, Sent: ts, Recv: ts})
		}
		return out
	}
	tests := []struct {
		name string
		arr  []Arrival
		sent uint64
		want Stats
	}{
		{"clean", at(1, 2, 3, 4), 4, Stats{Sent: 4, Received: 4, MaxGap: time.Millisecond, GapAfter: 2}},
		{"loss", at(1, 2, 5), 6, Stats{Sent: 6, Received: 3, Lost: 3, MaxLossRun: 2, MaxGap: time.Millisecond, GapAfter: 2}},
		{"duplicate", at(1, 2, 2, 3), 3, Stats{Sent: 3, Received: 3, Duplicates: 1, MaxGap: 2 * time.Millisecond, GapAfter: 3}},
		{"reorder", at(1, 4, 2, 3, 5), 5, Stats{Sent: 5, Received: 5, Reordered: 2, MaxReorder: 2, MaxGap: time.Millisecond, GapAfter: 4}},
		{"nothing", nil, 3, Stats{Sent: 3, Lost: 3, MaxLossRun: 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Analyze(tc.arr, tc.sent); got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
	if got := Missing(at(1, 2, 5), 6); !slices.Equal(got, []uint64{3, 4, 6}) {
		t.Fatalf("missing %v", got)
	}
	gap := []Arrival{{Seq: 1, Recv: t0}, {Seq: 2, Recv: t0.Add(time.Millisecond)}, {Seq: 3, Recv: t0.Add(50 * time.Millisecond)}}
	if s := Analyze(gap, 3); s.MaxGap != 49*time.Millisecond || s.GapAfter != 3 {
		t.Fatalf("gap: %+v", s)
	}
	arr := []Arrival{{Seq: 1, Sent: t0}, {Seq: 2, Sent: t0.Add(2 * time.Millisecond)}, {Seq: 3, Sent: t0.Add(time.Millisecond)}}
	if a, ok := Resumed(arr, t0.Add(time.Millisecond)); !ok || a.Seq != 2 {
		t.Fatalf("resumed: %+v %v", a, ok)
	}
	if _, ok := Resumed(arr, t0.Add(time.Second)); ok {
		t.Fatal("resumed after the last send")
	}
}

// A flow over loopback: the rate holds and nothing is lost.
func TestFlowLoopback(t *testing.T) {
	r, err := Listen(nil, netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		id   uint32
		rate int
		size int
	}{{1, 1000, 0}, {2, 200, 1200}} {
		s, err := StartFlow(ctx, nil, FlowOptions{Dst: r.Addr(), ID: tc.id, Rate: tc.rate, Size: tc.size})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		time.Sleep(300 * time.Millisecond)
		sent, errs, first := s.Stop()
		took := time.Since(start)
		if a, b := s.SentAt(1), s.SentAt(sent); a.Before(start) || b.Before(a) || !s.SentAt(sent+1).IsZero() {
			t.Fatalf("send times %v .. %v (start %v)", a, b, start)
		}
		r.Drain(ctx, tc.id, 50*time.Millisecond)
		st := r.Stats(tc.id, sent)
		if errs != 0 || st.Lost != 0 || st.Duplicates != 0 {
			t.Fatalf("flow %d: %v (send errors %d, %v)", tc.id, st, errs, first)
		}
		// Never faster than the rate; slower only when the machine is
		// overloaded (the sender catches up when it runs again).
		want := float64(tc.rate) * took.Seconds()
		if sent == 0 || float64(sent) > 1.05*want+1 {
			t.Fatalf("flow %d: sent %d in %v, want about %.0f", tc.id, sent, took, want)
		}
	}
	if _, err := StartFlow(ctx, nil, FlowOptions{Dst: r.Addr(), Size: 8}); err == nil {
		t.Fatal("a flow shorter than its header was accepted")
	}
}
