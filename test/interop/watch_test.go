package interop

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
	"github.com/mifsec/mifsec/test/daemon"
)

func durpb(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

// watch is an EventService.Watch stream of one connection's IKE SA events.
type watch struct {
	conn string
	c    chan *mifsecv1.Event
	err  chan error
}

// startWatch subscribes and waits for the end of the snapshot, so every
// later event is seen. The stream ends with the test.
func startWatch(t *testing.T, ctx context.Context, d *daemon.Daemon, conn string) *watch {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	s, err := d.Client.Events.Watch(ctx, &mifsecv1.WatchRequest{Connection: "connections/" + conn,
		Categories: []mifsecv1.EventCategory{mifsecv1.EventCategory_EVENT_CATEGORY_IKE_SA}})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	w := &watch{conn: conn, c: make(chan *mifsecv1.Event, 64), err: make(chan error, 1)}
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for {
			r, err := s.Recv()
			if err != nil {
				w.err <- err
				return
			}
			select {
			case w.c <- r.Event:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case ev := <-w.c:
			if ev.Type == mifsecv1.EventType_EVENT_TYPE_END_OF_SNAPSHOT {
				return w
			}
		case err := <-w.err:
			t.Fatalf("watch %s: %v", conn, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("watch %s: no end of snapshot", conn)
		}
	}
}

// waitDown returns the next IKE SA down event.
func (w *watch) waitDown(t *testing.T, within time.Duration) *mifsecv1.Event {
	t.Helper()
	limit := time.After(within)
	for {
		select {
		case ev := <-w.c:
			if ev.Type == mifsecv1.EventType_EVENT_TYPE_IKE_SA_DOWN {
				return ev
			}
		case err := <-w.err:
			t.Fatalf("watch %s: %v", w.conn, err)
		case <-limit:
			t.Fatalf("watch %s: no IKE SA down event within %v", w.conn, within)
		}
	}
}
