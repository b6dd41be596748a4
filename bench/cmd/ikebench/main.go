// Command ikebench measures mifsec's IKE engine as a daemon runs it: one
// process per end, each embedding engine.Engine with the real UDP transport
// (engine/transport) and a null data plane (SAs negotiated and handed to a
// data plane that only counts them), or the userspace data plane for the
// first-ESP-packet latency. bench/handshake.sh and bench/scale.sh run it in
// two network namespaces joined by a veth pair.
//
// The responder serves one connection (remote identity %any, virtual IPs
// from a pool) until SIGTERM. The initiator loads N connections c1..cN
// (identities c<i>@ikebench) from a configuration file written before the
// engine starts (as a restart restores them: no per-connection persist),
// then establishes all of them with -conc concurrent InitiateConnection
// calls, and reads its own and the responder's CPU (utime+stime) and RSS
// from /proc before and after. It prints one line of key=value results.
//
//	ikebench -role responder -state /tmp/r -pool 10.80.0.0/16 -ready /tmp/r/ready
//	ikebench -role initiator -state /tmp/i -peer 198.18.0.2 -n 2000 -conc 16 -peer-pid PID
//	ikebench -role initiator ... -dataplane userspace -esp-samples 50 -sniff IFACE
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mifsec/mifsec/engine"
	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/iface"
	"github.com/mifsec/mifsec/engine/logbuf"
	"github.com/mifsec/mifsec/engine/transport"
)

type options struct {
	role       string
	state      string
	peer       string
	psk        string
	pool       string
	ike, esp   string
	localTS    string
	remoteTS   string
	dataplane  string
	tun        string
	port       int
	natPort    int
	n, conc    int
	window     int
	peerPID    int
	settle     time.Duration
	ready      string
	stats      string
	cpuprofile string
	memprofile string
	logLevel   string
	logFlush   time.Duration
	espSamples int
	sniff      string
	espDst     string
	timeout    time.Duration
	idPrefix   string
	hold       bool
	gcPercent  int
	memoryTrim time.Duration
	dhReuse    time.Duration
	gcSet      bool
}

