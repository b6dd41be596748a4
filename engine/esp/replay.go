package esp

import (
	"math/bits"
	"sync"
)

// MaxReplayWindow is the largest anti-replay window accepted, in packets.
const MaxReplayWindow = 4096

// esnInferWindow is the window used only to infer the ESN high half when
// anti-replay is off: with W = 2^31, RFC 4303 Appendix A picks the subspace
// that puts the packet closest to the highest sequence number seen.
const esnInferWindow = 1 << 31

// replayWindow is the receiver's sliding window (RFC 4303 §3.4.3) kept as a
// ring of 64-bit blocks (RFC 6479): advancing clears whole blocks, never
// shifts bits. The mutex covers only this struct.
type replayWindow struct {
	mu   sync.Mutex
	size uint64   // W in packets; 0 = anti-replay off
	esn  bool     // 64-bit sequence numbers (RFC 4303 §2.2.1)
	top  uint64   // highest authenticated sequence number; 0 = none yet
	ring []uint64 // len is a power of two; bit s%(64·len) marks s as seen
}

func (w *replayWindow) init(size int, esn bool) {
	w.size, w.esn = uint64(size), esn
	if size > 0 {
		// One block more than the window needs, so the block being filled
		// never overlaps the oldest one still in the window (RFC 6479 §2).
		blocks := (size+63)/64 + 1
		w.ring = make([]uint64, 1<<bits.Len(uint(blocks-1)))
	}
}

// check infers the full sequence number from its low 32 bits and tells
// whether it may still be new. It runs before the ICV (RFC 4303 §3.4.3).
func (w *replayWindow) check(lo uint32) (uint64, *DropError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	seq, err := w.infer(lo)
	if err != nil {
		return 0, err
	}
	return seq, w.seen(seq)
}

// update marks seq as received, after its ICV verified. It repeats the
// check, as a concurrent Open may have accepted seq or moved the window.
func (w *replayWindow) update(seq uint64) *DropError {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.seen(seq); err != nil {
		return err
	}
	if seq > w.top {
		if w.size > 0 {
			n := uint64(len(w.ring))
			from, to := w.top/64, seq/64
			if to-from > n {
				from = to - n
			}
			for b := from + 1; b <= to; b++ {
				w.ring[b&(n-1)] = 0
			}
		}
		w.top = seq
	}
	if w.size > 0 {
		w.ring[(seq/64)&uint64(len(w.ring)-1)] |= 1 << (seq % 64)
	}
	return nil
}

// seen tells whether seq is left of the window or already marked.
func (w *replayWindow) seen(seq uint64) *DropError {
	if w.size == 0 || seq > w.top {
		return nil
	}
	if w.top-seq >= w.size {
		return errReplayOld
	}
	if w.ring[(seq/64)&uint64(len(w.ring)-1)]&(1<<(seq%64)) != 0 {
		return errReplayDup
	}
	return nil
}

// infer rebuilds the 64-bit sequence number (RFC 4303 Appendix A2.1).
func (w *replayWindow) infer(lo uint32) (uint64, *DropError) {
	if !w.esn {
		if lo == 0 {
			return 0, errSeqZero
		}
		return uint64(lo), nil
	}
	win := w.size
	if win == 0 {
		win = esnInferWindow
	}
	th, tl := uint32(w.top>>32), uint64(uint32(w.top))
	var hi uint64
	if tl >= win-1 {
		// Case A: the window lies within one subspace.
		if uint64(lo) >= tl-win+1 {
			hi = uint64(th)
		} else {
			hi = uint64(th) + 1
		}
	} else {
		// Case B: the window spans two subspaces.
		if uint64(lo) >= (tl-win+1)&0xffffffff {
			if th == 0 {
				return 0, errReplayESN
			}
			hi = uint64(th) - 1
		} else {
			hi = uint64(th)
		}
	}
	if hi > 0xffffffff {
		return 0, errSeqExhausted
	}
	seq := hi<<32 | uint64(lo)
	if seq == 0 {
		return 0, errSeqZero
	}
	return seq, nil
}
