package xfrm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func ipNet(p netip.Prefix) *net.IPNet {
	p = p.Masked()
	a := p.Addr().Unmap()
	bitsLen := 128
	if a.Is4() {
		bitsLen = 32
	}
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(p.Bits(), bitsLen)}
}

// port is the one port a kernel selector can hold: 0 (any) or an exact port.
// The kernel's port masks could express aligned ranges, but netlink v1.3.1
// only sends exact ports.
func port(s dataplane.Selector) (int, error) {
	switch {
	case s.PortFrom == 0 && (s.PortTo == 0 || s.PortTo == 0xffff):
		return 0, nil
	case s.PortFrom == s.PortTo:
		return int(s.PortFrom), nil
	}
	return 0, fmt.Errorf("port range %d-%d", s.PortFrom, s.PortTo)
}

// pairProto is the protocol of a local × remote selector pair; false when
// they name different protocols and so match nothing.
func pairProto(a, b dataplane.Selector) (uint8, bool) {
	switch {
	case a.Protocol == 0:
		return b.Protocol, true
	case b.Protocol == 0 || a.Protocol == b.Protocol:
		return a.Protocol, true
	}
	return 0, false
}

// pathGroup is the SAs of one policy on one path, in the policy's order.
type pathGroup struct {
	path uint32
	sa   *saRecord // first SA listed on the path: the template's
}

