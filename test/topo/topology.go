package topo

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// Addresses of the issue topology (documentation prefixes, RFC 5737):
//
//	ue                              gw                              srv
//	ran0  198.51.100.2/24 ==RAN==  ran0  198.51.100.1/24
//	wlan0 203.0.113.2/24  ==WLAN== wlan0 203.0.113.1/24
//	                               lan0  192.0.2.1/24    ==LAN==  lan0 192.0.2.10/24
//
// The ue has no default route: each access link gives only an on-link
// route, so a MOBIKE move changes both local and remote IKE addresses.
// srv routes everything (including the virtual IP pool) via the gw, which
// forwards (ip_forward=1).
var (
	UERAN  = netip.MustParseAddr("198.51.100.2")
	GWRAN  = netip.MustParseAddr("198.51.100.1")
	UEWLAN = netip.MustParseAddr("203.0.113.2")
	GWWLAN = netip.MustParseAddr("203.0.113.1")
	GWLAN  = netip.MustParseAddr("192.0.2.1")
	SRV    = netip.MustParseAddr("192.0.2.10")

	LANNet  = netip.MustParsePrefix("192.0.2.0/24")
	RANNet  = netip.MustParsePrefix("198.51.100.0/24")
	WLANNet = netip.MustParsePrefix("203.0.113.0/24")
	// VIPPool is the pool the gateway hands virtual IPs out of; the first
	// client gets VIPPool.Addr().Next().
	VIPPool = netip.MustParsePrefix("10.45.0.0/24")
)

// Link names, the same on both ends of each veth.
const (
	RAN  = "ran0"
	WLAN = "wlan0"
	LAN  = "lan0"
)

// Topology is the three namespaces of the issue topology.
type Topology struct {
	UE, GW, SRV *Netns
}

// Build creates the topology with unique namespace names and removes it
// in t.Cleanup. It skips the test when not root.
func Build(t testing.TB) *Topology {
	t.Helper()
	Require(t)
	tp := &Topology{
		UE:  NewNetns(t, "ue"),
		GW:  NewNetns(t, "gw"),
		SRV: NewNetns(t, "srv"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	veth := func(a *Netns, aAddr netip.Addr, b *Netns, bAddr netip.Addr, dev string, bits int) {
		t.Helper()
		// ip link add DEV netns A type veth peer name DEV netns B
		if _, err := run(ctx, "ip", "link", "add", dev, "netns", a.name, "type", "veth", "peer", "name", dev, "netns", b.name); err != nil {
			t.Fatalf("topo: %v", err)
		}
		for _, e := range []struct {
			n    *Netns
			addr netip.Addr
		}{{a, aAddr}, {b, bAddr}} {
			p := netip.PrefixFrom(e.addr, bits).String()
			if err := e.n.AddrAdd(ctx, dev, p); err != nil {
				t.Fatalf("topo: %v", err)
			}
			if err := e.n.linkSetUp(ctx, dev); err != nil {
				t.Fatalf("topo: %v", err)
			}
		}
		for _, e := range []*Netns{a, b} {
			if err := e.WaitOperUp(ctx, dev); err != nil {
				t.Fatalf("topo: %v", err)
			}
		}
	}
	veth(tp.UE, UERAN, tp.GW, GWRAN, RAN, 24)
	veth(tp.UE, UEWLAN, tp.GW, GWWLAN, WLAN, 24)
	veth(tp.SRV, SRV, tp.GW, GWLAN, LAN, 24)
	if _, err := tp.GW.Run(ctx, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		t.Fatalf("topo: %v", err)
	}
	if _, err := tp.SRV.Run(ctx, "ip", "route", "add", "default", "via", GWLAN.String()); err != nil {
		t.Fatalf("topo: %v", err)
	}
	return tp
}
