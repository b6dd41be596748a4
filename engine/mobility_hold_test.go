package engine

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/iface"
	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/transport"
)

// rekeyingPeer makes the gateway of m answer the end user's
// UPDATE_SA_ADDRESSES the way strongSwan with kernel-libipsec does: it
// rekeys the Child SA (whose addresses it cannot change) before the
// answer reaches the end user. The answer is held back until the end user
// has answered the gateway's CREATE_CHILD_SA. While dropDel is set, the
// gateway's later INFORMATIONAL requests (the DELETE of the old Child SA)
// are dropped, so the end user keeps the old SA.
type rekeyingPeer struct {
	t      *testing.T
	m      *mpair
	mu     sync.Mutex
	armed  bool
	held   *transport.Packet
	rekeys int
	// dropDel: drop the gateway's INFORMATIONAL requests to the end user.
	dropDel bool
}

func newRekeyingPeer(t *testing.T, m *mpair) *rekeyingPeer {
	r := &rekeyingPeer{t: t, m: m}
	m.w.mu.Lock()
	m.w.filter = r.filter
	m.w.mu.Unlock()
	return r
}

// arm: the next UPDATE_SA_ADDRESSES answer from the gateway is held and
// the gateway rekeys the Child SA first.
func (r *rekeyingPeer) arm() {
	r.mu.Lock()
	r.armed = true
	r.mu.Unlock()
}

func (r *rekeyingPeer) filter(p transport.Packet) bool {
	h, err := ike.DecodeHeader(p.Data)
	if err != nil {
		return true
	}
	fromGW := p.Remote.Addr().String() == gwAddr
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case fromGW && r.armed && h.Exchange == ike.Informational && h.IsResponse():
		// The UPDATE_SA_ADDRESSES answer (the only INFORMATIONAL response
		// while armed): rekey first, as strongSwan's update_hosts does.
		r.armed, r.held = false, &p
		go r.rekey()
		return false
	case !fromGW && r.held != nil && h.Exchange == ike.CreateChildSA && h.IsResponse():
		// The end user answered the rekey: the held answer reaches it
		// before the gateway completes the rekey (and deletes the old SA).
		held := *r.held
		r.held = nil
		r.rekeys++
		go func() {
			r.m.w.inject(held)
			time.Sleep(20 * time.Millisecond)
			r.m.w.inject(p)
		}()
		return false
	case fromGW && r.dropDel && h.Exchange == ike.Informational && !h.IsResponse():
		return false
	}
	return true
}

func (r *rekeyingPeer) rekey() {
	ctx := tctx(r.t)
	ikes, _, err := r.m.gw.ListIKESAs(ctx, "ues", "", 10)
	if err != nil || len(ikes) != 1 {
		r.t.Errorf("gateway IKE SAs %+v %v", ikes, err)
		return
	}
	kids, _, err := r.m.gw.ListChildSAs(ctx, "ues", ikes[0].Name, "", 10)
	if err != nil || len(kids) != 1 {
		r.t.Errorf("gateway Child SAs %+v %v", kids, err)
		return
	}
	// The call waits for the DELETE of the old SA, which the test may drop
	// until it ends (and cancels ctx).
	if _, err := r.m.gw.RekeyChildSA(ctx, "ues", ikes[0].Name, kids[0].Name); err != nil && ctx.Err() == nil {
		r.t.Errorf("gateway rekey: %v", err)
	}
}

// TestMigrateHoldsOutbound: after an API move with both links up, a
// Child SA that the peer rekeyed during the move (its sign that it could
// not move the SA's addresses) keeps its outbound half on the old pair
// (inbound moves at once) until the peer deletes it (its replacement is
// on the new pair), the hold times out, or the old link fails. Each
// release is an EventFlowsMoved on the mobility category.
func TestMigrateHoldsOutbound(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dropDel bool // keep the old Child SA (the gateway's DELETE is lost)
		release func(t *testing.T, m *mpair)
		reason  string
		within  time.Duration // from the move to the release
	}{
		{"peer deletes the old SA", false, func(*testing.T, *mpair) {}, "child_sa_rekeyed", time.Second},
		{"timeout", true, func(*testing.T, *mpair) {}, "hold_timeout", holdFor + 2*time.Second},
		{"old link down", true, func(t *testing.T, m *mpair) { m.ueLinks.SetState("wlan0", iface.Down) }, "link_down", time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A slow retransmission schedule: the gateway keeps its IKE SA
			// while its DELETE is dropped past the hold.
			m := newMPairRT(t, false, time.Second)
			ctx := tctx(t)
			name, err := m.ue.InitiateConnection(ctx, "gw", "")
			if err != nil {
				t.Fatal(err)
			}
			kids, _, err := m.ue.ListChildSAs(ctx, "gw", name, "", 10)
			if err != nil || len(kids) != 1 {
				t.Fatalf("child SAs %+v %v", kids, err)
			}
			k := kids[0]
			peer := newRekeyingPeer(t, m)
			peer.dropDel = tc.dropDel
			peer.arm()
			sub, err := m.ue.Watch(ctx, WatchFilter{Categories: []Category{CategoryMobility}})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			t0 := time.Now()
			if _, err := m.ue.MigrateIKESA(ctx, "gw", name, "ran", ""); err != nil {
				t.Fatal(err)
			}
			peer.mu.Lock()
			rekeys := peer.rekeys
			peer.mu.Unlock()
			if rekeys != 1 {
				t.Fatalf("the gateway rekeyed %d times during the move, want 1", rekeys)
			}
			if in := m.ueSA(k.SPIIn); in.Local.Addr().String() != ranAddr {
				t.Fatalf("right after the move: inbound on %v, want %s", in.Local, ranAddr)
			}
			if tc.dropDel {
				if out := m.ueSA(k.SPIOut); out.Local.Addr().String() != wlanAddr {
					t.Fatalf("right after the move: outbound from %v, want the old %s", out.Local, wlanAddr)
				}
			}
			tc.release(t, m)
			evs := collect(t, sub, func(ev Event) bool { return ev.Type == EventFlowsMoved })
			mig := index(evs, func(ev Event) bool { return ev.Type == EventIKESAMigrated && ev.Reason == "api" })
			mv := evs[len(evs)-1]
			if mig < 0 || mv.Reason != tc.reason || mv.From.ID != wlanPath || mv.To.ID != ranPath || mv.IKESA == nil || mv.IKESA.Name != name {
				t.Fatalf("events %+v", evs)
			}
			if d := time.Since(t0); d > tc.within {
				t.Fatalf("released after %v, want within %v", d, tc.within)
			}
			// The replacement the gateway made is on the new pair, with the
			// new path's tag.
			kids, _, _ = m.ue.ListChildSAs(ctx, "gw", name, "", 10)
			i := slices.IndexFunc(kids, func(c ChildSAView) bool { return c.State == "installed" && c.SPIOut != k.SPIOut })
			if i < 0 {
				t.Fatalf("after the rekey %+v", kids)
			}
			if s := m.ueSA(kids[i].SPIOut); s.Local.Addr().String() != ranAddr {
				t.Fatalf("replacement outbound SA %+v", s)
			}
			if tc.dropDel {
				if s := m.ueSA(k.SPIOut); s.Local.Addr().String() != ranAddr {
					t.Fatalf("after the release the old outbound SA sends from %v", s.Local)
				}
			}
		})
	}
}

