package engine

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/mifsec/mifsec/engine/sa"
)

// indexProblems checks the runtime's indexes against its IKE SAs.
func indexProblems(st *state) error {
	rt := st.rt
	n := 0
	for conn, l := range rt.byConn {
		n += len(l)
		for i, s := range l {
			if s.conn != conn || int(s.cidx) != i+1 || !rt.live(s) {
				return fmt.Errorf("byConn[%s][%d] holds %s/%s at index %d", conn, i, s.conn, s.name(), s.cidx)
			}
			if s.peerH != 0 && !slices.Contains(rt.peersOf(s.conn, s.peer(), nil), s) {
				return fmt.Errorf("%s/%s not in byPeer", s.conn, s.name())
			}
		}
	}
	if n != len(rt.all) {
		return fmt.Errorf("byConn holds %d IKE SAs, all counts %d", n, len(rt.all))
	}
	for key, o := range rt.byPeer {
		for ; o != nil; o = o.peerNext {
			if !rt.live(o) || o.peerH != key || rt.peerHash(o.conn, o.peer()) != key {
				return fmt.Errorf("byPeer %x holds a dropped or moved IKE SA", key)
			}
		}
	}
	// dropSA frees the SPIs an IKE SA owns through its spis list.
	for spi, s := range rt.espIn {
		if s != nil {
			if !rt.live(s) {
				return fmt.Errorf("SPI %08x owned by a dropped IKE SA", spi)
			}
			if !slices.Contains(s.spis.Items(), spi) {
				return fmt.Errorf("SPI %08x missing from its owner's list", spi)
			}
		}
	}
	return nil
}

