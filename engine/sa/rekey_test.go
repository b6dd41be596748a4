package sa

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/ike"
)

func establish(t *testing.T, seed uint64, edit func(ini, resp *Config)) *pump {
	t.Helper()
	ini, resp := pskPair(t)
	if edit != nil {
		edit(ini, resp)
	}
	p := newPump(t, ini, resp, seed)
	p.run(func() bool { return up(p.i)() && up(p.r)() })
	p.settle()
	if !up(p.i)() || !up(p.r)() {
		t.Fatalf("not established: %+v / %+v", p.i.events, p.r.events)
	}
	return p
}

func side(p *pump, initiator bool) (*node, *node) {
	if initiator {
		return p.i, p.r
	}
	return p.r, p.i
}

func minNonce(a, b []byte) []byte {
	if bytes.Compare(a, b) < 0 {
		return a
	}
	return b
}

func TestChildRekey(t *testing.T) {
	for _, byInitiator := range []bool{true, false} {
		t.Run(fmt.Sprintf("by initiator %v", byInitiator), func(t *testing.T) {
			p := establish(t, 40, nil)
			a, b := side(p, byInitiator)
			old := a.ike.Info().Children[0]
			p.command(a, Command{Kind: CmdRekeyChild, SPI: old.InSPI})
			p.settle()
			for _, n := range []*node{a, b} {
				if n.count(EventChildRekeyed) != 1 {
					t.Fatalf("%s: %d rekeyed events", n.name, n.count(EventChildRekeyed))
				}
				if cs := n.ike.Info().Children; len(cs) != 1 || cs[0].InSPI == old.InSPI || cs[0].InSPI == old.OutSPI {
					t.Fatalf("%s: children %+v", n.name, cs)
				}
			}
			if checkPaired(t, p.i, p.r) != 2 {
				t.Fatal("SAs do not pair after the rekey")
			}
			// The old inbound SA drains (TestRekeyKeepsOldInbound), then
			// each policy names the new SA alone.
			p.advance(p.i.ike.cfg.rekeyedDelete() + time.Second)
			for _, n := range []*node{a, b} {
				pols := activePolicies(t, n)
				if len(pols) != 2 {
					t.Fatalf("%s: %d policies", n.name, len(pols))
				}
				c := n.ike.Info().Children[0]
				for _, pol := range pols {
					if len(pol.SPIs) != 1 || (pol.SPIs[0] != c.InSPI && pol.SPIs[0] != c.OutSPI) {
						t.Errorf("%s: policy %d has SPIs %x", n.name, pol.ID, pol.SPIs)
					}
				}
			}
			// What only a rekey in flight needs is gone with it (childRare).
			for _, n := range []*node{a, b} {
				for _, c := range n.ike.childList() {
					if c.x != nil {
						t.Errorf("%s: Child SA %08x keeps its rekey state %+v", n.name, c.inSPI, *c.x)
					}
				}
			}
		})
	}
}

