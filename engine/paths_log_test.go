package engine

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/mifsec/mifsec/engine/iface/ifacetest"
)

// syncBuffer is a log output shared by engines' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// take returns what was logged since the last take.
func (b *syncBuffer) take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.b.String()
	b.b.Reset()
	return s
}

// countLines counts the lines of log at level (e.g. "[INFO]") with
// message msg.
func countLines(log, level, msg string) int {
	n := 0
	for l := range strings.Lines(log) {
		if strings.Contains(l, level) && strings.Contains(l, " "+msg+":") {
			n++
		}
	}
	return n
}

// TestRoutineLinesAtDebug: establishing and deleting IKE SAs of
// single-path connections logs their paths at debug only (at info they
// were a line per connection on the end user and per peer address on the
// gateway), and an IKE SA coming up and going down once each at info on
// each end (the engine's lines, with the IKE SA's name; the SA machine's
// are at debug).
func TestRoutineLinesAtDebug(t *testing.T) {
	out := &syncBuffer{}
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: out})
	ctx := tctx(t)
	w := &wire{}
	mk := func(addr string) *Engine {
		links := ifacetest.New()
		links.AddLink("eth0", addr+"/24")
		e, err := New(Config{StateDir: t.TempDir(), Links: links, Transport: w.end(addr), Log: log.Named(addr)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		if _, err := e.CreateInterface(ctx, "wan", InterfaceSpec{Link: "eth0", AccessType: AccessWired}, false); err != nil {
			t.Fatal(err)
		}
		if _, err := e.CreateSecret(ctx, "psk", SecretPSK, []byte("a-long-shared-secret")); err != nil {
			t.Fatal(err)
		}
		return e
	}
	gw := mk("192.0.2.1")
	if _, err := gw.CreatePool(ctx, "ue", PoolSpec{Ranges: []string{"10.44.0.0/16"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.CreateConnection(ctx, "ues", ConnectionSpec{Role: RoleResponder, LocalID: "@gw.example", RemoteID: "%any",
		LocalAuth: AuthSpec{PSKSecret: "psk"}, RemoteAuth: AuthSpec{PSKSecret: "psk"}, Pool: "ue",
		Children: []ChildSpec{{Name: "net", LocalTS: []string{"198.18.0.0/24"}}}}); err != nil {
		t.Fatal(err)
	}
	ue := mk("192.0.2.2")
	const n = 3
	for i := range n {
		if _, err := ue.CreateConnection(ctx, fmt.Sprintf("c%d", i), ConnectionSpec{Role: RoleInitiator,
			LocalID: fmt.Sprintf("@ue%d.example", i), RemoteID: "@gw.example",
			LocalAuth: AuthSpec{PSKSecret: "psk"}, RemoteAuth: AuthSpec{PSKSecret: "psk"}, RemoteAddrs: []string{"192.0.2.1"},
			LocalInterfaces: []string{"wan"}, VirtualIP4: true,
			Children: []ChildSpec{{Name: "net", RemoteTS: []string{"198.18.0.0/24"}}}}); err != nil {
			t.Fatal(err)
		}
	}
	out.take()
	for i := range n {
		if _, err := ue.InitiateConnection(ctx, fmt.Sprintf("c%d", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	// The gateway logs its IKE SA up after sending the IKE_AUTH answer:
	// its last line may follow the end user's return.
	var up string
	waitFor(t, "IKE SA up on both ends", func() bool {
		up += out.take()
		return countLines(up, "[INFO]", "IKE SA up") >= 2*n
	})
	time.Sleep(50 * time.Millisecond)
	up += out.take()
	if got := countLines(up, "[INFO]", "path up"); got != 0 {
		t.Errorf("%d path up lines at info:\n%s", got, up)
	}
	// One line per IKE SA up at info on each end.
	if got := countLines(up, "[INFO]", "IKE SA up"); got != 2*n {
		t.Errorf("%d IKE SA up lines at info, want %d:\n%s", got, 2*n, up)
	}
	// One path per connection on the end user, one for all on the gateway.
	if got := countLines(up, "[DEBUG]", "path up"); got != n+1 {
		t.Errorf("%d path up lines at debug, want %d:\n%s", got, n+1, up)
	}
	if err := ue.TerminateConnection(ctx, "c0"); err != nil {
		t.Fatal(err)
	}
	var down string
	waitFor(t, "IKE SA down on both ends", func() bool {
		down += out.take()
		return countLines(down, "[INFO]", "IKE SA down") >= 2
	})
	time.Sleep(50 * time.Millisecond)
	down += out.take()
	for _, who := range []string{"192.0.2.1", "192.0.2.2"} {
		var mine strings.Builder
		for l := range strings.Lines(down) {
			if strings.Contains(l, " "+who+":") || strings.Contains(l, " "+who+".") {
				mine.WriteString(l)
			}
		}
		if got := countLines(mine.String(), "[INFO]", "IKE SA down"); got != 1 {
			t.Errorf("%s: %d IKE SA down lines at info, want 1:\n%s", who, got, mine.String())
		}
		if got := countLines(mine.String(), "[INFO]", "path down"); got != 0 {
			t.Errorf("%s: %d path down lines at info:\n%s", who, got, mine.String())
		}
	}
}