// kernelPolicies translates a policy into kernel policies: one per selector
// pair, kernel direction and path (see the package comment). lookup returns
// our record of an SA.
func kernelPolicies(p dataplane.Policy, lookup func(uint32, dataplane.Direction) (*saRecord, bool), b Binding, markMask uint32) ([]netlink.XfrmPolicy, error) {
	const op = "policy"
	if len(p.Local) == 0 || len(p.Remote) == 0 {
		return nil, invalid(op, "local and remote selectors are required")
	}
	var dirs []netlink.Dir
	switch p.Direction {
	case dataplane.Out:
		dirs = []netlink.Dir{netlink.XFRM_DIR_OUT}
	case dataplane.In:
		// Inbound covers both traffic to us and traffic we forward.
		dirs = []netlink.Dir{netlink.XFRM_DIR_IN, netlink.XFRM_DIR_FWD}
	default:
		return nil, invalid(op, "direction must be in or out")
	}
	if p.Priority >= 1<<31 {
		return nil, invalid(op, "priority must be below 2^31")
	}

	// Templates, one per path (BindMark/BindIfID tell them apart).
	var groups []pathGroup
	var action netlink.PolicyAction
	switch p.Action {
	case dataplane.Protect:
		if len(p.SPIs) == 0 {
			return nil, invalid(op, "a protect policy needs at least one SA")
		}
		seen := map[uint32]bool{}
		for _, spi := range p.SPIs {
			r, ok := lookup(spi, p.Direction)
			if !ok {
				return nil, &Error{Op: op, Reason: fmt.Sprintf("SPI 0x%08x %s is not installed", spi, p.Direction), Err: dataplane.ErrNotFound}
			}
			if !seen[r.sa.Path] {
				seen[r.sa.Path] = true
				groups = append(groups, pathGroup{path: r.sa.Path, sa: r})
			}
		}
	case dataplane.Bypass:
		action = netlink.XFRM_POLICY_ALLOW
	case dataplane.Discard:
		action = netlink.XFRM_POLICY_BLOCK
	default:
		return nil, invalid(op, "unknown action")
	}

	type variant struct {
		tmpl     []netlink.XfrmPolicyTmpl
		mark     *netlink.XfrmMark
		ifid     int
		priority int
	}
	var variants []variant
	if len(groups) == 0 {
		variants = []variant{{priority: int(p.Priority)}}
	}
	hasUnmarked := false
	for _, g := range groups {
		v := variant{tmpl: []netlink.XfrmPolicyTmpl{template(g.sa, p.Direction)}, priority: int(p.Priority)}
		switch b {
		case BindIfID:
			v.ifid = int(g.path)
		case BindMark:
			if g.path == 0 {
				hasUnmarked = true
				break
			}
			val, m, err := markFor(g.path, markMask)
			if err != nil {
				return nil, err
			}
			v.mark = &netlink.XfrmMark{Value: val, Mask: m}
		}
		variants = append(variants, v)
	}
	if b == BindMark && len(groups) > 0 && !hasUnmarked {
		// Unmarked packets: the first SA's path, below the marked policies.
		// Inbound this also keeps plaintext out.
		variants = append(variants, variant{tmpl: []netlink.XfrmPolicyTmpl{template(groups[0].sa, p.Direction)}, priority: int(p.Priority) + 1})
	}

	var out []netlink.XfrmPolicy
	for _, l := range p.Local {
		for _, r := range p.Remote {
			if !l.Prefix.IsValid() || !r.Prefix.IsValid() {
				return nil, invalid(op, "selector without prefix")
			}
			if l.Prefix.Addr().Unmap().Is4() != r.Prefix.Addr().Unmap().Is4() {
				continue // an IPv4 × IPv6 pair matches no packet
			}
			proto, ok := pairProto(l, r)
			if !ok {
				continue
			}
			lp, err := port(l)
			if err != nil {
				return nil, unsupported(op, "local selector "+err.Error()+": the kernel selector holds one port or all")
			}
			rp, err := port(r)
			if err != nil {
				return nil, unsupported(op, "remote selector "+err.Error()+": the kernel selector holds one port or all")
			}
			for _, dir := range dirs {
				for _, v := range variants {
					kp := netlink.XfrmPolicy{
						Dir: dir, Proto: netlink.Proto(proto), Priority: v.priority,
						Action: action, Mark: v.mark, Ifid: v.ifid, Tmpls: v.tmpl,
					}
					if dir == netlink.XFRM_DIR_OUT {
						kp.Src, kp.Dst, kp.SrcPort, kp.DstPort = ipNet(l.Prefix), ipNet(r.Prefix), lp, rp
					} else {
						kp.Src, kp.Dst, kp.SrcPort, kp.DstPort = ipNet(r.Prefix), ipNet(l.Prefix), rp, lp
					}
					out = append(out, kp)
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, invalid(op, "no local × remote selector pair of the same family and protocol")
	}
	return out, nil
}

// template names the SA a kernel policy applies (struct xfrm_user_tmpl).
func template(r *saRecord, dir dataplane.Direction) netlink.XfrmPolicyTmpl {
	src, dst := outer(r.sa)
	t := netlink.XfrmPolicyTmpl{Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TUNNEL}
	if r.sa.Mode == dataplane.Transport {
		t.Mode = netlink.XFRM_MODE_TRANSPORT
	} else {
		// Tunnel templates must name the outer addresses exactly.
		t.Src, t.Dst = ipOf(src.Addr()), ipOf(dst.Addr())
	}
	if dir == dataplane.Out {
		t.Reqid = int(r.reqid) // exactly this SA
	}
	// Inbound: reqid 0 accepts every SA of this address pair (rekey overlap).
	return t
}

// policyKey identifies a kernel policy as the kernel does (selector,
// direction, mark, if_id), so that an update can replace it in place.
func policyKey(p *netlink.XfrmPolicy) string {
	var mv, mm uint32
	if p.Mark != nil {
		mv, mm = p.Mark.Value, p.Mark.Mask
	}
	return fmt.Sprintf("%s|%s|%d|%d|%d|%d|%x/%x|%d", p.Src, p.Dst, p.Proto, p.SrcPort, p.DstPort, p.Dir, mv, mm, p.Ifid)
}

func (d *DataPlane) lookupSA(spi uint32, dir dataplane.Direction) (*saRecord, bool) {
	r, ok := d.sas[saKey{spi, dir}]
	return r, ok
}

// install makes the kernel hold want instead of have: replace in place what
// keeps its key, add the new, and only then delete what is gone
// (make-before-break). It returns what is installed.
func (d *DataPlane) install(op string, have, want []netlink.XfrmPolicy) ([]netlink.XfrmPolicy, error) {
	old := make(map[string]bool, len(have))
	for i := range have {
		old[policyKey(&have[i])] = true
	}
	var done []netlink.XfrmPolicy
	keep := make(map[string]bool, len(want))
	for i := range want {
		k := policyKey(&want[i])
		var err error
		if old[k] {
			// ip xfrm policy update SELECTOR dir DIR [mark M] [if_id N] priority P tmpl ...
			err = d.h.XfrmPolicyUpdate(&want[i])
		} else {
			// ip xfrm policy add SELECTOR dir DIR [mark M] [if_id N] priority P tmpl src S dst D proto esp reqid R mode tunnel
			err = d.h.XfrmPolicyAdd(&want[i])
		}
		if err != nil {
			// Roll back what this call added; replaced ones stay replaced.
			for j := range done {
				if !old[policyKey(&done[j])] {
					_ = d.h.XfrmPolicyDel(&done[j])
				}
			}
			return nil, kernelError(op, fmt.Sprintf("%s %s → %s", want[i].Dir, want[i].Src, want[i].Dst), err)
		}
		done = append(done, want[i])
		keep[k] = true
	}
	var errs []error
	for i := range have {
		if !keep[policyKey(&have[i])] {
			// ip xfrm policy delete SELECTOR dir DIR [mark M] [if_id N]
			if err := d.h.XfrmPolicyDel(&have[i]); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, kernelError(op, "delete stale policy", err))
			}
		}
	}
	return done, errors.Join(errs...)
}

// AddPolicy implements dataplane.DataPlane.
func (d *DataPlane) AddPolicy(ctx context.Context, p dataplane.Policy) error {
	const op = "add_policy"
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if _, ok := d.policies[p.ID]; ok {
		return &Error{Op: op, Reason: fmt.Sprintf("policy %d", p.ID), Err: dataplane.ErrExists}
	}
	want, err := kernelPolicies(p, d.lookupSA, d.binding, d.mask)
	if err != nil {
		return err
	}
	got, err := d.install(op, nil, want)
	if got == nil && err != nil {
		return err
	}
	d.policies[p.ID] = &policyRecord{p: clonePolicy(p), kernel: got}
	return err
}

// UpdatePolicy implements dataplane.DataPlane; kernel policies that keep
// their selector are replaced in place, so traffic never goes unprotected.
func (d *DataPlane) UpdatePolicy(ctx context.Context, p dataplane.Policy) error {
	const op = "update_policy"
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	pr, ok := d.policies[p.ID]
	if !ok {
		return &Error{Op: op, Reason: fmt.Sprintf("policy %d", p.ID), Err: dataplane.ErrNotFound}
	}
	want, err := kernelPolicies(p, d.lookupSA, d.binding, d.mask)
	if err != nil {
		return err
	}
	got, err := d.install(op, pr.kernel, want)
	if got == nil && err != nil {
		return err
	}
	pr.p, pr.kernel = clonePolicy(p), got
	return err
}

// DeletePolicy implements dataplane.DataPlane.
func (d *DataPlane) DeletePolicy(ctx context.Context, id uint64) error {
	const op = "delete_policy"
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	pr, ok := d.policies[id]
	if !ok {
		return &Error{Op: op, Reason: fmt.Sprintf("policy %d", id), Err: dataplane.ErrNotFound}
	}
	var errs []error
	for i := range pr.kernel {
		// ip xfrm policy delete SELECTOR dir DIR [mark M] [if_id N]
		if err := d.h.XfrmPolicyDel(&pr.kernel[i]); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, kernelError(op, fmt.Sprintf("policy %d", id), err))
		}
	}
	delete(d.policies, id)
	return errors.Join(errs...)
}

func clonePolicy(p dataplane.Policy) dataplane.Policy {
	p.Local = append([]dataplane.Selector(nil), p.Local...)
	p.Remote = append([]dataplane.Selector(nil), p.Remote...)
	p.SPIs = append([]uint32(nil), p.SPIs...)
	return p
}
