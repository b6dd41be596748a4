// Package deploy tests the files under deploy/: the systemd unit
// (systemd-analyze verify), the container build file (structural lint),
// the Kubernetes DaemonSet (strict decoding into k8s.io/api types, the
// offline equivalent of a schema check) and the grpcurl examples (each run
// against a live mifsecd). It is test-only: the daemon never links k8s.io.
package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var root = func() string {
	d, _ := filepath.Abs("../..")
	return d
}()

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// mifsecd builds the daemon once per test binary.
func mifsecd(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "mifsec-deploy-test")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir, "./cmd/mifsecd")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "mifsecd")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// daemonFlags returns the flags `mifsecd -h` lists.
func daemonFlags(t *testing.T) map[string]bool {
	t.Helper()
	out, _ := exec.Command(mifsecd(t), "-h").CombinedOutput()
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["socket"] {
		t.Fatalf("cannot read mifsecd's flags from -h:\n%s", out)
	}
	return flags
}

func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join(root, "deploy/systemd/mifsecd.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW",
		"RuntimeDirectory=mifsec", "StateDirectory=mifsec", "NoNewPrivileges=yes", "ProtectSystem=strict",
		"--socket=/run/mifsec/mifsec.sock", "--state-dir=/var/lib/mifsec",
	} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("unit lacks %q", want)
		}
	}
	flags := daemonFlags(t)
	for _, m := range regexp.MustCompile(`--([a-z-]+)=`).FindAllSubmatch(unit, -1) {
		if !flags[string(m[1])] {
			t.Errorf("unit passes --%s, which mifsecd does not have", m[1])
		}
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	// verify needs ExecStart to exist: point it at the built binary.
	dir := t.TempDir()
	bin := mifsecd(t)
	verify := func(text string) (string, error) {
		p := filepath.Join(dir, "mifsecd.service")
		os.WriteFile(p, []byte(text), 0o644)
		out, err := exec.Command(sa, "verify", p).CombinedOutput()
		return string(out), err
	}
	text := strings.ReplaceAll(string(unit), "/usr/local/sbin/mifsecd", bin)
	if out, err := verify(text); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The check can fail: a misspelt key is reported.
	if out, _ := verify(strings.Replace(text, "Type=exec", "Typo=exec", 1)); !strings.Contains(out, "Unknown key") {
		t.Errorf("verify did not notice a bad key: %q", out)
	}
}

// instruction is one Containerfile instruction.
type instruction struct {
	line      int
	cmd, args string
}

