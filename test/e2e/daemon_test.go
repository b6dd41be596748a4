// Package e2e runs the real binaries (mifsecd, mifsec, grpcurl) in network
// namespaces that the tests create and remove themselves.
package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mifsec/mifsec/test/daemon"
	"github.com/mifsec/mifsec/test/topo"
)

// mifsecd is a running daemon whose process the test controls (kill -9).
type mifsecd struct {
	cmd    *exec.Cmd
	socket string
	log    *daemon.Buffer
}

func startDaemon(t *testing.T, bin string, ns *topo.Netns, socket, stateDir string) *mifsecd {
	t.Helper()
	d := &mifsecd{socket: socket, log: &daemon.Buffer{}}
	d.cmd = ns.Command(context.Background(), filepath.Join(bin, "mifsecd"), "--socket", socket, "--state-dir", stateDir, "--log-level", "debug")
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			d.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("mifsecd log:\n%s", d.log.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command(daemon.Tool(t, "grpcurl"), "-plaintext", "unix://"+socket, "grpc.health.v1.Health/Check").CombinedOutput()
		if err == nil && strings.Contains(string(out), "SERVING") {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("mifsecd did not become healthy: %v %s\nlog:\n%s", err, out, d.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// grpcurl calls the daemon at socket; args end with the method (or "list").
func grpcurl(t *testing.T, socket string, args ...string) string {
	t.Helper()
	n := len(args)
	full := append([]string{"-plaintext"}, args[:n-1]...)
	full = append(full, "unix://"+socket, args[n-1])
	return run(t, daemon.Tool(t, "grpcurl"), full...)
}

func cli(t *testing.T, bin, socket string, args ...string) string {
	t.Helper()
	return run(t, filepath.Join(bin, "mifsec"), append([]string{"--socket", socket}, args...)...)
}

// TestDaemonEndToEnd drives the real mifsecd with the real grpcurl (through
// reflection, no .proto files) and the CLI, flaps a link, restarts the daemon
// after kill -9 and stops it with SIGTERM.
func TestDaemonEndToEnd(t *testing.T) {
	tp := topo.Build(t)
	bin := daemon.Binaries(t)
	ue := tp.UE

	tmp := t.TempDir()
	socket := filepath.Join(tmp, "mifsec.sock")
	state := filepath.Join(tmp, "state")
	d := startDaemon(t, bin, ue, socket, state)

	list := grpcurl(t, socket, "list")
	for _, svc := range []string{"mifsec.v1.InterfaceService", "mifsec.v1.EventService", "grpc.health.v1.Health"} {
		if !strings.Contains(list, svc) {
			t.Fatalf("grpcurl list shows:\n%s\nmissing %s", list, svc)
		}
	}

	// One interface through grpcurl, one through the CLI.
	out := grpcurl(t, socket, "-d", `{"interface_id":"ran","interface":{"link":"ran0","access_type":"ACCESS_TYPE_RAN","priority":10,"metered":true}}`,
		"mifsec.v1.InterfaceService/CreateInterface")
	if !strings.Contains(out, `"interfaces/ran"`) || !strings.Contains(out, "198.51.100.2/24") {
		t.Fatalf("CreateInterface via grpcurl:\n%s", out)
	}
	cli(t, bin, socket, "interface", "add", "wlan", "--link", "wlan0", "--access-type", "wlan", "--priority", "20")

	var listed struct {
		Interfaces []struct {
			Name      string   `json:"name"`
			State     string   `json:"state"`
			Addresses []string `json:"addresses"`
		} `json:"interfaces"`
	}
	if err := json.Unmarshal([]byte(grpcurl(t, socket, "-d", "{}", "mifsec.v1.InterfaceService/ListInterfaces")), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed.Interfaces) != 2 || listed.Interfaces[1].Name != "interfaces/wlan" || listed.Interfaces[1].State != "INTERFACE_STATE_UP" {
		t.Fatalf("listed %+v", listed)
	}
	table := cli(t, bin, socket, "interface", "list")
	if !strings.Contains(table, "wlan0") || !strings.Contains(table, "ran0") {
		t.Fatalf("CLI table:\n%s", table)
	}

	// Watch with grpcurl, then take the WLAN link down.
	watch := exec.Command(daemon.Tool(t, "grpcurl"), "-plaintext", "-d", `{"interface":"interfaces/wlan"}`, "unix://"+socket, "mifsec.v1.EventService/Watch")
	wout := &daemon.Buffer{}
	watch.Stdout, watch.Stderr = wout, wout
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { watch.Process.Kill(); watch.Wait() }()
	waitFor(t, wout, "EVENT_TYPE_END_OF_SNAPSHOT")
	// The CLI watches too, until it has seen three events after the snapshot.
	cliWatch := exec.Command(filepath.Join(bin, "mifsec"), "--socket", socket, "watch", "--interface", "wlan", "--json")
	cout := &daemon.Buffer{}
	cliWatch.Stdout, cliWatch.Stderr = cout, cout
	if err := cliWatch.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cliWatch.Process.Kill(); cliWatch.Wait() }()
	waitFor(t, cout, "END_OF_SNAPSHOT")

	ue.MustRun(t, "ip", "link", "set", "wlan0", "down")
	waitFor(t, wout, "EVENT_TYPE_INTERFACE_LINK_DOWN")
	waitFor(t, cout, "INTERFACE_LINK_DOWN")
	ue.MustRun(t, "ip", "link", "set", "wlan0", "up")
	waitFor(t, wout, "EVENT_TYPE_INTERFACE_LINK_UP")
	ue.MustRun(t, "ip", "addr", "add", "203.0.113.3/24", "dev", "wlan0")
	waitFor(t, wout, "EVENT_TYPE_INTERFACE_ADDRESS_ADDED")
	if !strings.Contains(wout.String(), "203.0.113.3/24") {
		t.Fatalf("address event lacks the address:\n%s", wout.String())
	}

	// kill -9 and restart: the same interfaces are listed.
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.cmd.Wait()
	watch.Wait()
	d = startDaemon(t, bin, ue, socket, state)
	after := cli(t, bin, socket, "interface", "list", "--json")
	for _, want := range []string{"interfaces/ran", "interfaces/wlan", "ran0", "wlan0"} {
		if !strings.Contains(after, want) {
			t.Fatalf("after restart the CLI lists:\n%s\nmissing %s", after, want)
		}
	}

	// SIGTERM with a watcher open: the stream ends with UNAVAILABLE, the
	// daemon exits cleanly and removes its socket.
	w2 := exec.Command(daemon.Tool(t, "grpcurl"), "-plaintext", "-d", `{}`, "unix://"+socket, "mifsec.v1.EventService/Watch")
	w2out := &daemon.Buffer{}
	w2.Stdout, w2.Stderr = w2out, w2out
	if err := w2.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { w2.Process.Kill(); w2.Wait() }()
	waitFor(t, w2out, "EVENT_TYPE_END_OF_SNAPSHOT")
	start := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	errc := make(chan error, 1)
	go func() { errc <- d.cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("mifsecd exit after SIGTERM: %v\n%s", err, d.log.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("mifsecd did not stop on SIGTERM")
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("SIGTERM took %v with a watcher open", took)
	}
	waitFor(t, w2out, "Unavailable")
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
	if !strings.Contains(d.log.String(), "shutting down") {
		t.Fatalf("no shutdown log:\n%s", d.log.String())
	}
}

func waitFor(t *testing.T, b *daemon.Buffer, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %q in:\n%s", s, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// run runs a command on the host and fails the test on error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
