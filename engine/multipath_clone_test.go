package engine

import (
	"testing"
	"time"
)

// indexAfter is the first event at or after from that f accepts, or -1.
func indexAfter(evs []Event, from int, f func(Event) bool) int {
	if from < 0 {
		return -1
	}
	for i := from; i < len(evs); i++ {
		if f(evs[i]) {
			return i
		}
	}
	return -1
}

func isType(t EventType, reason string) func(Event) bool {
	return func(ev Event) bool { return ev.Type == t && (reason == "" || ev.Reason == reason) }
}

// RFC 7791 between two mifsec engines: the second path of a multipath
// connection is a clone of the first IKE SA, moved there with MOBIKE and
// given its Child SA: one authentication on each end, and the events say
// so in order (cloned, migrated from the first path, Child SA, path up).
func TestMultipathClones(t *testing.T) {
	m := newMPair(t, true)
	ctx := tctx(t)
	usub, err := m.ue.Watch(ctx, WatchFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer usub.Close()
	gsub, err := m.gw.Watch(ctx, WatchFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer gsub.Close()
	m.establish(t)
	for _, x := range []struct {
		name string
		e    *Engine
	}{{"end user", m.ue}, {"gateway", m.gw}} {
		st, err := x.e.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.HandshakesOK != 1 {
			t.Errorf("%s: %d handshakes, want 1 (the other path is a clone)", x.name, st.HandshakesOK)
		}
		for _, v := range upSAs(t, x.e) {
			if !v.Caps.Clone || v.Children != 1 {
				t.Errorf("%s: IKE SA %s: peer clone support %v, %d Child SAs", x.name, v.Name, v.Caps.Clone, v.Children)
			}
		}
	}
	pathUp := func(id string) func(Event) bool {
		return func(ev Event) bool { return ev.Type == EventPathUp && ev.Path.ID == id }
	}
	evs := collect(t, usub, func(ev Event) bool { return ev.Type == EventPathUp && ev.Path.ID == ranPath })
	first := index(evs, isType(EventIKESAUp, "established"))
	cloned := indexAfter(evs, first, isType(EventIKESAUp, "cloned"))
	moved := indexAfter(evs, cloned, isType(EventIKESAMigrated, "clone"))
	child := indexAfter(evs, moved, isType(EventChildSAUp, ""))
	up := indexAfter(evs, child, pathUp(ranPath))
	if first < 0 || cloned < 0 || moved < 0 || child < 0 || up < 0 {
		t.Fatalf("end user events out of order (%d %d %d %d %d): %v", first, cloned, moved, child, up, evs)
	}
	if mv := evs[moved]; mv.From.ID != wlanPath || mv.To.ID != ranPath || mv.IKESA.Name != evs[cloned].IKESA.Name {
		t.Fatalf("clone moved %s → %s: %+v", mv.From.ID, mv.To.ID, mv)
	}
	// The gateway answered a clone request: its IKE_SA_UP says so (collect
	// fails the test when it never comes).
	collect(t, gsub, isType(EventIKESAUp, "cloned"))
}

// A clone that cannot move to its path is deleted and the path gets a
// fully authenticated IKE SA instead (no INITIAL_CONTACT: the first path
// stays).
func TestMultipathCloneFallback(t *testing.T) {
	m := newMPair(t, true)
	ctx := tctx(t)
	m.w.set(ranAddr, gwAddr, 0, true)
	sub, err := m.ue.Watch(ctx, WatchFilter{Categories: []Category{CategoryIKESA}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := m.ue.InitiateConnection(ctx, "gw", ""); err != nil {
		t.Fatal(err)
	}
	evs := collect(t, sub, isType(EventIKESADown, ""))
	if i := index(evs, isType(EventIKESAUp, "cloned")); i < 0 || evs[len(evs)-1].IKESA.Name != evs[i].IKESA.Name {
		t.Fatalf("the clone should go down when its path test fails: %v", evs)
	}
	m.w.set(ranAddr, gwAddr, 0, false)
	waitFor(t, "both paths up", func() bool {
		ps := pathsOf(t, m.ue, "gw")
		return len(upSAs(t, m.ue)) == 2 && len(upSAs(t, m.gw)) == 2 && ps[wlanPath].State == PathUp && ps[ranPath].State == PathUp
	})
	st, err := m.gw.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.HandshakesOK != 2 {
		t.Fatalf("gateway: %d handshakes, want 2 (the second path fully authenticated)", st.HandshakesOK)
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(upSAs(t, m.gw)); n != 2 {
		t.Fatalf("gateway has %d IKE SAs: INITIAL_CONTACT replaced one?", n)
	}
}