func TestIKERekey(t *testing.T) {
	for _, byInitiator := range []bool{true, false} {
		t.Run(fmt.Sprintf("by initiator %v", byInitiator), func(t *testing.T) {
			p := establish(t, 41, nil)
			a, b := side(p, byInitiator)
			oldI, oldR := a.ike.SPIs()
			oldChild := a.ike.Info().Children[0]
			p.command(a, Command{Kind: CmdRekeyIKE})
			p.settle()
			ai, bi := a.ike.Info(), b.ike.Info()
			if ai.SPIi == oldI || ai.SPIr == oldR || ai.SPIi != bi.SPIi || ai.SPIr != bi.SPIr {
				t.Fatalf("SPIs %x/%x, %x/%x (old %x/%x)", ai.SPIi, ai.SPIr, bi.SPIi, bi.SPIr, oldI, oldR)
			}
			// §1.3.2, P10: the rekey initiator is the original initiator of the new SA.
			if ai.Role != Initiator || bi.Role != Responder {
				t.Errorf("roles %v / %v", ai.Role, bi.Role)
			}
			if ai.NextRequestID != 0 || bi.ExpectedID != 0 || ai.ExpectedID != 0 || bi.NextRequestID != 0 {
				t.Errorf("message IDs did not restart: %d %d %d %d", ai.NextRequestID, bi.ExpectedID, ai.ExpectedID, bi.NextRequestID)
			}
			for _, n := range []*node{a, b} {
				if k := n.ike.cur.keys; k.PI.Len() != 0 || k.PR.Len() != 0 || k.D.Len() == 0 {
					t.Errorf("%s: the rekeyed IKE SA keeps SK_pi/SK_pr (or lost SK_d)", n.name)
				}
				if n.count(EventIKERekeyed) != 1 || len(n.ike.retiring()) != 0 {
					t.Fatalf("%s: rekeyed %d, retiring %d", n.name, n.count(EventIKERekeyed), len(n.ike.retiring()))
				}
				if len(n.bound) != 1 {
					t.Errorf("%s: bound SPIs %v", n.name, n.bound)
				}
				if n.ike.Info().Children[0].InSPI != oldChild.InSPI && n == a {
					t.Errorf("Child SA did not move")
				}
			}
			// The new IKE SA works both ways: SK_d of the new SA derives
			// the Child keys, and either side can start exchanges.
			p.command(b, Command{Kind: CmdRekeyChild, SPI: bi.Children[0].InSPI})
			p.settle()
			p.command(a, Command{Kind: CmdLiveness})
			p.settle()
			if checkPaired(t, p.i, p.r) != 2 || b.count(EventChildRekeyed) != 1 {
				t.Fatal("Child rekey on the new IKE SA failed")
			}
			if a.ike.Info().NextRequestID != 1 || b.ike.Info().NextRequestID != 2 { // b: CREATE_CHILD_SA + DELETE
				t.Errorf("message IDs after the exchanges: %d %d", a.ike.Info().NextRequestID, b.ike.Info().NextRequestID)
			}
		})
	}
}

// TestChildRekeyCollision: both ends rekey the same Child SA at once. The
// SA made with the lowest of the four nonces is redundant and its creator
// deletes it (RFC 7296 §2.8.1).
func TestChildRekeyCollision(t *testing.T) {
	outcomes := map[string]int{}
	for seed := uint64(50); seed < 62; seed++ {
		p := establish(t, seed, nil)
		made := map[uint32]*childSA{} // by the initiator's inbound SPI
		p.i.ike.rareState().hooks = &testHooks{child: func(c *childSA) { made[c.inSPI] = c }}
		ci := p.i.ike.Info().Children[0]
		cr := p.r.ike.Info().Children[0]
		p.command(p.i, Command{Kind: CmdRekeyChild, SPI: ci.InSPI})
		p.command(p.r, Command{Kind: CmdRekeyChild, SPI: cr.InSPI})
		p.settle()
		p.advance(time.Minute)
		if len(made) != 2 {
			t.Fatalf("seed %d: %d new SAs, want 2 (a collision)", seed, len(made))
		}
		if checkPaired(t, p.i, p.r) != 2 {
			t.Fatalf("seed %d: SAs do not pair", seed)
		}
		left := p.i.ike.Info().Children
		if len(left) != 1 || len(p.r.ike.Info().Children) != 1 {
			t.Fatalf("seed %d: %d / %d children left", seed, len(left), len(p.r.ike.Info().Children))
		}
		surv := made[left[0].InSPI]
		var lost *childSA
		for spi, c := range made {
			if spi != left[0].InSPI {
				lost = c
			}
		}
		if surv == nil || lost == nil {
			t.Fatalf("seed %d: survivor %v lost %v", seed, surv, lost)
		}
		if bytes.Compare(minNonce(lost.nonces.pair()), minNonce(surv.nonces.pair())) >= 0 {
			t.Fatalf("seed %d: the surviving SA holds the lowest nonce", seed)
		}
		for _, n := range []*node{p.i, p.r} {
			for _, c := range n.ike.childList() {
				if c.x != nil {
					t.Errorf("seed %d: %s: Child SA %08x keeps its rekey state %+v", seed, n.name, c.inSPI, *c.x)
				}
			}
		}
		who := "initiator's"
		if !lost.weInitiated {
			who = "responder's"
		}
		outcomes[who]++
		for _, n := range []*node{p.i, p.r} {
			if len(activePolicies(t, n)) != 2 {
				t.Errorf("seed %d: %s policies", seed, n.name)
			}
			if n.count(EventChildDown) != 0 {
				t.Errorf("seed %d: %s reported a Child SA down", seed, n.name)
			}
		}
	}
	if outcomes["initiator's"] == 0 || outcomes["responder's"] == 0 {
		t.Errorf("both outcomes not covered: %v", outcomes)
	}
}

