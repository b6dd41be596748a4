// Command mifsecd is the mifsec daemon: the IKEv2/IPsec engine and its gRPC API.
//
//	mifsecd [flags]              run the daemon in the foreground
//	mifsecd healthcheck [flags]  exit 0 if the daemon on --socket is SERVING
//
// The API is always served on a unix socket (operators: the socket's mode
// 0660 and --socket-group guard it) and optionally on TCP (--listen) with
// mutual TLS, where client certificates decide viewer or operator
// (server/auth.go). Plaintext TCP is refused unless the address is
// loopback and --insecure-loopback is given.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/mifsec/mifsec/engine"
	"github.com/mifsec/mifsec/engine/bootstrap"
	"github.com/mifsec/mifsec/engine/iface"
	"github.com/mifsec/mifsec/engine/logbuf"
	"github.com/mifsec/mifsec/server"
)

type options struct {
	ike              ikeOptions
	socket           string
	socketGroup      string
	stateDir         string
	config           string
	listen           string
	tlsCert, tlsKey  string
	clientCA         string
	roleMap          string
	insecureLoopback bool
	metrics          string
	logLevel         string
	logJSON          bool
	watchBuffer      int
	shutdownTimeout  time.Duration
	// gcPercent is GOGC for the daemon; gcSet: given on the command line.
	gcPercent int
	// memoryTrim: idle time after SA churn before free heap memory goes
	// back to the kernel (0 = never).
	memoryTrim time.Duration
	// dhReuse: how long one D-H pair answers IKE_SA_INIT requests.
	dhReuse time.Duration
	// logFlush: how long an info or debug line may wait in the buffer.
	logFlush time.Duration
	gcSet    bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(healthcheck(os.Args[2:]))
	}
	var o options
	fs := flag.NewFlagSet("mifsecd", flag.ExitOnError)
	fs.StringVar(&o.socket, "socket", "/run/mifsec/mifsec.sock", "unix socket for the gRPC API (mode 0660)")
	fs.StringVar(&o.socketGroup, "socket-group", "", "group owning the API socket (its members are operators)")
	fs.StringVar(&o.stateDir, "state-dir", "/var/lib/mifsec", "directory for persisted configuration")
	fs.StringVar(&o.config, "config", "", "HCL configuration file applied at start (docs/operations.md)")
	fs.StringVar(&o.listen, "listen", "", "TCP address for the gRPC API (mutual TLS unless --insecure-loopback)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "server certificate (PEM) for --listen")
	fs.StringVar(&o.tlsKey, "tls-key", "", "server private key (PEM) for --listen")
	fs.StringVar(&o.clientCA, "client-ca", "", "CA certificates (PEM) that client certificates must chain to")
	fs.StringVar(&o.roleMap, "role-map", "", "file granting viewer/operator to client certificates (default: their urn:mifsec:role: URI SAN)")
	fs.BoolVar(&o.insecureLoopback, "insecure-loopback", false, "allow --listen without TLS on a loopback address (clients are viewers)")
	fs.StringVar(&o.metrics, "metrics", "", "HTTP address serving Prometheus /metrics (off when empty)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	fs.BoolVar(&o.logJSON, "log-json", false, "log in JSON")
	fs.DurationVar(&o.logFlush, "log-flush", logbuf.DefaultInterval,
		"how long a log line below warn may wait to be written with others (0 = each at once)")
	fs.IntVar(&o.watchBuffer, "watch-buffer", 1024, "events a watcher may lag behind before it is cut off")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 5*time.Second, "how long SIGTERM waits for RPCs to finish")
	fs.IntVar(&o.gcPercent, "gc-percent", engine.DefaultGCPercent,
		"garbage collector target (GOGC; -1 = off); when not given, GOGC from the environment if set (docs/operations.md)")
	fs.DurationVar(&o.memoryTrim, "memory-trim", engine.DefaultMemoryTrim,
		"after IKE SAs came or went, return free heap memory to the kernel once this long passed without more (0 = never)")
	fs.DurationVar(&o.dhReuse, "dh-reuse", engine.DefaultDHReuse,
		"how long one D-H pair answers IKE_SA_INIT requests (RFC 7296 §2.12; 0 = a fresh pair each; docs/operations.md)")
	o.ike.register(fs)
	fs.Parse(os.Args[1:])
	fs.Visit(func(f *flag.Flag) { o.gcSet = o.gcSet || f.Name == "gc-percent" })

	// Lines below warn wait up to --log-flush to be written together;
	// warnings and errors go out at once, after them.
	out := logbuf.New(os.Stderr, o.logFlush)
	log := hclog.New(&hclog.LoggerOptions{
		Name:       "mifsecd",
		Level:      hclog.LevelFromString(o.logLevel),
		JSONFormat: o.logJSON,
		Output:     out,
	})
	if err := run(o, log); err != nil {
		log.Error("mifsecd failed", "error", err)
		os.Exit(1)
	}
	out.Close()
}

