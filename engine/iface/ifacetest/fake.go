// Package ifacetest provides an in-memory iface.Source for tests.
package ifacetest

import (
	"net/netip"
	"slices"
	"sync"

	"github.com/mifsec/mifsec/engine/iface"
)

// Fake is an iface.Source whose links are set by the test.
type Fake struct {
	mu      sync.Mutex
	links   map[string]iface.Link
	next    int
	changes chan iface.Change
	closed  bool
}

// New returns an empty Fake.
func New() *Fake {
	return &Fake{links: map[string]iface.Link{}, next: 10, changes: make(chan iface.Change, 1024)}
}

// Lookup implements iface.Source.
func (f *Fake) Lookup(name string) (iface.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.links[name]
	if !ok {
		return iface.Link{Name: name, State: iface.Absent}, iface.ErrNoLink
	}
	l.Addrs = slices.Clone(l.Addrs)
	return l, nil
}

// Changes implements iface.Source.
func (f *Fake) Changes() <-chan iface.Change { return f.changes }

// Close implements iface.Source.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.changes)
	}
	return nil
}

func (f *Fake) notify(l iface.Link) {
	if !f.closed {
		f.changes <- iface.Change{Name: l.Name, Index: l.Index}
	}
}

// AddLink creates a link that is up with the given addresses.
func (f *Fake) AddLink(name string, addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	l := iface.Link{Name: name, Index: f.next, State: iface.Up, MTU: 1500}
	for _, a := range addrs {
		l.Addrs = append(l.Addrs, netip.MustParsePrefix(a))
	}
	f.links[name] = l
	f.notify(l)
}

// SetState changes a link's state.
func (f *Fake) SetState(name string, s iface.State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.links[name]
	l.State = s
	f.links[name] = l
	f.notify(l)
}

// AddAddr adds an address to a link.
func (f *Fake) AddAddr(name, addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.links[name]
	l.Addrs = append(slices.Clone(l.Addrs), netip.MustParsePrefix(addr))
	f.links[name] = l
	f.notify(l)
}

// RemoveAddr removes an address from a link.
func (f *Fake) RemoveAddr(name, addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := netip.MustParsePrefix(addr)
	l := f.links[name]
	l.Addrs = slices.DeleteFunc(slices.Clone(l.Addrs), func(q netip.Prefix) bool { return q == p })
	f.links[name] = l
	f.notify(l)
}

// RemoveLink deletes a link.
func (f *Fake) RemoveLink(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.links[name]
	delete(f.links, name)
	f.notify(l)
}
