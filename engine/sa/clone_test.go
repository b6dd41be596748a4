package sa

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine/ike"
)

// RFC 7791: either end clones the IKE SA; both get a new machine with
// fresh SPIs and keys, no Child SAs and the authenticated identities; the
// original keeps its Child SAs. The clone then moves to another path.
func TestClone(t *testing.T) {
	for _, tc := range []struct {
		name       string
		byResponer bool
	}{
		{"initiator clones", false},
		{"responder clones", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mobikeMesh(t, 400, func(ini, resp *Config) { ini.Clone, resp.Clone = true, true })
			a, b := m.a.ms[0], m.b.ms[0]
			var sawReq bool
			m.onDeliver = func(pk mpacket, n *mnode) {
				if n != a && n != b {
					return
				}
				if h, ps := peek(t, n.ike, pk.dg.Data); h.Exchange == ike.CreateChildSA && !h.IsResponse() {
					sa := payloadOf[*ike.SA](ps)
					sawReq = notifyIn(ps, ike.CloneIKESA) != nil && sa != nil && len(sa.Proposals[0].SPI) == 8 &&
						payloadOf[*ike.Nonce](ps) != nil && payloadOf[*ike.KE](ps) != nil
				}
			}
			from, fromHost := a, m.a
			if tc.byResponer {
				from, fromHost = b, m.b
			}
			m.command(fromHost, from, Command{Kind: CmdClone})
			m.settle()
			m.onDeliver = nil
			if !sawReq {
				t.Fatal("no CREATE_CHILD_SA {N(CLONE_IKE_SA), SA, Ni, KEi}")
			}
			if len(m.a.ms) != 2 || len(m.b.ms) != 2 {
				t.Fatalf("%d and %d machines", len(m.a.ms), len(m.b.ms))
			}
			ca, cb := m.a.ms[1], m.b.ms[1]
			for _, x := range []struct {
				orig, clone *mnode
			}{{a, ca}, {b, cb}} {
				oi, ci := x.orig.ike.Info(), x.clone.ike.Info()
				if k := x.clone.ike.cur.keys; k.PI.Len() != 0 || k.PR.Len() != 0 || k.D.Len() == 0 {
					t.Error("the clone keeps SK_pi/SK_pr (or lost SK_d)")
				}
				if ci.State != StateEstablished || len(ci.Children) != 0 || len(oi.Children) != 1 || oi.State != StateEstablished {
					t.Fatalf("original %v with %d children, clone %v with %d", oi.State, len(oi.Children), ci.State, len(ci.Children))
				}
				if ci.SPIi == oi.SPIi || ci.SPIr == oi.SPIr || ci.RemoteID.String() != oi.RemoteID.String() || ci.Local != oi.Local {
					t.Errorf("clone %+v of %+v", ci, oi)
				}
				if ci.MOBIKEInitiator != oi.MOBIKEInitiator || !ci.Capabilities.MOBIKE || len(ci.PeerAddrs) != 1 {
					t.Errorf("MOBIKE state not cloned: %+v", ci)
				}
				e, ok := x.clone.last(EventIKEUp)
				if !ok || e.ClonedFrom == 0 || !x.orig.bound[e.ClonedFrom] {
					t.Errorf("clone up event %+v", e)
				}
			}
			if ca.ike.Info().SPIi != cb.ike.Info().SPIi || ca.ike.Info().SPIr != cb.ike.Info().SPIr {
				t.Fatal("the ends disagree on the clone's SPIs")
			}
			// The MOBIKE initiator moves the clone to the second path; the
			// original stays.
			m.command(m.a, ca, Command{Kind: CmdMigrate, Local: at4500(ip2I), Remote: at4500(ip2R)})
			m.settle()
			if ca.count(EventMigrated) != 1 || cb.count(EventMigrated) != 1 || a.count(EventMigrated)+b.count(EventMigrated) != 0 {
				t.Fatalf("clone events %v / %v", ca.events, cb.events)
			}
			if i := cb.ike.Info(); i.Local != at4500(ip2R) || i.Remote != at4500(ip2I) {
				t.Errorf("responder's clone on %v -> %v", i.Local, i.Remote)
			}
			if i := b.ike.Info(); i.Remote != at4500(ip1I) {
				t.Errorf("original moved to %v", i.Remote)
			}
			// The clone's keys agree: a Child SA on it comes up, on the new path.
			m.command(m.a, ca, Command{Kind: CmdCreateChild, Name: "net"})
			m.settle()
			if ca.count(EventChildUp) != 1 || cb.count(EventChildUp) != 1 {
				t.Fatalf("child on the clone: %v / %v", ca.events, cb.events)
			}
			for _, o := range ca.ops {
				if o.Kind == OpAddSA && (o.SA.Local != at4500(ip2I) || o.SA.Remote != at4500(ip2R)) {
					t.Errorf("clone's Child SA on %v -> %v", o.SA.Local, o.SA.Remote)
				}
			}
			// Both IKE SAs keep answering; deleting the clone leaves the original.
			m.command(m.a, ca, Command{Kind: CmdTerminate})
			m.command(m.a, a, Command{Kind: CmdLiveness})
			m.advance(time.Minute)
			if !ca.done || !cb.done || a.ike.State() != StateEstablished || b.ike.State() != StateEstablished {
				t.Fatalf("after deleting the clone: %v/%v, original %v/%v", ca.done, cb.done, a.ike.State(), b.ike.State())
			}
		})
	}
}

