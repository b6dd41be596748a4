package topo

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// IperfOptions configure one iperf3 TCP run.
type IperfOptions struct {
	Server   netip.Addr    // address the server binds and the client targets; required
	Bind     netip.Addr    // client source address (iperf3 -B); zero = by route
	Duration time.Duration // test length, whole seconds (iperf3 -t); 1 s when below
	Port     int           // 5201 when 0
	Reverse  bool          // server sends (iperf3 -R)
	Streams  int           // parallel streams (iperf3 -P); 1 when 0
}

// IperfResult is the throughput measured by iperf3.
type IperfResult struct {
	SentBps     float64 // end.sum_sent.bits_per_second
	ReceivedBps float64 // end.sum_received.bits_per_second (the goodput)
	Retransmits int
	Duration    time.Duration
}

func (r IperfResult) String() string {
	return fmt.Sprintf("%.1f Mbit/s received (%.1f sent, %d retransmits, %v)",
		r.ReceivedBps/1e6, r.SentBps/1e6, r.Retransmits, r.Duration)
}

// Iperf3 runs a one-off iperf3 server in server and a client in client for
// opts.Duration and returns the throughput. Both processes end before it
// returns; the run is bounded by ctx and by Duration plus 20 s.
func Iperf3(ctx context.Context, client, server *Netns, opts IperfOptions) (IperfResult, error) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		return IperfResult{}, fmt.Errorf("topo: iperf3 not installed: %w", err)
	}
	if !opts.Server.IsValid() {
		return IperfResult{}, fmt.Errorf("topo: iperf3: no server address")
	}
	secs := int(math.Ceil(opts.Duration.Seconds()))
	if secs < 1 {
		secs = 1
	}
	if opts.Port == 0 {
		opts.Port = 5201
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+20*time.Second)
	defer cancel()

	port := strconv.Itoa(opts.Port)
	srv := server.Command(ctx, "iperf3", "-s", "-1", "--forceflush", "-B", opts.Server.String(), "-p", port)
	out := &watchWriter{want: "Server listening", seen: make(chan struct{})}
	srv.Stdout, srv.Stderr = out, out
	if err := srv.Start(); err != nil {
		return IperfResult{}, fmt.Errorf("topo: start iperf3 server: %w", err)
	}
	exited := make(chan struct{})
	go func() { srv.Wait(); close(exited) }()
	defer func() {
		// -1 makes the server exit after one test; kill it if it did not.
		select {
		case <-exited:
		case <-time.After(2 * time.Second):
			srv.Process.Kill()
			<-exited
		}
	}()
	select {
	case <-out.seen:
	case <-exited:
		return IperfResult{}, fmt.Errorf("topo: iperf3 server on %s did not start: %s", opts.Server, strings.TrimSpace(out.String()))
	case <-ctx.Done():
		return IperfResult{}, fmt.Errorf("topo: iperf3 server on %s: %w", opts.Server, ctx.Err())
	}

	args := []string{"-c", opts.Server.String(), "-p", port, "-t", strconv.Itoa(secs), "-J"}
	if opts.Bind.IsValid() {
		args = append(args, "-B", opts.Bind.String())
	}
	if opts.Reverse {
		args = append(args, "-R")
	}
	if opts.Streams > 1 {
		args = append(args, "-P", strconv.Itoa(opts.Streams))
	}
	cli := client.Command(ctx, "iperf3", args...)
	report, err := cli.Output()
	res, perr := parseIperf(report)
	if perr != nil {
		if err != nil {
			return IperfResult{}, fmt.Errorf("topo: iperf3 %s: %v; %v", strings.Join(args, " "), err, perr)
		}
		return IperfResult{}, fmt.Errorf("topo: iperf3 %s: %v", strings.Join(args, " "), perr)
	}
	if err != nil {
		return IperfResult{}, fmt.Errorf("topo: iperf3 %s: %w", strings.Join(args, " "), err)
	}
	return res, nil
}

// parseIperf reads iperf3's -J output.
func parseIperf(out []byte) (IperfResult, error) {
	var j struct {
		Error string `json:"error"`
		End   struct {
			SumSent struct {
				Seconds     float64 `json:"seconds"`
				BPS         float64 `json:"bits_per_second"`
				Retransmits int     `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BPS float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &j); err != nil {
		return IperfResult{}, fmt.Errorf("bad JSON output: %v", err)
	}
	if j.Error != "" {
		return IperfResult{}, fmt.Errorf("iperf3 reported: %s", j.Error)
	}
	if j.End.SumReceived.BPS == 0 && j.End.SumSent.BPS == 0 {
		return IperfResult{}, fmt.Errorf("no throughput in the output")
	}
	return IperfResult{
		SentBps:     j.End.SumSent.BPS,
		ReceivedBps: j.End.SumReceived.BPS,
		Retransmits: j.End.SumSent.Retransmits,
		Duration:    time.Duration(j.End.SumSent.Seconds * float64(time.Second)),
	}, nil
}

// watchWriter collects a process's output and closes seen once want
// appeared in it.
type watchWriter struct {
	mu   sync.Mutex
	buf  strings.Builder
	want string
	seen chan struct{}
	done bool
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.want) {
		w.done = true
		close(w.seen)
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
