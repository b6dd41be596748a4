package sa

import (
	"crypto/ecdsa"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/transform"
)

func TestDPDTimeout(t *testing.T) {
	p := establish(t, 100, func(ini, resp *Config) {
		ini.DPD = 30 * time.Second
		ini.Retransmit = Retransmit{Timeout: time.Second, Factor: 2, Tries: 3}
	})
	// Liveness checks are answered while the peer lives.
	p.advance(95 * time.Second)
	if p.i.ike.State() != StateEstablished || p.r.ike.Stats().Requests < 4 {
		t.Fatalf("state %v, responder saw %d requests", p.i.ike.State(), p.r.ike.Stats().Requests)
	}
	// Then the peer goes silent.
	p.drop = func(pk packet) bool { return pk.to == p.i }
	silent := p.now
	p.run(func() bool { return p.i.done })
	// Probe at most DPD after the last message, then 1+2+4+8 s of retries.
	if d := p.now.Sub(silent); d > 30*time.Second+15*time.Second || d < 15*time.Second {
		t.Errorf("declared dead after %v of silence", d)
	}
	e, ok := p.i.last(EventIKEDown)
	if !ok || e.Reason != ReasonDPDTimeout {
		t.Fatalf("initiator: %+v", e)
	}
	if len(activeSAs(p.i)) != 0 || len(activePolicies(t, p.i)) != 0 {
		t.Error("data plane not cleaned up")
	}
	if d := p.i.ike.Info(); d.DownReason != ReasonDPDTimeout {
		t.Errorf("Info down reason %v", d.DownReason)
	}
	// No probes while traffic flows: an idle-only DPD.
	p2 := establish(t, 101, func(ini, resp *Config) { ini.DPD = 30 * time.Second })
	for range 5 {
		p2.advance(20 * time.Second)
		p2.command(p2.r, Command{Kind: CmdLiveness})
		p2.settle()
	}
	if got := p2.i.ike.Info().NextRequestID; got != 2 {
		t.Errorf("initiator probed while the peer talked: next ID %d", got)
	}
}

func TestDeleteAndTerminate(t *testing.T) {
	p := establish(t, 102, nil)
	c := p.i.ike.Info().Children[0]
	p.command(p.r, Command{Kind: CmdDeleteChild, SPI: c.OutSPI})
	p.settle()
	for _, n := range []*node{p.i, p.r} {
		if len(n.ike.Info().Children) != 0 || len(activeSAs(n)) != 0 || len(activePolicies(t, n)) != 0 {
			t.Fatalf("%s: child left", n.name)
		}
	}
	if e, _ := p.i.last(EventChildDown); e.Reason != ReasonPeerDelete {
		t.Errorf("initiator child down %v", e.Reason)
	}
	if e, _ := p.r.last(EventChildDown); e.Reason != ReasonLocalDelete {
		t.Errorf("responder child down %v", e.Reason)
	}
	// Initiate re-creates the StartNow child.
	p.command(p.i, Command{Kind: CmdInitiate})
	p.settle()
	if checkPaired(t, p.i, p.r) != 2 {
		t.Fatal("child not re-created")
	}
	p.command(p.i, Command{Kind: CmdTerminate})
	p.settle()
	for _, n := range []*node{p.i, p.r} {
		if !n.done || n.ike.State() != StateClosed || len(activeSAs(n)) != 0 {
			t.Fatalf("%s: state %v", n.name, n.ike.State())
		}
	}
	if e, _ := p.i.last(EventIKEDown); e.Reason != ReasonLocalDelete {
		t.Errorf("initiator %v", e.Reason)
	}
	if e, _ := p.r.last(EventIKEDown); e.Reason != ReasonPeerDelete {
		t.Errorf("responder %v", e.Reason)
	}
	if len(p.r.ike.cfg.Pool.(*testPool).leased) != 0 {
		t.Error("lease not released")
	}
	if len(p.i.ike.cfg.SPIs.(*spiAlloc).used) != 0 || len(p.r.ike.cfg.SPIs.(*spiAlloc).used) != 0 {
		t.Error("SPIs not released")
	}
	// A closed machine ignores everything.
	if o := p.i.ike.Handle(p.now, Tick{}); !o.Done || len(o.Datagrams) != 0 {
		t.Error("closed machine acted")
	}
}

