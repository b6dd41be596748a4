package engine

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/mifsec/mifsec/engine/iface"
)

// CreateInterface registers a kernel link as an interface. Unless
// allowMissing is set, the link must exist.
func (e *Engine) CreateInterface(ctx context.Context, id string, spec InterfaceSpec, allowMissing bool) (Interface, error) {
	if err := ValidID(id); err != nil {
		return Interface{}, &Error{Code: InvalidArgument, Reason: ReasonInvalidID, Field: "interface_id", Msg: err.Error()}
	}
	if err := spec.validate("interface."); err != nil {
		return Interface{}, err
	}
	return do(ctx, e, func(st *state) (Interface, error) {
		if _, ok := st.interfaces[id]; ok {
			return Interface{}, errf(AlreadyExists, ReasonInterfaceExists, "interface_id", "interface %q already exists", id)
		}
		if other := st.byLink(spec.Link); other != nil {
			return Interface{}, errf(AlreadyExists, ReasonLinkInUse, "interface.link", "link %q is already registered as interface %q", spec.Link, other.ID)
		}
		now := st.e.cfg.Now()
		ifc := &Interface{ID: id, InterfaceSpec: spec, CreateTime: now, UpdateTime: now}
		if err := st.observe(ifc); err != nil && !allowMissing {
			if errors.Is(err, iface.ErrNoLink) {
				return Interface{}, errf(FailedPrecondition, ReasonLinkNotFound, "interface.link", "no kernel link named %q (set allow_missing to register it anyway)", spec.Link)
			}
			return Interface{}, &Error{Code: Unavailable, Reason: "NETLINK_FAILED", Field: "interface.link", Msg: "could not read the link", Err: err}
		}
		st.interfaces[id] = ifc
		if err := st.persist(); err != nil {
			delete(st.interfaces, id)
			return Interface{}, err
		}
		st.listenNAT(ifc)
		st.e.log.Info("interface created", "interface", id, "link", spec.Link, "access_type", spec.AccessType, "state", ifc.State)
		st.publish(Event{Type: EventInterfaceCreated, Reason: "api", Interface: ifc.clone()})
		st.interfaceChanged(nil, ifc)
		return *ifc.clone(), nil
	})
}

// GetInterface returns one interface with fresh counters.
func (e *Engine) GetInterface(ctx context.Context, id string) (Interface, error) {
	return do(ctx, e, func(st *state) (Interface, error) {
		ifc, err := st.get(id)
		if err != nil {
			return Interface{}, err
		}
		st.refreshCounters(ifc)
		return *ifc.clone(), nil
	})
}

// ListInterfaces returns up to limit interfaces whose id sorts after `after`,
// in id order, and whether more follow.
func (e *Engine) ListInterfaces(ctx context.Context, after string, limit int) ([]Interface, bool, error) {
	type page struct {
		items []Interface
		more  bool
	}
	p, err := do(ctx, e, func(st *state) (page, error) {
		var p page
		for _, ifc := range sortedInterfaces(st.interfaces) {
			if ifc.ID <= after {
				continue
			}
			if len(p.items) == limit {
				p.more = true
				break
			}
			st.refreshCounters(ifc)
			p.items = append(p.items, *ifc.clone())
		}
		return p, nil
	})
	return p.items, p.more, err
}

// UpdateInterface changes the named fields (see InterfaceFields) of an interface.
func (e *Engine) UpdateInterface(ctx context.Context, id string, spec InterfaceSpec, fields []string) (Interface, error) {
	if len(fields) == 0 {
		fields = InterfaceFields
	}
	for _, f := range fields {
		if !slices.Contains(InterfaceFields, f) {
			return Interface{}, errf(InvalidArgument, ReasonInvalidFieldMask, "update_mask", "field %q cannot be updated (allowed: %s)", f, strings.Join(InterfaceFields, ", "))
		}
	}
	return do(ctx, e, func(st *state) (Interface, error) {
		ifc, err := st.get(id)
		if err != nil {
			return Interface{}, err
		}
		next := ifc.InterfaceSpec
		for _, f := range fields {
			switch f {
			case FieldLink:
				next.Link = spec.Link
			case FieldAccessType:
				next.AccessType = spec.AccessType
			case FieldPriority:
				next.Priority = spec.Priority
			case FieldMetered:
				next.Metered = spec.Metered
			}
		}
		if err := next.validate("interface."); err != nil {
			return Interface{}, err
		}
		if next.Link != ifc.Link {
			if other := st.byLink(next.Link); other != nil {
				return Interface{}, errf(AlreadyExists, ReasonLinkInUse, "interface.link", "link %q is already registered as interface %q", next.Link, other.ID)
			}
		}
		if next == ifc.InterfaceSpec {
			return *ifc.clone(), nil
		}
		old := *ifc.clone()
		ifc.InterfaceSpec = next
		if next.Link != old.Link {
			st.observe(ifc) // the new link may be absent: that is its state
		}
		if err := st.persist(); err != nil {
			*ifc = old
			return Interface{}, err
		}
		ifc.UpdateTime = st.e.cfg.Now()
		st.e.log.Info("interface updated", "interface", id, "fields", strings.Join(fields, ","))
		st.publish(Event{Type: EventInterfaceUpdated, Reason: "api", Interface: ifc.clone()})
		return *ifc.clone(), nil
	})
}

