// Package logbuf batches a daemon's log lines into fewer writes.
//
// A gateway logs a line per IKE SA that comes up or goes down; written one
// by one, each costs a system call (to a pipe to journald, or a file), a
// noticeable share of a handshake's CPU when thousands come at once. A
// Writer keeps lines below Warn for at most its interval (or until its
// buffer fills) and writes them out together; a Warn or Error line goes
// out at once, after what was waiting, so nothing that matters waits and
// the order is kept. It is an hclog.LevelWriter: give it as
// LoggerOptions.Output.
package logbuf

import (
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// DefaultInterval is how long a line may wait.
const DefaultInterval = 100 * time.Millisecond

// maxBuffered is the buffer's size: a line that would not fit makes what
// waits go out before the interval is over.
const maxBuffered = 32 << 10

// Writer buffers log lines for Out. Safe for concurrent use.
type Writer struct {
	out   io.Writer
	every time.Duration

	mu     sync.Mutex
	buf    []byte
	timer  *time.Timer
	armed  bool
	closed bool
	err    error // the first write error, reported by Flush and Close
}

// New buffers for out, writing at least every interval (<= 0: every line
// at once, as out itself would).
func New(out io.Writer, interval time.Duration) *Writer {
	return &Writer{out: out, every: interval}
}

// Write buffers p (a line of an unknown level: as Info).
func (w *Writer) Write(p []byte) (int, error) { return w.LevelWrite(hclog.Info, p) }

// LevelWrite implements hclog.LevelWriter.
func (w *Writer) LevelWrite(level hclog.Level, p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.every <= 0 || level >= hclog.Warn {
		if err := w.flushLocked(); err != nil {
			return 0, err
		}
		return w.out.Write(p)
	}
	if len(w.buf)+len(p) > maxBuffered {
		if err := w.flushLocked(); err != nil {
			return 0, err
		}
	}
	if w.buf == nil {
		w.buf = make([]byte, 0, maxBuffered) // kept: one buffer for the life
	}
	w.buf = append(w.buf, p...)
	if !w.armed {
		w.armed = true
		if w.timer == nil {
			w.timer = time.AfterFunc(w.every, w.tick)
		} else {
			w.timer.Reset(w.every)
		}
	}
	return len(p), nil
}

func (w *Writer) tick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = false
	w.flushLocked()
}

// Flush writes out what waits.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.flushLocked(); err != nil {
		return err
	}
	return w.err
}

func (w *Writer) flushLocked() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.out.Write(w.buf)
	w.buf = w.buf[:0]
	if cap(w.buf) > maxBuffered {
		w.buf = nil // grown by a line longer than the buffer: not kept
	}
	if err != nil && w.err == nil {
		w.err = err
	}
	return err
}

// Close flushes and stops buffering: later lines are written at once. It
// does not close Out.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.timer != nil {
		w.timer.Stop()
	}
	if err := w.flushLocked(); err != nil {
		return err
	}
	return w.err
}
