package userspace

import (
	"cmp"
	"fmt"
	"maps"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mifsec/mifsec/engine/dataplane"
)

// refSelMatch is RFC 4301 §4.4.1 for one selector, written out plainly: an
// unset prefix holds every address, protocol 0 every protocol, ports
// 0-65535 (or 0-0) every port; a packet without ports (non-first fragment,
// no port field) only matches selectors open on ports.
func refSelMatch(s dataplane.Selector, a netip.Addr, port uint16, proto uint8, hasPorts bool) bool {
	if s.Prefix.IsValid() && !s.Prefix.Contains(a) {
		return false
	}
	if s.Protocol != 0 && s.Protocol != proto {
		return false
	}
	if s.PortFrom == 0 && (s.PortTo == 0 || s.PortTo == 0xffff) {
		return true
	}
	return hasPorts && s.PortFrom <= port && port <= s.PortTo
}

// refLookup is the plain rule: sort every outbound policy by priority,
// then ID, and take the first whose selectors hold the flow.
func refLookup(pols map[uint64]dataplane.Policy, f dataplane.Flow, hasPorts bool) (uint64, bool) {
	var out []dataplane.Policy
	for _, p := range pols {
		if p.Direction == dataplane.Out {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b dataplane.Policy) int {
		return cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(a.ID, b.ID))
	})
	holds := func(sels []dataplane.Selector, a netip.Addr, port uint16) bool {
		for _, s := range sels {
			if refSelMatch(s, a, port, f.Protocol, hasPorts) {
				return true
			}
		}
		return false
	}
	for _, p := range out {
		if holds(p.Local, f.Src, f.SrcPort) && holds(p.Remote, f.Dst, f.DstPort) {
			return p.ID, true
		}
	}
	return 0, false
}

// randAddr draws from small pools so that prefixes and flows collide:
// IPv4, IPv6 and IPv4-mapped IPv6.
func randAddr(r *rand.Rand) netip.Addr {
	switch r.IntN(5) {
	case 0, 1, 2:
		return netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(3)), byte(r.IntN(6))})
	case 3:
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 8: byte(r.IntN(2)), 15: byte(r.IntN(4))})
	default:
		return netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 10, 14: byte(r.IntN(3)), 15: byte(r.IntN(6))})
	}
}

func randSel(r *rand.Rand) dataplane.Selector {
	var s dataplane.Selector
	if r.IntN(12) != 0 { // else no prefix: every address
		a := randAddr(r)
		bits := []int{0, 8, 16, 22, 24, 30, 31, 32, 32, 32}[r.IntN(10)]
		if !a.Is4() {
			bits = []int{0, 32, 64, 72, 104, 120, 126, 128, 128}[r.IntN(9)]
		}
		s.Prefix = netip.PrefixFrom(a, bits) // host bits left set at times
		if r.IntN(2) == 0 {
			s.Prefix = s.Prefix.Masked()
		}
	}
	s.Protocol = []uint8{0, 0, 6, 17}[r.IntN(4)]
	switch r.IntN(4) {
	case 0:
		s.PortFrom, s.PortTo = 0, 0xffff
	case 1:
		s.PortFrom = uint16(r.IntN(4))
		s.PortTo = s.PortFrom + uint16(r.IntN(3))
	}
	return s
}

func randPolicy(r *rand.Rand, id uint64) dataplane.Policy {
	p := dataplane.Policy{ID: id, Direction: dataplane.Out, Action: dataplane.Protect, Priority: uint32(r.IntN(3))}
	if r.IntN(6) == 0 {
		p.Direction = dataplane.In
	}
	for range 1 + r.IntN(2) {
		p.Local = append(p.Local, randSel(r))
	}
	for range 1 + r.IntN(3) {
		p.Remote = append(p.Remote, randSel(r))
	}
	return p
}

func randFlow(r *rand.Rand) (dataplane.Flow, bool) {
	return dataplane.Flow{
		Src: randAddr(r), Dst: randAddr(r), Protocol: []uint8{6, 17, 1}[r.IntN(3)],
		SrcPort: uint16(r.IntN(5)), DstPort: uint16(r.IntN(5)),
	}, r.IntN(5) != 0
}