func main() {
	var o options
	flag.StringVar(&o.role, "role", "", "initiator or responder")
	flag.StringVar(&o.state, "state", "", "state directory (emptied first)")
	flag.StringVar(&o.peer, "peer", "", "initiator: the responder's address")
	flag.StringVar(&o.psk, "psk", "ikebench-psk-0123456789abcdef", "pre-shared key of both ends")
	flag.StringVar(&o.pool, "pool", "10.80.0.0/16", "responder: virtual IP pool (empty: no virtual IPs)")
	flag.StringVar(&o.ike, "ike", "aes128gcm16-prfsha256-x25519", "IKE proposal")
	flag.StringVar(&o.esp, "esp", "aes128gcm16", "ESP proposal")
	flag.StringVar(&o.localTS, "local-ts", "10.75.0.0/24", "responder: local traffic selector")
	flag.StringVar(&o.remoteTS, "remote-ts", "10.75.0.0/24", "initiator: remote traffic selector")
	flag.StringVar(&o.dataplane, "dataplane", "null", "null (count SAs only) or userspace (TUN + ESP in Go)")
	flag.StringVar(&o.tun, "tun", "ikb0", "userspace data plane: TUN name")
	flag.IntVar(&o.port, "port", 500, "IKE port")
	flag.IntVar(&o.natPort, "nat-port", 4500, "NAT-T port (userspace data plane)")
	flag.IntVar(&o.n, "n", 1000, "initiator: connections to establish")
	flag.IntVar(&o.conc, "conc", 16, "initiator: concurrent InitiateConnection calls")
	flag.IntVar(&o.window, "window", 100, "initiator: SAs per rate window (first and last window reported)")
	flag.IntVar(&o.peerPID, "peer-pid", 0, "initiator: PID of the responder process (CPU and RSS)")
	flag.DurationVar(&o.settle, "settle", 0, "initiator: wait this long after the last SA before reading RSS")
	flag.StringVar(&o.ready, "ready", "", "responder: file created once it serves")
	flag.StringVar(&o.stats, "stats", "", "responder: file a JSON line of Go heap figures is written to on SIGUSR1 (after a GC)")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the measured part")
	flag.StringVar(&o.memprofile, "memprofile", "", "write a heap profile when the heap figures are taken (responder: on SIGUSR1; initiator: after the last SA)")
	flag.StringVar(&o.logLevel, "log-level", "info", "log level (mifsecd's default is info)")
	flag.DurationVar(&o.logFlush, "log-flush", logbuf.DefaultInterval, "as mifsecd's --log-flush (0 = each line at once)")
	flag.IntVar(&o.espSamples, "esp-samples", 0, "initiator: measure InitiateConnection to the first ESP packet this many times (userspace data plane)")
	flag.StringVar(&o.sniff, "sniff", "", "initiator: interface the first ESP packet is seen on")
	flag.StringVar(&o.espDst, "esp-dst", "10.75.0.1", "initiator: inner address the first packet goes to")
	flag.StringVar(&o.idPrefix, "id-prefix", "c", "initiator: identities are <prefix><i>@ikebench (unique across initiator processes)")
	flag.BoolVar(&o.hold, "hold", false, "initiator: keep the SAs after reporting, until SIGTERM (memory at scale)")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	flag.IntVar(&o.gcPercent, "gc-percent", engine.DefaultGCPercent, "garbage collector target as mifsecd's --gc-percent (GOGC from the environment when not given)")
	flag.DurationVar(&o.memoryTrim, "memory-trim", engine.DefaultMemoryTrim, "as mifsecd's --memory-trim (0 = never)")
	flag.DurationVar(&o.dhReuse, "dh-reuse", engine.DefaultDHReuse, "as mifsecd's --dh-reuse (0 = a fresh pair each)")
	flag.Parse()
	flag.Visit(func(f *flag.Flag) { o.gcSet = o.gcSet || f.Name == "gc-percent" })
	if o.memprofile != "" {
		runtime.MemProfileRate = 512 // fine-grained: per-SA structures are small
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "ikebench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.state == "" {
		return errors.New("-state is required")
	}
	if err := os.RemoveAll(o.state); err != nil {
		return err
	}
	if err := os.MkdirAll(o.state, 0o700); err != nil {
		return err
	}
	out := logbuf.New(os.Stderr, o.logFlush) // as mifsecd
	defer out.Close()
	log := hclog.New(&hclog.LoggerOptions{Name: "ikebench-" + o.role, Level: hclog.LevelFromString(o.logLevel), Output: out})
	// The collector set up as mifsecd sets it (same code, same default).
	gc, err := engine.ApplyGCPercent(o.gcSet, o.gcPercent)
	if err != nil {
		return fmt.Errorf("-gc-percent: %w", err)
	}
	log.Info("garbage collector", "gc_percent", gc.Percent, "source", gc.Source)
	switch o.role {
	case "responder":
		return respond(o, log)
	case "initiator":
		return initiate(o, log)
	}
	return fmt.Errorf("-role must be initiator or responder, not %q", o.role)
}

// stack is the IKE transport and data plane of one end.
type stack struct {
	tr    *transport.Transport
	dp    dataplane.DataPlane
	close func()
}

func newStack(o options, log hclog.Logger) (*stack, error) {
	s := &stack{close: func() {}}
	var encap transport.Encap
	switch o.dataplane {
	case "null":
		s.dp = newNullDP()
	case "userspace":
		dp, enc, err := userspacePlane(o, log)
		if err != nil {
			return nil, err
		}
		s.dp, encap = dp, enc
	default:
		return nil, fmt.Errorf("-dataplane must be null or userspace")
	}
	tr, err := transport.New(transport.Config{Port: uint16(o.port), NATPort: uint16(o.natPort)}, encap, log)
	if err != nil {
		s.dp.Close()
		return nil, err
	}
	s.tr = tr
	s.close = func() {
		tr.Close()
		s.dp.Close()
	}
	return s, nil
}