// TestMigrateInPlaceNoHold: a peer that moves the Child SAs with the IKE
// SA (RFC 4555 §3.5; here another mifsec) and may look inbound ESP up by
// destination address (Linux XFRM does) gets the Child SAs on the new pair
// at once, and their replacements carry the new path's tag.
func TestMigrateInPlaceNoHold(t *testing.T) {
	m := newMPair(t, false)
	ctx := tctx(t)
	name, err := m.ue.InitiateConnection(ctx, "gw", "")
	if err != nil {
		t.Fatal(err)
	}
	kids, _, err := m.ue.ListChildSAs(ctx, "gw", name, "", 10)
	if err != nil || len(kids) != 1 {
		t.Fatalf("child SAs %+v %v", kids, err)
	}
	k := kids[0]
	if _, err := m.ue.MigrateIKESA(ctx, "gw", name, "ran", ""); err != nil {
		t.Fatal(err)
	}
	if out, in := m.ueSA(k.SPIOut), m.ueSA(k.SPIIn); out.Local.Addr().String() != ranAddr || in.Local.Addr().String() != ranAddr {
		t.Fatalf("right after the move: outbound from %v, inbound on %v, want both %s", out.Local, in.Local, ranAddr)
	}
	if n := m.ue.holdCount(t); n != 0 {
		t.Fatalf("%d holds after a move the peer made in place", n)
	}
	if _, err := m.ue.RekeyChildSA(ctx, "gw", name, k.Name); err != nil {
		t.Fatal(err)
	}
	kids, _, _ = m.ue.ListChildSAs(ctx, "gw", name, "", 10)
	i := slices.IndexFunc(kids, func(c ChildSAView) bool { return c.State == "installed" && c.SPIOut != k.SPIOut })
	if i < 0 {
		t.Fatalf("after the rekey %+v", kids)
	}
	if s := m.ueSA(kids[i].SPIOut); s.Local.Addr().String() != ranAddr || s.Path != m.ue.pathTag(t, ranPath) {
		t.Fatalf("replacement outbound SA %+v, ran path tag %d", s, m.ue.pathTag(t, ranPath))
	}
}

// TestMigrateAfterFailureNoHold: the move that follows the loss of the
// link in use switches the outbound half at once.
func TestMigrateAfterFailureNoHold(t *testing.T) {
	m := newMPair(t, false)
	ctx := tctx(t)
	name, err := m.ue.InitiateConnection(ctx, "gw", "")
	if err != nil {
		t.Fatal(err)
	}
	kids, _, err := m.ue.ListChildSAs(ctx, "gw", name, "", 10)
	if err != nil || len(kids) != 1 {
		t.Fatalf("child SAs %+v %v", kids, err)
	}
	m.ueLinks.SetState("wlan0", iface.Down)
	waitFor(t, "outbound SA on ran", func() bool { return m.ueSA(kids[0].SPIOut).Local.Addr().String() == ranAddr })
	if n := m.ue.holdCount(t); n != 0 {
		t.Fatalf("%d holds after a failure move", n)
	}
}

// ueSA is the end user's data-plane SA with that SPI.
func (m *mpair) ueSA(spi uint32) dataplane.SA {
	m.ueDP.mu.Lock()
	defer m.ueDP.mu.Unlock()
	return m.ueDP.sas[spi]
}

func (e *Engine) holdCount(t *testing.T) int {
	n, err := do(tctx(t), e, func(st *state) (int, error) { return len(st.mp.holds), nil })
	if err != nil {
		t.Fatal(err)
	}
	return n
}
