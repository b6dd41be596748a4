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
// the table it changes, so the cost is linear in the SAs.
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
			ps = withoutPolicy(ps, policyIndex(ps, s.del))
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
