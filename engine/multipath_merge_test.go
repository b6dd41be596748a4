package engine

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/sa"
)

// TestPolicyMerge drives the outbound policy operations of SA machines
// through the runtime (dataplaneOp) on a gateway with a recording data
// plane: a policy alone with its selectors reaches the data plane as its
// SA machine made it and costs no steering entry; policies with the same
// connection and selectors (in any order) share one data-plane policy
// with the union of their SAs, the first member's id and an entry, and
// their IKE SAs' inbound SPIs are mapped to their paths; with one member
// and SA left the policy is alone again, under the data plane's id.
func TestPolicyMerge(t *testing.T) {
	m := newMPair(t, true)
	pfx := func(s string) dataplane.Selector { return dataplane.Selector{Prefix: netip.MustParsePrefix(s)} }
	port := func(s string, proto uint8, from, to uint16) dataplane.Selector {
		return dataplane.Selector{Prefix: netip.MustParsePrefix(s), Protocol: proto, PortFrom: from, PortTo: to}
	}
	net := []dataplane.Selector{pfx("198.18.0.0/24")}
	vip := []dataplane.Selector{pfx("10.45.0.1/32")}
	two := []dataplane.Selector{pfx("10.45.0.1/32"), port("10.45.0.9/32", 17, 53, 53)}
	owt := []dataplane.Selector{port("10.45.0.9/32", 17, 53, 53), pfx("10.45.0.1/32")}
	other := []dataplane.Selector{pfx("10.45.0.2/32")}
	type step struct {
		sa     string // the IKE SA the operation comes from
		op     sa.DataplaneOp
		pols   map[uint64][]uint32 // the data plane's outbound policies after it
		alone  int                 // outbound policies passed through alone
		merged int                 // merged ones, each with an entry (responder)
	}
	add := func(id uint64, remote []dataplane.Selector, spis ...uint32) sa.DataplaneOp {
		return sa.DataplaneOp{Kind: sa.OpAddPolicy, Policy: dataplane.Policy{ID: id, Direction: dataplane.Out,
			Local: net, Remote: remote, Action: dataplane.Protect, SPIs: spis}}
	}
	upd := func(id uint64, remote []dataplane.Selector, spis ...uint32) sa.DataplaneOp {
		op := add(id, remote, spis...)
		op.Kind = sa.OpUpdatePolicy
		return op
	}
	del := func(id uint64) sa.DataplaneOp { return sa.DataplaneOp{Kind: sa.OpDeletePolicy, PolicyID: id} }
	in := func(spi uint32) sa.DataplaneOp {
		return sa.DataplaneOp{Kind: sa.OpAddSA, SA: dataplane.SA{SPI: spi, Direction: dataplane.In}}
	}
	type pols = map[uint64][]uint32
	steps := []step{
		{"a", in(0xa0), pols{}, 0, 0},
		{"b", in(0xb0), pols{}, 0, 0},
		{"c", in(0xc0), pols{}, 0, 0},
		{"d", in(0xd0), pols{}, 0, 0},
		{"d", add(9, other, 0xd1), pols{9: {0xd1}}, 1, 0},
		{"d", del(9), pols{}, 0, 0},
		{"a", add(1, vip, 0xa1), pols{1: {0xa1}}, 1, 0},
		{"a", upd(1, vip, 0xa2), pols{1: {0xa2}}, 1, 0},
		{"c", add(3, other, 0xc1), pols{1: {0xa2}, 3: {0xc1}}, 2, 0},
		// b's policy has a's selectors: one policy, a's id, both SAs.
		{"b", add(2, vip, 0xb1), pols{1: {0xa2, 0xb1}, 3: {0xc1}}, 1, 1},
		{"b", upd(2, vip, 0xb2), pols{1: {0xa2, 0xb2}, 3: {0xc1}}, 1, 1},
		// a goes (b re-authenticated it): b's policy is alone again, in
		// the data plane under a's id, and b's operations go there.
		{"a", del(1), pols{1: {0xb2}, 3: {0xc1}}, 2, 0},
		{"b", upd(2, vip, 0xb3), pols{1: {0xb3}, 3: {0xc1}}, 2, 0},
		{"c", upd(3, other), pols{1: {0xb3}, 3: nil}, 2, 0},
		{"c", del(3), pols{1: {0xb3}}, 1, 0},
		// a comes back (b re-authenticated): merged with b's under id 1.
		{"a", add(10, vip, 0xa10), pols{1: {0xb3, 0xa10}}, 0, 1},
		{"b", del(2), pols{1: {0xa10}}, 1, 0},
		{"a", del(10), pols{}, 0, 0},
		// Selectors in another order are the same selectors.
		{"a", add(4, two, 0xa4), pols{4: {0xa4}}, 1, 0},
		{"c", add(5, owt, 0xc5), pols{4: {0xa4, 0xc5}}, 0, 1},
		{"a", del(4), pols{4: {0xc5}}, 1, 0},
		{"c", del(5), pols{}, 0, 0},
		// A policy with several SAs is merged at once, a lone one that
		// comes to have several too; alone again with one.
		{"a", add(6, vip, 0xa6, 0xa7), pols{6: {0xa6, 0xa7}}, 0, 1},
		{"c", add(7, other, 0xc7), pols{6: {0xa6, 0xa7}, 7: {0xc7}}, 1, 1},
		{"c", upd(7, other, 0xc7, 0xc8), pols{6: {0xa6, 0xa7}, 7: {0xc7, 0xc8}}, 0, 2},
		{"a", del(6), pols{7: {0xc7, 0xc8}}, 0, 1},
		{"c", upd(7, other, 0xc8), pols{7: {0xc8}}, 1, 0},
		{"c", del(7), pols{}, 0, 0},
	}
	ctx := tctx(t)
	_, err := do(ctx, m.gw, func(st *state) (struct{}, error) {
		sas := map[string]*ikeSA{}
		for i, name := range []string{"a", "b", "c", "d"} {
			s := &ikeSA{conn: "ues", spii: uint64(i + 1), hidx: -1}
			st.linkPath(s, st.pathFor("ues", netip.MustParseAddr(gwAddr), netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)})))
			sas[name] = s
		}
		for i, x := range steps {
			s := sas[x.sa]
			op := x.op
			st.dataplaneOp(context.Background(), s, &op)
			got := map[uint64][]uint32{}
			for _, p := range m.gwDP.outPolicies() {
				got[p.ID] = p.SPIs
			}
			if !maps.EqualFunc(got, x.pols, func(a, b []uint32) bool { return slices.Equal(a, b) }) {
				t.Errorf("step %d (%s %v): data plane has %x, want %x", i, x.sa, op.Kind, got, x.pols)
			}
			alone, merged := 0, 0
			steered := map[*ikeSA]bool{}
			for _, o := range st.mp.pols {
				_, entry := st.mp.steer.pols.get(o.id)
				if o.merged == nil {
					alone++
					if entry {
						t.Errorf("step %d: lone policy %d has a steering entry", i, o.id)
					}
					continue
				}
				merged++
				if !entry {
					t.Errorf("step %d: merged policy %d has no steering entry", i, o.id)
				}
				for _, mb := range o.merged.members {
					steered[mb.sa] = true
				}
			}
			// The members of merged policies, and only they, have their
			// inbound SAs on their paths in the table.
			for _, s := range sas {
				want := uint32(0)
				if steered[s] {
					want = s.path.tag
				}
				if s.multi.steered != steered[s] {
					t.Errorf("step %d: IKE SA %s steered %v, want %v", i, s.name(), s.multi.steered, steered[s])
				}
				for _, spi := range s.multi.in {
					if tag, _ := st.mp.steer.inPath.get(spi); tag != want {
						t.Errorf("step %d: inbound SPI %x of %s on path tag %d, want %d", i, spi, s.name(), tag, want)
					}
				}
			}
			if alone != x.alone || merged != x.merged {
				t.Errorf("step %d: %d alone, %d merged, want %d and %d", i, alone, merged, x.alone, x.merged)
			}
			if n := len(st.mp.alias); x.alone+x.merged == 0 && n != 0 {
				t.Errorf("step %d: %d aliases left", i, n)
			}
			if n := len(st.mp.connPols["ues"]); n != x.merged {
				t.Errorf("step %d: %d merged policies listed by connection, want %d", i, n, x.merged)
			}
		}
		for _, s := range sas {
			if n := s.multi.numPols(); n != 0 || s.multi.pol != nil || s.multi.more != nil {
				t.Errorf("IKE SA %s still lists %d outbound policies", s.name(), n)
			}
			st.unlinkPath(s)
		}
		return struct{}{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPolicyKey: the key tells apart what the data plane would (addresses,
// prefix lengths, families, protocols and their ports, the side) and
// ignores what it would not (order, ports without a protocol).
func TestPolicyKey(t *testing.T) {
	sel := func(p string, proto uint8, from, to uint16) dataplane.Selector {
		return dataplane.Selector{Prefix: netip.MustParsePrefix(p), Protocol: proto, PortFrom: from, PortTo: to}
	}
	a, b := sel("10.0.0.0/24", 0, 0, 65535), sel("10.0.1.0/24", 6, 80, 80)
	key := func(conn string, l, r []dataplane.Selector) string { return string(policyKey(nil, conn, l, r)) }
	base := key("c", []dataplane.Selector{a, b}, []dataplane.Selector{a})
	for _, tc := range []struct {
		name string
		key  string
		same bool
	}{
		{"order", key("c", []dataplane.Selector{b, a}, []dataplane.Selector{a}), true},
		{"ports without protocol", key("c", []dataplane.Selector{sel("10.0.0.0/24", 0, 5, 6), b}, []dataplane.Selector{a}), true},
		{"connection", key("d", []dataplane.Selector{a, b}, []dataplane.Selector{a}), false},
		{"side", key("c", []dataplane.Selector{a}, []dataplane.Selector{a, b}), false},
		{"prefix length", key("c", []dataplane.Selector{sel("10.0.0.0/25", 0, 0, 65535), b}, []dataplane.Selector{a}), false},
		{"family", key("c", []dataplane.Selector{sel("::ffff:10.0.0.0/120", 0, 0, 65535), b}, []dataplane.Selector{a}), false},
		{"protocol", key("c", []dataplane.Selector{a, sel("10.0.1.0/24", 17, 80, 80)}, []dataplane.Selector{a}), false},
		{"port", key("c", []dataplane.Selector{a, sel("10.0.1.0/24", 6, 80, 81)}, []dataplane.Selector{a}), false},
		{"one selector less", key("c", []dataplane.Selector{a}, []dataplane.Selector{a}), false},
	} {
		if (tc.key == base) != tc.same {
			t.Errorf("%s: same key %v, want %v", tc.name, tc.key == base, tc.same)
		}
	}
}

// TestSAMultiPols: an IKE SA's outbound policies, the first without an
// allocation, keep their order as they come and go.
func TestSAMultiPols(t *testing.T) {
	a, b, c := &outPol{id: 1}, &outPol{id: 2}, &outPol{id: 3}
	for _, tc := range []struct {
		name string
		add  []*outPol
		drop []*outPol
		want []*outPol
	}{
		{"none", nil, nil, nil},
		{"one", []*outPol{a}, nil, []*outPol{a}},
		{"three", []*outPol{a, b, c}, nil, []*outPol{a, b, c}},
		{"first dropped", []*outPol{a, b, c}, []*outPol{a}, []*outPol{b, c}},
		{"middle dropped", []*outPol{a, b, c}, []*outPol{b}, []*outPol{a, c}},
		{"all dropped", []*outPol{a, b}, []*outPol{b, a}, nil},
		{"absent dropped", []*outPol{a}, []*outPol{c}, []*outPol{a}},
	} {
		var m saMulti
		for _, o := range tc.add {
			m.addPol(o)
		}
		for _, o := range tc.drop {
			m.dropPol(o)
		}
		var got []*outPol
		for i := range m.numPols() {
			got = append(got, m.polAt(i))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		for _, o := range []*outPol{a, b, c} {
			if m.hasPol(o) != slices.Contains(tc.want, o) {
				t.Errorf("%s: hasPol(%d) = %v", tc.name, o.id, m.hasPol(o))
			}
		}
	}
}