func parseContainerfile(t *testing.T, text string) []instruction {
	t.Helper()
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, l := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(l)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{start, strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	if cur.Len() > 0 {
		t.Errorf("Containerfile ends inside a continued line")
	}
	return out
}

func TestContainerfile(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(root, "deploy/container/Containerfile"))
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{"FROM": true, "ARG": true, "WORKDIR": true, "COPY": true, "RUN": true, "USER": true,
		"VOLUME": true, "EXPOSE": true, "HEALTHCHECK": true, "ENTRYPOINT": true, "CMD": true, "ENV": true, "LABEL": true}
	ins := parseContainerfile(t, string(text))
	stages := map[string]bool{}
	var built, copied []string
	sawFrom := false
	for _, in := range ins {
		if !known[in.cmd] {
			t.Errorf("line %d: unknown instruction %s", in.line, in.cmd)
		}
		switch in.cmd {
		case "ARG":
		case "FROM":
			sawFrom = true
			f := strings.Fields(in.args)
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				stages[f[2]] = true
			} else if len(f) != 1 {
				t.Errorf("line %d: FROM %s", in.line, in.args)
			}
			if !strings.Contains(f[0], ":") || strings.HasSuffix(f[0], ":latest") {
				t.Errorf("line %d: base image %s is not pinned to a tag", in.line, f[0])
			}
		default:
			if !sawFrom {
				t.Errorf("line %d: %s before FROM", in.line, in.cmd)
			}
		}
		switch in.cmd {
		case "COPY":
			if from, ok := strings.CutPrefix(in.args, "--from="); ok {
				name, rest, _ := strings.Cut(from, " ")
				if !stages[name] {
					t.Errorf("line %d: COPY --from=%s: no such stage", in.line, name)
				}
				f := strings.Fields(rest)
				copied = append(copied, f[:len(f)-1]...)
			}
		case "RUN":
			if strings.Contains(in.args, "go build") {
				for _, m := range regexp.MustCompile(`\./cmd/(\w+)`).FindAllStringSubmatch(in.args, -1) {
					built = append(built, "/out/"+m[1])
					if _, err := os.Stat(filepath.Join(root, "cmd", m[1])); err != nil {
						t.Errorf("line %d: builds ./cmd/%s, which does not exist", in.line, m[1])
					}
				}
			}
		case "ENTRYPOINT", "CMD":
			var argv []string
			if err := json.Unmarshal([]byte(in.args), &argv); err != nil {
				t.Errorf("line %d: %s is not in exec (JSON) form: %v", in.line, in.cmd, err)
			}
		case "HEALTHCHECK":
			i := strings.Index(in.args, "CMD ")
			var argv []string
			if i < 0 || json.Unmarshal([]byte(in.args[i+4:]), &argv) != nil || len(argv) < 2 || argv[1] != "healthcheck" {
				t.Errorf("line %d: HEALTHCHECK should exec `mifsecd healthcheck`", in.line)
			}
		}
	}
	slices.Sort(built)
	slices.Sort(copied)
	if !slices.Equal(built, copied) || len(built) != 2 {
		t.Errorf("binaries built %v, copied into the image %v", built, copied)
	}
	if ins[len(ins)-2].cmd != "ENTRYPOINT" {
		t.Errorf("ENTRYPOINT should come just before CMD at the end")
	}
	// The Go version of the build image follows go.mod.
	mod, _ := os.ReadFile(filepath.Join(root, "go.mod"))
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	if goVer == nil || !bytes.Contains(text, []byte("ARG GO_VERSION="+string(goVer[1]))) {
		t.Errorf("Containerfile's GO_VERSION does not match go.mod's go %s", goVer[1])
	}
}

func TestDaemonSet(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(root, "deploy/k8s/daemonset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var ds appsv1.DaemonSet
	// Strict: unknown or misspelt fields and duplicates are errors, as a
	// schema check would report them.
	if err := yaml.UnmarshalStrict(text, &ds); err != nil {
		t.Fatalf("daemonset.yaml: %v", err)
	}
	if err := yaml.UnmarshalStrict(bytes.Replace(text, []byte("hostNetwork:"), []byte("hostNetwrk:"), 1), &appsv1.DaemonSet{}); err == nil {
		t.Error("strict decoding accepted a misspelt field")
	}
	if ds.APIVersion != "apps/v1" || ds.Kind != "DaemonSet" {
		t.Errorf("%s %s", ds.APIVersion, ds.Kind)
	}
	sel := ds.Spec.Selector.MatchLabels
	for k, v := range sel {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod template", k, v)
		}
	}
	pod := ds.Spec.Template.Spec
	if !pod.HostNetwork {
		t.Error("hostNetwork is off")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.SecurityContext == nil || c.SecurityContext.Capabilities == nil ||
		!slices.Contains(c.SecurityContext.Capabilities.Add, corev1.Capability("NET_ADMIN")) {
		t.Error("NET_ADMIN not added")
	}
	if c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
		t.Error("privileged: NET_ADMIN is enough")
	}
	flags := daemonFlags(t)
	socket := ""
	for _, a := range c.Args {
		name, val, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !flags[name] {
			t.Errorf("arg %s: mifsecd has no such flag", a)
		}
		if name == "socket" {
			socket = val
		}
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	hostPaths := map[string]string{}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
		if _, ok := mounts[v.Name]; !ok {
			t.Errorf("volume %s is not mounted", v.Name)
		}
	}
	var socketVolume string
	for name, path := range mounts {
		if filepath.Dir(socket) == path {
			socketVolume = name
		}
	}
	if socketVolume == "" || hostPaths[socketVolume] == "" {
		t.Errorf("the API socket %s is not on a hostPath volume", socket)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		if p == nil || p.Exec == nil {
			t.Errorf("%s probe is not an exec probe", name)
			continue
		}
		cmd := p.Exec.Command
		if len(cmd) < 3 || filepath.Base(cmd[0]) != "mifsecd" || cmd[1] != "healthcheck" || cmd[2] != "--socket="+socket {
			t.Errorf("%s probe runs %v, want mifsecd healthcheck --socket=%s", name, cmd, socket)
		}
	}
}

