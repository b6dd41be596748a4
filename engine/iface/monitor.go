package iface

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Monitor is the netlink Source. It subscribes to RTNLGRP_LINK and
// RTNLGRP_IPV4/IPV6_IFADDR and turns every message into a Change; when a
// subscription fails (e.g. ENOBUFS) it subscribes again and asks for a
// resync.
type Monitor struct {
	log     hclog.Logger
	changes chan Change
	done    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

// NewMonitor subscribes to link and address notifications in the current
// network namespace.
func NewMonitor(log hclog.Logger) (*Monitor, error) {
	m := &Monitor{
		log:     log.Named("iface"),
		changes: make(chan Change, 256),
		done:    make(chan struct{}),
	}
	linkCh, addrCh, errCh, err := m.subscribe()
	if err != nil {
		return nil, err
	}
	m.wg.Add(1)
	go m.run(linkCh, addrCh, errCh)
	return m, nil
}

func (m *Monitor) subscribe() (chan netlink.LinkUpdate, chan netlink.AddrUpdate, chan error, error) {
	linkCh := make(chan netlink.LinkUpdate, 64)
	addrCh := make(chan netlink.AddrUpdate, 64)
	errCh := make(chan error, 2)
	onErr := func(err error) {
		select {
		case errCh <- err:
		default:
		}
	}
	// ip monitor link
	if err := netlink.LinkSubscribeWithOptions(linkCh, m.done, netlink.LinkSubscribeOptions{ErrorCallback: onErr}); err != nil {
		return nil, nil, nil, fmt.Errorf("subscribe to link changes: %w", err)
	}
	// ip monitor address
	if err := netlink.AddrSubscribeWithOptions(addrCh, m.done, netlink.AddrSubscribeOptions{ErrorCallback: onErr}); err != nil {
		return nil, nil, nil, fmt.Errorf("subscribe to address changes: %w", err)
	}
	return linkCh, addrCh, errCh, nil
}

func (m *Monitor) run(linkCh chan netlink.LinkUpdate, addrCh chan netlink.AddrUpdate, errCh chan error) {
	defer m.wg.Done()
	defer close(m.changes)
	for {
		select {
		case <-m.done:
			return
		case u, ok := <-linkCh:
			if !ok {
				linkCh = nil
				continue
			}
			m.send(Change{Name: u.Attrs().Name, Index: int(u.Index)})
		case u, ok := <-addrCh:
			if !ok {
				addrCh = nil
				continue
			}
			m.send(Change{Index: u.LinkIndex})
		case err := <-errCh:
			m.log.Warn("netlink subscription failed, resubscribing", "error", err)
			// The library closes the failed subscription's channel; take new ones.
			var serr error
			linkCh, addrCh, errCh, serr = m.subscribe()
			if serr != nil {
				m.log.Error("netlink resubscribe failed", "error", serr)
				return
			}
			m.send(Change{Resync: true})
		}
	}
}

func (m *Monitor) send(c Change) {
	select {
	case m.changes <- c:
	case <-m.done:
	}
}

// Changes implements Source.
func (m *Monitor) Changes() <-chan Change { return m.changes }

// Close ends the subscriptions.
func (m *Monitor) Close() error {
	m.once.Do(func() { close(m.done) })
	m.wg.Wait()
	return nil
}

// Lookup implements Source: `ip -s link show NAME` and `ip addr show dev NAME`.
func (m *Monitor) Lookup(name string) (Link, error) { return Lookup(name) }

// Lookup reads one link from the kernel.
func Lookup(name string) (Link, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return Link{Name: name, State: Absent}, ErrNoLink
		}
		return Link{Name: name, State: Absent}, fmt.Errorf("look up link %q: %w", name, err)
	}
	a := l.Attrs()
	out := Link{Name: a.Name, Index: a.Index, MTU: a.MTU, State: Down}
	// A link is usable when it is administratively up and the operational
	// state is up or unknown (RFC 2863 ifOperStatus; virtual links report unknown).
	if a.Flags&net.FlagUp != 0 && (a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown) {
		out.State = Up
	}
	if s := a.Statistics; s != nil {
		out.Stats = Stats{RxBytes: s.RxBytes, TxBytes: s.TxBytes, RxPackets: s.RxPackets, TxPackets: s.TxPackets}
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return out, fmt.Errorf("list addresses of %q: %w", name, err)
	}
	for _, ad := range addrs {
		if p, ok := prefixOf(ad.IPNet); ok {
			out.Addrs = append(out.Addrs, p)
		}
	}
	slices.SortFunc(out.Addrs, comparePrefix)
	out.Addrs = slices.Compact(out.Addrs)
	return out, nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
