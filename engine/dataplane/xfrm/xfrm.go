// Package xfrm is the kernel data plane: it installs the engine's SAs and
// policies as Linux XFRM states and policies through netlink
// (github.com/vishvananda/netlink), moves SAs to new outer addresses with
// XFRM_MSG_MIGRATE (RFC 4555 §3.5) and turns the kernel's expire and acquire
// notifications into dataplane.Events.
//
// # Paths
//
// Every SA belongs to a path (dataplane.SA.Path, DESIGN.md §1 G1). A kernel
// policy has exactly one template, so a dataplane.Policy whose SPIs live on
// several paths becomes one kernel policy per path, told apart by:
//
//   - BindMark (default): the policy of path p matches packets whose skb mark
//     is PathMark(p). Outbound, whoever steers a flow marks its packets
//     (SO_MARK, nftables "meta mark set"); unmarked packets take an extra
//     unmarked policy, one priority step lower, whose template is the path of
//     the first SPI listed (the dataplane "no preference" rule). Inbound, the
//     SA of path p sets the mark p on the packets it decrypts (XFRMA_SET_MARK,
//     applied on input since Linux 4.19) so that the policy check finds the
//     path's policy; the unmarked policy still rejects plaintext.
//   - BindIfID: states and policies carry if_id = path and traffic is steered
//     by routing into the path's xfrm interface (ip link add … type xfrm
//     if_id p); creating those interfaces is the caller's job.
//
// Within one path, the outbound template names the SA by reqid, and every SA
// gets its own reqid: the kernel uses the first SPI of that path in
// Policy.SPIs. Inbound templates accept any SA of the path's address pair
// (reqid 0), so the old and the new SA of a rekey are both accepted; when an
// SA has exactly one local and one remote selector, the kernel additionally
// checks decrypted packets against it (the state selector, RFC 4301 §5.2).
//
// # What the kernel cannot do
//
// A per-flow steering hook (SetSteering) is never called: see ErrSteeringHook.
// TFC padding and removing UDP encapsulation from a live SA are refused with
// dataplane.ErrUnsupported. Without ESN the kernel keeps at most a 32-packet
// replay window: larger windows are reduced to 32 (RFC 4303 §3.4.3 lets the
// receiver pick the size). Sequence-number exhaustion produces no kernel
// event, so SeqExhausted is never reported; soft limits are the rekey trigger.
//
// This package must not import gen/, server/, grpc, protobuf or the userspace
// data plane.
package xfrm

