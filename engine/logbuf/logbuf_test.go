package logbuf

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// sink records each write it gets.
type sink struct {
	mu     sync.Mutex
	writes []string
	fail   error
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	s.writes = append(s.writes, string(p))
	return len(p), nil
}

func (s *sink) get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.writes...)
}

func TestBatches(t *testing.T) {
	s := &sink{}
	w := New(s, time.Hour)
	w.Write([]byte("a\n"))
	w.LevelWrite(hclog.Debug, []byte("b\n"))
	if got := s.get(); len(got) != 0 {
		t.Fatalf("written before the interval: %q", got)
	}
	// A warning goes out at once, after what waited.
	w.LevelWrite(hclog.Warn, []byte("warn\n"))
	if got := s.get(); len(got) != 2 || got[0] != "a\nb\n" || got[1] != "warn\n" {
		t.Fatalf("after a warning: %q", got)
	}
	w.LevelWrite(hclog.Error, []byte("err\n"))
	w.Write([]byte("c\n"))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := s.get(); len(got) != 4 || got[3] != "c\n" {
		t.Fatalf("after Flush: %q", got)
	}
	// A full buffer is written before the interval.
	line := []byte(strings.Repeat("x", 1000) + "\n")
	for range maxBuffered/len(line) + 1 {
		w.Write(line)
	}
	if got := s.get(); len(got) != 5 || len(got[4]) > maxBuffered || len(got[4]) < maxBuffered-len(line) {
		t.Fatalf("full buffer: %d writes", len(got))
	}
	// A line longer than the buffer still goes out whole.
	long := []byte(strings.Repeat("y", 2*maxBuffered) + "\n")
	w.Write(long)
	w.Flush()
	if got := s.get(); got[len(got)-1] != string(long) {
		t.Fatal("a long line was cut")
	}
	// Closed: flushed, later lines at once.
	w.Write([]byte("d\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("e\n"))
	if got := s.get(); got[len(got)-2] != "d\n" || got[len(got)-1] != "e\n" {
		t.Fatalf("after Close: %q", got[len(got)-2:])
	}
}

func TestInterval(t *testing.T) {
	s := &sink{}
	w := New(s, 10*time.Millisecond)
	defer w.Close()
	w.Write([]byte("a\n"))
	w.Write([]byte("b\n"))
	deadline := time.Now().Add(5 * time.Second)
	for len(s.get()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("nothing written after the interval")
		}
		time.Sleep(time.Millisecond)
	}
	if got := s.get(); len(got) != 1 || got[0] != "a\nb\n" {
		t.Fatalf("got %q", got)
	}
	// And again: the timer re-arms.
	w.Write([]byte("c\n"))
	for len(s.get()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("second batch not written")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestUnbuffered(t *testing.T) {
	s := &sink{}
	w := New(s, 0)
	w.Write([]byte("a\n"))
	if got := s.get(); len(got) != 1 {
		t.Fatalf("interval 0 buffered: %q", got)
	}
}

func TestWriteError(t *testing.T) {
	s := &sink{fail: errors.New("disk full")}
	w := New(s, time.Hour)
	w.Write([]byte("a\n"))
	if err := w.Flush(); err == nil {
		t.Fatal("Flush hid the write error")
	}
	s.mu.Lock()
	s.fail = nil
	s.mu.Unlock()
	if err := w.Close(); err == nil {
		t.Fatal("Close forgot the earlier write error")
	}
}

// Through hclog: levels reach the writer.
func TestWithHclog(t *testing.T) {
	s := &sink{}
	w := New(s, time.Hour)
	log := hclog.New(&hclog.LoggerOptions{Output: w, Level: hclog.Debug})
	log.Info("up", "ike_sa", "x")
	if len(s.get()) != 0 {
		t.Fatal("an info line was not buffered")
	}
	log.Error("boom")
	got := s.get()
	if len(got) != 2 || !strings.Contains(got[0], "up") || !strings.Contains(got[1], "boom") {
		t.Fatalf("got %q", got)
	}
}
