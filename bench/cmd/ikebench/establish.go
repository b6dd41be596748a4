package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mifsec/mifsec/engine"
)

// sample is what /proc says of both processes at one moment.
type sample struct {
	cpuSelf, cpuPeer time.Duration
	rssSelf, rssPeer int64
}

func take(peer int) (sample, error) {
	var s sample
	var err error
	if s.cpuSelf, err = cpuTime(os.Getpid()); err != nil {
		return s, err
	}
	if s.rssSelf, err = rssKiB(os.Getpid()); err != nil {
		return s, err
	}
	if peer != 0 {
		if s.cpuPeer, err = cpuTime(peer); err != nil {
			return s, err
		}
		if s.rssPeer, err = rssKiB(peer); err != nil {
			return s, err
		}
	}
	return s, nil
}

// establish brings up connections c1..cN with o.conc concurrent
// InitiateConnection calls and prints rate, latency, CPU and memory.
func establish(ctx context.Context, o options, e *engine.Engine, s *stack) error {
	// Let both engines settle (link monitor, first allocations).
	time.Sleep(500 * time.Millisecond)
	peerHeap0, _ := readPeerHeap(o.peerPID, o.stats)
	heap0, _ := heapNow()
	s0, err := take(o.peerPID)
	if err != nil {
		return err
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer f.Close()
	}
	var (
		next  atomic.Int64
		mu    sync.Mutex
		done  []time.Duration // completion times since start
		lat   []time.Duration
		fails int
		first error
		wg    sync.WaitGroup
	)
	start := time.Now()
	for range o.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(o.n) {
					return
				}
				t0 := time.Now()
				_, err := e.InitiateConnection(ctx, fmt.Sprintf("c%d", i), "")
				t1 := time.Now()
				mu.Lock()
				if err != nil {
					fails++
					if first == nil {
						first = err
					}
				} else {
					done = append(done, t1.Sub(start))
					lat = append(lat, t1.Sub(t0))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	s1, err := take(o.peerPID)
	if err != nil {
		return err
	}
	if o.cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	if first != nil {
		fmt.Fprintf(os.Stderr, "ikebench: %d of %d failed, first: %v\n", fails, o.n, first)
	}
	time.Sleep(o.settle)
	s2, err := take(o.peerPID)
	if err != nil {
		return err
	}
	heap1, _ := heapNow()
	if err := writeHeapProfile(o.memprofile); err != nil {
		return err
	}
	peerHeap1, _ := readPeerHeap(o.peerPID, o.stats)
	st, err := e.Stats(ctx)
	if err != nil {
		return err
	}
	ok := len(done)
	slices.Sort(done)
	slices.Sort(lat)
	w := min(o.window, ok)
	var rFirst, rLast float64
	if w > 0 {
		rFirst = float64(w) / done[w-1].Seconds()
		if ok > w {
			rLast = float64(w) / (done[ok-1] - done[ok-1-w]).Seconds()
		} else {
			rLast = rFirst
		}
	}
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds()) / 1000
	}
	perHS := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(max(ok, 1)) }
	perSA := func(a, b int64) float64 { return float64(b-a) / float64(max(ok, 1)) }
	perSAHeap := func(a, b uint64) float64 { return (float64(b) - float64(a)) / 1024 / float64(max(ok, 1)) }
	fmt.Printf("mifsec n=%d conc=%d ok=%d fail=%d wall_s=%.3f rate=%.1f lat_med_ms=%.2f lat_p99_ms=%.2f "+
		"cpu_init_ms=%.3f cpu_resp_ms=%.3f rate_first%d=%.1f rate_last%d=%.1f last_over_first=%.3f "+
		"rss_init_kib_per_sa=%.2f rss_resp_kib_per_sa=%.2f heap_init_kib_per_sa=%.2f heap_resp_kib_per_sa=%.2f "+
		"rss_init_kib=%d/%d rss_resp_kib=%d/%d ike_sas=%d handshakes_failed=%d\n",
		o.n, o.conc, ok, fails, wall.Seconds(), float64(ok)/wall.Seconds(), pct(0.5), pct(0.99),
		perHS(s1.cpuSelf-s0.cpuSelf), perHS(s1.cpuPeer-s0.cpuPeer), w, rFirst, w, rLast, rLast/max(rFirst, 1e-9),
		perSA(s0.rssSelf, s2.rssSelf), perSA(s0.rssPeer, s2.rssPeer),
		perSAHeap(heap0.HeapInuse, heap1.HeapInuse), perSAHeap(peerHeap0.HeapInuse, peerHeap1.HeapInuse),
		s0.rssSelf, s2.rssSelf, s0.rssPeer, s2.rssPeer, st.IKESAs, st.HandshakesFailed)
	if fails > 0 {
		return fmt.Errorf("%d handshakes failed", fails)
	}
	return nil
}