// TestIKERekeyCollision: both ends rekey the IKE SA at once; the new IKE
// SA with the lowest nonce is deleted by its creator, the other inherits
// the Child SAs (RFC 7296 §2.8.2).
func TestIKERekeyCollision(t *testing.T) {
	outcomes := map[bool]int{}
	for seed := uint64(70); seed < 82; seed++ {
		p := establish(t, seed, nil)
		var made []*session
		p.i.ike.rareState().hooks = &testHooks{session: func(ss *session) { made = append(made, ss) }}
		p.command(p.i, Command{Kind: CmdRekeyIKE})
		p.command(p.r, Command{Kind: CmdRekeyIKE})
		p.settle()
		p.advance(time.Minute)
		if len(made) != 2 {
			t.Fatalf("seed %d: %d new IKE SAs, want 2", seed, len(made))
		}
		ii, ri := p.i.ike.Info(), p.r.ike.Info()
		if ii.SPIi != ri.SPIi || ii.SPIr != ri.SPIr || ii.State != StateEstablished || ri.State != StateEstablished {
			t.Fatalf("seed %d: %x/%x vs %x/%x", seed, ii.SPIi, ii.SPIr, ri.SPIi, ri.SPIr)
		}
		var surv, lost *session
		for _, ss := range made {
			if ss.spii == ii.SPIi && ss.spir == ii.SPIr {
				surv = ss
			} else {
				lost = ss
			}
		}
		if surv == nil || lost == nil || bytes.Compare(minNonce(lost.nonces.pair()), minNonce(surv.nonces.pair())) >= 0 {
			t.Fatalf("seed %d: the surviving IKE SA holds the lowest nonce", seed)
		}
		outcomes[surv.initiator]++
		for _, n := range []*node{p.i, p.r} {
			if len(n.ike.retiring()) != 0 || len(n.bound) != 1 || n.count(EventIKEDown) != 0 {
				t.Errorf("seed %d: %s retiring %d bound %v", seed, n.name, len(n.ike.retiring()), n.bound)
			}
		}
		// The survivor carries the Child SAs and works.
		p.command(p.r, Command{Kind: CmdRekeyChild, SPI: ri.Children[0].InSPI})
		p.settle()
		if checkPaired(t, p.i, p.r) != 2 || p.i.count(EventChildRekeyed) != 1 {
			t.Fatalf("seed %d: Child rekey after the collision failed", seed)
		}
	}
	if outcomes[true] == 0 || outcomes[false] == 0 {
		t.Errorf("both outcomes not covered: %v", outcomes)
	}
}

func TestCreateChildDuringIKERekey(t *testing.T) {
	p := establish(t, 90, func(ini, resp *Config) {
		ini.Children = append(ini.Children, ChildConfig{Name: "extra", Start: StartNone,
			RemoteTS: ini.Children[0].RemoteTS, Proposals: ini.Children[0].Proposals})
	})
	// The responder starts an IKE rekey; before it arrives the initiator
	// asks for a Child SA: the crossing requests get TEMPORARY_FAILURE for
	// the Child SA (§2.25), which is retried later on the new IKE SA.
	p.command(p.r, Command{Kind: CmdRekeyIKE})
	p.command(p.i, Command{Kind: CmdCreateChild, Name: "extra"})
	p.settle()
	if len(p.i.ike.Info().Children) != 1 || len(p.i.ike.later()) != 1 {
		t.Fatalf("expected a TEMPORARY_FAILURE and a retry scheduled")
	}
	p.advance(time.Minute)
	if n := len(p.i.ike.Info().Children); n != 2 {
		t.Fatalf("%d children, want 2; events %+v", n, p.i.events)
	}
	if checkPaired(t, p.i, p.r) != 4 {
		t.Fatal("SAs do not pair")
	}
}

