// Command mifsecd is the mifsec daemon: the IKEv2/IPsec engine and its gRPC API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/mifsec/mifsec/engine"
	"github.com/mifsec/mifsec/engine/iface"
	"github.com/mifsec/mifsec/server"
)

type options struct {
	socket          string
	stateDir        string
	logLevel        string
	logJSON         bool
	watchBuffer     int
	shutdownTimeout time.Duration
}

func main() {
	var o options
	fs := flag.NewFlagSet("mifsecd", flag.ExitOnError)
	fs.StringVar(&o.socket, "socket", "/run/mifsec/mifsec.sock", "unix socket for the gRPC API")
	fs.StringVar(&o.stateDir, "state-dir", "/var/lib/mifsec", "directory for persisted configuration")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	fs.BoolVar(&o.logJSON, "log-json", false, "log in JSON")
	fs.IntVar(&o.watchBuffer, "watch-buffer", 1024, "events a watcher may lag behind before it is cut off")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 5*time.Second, "how long SIGTERM waits for RPCs to finish")
	fs.Parse(os.Args[1:])

	log := hclog.New(&hclog.LoggerOptions{
		Name:       "mifsecd",
		Level:      hclog.LevelFromString(o.logLevel),
		JSONFormat: o.logJSON,
		Output:     os.Stderr,
	})
	if err := run(o, log); err != nil {
		log.Error("mifsecd failed", "error", err)
		os.Exit(1)
	}
}

func run(o options, log hclog.Logger) error {
	links, err := iface.NewMonitor(log)
	if err != nil {
		return err
	}
	eng, err := engine.New(engine.Config{StateDir: o.stateDir, Links: links, Log: log, WatchBuffer: o.watchBuffer})
	if err != nil {
		links.Close()
		return err
	}
	defer eng.Close()

	lis, err := listenUnix(o.socket)
	if err != nil {
		return err
	}
	g := grpc.NewServer(
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	srv := server.New(eng, log)
	srv.Register(g)

	serveErr := make(chan error, 1)
	go func() { serveErr <- g.Serve(lis) }()
	log.Info("serving", "socket", o.socket, "state_dir", o.stateDir)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
	case err := <-serveErr:
		return fmt.Errorf("grpc server: %w", err)
	}
	// Health goes NOT_SERVING first, so probes and load balancers stop
	// sending new work; closing the engine ends every Watch stream with
	// UNAVAILABLE (operations already accepted complete), then in-flight
	// RPCs get shutdownTimeout to finish.
	srv.Shutdown()
	eng.Close()
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(o.shutdownTimeout):
		log.Warn("graceful stop timed out, closing remaining streams")
		g.Stop()
	}
	os.Remove(o.socket)
	log.Info("stopped")
	return nil
}

// listenUnix listens on path, replacing a stale socket left by a crash.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		// A live daemon answers; a stale socket refuses.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if c, err := (&net.Dialer{}).DialContext(ctx, "unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("another daemon is listening on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		lis.Close()
		return nil, err
	}
	return lis, nil
}
