package strongswan

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mifsec/mifsec/test/strongswan/vici"
	"github.com/mifsec/mifsec/test/topo"
)

// CharonPaths are where distributions install charon; the first that
// exists is used (Debian: /usr/lib/ipsec/charon).
var CharonPaths = []string{"/usr/lib/ipsec/charon", "/usr/libexec/ipsec/charon", "/usr/libexec/strongswan/charon"}

// CharonPath returns the charon binary, or "" when strongSwan is missing.
func CharonPath() string {
	for _, p := range CharonPaths {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// Require skips the test unless charon, swanctl, root and iproute2 are
// there (make deps / test/deps.sh installs them).
func Require(t testing.TB) {
	t.Helper()
	topo.Require(t)
	if CharonPath() == "" {
		t.Skipf("strongSwan charon not installed (looked in %v; test/deps.sh installs it)", CharonPaths)
	}
	if _, err := exec.LookPath("swanctl"); err != nil {
		t.Skip("swanctl not installed (test/deps.sh installs strongswan-swanctl)")
	}
}

func socketPath(dir string) string { return filepath.Join(dir, "charon.vici") }
func logPath(dir string) string    { return filepath.Join(dir, "charon.log") }

// Charon is a running charon in a namespace.
type Charon struct {
	tb      testing.TB
	name    string
	ns      *topo.Netns
	dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	stopped bool
	vici    *vici.Client
}

// Start writes the configuration of cfg into a fresh directory, starts
// charon in ns with its own strongswan.conf, vici socket, pid file and log,
// waits for vici to answer and loads swanctl.conf with swanctl --load-all.
// charon is stopped in t.Cleanup (SIGTERM, then SIGKILL after 5 s) and its
// log is dumped when the test failed. Start skips the test when strongSwan
// is not installed or not root.
func Start(t testing.TB, ns *topo.Netns, cfg Config) *Charon {
	t.Helper()
	Require(t)
	if cfg.Name == "" {
		cfg.Name = "charon"
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	// Short path: unix socket paths are limited to 107 bytes.
	dir, err := os.MkdirTemp("", "mfsw-"+cfg.Name+"-")
	if err != nil {
		t.Fatalf("strongswan: %v", err)
	}
	c := &Charon{tb: t, name: cfg.Name, ns: ns, dir: dir, exited: make(chan struct{})}
	t.Cleanup(c.cleanup)
	if err := writeFiles(cfg, dir); err != nil {
		t.Fatalf("strongswan %s: %v", cfg.Name, err)
	}
	if err := c.start(); err != nil {
		t.Fatalf("strongswan %s: %v", cfg.Name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.StartTimeout)
	defer cancel()
	if err := c.waitVici(ctx); err != nil {
		t.Fatalf("strongswan %s: %v\n%s", cfg.Name, err, c.output())
	}
	lctx, lcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer lcancel()
	if out, err := c.Swanctl(lctx, "--load-all", "--noprompt", "--file", filepath.Join(dir, "swanctl", "swanctl.conf")); err != nil {
		t.Fatalf("strongswan %s: loading swanctl.conf: %v\n%s", cfg.Name, err, out)
	}
	return c
}

// writeFiles lays out dir: strongswan.conf, run/ (bind-mounted over /run
// for the compiled-in pid file), swanctl/ with swanctl.conf and the
// credential directories swanctl --load-all scans.
func writeFiles(cfg Config, dir string) error {
	sw := filepath.Join(dir, "swanctl")
	for _, d := range []string{"run", "swanctl/x509", "swanctl/x509ca", "swanctl/x509ocsp", "swanctl/x509aa",
		"swanctl/x509ac", "swanctl/x509crl", "swanctl/pubkey", "swanctl/private", "swanctl/rsa",
		"swanctl/ecdsa", "swanctl/bliss", "swanctl/pkcs8", "swanctl/pkcs12"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return err
		}
	}
	conf, err := SwanctlConf(cfg)
	if err != nil {
		return err
	}
	files := []struct {
		path string
		data []byte
	}{
		{filepath.Join(dir, "strongswan.conf"), []byte(StrongswanConf(cfg, dir))},
		{filepath.Join(sw, "swanctl.conf"), []byte(conf)},
	}
	for _, ca := range cfg.CAs {
		files = append(files, struct {
			path string
			data []byte
		}{filepath.Join(sw, "x509ca", ca.File()), ca.PEM})
	}
	for _, ct := range cfg.Certs {
		files = append(files, struct {
			path string
			data []byte
		}{filepath.Join(sw, "x509", ct.File()), ct.PEM}, struct {
			path string
			data []byte
		}{filepath.Join(sw, "ecdsa", ct.File()), ct.keyPEM})
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// start runs charon in the namespace. charon's pid file is compiled in as
// /var/run/charon.pid, so a second instance on the host would refuse to
// start: /run is replaced by dir/run inside the private mount namespace
// that ip netns exec creates anyway (its mounts do not reach the host).
func (c *Charon) start() error {
	out, err := os.Create(filepath.Join(c.dir, "charon.stdout"))
	if err != nil {
		return err
	}
	defer out.Close()
	const script = `mount --bind "$0" /run || exit 97; exec "$1"`
	c.cmd = c.ns.Command(context.Background(), "/bin/sh", "-c", script, filepath.Join(c.dir, "run"), CharonPath())
	c.cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+filepath.Join(c.dir, "strongswan.conf"))
	c.cmd.Stdout, c.cmd.Stderr = out, out
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("start charon: %w", err)
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()
	return nil
}

// waitVici polls the socket until version answers, charon exits or ctx ends.
func (c *Charon) waitVici(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if _, err := os.Stat(c.SocketPath()); err == nil {
			cl, err := vici.Dial(ctx, c.SocketPath())
			if err == nil {
				if _, err = cl.Version(ctx); err == nil {
					c.vici = cl
					return nil
				}
				cl.Close()
			}
			last = err
		}
		select {
		case <-c.exited:
			return fmt.Errorf("charon exited during start: %v", c.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("vici socket %s did not answer: %v (last error: %v)", c.SocketPath(), ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// Name is the instance label of the Config.
func (c *Charon) Name() string { return c.name }

// Netns is the namespace charon runs in.
func (c *Charon) Netns() *topo.Netns { return c.ns }

// Dir is the instance directory (strongswan.conf, swanctl/, logs).
func (c *Charon) Dir() string { return c.dir }

// SocketPath is the vici socket's path.
func (c *Charon) SocketPath() string { return socketPath(c.dir) }

// URI is the vici URI for swanctl --uri.
func (c *Charon) URI() string { return "unix://" + c.SocketPath() }

// LogPath is charon's filelog.
func (c *Charon) LogPath() string { return logPath(c.dir) }

// Log returns the log written so far.
func (c *Charon) Log() string {
	b, err := os.ReadFile(c.LogPath())
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// Pid is charon's process id.
func (c *Charon) Pid() int { return c.cmd.Process.Pid }

// Vici is the command client connected at start; safe for concurrent use.
func (c *Charon) Vici() *vici.Client { return c.vici }

// Subscribe registers for events on a connection of its own; the
// subscription is closed at cleanup if the test did not close it.
func (c *Charon) Subscribe(ctx context.Context, events ...string) (*vici.Subscription, error) {
	s, err := c.vici.Subscribe(ctx, events...)
	if err != nil {
		return nil, err
	}
	c.tb.Cleanup(func() { s.Close() })
	return s, nil
}

// Swanctl runs swanctl against this instance: the command option first,
// then --uri (swanctl rejects --uri before the command).
func (c *Charon) Swanctl(ctx context.Context, command string, args ...string) (string, error) {
	all := append([]string{command, "--uri", c.URI()}, args...)
	cmd := exec.CommandContext(ctx, "swanctl", all...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), &topo.CmdError{Args: append([]string{"swanctl"}, all...), Err: err, Output: string(out)}
	}
	return string(out), nil
}

// LoadConn loads (or replaces) a connection over vici; certificate file
// names are read from the instance's swanctl directories.
func (c *Charon) LoadConn(ctx context.Context, conn Connection) error {
	m, err := conn.Message(func(dir, file string) (string, error) {
		b, err := os.ReadFile(filepath.Join(c.dir, "swanctl", dir, file))
		return string(b), err
	})
	if err != nil {
		return err
	}
	return c.vici.LoadConn(ctx, conn.Name, m)
}

// Exited reports whether charon has terminated.
func (c *Charon) Exited() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// Stop terminates charon: SIGTERM, SIGKILL after 5 s. It reports an error
// when charon had died before (a crash of the peer) or ignored SIGTERM.
// Calling it again does nothing.
func (c *Charon) Stop() error {
	if c.cmd == nil || c.cmd.Process == nil || c.stopped {
		return nil
	}
	c.stopped = true
	if c.vici != nil {
		c.vici.Close()
	}
	select {
	case <-c.exited:
		return fmt.Errorf("charon %s died during the test: %v", c.name, c.waitErr)
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return nil
	case <-time.After(5 * time.Second):
	}
	c.cmd.Process.Kill()
	<-c.exited
	return fmt.Errorf("charon %s ignored SIGTERM for 5 s and was killed", c.name)
}

func (c *Charon) output() string {
	var b strings.Builder
	if out, err := os.ReadFile(filepath.Join(c.dir, "charon.stdout")); err == nil && len(out) > 0 {
		fmt.Fprintf(&b, "--- charon %s stdout/stderr ---\n%s", c.name, out)
	}
	fmt.Fprintf(&b, "--- charon %s log (%s) ---\n%s", c.name, c.LogPath(), c.Log())
	return b.String()
}

func (c *Charon) cleanup() {
	if err := c.Stop(); err != nil {
		c.tb.Errorf("strongswan: %v", err)
	}
	if c.tb.Failed() {
		c.tb.Logf("%s", c.output())
	}
	os.RemoveAll(c.dir)
}
