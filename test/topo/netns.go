package topo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Prefix starts the name of every namespace this package creates:
// Prefix, the creating process id, a counter and the role, for example
// "mfsw4242-3-gw". SweepStale relies on it.
const Prefix = "mfsw"

// DefaultTimeout bounds a helper command when its context has no deadline.
const DefaultTimeout = 15 * time.Second

const netnsDir = "/run/netns"

var counter atomic.Int32

// Require skips the test unless it can build namespaces: root and
// iproute2's ip.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
}

// Netns is a named network namespace.
type Netns struct {
	name string
}

// Existing wraps a namespace created elsewhere (no cleanup is registered).
func Existing(name string) *Netns { return &Netns{name: name} }

// Name is the namespace's name (as in `ip netns list`).
func (n *Netns) Name() string { return n.name }

func (n *Netns) String() string { return n.name }

// NewNetns creates a namespace with a unique name ending in role, with
// loopback up and IPv6 off, and deletes it in t.Cleanup (after killing any
// process this test left inside it).
func NewNetns(t testing.TB, role string) *Netns {
	t.Helper()
	sweepOnce.Do(func() {
		if removed, err := SweepStale(context.Background(), Prefix); err != nil {
			t.Logf("topo: sweeping stale namespaces: %v", err)
		} else if len(removed) > 0 {
			t.Logf("topo: removed stale namespaces %v", removed)
		}
	})
	name := fmt.Sprintf("%s%d-%d-%s", Prefix, os.Getpid(), counter.Add(1), role)
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	if _, err := run(ctx, "ip", "netns", "add", name); err != nil {
		t.Fatalf("topo: %v", err)
	}
	n := &Netns{name: name}
	t.Cleanup(func() { n.remove(t) })
	for _, args := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"},
	} {
		if _, err := n.Run(ctx, args[0], args[1:]...); err != nil {
			t.Fatalf("topo: %v", err)
		}
	}
	return n
}

// remove kills what the test left in the namespace and deletes it.
func (n *Netns) remove(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	pids, err := n.Pids(ctx)
	// A thread of this process may sit in the namespace (Do): never us.
	pids = slices.DeleteFunc(pids, func(p int) bool { return p == os.Getpid() })
	if err == nil && len(pids) > 0 {
		t.Errorf("topo: processes %v still running in %s at cleanup; killing them", pids, n.name)
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if _, err := run(ctx, "ip", "netns", "del", n.name); err != nil {
		t.Errorf("topo: %v", err)
	}
}

// Pids lists the processes living in the namespace.
func (n *Netns) Pids(ctx context.Context) ([]int, error) {
	out, err := run(ctx, "ip", "netns", "pids", n.name)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("topo: ip netns pids %s: bad pid %q", n.name, f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// CmdError is a helper command that failed.
type CmdError struct {
	Args   []string
	Err    error
	Output string
}

func (e *CmdError) Error() string {
	return fmt.Sprintf("%s: %v: %s", strings.Join(e.Args, " "), e.Err, strings.TrimSpace(e.Output))
}

func (e *CmdError) Unwrap() error { return e.Err }

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// run runs a command in the current namespace and returns its combined output.
func run(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), &CmdError{Args: append([]string{name}, args...), Err: err, Output: string(out)}
	}
	return string(out), nil
}

// Command prepares name with args inside the namespace (ip netns exec).
// The process gets SIGKILL if the test binary dies, so nothing outlives it.
func (n *Netns) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = time.Second
	return cmd
}

// Run runs a command in the namespace, bounded by ctx (or DefaultTimeout),
// and returns its combined output; failures are *CmdError.
func (n *Netns) Run(ctx context.Context, name string, args ...string) (string, error) {
	return run(ctx, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
}

// MustRun is Run that fails the test on error.
func (n *Netns) MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.Run(context.Background(), name, args...)
	if err != nil {
		t.Fatalf("topo: in %s: %v", n.name, err)
	}
	return out
}

// Do runs fn on an OS thread switched into the namespace: sockets fn opens
// belong to the namespace for their whole life. The thread is switched
// back afterwards; if that fails it is never handed back to the scheduler
// (its goroutine exits locked), so no other goroutine runs in the wrong
// namespace.
func (n *Netns) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("topo: open own namespace: %w", err)
			return
		}
		defer orig.Close()
		f, err := os.Open(filepath.Join(netnsDir, n.name))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("topo: open namespace %s: %w", n.name, err)
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("topo: setns %s: %w", n.name, err)
			return
		}
		ferr := fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else: exit locked, the runtime discards the thread
		errc <- ferr
	}()
	return <-errc
}

var sweepOnce sync.Once

// SweepStale deletes namespaces named prefix<pid>-... whose creating
// process no longer exists (left by a test binary that was killed before
// its cleanups ran). It does not kill processes; namespaces that still hold
// processes are reported in the error and left alone.
func SweepStale(ctx context.Context, prefix string) (removed []string, err error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		pid, ok := creatorPid(prefix, name)
		if !ok || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		n := Existing(name)
		if pids, perr := n.Pids(ctx); perr == nil && len(pids) > 0 {
			errs = append(errs, fmt.Errorf("stale namespace %s still holds processes %v", name, pids))
			continue
		}
		if _, derr := run(ctx, "ip", "netns", "del", name); derr != nil {
			errs = append(errs, derr)
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

// creatorPid extracts <pid> from prefix<pid>-<n>-<role>.
func creatorPid(prefix, name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	digits, _, ok := strings.Cut(rest, "-")
	if !ok || digits == "" {
		return 0, false
	}
	pid, err := strconv.Atoi(digits)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