// The indexes by connection and by peer follow IKE SAs through
// establishment, INITIAL_CONTACT replacement (found through byPeer) and
// termination; dropped IKE SAs leave nothing behind.
func TestRuntimeIndexes(t *testing.T) {
	ue, gw := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := ue.CreateConnection(ctx, "gw2", ConnectionSpec{Role: RoleInitiator, LocalID: "@ue.example", RemoteID: "@gw.example",
		LocalAuth: AuthSpec{PSKSecret: "psk"}, RemoteAuth: AuthSpec{PSKSecret: "psk"}, RemoteAddrs: []string{"192.0.2.1"},
		LocalInterfaces: []string{"wan"}, VirtualIP4: true,
		Children: []ChildSpec{{Name: "net", RemoteTS: []string{"198.18.0.0/24"}}}}); err != nil {
		t.Fatal(err)
	}
	check := func(step string, wantUE, wantGW int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var errs []error
			var counts []int
			for _, e := range []*Engine{ue, gw} {
				c, err := do(ctx, e, func(st *state) (int, error) { return len(st.rt.all), indexProblems(st) })
				errs, counts = append(errs, err), append(counts, c)
			}
			if errs[0] != nil || errs[1] != nil {
				t.Fatalf("%s: ue %v, gw %v", step, errs[0], errs[1])
			}
			if counts[0] == wantUE && counts[1] == wantGW {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: ue %d gw %d IKE SAs, want %d %d", step, counts[0], counts[1], wantUE, wantGW)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	steps := []struct {
		name         string
		run          func() error
		wantUE, want int
	}{
		{"first up", func() error { _, err := ue.InitiateConnection(ctx, "gw", ""); return err }, 1, 1},
		{"again: no new IKE SA", func() error { _, err := ue.InitiateConnection(ctx, "gw", ""); return err }, 1, 1},
		// Same identity, INITIAL_CONTACT: the gateway deletes the older one
		// (found through byPeer), and with it goes the initiator's.
		{"second connection", func() error { _, err := ue.InitiateConnection(ctx, "gw2", ""); return err }, 1, 1},
		{"terminate gw", func() error { return ue.TerminateConnection(ctx, "gw") }, 1, 1},
		{"terminate gw2", func() error { return ue.TerminateConnection(ctx, "gw2") }, 0, 0},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		check(s.name, s.wantUE, s.want)
	}
	for _, e := range []*Engine{ue, gw} {
		left, _ := do(ctx, e, func(st *state) (int, error) {
			n := len(st.rt.byConn) + len(st.rt.byPeer)
			for _, o := range st.rt.espIn {
				if o != nil {
					n++
				}
			}
			return n, nil
		})
		if left != 0 {
			t.Fatalf("%d index entries left", left)
		}
	}
}

// InitiateConnection returns only once the output that brought the IKE SA
// up was applied: its Child SA's event (and routes) come before the reply.
func TestInitiateReturnsAfterChildSA(t *testing.T) {
	ue, _ := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub, err := ue.Watch(ctx, WatchFilter{Categories: []Category{CategoryChildSA}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	w := make(chan initResult, 1)
	if _, err := do(ctx, ue, func(st *state) (struct{}, error) {
		s, err := st.initiate(st.connections["gw"])
		if err == nil {
			s.addWaiter(w)
		}
		return struct{}{}, err
	}); err != nil {
		t.Fatal(err)
	}
	var r initResult
	select {
	case r = <-w:
	case <-ctx.Done():
		t.Fatal("no answer")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	ev := waitEvent(t, sub, EventChildSAUp)
	if ev.Seq > r.seq {
		t.Fatalf("answered after event %d, the Child SA came up in event %d", r.seq, ev.Seq)
	}
}

// byPeer lists a peer's IKE SAs in filing order through peerNext; taking
// one out of the head, middle or tail keeps the others in order, and the
// last leaves no entry; another connection's IKE SA with the same peer is
// filed apart. The record stays within the 224-byte size class (per-SA
// memory).
func TestPeerList(t *testing.T) {
	if n := unsafe.Sizeof(ikeSA{}); n > 224 {
		t.Fatalf("ikeSA is %d bytes, want at most 224", n)
	}
	ue := scaleUser(t, &wire{}, 2)
	for _, drop := range [][]int{{0}, {1}, {2}, {1, 0, 2}, {2, 1, 0}} {
		_, err := do(tctx(t), ue, func(st *state) (struct{}, error) {
			// Machines that have not sent anything: their peer identity is
			// the configured one (@gw.example).
			machine := func(conn string) *sa.IKE {
				cfg, err := st.saTemplate(st.connections[conn])
				if err != nil {
					t.Fatal(err)
				}
				m, _ := sa.NewInitiatorAt(cfg, netip.MustParseAddrPort("192.0.2.2:500"), netip.MustParseAddrPort("192.0.2.1:500"), time.Now(), nil)
				return m
			}
			st.rt.byPeer = map[uint64]*ikeSA{}
			sas := make([]*ikeSA, 3)
			for i := range sas {
				sas[i] = &ikeSA{conn: "c0", m: machine("c0"), spii: uint64(i + 1)}
				st.filePeer(sas[i], "@gw.example")
			}
			other := &ikeSA{conn: "c1", m: machine("c1")}
			st.filePeer(other, "@gw.example")
			left := slices.Clone(sas)
			for _, d := range drop {
				st.unfilePeer(sas[d])
				left = slices.DeleteFunc(left, func(s *ikeSA) bool { return s == sas[d] })
				if got := st.rt.peersOf("c0", "@gw.example", nil); !slices.Equal(got, left) {
					t.Fatalf("drop %v: after %d, %d listed, want %d", drop, d, len(got), len(left))
				}
				if sas[d].peerH != 0 || sas[d].peerNext != nil {
					t.Fatalf("drop %v: %d still linked", drop, d)
				}
			}
			if got := st.rt.peersOf("c1", "@gw.example", nil); !slices.Equal(got, []*ikeSA{other}) {
				t.Fatalf("drop %v: c1 lists %d", drop, len(got))
			}
			want := 1 // c1
			if len(left) > 0 {
				want = 2
			}
			if _, ok := st.rt.byPeer[st.rt.peerHash("c0", "@gw.example")]; ok != (len(left) > 0) || len(st.rt.byPeer) != want {
				t.Fatalf("drop %v: byPeer %v after the last", drop, st.rt.byPeer)
			}
			return struct{}{}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
