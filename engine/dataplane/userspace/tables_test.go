package userspace

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/mifsec/mifsec/engine/dataplane"
)

// BenchmarkInstallAt: installing one Child SA (both SAs and the outbound
// policy) and removing it, with 10 or 10,000 others installed: what a
// gateway's data plane adds before it answers IKE_AUTH. Each change copies
// the path to its key in the trie it changes (cowMap), not the map.
func BenchmarkInstallAt(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			net := newMemNet()
			c0 := Config{Workers: 1, Listen: []netip.AddrPort{ap("192.0.2.1:4500")}}
			c, _ := c0.withDefaults()
			dp, err := newDataPlane(c, nil, newMemTUN(), net.listen, net.espHost(ap("192.0.2.1:4500").Addr()))
			if err != nil {
				b.Fatal(err)
			}
			defer dp.Close()
			ctx := context.Background()
			add := func(i int) {
				sa := dataplane.SA{SPI: uint32(i + 1000), Direction: dataplane.Out, Mode: dataplane.Tunnel, Suite: dataplane.SuiteAESGCM128,
					Keys: testKeys(1), Local: ap("192.0.2.1:4500"), Remote: ap("192.0.2.2:4500"), Encap: true,
					LocalTS: sel("10.0.0.0/8"), RemoteTS: sel(netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)}), 32).String())}
				if err := dp.AddSA(ctx, sa); err != nil {
					b.Fatal(err)
				}
				sa.Direction = dataplane.In
				sa.Keys = testKeys(1)
				if err := dp.AddSA(ctx, sa); err != nil {
					b.Fatal(err)
				}
				if err := dp.AddPolicy(ctx, dataplane.Policy{ID: uint64(i + 1), Direction: dataplane.Out, Action: dataplane.Protect,
					Local: sa.LocalTS, Remote: sa.RemoteTS, SPIs: []uint32{sa.SPI}}); err != nil {
					b.Fatal(err)
				}
			}
			for i := range n {
				add(i)
			}
			b.ResetTimer()
			for b.Loop() {
				add(n)
				dp.DeletePolicy(ctx, uint64(n+1))
				dp.DeleteSA(ctx, uint32(n+1000), dataplane.In)
				dp.DeleteSA(ctx, uint32(n+1000), dataplane.Out)
			}
		})
	}
}

// TestPolicyOrder: policies stay ordered by priority, then ID, as they
// are added, replaced and removed in any order; published lists are never
// changed in place.
func TestPolicyOrder(t *testing.T) {
	mk := func(id uint64, prio uint32) *polEntry {
		return &polEntry{p: dataplane.Policy{ID: id, Priority: prio}}
	}
	steps := []struct {
		add  *polEntry
		del  uint64
		want []uint64
	}{
		{add: mk(5, 10), want: []uint64{5}},
		{add: mk(3, 10), want: []uint64{3, 5}},
		{add: mk(9, 1), want: []uint64{9, 3, 5}},
		{add: mk(4, 20), want: []uint64{9, 3, 5, 4}},
		{add: mk(1, 10), want: []uint64{9, 1, 3, 5, 4}},
		{del: 3, want: []uint64{9, 1, 5, 4}},
		{del: 9, want: []uint64{1, 5, 4}},
		{del: 4, want: []uint64{1, 5}},
		{add: mk(2, 0), want: []uint64{2, 1, 5}},
	}
	var ps []*polEntry
	for i, s := range steps {
		before := slices.Clone(ps)
		prev := ps
		if s.add != nil {
			ps = withPolicy(ps, s.add)
		} else {
			ps = withoutPolicy(ps, slices.IndexFunc(ps, func(pe *polEntry) bool { return pe.p.ID == s.del }))
		}
		if !slices.Equal(prev, before) {
			t.Fatalf("step %d changed the previous list: %v, was %v", i, prev, before)
		}
		var got []uint64
		for _, pe := range ps {
			got = append(got, pe.p.ID)
		}
		if !slices.Equal(got, s.want) {
			t.Errorf("step %d: order %v, want %v", i, got, s.want)
		}
	}
}

// BenchmarkLookupPolicy: the per-packet outbound policy lookup on a
// gateway with 10 or 10,000 end users (one policy each, remote selector the
// user's /32 virtual IP) and a site policy behind them; flows go to users
// spread over the table.
func BenchmarkLookupPolicy(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			net := newMemNet()
			c0 := Config{Workers: 1, Listen: []netip.AddrPort{ap("192.0.2.1:4500")}}
			c, _ := c0.withDefaults()
			dp, err := newDataPlane(c, nil, newMemTUN(), net.listen, net.espHost(ap("192.0.2.1:4500").Addr()))
			if err != nil {
				b.Fatal(err)
			}
			defer dp.Close()
			ctx := context.Background()
			user := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)}) }
			for i := range n {
				if err := dp.AddPolicy(ctx, dataplane.Policy{ID: uint64(i + 1), Direction: dataplane.Out, Action: dataplane.Protect,
					Local: sel("10.0.0.0/8"), Remote: sel(netip.PrefixFrom(user(i), 32).String()), SPIs: []uint32{uint32(i + 1000)}}); err != nil {
					b.Fatal(err)
				}
			}
			if err := dp.AddPolicy(ctx, dataplane.Policy{ID: uint64(n + 1), Direction: dataplane.Out, Action: dataplane.Discard,
				Local: sel("0.0.0.0/0"), Remote: sel("100.64.0.0/10"), Priority: 10}); err != nil {
				b.Fatal(err)
			}
			t := dp.tab.Load()
			flows := make([]dataplane.Flow, 64)
			for i := range flows {
				flows[i] = dataplane.Flow{Src: netip.MustParseAddr("10.1.2.3"), Dst: user(i * 7919 % n), Protocol: 6, SrcPort: 443, DstPort: uint16(30000 + i)}
			}
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if t.lookupPolicy(&flows[i&63], true) == nil {
					b.Fatal("no policy")
				}
				i++
			}
		})
	}
}
