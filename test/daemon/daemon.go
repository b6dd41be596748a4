// Package daemon builds the mifsecd and mifsec binaries once per test
// process and runs mifsecd in a network namespace for end-to-end and
// interop tests, with a connected Go client.
//
// It is test support: nothing outside test/ and bench/ imports it.
package daemon

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mifsec/mifsec/client"
	"github.com/mifsec/mifsec/test/topo"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binaries builds cmd/mifsecd and cmd/mifsec once and returns their directory.
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "mifsec-bin-")
		if buildErr != nil {
			return
		}
		for _, cmd := range []string{"mifsecd", "mifsec"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(buildDir, cmd), "github.com/mifsec/mifsec/cmd/"+cmd).CombinedOutput()
			if err != nil {
				buildErr = &buildError{cmd: cmd, out: string(out), err: err}
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

type buildError struct {
	cmd, out string
	err      error
}

func (e *buildError) Error() string { return "build " + e.cmd + ": " + e.err.Error() + "\n" + e.out }

// Daemon is a running mifsecd.
type Daemon struct {
	Socket string
	Client *client.Client
	cmd    *exec.Cmd
	log    *Buffer
	done   chan error
}

// Start runs mifsecd in ns with its socket and state in a temporary
// directory and extra flags, waits until it serves, and stops it at the end
// of the test (dumping its log when the test failed).
func Start(t testing.TB, ns *topo.Netns, args ...string) *Daemon {
	t.Helper()
	bin := Binaries(t)
	dir, err := os.MkdirTemp("", "mifsecd-")
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{Socket: filepath.Join(dir, "api.sock"), log: &Buffer{}, done: make(chan error, 1)}
	full := append([]string{"--socket", d.Socket, "--state-dir", filepath.Join(dir, "state"), "--log-level", "debug",
		// Each line at once: a failing test's dump and the log checks see all.
		"--log-flush", "0"}, args...)
	d.cmd = ns.Command(context.Background(), filepath.Join(bin, "mifsecd"), full...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("mifsecd (%s) log:\n%s", ns, d.log.String())
		}
		os.RemoveAll(dir)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		c, err := client.Dial(ctx, d.Socket)
		if err == nil {
			d.Client = c
			return d
		}
		select {
		case err := <-d.done:
			t.Fatalf("mifsecd exited: %v\n%s", err, d.log.String())
		case <-ctx.Done():
			t.Fatalf("mifsecd did not serve: %v\n%s", err, d.log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Log is what mifsecd printed so far.
func (d *Daemon) Log() string { return d.log.String() }

// Stop sends SIGTERM and waits (SIGKILL after 10 s).
func (d *Daemon) Stop() {
	if d.Client != nil {
		d.Client.Close()
		d.Client = nil
	}
	if d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
	d.done <- nil // later Stops return at once
}

// Buffer collects a process's output; safe for a writer and readers.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Tool finds a helper binary (grpcurl, buf) on PATH or in the repository's
// .tools/bin (make tools), and skips the test when it is missing.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if mod, err := exec.Command("go", "env", "GOMOD").Output(); err == nil {
		p := filepath.Join(filepath.Dir(strings.TrimSpace(string(mod))), ".tools", "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skipf("%s not installed (make tools installs it)", name)
	return ""
}
