package interop

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/transform"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
	"github.com/mifsec/mifsec/test/topo"
)

// Spoofed sources of the flood: the ue namespace treats the whole prefix
// as local (AnyIP route), so one socket sends from any of its addresses
// (IP_PKTINFO) and receives the gateway's answers to them.
var floodNet = netip.MustParsePrefix("100.64.0.0/16")

const floodPort = 50500

// floodInit is an IKE_SA_INIT request a flooding host sends: a fresh SPI,
// a proposal the gateway accepts, a random KE and nonce.
func floodInit() ([]byte, error) {
	props, err := transform.ParseProposals(ikeP, ike.ProtoIKE)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 8+32+32)
	rand.Read(b)
	b[0] |= 1 // SPIi never zero
	m := ike.Message{Header: ike.Header{SPIi: binary.BigEndian.Uint64(b), Exchange: ike.IKESAInit, Flags: ike.FlagInitiator},
		Payloads: []ike.Payload{&ike.SA{Proposals: props}, &ike.KE{Group: ike.GroupCurve25519, Data: b[8:40]}, &ike.Nonce{Data: b[40:]}}}
	return m.Encode()
}

// flooder sends IKE_SA_INIT requests from many addresses and counts the
// COOKIE answers (RFC 7296 §2.6).
type flooder struct {
	pc      *ipv4.PacketConn
	conn    net.PacketConn
	cookies atomic.Int64
	other   atomic.Int64
	done    chan struct{}
}

func startFlooder(t *testing.T, tp *topo.Topology) *flooder {
	t.Helper()
	tp.UE.MustRun(t, "ip", "route", "add", "local", floodNet.String(), "dev", "lo")
	tp.GW.MustRun(t, "ip", "route", "add", floodNet.String(), "via", topo.UERAN.String())
	f := &flooder{done: make(chan struct{})}
	err := tp.UE.Do(func() error {
		c, err := net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", floodPort))
		if err != nil {
			return err
		}
		f.conn, f.pc = c, ipv4.NewPacketConn(c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(f.done)
		buf := make([]byte, 2048)
		for {
			n, _, err := f.conn.ReadFrom(buf)
			if err != nil {
				return
			}
			m, err := ike.Decode(buf[:n])
			if err == nil && len(m.Payloads) > 0 {
				if nt, ok := m.Payloads[0].(*ike.Notify); ok && nt.NotifyType == ike.Cookie {
					f.cookies.Add(1)
					continue
				}
			}
			f.other.Add(1)
		}
	}()
	t.Cleanup(func() { f.conn.Close(); <-f.done })
	return f
}

// send floods n requests, each from its own address of floodNet, paced
// in bursts so the socket buffers are not the only thing measured.
func (f *flooder) send(n int) error {
	dst := &net.UDPAddr{IP: topo.GWRAN.AsSlice(), Port: 500}
	base := floodNet.Addr().As4()
	for i := range n {
		msg, err := floodInit()
		if err != nil {
			return err
		}
		j := i + 1
		src := net.IPv4(base[0], base[1], byte(j>>8), byte(j))
		if _, err := f.pc.WriteTo(msg, &ipv4.ControlMessage{Src: src}, dst); err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		if i%200 == 199 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// rssKB reads the resident set of the mifsecd living in ns (/proc).
func rssKB(t *testing.T, ns *topo.Netns) int {
	t.Helper()
	pids, err := ns.Pids(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(comm)) != "mifsecd" {
			continue
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				if err != nil {
					t.Fatal(err)
				}
				return kb
			}
		}
	}
	t.Fatalf("no mifsecd in %s (%v)", ns, pids)
	return 0
}

// Bad input and hostile peers: 10,000 IKE_SA_INIT requests from 10,000
// spoofed addresses. The gateway stops creating half-open IKE SAs at the
// cookie threshold and answers the rest with COOKIE (RFC 7296 §2.6), its
// memory stays bounded, and a legitimate strongSwan end user connects
// during the flood (returning the cookie) and after it.
func TestInitFlood(t *testing.T) {
	t.Parallel()
	tn := newTunnel(t, swToMifsec, options{})
	ctx := ctxT(t)
	f := startFlooder(t, tn.tp)
	// Warm the daemon up (first handshake, TUN, routes) so RSS compares
	// like with like, then start from nothing.
	tn.up(ctx)
	if err := tn.ueSW.Vici().Terminate(ctx, "gw"); err != nil {
		t.Fatal(err)
	}
	before := rssKB(t, tn.tp.GW)
	const flood = 10000
	sent := make(chan error, 1)
	go func() { sent <- f.send(flood) }()
	// During the flood: wait until cookies are being handed out.
	for deadline := time.Now().Add(20 * time.Second); f.cookies.Load() < 500; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no cookies after 20 s: %d COOKIE and %d other answers", f.cookies.Load(), f.other.Load())
		}
	}
	start := time.Now()
	tn.up(ctx)
	t.Logf("legitimate end user connected during the flood in %v", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(tn.ueSW.Log(), "COOKIE") {
		t.Error("strongSwan's log shows no COOKIE: the legitimate end user was not asked for one")
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	// Let the gateway drain its socket, then count.
	time.Sleep(time.Second)
	during := rssKB(t, tn.tp.GW)
	cookies, other := f.cookies.Load(), f.other.Load()
	t.Logf("flood of %d: %d COOKIE answers, %d other answers; mifsecd RSS %d kB before, %d kB after (+%d kB)",
		flood, cookies, other, before, during, during-before)
	if cookies < flood*9/10 {
		t.Errorf("only %d of %d spoofed requests got a COOKIE", cookies, flood)
	}
	// The half-open SAs stop at the threshold (30): everything else is
	// stateless. Each half-open SA costs a few kB; 32 MB is far above.
	if other > 40 {
		t.Errorf("%d non-cookie answers: more half-open IKE SAs than the threshold", other)
	}
	if during-before > 32<<10 {
		t.Errorf("mifsecd grew by %d kB under the flood", during-before)
	}
	// After the flood: the end user reconnects; the gateway has one IKE SA
	// besides the half-open ones, which expire.
	if err := tn.ueSW.Vici().Terminate(ctx, "gw"); err != nil {
		t.Fatal(err)
	}
	v := tn.up(ctx)
	st, err := tn.tp.UE.Ping(ctx, topo.PingOptions{Src: v, Dst: topo.SRV, Count: 10, Rate: 50})
	if err != nil || st.Lost != 0 {
		t.Fatalf("ping after the flood: %v %v", st, err)
	}
	r, err := tn.gwD.Client.SAs.ListIkeSas(ctx, &mifsecv1.ListIkeSasRequest{Parent: "connections/ues"})
	if err != nil {
		t.Fatal(err)
	}
	est := 0
	for _, s := range r.IkeSas {
		if s.State == mifsecv1.IkeSaState_IKE_SA_STATE_ESTABLISHED {
			est++
		}
	}
	if est != 1 || len(r.IkeSas) > 40 {
		t.Fatalf("gateway IKE SAs: %d established of %d", est, len(r.IkeSas))
	}
}