func TestPFSRekeyFallback(t *testing.T) {
	// P4: the peer answers NO_PROPOSAL_CHOSEN to a PFS rekey; retry with
	// the KE of the existing SA (none here), which it accepts.
	p := establish(t, 91, func(ini, resp *Config) {
		ini.Children[0].Proposals = mustProps(t, "aes256gcm16-modp2048,aes256gcm16", ike.ProtoESP)
		resp.Children[0].Proposals = mustProps(t, "aes256gcm16", ike.ProtoESP)
	})
	c := p.i.ike.Info().Children[0]
	p.command(p.i, Command{Kind: CmdRekeyChild, SPI: c.InSPI})
	p.settle()
	if p.i.count(EventChildRekeyed) != 1 || checkPaired(t, p.i, p.r) != 2 {
		t.Fatalf("rekey failed: %+v", p.i.events)
	}
	t.Run("INVALID_KE", func(t *testing.T) {
		p := establish(t, 92, func(ini, resp *Config) {
			ini.Children[0].Proposals = mustProps(t, "aes256gcm16-ecp256-x25519", ike.ProtoESP)
			resp.Children[0].Proposals = mustProps(t, "aes256gcm16-x25519", ike.ProtoESP)
		})
		c := p.i.ike.Info().Children[0]
		p.command(p.i, Command{Kind: CmdRekeyChild, SPI: c.InSPI})
		p.settle()
		if p.i.count(EventChildRekeyed) != 1 || checkPaired(t, p.i, p.r) != 2 {
			t.Fatalf("rekey failed: %+v", p.i.events)
		}
		if got := p.i.ike.Info().Children[0].Algorithms; got != "aes256gcm16-x25519" {
			t.Errorf("algorithms %q", got)
		}
	})
}

// The responder of a Child SA rekey keeps sending on the old SA until the
// initiator deletes it: the initiator installs its new inbound SA only
// when our response arrives, so switching at once loses the packets that
// overtake the response (seen as ping loss mifsec↔mifsec in
// test/interop; strongSwan 5.9.6+ also delays the switch).
func TestRekeyResponderSwitchesOutboundOnDelete(t *testing.T) {
	for _, byInitiator := range []bool{true, false} {
		t.Run(fmt.Sprintf("by initiator %v", byInitiator), func(t *testing.T) {
			p := establish(t, 41, nil)
			a, b := side(p, byInitiator)
			old := b.ike.Info().Children[0]
			outSPIs := func() []uint32 {
				for _, pol := range activePolicies(t, b) {
					if pol.Direction == dataplane.Out {
						return pol.SPIs
					}
				}
				return nil
			}
			p.command(a, Command{Kind: CmdRekeyChild, SPI: a.ike.Info().Children[0].InSPI})
			p.step() // the CREATE_CHILD_SA request reaches b, b answers
			if got := outSPIs(); len(got) != 1 || got[0] != old.OutSPI {
				t.Fatalf("responder sends on %x before the initiator has the new SA; old %x", got, old.OutSPI)
			}
			p.step() // the response reaches a, which sends DELETE for the old SA
			p.step() // the DELETE reaches b
			now := b.ike.Info().Children
			if len(now) != 1 || now[0].InSPI == old.InSPI {
				t.Fatalf("responder children after DELETE %+v", now)
			}
			if got := outSPIs(); len(got) != 1 || got[0] != now[0].OutSPI {
				t.Fatalf("responder outbound %x after DELETE, want the new SA %x", got, now[0].OutSPI)
			}
			p.settle()
			if checkPaired(t, p.i, p.r) != 2 {
				t.Fatal("SAs do not pair after the rekey")
			}
		})
	}
}
