package sa

import (
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/ike"
)

// seqSPIs hands out SPIs in sequence and keeps nothing per SPI, so that
// the memory measured below is the machines' alone.
type seqSPIs struct{ next uint32 }

func (a *seqSPIs) AllocSPI() (uint32, error) { a.next++; return a.next, nil }
func (a *seqSPIs) ReleaseSPI(uint32)         {}

// seqPool leases 10.x.y.z in sequence and keeps nothing per lease.
type seqPool struct{ next uint32 }

func (p *seqPool) Lease(string, bool) (netip.Addr, error) {
	p.next++
	v := 10<<24 | p.next
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), nil
}
func (p *seqPool) Release(string, netip.Addr) {}

// perSAHook, when set, runs while every machine is alive (profiles).
var perSAHook func()

// perSA is the live heap per established IKE SA with one Child SA.
type perSA struct{ initiator, responder float64 }

// heapNow is the live heap after a full collection.
func heapNow() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// measurePerSA establishes n IKE SA pairs (PSK, x25519, a virtual IP,
// one Child SA) in memory and returns the live heap each side keeps per
// SA. With info, Info is read on every machine afterwards, as the glue
// does on its events. Both sides share one Config each, so what is
// measured is what each machine adds.
func measurePerSA(t testing.TB, n int, info bool) perSA {
	ini, resp := pskPair(t)
	ini.IKEProposals = mustProps(t, "aes256gcm16-prfsha256-x25519", ike.ProtoIKE)
	resp.IKEProposals = ini.IKEProposals
	ini.SPIs, resp.SPIs = &seqSPIs{}, &seqSPIs{next: 1 << 31}
	resp.Pool = &seqPool{}
	is := make([]*IKE, n)
	rs := make([]*IKE, n)
	rng := detRand(9)
	ini.Rand, resp.Rand = rng, rng // the machines keep no source of their own
	base := heapNow()
	for k := range n {
		now := epoch
		i, out := NewInitiator(ini, now, rng)
		d := out.Datagrams[0]
		r, rout := NewResponder(resp, now, rng, Datagram{Local: d.Remote, Remote: d.Local, Data: d.Data}, nil)
		d = rout.Datagrams[0]
		out = i.Handle(now, Datagram{Local: d.Remote, Remote: d.Local, Data: d.Data})
		d = out.Datagrams[0]
		rout = r.Handle(now, Datagram{Local: d.Remote, Remote: d.Local, Data: d.Data})
		d = rout.Datagrams[0]
		i.Handle(now, Datagram{Local: d.Remote, Remote: d.Local, Data: d.Data})
		if i.State() != StateEstablished || r.State() != StateEstablished {
			t.Fatalf("pair %d not established: %v %v", k, i.State(), r.State())
		}
		if info {
			_, _ = i.Info(), r.Info()
		}
		is[k], rs[k] = i, r
	}
	both := heapNow()
	if perSAHook != nil {
		perSAHook()
	}
	clear(is)
	onlyR := heapNow()
	runtime.KeepAlive(rs)
	clear(rs)
	runtime.KeepAlive(is)
	return perSA{
		initiator: float64(int64(both)-int64(onlyR)) / float64(n),
		responder: float64(int64(onlyR)-int64(base)) / float64(n),
	}
}

// BenchmarkPerSAMemory reports the live heap per established IKE SA (one
// Child SA) of each side, without and with a cached Info snapshot.
func BenchmarkPerSAMemory(b *testing.B) {
	for _, tc := range []struct {
		name string
		info bool
	}{{"idle", false}, {"info", true}} {
		b.Run(tc.name, func(b *testing.B) {
			var m perSA
			for b.Loop() {
				m = measurePerSA(b, 2000, tc.info)
			}
			b.ReportMetric(m.initiator, "initiator-B/SA")
			b.ReportMetric(m.responder, "responder-B/SA")
		})
	}
}

