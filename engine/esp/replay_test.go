package esp

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mifsec/mifsec/engine/dataplane"
)

// step is one received sequence number and what the window must say; the
// window is updated only for accepted ones, as after a good ICV.
type step struct {
	lo   uint32 // on the wire
	want uint64 // inferred full number; 0 when refused
	err  *DropError
}

func TestReplayWindow(t *testing.T) {
	const hi1 = 1 << 32
	for _, c := range []struct {
		name  string
		size  int
		esn   bool
		top   uint64 // start state: pretend this was the highest received
		steps []step
	}{
		{"first and in order", 64, false, 0, []step{{1, 1, nil}, {2, 2, nil}, {3, 3, nil}}},
		{"zero is never valid", 64, false, 0, []step{{0, 0, errSeqZero}}},
		{"duplicate", 64, false, 0, []step{{5, 5, nil}, {5, 0, errReplayDup}, {4, 4, nil}, {4, 0, errReplayDup}}},
		{"window edges 64", 64, false, 100, []step{{37, 37, nil}, {36, 0, errReplayOld}, {100, 0, errReplayDup}, {101, 101, nil}, {37, 0, errReplayOld}, {38, 38, nil}}},
		{"window edges 32", 32, false, 100, []step{{69, 69, nil}, {68, 0, errReplayOld}}},
		{"window not a multiple of 64", 100, false, 1000, []step{{901, 901, nil}, {900, 0, errReplayOld}, {1000, 0, errReplayDup}}},
		{"window 4096 edges", 4096, false, 10000, []step{{10000 - 4095, 10000 - 4095, nil}, {10000 - 4096, 0, errReplayOld}, {10000 - 4095, 0, errReplayDup}, {9999, 9999, nil}}},
		{"window 4096 jump clears old bits", 4096, false, 0, []step{{1, 1, nil}, {5000, 5000, nil}, {1, 0, errReplayOld}, {905, 905, nil}, {904, 0, errReplayOld}, {5000 + 4096*3, 5000 + 4096*3, nil}, {5001 + 4096*2, 5001 + 4096*2, nil}, {5000 + 4096*2, 0, errReplayOld}}},
		{"jump over the whole ring", 64, false, 0, []step{{1, 1, nil}, {2, 2, nil}, {1000000, 1000000, nil}, {999999, 999999, nil}, {999937, 999937, nil}, {999936, 0, errReplayOld}, {1000000, 0, errReplayDup}}},
		{"bit of a reused block is cleared", 64, false, 0, []step{{196, 196, nil}, {330, 330, nil}, {324, 324, nil}, {324, 0, errReplayDup}, {196, 0, errReplayOld}}},
		{"window 0 accepts duplicates and old", 0, false, 0, []step{{5, 5, nil}, {5, 5, nil}, {1, 1, nil}, {1000000, 1000000, nil}, {1, 1, nil}}},
		{"window 0 still refuses 0", 0, false, 0, []step{{0, 0, errSeqZero}}},
		// ESN (RFC 4303 Appendix A).
		{"esn first", 64, true, 0, []step{{1, 1, nil}, {2, 2, nil}}},
		{"esn start refuses previous subspace", 64, true, 0, []step{{0xffffffff, 0, errReplayESN}, {0, 0, errSeqZero}}},
		{"esn case A same subspace", 64, true, hi1 + 1000, []step{{990, hi1 + 990, nil}, {1001, hi1 + 1001, nil}, {938, hi1 + 938, nil}, {990, 0, errReplayDup}}},
		// Left of the window means the next subspace (ICV decides).
		{"esn case A below window is next subspace", 64, true, hi1 + 1000, []step{{937, hi1 + 937, nil}, {936, 2*hi1 + 936, nil}}},
		{"esn case A next subspace", 64, true, hi1 + 1000, []step{{5, 2*hi1 + 5, nil}, {1000, 2*hi1 + 1000, nil}, {1000, 0, errReplayDup}, {5, 3*hi1 + 5, nil}}},
		{"esn wrap", 64, true, hi1 - 10, []step{{5, hi1 + 5, nil}, {0xfffffff4, hi1 - 12, nil}, {0xfffffff4, 0, errReplayDup}, {0, hi1, nil}, {0xffffffc6, hi1 - 58, nil}, {0xffffffc5, hi1 + 0xffffffc5, nil}}},
		{"esn case B previous subspace", 64, true, 3*hi1 + 10, []step{{0xfffffff0, 3*hi1 - 16, nil}, {11, 3*hi1 + 11, nil}, {0xffffffcc, 3*hi1 - 52, nil}, {0xffffffcb, 3*hi1 + 0xffffffcb, nil}}},
		{"esn window 4096 wrap", 4096, true, hi1 - 1, []step{{1, hi1 + 1, nil}, {0xfffff002, hi1 - 4094, nil}, {0xfffff002, 0, errReplayDup}, {0xfffff001, hi1 + 0xfffff001, nil}}},
		{"esn window 0 infers closest", 0, true, 5*hi1 + 7, []step{{0xfffffff0, 5*hi1 - 16, nil}, {0x7fffffff, 5*hi1 + 0x7fffffff, nil}, {0x80000001, 5*hi1 + 0x80000001, nil}, {0x10, 5*hi1 + 0x10, nil}, {0x1, 6*hi1 + 1, nil}}},
		{"esn last subspace cannot advance", 64, true, 0xffffffff<<32 | 0xfffffff0, []step{{0xfffffff1, 0xffffffff<<32 | 0xfffffff1, nil}, {3, 0, errSeqExhausted}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var w replayWindow
			w.init(c.size, c.esn)
			w.top = c.top
			if c.top != 0 && c.size > 0 {
				w.ring[(c.top/64)&uint64(len(w.ring)-1)] |= 1 << (c.top % 64)
			}
			for i, st := range c.steps {
				seq, err := w.check(st.lo)
				if err == nil {
					err = w.update(seq)
				}
				if err != st.err {
					t.Fatalf("step %d (lo %#x): err %v, want %v", i, st.lo, err, st.err)
				}
				if err == nil && seq != st.want {
					t.Fatalf("step %d (lo %#x): seq %#x, want %#x", i, st.lo, seq, st.want)
				}
			}
		})
	}
}