// TestPolicyIndexAgainstReference: the indexed lookup finds the policy the
// plain linear rule finds, on random policy sets built by random adds,
// replacements (also across directions) and removals, for random flows;
// and every snapshot published along the way still answers as it did.
func TestPolicyIndexAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	type snap struct {
		tab  *tables
		pols map[uint64]dataplane.Policy
	}
	checks := 0
	check := func(s snap, round, step int) {
		for range 30 {
			f, hp := randFlow(r)
			want, wok := refLookup(s.pols, f, hp)
			pe := s.tab.lookupPolicy(&f, hp)
			var got uint64
			if pe != nil {
				got = pe.p.ID
			}
			if (pe != nil) != wok || got != want {
				t.Fatalf("round %d step %d: flow %+v ports %v: got policy %d (%v), want %d (%v)", round, step, f, hp, got, pe != nil, want, wok)
			}
			checks++
		}
	}
	for round := range 100 {
		tab := newTables()
		pols := map[uint64]dataplane.Policy{}
		var snaps []snap
		for step := range 60 {
			id := uint64(1 + r.IntN(40))
			old, had := tab.pols.get(id)
			if had && r.IntN(3) == 0 {
				tab = tab.withPolicy(old, nil)
				delete(pols, id)
			} else {
				p := randPolicy(r, id)
				tab = tab.withPolicy(old, &polEntry{p: p})
				pols[id] = p
			}
			s := snap{tab, maps.Clone(pols)}
			snaps = append(snaps, s)
			check(s, round, step)
		}
		for step, s := range snaps {
			check(s, round, step)
		}
		// Removing everything leaves an empty index: no bucket, no list.
		for id := range pols {
			old, _ := tab.pols.get(id)
			tab = tab.withPolicy(old, nil)
		}
		if x := tab.outIdx; len(x.v4)+len(x.v6)+len(x.rest) != 0 || tab.pols.size() != 0 {
			t.Fatalf("round %d: emptied index holds %+v, %d policies", round, x, tab.pols.size())
		}
	}
	t.Logf("%d lookups checked", checks)
}

// TestCowMap: random changes against a plain map, with a good hash and
// with one that collides on purpose (collision nodes, deep pairs); the
// trie stays in canonical form (no subtree holding a lone entry, every
// entry on its hash's path) and published versions never change.
func TestCowMap(t *testing.T) {
	for _, tc := range []struct {
		name string
		hash func(uint32) uint64
	}{
		{"spi", hashSPI},
		{"colliding", func(k uint32) uint64 { return uint64(k%7) << 60 }},
		{"identity", func(k uint32) uint64 { return uint64(k) }},
	} {
		t.Run(tc.name, func(t *testing.T) { testCowMap(t, tc.hash) })
	}
}

func testCowMap(t *testing.T, hash func(uint32) uint64) {
	r := rand.New(rand.NewPCG(3, 5))
	m := newCowMap[uint32, int](hash)
	ref := map[uint32]int{}
	type version struct {
		m   cowMap[uint32, int]
		ref map[uint32]int
	}
	var kept []version
	same := func(v version, when string) {
		t.Helper()
		if v.m.size() != len(v.ref) {
			t.Fatalf("%s: size %d, want %d", when, v.m.size(), len(v.ref))
		}
		n := 0
		for k, x := range v.m.all {
			if want, ok := v.ref[k]; !ok || want != x {
				t.Fatalf("%s: holds %d=%d, want %d (%v)", when, k, x, want, ok)
			}
			n++
		}
		for k, want := range v.ref {
			if got, ok := v.m.get(k); !ok || got != want {
				t.Fatalf("%s: get %d = %d %v, want %d", when, k, got, ok, want)
			}
		}
		if n != len(v.ref) {
			t.Fatalf("%s: all yields %d entries, want %d", when, n, len(v.ref))
		}
		if v.m.root != nil {
			if err := canonical(v.m.root, 0, 0, hash); err != "" {
				t.Fatalf("%s: %s", when, err)
			}
		}
	}
	n := 1500
	if hash(1) == hash(8) { // colliding: linear nodes
		n = 300
	}
	// Fill (with replacements and misses), thin out, then empty.
	for phase, addPct := range []int{80, 15} {
		for i := range 2 * n {
			k := uint32(r.IntN(n))
			if r.IntN(100) < addPct {
				m = m.with(k, i)
				ref[k] = i
			} else {
				m = m.without(k)
				delete(ref, k)
			}
			if i%(n/4) == 0 {
				kept = append(kept, version{m, maps.Clone(ref)})
			}
			if _, ok := m.get(k + uint32(n)); ok {
				t.Fatalf("phase %d: absent key found", phase)
			}
		}
		same(version{m, ref}, "now")
	}
	for k := range ref {
		m = m.without(k)
		delete(ref, k)
	}
	same(version{m, ref}, "emptied")
	if m.root != nil {
		t.Errorf("emptied map keeps a root")
	}
	for i, v := range kept {
		same(v, "kept version "+string(rune('a'+i)))
	}
}

