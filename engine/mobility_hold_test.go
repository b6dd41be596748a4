package engine

import (
	"slices"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/iface"
)

// TestMigrateHoldsOutbound: after an API move with both links up, each
// Child SA's outbound half stays on the old pair (inbound moves at once)
// until the peer shows it moved the Child SA (a rekey replaced it), the
// hold times out, or the old link fails; a move after a failure switches
// at once. Each release is an EventFlowsMoved on the mobility category.
func TestMigrateHoldsOutbound(t *testing.T) {
	for _, tc := range []struct {
		name    string
		release func(t *testing.T, m *mpair, ike, child string)
		reason  string
		within  time.Duration // from the move to the release
	}{
		{"timeout", func(*testing.T, *mpair, string, string) {}, "hold_timeout", holdFor + 2*time.Second},
		{"old link down", func(t *testing.T, m *mpair, _, _ string) { m.ueLinks.SetState("wlan0", iface.Down) }, "link_down", time.Second},
		{"rekey", func(t *testing.T, m *mpair, ike, child string) {
			if _, err := m.ue.RekeyChildSA(tctx(t), "gw", ike, child); err != nil {
				t.Fatal(err)
			}
		}, "child_sa_rekeyed", time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
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
			sub, err := m.ue.Watch(ctx, WatchFilter{Categories: []Category{CategoryMobility}})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			t0 := time.Now()
			if _, err := m.ue.MigrateIKESA(ctx, "gw", name, "ran", ""); err != nil {
				t.Fatal(err)
			}
			out, in := m.ueSA(k.SPIOut), m.ueSA(k.SPIIn)
			if out.Local.Addr().String() != wlanAddr || in.Local.Addr().String() != ranAddr {
				t.Fatalf("right after the move: outbound from %v (want the old %s), inbound on %v (want %s)", out.Local, wlanAddr, in.Local, ranAddr)
			}
			tc.release(t, m, name, k.Name)
			evs := collect(t, sub, func(ev Event) bool { return ev.Type == EventFlowsMoved })
			mig := index(evs, func(ev Event) bool { return ev.Type == EventIKESAMigrated && ev.Reason == "api" })
			mv := evs[len(evs)-1]
			if mig < 0 || mv.Reason != tc.reason || mv.From.ID != wlanPath || mv.To.ID != ranPath || mv.IKESA == nil || mv.IKESA.Name != name {
				t.Fatalf("events %+v", evs)
			}
			if d := time.Since(t0); d > tc.within {
				t.Fatalf("released after %v, want within %v", d, tc.within)
			}
			if tc.reason == "child_sa_rekeyed" {
				kids, _, _ = m.ue.ListChildSAs(ctx, "gw", name, "", 10)
				i := slices.IndexFunc(kids, func(c ChildSAView) bool { return c.State == "installed" && c.SPIOut != k.SPIOut })
				if i < 0 {
					t.Fatalf("after the rekey %+v", kids)
				}
				if s := m.ueSA(kids[i].SPIOut); s.Local.Addr().String() != ranAddr || s.Path != m.ue.pathTag(t, ranPath) {
					t.Fatalf("replacement outbound SA %+v, ran path tag %d", s, m.ue.pathTag(t, ranPath))
				}
				return
			}
			if s := m.ueSA(k.SPIOut); s.Local.Addr().String() != ranAddr {
				t.Fatalf("after the release the outbound SA sends from %v", s.Local)
			}
		})
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