// sealAt seals inner as sequence number seq.
func sealAt(t testing.TB, s *SA, seq uint64, inner []byte) []byte {
	t.Helper()
	s.seq.Store(seq - 1)
	return seal(t, s, inner, NextHeaderIPv4)
}

// The window is checked before the ICV and advanced only after it.
func TestReplayAroundICV(t *testing.T) {
	for _, suite := range allSuites {
		t.Run(suite.String(), func(t *testing.T) {
			out, in := pair(t, suite, nil)
			forged := sealAt(t, out, 1000, ipv4(60))
			forged[len(forged)-1] ^= 1
			if _, _, err := in.Open(forged); !errors.Is(err, ErrICV) {
				t.Fatalf("forged: %v", err)
			}
			p10 := sealAt(t, out, 10, ipv4(60))
			dup := append([]byte(nil), p10...)
			if _, _, err := in.Open(p10); err != nil {
				t.Fatalf("seq 10 after a forged 1000: %v", err)
			}
			// A replay is refused before its ICV is looked at.
			dup[len(dup)-1] ^= 1
			if _, _, err := in.Open(dup); !errors.Is(err, ErrReplay) {
				t.Fatalf("replayed seq 10 with a bad ICV: %v, want replay", err)
			}
			st := in.Stats()
			if st.Drops[DropICV] != 1 || st.Drops[DropReplay] != 1 {
				t.Fatalf("drops %v", st.Drops.Map())
			}
		})
	}
}

// Concurrent Opens of the same packets deliver each sequence number once.
func TestReplayConcurrent(t *testing.T) {
	out, in := pair(t, dataplane.SuiteAESGCM128, func(c *Config) { c.ReplayWindow = 4096 })
	const n, workers = 512, 4
	pkts := make([][]byte, n)
	for i := range pkts {
		pkts[i] = seal(t, out, ipv4(100), NextHeaderIPv4)
	}
	var ok atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		// Each worker opens its own copy of every packet.
		copies := make([][]byte, n)
		for i := range pkts {
			copies[i] = append([]byte(nil), pkts[(i+w*37)%n]...)
		}
		wg.Go(func() {
			for _, p := range copies {
				if _, _, err := in.Open(p); err == nil {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if ok.Load() != n {
		t.Fatalf("%d packets delivered, want %d", ok.Load(), n)
	}
	if st := in.Stats(); st.Drops[DropReplay] != n*(workers-1) || st.Packets != n {
		t.Fatalf("stats %+v", st)
	}
}
