package main

import (
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mifsec/mifsec/test/mif"
	"github.com/mifsec/mifsec/test/topo"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ipv4 builds an IPv4 packet of protocol proto around l4.
func ipv4(proto byte, l4 []byte) []byte {
	p := make([]byte, 20, 20+len(l4))
	p[0], p[9] = 0x45, proto
	binary.BigEndian.PutUint16(p[2:], uint16(20+len(l4)))
	return append(p, l4...)
}

func udp(sport, dport uint16, payload []byte) []byte {
	u := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(u, sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	return append(u, payload...)
}

func TestIsESP(t *testing.T) {
	esp := []byte{0xc0, 0x01, 0x02, 0x03, 0, 0, 0, 1, 9, 9, 9, 9}
	ike := append([]byte{0, 0, 0, 0}, esp...)
	v6 := make([]byte, 40)
	v6[0], v6[6] = 0x60, protoESP
	for _, c := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"raw ESP", ipv4(protoESP, esp), true},
		{"ESP in UDP to 4500", ipv4(protoUDP, udp(4500, 4500, esp)), true},
		{"ESP in UDP from 4500 to a NAT port", ipv4(protoUDP, udp(4500, 31000, esp)), true},
		{"IKE on 4500 (non-ESP marker)", ipv4(protoUDP, udp(4500, 4500, ike)), false},
		{"NAT keepalive", ipv4(protoUDP, udp(4500, 4500, []byte{0xff})), false},
		{"UDP elsewhere", ipv4(protoUDP, udp(7301, 7301, esp)), false},
		{"IKE on 500", ipv4(protoUDP, udp(500, 500, esp)), false},
		{"truncated ESP", ipv4(protoESP, esp[:4]), false},
		{"truncated UDP", ipv4(protoUDP, []byte{0x11, 0x94}), false},
		{"bad IHL", append([]byte{0x41}, make([]byte, 30)...), false},
		{"IPv6 ESP", append(v6, esp...), true},
		{"short IPv6", v6[:30], false},
		{"not IP", []byte{0x20, 1, 2}, false},
		{"empty", nil, false},
	} {
		if got := isESP(c.pkt); got != c.want {
			t.Errorf("%s: isESP = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSegment(t *testing.T) {
	at := func(seqs ...uint64) []mif.Arrival {
		var out []mif.Arrival
		base := time.Unix(1000, 0)
		for i, q := range seqs {
			out = append(out, mif.Arrival{Seq: q, Recv: base.Add(time.Duration(i) * time.Millisecond)})
		}
		return out
	}
	for _, c := range []struct {
		name                       string
		arr                        []mif.Arrival
		lo, hi                     uint64
		sent, lost, dup, reordered uint64
	}{
		{"all of it", at(1, 2, 3, 4, 5), 0, 5, 5, 0, 0, 0},
		{"a later segment", at(1, 2, 3, 4, 5, 6), 3, 6, 3, 0, 0, 0},
		{"loss inside", at(1, 2, 4, 5, 6), 2, 6, 4, 1, 0, 0},
		{"loss outside is not counted", at(2, 3, 5, 6), 4, 6, 2, 0, 0, 0},
		{"later datagrams are left out", at(4, 5, 6, 7, 8), 3, 5, 2, 0, 0, 0},
		{"duplicate and reorder", at(4, 6, 5, 6), 3, 6, 3, 0, 1, 1},
		{"nothing arrived", nil, 10, 20, 10, 10, 0, 0},
		{"empty segment", at(1, 2), 2, 2, 0, 0, 0, 0},
		{"backwards bounds", at(1, 2), 5, 2, 0, 0, 0, 0},
	} {
		st := segment(c.arr, c.lo, c.hi)
		if st.Sent != c.sent || st.Lost != c.lost || st.Duplicates != c.dup || st.Reordered != c.reordered {
			t.Errorf("%s: %v; want sent %d lost %d duplicates %d reordered %d", c.name, st, c.sent, c.lost, c.dup, c.reordered)
		}
	}
}

func TestParseFlowSpec(t *testing.T) {
	for _, c := range []struct {
		in   string
		want flowSpec
		err  string
	}{
		{"voice:7301", flowSpec{"voice", 7301, 1000, 0}, ""},
		{"voice:7301:50", flowSpec{"voice", 7301, 50, 0}, ""},
		{"video:7302:1000:1200", flowSpec{"video", 7302, 1000, 1200}, ""},
		{"voice", flowSpec{}, "NAME:PORT"},
		{":7301", flowSpec{}, "NAME:PORT"},
		{"voice:0", flowSpec{}, "bad port"},
		{"voice:70000", flowSpec{}, "bad port"},
		{"voice:7301:0", flowSpec{}, "rate"},
		{"voice:7301:x", flowSpec{}, "rate"},
		{"voice:7301:50:10", flowSpec{}, "size"},
		{"voice:7301:50:2000", flowSpec{}, "size"},
		{"a:1:2:3:4", flowSpec{}, "NAME:PORT"},
	} {
		got, err := parseFlowSpec(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want one about %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %+v %v, want %+v", c.in, got, err, c.want)
		}
	}
	var l flowList
	if err := l.Set("a:1"); err != nil {
		t.Fatal(err)
	}
	for _, dup := range []string{"a:2", "b:1"} {
		if err := l.Set(dup); err == nil {
			t.Errorf("flow %s accepted beside a:1", dup)
		}
	}
}

// TestSniffer sends ESP-in-UDP, IKE and keepalives over loopback in a
// namespace of its own: only the ESP is counted, once (outgoing).
func TestSniffer(t *testing.T) {
	topo.Require(t)
	ns := topo.NewNetns(t, "sniff")
	s, err := sniff(ns, "lo")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var c, sink *net.UDPConn
	if err := ns.Do(func() (err error) {
		// A listener, so that no port-unreachable refuses later writes.
		if sink, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: natTPort}); err != nil {
			return err
		}
		c, err = net.DialUDP("udp", nil, sink.LocalAddr().(*net.UDPAddr))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	defer c.Close()
	start := time.Now()
	esp := []byte{1, 2, 3, 4, 0, 0, 0, 1, 9, 9}
	for i := 0; i < 5; i++ {
		c.Write(esp)
		c.Write(append([]byte{0, 0, 0, 0}, esp...)) // IKE
		c.Write([]byte{0xff})                       // keepalive
	}
	deadline := time.Now().Add(2 * time.Second)
	for s.Count() < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if n := s.Count(); n != 5 {
		t.Fatalf("counted %d ESP packets, want 5 (err %v)", n, s.Err())
	}
	first, ok := s.First(start)
	if !ok || first.Before(start.Add(-time.Millisecond)) || time.Since(first) > 2*time.Second {
		t.Fatalf("first ESP at %v (ok %v), test started %v", first, ok, start)
	}
	if n := s.Since(time.Now().Add(time.Second)); n != 0 {
		t.Fatalf("%d packets in the future", n)
	}
}

// TestFlowCommand runs `mobility flow` on loopback: two reports, each
// with every datagram of its interval and nothing lost.
func TestFlowCommand(t *testing.T) {
	topo.Require(t)
	ns := topo.NewNetns(t, "flow")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	inR, inW := net.Pipe()
	outR, outW := net.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- runFlow(ctx, []string{"--from", ns.Name(), "--to", ns.Name(), "--src", "127.0.0.1", "--dst", "127.0.0.1",
			"--flow", "voice:7301:200", "--flow", "video:7302:500:1000", "--links", "lo"}, inR, outW)
		outW.Close()
	}()
	read := func() []string {
		var lines []string
		buf := make([]byte, 1)
		var cur []byte
		for {
			if _, err := outR.Read(buf); err != nil {
				t.Fatalf("reading the report: %v (so far %q)", err, lines)
			}
			if buf[0] != '\n' {
				cur = append(cur, buf[0])
				continue
			}
			if string(cur) == "." {
				return lines
			}
			lines = append(lines, string(cur))
			cur = cur[:0]
		}
	}
	for _, label := range []string{"one", "two"} {
		time.Sleep(400 * time.Millisecond)
		if _, err := inW.Write([]byte("report " + label + "\n")); err != nil {
			t.Fatal(err)
		}
		lines := read()
		if len(lines) != 3 || !strings.Contains(lines[0], "voice") || !strings.Contains(lines[1], "video") || !strings.Contains(lines[2], "ESP out lo") {
			t.Fatalf("report %s: %q", label, lines)
		}
		for _, l := range lines[:2] {
			if !strings.Contains(l, " lost    0 ") || strings.Contains(l, "sent      0 ") {
				t.Fatalf("report %s: %s", label, l)
			}
		}
	}
	if _, err := inW.Write([]byte("bogus\n")); err != nil {
		t.Fatal(err)
	}
	if l := read(); len(l) != 1 || !strings.Contains(l[0], "unknown command") {
		t.Fatalf("bogus command answered %q", l)
	}
	inW.Close()
	read() // the last report at end of input
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestFlowCommandErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--src", "x", "--dst", "127.0.0.1", "--flow", "a:1"}, "--src"},
		{[]string{"--src", "127.0.0.1", "--dst", "", "--flow", "a:1"}, "--dst"},
		{[]string{"--src", "127.0.0.1", "--dst", "127.0.0.1"}, "no --flow"},
		{[]string{"--src", "127.0.0.1", "--dst", "127.0.0.1", "--flow", "a"}, "NAME:PORT"},
		{[]string{"--src", "127.0.0.1", "--dst", "127.0.0.1", "--flow", "a:1", "--links", "nosuchlink0"}, "nosuchlink0"},
	} {
		err := runFlow(context.Background(), c.args, strings.NewReader(""), &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one about %s", c.args, err, c.want)
		}
	}
}
