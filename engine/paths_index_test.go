package engine

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// checkIndex verifies the indexes the per-event work relies on: each IKE
// SA listed on its path exactly once, paths by tag and by connection,
// inbound SPIs and policy entries of the steering table.
func checkIndex(t *testing.T, e *Engine, who string) {
	t.Helper()
	errs, err := do(tctx(t), e, func(st *state) ([]string, error) {
		var errs []string
		bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
		for _, s := range st.rt.sas() {
			if s.path == nil {
				continue
			}
			if n := len(slices.DeleteFunc(slices.Clone(s.path.sas), func(x *ikeSA) bool { return x != s })); n != 1 {
				bad("IKE SA %s/%s listed %d times on %s", s.conn, s.name(), n, s.path.name())
			}
			if st.mp.paths[s.path.pathKey] != s.path {
				bad("IKE SA %s/%s on unregistered path %s", s.conn, s.name(), s.path.name())
			}
			// Only the members of merged policies have their inbound
			// SAs mapped to their path.
			pols := append([]*outPol{s.multi.pol}, s.multi.others()...)
			if pols[0] == nil {
				pols = nil
				if len(s.multi.others()) > 0 {
					bad("IKE SA %s/%s has more outbound policies but no first", s.conn, s.name())
				}
			}
			merged := slices.ContainsFunc(pols, func(o *outPol) bool { return o.merged != nil })
			if merged && !s.multi.steered {
				bad("IKE SA %s/%s is in a merged policy but its inbound SAs are not steered", s.conn, s.name())
			}
			for _, spi := range s.multi.in {
				want := uint32(0)
				if s.multi.steered {
					want = s.path.tag
				}
				if tag, _ := st.mp.steer.inPath.get(spi); tag != want {
					bad("inbound SPI %08x on tag %d, want %d", spi, tag, want)
				}
			}
			for _, o := range pols {
				if st.mp.pols[o.key] != o {
					bad("IKE SA %s/%s has an outbound policy that is not filed", s.conn, s.name())
				}
				if o.merged == nil && o.sa != s || o.merged != nil && !o.merged.has(s) {
					bad("IKE SA %s/%s lists an outbound policy it is not a member of", s.conn, s.name())
				}
			}
		}
		n := 0
		for _, ps := range st.mp.byConn {
			n += len(ps)
		}
		if n != len(st.mp.paths) {
			bad("%d paths by connection, %d registered", n, len(st.mp.paths))
		}
		for k, p := range st.mp.paths {
			if st.mp.byTag[p.tag] != p || p.pathKey != k {
				bad("path %s: tag or key index wrong", p.name())
			}
			if ps := st.mp.byConn[p.conn]; p.cidx < 1 || int(p.cidx) > len(ps) || ps[p.cidx-1] != p {
				bad("path %s missing from its connection's index", p.name())
			}
			var best *ikeSA
			for i, s := range p.sas {
				if !st.rt.live(s) || s.path != p || int(s.multi.pidx) != i+1 {
					bad("path %s lists IKE SA %s that is gone, elsewhere or misplaced", p.name(), s.name())
				}
				if best == nil || better(s, best) {
					best = s
				}
			}
			if got := st.saOf(p); got != best {
				bad("path %s: saOf picks %v, want %v", p.name(), got, best)
			}
		}
		for p := range st.mp.probed {
			if st.mp.paths[p.pathKey] != p {
				bad("unregistered path %s probed", p.name())
			}
		}
		for o := range st.mp.alias {
			if o.merged != nil || st.mp.pols[o.key] != o {
				bad("alias of policy %d that is merged or not filed", o.id)
			}
		}
		for _, o := range st.mp.pols {
			if o.merged == nil {
				if _, ok := st.mp.steer.pols.get(o.id); ok {
					bad("policy %d of %s is alone but has an entry", o.id, o.sa.conn)
				}
				if !o.sa.multi.hasPol(o) {
					bad("policy %d of %s not listed by its IKE SA", o.id, o.sa.conn)
				}
				continue
			}
			mp := o.merged
			if _, ok := st.mp.connPols[mp.conn][mp]; !ok {
				bad("merged policy %d of %s not listed by connection", mp.pol.ID, mp.conn)
			}
			c := st.connections[mp.conn]
			want := c != nil && (c.Role == RoleResponder || st.ruled(mp.conn))
			ps, ok := st.mp.steer.pols.get(mp.pol.ID)
			if ok != want {
				bad("policy %d of %s: entry %v, want %v", mp.pol.ID, mp.conn, ok, want)
				continue
			}
			if !ok {
				continue
			}
			var spis []spiTag
			for _, m := range mp.members {
				for _, spi := range m.spis {
					spis = append(spis, spiTag{spi, m.sa.path.tag})
				}
			}
			if !slices.Equal(ps.spis, spis) || ps.conn != st.mp.cells[mp.conn] || ps.symmetric != (c.Role == RoleResponder) {
				bad("policy %d of %s: entry %+v, want SPIs %v", mp.pol.ID, mp.conn, ps, spis)
			}
		}
		return errs, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		t.Errorf("%s: %s", who, e)
	}
}

// derived reads how many path derivations the engine did so far.
func derived(t *testing.T, e *Engine) uint64 {
	n, err := do(tctx(t), e, func(st *state) (uint64, error) { return st.mp.derived, nil })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPathWorkPerEvent: with many IKE SAs up, one more establishment
// derives a handful of paths on each end, not every path (the per-event
// work grew with the number of IKE SAs), and the indexes stay exact as
// IKE SAs come and go and steering rules are added and removed.
func TestPathWorkPerEvent(t *testing.T) {
	const conns = 40
	ue, gw := scalePair(t, conns+1)
	for i := range conns {
		if _, err := ue.InitiateConnection(tctx(t), fmt.Sprintf("c%d", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	checkIndex(t, ue, "ue")
	checkIndex(t, gw, "gw")
	u0, g0 := derived(t, ue), derived(t, gw)
	if _, err := ue.InitiateConnection(tctx(t), fmt.Sprintf("c%d", conns), ""); err != nil {
		t.Fatal(err)
	}
	if du, dg := derived(t, ue)-u0, derived(t, gw)-g0; du > 4 || dg > 4 {
		t.Errorf("one establishment with %d IKE SAs up derived %d paths on the end user, %d on the gateway", conns, du, dg)
	}
	// The peers share one address: one path on the gateway, all of its
	// IKE SAs on it; one per connection on the end user.
	if n := len(pathsOf(t, gw, "ues")); n != 1 {
		t.Errorf("gateway has %d paths, want 1", n)
	}

	for i := range 10 {
		if err := ue.TerminateConnection(tctx(t), fmt.Sprintf("c%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "ten IKE SAs gone on the gateway", func() bool {
		l, _, err := gw.ListIKESAs(tctx(t), "-", "", 1000)
		return err == nil && len(l) == conns+1-10
	})
	if l, _, err := ue.ListPaths(tctx(t), "-", "", 1000); err != nil || len(l) != conns+1 {
		t.Errorf("end user has %d paths, want one per connection (%v)", len(l), err)
	}
	checkIndex(t, ue, "ue")
	checkIndex(t, gw, "gw")

	// Nothing probes the paths of single-path connections without rules:
	// they have no probing state; without MOBIKE no address list is kept
	// per IKE SA for announcements.
	for _, e := range []*Engine{ue, gw} {
		n, err := do(tctx(t), e, func(st *state) ([2]int, error) {
			n := [2]int{0, len(st.mp.announce)}
			for _, p := range st.mp.paths {
				if p.pb != nil {
					n[0]++
				}
			}
			return n, nil
		})
		if err != nil || n != [2]int{} {
			t.Errorf("[paths with probing state, IKE SAs with announced lists] %v, want none (%v)", n, err)
		}
	}

	// Single-path connections merge nothing: every outbound policy is
	// passed through alone, without steering entry or inbound SPI mapped
	// to its path, on both ends, with or without a rule (Pick has nothing
	// to choose among one SA).
	for _, tc := range []struct {
		name string
		spec SteeringSpec
	}{
		{"all", SteeringSpec{Mode: SteerPriority, Targets: []SteeringTarget{{Interface: "wan"}}}},
		{"one", SteeringSpec{Mode: SteerPriority, Match: FlowMatch{Connection: "c20"}, Targets: []SteeringTarget{{Interface: "wan"}}}},
	} {
		if _, err := ue.CreateSteeringRule(tctx(t), tc.name, tc.spec); err != nil {
			t.Fatal(err)
		}
		checkIndex(t, ue, "ue with rule "+tc.name)
		for _, x := range []struct {
			who string
			e   *Engine
		}{{"ue", ue}, {"gw", gw}} {
			n, err := do(tctx(t), x.e, func(st *state) ([3]int, error) {
				var n [3]int
				for _, o := range st.mp.pols {
					n[0]++
					if o.merged != nil {
						n[1]++
					}
				}
				for _, s := range st.rt.sas() {
					if s.multi.steered {
						n[2]++
					}
				}
				return n, nil
			})
			if want := [3]int{conns + 1 - 10, 0, 0}; err != nil || n != want {
				t.Errorf("rule %s, %s: [policies merged steered-SAs] %v, want %v (%v)", tc.name, x.who, n, want, err)
			}
		}
		if err := ue.DeleteSteeringRule(tctx(t), tc.name); err != nil {
			t.Fatal(err)
		}
		checkIndex(t, ue, "ue without rule "+tc.name)
	}
}

// TestDeletedConnectionLeavesNoPath: an initiator's candidate paths go
// with its connection.
func TestDeletedConnectionLeavesNoPath(t *testing.T) {
	ue, _ := scalePair(t, 2)
	list := func() []PathView {
		l, _, err := ue.ListPaths(tctx(t), "-", "", 100)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := list(); len(l) != 2 {
		t.Fatalf("candidate paths %+v, want one per connection", l)
	}
	if err := ue.DeleteConnection(tctx(t), "c1"); err != nil {
		t.Fatal(err)
	}
	if l := list(); len(l) != 1 || l[0].Conn != "c0" {
		t.Fatalf("paths after deleting c1: %+v", l)
	}
	checkIndex(t, ue, "ue")
}

func TestCowMap(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys int // key space: small for collisions within shards
		ops  int
	}{
		{"few", 8, 200},
		{"many", 5000, 20000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m cowMap[uint32, uint32]
			ref := map[uint32]uint32{}
			rng := rand.New(rand.NewPCG(1, uint64(tc.keys)))
			for i := range tc.ops {
				k := uint32(rng.IntN(tc.keys))
				switch op := rng.IntN(10); {
				case op < 5:
					m.set(k, uint32(i))
					ref[k] = uint32(i)
				case op < 9:
					m.del(k)
					delete(ref, k)
				case op == 9 && i%50 == 0:
					next := maps.Clone(ref)
					next[k] = 7
					m.replace(next)
					ref = next
				}
			}
			n := 0
			for i := range m.shards {
				if sh := m.shards[i].Load(); sh != nil {
					if len(*sh) == 0 {
						t.Errorf("shard %d kept empty", i)
					}
					n += len(*sh)
				}
			}
			if n != len(ref) {
				t.Errorf("%d entries, want %d", n, len(ref))
			}
			for k := range uint32(tc.keys) {
				v, ok := m.get(k)
				if rv, rok := ref[k]; ok != rok || v != rv {
					t.Fatalf("key %d: %d %v, want %d %v", k, v, ok, rv, rok)
				}
			}
		})
	}
}

// TestPathSize: a path (one per initiator connection, one per peer
// address on a gateway) stays within its 160-byte size class; probing
// and multipath state live in pathProbe.
func TestPathSize(t *testing.T) {
	if n := unsafe.Sizeof(path{}); n > 160 {
		t.Errorf("path is %d bytes, want at most 160", n)
	}
}

// TestCompareNames: paths sort as their names (conn/paths/id) would,
// connections that are prefixes of others included.
func TestCompareNames(t *testing.T) {
	conns := []string{"a", "a-b", "ab", "a0", "b", "gw", "gw-2", "gw2"}
	ids := []string{"wan-192-0-2-1", "wlan-10-0-0-1", "ran-2001-db8--1", "w"}
	var ps []*path
	for _, c := range conns {
		for _, id := range ids {
			ps = append(ps, &path{pathKey: pathKey{conn: c}, id: id})
		}
	}
	rand.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
	for _, a := range ps {
		for _, b := range ps {
			if got, want := compareNames(a, b), strings.Compare(a.name(), b.name()); got != want {
				t.Errorf("compareNames(%s, %s) = %d, want %d", a.name(), b.name(), got, want)
			}
		}
	}
}
