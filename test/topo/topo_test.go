package topo

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCreatorPid(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{"mfsw123-4-gw", 123, true},
		{"mfsw7-1-ue", 7, true},
		{"mfsw-1-ue", 0, false},
		{"mfswx-1-ue", 0, false},
		{"mfsw123", 0, false},
		{"mfs123-4-gw", 0, false},
		{"other", 0, false},
		{"mfsw0-1-a", 0, false},
	} {
		pid, ok := creatorPid(Prefix, tc.name)
		if pid != tc.pid || ok != tc.ok {
			t.Errorf("creatorPid(%q) = %d, %v; want %d, %v", tc.name, pid, ok, tc.pid, tc.ok)
		}
	}
}

func TestChecksum(t *testing.T) {
	// RFC 1071 §3 numerical example: the one's complement sum is ddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got, want := checksum(b), ^uint16(0xddf2); got != want {
		t.Fatalf("checksum = %#04x, want %#04x", got, want)
	}
	odd := []byte{0x01}
	if got, want := checksum(odd), ^uint16(0x0100); got != want {
		t.Fatalf("odd checksum = %#04x, want %#04x", got, want)
	}
}

func TestParseIperf(t *testing.T) {
	for _, tc := range []struct {
		file    string
		wantErr string
		wantBps float64
	}{
		{"iperf-ok.json", "", 1.5e9},
		{"iperf-error.json", "unable to connect", 0},
		{"iperf-empty.json", "no throughput", 0},
		{"iperf-garbage.txt", "bad JSON", 0},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			r, err := parseIperf(b)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.ReceivedBps != tc.wantBps || r.Retransmits != 3 || r.Duration != time.Second {
				t.Fatalf("result %+v", r)
			}
		})
	}
}

func TestSweepStale(t *testing.T) {
	Require(t)
	ctx := context.Background()
	// pid_max is at most 2^22, so this creator can never be alive.
	live := NewNetns(t, "live") // runs the automatic sweep first
	stale := Prefix + "99999999-1-stale"
	if _, err := run(ctx, "ip", "netns", "add", stale); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run(ctx, "ip", "netns", "del", stale) })
	removed, err := SweepStale(ctx, Prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != stale {
		t.Fatalf("removed %v, want [%s]", removed, stale)
	}
	if _, err := os.Stat(filepath.Join(netnsDir, live.Name())); err != nil {
		t.Fatalf("live namespace swept: %v", err)
	}
}

