package iface

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// testNS is an unnamed network namespace of the test's own, gone when its
// last handle closes, with a netlink handle to inspect it.
type testNS struct {
	ns netns.NsHandle
	h  *netlink.Handle
}

func newTestNS(t testing.TB) *testNS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	ns, err := netns.New() // unshare(CLONE_NEWNET) on this thread
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Skipf("cannot create a network namespace: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		// The thread stays locked: the runtime retires it with the goroutine.
		t.Fatal(err)
	}
	orig.Close()
	runtime.UnlockOSThread()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(); ns.Close() })
	return &testNS{ns: ns, h: h}
}

// routes returns a Routes working in the namespace.
func (n *testNS) routes(t testing.TB) *Routes {
	r := newRoutes(func() (*netlink.Handle, error) { return netlink.NewHandleAt(n.ns, unix.NETLINK_ROUTE) })
	t.Cleanup(func() { r.Close() })
	return r
}

// veth makes an up veth pair name/name+"p" (the kernel has no dummy
// links everywhere) and returns name's index.
func (n *testNS) veth(t testing.TB, name string) int {
	t.Helper()
	if err := n.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}); err != nil {
		t.Fatalf("ip link add %s type veth: %v", name, err)
	}
	for _, l := range []string{name, name + "p"} {
		if err := n.h.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: l}}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := n.h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Index
}

func (n *testNS) delLink(t testing.TB, name string) {
	t.Helper()
	if err := n.h.LinkDel(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
		t.Fatal(err)
	}
}

// route returns the main-table route to exactly dst, if any.
func (n *testNS) route(t testing.TB, dst netip.Prefix) (netlink.Route, bool) {
	t.Helper()
	rs, err := n.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Dst: ipNet(dst)}, netlink.RT_FILTER_DST)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Dst != nil && r.Dst.String() == dst.String() {
			return r, true
		}
	}
	return netlink.Route{}, false
}

func (n *testNS) hasAddr(t testing.TB, index int, p netip.Prefix) bool {
	t.Helper()
	as, err := n.h.AddrList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index}}, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if q, ok := prefixOf(a.IPNet); ok && q == p {
			return true
		}
	}
	return false
}

func TestRoutesChanges(t *testing.T) {
	n := newTestNS(t)
	idx := n.veth(t, "mft0")
	r := n.routes(t)
	addr := netip.MustParsePrefix("10.99.0.1/32")
	addr6 := netip.MustParsePrefix("2001:db8:99::1/128")
	dst := netip.MustParsePrefix("10.98.0.0/16")
	dst6 := netip.MustParsePrefix("2001:db8:98::/48")

	steps := []struct {
		name  string
		do    func() error
		check func(t *testing.T)
	}{
		{"add address", func() error { return r.AddAddr("mft0", addr) },
			func(t *testing.T) {
				if !n.hasAddr(t, idx, addr) {
					t.Errorf("%s not on mft0", addr)
				}
			}},
		{"add address again (replace)", func() error { return r.AddAddr("mft0", addr) }, nil},
		{"add IPv6 address", func() error { return r.AddAddr("mft0", addr6) },
			func(t *testing.T) {
				if !n.hasAddr(t, idx, addr6) {
					t.Errorf("%s not on mft0", addr6)
				}
			}},
		{"add route with source", func() error { return r.AddRoute("mft0", dst, addr.Addr()) },
			func(t *testing.T) {
				rt, ok := n.route(t, dst)
				if !ok {
					t.Fatalf("no route to %s", dst)
				}
				if rt.LinkIndex != idx || rt.Scope != netlink.SCOPE_LINK || !rt.Src.Equal(addr.Addr().AsSlice()) {
					t.Errorf("route %v: want dev index %d scope link src %s", rt, idx, addr.Addr())
				}
			}},
		{"replace route without source", func() error { return r.AddRoute("mft0", dst, netip.Addr{}) },
			func(t *testing.T) {
				if rt, ok := n.route(t, dst); !ok || rt.Src != nil {
					t.Errorf("route %v (found %v): want no source", rt, ok)
				}
			}},
		{"add IPv6 route", func() error { return r.AddRoute("mft0", dst6, netip.Addr{}) },
			func(t *testing.T) {
				if rt, ok := n.route(t, dst6); !ok || rt.LinkIndex != idx {
					t.Errorf("route %v (found %v): want dev index %d", rt, ok, idx)
				}
			}},
		{"delete route", func() error { return r.DelRoute("mft0", dst) },
			func(t *testing.T) {
				if _, ok := n.route(t, dst); ok {
					t.Errorf("route to %s still there", dst)
				}
			}},
		{"delete missing route", func() error { return r.DelRoute("mft0", dst) }, nil},
		{"delete IPv6 route", func() error { return r.DelRoute("mft0", dst6) }, nil},
		{"delete address", func() error { return r.DelAddr("mft0", addr) },
			func(t *testing.T) {
				if n.hasAddr(t, idx, addr) {
					t.Errorf("%s still on mft0", addr)
				}
			}},
		{"delete missing address", func() error { return r.DelAddr("mft0", addr) }, nil},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if err := s.do(); err != nil {
				t.Fatal(err)
			}
			if s.check != nil {
				s.check(t)
			}
		})
	}
}