// daemon is a mifsecd started for one test, in its own network namespace
// when unshare is available (nothing it does reaches the host's network).
type daemon struct {
	socket string
	cmd    *exec.Cmd
	log    *bytes.Buffer
}

func startDaemon(t *testing.T) *daemon {
	t.Helper()
	bin := mifsecd(t)
	dir := t.TempDir()
	d := &daemon{socket: filepath.Join(dir, "mifsec.sock"), log: &bytes.Buffer{}}
	args := []string{bin, "--socket=" + d.socket, "--state-dir=" + filepath.Join(dir, "state"), "--log-level=debug"}
	if u, err := exec.LookPath("unshare"); err == nil && os.Geteuid() == 0 {
		args = append([]string{u, "--net"}, args...)
	}
	d.cmd = exec.Command(args[0], args[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { d.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-done
			t.Errorf("mifsecd did not stop on SIGINT")
		}
		if t.Failed() {
			t.Logf("mifsecd log:\n%s", d.log)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if exec.Command(bin, "healthcheck", "--socket="+d.socket, "--timeout=1s").Run() == nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("mifsecd did not become healthy:\n%s", d.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func grpcurl(t *testing.T) string {
	t.Helper()
	if p := filepath.Join(root, ".tools/bin/grpcurl"); fileExists(p) {
		return p
	}
	if p, err := exec.LookPath("grpcurl"); err == nil {
		return p
	}
	t.Skip("grpcurl not installed (make tools)")
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestExamples runs each example script, in the order an operator would,
// against a live daemon.
func TestExamples(t *testing.T) {
	gc := grpcurl(t)
	d := startDaemon(t)
	psk := filepath.Join(t.TempDir(), "psk")
	os.WriteFile(psk, []byte("example \"quoted\" psk\n"), 0o600)
	run := func(script string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(root, "deploy/examples", script), args...)
		cmd.Env = append(os.Environ(), "MIFSEC_SOCKET="+d.socket, "GRPCURL="+gc)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", script, args, err, out)
		}
		return string(out)
	}
	steps := []struct {
		script string
		args   []string
		want   []string
	}{
		{"health.sh", nil, []string{`"status": "SERVING"`}},
		{"register-interfaces.sh", nil, []string{`"name": "interfaces/ran"`, `"name": "interfaces/wlan"`, `"accessType": "ACCESS_TYPE_RAN"`}},
		{"create-pool.sh", nil, []string{`"name": "pools/ue"`, `"10.8.0.0/24"`}},
		{"create-connection.sh", []string{"192.0.2.1", psk}, []string{`"name": "secrets/gw-psk"`, `"name": "connections/gw"`, `"ROLE_INITIATOR"`}},
		{"list.sh", nil, []string{`"interfaces/wlan"`, `"secrets/gw-psk"`, `"pools/ue"`, `"connections/gw"`}},
		{"watch-events.sh", []string{"2"}, []string{`EVENT_TYPE_END_OF_SNAPSHOT`}},
	}
	for _, s := range steps {
		out := run(s.script, s.args...)
		for _, w := range s.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %s:\n%s", s.script, w, out)
			}
		}
		if strings.Contains(out, "quoted") {
			t.Errorf("%s: the PSK appears in the output", s.script)
		}
	}
}