import (
	"context"
	"errors"
	"math/bits"
	"net/netip"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Binding says how a path is bound to kernel states and policies.
type Binding uint8

const (
	BindMark Binding = iota + 1 // XFRM marks on policies, set_mark on inbound SAs
	BindIfID                    // if_id on states and policies (xfrm interfaces)
)

func (b Binding) String() string {
	switch b {
	case BindMark:
		return "mark"
	case BindIfID:
		return "if_id"
	}
	return "unknown"
}

// Config of the kernel data plane. The zero value is usable.
type Config struct {
	// Binding of paths; 0 means BindMark.
	Binding Binding
	// MarkMask is the part of the skb mark that carries the path (BindMark);
	// the path number is shifted to the mask's lowest set bit. 0 = 0xffffffff.
	MarkMask uint32
	// NetNS is the path of a network namespace (/run/netns/NAME,
	// /proc/PID/ns/net); empty means the caller's current namespace.
	NetNS string
	// EventBuffer is the capacity of the Events channel; 0 means 64. When it
	// is full, events are dropped and counted (EventsDropped).
	EventBuffer int
}

// DataPlane is the XFRM implementation of dataplane.DataPlane. Its methods
// are safe for concurrent use.
type DataPlane struct {
	log     hclog.Logger
	binding Binding
	mask    uint32
	ns      netns.NsHandle // netns.None() for the current namespace
	h       *netlink.Handle
	raw     map[int]*nl.SocketHandle // for XFRM_MSG_MIGRATE, in the same namespace

	mu        sync.Mutex
	sas       map[saKey]*saRecord
	policies  map[uint64]*policyRecord
	lastReqid uint32
	closed    bool

	events  chan dataplane.Event
	mon     *monitor
	steerMu sync.Once
}

type saKey struct {
	spi uint32
	dir dataplane.Direction
}

// saRecord is what the data plane remembers of an SA: never its keys.
type saRecord struct {
	sa    dataplane.SA // Keys always empty
	reqid uint32
}

type policyRecord struct {
	p      dataplane.Policy
	kernel []netlink.XfrmPolicy
}

var _ dataplane.DataPlane = (*DataPlane)(nil)

// New opens netlink sockets in the configured namespace and starts listening
// for expire and acquire notifications.
func New(cfg Config, log hclog.Logger) (*DataPlane, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	d := &DataPlane{
		log:      log,
		binding:  cfg.Binding,
		mask:     cfg.MarkMask,
		ns:       netns.None(),
		sas:      make(map[saKey]*saRecord),
		policies: make(map[uint64]*policyRecord),
	}
	if d.binding == 0 {
		d.binding = BindMark
	}
	if d.binding != BindMark && d.binding != BindIfID {
		return nil, invalid("new", "unknown path binding")
	}
	if d.mask == 0 {
		d.mask = ^uint32(0)
	}
	buf := cfg.EventBuffer
	if buf <= 0 {
		buf = 64
	}
	if cfg.NetNS != "" {
		ns, err := netns.GetFromPath(cfg.NetNS)
		if err != nil {
			return nil, &Error{Op: "new", Reason: "open network namespace " + cfg.NetNS, Err: err}
		}
		d.ns = ns
	}
	var err error
	// Every call below goes through these sockets, opened in d.ns.
	if d.h, err = netlink.NewHandleAt(d.ns, unix.NETLINK_XFRM); err != nil {
		d.closeNS()
		return nil, &Error{Op: "new", Reason: "open xfrm netlink socket", Err: err}
	}
	s, err := nl.GetNetlinkSocketAt(d.ns, netns.None(), unix.NETLINK_XFRM)
	if err != nil {
		d.h.Close()
		d.closeNS()
		return nil, &Error{Op: "new", Reason: "open xfrm netlink socket", Err: err}
	}
	d.raw = map[int]*nl.SocketHandle{unix.NETLINK_XFRM: {Socket: s}}
	d.events = make(chan dataplane.Event, buf)
	if d.mon, err = startMonitor(d.ns, d.events, d.direction, log); err != nil {
		d.raw[unix.NETLINK_XFRM].Close()
		d.h.Close()
		d.closeNS()
		return nil, err
	}
	log.Debug("xfrm data plane ready", "binding", d.binding.String(), "netns", cfg.NetNS)
	return d, nil
}

func (d *DataPlane) closeNS() {
	if d.ns.IsOpen() {
		d.ns.Close()
	}
}

// Name implements dataplane.DataPlane.
func (d *DataPlane) Name() string { return "xfrm" }

// Events implements dataplane.DataPlane.
func (d *DataPlane) Events() <-chan dataplane.Event { return d.events }

// EventsDropped counts events lost because the Events channel was full.
func (d *DataPlane) EventsDropped() uint64 { return d.mon.dropped.Load() }

// SetSteering implements dataplane.DataPlane. The kernel cannot run the hook
// (ErrSteeringHook): it is not kept, and a warning is logged once.
func (d *DataPlane) SetSteering(s dataplane.Steering) {
	if s == nil {
		return
	}
	d.steerMu.Do(func() {
		d.log.Warn("steering hook ignored by the kernel data plane", "error", ErrSteeringHook.Error())
	})
}

// CheckSteering tells the engine, before it relies on a hook, that this data
// plane cannot run one: it returns ErrSteeringHook for a non-nil hook.
func (d *DataPlane) CheckSteering(s dataplane.Steering) error {
	if s == nil {
		return nil
	}
	return ErrSteeringHook
}

// PathMark returns the skb mark (value, mask) that selects path p's policies
// under BindMark, for SO_MARK or a firewall rule. Path 0 is the unmarked path.
func (d *DataPlane) PathMark(p uint32) (value, mask uint32, err error) {
	if d.binding != BindMark {
		return 0, 0, unsupported("path_mark", "paths are bound by if_id, not by mark")
	}
	return markFor(p, d.mask)
}

// markFor places path p under mask (shifted to the mask's lowest set bit).
func markFor(p, mask uint32) (uint32, uint32, error) {
	if p == 0 {
		return 0, 0, nil
	}
	shift := bits.TrailingZeros32(mask)
	v := p << shift
	if v>>shift != p || v&^mask != 0 {
		return 0, 0, invalid("path_mark", "path number does not fit in the mark mask")
	}
	return v, mask, nil
}

// Close implements dataplane.DataPlane: it removes every policy and SA this
// data plane installed (so no tunnel outlives its IKE SA), stops the monitor,
// closes Events and the netlink sockets.
func (d *DataPlane) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	var errs []error
	for id, pr := range d.policies {
		for i := range pr.kernel {
			// ip xfrm policy delete SELECTOR dir DIR [mark M] [if_id N]
			if err := d.h.XfrmPolicyDel(&pr.kernel[i]); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, kernelError("close", "delete policy", err))
			}
		}
		delete(d.policies, id)
	}
	for k, r := range d.sas {
		st := stateID(r)
		// ip xfrm state delete src S dst D proto esp spi SPI
		if err := d.h.XfrmStateDel(&st); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, kernelError("close", "delete SA", err))
		}
		delete(d.sas, k)
	}
	d.mu.Unlock()
	d.mon.stop()
	close(d.events)
	d.raw[unix.NETLINK_XFRM].Close()
	d.h.Close()
	d.closeNS()
	return errors.Join(errs...)
}

func (d *DataPlane) begin(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return &Error{Op: op, Reason: "cancelled", Err: err}
	}
	if d.closed {
		return invalid(op, "data plane closed")
	}
	return nil
}

// direction finds which of our SAs an SPI and outer destination belong to
// (the SPI alone is not unique: RFC 4301 §4.1 looks SAs up by SPI and
// destination); for the monitor.
func (d *DataPlane) direction(spi uint32, dst netip.Addr) (dataplane.Direction, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dir := range []dataplane.Direction{dataplane.In, dataplane.Out} {
		if r, ok := d.sas[saKey{spi, dir}]; ok {
			if _, to := outer(r.sa); to.Addr().Unmap() == dst.Unmap() {
				return dir, true
			}
		}
	}
	return 0, false
}