func TestLifetimes(t *testing.T) {
	p := establish(t, 103, func(ini, resp *Config) {
		ini.Lifetimes = Lifetimes{IKERekey: 4 * time.Hour, ChildRekey: time.Hour, ChildLife: 70 * time.Minute, Jitter: 5 * time.Minute}
		resp.Lifetimes = Lifetimes{IKERekey: 5 * time.Hour, ChildRekey: 2 * time.Hour}
	})
	ci := p.i.ike.Info().Children[0]
	if d := ci.RekeyAt.Sub(p.now); d > time.Hour || d < 55*time.Minute {
		t.Errorf("child rekey in %v", d)
	}
	p.advance(61 * time.Minute)
	if p.i.count(EventChildRekeyed) != 1 || checkPaired(t, p.i, p.r) != 2 {
		t.Fatalf("no timed child rekey: %d", p.i.count(EventChildRekeyed))
	}
	p.advance(3 * time.Hour)
	if p.i.count(EventIKERekeyed) != 1 || p.r.count(EventIKERekeyed) != 1 {
		t.Fatalf("no timed IKE rekey")
	}
	if p.i.count(EventChildDown) != 0 || p.i.count(EventIKEDown) != 0 {
		t.Errorf("something went down: %+v", p.i.events)
	}
	// Hard expiry without rekey: the Child SA is deleted.
	p2 := establish(t, 104, func(ini, resp *Config) { ini.Lifetimes = Lifetimes{ChildLife: time.Hour} })
	p2.advance(61 * time.Minute)
	if e, _ := p2.i.last(EventChildDown); e.Reason != ReasonExpired || len(activeSAs(p2.r)) != 0 {
		t.Fatalf("child not expired: %+v", e)
	}
	// IKE hard life.
	p3 := establish(t, 105, func(ini, resp *Config) { resp.Lifetimes = Lifetimes{IKELife: time.Hour} })
	p3.advance(2 * time.Hour)
	if e, _ := p3.r.last(EventIKEDown); e.Reason != ReasonExpired || !p3.i.done {
		t.Fatalf("IKE SA not expired: %+v", e)
	}
}

func TestDataplaneEvents(t *testing.T) {
	p := establish(t, 106, nil)
	c := p.i.ike.Info().Children[0]
	p.deliverOut(p.i, p.i.ike.Handle(p.now, DataplaneEvent{Kind: dataplane.SoftExpired, SPI: c.OutSPI}))
	p.settle()
	if p.i.count(EventChildRekeyed) != 1 {
		t.Fatal("soft expiry did not rekey")
	}
	c = p.i.ike.Info().Children[0]
	p.deliverOut(p.r, p.r.ike.Handle(p.now, DataplaneEvent{Kind: dataplane.HardExpired, SPI: c.OutSPI}))
	p.settle()
	if len(p.i.ike.Info().Children) != 0 || len(p.r.ike.Info().Children) != 0 {
		t.Fatal("hard expiry did not delete")
	}
	for _, o := range p.r.ops {
		if o.Kind == OpDeleteSA && o.SPI == c.OutSPI {
			t.Error("deleted an SA the data plane already removed")
		}
	}
}

func TestHalfOpenTimeout(t *testing.T) {
	ini, resp := pskPair(t)
	resp.HalfOpenTimeout = 10 * time.Second
	p := newPump(t, ini, resp, 107)
	p.drop = func(pk packet) bool {
		h, _ := ike.DecodeHeader(pk.dg.Data)
		return h.Exchange == ike.IKEAuth
	}
	p.advance(20 * time.Second)
	if e, ok := p.r.last(EventIKEDown); !ok || e.Reason != ReasonTimeout || !p.r.done {
		t.Fatalf("responder: %+v", e)
	}
	p.advance(time.Minute)
	if e, ok := p.i.last(EventIKEDown); !ok || e.Reason != ReasonTimeout {
		t.Fatalf("initiator: %+v", e)
	}
}