// canonical checks a trie node at depth d reached by hash bits path.
func canonical(n *hamtNode[uint32, int], d int, path uint64, hash func(uint32) uint64) string {
	if d == hamtMaxDepth {
		if n.bitmap != 0 || len(n.slots) < 2 {
			return "collision node with a bitmap or fewer than two entries"
		}
		for _, s := range n.slots {
			if s.sub != nil || hash(s.k) != path {
				return "collision node holds a subtree or a stray key"
			}
		}
		return ""
	}
	if bits.OnesCount16(n.bitmap) != len(n.slots) || len(n.slots) == 0 {
		return "bitmap and slots disagree"
	}
	if d > 0 && len(n.slots) == 1 && n.slots[0].sub == nil {
		return "subtree holding a lone entry"
	}
	i := 0
	for b := range 16 {
		if n.bitmap&(1<<b) == 0 {
			continue
		}
		s := n.slots[i]
		i++
		p := path | uint64(b)<<(d*hamtBits)
		mask := uint64(1)<<((d+1)*hamtBits) - 1
		if (d+1)*hamtBits == 64 {
			mask = ^uint64(0)
		}
		if s.sub != nil {
			if err := canonical(s.sub, d+1, p, hash); err != "" {
				return err
			}
		} else if hash(s.k)&mask != p {
			return "entry off its hash's path"
		}
	}
	return ""
}

// TestPacketPathAllocs: SA and policy lookups allocate nothing, whatever
// the size of the tables.
func TestPacketPathAllocs(t *testing.T) {
	tab := newTables()
	for i := range 3000 {
		e := &saEntry{}
		tab = tab.withSA(dataplane.Out, uint32(i+256), e).withSA(dataplane.In, uint32(i+256), e)
		p := dataplane.Policy{ID: uint64(i + 1), Direction: dataplane.Out, Action: dataplane.Protect,
			Local: sel("0.0.0.0/0"), Remote: sel(netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)}), 32).String()),
			SPIs: []uint32{uint32(i + 256)}}
		tab = tab.withPolicy(nil, &polEntry{p: p})
	}
	tab = tab.withPolicy(nil, &polEntry{p: dataplane.Policy{ID: 1 << 20, Direction: dataplane.Out, Action: dataplane.Discard,
		Local: []dataplane.Selector{{}}, Remote: append(sel("100.64.0.0/10"), sel("2001:db8::/32")...), Priority: 1}})
	f := dataplane.Flow{Src: netip.MustParseAddr("10.1.1.1"), Dst: netip.MustParseAddr("100.64.5.7"), Protocol: 17, SrcPort: 1, DstPort: 2}
	f6 := f
	f6.Dst = netip.MustParseAddr("2001:db8::1")
	allocs := testing.AllocsPerRun(200, func() {
		pe := tab.lookupPolicy(&f, true)
		if pe == nil || pe.p.ID != 5*256+7+1 {
			t.Fatalf("policy %v", pe)
		}
		if tab.pickSA(nil, &f, pe) == nil || tab.sa(dataplane.In, 1000) == nil {
			t.Fatal("sa missing")
		}
		if pe := tab.lookupPolicy(&f6, true); pe == nil || pe.p.ID != 1<<20 {
			t.Fatalf("ipv6 policy %v", pe)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per lookup", allocs)
	}
}

// TestInboundTurns: a batch holding packets of several SAs, interleaved,
// gets one ticket per SA in order of first appearance, numbered per SA
// across batches, and each ticket lists exactly its SA's packets in batch
// order.
func TestInboundTurns(t *testing.T) {
	var p pipeline
	a, b, c := &saEntry{}, &saEntry{}, &saEntry{}
	name := map[*saEntry]string{a: "a", b: "b", c: "c"}
	for round, tc := range []struct {
		sas  []*saEntry
		want string // per ticket: SA, ticket number, packet indices
	}{
		{[]*saEntry{a, b, a, c, b, a}, "a0:0,2,5 b0:1,4 c0:3"},
		{[]*saEntry{c, c, a}, "c1:0,1 a1:2"},
		{[]*saEntry{b}, "b1:0"},
		{[]*saEntry{a, b, c, a, b, c}, "a2:0,3 b2:1,4 c2:2,5"},
	} {
		e := &inElem{}
		for _, sa := range tc.sas {
			e.pkts = append(e.pkts, inPkt{sa: sa, next: 99})
		}
		p.turns(e)
		var got []string
		for _, tk := range e.turn {
			s := fmt.Sprintf("%s%d:", name[tk.sa], tk.t)
			for i := tk.first; i >= 0; i = e.pkts[i].next {
				if e.pkts[i].sa != tk.sa {
					t.Fatalf("round %d: packet %d of another SA in %s's list", round, i, name[tk.sa])
				}
				s += fmt.Sprintf("%d,", i)
			}
			got = append(got, strings.TrimSuffix(s, ","))
		}
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("round %d: turns %q, want %q", round, g, tc.want)
		}
	}
}