// DeleteInterface withdraws an interface.
func (e *Engine) DeleteInterface(ctx context.Context, id string) error {
	_, err := do(ctx, e, func(st *state) (struct{}, error) {
		ifc, err := st.get(id)
		if err != nil {
			return struct{}{}, err
		}
		st.drainInterface(ifc) // flows leave it first (mobility.go)
		delete(st.interfaces, id)
		if err := st.persist(); err != nil {
			st.interfaces[id] = ifc
			return struct{}{}, err
		}
		st.e.log.Info("interface deleted", "interface", id)
		st.publish(Event{Type: EventInterfaceDeleted, Reason: "api", Interface: ifc.clone()})
		st.interfaceChanged(ifc, nil)
		return struct{}{}, nil
	})
	return err
}

func (st *state) get(id string) (*Interface, error) {
	ifc, ok := st.interfaces[id]
	if !ok {
		return nil, errf(NotFound, ReasonInterfaceNotFound, "name", "interface %q not found", id)
	}
	return ifc, nil
}

func (st *state) byLink(link string) *Interface {
	for _, ifc := range st.interfaces {
		if ifc.Link == link {
			return ifc
		}
	}
	return nil
}

// observe reads the kernel's view of ifc's link into ifc, without events.
func (st *state) observe(ifc *Interface) error {
	l, err := st.e.cfg.Links.Lookup(ifc.Link)
	if err != nil && !errors.Is(err, iface.ErrNoLink) {
		st.e.log.Warn("link lookup failed", "interface", ifc.ID, "link", ifc.Link, "error", err)
	}
	ifc.State, ifc.Index, ifc.MTU, ifc.Addrs = l.State, l.Index, l.MTU, l.Addrs
	ifc.Counters.Stats = l.Stats
	return err
}

func (st *state) refreshCounters(ifc *Interface) {
	if ifc.State == iface.Absent {
		return
	}
	if l, err := st.e.cfg.Links.Lookup(ifc.Link); err == nil && l.Index == ifc.Index {
		ifc.Counters.Stats = l.Stats
	}
}

// linkChanged re-reads the links a kernel notification may concern and turns
// the differences into events.
func (st *state) linkChanged(c iface.Change) {
	for _, ifc := range sortedInterfaces(st.interfaces) {
		if !c.Resync && ifc.Link != c.Name && (c.Index == 0 || ifc.Index != c.Index) {
			continue
		}
		st.reobserve(ifc)
	}
}

func (st *state) reobserve(ifc *Interface) {
	before := *ifc.clone()
	st.observe(ifc)
	if before.State == ifc.State && before.Index == ifc.Index && slices.Equal(before.Addrs, ifc.Addrs) && before.MTU == ifc.MTU {
		return
	}
	ifc.UpdateTime = st.e.cfg.Now()
	if before.State != ifc.State {
		ifc.Counters.LinkTransitions++
		t := map[iface.State]EventType{iface.Up: EventInterfaceLinkUp, iface.Down: EventInterfaceLinkDown, iface.Absent: EventInterfaceLinkAbsent}[ifc.State]
		st.e.log.Info("interface link state changed", "interface", ifc.ID, "link", ifc.Link, "from", before.State, "to", ifc.State)
		st.publish(Event{Type: t, Reason: "netlink", Interface: ifc.clone()})
	}
	removed, added := diffPrefixes(before.Addrs, ifc.Addrs)
	for _, a := range removed {
		ifc.Counters.AddressChanges++
		st.e.log.Info("interface address removed", "interface", ifc.ID, "address", a)
		st.publish(Event{Type: EventInterfaceAddressRemoved, Reason: "netlink", Interface: ifc.clone(), Address: a})
	}
	if len(added) > 0 {
		st.listenNAT(ifc)
	}
	for _, a := range added {
		ifc.Counters.AddressChanges++
		st.e.log.Info("interface address added", "interface", ifc.ID, "address", a)
		st.publish(Event{Type: EventInterfaceAddressAdded, Reason: "netlink", Interface: ifc.clone(), Address: a})
	}
	st.interfaceChanged(&before, ifc)
}

func diffPrefixes(before, after []netip.Prefix) (removed, added []netip.Prefix) {
	for _, p := range before {
		if !slices.Contains(after, p) {
			removed = append(removed, p)
		}
	}
	for _, p := range after {
		if !slices.Contains(before, p) {
			added = append(added, p)
		}
	}
	return removed, added
}

func (ifc *Interface) clone() *Interface {
	c := *ifc
	c.Addrs = slices.Clone(ifc.Addrs)
	return &c
}

func sortedInterfaces(m map[string]*Interface) []*Interface {
	ids := slices.Sorted(maps.Keys(m))
	out := make([]*Interface, len(ids))
	for i, id := range ids {
		out[i] = m[id]
	}
	return out
}
