// Command mobility runs sequenced UDP flows across namespaces and reports,
// interval by interval, what each flow lost, duplicated or reordered and on
// which link its ESP left: the traffic side of the mobility demo
// (deploy/demo/demo.sh). Its tests hold the mobility benchmarks
// (bench/mobility.sh, docs/benchmarks-mobility.md).
//
//	mobility flow --from UE_NETNS --to SRV_NETNS --src 10.45.0.1 --dst 192.0.2.10 \
//	    --flow voice:7301:50 --flow video:7302:1000:1200 --links ran0,wlan0
//
// Senders run in --from (bound to --src), receivers in --to (on --dst);
// the ESP sniffers watch --links in --from. Each line read from standard
// input ("report [LABEL]") prints one line per flow for the datagrams sent
// since the previous report, then the ESP packets each link sent in that
// time, then a line with a single "."; end of input prints a last report
// and stops.
//
// The flows are test/mif's (package mif): sender, receiver and statistics
// are shared with the end-to-end tests.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mifsec/mifsec/test/mif"
	"github.com/mifsec/mifsec/test/topo"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "flow" {
		fmt.Fprintln(os.Stderr, "usage: mobility flow [flags]  (mobility flow -h for the flags)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runFlow(ctx, os.Args[2:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mobility:", err)
		os.Exit(1)
	}
}

// flowSpec is one --flow: NAME:PORT[:RATE[:SIZE]].
type flowSpec struct {
	name string
	port uint16
	rate int
	size int
}

func parseFlowSpec(s string) (flowSpec, error) {
	f := strings.Split(s, ":")
	if len(f) < 2 || len(f) > 4 || f[0] == "" {
		return flowSpec{}, fmt.Errorf("flow %q: want NAME:PORT[:RATE[:SIZE]]", s)
	}
	sp := flowSpec{name: f[0], rate: 1000}
	port, err := strconv.ParseUint(f[1], 10, 16)
	if err != nil || port == 0 {
		return flowSpec{}, fmt.Errorf("flow %q: bad port %q", s, f[1])
	}
	sp.port = uint16(port)
	if len(f) > 2 {
		if sp.rate, err = strconv.Atoi(f[2]); err != nil || sp.rate < 1 || sp.rate > 100000 {
			return flowSpec{}, fmt.Errorf("flow %q: rate %q: want 1..100000 datagrams/s", s, f[2])
		}
	}
	if len(f) > 3 {
		if sp.size, err = strconv.Atoi(f[3]); err != nil || sp.size < 24 || sp.size > 1400 {
			return flowSpec{}, fmt.Errorf("flow %q: size %q: want 24..1400 bytes", s, f[3])
		}
	}
	return sp, nil
}

type flowList []flowSpec

func (l *flowList) String() string { return fmt.Sprint(*l) }
func (l *flowList) Set(s string) error {
	sp, err := parseFlowSpec(s)
	if err != nil {
		return err
	}
	for _, o := range *l {
		if o.name == sp.name || o.port == sp.port {
			return fmt.Errorf("flow %q: name or port used twice", s)
		}
	}
	*l = append(*l, sp)
	return nil
}

// running is one flow with its receiver and the last reported sequence.
type running struct {
	spec flowSpec
	id   uint32
	s    *mif.Sender
	r    *mif.Receiver
	last uint64
}

