package engine

import (
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMemoryTrim is how long the engine waits, idle, after IKE SAs came
// or went before it hands the heap's free pages back to the kernel.
const DefaultMemoryTrim = time.Second

// memTrim returns freed heap memory to the kernel once SA churn stops.
// Between collections the Go heap keeps room for growth (up to GOGC % of
// the live heap) and the runtime's background scavenger gives free pages
// back only slowly, so after a burst of establishments (a reconnect storm
// on a gateway) the resident size stays well above what the SAs hold.
// When a whole interval passes without a handshake or an SA coming or
// going, after some did, one forced collection and scavenge
// (debug.FreeOSMemory) brings the resident size back to the live state;
// the collector's pace during bursts (GOGC) is unchanged.
type memTrim struct {
	every  time.Duration // <= 0: off
	ticker *time.Ticker
	// last is the churn signature at the previous tick, done the one at the
	// last trim.
	last, done trimSig
	running    atomic.Bool
	wg         sync.WaitGroup
	free       func() // debug.FreeOSMemory; tests count
	trims      atomic.Uint64
}

// trimSig changes when IKE SAs come or go.
type trimSig struct {
	sas        int
	handshakes uint64
}

// MemoryTrimFlag maps a daemon's --memory-trim value (0 = never) to
// Config.MemoryTrim (0 = the default, negative = never).
func MemoryTrimFlag(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

func newMemTrim(every time.Duration) *memTrim {
	switch {
	case every == 0:
		every = DefaultMemoryTrim
	case every < 0:
		every = 0
	}
	t := &memTrim{every: every, free: debug.FreeOSMemory}
	if every > 0 {
		t.ticker = time.NewTicker(every)
	}
	return t
}

// C is the ticker's channel (nil, never ready, when trimming is off).
func (t *memTrim) C() <-chan time.Time {
	if t.ticker == nil {
		return nil
	}
	return t.ticker.C
}

// tick trims when the last whole interval saw no churn and some came
// since the last trim. The collection runs off the state goroutine.
func (st *state) trimTick() {
	t := st.trim
	sig := trimSig{sas: len(st.rt.all), handshakes: st.rt.stats.Handshake.Count}
	idle := sig == t.last
	t.last = sig
	if !idle || sig == t.done || !t.running.CompareAndSwap(false, true) {
		return
	}
	t.done = sig
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer t.running.Store(false)
		start := time.Now()
		t.free()
		t.trims.Add(1)
		st.e.log.Debug("returned free heap memory to the kernel", "ike_sas", sig.sas, "took", time.Since(start))
	}()
}

// stop ends the ticker and waits for a trim under way.
func (t *memTrim) stop() {
	if t.ticker != nil {
		t.ticker.Stop()
	}
	t.wg.Wait()
}
