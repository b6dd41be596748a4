package sa

import (
	"net/netip"
	"testing"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/ike"
)

func TestEstablishPSKVirtualIP(t *testing.T) {
	ini, resp := pskPair(t)
	p := newPump(t, ini, resp, 1)
	p.run(func() bool { return up(p.i)() && up(p.r)() })
	p.settle()
	for _, n := range []*node{p.i, p.r} {
		if c := n.count(EventIKEUp); c != 1 {
			t.Fatalf("%s: %d IKE up events", n.name, c)
		}
		if c := n.count(EventChildUp); c != 1 {
			t.Fatalf("%s: %d Child up events: %+v", n.name, c, n.events)
		}
	}
	ii, ri := p.i.ike.Info(), p.r.ike.Info()
	if ii.SPIi != ri.SPIi || ii.SPIr != ri.SPIr || ii.SPIi == 0 || ii.SPIr == 0 {
		t.Fatalf("SPIs differ: %x/%x vs %x/%x", ii.SPIi, ii.SPIr, ri.SPIi, ri.SPIr)
	}
	if ii.Algorithms != "aes256gcm16-prfsha256-x25519" || ri.Algorithms != ii.Algorithms {
		t.Errorf("algorithms %q / %q", ii.Algorithms, ri.Algorithms)
	}
	if ii.RemoteID.String() != "@gw.example" || ri.RemoteID.String() != "@client.example" {
		t.Errorf("identities %v / %v", ii.RemoteID, ri.RemoteID)
	}
	vip := netip.MustParseAddr("10.10.0.1")
	if len(ii.VirtualIPs) != 1 || ii.VirtualIPs[0] != vip || len(ri.VirtualIPs) != 1 || ri.VirtualIPs[0] != vip {
		t.Fatalf("virtual IPs %v / %v", ii.VirtualIPs, ri.VirtualIPs)
	}
	if len(ii.DNS) != 1 || ii.DNS[0] != netip.MustParseAddr("10.0.0.53") {
		t.Errorf("DNS %v", ii.DNS)
	}
	// Narrowing: TSi 0.0.0.0/0 became the virtual IP (§2.9, §2.19).
	if len(ii.Children) != 1 || len(ri.Children) != 1 {
		t.Fatalf("children %d / %d", len(ii.Children), len(ri.Children))
	}
	ci, cr := ii.Children[0], ri.Children[0]
	if ci.InSPI != cr.OutSPI || ci.OutSPI != cr.InSPI {
		t.Errorf("Child SPIs do not pair: %x/%x vs %x/%x", ci.InSPI, ci.OutSPI, cr.InSPI, cr.OutSPI)
	}
	if got := tsString(ci.LocalTS); len(got) != 1 || got[0] != "10.10.0.1/32" {
		t.Errorf("initiator local TS %v", got)
	}
	if got := tsString(cr.RemoteTS); len(got) != 1 || got[0] != "10.10.0.1/32" {
		t.Errorf("responder remote TS %v", got)
	}
	if got := tsString(ci.RemoteTS); len(got) != 1 || got[0] != "10.0.0.0/16" {
		t.Errorf("initiator remote TS %v", got)
	}
	if n := checkPaired(t, p.i, p.r); n != 2 {
		t.Errorf("%d paired SAs, want 2", n)
	}
	for _, n := range []*node{p.i, p.r} {
		pols := activePolicies(t, n)
		if len(pols) != 2 {
			t.Fatalf("%s: %d policies", n.name, len(pols))
		}
		for _, pol := range pols {
			if len(pol.SPIs) != 1 || pol.Action != dataplane.Protect {
				t.Errorf("%s: policy %+v", n.name, pol)
			}
		}
		for _, sa := range activeSAs(n) {
			if sa.Suite != dataplane.SuiteAESGCM256 || sa.Mode != dataplane.Tunnel || sa.Encap {
				t.Errorf("%s: SA %+v", n.name, sa)
			}
			if sa.Direction == dataplane.In && sa.ReplayWindow != 64 {
				t.Errorf("replay window %d", sa.ReplayWindow)
			}
		}
	}
	if e, _ := p.r.last(EventIKEUp); !e.InitialContact {
		t.Errorf("INITIAL_CONTACT not reported")
	}
	if !p.i.bound[ii.SPIi] || !p.r.bound[ri.SPIr] {
		t.Errorf("bindings %v / %v", p.i.bound, p.r.bound)
	}
	if ii.NATLocal || ii.NATRemote || ii.Remote.Port() != 500 {
		t.Errorf("NAT %v %v, remote %v", ii.NATLocal, ii.NATRemote, ii.Remote)
	}
	if ii.NextRequestID != 2 || ri.ExpectedID != 2 {
		t.Errorf("message IDs %d / %d", ii.NextRequestID, ri.ExpectedID)
	}
	_ = ike.IKEAuth
}