func TestRoutesErrors(t *testing.T) {
	n := newTestNS(t)
	n.veth(t, "mft0")
	r := n.routes(t)
	p := netip.MustParsePrefix("10.97.0.0/24")
	var nf netlink.LinkNotFoundError
	tests := []struct {
		name string
		do   func() error
		want func(error) bool
	}{
		{"route into a missing link", func() error { return r.AddRoute("nosuch0", p, netip.Addr{}) },
			func(err error) bool { return errors.As(err, &nf) }},
		{"address on a missing link", func() error { return r.AddAddr("nosuch0", p) },
			func(err error) bool { return errors.As(err, &nf) }},
		{"delete from a missing link", func() error { return r.DelRoute("nosuch0", p) },
			func(err error) bool { return errors.As(err, &nf) }},
		{"source not on the host", func() error { return r.AddRoute("mft0", p, netip.MustParseAddr("10.1.2.3")) },
			func(err error) bool { return errors.Is(err, unix.EINVAL) }},
		{"no route to pin", func() error { _, err := r.PinHostRoute(netip.MustParseAddr("203.0.113.9")); return err },
			func(err error) bool { return err != nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if err == nil || !tc.want(err) {
				t.Fatalf("got error %v", err)
			}
		})
	}
}

// TestRoutesStaleIndex: the link is deleted and made again under the same
// name (a new index); the cached index gets ENODEV and the change goes to
// the new link.
func TestRoutesStaleIndex(t *testing.T) {
	n := newTestNS(t)
	old := n.veth(t, "mft0")
	r := n.routes(t)
	a := netip.MustParsePrefix("10.96.0.0/24")
	b := netip.MustParsePrefix("10.96.1.0/24")
	if err := r.AddRoute("mft0", a, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	n.delLink(t, "mft0")
	idx := n.veth(t, "mft0")
	if idx == old {
		t.Fatalf("the kernel gave the new link the old index %d", idx)
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{"route", func() error { return r.AddRoute("mft0", b, netip.Addr{}) }},
		{"address", func() error { return r.AddAddr("mft0", netip.MustParsePrefix("10.96.2.1/32")) }},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			delete(r.index, "mft0")
			r.index["mft0"] = old // stale, as after the first change above
			if err := s.do(); err != nil {
				t.Fatal(err)
			}
			if got := r.index["mft0"]; got != idx {
				t.Errorf("cached index %d, want %d", got, idx)
			}
		})
	}
	if rt, ok := n.route(t, b); !ok || rt.LinkIndex != idx {
		t.Errorf("route %v (found %v): want dev index %d", rt, ok, idx)
	}
	if !n.hasAddr(t, idx, netip.MustParsePrefix("10.96.2.1/32")) {
		t.Error("address not on the new link")
	}
}

