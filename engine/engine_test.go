package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mifsec/mifsec/engine/iface/ifacetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newEngine(t *testing.T, dir string) (*Engine, *ifacetest.Fake) {
	t.Helper()
	links := ifacetest.New()
	links.AddLink("wlan0", "192.0.2.1/24")
	e, err := New(Config{StateDir: dir, Links: links})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, links
}

func TestCanceledContext(t *testing.T) {
	e, _ := newEngine(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Either the op is refused because ctx is done, or it ran: never a hang.
	_, err := e.GetInterface(ctx, "wlan")
	var ee *Error
	if !errors.As(err, &ee) || (ee.Code != Canceled && ee.Code != NotFound) {
		t.Fatalf("got %v", err)
	}
}

func TestClosedEngineRefuses(t *testing.T) {
	e, _ := newEngine(t, t.TempDir())
	e.Close()
	_, err := e.GetInterface(context.Background(), "wlan")
	var ee *Error
	if !errors.As(err, &ee) || ee.Code != Unavailable || ee.Reason != ReasonShuttingDown {
		t.Fatalf("got %v", err)
	}
}

// A failed write leaves the in-memory state as it was: no lost or phantom state.
func TestPersistFailureRollsBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	e, _ := newEngine(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.CreateInterface(ctx, "wlan", InterfaceSpec{Link: "wlan0", AccessType: AccessWLAN}, false); err != nil {
		t.Fatal(err)
	}
	// Make the directory unusable: replace it with a file.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := e.UpdateInterface(ctx, "wlan", InterfaceSpec{Priority: 9}, []string{FieldPriority})
	var ee *Error
	if !errors.As(err, &ee) || ee.Reason != ReasonPersistFailed {
		t.Fatalf("update: %v", err)
	}
	if err := e.DeleteInterface(ctx, "wlan"); !errors.As(err, &ee) || ee.Reason != ReasonPersistFailed {
		t.Fatalf("delete: %v", err)
	}
	got, err := e.GetInterface(ctx, "wlan")
	if err != nil || got.Priority != 0 {
		t.Fatalf("after failed writes: %+v %v", got, err)
	}
}

func TestValidID(t *testing.T) {
	for id, ok := range map[string]bool{"a": true, "wlan-2": true, "ran0": true, "": false, "-a": false, "a-": false,
		"A": false, "a_b": false, "0a": false, string(make([]byte, 64)): false} {
		if (ValidID(id) == nil) != ok {
			t.Errorf("ValidID(%q) ok=%v, want %v", id, ValidID(id) == nil, ok)
		}
	}
}

var osStat = os.Stat
