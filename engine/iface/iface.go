// Package iface follows the kernel's network links and their addresses
// through netlink (vishvananda/netlink): it looks links up by name and
// reports link and address changes as they happen.
//
// It owns no mifsec state: the engine decides which links matter. It must
// not import gen/, server/, grpc or protobuf.
package iface

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// State is the operational state of a link.
type State uint8

const (
	Absent State = iota // no link of that name
	Down
	Up
)

func (s State) String() string {
	switch s {
	case Absent:
		return "absent"
	case Down:
		return "down"
	case Up:
		return "up"
	}
	return "unknown"
}

// Stats are the kernel's counters of a link.
type Stats struct {
	RxBytes, TxBytes, RxPackets, TxPackets uint64
}

// Link is what the kernel says about one link.
type Link struct {
	Name  string
	Index int
	State State
	MTU   int
	Addrs []netip.Prefix // sorted
	Stats Stats
}

// Equal reports whether two observations differ in anything but counters.
func (l Link) Equal(o Link) bool {
	return l.Name == o.Name && l.Index == o.Index && l.State == o.State &&
		l.MTU == o.MTU && slices.Equal(l.Addrs, o.Addrs)
}

// ErrNoLink is returned by Lookup when no link has that name.
var ErrNoLink = errors.New("no such link")

// Change tells the engine that something about a link may have changed. It
// carries the link's name and index when the kernel gave them; Resync means
// the notification stream was interrupted and every link must be re-read.
type Change struct {
	Name   string
	Index  int
	Resync bool
}

// Source is what the engine needs from the kernel: lookups and a stream of
// change notifications. Monitor is the netlink implementation; tests use a
// fake.
type Source interface {
	Lookup(name string) (Link, error)
	Changes() <-chan Change
	Close() error
}

// ValidLinkName reports whether s can be a Linux interface name
// (dev_valid_name in net/core/dev.c: 1..15 bytes, no '/', ':' or white space,
// not "." or "..").
func ValidLinkName(s string) error {
	if s == "" {
		return errors.New("link name is empty")
	}
	if len(s) > 15 {
		return fmt.Errorf("link name is %d bytes, at most 15 allowed", len(s))
	}
	if s == "." || s == ".." {
		return errors.New("link name cannot be . or ..")
	}
	for _, r := range s {
		if r == '/' || r == ':' || r <= ' ' || r == 0x7f || r > 0x7e {
			return fmt.Errorf("link name has invalid character %q", r)
		}
	}
	return nil
}

// prefixOf converts a net.IPNet to a netip.Prefix.
func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}
