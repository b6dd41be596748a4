// Command vicibench drives strongSwan's charon through its vici socket the
// way ikebench drives mifsec: it initiates pre-loaded connections
// c<first>..c<last> (IKE and CHILD config both named c<i>) with -conc
// concurrent blocking "initiate" requests, one vici connection each, and
// prints the rate, the latency and the CPU (utime+stime) of both charons
// per established SA, read from /proc before and after.
//
//	vicibench -socket /tmp/sw/a/charon.vici -n 1000 -conc 16 -pids 123,456
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	socket := flag.String("socket", "", "vici socket of the initiating charon")
	first := flag.Int("first", 1, "first connection number")
	n := flag.Int("n", 100, "connections to initiate")
	conc := flag.Int("conc", 16, "concurrent initiate requests")
	window := flag.Int("window", 100, "SAs per rate window (first and last window reported)")
	pids := flag.String("pids", "", "initiator,responder charon PIDs (CPU per SA)")
	timeout := flag.Int("timeout-ms", 30000, "initiate timeout")
	flag.Parse()
	if err := run(*socket, *first, *n, *conc, *window, *pids, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "vicibench:", err)
		os.Exit(1)
	}
}

func run(socket string, first, n, conc, window int, pidList string, timeout int) error {
	var pids []int
	for _, f := range strings.Split(pidList, ",") {
		if f == "" {
			continue
		}
		p, err := strconv.Atoi(f)
		if err != nil {
			return fmt.Errorf("-pids: %w", err)
		}
		pids = append(pids, p)
	}
	cpu0 := make([]time.Duration, len(pids))
	for i, p := range pids {
		c, err := cpuTime(p)
		if err != nil {
			return err
		}
		cpu0[i] = c
	}
	var (
		next    atomic.Int64
		mu      sync.Mutex
		done    []time.Duration
		lat     []time.Duration
		fails   int
		firstEr error
		wg      sync.WaitGroup
	)
	start := time.Now()
	for range conc {
		c, err := dial(socket)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				name := fmt.Sprintf("c%d", first+i)
				t0 := time.Now()
				r, err := request(c, "initiate", [][2]string{{"child", name}, {"ike", name},
					{"timeout", strconv.Itoa(timeout)}, {"loglevel", "-1"}})
				t1 := time.Now()
				mu.Lock()
				switch {
				case err == nil && r["success"] == "yes":
					done = append(done, t1.Sub(start))
					lat = append(lat, t1.Sub(t0))
				default:
					fails++
					if firstEr == nil {
						if err == nil {
							err = fmt.Errorf("%s: %s", name, r["errmsg"])
						}
						firstEr = err
					}
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	cpu := make([]float64, 2)
	ok := len(done)
	for i, p := range pids {
		c, err := cpuTime(p)
		if err != nil {
			return err
		}
		if i < 2 {
			cpu[i] = float64((c - cpu0[i]).Microseconds()) / 1000 / float64(max(ok, 1))
		}
	}
	slices.Sort(done)
	slices.Sort(lat)
	w := min(window, ok)
	var rFirst, rLast float64
	if w > 0 {
		rFirst = float64(w) / done[w-1].Seconds()
		rLast = rFirst
		if ok > w {
			rLast = float64(w) / (done[ok-1] - done[ok-1-w]).Seconds()
		}
	}
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds()) / 1000
	}
	fmt.Printf("strongswan n=%d conc=%d ok=%d fail=%d wall_s=%.3f rate=%.1f lat_med_ms=%.2f lat_p99_ms=%.2f "+
		"cpu_init_ms=%.3f cpu_resp_ms=%.3f rate_first%d=%.1f rate_last%d=%.1f last_over_first=%.3f\n",
		n, conc, ok, fails, wall.Seconds(), float64(ok)/wall.Seconds(), pct(0.5), pct(0.99),
		cpu[0], cpu[1], w, rFirst, w, rLast, rLast/max(rFirst, 1e-9))
	if firstEr != nil {
		return fmt.Errorf("%d failed, first: %w", fails, firstEr)
	}
	return nil
}

// dial connects to the vici socket, retrying while its short listen
// backlog is full.
func dial(path string) (net.Conn, error) {
	for i := 0; ; i++ {
		c, err := net.Dial("unix", path)
		if err == nil || i == 100 || !errors.Is(err, syscall.EAGAIN) {
			return c, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// vici wire format (strongSwan src/libcharon/plugins/vici/README.md): a
// 32-bit big-endian length, then the packet type and its body.
const (
	cmdRequest  = 0
	cmdResponse = 1
	cmdUnknown  = 2
	event       = 7

	elSectionStart = 1
	elSectionEnd   = 2
	elKeyValue     = 3
	elListStart    = 4
	elListItem     = 5
	elListEnd      = 6
)

// request sends a command and returns the top-level key/values of its
// response (events in between are skipped).
func request(c net.Conn, cmd string, kvs [][2]string) (map[string]string, error) {
	b := []byte{cmdRequest, byte(len(cmd))}
	b = append(b, cmd...)
	for _, kv := range kvs {
		b = append(b, elKeyValue, byte(len(kv[0])))
		b = append(b, kv[0]...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(kv[1])))
		b = append(b, kv[1]...)
	}
	pkt := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
	if _, err := c.Write(append(pkt, b...)); err != nil {
		return nil, err
	}
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return nil, err
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(c, body); err != nil {
			return nil, err
		}
		if len(body) == 0 {
			return nil, errors.New("empty vici packet")
		}
		switch body[0] {
		case cmdResponse:
			return parse(body[1:])
		case cmdUnknown:
			return nil, fmt.Errorf("vici: unknown command %q", cmd)
		case event:
			continue
		}
	}
}

func parse(b []byte) (map[string]string, error) {
	out := map[string]string{}
	depth := 0
	bad := errors.New("vici: truncated message")
	for i := 0; i < len(b); {
		t := b[i]
		i++
		switch t {
		case elSectionStart, elListStart:
			if i >= len(b) || i+1+int(b[i]) > len(b) {
				return nil, bad
			}
			i += 1 + int(b[i])
			depth++
		case elSectionEnd, elListEnd:
			depth--
		case elListItem:
			if i+2 > len(b) {
				return nil, bad
			}
			i += 2 + int(binary.BigEndian.Uint16(b[i:]))
		case elKeyValue:
			if i >= len(b) {
				return nil, bad
			}
			kl := int(b[i])
			if i+1+kl+2 > len(b) {
				return nil, bad
			}
			k := string(b[i+1 : i+1+kl])
			i += 1 + kl
			vl := int(binary.BigEndian.Uint16(b[i:]))
			if i+2+vl > len(b) {
				return nil, bad
			}
			if depth == 0 {
				out[k] = string(b[i+2 : i+2+vl])
			}
			i += 2 + vl
		default:
			return nil, fmt.Errorf("vici: element type %d", t)
		}
	}
	return out, nil
}

// cpuTime is utime+stime of a process in 10 ms ticks (/proc/PID/stat).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+2:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond, nil
}