// A peer that did not announce CLONE_IKE_SA_SUPPORTED is never asked: the
// glue gets EventCloneFailed and falls back to a new IKE SA.
func TestCloneRefused(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ini, resp bool
	}{
		{"peer without support", true, false},
		{"not enabled here", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mobikeMesh(t, 401, func(ini, resp *Config) { ini.Clone, resp.Clone = tc.ini, tc.resp })
			a := m.a.ms[0]
			sent := len(m.seen)
			m.command(m.a, a, Command{Kind: CmdClone})
			m.settle()
			e, ok := a.last(EventCloneFailed)
			if !ok || e.Reason != ReasonUnsupported {
				t.Fatalf("event %+v", e)
			}
			if len(m.seen) != sent || len(m.a.ms) != 1 || len(m.b.ms) != 1 {
				t.Fatal("a clone request went out")
			}
		})
	}
}

// A responder that did not announce support refuses a clone request with
// NO_ADDITIONAL_SAS rather than taking it for a rekey.
func TestCloneRequestWithoutSupport(t *testing.T) {
	m := mobikeMesh(t, 402, func(ini, resp *Config) { ini.Clone = true })
	a, b := m.a.ms[0], m.b.ms[0]
	a.ike.caps.set(capClone) // as if the peer had announced it
	m.command(m.a, a, Command{Kind: CmdClone})
	m.settle()
	e, ok := a.last(EventCloneFailed)
	if !ok || e.Notify != ike.NoAdditionalSAs {
		t.Fatalf("event %+v", e)
	}
	if b.count(EventIKERekeyed) != 0 || len(m.b.ms) != 1 || a.ike.State() != StateEstablished || b.ike.State() != StateEstablished {
		t.Fatalf("responder events %v", b.events)
	}
	if b.ike.Info().Remote != netip.AddrPortFrom(ip1I, natTPort) {
		t.Fatal("moved")
	}
}

// CmdSetPath gives the Child SAs created afterwards the glue's path tag
// (a clone starts with its original's).
func TestCloneSetPath(t *testing.T) {
	m := mobikeMesh(t, 403, func(ini, resp *Config) { ini.Clone, resp.Clone, ini.Path = true, true, 3 })
	a := m.a.ms[0]
	m.command(m.a, a, Command{Kind: CmdClone})
	m.settle()
	if len(m.a.ms) != 2 {
		t.Fatalf("%d machines", len(m.a.ms))
	}
	ca := m.a.ms[1]
	for _, tc := range []struct {
		set, want uint32
	}{{0, 3}, {7, 7}} {
		if tc.set != 0 {
			m.command(m.a, ca, Command{Kind: CmdSetPath, Path: tc.set})
		}
		skip := len(ca.ops)
		m.command(m.a, ca, Command{Kind: CmdCreateChild, Name: "net"})
		m.settle()
		n := 0
		for _, o := range ca.ops[skip:] {
			if o.Kind == OpAddSA {
				n++
				if o.SA.Path != tc.want {
					t.Errorf("Child SA of the clone on path %d, want %d", o.SA.Path, tc.want)
				}
			}
		}
		if n != 2 {
			t.Fatalf("%d SAs added", n)
		}
	}
}

// countPool gives an identity one address and counts its holders, as the
// engine's pools do (AddressPool's contract).
type countPool struct {
	addrs   map[string]netip.Addr
	holders map[netip.Addr]int
}

func (p *countPool) Lease(peer string, v6 bool) (netip.Addr, error) {
	if a, ok := p.addrs[peer]; ok {
		p.holders[a]++
		return a, nil
	}
	a := netip.AddrFrom4([4]byte{10, 20, 0, byte(len(p.addrs) + 1)})
	p.addrs[peer], p.holders[a] = a, 1
	return a, nil
}

func (p *countPool) Release(peer string, a netip.Addr) {
	if p.holders[a] > 0 {
		p.holders[a]--
	}
}

// TestCloneHoldsLeases: a gateway's clone holds the peer's inner address
// as the original does, so it stays leased while either IKE SA lives
// (whichever goes first) and is returned with the last.
func TestCloneHoldsLeases(t *testing.T) {
	for _, origFirst := range []bool{true, false} {
		pool := &countPool{addrs: map[string]netip.Addr{}, holders: map[netip.Addr]int{}}
		m := mobikeMesh(t, 402, func(ini, resp *Config) {
			ini.Clone, resp.Clone = true, true
			ini.VirtualIP = VirtualIP{IPv4: true}
			resp.Pool = pool
		})
		a, b := m.a.ms[0], m.b.ms[0]
		vips := b.ike.Info().VirtualIPs
		if len(vips) != 1 || pool.holders[vips[0]] != 1 {
			t.Fatalf("virtual IPs %v, holders %v", vips, pool.holders)
		}
		m.command(m.a, a, Command{Kind: CmdClone})
		m.settle()
		if len(m.b.ms) != 2 || pool.holders[vips[0]] != 2 {
			t.Fatalf("after the clone: %d machines, holders %v", len(m.b.ms), pool.holders)
		}
		first, second := m.a.ms[0], m.a.ms[1]
		if !origFirst {
			first, second = second, first
		}
		m.command(m.a, first, Command{Kind: CmdTerminate})
		m.settle()
		if pool.holders[vips[0]] != 1 {
			t.Fatalf("original first %v: one IKE SA left, holders %v", origFirst, pool.holders)
		}
		m.command(m.a, second, Command{Kind: CmdTerminate})
		m.settle()
		if pool.holders[vips[0]] != 0 {
			t.Fatalf("original first %v: none left, holders %v", origFirst, pool.holders)
		}
	}
}