func newEngine(o options, log hclog.Logger, s *stack) (*engine.Engine, error) {
	links, err := iface.NewMonitor(log)
	if err != nil {
		return nil, err
	}
	cfg := engine.Config{StateDir: o.state, Links: links, Log: log, MemoryTrim: engine.MemoryTrimFlag(o.memoryTrim),
		DHReuse: engine.DHReuseFlag(o.dhReuse)}
	if s != nil {
		cfg.Transport, cfg.Dataplane = s.tr, s.dp
	}
	e, err := engine.New(cfg)
	if err != nil {
		links.Close()
		return nil, err
	}
	return e, nil
}

func respond(o options, log hclog.Logger) error {
	s, err := newStack(o, log)
	if err != nil {
		return err
	}
	defer s.close()
	e, err := newEngine(o, log, s)
	if err != nil {
		return err
	}
	defer e.Close()
	ctx := context.Background()
	if _, err := e.CreateSecret(ctx, "psk", engine.SecretPSK, []byte(o.psk)); err != nil {
		return err
	}
	spec := engine.ConnectionSpec{Role: engine.RoleResponder, LocalID: "@gw.ikebench", RemoteID: "%any",
		LocalAuth: engine.AuthSpec{PSKSecret: "psk"}, RemoteAuth: engine.AuthSpec{PSKSecret: "psk"},
		IKEProposals: []string{o.ike}, ESPProposals: []string{o.esp},
		Children: []engine.ChildSpec{{Name: "net", LocalTS: []string{o.localTS}}}}
	if o.pool != "" {
		if _, err := e.CreatePool(ctx, "ue", engine.PoolSpec{Ranges: []string{o.pool}}); err != nil {
			return err
		}
		spec.Pool = "ue"
	}
	if _, err := e.CreateConnection(ctx, "gw", spec); err != nil {
		return err
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	defer signal.Stop(sig)
	if o.ready != "" {
		if err := os.WriteFile(o.ready, []byte(fmt.Sprintln(os.Getpid())), 0o600); err != nil {
			return err
		}
	}
	for v := range sig {
		if v != syscall.SIGUSR1 {
			break
		}
		if err := writeHeapProfile(o.memprofile); err != nil {
			log.Error("heap profile", "error", err)
		}
		if err := writeHeapStats(o.stats, e); err != nil {
			log.Error("heap stats", "error", err)
		}
	}
	st, err := e.Stats(ctx)
	if err == nil {
		fmt.Printf("responder ike_sas=%d handshakes_ok=%d handshakes_failed=%d ike_in=%d ike_out=%d cookies=%d\n",
			st.IKESAs, st.HandshakesOK, st.HandshakesFailed, st.IKEIn, st.IKEOut, st.CookiesSent)
	}
	return nil
}

// heapStats is what SIGUSR1 writes: the Go heap after a collection.
type heapStats struct {
	HeapInuse uint64 `json:"heap_inuse"`
	HeapAlloc uint64 `json:"heap_alloc"`
	Sys       uint64 `json:"sys"`
	// What else the runtime holds (resident unless released).
	HeapIdle     uint64 `json:"heap_idle"`
	HeapReleased uint64 `json:"heap_released"`
	StackInuse   uint64 `json:"stack_inuse"`
	MSpanInuse   uint64 `json:"mspan_inuse"`
	GCSys        uint64 `json:"gc_sys"`
	OtherSys     uint64 `json:"other_sys"`
	IKESAs       int    `json:"ike_sas"`
}

func writeHeapStats(path string, e *engine.Engine) error {
	if path == "" {
		return errors.New("no -stats file")
	}
	hs, err := heapNow()
	if err != nil {
		return err
	}
	st, err := e.Stats(context.Background())
	if err != nil {
		return err
	}
	hs.IKESAs = st.IKESAs
	b, _ := json.Marshal(hs)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func heapNow() (heapStats, error) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return heapStats{HeapInuse: m.HeapInuse, HeapAlloc: m.HeapAlloc, Sys: m.Sys, HeapIdle: m.HeapIdle,
		HeapReleased: m.HeapReleased, StackInuse: m.StackInuse, MSpanInuse: m.MSpanInuse, GCSys: m.GCSys,
		OtherSys: m.OtherSys}, nil
}

// writeHeapProfile writes the live heap (after a collection) to path.
func writeHeapProfile(path string) error {
	if path == "" {
		return nil
	}
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("heap").WriteTo(f, 0)
}

// readPeerHeap asks the responder for its heap figures (SIGUSR1) and
// reads them from its -stats file.
func readPeerHeap(pid int, path string) (heapStats, error) {
	var hs heapStats
	if pid == 0 || path == "" {
		return hs, errors.New("no peer")
	}
	os.Remove(path)
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		return hs, err
	}
	for range 100 {
		b, err := os.ReadFile(path)
		if err == nil {
			return hs, json.Unmarshal(b, &hs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return hs, errors.New("peer wrote no heap figures")
}

// writeConnections writes the initiator's configuration: the secret through
// the engine (so its file is the engine's), then n connections straight
// into config.json in the engine's persisted format, restored on start.
func writeConnections(o options, log hclog.Logger) error {
	e, err := newEngine(o, log, nil)
	if err != nil {
		return err
	}
	if _, err := e.CreateSecret(context.Background(), "psk", engine.SecretPSK, []byte(o.psk)); err != nil {
		e.Close()
		return err
	}
	if err := e.Close(); err != nil {
		return err
	}
	type conn struct {
		ID string `json:"id"`
		engine.ConnectionSpec
		CreateTime time.Time `json:"create_time"`
		UpdateTime time.Time `json:"update_time"`
	}
	doc := struct {
		Version     int    `json:"version"`
		Interfaces  []any  `json:"interfaces"`
		Connections []conn `json:"connections"`
	}{Version: 1, Interfaces: []any{}}
	now := time.Now()
	for i := 1; i <= o.n; i++ {
		doc.Connections = append(doc.Connections, conn{ID: fmt.Sprintf("c%d", i), CreateTime: now, UpdateTime: now,
			ConnectionSpec: engine.ConnectionSpec{Role: engine.RoleInitiator,
				LocalID: fmt.Sprintf("%s%d@ikebench", o.idPrefix, i), RemoteID: "@gw.ikebench",
				LocalAuth: engine.AuthSpec{PSKSecret: "psk"}, RemoteAuth: engine.AuthSpec{PSKSecret: "psk"},
				IKEProposals: []string{o.ike}, ESPProposals: []string{o.esp}, RemoteAddrs: []string{o.peer},
				VirtualIP4: o.pool != "",
				Children:   []engine.ChildSpec{{Name: "net", RemoteTS: []string{o.remoteTS}, StartAction: engine.StartNone}}}})
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(o.state, "config.json"), b, 0o600)
}

func initiate(o options, log hclog.Logger) error {
	if _, err := netip.ParseAddr(o.peer); err != nil {
		return fmt.Errorf("-peer: %w", err)
	}
	if o.espSamples > 0 {
		o.n = o.espSamples
	}
	if err := writeConnections(o, log); err != nil {
		return fmt.Errorf("writing the configuration: %w", err)
	}
	s, err := newStack(o, log)
	if err != nil {
		return err
	}
	defer s.close()
	e, err := newEngine(o, log, s)
	if err != nil {
		return err
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	if o.espSamples > 0 {
		return firstESP(ctx, o, e)
	}
	if err := establish(ctx, o, e, s); err != nil {
		return err
	}
	if o.hold {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		signal.Stop(sig)
	}
	return nil
}