func TestReauthentication(t *testing.T) {
	p := establish(t, 108, func(ini, resp *Config) { ini.Lifetimes = Lifetimes{Reauth: time.Hour} })
	oldSPI, _ := p.i.ike.SPIs()
	p.advance(61 * time.Minute)
	if len(p.i.spawned) != 1 {
		t.Fatalf("%d spawned IKE SAs", len(p.i.spawned))
	}
	// Drive the new IKE SA against a fresh responder with the same config.
	sp := p.i.spawned[0]
	p2 := &pump{t: t, now: p.now, i: &node{name: "initiator2", ike: sp.IKE}, r: &node{name: "responder2"},
		rcfg: p.rcfg, rrng: detRand(109), rnd: p.rnd, first: &sp.Output}
	p2.run(func() bool { return up(p2.i)() && up(p2.r)() })
	p2.settle()
	e, _ := p2.i.last(EventIKEUp)
	if e.Replaces != oldSPI {
		t.Fatalf("Replaces %x, want %x", e.Replaces, oldSPI)
	}
	if e, _ := p2.r.last(EventIKEUp); e.InitialContact {
		t.Error("re-authentication sent INITIAL_CONTACT (P5)")
	}
	if checkPaired(t, p2.i, p2.r) != 2 {
		t.Fatal("no Child SA on the new IKE SA")
	}
	// Make-before-break: the glue now terminates the old one.
	p.command(p.i, Command{Kind: CmdTerminate})
	p.settle()
	if !p.i.done || !p.r.done || p2.i.ike.State() != StateEstablished {
		t.Fatal("old IKE SA not gone or new one hurt")
	}
}

func TestNATRebinding(t *testing.T) {
	ini, resp := pskPair(t)
	p := newPump(t, ini, resp, 130)
	p.nat = true
	p.run(func() bool { return up(p.i)() && up(p.r)() })
	p.settle()
	// The NAT gives the initiator a new port: the responder follows the
	// next authenticated message (RFC 7296 §2.23) and moves the SAs.
	old := p.r.ike.Info().Remote
	p.nat = false
	p.command(p.i, Command{Kind: CmdLiveness})
	p.settle()
	now := p.r.ike.Info().Remote
	if now == old || now != netip.AddrPortFrom(addrI.Addr(), 4500) {
		t.Fatalf("remote %v -> %v", old, now)
	}
	n := 0
	for _, o := range p.r.ops {
		if o.Kind == OpUpdateSA && o.Update.Remote == now && o.Update.Encap {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d SA updates", n)
	}
}

func TestAuthPrintsNoSecrets(t *testing.T) {
	ini, _ := certPair(t, newCA(t, 131), "ecdsa")
	ini.Auth.PSK = transform.NewSecret([]byte("supersecretpsk"))
	key := ini.Auth.Key.(*ecdsa.PrivateKey)
	d := fmt.Sprintf("%x", key.D.Bytes())
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		out := fmt.Sprintf(f, ini)
		if strings.Contains(out, "supersecretpsk") || strings.Contains(out, d) || strings.Contains(out, key.D.String()) {
			t.Fatalf("%s leaks key material: %s", f, out)
		}
	}
}

// DPDTimeout bounds a liveness check: the peer is declared dead that long
// after the probe, however long the retransmission schedule is, and the
// probe goes out at least three times in between (regression: the
// connection's dpd.timeout was ignored and a dead peer took ~165 s).
func TestDPDTimeoutBoundsTheSchedule(t *testing.T) {
	for _, tc := range []struct {
		name      string
		dpd, dead time.Duration
		rt        Retransmit
		minProbes int
	}{
		{"default schedule", 2 * time.Second, 3 * time.Second, Retransmit{}, 3},
		{"short timeouts", 2 * time.Second, 5 * time.Second, Retransmit{Timeout: 500 * time.Millisecond, Factor: 1.5, Tries: 2}, 4},
		{"long idle", 30 * time.Second, 10 * time.Second, Retransmit{Timeout: 4 * time.Second, Factor: 1.8, Tries: 5}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := establish(t, 110, func(ini, resp *Config) {
				ini.DPD, ini.DPDTimeout, ini.Retransmit = tc.dpd, tc.dead, tc.rt
			})
			p.settle()
			p.drop = func(pk packet) bool { return pk.to == p.r }
			silent := p.now
			sentBefore := p.i.sent
			p.run(func() bool { return p.i.done })
			took := p.now.Sub(silent)
			if took > tc.dpd+tc.dead || took < tc.dead {
				t.Errorf("declared dead %v after the last message; want within DPD %v + timeout %v", took, tc.dpd, tc.dead)
			}
			if n := p.i.sent - sentBefore; n < tc.minProbes {
				t.Errorf("%d probes sent, want at least %d", n, tc.minProbes)
			}
			if e, ok := p.i.last(EventIKEDown); !ok || e.Reason != ReasonDPDTimeout {
				t.Fatalf("down event %+v", e)
			}
		})
	}
	ini, _ := pskPair(t)
	ini.DPDTimeout = -time.Second
	var ce *ConfigError
	if err := ini.check(true); err == nil || !errors.As(err, &ce) || ce.Field != "dpd_timeout" {
		t.Errorf("negative DPDTimeout: %v", err)
	}
}
