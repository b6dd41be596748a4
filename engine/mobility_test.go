package engine

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/iface"
)

const wlanPath, ranPath = "wlan-192-0-2-1", "ran-192-0-2-1"

// events collects the types and reasons of what sub delivers until stop
// returns true for one.
func collect(t *testing.T, sub *Subscription, stop func(Event) bool) []Event {
	t.Helper()
	var out []Event
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				t.Fatalf("subscription ended: %v", sub.Err())
			}
			if ev.Type == EventSnapshot || ev.Type == EventEndOfSnapshot {
				continue
			}
			out = append(out, ev)
			if stop(ev) {
				return out
			}
		case <-timeout:
			t.Fatalf("timed out; got %v", out)
		}
	}
}

func index(evs []Event, f func(Event) bool) int {
	for i, ev := range evs {
		if f(ev) {
			return i
		}
	}
	return -1
}

func TestLinkDownRepins(t *testing.T) {
	m := newMPair(t, true)
	m.establish(t)
	ctx := tctx(t)
	if _, err := m.ue.CreateSteeringRule(ctx, "prefer-wlan", SteeringSpec{Mode: SteerPriority,
		Targets: []SteeringTarget{{AccessType: AccessWLAN}, {AccessType: AccessRAN}}}); err != nil {
		t.Fatal(err)
	}
	if got := m.pathOfFlow(t, flowA); got != wlanPath {
		t.Fatalf("flow on %s", got)
	}
	sub, err := m.ue.Watch(ctx, WatchFilter{Categories: []Category{CategoryPath, CategorySteering}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	m.ueLinks.SetState("wlan0", iface.Down)
	evs := collect(t, sub, func(ev Event) bool { return ev.Type == EventFlowsMoved })
	down := index(evs, func(ev Event) bool {
		return ev.Type == EventPathDown && ev.Path.ID == wlanPath && ev.Reason == "link_down"
	})
	moved := evs[len(evs)-1]
	if down < 0 || moved.Reason != "link_down" || moved.From.ID != wlanPath || moved.To.ID != ranPath || moved.SteeringRule.ID != "prefer-wlan" {
		t.Fatalf("events %+v", evs)
	}
	if got := m.pathOfFlow(t, flowA); got != ranPath {
		t.Fatalf("flow on %s after link down", got)
	}
	// The link comes back: PRIORITY is revertive.
	m.ueLinks.SetState("wlan0", iface.Up)
	waitFor(t, "flows back on wlan", func() bool { return m.pathOfFlow(t, flowA) == wlanPath })
}

func TestDeleteInterfaceDrains(t *testing.T) {
	m := newMPair(t, true)
	m.establish(t)
	ctx := tctx(t)
	if _, err := m.ue.CreateSteeringRule(ctx, "prefer-wlan", SteeringSpec{Mode: SteerActiveStandby,
		Targets: []SteeringTarget{{Interface: "wlan"}, {Interface: "ran"}}}); err != nil {
		t.Fatal(err)
	}
	sub, err := m.ue.Watch(ctx, WatchFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := m.ue.DeleteInterface(ctx, "wlan"); err != nil {
		t.Fatal(err)
	}
	evs := collect(t, sub, func(ev Event) bool { return ev.Type == EventInterfaceDeleted })
	moved := index(evs, func(ev Event) bool {
		return ev.Type == EventFlowsMoved && ev.From.ID == wlanPath && ev.To.ID == ranPath && ev.Reason == "interface_deleted"
	})
	if moved < 0 {
		t.Fatalf("no flows moved before the interface went: %+v", evs)
	}
	if got := m.pathOfFlow(t, flowA); got != ranPath {
		t.Fatalf("flow on %s", got)
	}
	// The extra path's IKE SA on the interface is deleted at both ends.
	waitFor(t, "one IKE SA left", func() bool { return len(upSAs(t, m.ue)) == 1 && len(upSAs(t, m.gw)) == 1 })
}

func TestDeleteInterfaceSinglePath(t *testing.T) {
	m := newMPair(t, false)
	ctx := tctx(t)
	name, err := m.ue.InitiateConnection(ctx, "gw", "")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := m.ue.GetIKESA(ctx, "gw", name)
	if v.Local.Addr().String() != wlanAddr || !v.Caps.MOBIKE {
		t.Fatalf("IKE SA %+v", v)
	}
	sub, err := m.ue.Watch(ctx, WatchFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := m.ue.DeleteInterface(ctx, "wlan"); err != nil {
		t.Fatal(err)
	}
	// The IKE SA moves to ran first, then the peer hears our address list
	// without wlan's address.
	evs := collect(t, sub, func(ev Event) bool { return ev.Type == EventAddressesAnnounced })
	mig := index(evs, func(ev Event) bool {
		return ev.Type == EventIKESAMigrated && ev.From.ID == wlanPath && ev.To.ID == ranPath && ev.Reason == "interface_deleted"
	})
	ann := evs[len(evs)-1]
	if mig < 0 || index(evs, func(ev Event) bool { return ev.Type == EventInterfaceDeleted }) < 0 {
		t.Fatalf("events %+v", evs)
	}
	for _, a := range ann.Addrs {
		if a.String() == wlanAddr || a.String() == ranAddr {
			t.Fatalf("announced %v", ann.Addrs)
		}
	}
	v, _ = m.ue.GetIKESA(ctx, "gw", name)
	if v.Local.Addr().String() != ranAddr {
		t.Fatalf("IKE SA on %v", v.Local)
	}
	gs := upSAs(t, m.gw)
	if len(gs) != 1 || gs[0].Remote.Addr().String() != ranAddr {
		t.Fatalf("gateway %+v", gs)
	}
}

func TestMigrateIKESA(t *testing.T) {
	m := newMPair(t, false)
	ctx := tctx(t)
	name, err := m.ue.InitiateConnection(ctx, "gw", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		iface, path, reason string
		code                Code
	}{
		{"nope", "", ReasonInterfaceNotFound, NotFound},
		{"", "nope", "PATH_NOT_FOUND", NotFound},
		{"wlan", "", "ALREADY_ON_PATH", FailedPrecondition},
		{"", "", "MISSING_FIELD", InvalidArgument},
	} {
		_, err := m.ue.MigrateIKESA(ctx, "gw", name, tc.iface, tc.path)
		wantReason(t, err, tc.code, tc.reason, "")
	}
	sub, err := m.ue.Watch(ctx, WatchFilter{Categories: []Category{CategoryMobility}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	v, err := m.ue.MigrateIKESA(ctx, "gw", name, "ran", "")
	if err != nil || v.Local.Addr().String() != ranAddr {
		t.Fatalf("migrate: %+v %v", v, err)
	}
	evs := collect(t, sub, func(ev Event) bool { return ev.Type == EventIKESAMigrated })
	if mig := evs[len(evs)-1]; mig.From.ID != wlanPath || mig.To.ID != ranPath || mig.Reason != "api" {
		t.Fatalf("event %+v", mig)
	}
	ps := pathsOf(t, m.ue, "gw")
	if ps[ranPath].IKESA != name || ps[ranPath].State != PathUp || ps[wlanPath].IKESA != "" {
		t.Fatalf("paths %+v", ps)
	}
	// Back by path name.
	if v, err = m.ue.MigrateIKESA(ctx, "gw", name, "", wlanPath); err != nil || v.Local.Addr().String() != wlanAddr {
		t.Fatalf("migrate back: %+v %v", v, err)
	}
}

func TestSteeringMakeBeforeBreak(t *testing.T) {
	m := newMPairRT(t, true, time.Second)
	m.establish(t)
	ctx := tctx(t)
	if _, err := m.ue.CreateSteeringRule(ctx, "r", SteeringSpec{Mode: SteerActiveStandby, ProbeInterval: time.Minute,
		Targets: []SteeringTarget{{Interface: "wlan"}, {Interface: "ran"}}}); err != nil {
		t.Fatal(err)
	}
	m.w.set(ranAddr, gwAddr, 100*time.Millisecond, false)
	ranTag := m.tagOf(t, ranPath)
	var firstRan atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, tag := m.ueDP.send(flowA); tag == ranTag && firstRan.Load() == 0 {
				firstRan.Store(time.Now().UnixNano())
			}
			time.Sleep(time.Millisecond)
		}
	}()
	t0 := time.Now()
	if _, err := m.ue.UpdateSteeringRule(ctx, "r", SteeringSpec{Targets: []SteeringTarget{{Interface: "ran"}, {Interface: "wlan"}}}, []string{"targets"}); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-done
	ver := pathsOf(t, m.ue, "gw")[ranPath].LastVerified
	if !ver.After(t0) || firstRan.Load() != 0 && time.Unix(0, firstRan.Load()).Before(ver) || time.Since(t0) < 100*time.Millisecond {
		t.Fatalf("ran used at %v, verified at %v, update started %v", time.Unix(0, firstRan.Load()), ver, t0)
	}
	if got := m.pathOfFlow(t, flowA); got != ranPath {
		t.Fatalf("flow on %s", got)
	}
	// Back to wlan, then ran stops answering: the move to it fails and no
	// flow leaves wlan.
	if _, err := m.ue.UpdateSteeringRule(ctx, "r", SteeringSpec{Targets: []SteeringTarget{{Interface: "wlan"}, {Interface: "ran"}}}, []string{"targets"}); err != nil {
		t.Fatal(err)
	}
	m.w.set(ranAddr, gwAddr, 0, true)
	_, err := m.ue.UpdateSteeringRule(ctx, "r", SteeringSpec{Targets: []SteeringTarget{{Interface: "ran"}, {Interface: "wlan"}}}, []string{"targets"})
	wantReason(t, err, FailedPrecondition, ReasonPathNotVerified, "")
	if got := m.pathOfFlow(t, flowA); got != wlanPath {
		t.Fatalf("flow on %s after a failed move", got)
	}
	r, _ := m.ue.GetSteeringRule(ctx, "r")
	if r.Targets[0].Interface != "wlan" {
		t.Fatalf("rule changed: %+v", r)
	}
}