func pingOK(t *testing.T, n *Netns, opts PingOptions) PingStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if opts.Rate == 0 {
		opts.Rate = 100
	}
	if opts.Grace == 0 {
		opts.Grace = 300 * time.Millisecond
	}
	s, err := n.Ping(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTopology(t *testing.T) {
	tp := Build(t)
	ctx := context.Background()

	t.Run("links", func(t *testing.T) {
		for _, tc := range []struct {
			from     *Netns
			src, dst string
		}{
			{tp.UE, "198.51.100.2", "198.51.100.1"},
			{tp.UE, "203.0.113.2", "203.0.113.1"},
			{tp.SRV, "", "192.0.2.1"},
			{tp.SRV, "", "198.51.100.1"}, // default route via the gw
		} {
			opts := PingOptions{Dst: mustAddr(tc.dst), Count: 5}
			if tc.src != "" {
				opts.Src = mustAddr(tc.src)
			}
			s := pingOK(t, tc.from, opts)
			if s.Sent != 5 || s.Received != 5 || s.Lost != 0 || s.Duplicates != 0 || s.MaxRTT <= 0 {
				t.Errorf("%s → %s: %v", tc.from.Name(), tc.dst, s)
			}
		}
		// The ue has no default route: srv is unreachable outside a tunnel.
		s := pingOK(t, tp.UE, PingOptions{Dst: SRV, Count: 3})
		if s.Received != 0 || s.SendErrors != 3 || s.MaxLossRun != 3 {
			t.Errorf("ue → srv without tunnel: %v", s)
		}
	})

	t.Run("link down and up", func(t *testing.T) {
		if err := tp.UE.LinkDown(ctx, RAN); err != nil {
			t.Fatal(err)
		}
		s := pingOK(t, tp.UE, PingOptions{Dst: GWRAN, Count: 3})
		if s.Received != 0 {
			t.Errorf("RAN down: %v", s)
		}
		if err := tp.UE.LinkUp(ctx, RAN); err != nil {
			t.Fatal(err)
		}
		s = pingOK(t, tp.UE, PingOptions{Dst: GWRAN, Count: 3})
		if s.Received != 3 {
			t.Errorf("RAN up: %v", s)
		}
	})

	t.Run("address removed and added", func(t *testing.T) {
		p := "203.0.113.2/24"
		if err := tp.UE.AddrDel(ctx, WLAN, p); err != nil {
			t.Fatal(err)
		}
		if _, err := tp.UE.StartPing(ctx, PingOptions{Src: UEWLAN, Dst: GWWLAN}); err == nil {
			t.Error("bound to a removed address")
		}
		if err := tp.UE.AddrAdd(ctx, WLAN, p); err != nil {
			t.Fatal(err)
		}
		var cerr *CmdError
		if err := tp.UE.AddrAdd(ctx, WLAN, p); !errors.As(err, &cerr) || !strings.Contains(cerr.Output, "already") {
			t.Errorf("adding twice: %v", err)
		}
		s := pingOK(t, tp.UE, PingOptions{Src: UEWLAN, Dst: GWWLAN, Count: 3})
		if s.Received != 3 {
			t.Errorf("WLAN back: %v", s)
		}
	})

	t.Run("blackhole", func(t *testing.T) {
		rule, err := tp.GW.Blackhole(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, port := range []int{500, 4500} {
			if udpGets(t, tp.UE, tp.GW, GWRAN.String(), port) {
				t.Errorf("UDP %d passed the blackhole", port)
			}
		}
		if !udpGets(t, tp.UE, tp.GW, GWRAN.String(), 4501) {
			t.Error("UDP 4501 dropped by the blackhole")
		}
		if s := pingOK(t, tp.UE, PingOptions{Dst: GWRAN, Count: 3}); s.Received != 3 {
			t.Errorf("ICMP dropped by the blackhole: %v", s)
		}
		if err := rule.Remove(ctx); err != nil {
			t.Fatal(err)
		}
		if !udpGets(t, tp.UE, tp.GW, GWRAN.String(), 500) {
			t.Error("UDP 500 still dropped after Remove")
		}
	})

	t.Run("random loss", func(t *testing.T) {
		rule, err := tp.GW.Loss(ctx, RAN, 30)
		if err != nil {
			t.Fatal(err)
		}
		defer rule.Remove(ctx)
		s := pingOK(t, tp.UE, PingOptions{Dst: GWRAN, Count: 300, Rate: 500})
		// 30 % each way: P(answered) = 0.7² = 0.49. n = 300 gives σ ≈ 2.9 %.
		loss := float64(s.Lost) / float64(s.Sent)
		if loss < 0.35 || loss > 0.67 || s.Duplicates != 0 {
			t.Errorf("30%% both ways: loss %.2f (%v)", loss, s)
		}
		// The other link is untouched.
		if s := pingOK(t, tp.UE, PingOptions{Dst: GWWLAN, Count: 20, Rate: 200}); s.Lost != 0 {
			t.Errorf("WLAN affected by RAN loss: %v", s)
		}
		if _, err := tp.GW.Loss(ctx, RAN, 101); err == nil {
			t.Error("101 % accepted")
		}
	})

	t.Run("iperf3", func(t *testing.T) {
		r, err := Iperf3(ctx, tp.UE, tp.GW, IperfOptions{Server: GWRAN, Duration: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("raw RAN veth ue → gw: %v", r)
		if r.ReceivedBps < 10e6 {
			t.Errorf("throughput %v", r)
		}
		// Nothing listens on srv: a clear error, bounded in time.
		start := time.Now()
		_, err = Iperf3(ctx, tp.UE, tp.SRV, IperfOptions{Server: GWRAN, Duration: time.Second})
		if err == nil || time.Since(start) > 25*time.Second {
			t.Errorf("iperf3 against an address srv does not own: %v after %v", err, time.Since(start))
		}
	})
}

// udpGets reports whether one datagram from a reaches b at addr:port.
func udpGets(t *testing.T, a, b *Netns, addr string, port int) bool {
	t.Helper()
	var srv, cli *net.UDPConn
	dst := &net.UDPAddr{IP: net.ParseIP(addr), Port: port}
	if err := b.Do(func() (err error) { srv, err = net.ListenUDP("udp4", dst); return }); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := a.Do(func() (err error) { cli, err = net.DialUDP("udp4", nil, dst); return }); err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	cli.Write([]byte("x"))
	srv.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 16)
	n, _, err := srv.ReadFrom(buf)
	return err == nil && n == 1
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
