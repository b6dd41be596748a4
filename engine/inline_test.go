package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/transport"
)

// inlineFake is a fake transport with the real one's reader behaviour: a
// goroutine offers each datagram to the engine's inline handler
// (SetInline) while nothing is queued, and queues it otherwise.
type inlineFake struct {
	*fakeTransport
	queue  chan transport.Packet
	inline atomic.Pointer[func(transport.Packet) bool]
	taken  atomic.Int64 // datagrams handled inline
	queued atomic.Int64
	quit   chan struct{}
	wg     sync.WaitGroup
}

func newInlineFake(t *testing.T, f *fakeTransport) *inlineFake {
	in := &inlineFake{fakeTransport: f, queue: make(chan transport.Packet, 1024), quit: make(chan struct{})}
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		for {
			select {
			case <-in.quit:
				return
			case p := <-f.in:
				if h := in.inline.Load(); h != nil && len(in.queue) == 0 && (*h)(p) {
					in.taken.Add(1)
					continue
				}
				in.queued.Add(1)
				in.queue <- p
			}
		}
	}()
	t.Cleanup(func() { close(in.quit); in.wg.Wait() })
	return in
}

func (in *inlineFake) Packets() <-chan transport.Packet { return in.queue }
func (in *inlineFake) SetInline(f func(transport.Packet) bool) {
	if f == nil {
		in.inline.Store(nil)
		return
	}
	in.inline.Store(&f)
}

// Datagrams handled on the transport reader's goroutine (the engine idle)
// and through the loop (busy) drive the same IKE SA life; API calls run
// beside them (go test -race checks the state has one owner at a time).
func TestInlinePackets(t *testing.T) {
	var fakes []*inlineFake
	ue, gw, _ := pairWith(t, func(f *fakeTransport) IKETransport {
		in := newInlineFake(t, f)
		fakes = append(fakes, in)
		return in
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, e := range []*Engine{ue, gw} {
		wg.Add(1)
		go func() { // API traffic beside the datagrams
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				e.ListIKESAs(ctx, "-", "", 10)
				e.Stats(ctx)
			}
		}()
	}
	establishRekeyTerminate(t, ue, gw)
	close(stop)
	wg.Wait()
	for i, f := range fakes {
		if f.taken.Load() == 0 {
			t.Errorf("end %d: no datagram was handled inline (%d queued)", i, f.queued.Load())
		}
	}
	// Closed engines take nothing inline.
	ue.Close()
	gw.Close()
	for _, f := range fakes {
		if h := f.inline.Load(); h != nil {
			t.Fatal("the inline handler outlived its engine")
		}
	}
}