func TestRoutesForgetAndClose(t *testing.T) {
	n := newTestNS(t)
	idx := n.veth(t, "mft0")
	n.veth(t, "mft1")
	r := n.routes(t)
	for _, l := range []string{"mft0", "mft1"} {
		if err := r.AddRoute(l, netip.MustParsePrefix("10.95.0.0/24"), netip.Addr{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.index["mft0"]; got != idx {
		t.Fatalf("cached index %d, want %d", got, idx)
	}
	r.Forget("mft0")
	if _, ok := r.index["mft0"]; ok || len(r.index) != 1 {
		t.Errorf("after Forget(mft0): cache %v", r.index)
	}
	r.Forget("")
	if len(r.index) != 0 {
		t.Errorf("after Forget(\"\"): cache %v", r.index)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.AddRoute("mft0", netip.MustParsePrefix("10.95.1.0/24"), netip.Addr{}); !errors.Is(err, ErrRoutesClosed) {
		t.Errorf("after Close: %v, want ErrRoutesClosed", err)
	}
}

// TestPinHostRoute: the peer's /32 follows the kernel's current route
// (on-link here: scope link, no gateway; via a gateway: the gateway).
func TestPinHostRoute(t *testing.T) {
	n := newTestNS(t)
	idx := n.veth(t, "mft0")
	r := n.routes(t)
	if err := r.AddAddr("mft0", netip.MustParsePrefix("192.0.2.1/24")); err != nil {
		t.Fatal(err)
	}
	gw := net.ParseIP("192.0.2.254")
	if err := n.h.RouteAdd(&netlink.Route{Dst: ipNet(netip.MustParsePrefix("198.51.100.0/24")), Gw: gw, LinkIndex: idx}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		peer  string
		gw    net.IP
		scope netlink.Scope
	}{
		{"192.0.2.9", nil, netlink.SCOPE_LINK},
		{"198.51.100.7", gw, netlink.SCOPE_UNIVERSE},
	}
	for _, tc := range tests {
		t.Run(tc.peer, func(t *testing.T) {
			peer := netip.MustParseAddr(tc.peer)
			dst, err := r.PinHostRoute(peer)
			if err != nil {
				t.Fatal(err)
			}
			if dst != netip.PrefixFrom(peer, 32) {
				t.Errorf("pinned %s", dst)
			}
			rt, ok := n.route(t, dst)
			if !ok {
				t.Fatalf("no route to %s", dst)
			}
			if rt.LinkIndex != idx || !rt.Gw.Equal(tc.gw) || rt.Scope != tc.scope {
				t.Errorf("route %v: want dev index %d via %v scope %v", rt, idx, tc.gw, tc.scope)
			}
		})
	}
}

// BenchmarkRoutes: adding and removing one route into a link, through a
// Routes (one socket, cached index) and as before it (a socket per request
// and a link lookup per change).
func BenchmarkRoutes(b *testing.B) {
	n := newTestNS(b)
	n.veth(b, "mft0")
	p := netip.MustParsePrefix("10.94.0.0/24")
	b.Run("routes", func(b *testing.B) {
		r := n.routes(b)
		b.ReportAllocs()
		for b.Loop() {
			if err := r.AddRoute("mft0", p, netip.Addr{}); err != nil {
				b.Fatal(err)
			}
			if err := r.DelRoute("mft0", p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("lookup-per-change", func(b *testing.B) {
		// The package functions open a socket per request in the calling
		// thread's namespace: run them on a thread inside n.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			b.Fatal(err)
		}
		defer orig.Close()
		if err := netns.Set(n.ns); err != nil {
			b.Fatal(err)
		}
		defer func() {
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			}
		}()
		b.ReportAllocs()
		for b.Loop() {
			for _, del := range []bool{false, true} {
				l, err := netlink.LinkByName("mft0")
				if err != nil {
					b.Fatal(err)
				}
				rt := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(p), Scope: netlink.SCOPE_LINK}
				if del {
					err = netlink.RouteDel(rt)
				} else {
					err = netlink.RouteReplace(rt)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