func runFlow(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("mobility flow", flag.ContinueOnError)
	from := fs.String("from", "", "network namespace the senders run in (empty: this one)")
	to := fs.String("to", "", "network namespace the receivers run in (empty: this one)")
	src := fs.String("src", "", "source address of the flows (the inner address)")
	dst := fs.String("dst", "", "receivers' address")
	links := fs.String("links", "", "comma-separated links in --from whose outgoing ESP is counted")
	var flows flowList
	fs.Var(&flows, "flow", "NAME:PORT[:RATE[:SIZE]], repeatable (rate 1000/s, size 160 bytes by default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	srcA, err := netip.ParseAddr(*src)
	if err != nil {
		return fmt.Errorf("--src: %w", err)
	}
	dstA, err := netip.ParseAddr(*dst)
	if err != nil {
		return fmt.Errorf("--dst: %w", err)
	}
	if len(flows) == 0 {
		return errors.New("no --flow given")
	}
	fromNS, toNS := netns(*from), netns(*to)
	var sniffers []*sniffer
	defer func() {
		for _, s := range sniffers {
			s.Close()
		}
	}()
	if *links != "" {
		for _, l := range strings.Split(*links, ",") {
			s, err := sniff(fromNS, l)
			if err != nil {
				return err
			}
			sniffers = append(sniffers, s)
		}
	}
	var rs []*running
	defer func() {
		for _, f := range rs {
			f.s.Stop()
			f.r.Close()
		}
	}()
	for i, sp := range flows {
		r, err := mif.Listen(toNS, netip.AddrPortFrom(dstA, sp.port))
		if err != nil {
			return err
		}
		f := &running{spec: sp, id: uint32(i + 1), r: r}
		rs = append(rs, f)
		f.s, err = mif.StartFlow(ctx, fromNS, mif.FlowOptions{Src: netip.AddrPortFrom(srcA, 0), Dst: r.Addr(),
			ID: f.id, Rate: sp.rate, Size: sp.size})
		if err != nil {
			f.s = nil
			rs = rs[:len(rs)-1]
			r.Close()
			return err
		}
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	lastESP := make([]int, len(sniffers))
	for {
		var line string
		var open bool
		select {
		case <-ctx.Done():
			return nil
		case line, open = <-lines:
		}
		if open && strings.TrimSpace(line) == "" {
			continue
		}
		if open && !strings.HasPrefix(strings.TrimSpace(line), "report") {
			fmt.Fprintf(out, "unknown command %q (want: report [LABEL])\n.\n", line)
			continue
		}
		report(ctx, out, rs, sniffers, lastESP)
		if !open {
			return nil
		}
	}
}

func netns(name string) *topo.Netns {
	if name == "" {
		return nil
	}
	return topo.Existing(name)
}

// report prints each flow's datagrams since the last report (after the
// ones in flight arrived) and the ESP each link sent meanwhile.
func report(ctx context.Context, out io.Writer, rs []*running, sniffers []*sniffer, lastESP []int) {
	upTo := make([]uint64, len(rs))
	for i, f := range rs {
		upTo[i] = f.s.Sent()
	}
	esp := make([]int, len(sniffers))
	for i, s := range sniffers {
		n := s.Count()
		esp[i], lastESP[i] = n-lastESP[i], n
	}
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for i, f := range rs {
		f.r.Drain(dctx, f.id, 150*time.Millisecond)
		st := segment(f.r.Arrivals(f.id), f.last, upTo[i])
		f.last = upTo[i]
		fmt.Fprintf(out, "  %-8s udp/%-5d %5d/s: %s\n", f.spec.name, f.spec.port, f.spec.rate, brief(st))
	}
	for i, s := range sniffers {
		fmt.Fprintf(out, "  ESP out %-6s %6d packets\n", s.link, esp[i])
	}
	fmt.Fprintln(out, ".")
}

// segment is the statistics of the datagrams with sequence numbers in
// (lo, hi]: the part of a flow sent between two reports. Copies that
// arrive twice within it are duplicates; datagrams of other segments are
// left out.
func segment(arr []mif.Arrival, lo, hi uint64) mif.Stats {
	part := make([]mif.Arrival, 0, len(arr))
	for _, a := range arr {
		if a.Seq > lo && a.Seq <= hi {
			a.Seq -= lo
			part = append(part, a)
		}
	}
	if hi < lo {
		hi = lo
	}
	return mif.Analyze(part, hi-lo)
}

func brief(s mif.Stats) string {
	return fmt.Sprintf("sent %6d  lost %4d  duplicated %d  reordered %d  longest gap %v",
		s.Sent, s.Lost, s.Duplicates, s.Reordered, s.MaxGap.Round(100*time.Microsecond))
}
