// Package e2e runs the real binaries (mifsecd, mifsec, grpcurl) in network
// namespaces that the tests create and remove themselves.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

var nsCounter atomic.Int32

// requireRoot skips the test when it cannot create namespaces.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
}

// run runs a command and fails the test on error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Netns is a network namespace removed at the end of the test.
type Netns struct {
	Name string
}

// NewNetns creates a namespace with a unique name and loopback up.
func NewNetns(t *testing.T, role string) *Netns {
	t.Helper()
	name := fmt.Sprintf("mfs%d-%d-%s", os.Getpid(), nsCounter.Add(1), role)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	n := &Netns{Name: name}
	n.Run(t, "ip", "link", "set", "lo", "up")
	return n
}

// Run runs a command inside the namespace.
func (n *Netns) Run(t *testing.T, name string, args ...string) string {
	t.Helper()
	return run(t, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Command prepares a command inside the namespace.
func (n *Netns) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Veth joins a (link aName, address aAddr) to b (bName, bAddr).
func Veth(t *testing.T, a *Netns, aName, aAddr string, b *Netns, bName, bAddr string) {
	t.Helper()
	tmpA := fmt.Sprintf("mfa%d", nsCounter.Add(1))
	tmpB := fmt.Sprintf("mfb%d", nsCounter.Add(1))
	run(t, "ip", "link", "add", tmpA, "type", "veth", "peer", "name", tmpB)
	run(t, "ip", "link", "set", tmpA, "netns", a.Name, "name", aName)
	run(t, "ip", "link", "set", tmpB, "netns", b.Name, "name", bName)
	a.Run(t, "ip", "addr", "add", aAddr, "dev", aName)
	b.Run(t, "ip", "addr", "add", bAddr, "dev", bName)
	a.Run(t, "ip", "link", "set", aName, "up")
	b.Run(t, "ip", "link", "set", bName, "up")
}

// buildBinaries compiles the project's commands once per test binary.
func buildBinaries(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	for _, cmd := range []string{"mifsecd", "mifsec"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, cmd), "github.com/mifsec/mifsec/cmd/"+cmd).CombinedOutput()
		if err != nil {
			t.Fatalf("build %s: %v\n%s", cmd, err, out)
		}
	}
	return dir
}

// tool finds a helper binary: on PATH or in the repository's .tools/bin.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	root, err := exec.Command("go", "env", "GOMOD").Output()
	if err == nil {
		p := filepath.Join(filepath.Dir(strings.TrimSpace(string(root))), ".tools", "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skipf("%s not installed (make tools installs it)", name)
	return ""
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}
