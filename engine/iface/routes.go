package iface

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// netlinkTimeout bounds each request on the Routes socket.
const netlinkTimeout = 5 * time.Second

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Routes changes routes and addresses on links (the TUN of a data plane)
// through one rtnetlink socket, opened at the first change in the network
// namespace of the calling thread and kept. Link indexes are cached by
// name: a change costs one request and its acknowledgement, not a socket,
// a link lookup and a second request.
//
// A cached index goes stale when its link is deleted (and perhaps made
// again under the same name): the kernel answers ENODEV and the change is
// retried once with the index looked up again. The kernel allocates link
// indexes cyclically, so a stale index does not name another link. A
// renamed link keeps its index: changes follow it until Forget.
//
// Routes is safe for concurrent use; the zero value is not usable, see
// NewRoutes.
type Routes struct {
	mu     sync.Mutex
	open   func() (*netlink.Handle, error)
	h      *netlink.Handle
	index  map[string]int
	closed bool
}

// ErrRoutesClosed is returned by the changes of a closed Routes.
var ErrRoutesClosed = errors.New("iface: routes closed")

// NewRoutes returns a Routes for the caller's network namespace.
func NewRoutes() *Routes {
	return newRoutes(func() (*netlink.Handle, error) { return netlink.NewHandle(unix.NETLINK_ROUTE) })
}

func newRoutes(open func() (*netlink.Handle, error)) *Routes {
	return &Routes{open: open, index: map[string]int{}}
}

// handle returns the socket, opening it if needed. r.mu held.
func (r *Routes) handle() (*netlink.Handle, error) {
	if r.closed {
		return nil, ErrRoutesClosed
	}
	if r.h != nil {
		return r.h, nil
	}
	h, err := r.open()
	if err != nil {
		return nil, fmt.Errorf("iface: rtnetlink socket: %w", err)
	}
	if err := h.SetSocketTimeout(netlinkTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("iface: rtnetlink socket: %w", err)
	}
	r.h = h
	// A Routes dropped without Close still gives its socket back.
	runtime.AddCleanup(r, func(h *netlink.Handle) { h.Close() }, h)
	return h, nil
}

// linkIndex returns the index of the link named name, from the cache
// unless fresh. r.mu held.
func (r *Routes) linkIndex(h *netlink.Handle, name string, fresh bool) (int, error) {
	if i, ok := r.index[name]; ok && !fresh {
		return i, nil
	}
	delete(r.index, name)
	l, err := h.LinkByName(name) // ip link show NAME (one link, no dump)
	if err != nil {
		return 0, fmt.Errorf("link %q: %w", name, err)
	}
	i := l.Attrs().Index
	r.index[name] = i
	return i, nil
}

// onLink runs op with link's index; when the kernel answers ENODEV (the
// cached index is gone) it looks the link up again and runs op once more.
func (r *Routes) onLink(link string, op func(h *netlink.Handle, index int) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, err := r.handle()
	if err != nil {
		return err
	}
	i, err := r.linkIndex(h, link, false)
	if err != nil {
		return err
	}
	err = op(h, i)
	if !errors.Is(err, unix.ENODEV) {
		return err
	}
	if i, err = r.linkIndex(h, link, true); err != nil {
		return err
	}
	return op(h, i)
}

// Forget drops the cached index of the link named name, or of every link
// when name is empty (for a Resync).
func (r *Routes) Forget(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if name == "" {
		clear(r.index)
		return
	}
	delete(r.index, name)
}

// Close closes the socket; later changes return ErrRoutesClosed.
func (r *Routes) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	clear(r.index)
	if r.h != nil {
		r.h.Close()
		r.h = nil
	}
	return nil
}

// AddAddr adds an address to a link: `ip addr replace P dev LINK`.
func (r *Routes) AddAddr(link string, p netip.Prefix) error {
	err := r.onLink(link, func(h *netlink.Handle, i int) error {
		return h.AddrReplace(nil, &netlink.Addr{IPNet: ipNet(p), LinkIndex: i})
	})
	if err != nil {
		return fmt.Errorf("add %s to %s: %w", p, link, err)
	}
	return nil
}

// DelAddr removes an address: `ip addr del P dev LINK`. An address that
// is not there is no error.
func (r *Routes) DelAddr(link string, p netip.Prefix) error {
	err := r.onLink(link, func(h *netlink.Handle, i int) error {
		err := h.AddrDel(nil, &netlink.Addr{IPNet: ipNet(p), LinkIndex: i})
		if errors.Is(err, unix.EADDRNOTAVAIL) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("remove %s from %s: %w", p, link, err)
	}
	return nil
}

// AddRoute routes dst into a link: `ip route replace DST dev LINK [src SRC]`.
func (r *Routes) AddRoute(link string, dst netip.Prefix, src netip.Addr) error {
	err := r.onLink(link, func(h *netlink.Handle, i int) error {
		rt := &netlink.Route{LinkIndex: i, Dst: ipNet(dst), Scope: netlink.SCOPE_LINK}
		if src.IsValid() {
			rt.Src = src.AsSlice()
		}
		return h.RouteReplace(rt)
	})
	if err != nil {
		return fmt.Errorf("route %s via %s: %w", dst, link, err)
	}
	return nil
}

// DelRoute removes a route added by AddRoute: `ip route del DST dev LINK`.
// A route that is not there is no error.
func (r *Routes) DelRoute(link string, dst netip.Prefix) error {
	err := r.onLink(link, func(h *netlink.Handle, i int) error {
		err := h.RouteDel(&netlink.Route{LinkIndex: i, Dst: ipNet(dst), Scope: netlink.SCOPE_LINK})
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("remove route %s via %s: %w", dst, link, err)
	}
	return nil
}

// PinHostRoute keeps the path to a peer outside a tunnel that will cover
// it: `ip route replace PEER/32 via GW dev DEV` as the kernel routes it now
// (`ip route get PEER`).
func (r *Routes) PinHostRoute(peer netip.Addr) (netip.Prefix, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, err := r.handle()
	if err != nil {
		return netip.Prefix{}, err
	}
	routes, err := h.RouteGet(peer.AsSlice())
	if err != nil || len(routes) == 0 {
		return netip.Prefix{}, fmt.Errorf("no route to %s: %v", peer, err)
	}
	rt := routes[0]
	dst := netip.PrefixFrom(peer, peer.BitLen())
	nr := &netlink.Route{LinkIndex: rt.LinkIndex, Dst: ipNet(dst), Gw: rt.Gw, Src: rt.Src}
	if rt.Gw == nil {
		nr.Scope = netlink.SCOPE_LINK
	}
	if err := h.RouteReplace(nr); err != nil {
		return netip.Prefix{}, fmt.Errorf("pin route to %s: %w", peer, err)
	}
	return dst, nil
}
