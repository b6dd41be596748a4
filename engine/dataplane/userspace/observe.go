package userspace

import "github.com/mifsec/mifsec/engine/dataplane"

// observeInbound reports an accepted inbound packet to the steering hook
// when it is a dataplane.FlowObserver (symmetric return on gateways,
// DESIGN.md §4). pkt is the inner IP packet; sa the SA that opened it. It
// allocates nothing: the Flow lives on the stack.
func (d *DataPlane) observeInbound(sa *saEntry, pkt []byte) {
	b := d.steer.Load()
	if b == nil {
		return
	}
	o, ok := b.s.(dataplane.FlowObserver)
	if !ok {
		return
	}
	var f dataplane.Flow
	if _, ok := parseFlow(pkt, &f); ok {
		o.Observe(f, sa.cfg.SPI)
	}
}
