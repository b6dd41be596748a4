package iface

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// AddAddr adds an address to a link: `ip addr replace P dev LINK`.
func AddAddr(link string, p netip.Prefix) error {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return fmt.Errorf("link %q: %w", link, err)
	}
	if err := netlink.AddrReplace(l, &netlink.Addr{IPNet: ipNet(p)}); err != nil {
		return fmt.Errorf("add %s to %s: %w", p, link, err)
	}
	return nil
}

// DelAddr removes an address: `ip addr del P dev LINK`.
func DelAddr(link string, p netip.Prefix) error {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return err
	}
	if err := netlink.AddrDel(l, &netlink.Addr{IPNet: ipNet(p)}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return err
	}
	return nil
}

// AddRoute routes dst into a link: `ip route replace DST dev LINK [src SRC]`.
func AddRoute(link string, dst netip.Prefix, src netip.Addr) error {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return fmt.Errorf("link %q: %w", link, err)
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(dst), Scope: netlink.SCOPE_LINK}
	if src.IsValid() {
		r.Src = src.AsSlice()
	}
	if err := netlink.RouteReplace(r); err != nil {
		return fmt.Errorf("route %s via %s: %w", dst, link, err)
	}
	return nil
}

// DelRoute removes a route added by AddRoute: `ip route del DST dev LINK`.
func DelRoute(link string, dst netip.Prefix) error {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return err
	}
	err = netlink.RouteDel(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(dst), Scope: netlink.SCOPE_LINK})
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	return nil
}

// PinHostRoute keeps the path to a peer outside a tunnel that will cover
// it: `ip route replace PEER/32 via GW dev DEV` as the kernel routes it now.
func PinHostRoute(peer netip.Addr) (netip.Prefix, error) {
	routes, err := netlink.RouteGet(peer.AsSlice())
	if err != nil || len(routes) == 0 {
		return netip.Prefix{}, fmt.Errorf("no route to %s: %v", peer, err)
	}
	r := routes[0]
	dst := netip.PrefixFrom(peer, peer.BitLen())
	nr := &netlink.Route{LinkIndex: r.LinkIndex, Dst: ipNet(dst), Gw: r.Gw, Src: r.Src}
	if r.Gw == nil {
		nr.Scope = netlink.SCOPE_LINK
	}
	if err := netlink.RouteReplace(nr); err != nil {
		return netip.Prefix{}, err
	}
	return dst, nil
}