// checkOptions refuses combinations that would expose the API.
func checkOptions(o *options) error {
	tlsSet := o.tlsCert != "" || o.tlsKey != "" || o.clientCA != ""
	if o.listen == "" {
		if tlsSet || o.insecureLoopback || o.roleMap != "" {
			return errors.New("--tls-cert, --tls-key, --client-ca, --role-map and --insecure-loopback need --listen")
		}
		return nil
	}
	if o.insecureLoopback {
		if tlsSet {
			return errors.New("--insecure-loopback and TLS flags exclude each other")
		}
		host, _, err := net.SplitHostPort(o.listen)
		if err != nil {
			return fmt.Errorf("--listen %q: %w", o.listen, err)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("--insecure-loopback: %q is not a loopback IP address (127.0.0.0/8 or ::1)", host)
		}
		return nil
	}
	if o.tlsCert == "" || o.tlsKey == "" || o.clientCA == "" {
		return errors.New("--listen needs --tls-cert, --tls-key and --client-ca (plaintext only with --insecure-loopback on a loopback address)")
	}
	return nil
}

func run(o options, log hclog.Logger) error {
	if err := checkOptions(&o); err != nil {
		return err
	}
	gc, err := engine.ApplyGCPercent(o.gcSet, o.gcPercent)
	if err != nil {
		return fmt.Errorf("--gc-percent: %w", err)
	}
	log.Info("garbage collector", "gc_percent", gc.Percent, "source", gc.Source)
	// Read everything that can be wrong before touching the system.
	var cfgFile *bootstrap.File
	if o.config != "" {
		f, err := bootstrap.Load(o.config)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		cfgFile = f
		defer cfgFile.Zero()
	}
	var tlsCreds credentials.TransportCredentials
	if o.listen != "" && !o.insecureLoopback {
		cfg, err := server.ServerTLSConfig(server.TLSFiles{Cert: o.tlsCert, Key: o.tlsKey, ClientCA: o.clientCA})
		if err != nil {
			return err
		}
		tlsCreds = credentials.NewTLS(cfg)
	}
	var roles *server.RoleMap
	if o.roleMap != "" {
		m, err := server.LoadRoleMap(o.roleMap)
		if err != nil {
			return fmt.Errorf("role map: %w", err)
		}
		roles = m
	}

	retransmit, err := o.ike.retransmit()
	if err != nil {
		return err
	}
	stack, err := startIKE(o.ike, log)
	if err != nil {
		return err
	}
	// Deferred first, so it runs after the engine has sent its DELETEs.
	defer stack.Close()
	links, err := iface.NewMonitor(log)
	if err != nil {
		return err
	}
	eng, err := engine.New(engine.Config{StateDir: o.stateDir, Links: links, Log: log, WatchBuffer: o.watchBuffer,
		Transport: stack.transport(), Dataplane: stack.dp, Retransmit: retransmit, MemoryTrim: engine.MemoryTrimFlag(o.memoryTrim),
		DHReuse: engine.DHReuseFlag(o.dhReuse)})
	if err != nil {
		links.Close()
		return err
	}
	defer eng.Close()
	if cfgFile != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := cfgFile.Apply(ctx, eng, log.Named("config"))
		cancel()
		cfgFile.Zero()
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(server.NewCollector(eng, server.EngineStats{E: eng}, log))
	apiMetrics, err := server.NewAPIMetrics(reg)
	if err != nil {
		return err
	}
	auth := server.NewAuthorizer(roles, log)
	newGRPC := func(extra ...grpc.ServerOption) *grpc.Server {
		opts := append([]grpc.ServerOption{
			grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
			// Metrics first, so refused calls are timed and counted too.
			grpc.ChainUnaryInterceptor(apiMetrics.UnaryInterceptor(), auth.UnaryInterceptor()),
			grpc.ChainStreamInterceptor(apiMetrics.StreamInterceptor(), auth.StreamInterceptor()),
		}, extra...)
		return grpc.NewServer(opts...)
	}
	srv := server.New(eng, log)

	type listener struct {
		g   *grpc.Server
		lis net.Listener
	}
	var servers []listener
	defer func() {
		for _, s := range servers {
			s.lis.Close()
		}
	}()
	unixLis, err := listenUnix(o.socket, o.socketGroup)
	if err != nil {
		return err
	}
	gUnix := newGRPC()
	srv.Register(gUnix)
	servers = append(servers, listener{gUnix, unixLis})
	log.Info("serving", "socket", o.socket, "state_dir", o.stateDir)
	if o.listen != "" {
		lis, err := net.Listen("tcp", o.listen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", o.listen, err)
		}
		var g *grpc.Server
		if tlsCreds != nil {
			g = newGRPC(grpc.Creds(tlsCreds))
		} else {
			g = newGRPC(grpc.Creds(insecure.NewCredentials()))
			log.Warn("serving plaintext on loopback: clients are viewers", "listen", lis.Addr().String())
		}
		srv.Register(g)
		servers = append(servers, listener{g, lis})
		log.Info("serving", "listen", lis.Addr().String(), "mtls", tlsCreds != nil)
	}
	var httpSrv *http.Server
	httpErr := make(chan error, 1)
	if o.metrics != "" {
		lis, err := net.Listen("tcp", o.metrics)
		if err != nil {
			return fmt.Errorf("metrics listen on %s: %w", o.metrics, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { httpErr <- httpSrv.Serve(lis) }()
		log.Info("serving metrics", "metrics", lis.Addr().String())
	}

	serveErr := make(chan error, len(servers))
	for _, s := range servers {
		go func() { serveErr <- s.g.Serve(s.lis) }()
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
	case err := <-serveErr:
		return fmt.Errorf("grpc server: %w", err)
	case err := <-httpErr:
		return fmt.Errorf("metrics server: %w", err)
	}
	// Health goes NOT_SERVING first, so probes and load balancers stop
	// sending new work; closing the engine ends every Watch stream with
	// UNAVAILABLE (operations already accepted complete), then in-flight
	// RPCs get shutdownTimeout to finish.
	srv.Shutdown()
	eng.Close()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() { defer wg.Done(); gracefulStop(s.g, o.shutdownTimeout, log) }()
	}
	if httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
		httpSrv.Shutdown(ctx)
		cancel()
	}
	wg.Wait()
	os.Remove(o.socket)
	log.Info("stopped")
	return nil
}