// TestPerSAMemoryBound guards the live heap per established IKE SA (one
// Child SA, Info read) of each side: about twice the measured figures.
func TestPerSAMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("establishes 300 IKE SA pairs")
	}
	const limit = 4500
	m := measurePerSA(t, 300, true)
	t.Logf("initiator %.0f B/SA, responder %.0f B/SA", m.initiator, m.responder)
	if m.initiator > limit || m.responder > limit {
		t.Errorf("per-SA heap initiator %.0f B, responder %.0f B; want <= %d", m.initiator, m.responder, limit)
	}
}

// One Config serves many machines: they read it and never fill it in.
func TestConfigShared(t *testing.T) {
	ini, resp := pskPair(t)
	ini.IKEProposals = mustProps(t, "aes256gcm16-prfsha256-x25519", ike.ProtoIKE)
	resp.IKEProposals = ini.IKEProposals
	for k := range 3 {
		p := newPump(t, ini, resp, uint64(k+1))
		p.run(func() bool { return up(p.i)() && up(p.r)() })
		if p.i.ike.State() != StateEstablished || p.r.ike.State() != StateEstablished {
			t.Fatalf("round %d: %v %v", k, p.i.ike.State(), p.r.ike.State())
		}
		if p.i.ike.cfg != ini || p.r.ike.cfg != resp {
			t.Fatalf("round %d: the machines copied their Config", k)
		}
	}
	for _, c := range []*Config{ini, resp} {
		if c.Logger != nil || c.FragmentMTU != 0 || c.HalfOpenTimeout != 0 || c.RekeyedDelete != 0 || c.Children[0].Mode != 0 {
			t.Fatalf("%s: Config filled in: %+v", c.Name, c)
		}
	}
}

// A stamp gives back the instant it was made from, around the creation.
func TestStampRoundTrip(t *testing.T) {
	s := &IKE{created: epoch}
	for _, tc := range []struct {
		name string
		at   time.Time
	}{
		{"none", time.Time{}},
		{"creation", epoch},
		{"1ns after", epoch.Add(1)},
		{"1ns before", epoch.Add(-1)},
		{"a day after", epoch.Add(24 * time.Hour)},
		{"an hour before", epoch.Add(-time.Hour)},
	} {
		v := s.stamp(tc.at)
		if got := s.at(v); !got.Equal(tc.at) || (v == 0) != tc.at.IsZero() {
			t.Errorf("%s: stamp %d gives %v, want %v", tc.name, v, got, tc.at)
		}
	}
}

// A Child SA and its policy group hold one copy of the selectors, also
// after a rekey, and the policies carry them in the data plane's form.
func TestChildSharesSelectors(t *testing.T) {
	p := establish(t, 23, nil)
	for _, n := range []*node{p.i, p.r} {
		c := n.ike.childList()[0]
		lts, rts := c.ts()
		if c.ownTSOf() != nil || len(lts) == 0 || len(rts) == 0 {
			t.Fatalf("%s: the Child SA and its group hold separate selectors", n.name)
		}
		var adds int
		for _, o := range n.ops {
			if o.Kind == OpAddPolicy {
				adds++
				if !slices.Equal(o.Policy.Local, selectors(lts)) || !slices.Equal(o.Policy.Remote, selectors(rts)) {
					t.Errorf("%s: policy %d selectors %v -> %v, want %v -> %v", n.name, o.Policy.ID, o.Policy.Local, o.Policy.Remote, lts, rts)
				}
			}
		}
		if adds != 2 {
			t.Errorf("%s: %d policies added, want 2", n.name, adds)
		}
	}
	p.command(p.i, Command{Kind: CmdRekeyChild, SPI: p.i.ike.childList()[0].inSPI})
	p.settle()
	for _, n := range []*node{p.i, p.r} {
		c := n.ike.childList()[len(n.ike.childList())-1]
		if len(n.ike.Info().Children) != 1 || c.state != childActive || c.ownTSOf() != nil || c.group != n.ike.childList()[0].group {
			t.Fatalf("%s: the rekeyed Child SA holds its own selectors", n.name)
		}
	}
}