func gracefulStop(g *grpc.Server, timeout time.Duration, log hclog.Logger) {
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		log.Warn("graceful stop timed out, closing remaining streams")
		g.Stop()
		<-done
	}
}

// listenUnix listens on path, replacing a stale socket left by a crash,
// with mode 0660 and, if group is set, that group.
func listenUnix(path, group string) (net.Listener, error) {
	gid := -1
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("--socket-group: %w", err)
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return nil, fmt.Errorf("--socket-group %s: gid %q", group, g.Gid)
		}
	}
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
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			lis.Close()
			return nil, fmt.Errorf("--socket-group: %w", err)
		}
	}
	if err := os.Chmod(path, 0o660); err != nil {
		lis.Close()
		return nil, err
	}
	return lis, nil
}

// healthcheck asks the daemon on the socket for its health (grpc.health.v1)
// and returns the exit code: 0 SERVING, 1 anything else. It is the
// Kubernetes exec probe (deploy/k8s).
func healthcheck(args []string) int {
	fs := flag.NewFlagSet("mifsecd healthcheck", flag.ExitOnError)
	socket := fs.String("socket", "/run/mifsec/mifsec.sock", "unix socket of the daemon")
	service := fs.String("service", "", "service to check (empty: the whole server)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for an answer")
	fs.Parse(args)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+*socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("localhost"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: *service})
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	fmt.Println(resp.GetStatus().String())
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return 1
	}
	return 0
}
