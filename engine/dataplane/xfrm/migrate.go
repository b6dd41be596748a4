package xfrm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// sizeofUserMigrate is sizeof(struct xfrm_user_migrate) in <linux/xfrm.h>:
// old_daddr, old_saddr, new_daddr, new_saddr (16 bytes each), proto, mode,
// reserved u16, reqid u32, old_family u16, new_family u16.
const sizeofUserMigrate = 76

// move is one SA move: the kernel finds the state by reqid and old addresses
// (xfrm_migrate_state_find) and clones it, sequence numbers and replay
// window included, onto the new addresses.
type move struct {
	oldSrc, oldDst, newSrc, newDst netip.Addr
	mode                           netlink.Mode
	reqid                          uint32
}

func family(a netip.Addr) uint16 {
	if a.Unmap().Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func putAddr(b []byte, a netip.Addr) {
	var x nl.XfrmAddress
	x.FromIP(ipOf(a))
	copy(b, x[:])
}

// marshal encodes struct xfrm_user_migrate (host byte order, like the kernel).
func (m move) marshal() []byte {
	b := make([]byte, sizeofUserMigrate)
	putAddr(b[0:16], m.oldDst)
	putAddr(b[16:32], m.oldSrc)
	putAddr(b[32:48], m.newDst)
	putAddr(b[48:64], m.newSrc)
	b[64] = byte(netlink.XFRM_PROTO_ESP)
	b[65] = byte(m.mode)
	ne := binary.NativeEndian
	ne.PutUint32(b[68:72], m.reqid)
	ne.PutUint16(b[72:74], family(m.oldDst))
	ne.PutUint16(b[74:76], family(m.newDst))
	return b
}

// Why a helper policy: XFRM_MSG_MIGRATE needs a policy, found by selector,
// direction, type and if_id only (xfrm_migrate_policy_find): the mark is not
// compared, so with one policy per path under BindMark the kernel could pick
// another path's policy and fail with ENODATA. The helper policy has a
// selector no real policy has (0.0.0.0/32 → 0.0.0.0/32) and a template naming
// exactly the SA being moved; the real policies' templates are rewritten
// afterwards with XFRM_MSG_UPDPOLICY.
var helperNet = &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(32, 32)}

func helperPolicy(m move, dir netlink.Dir, ifid int) *netlink.XfrmPolicy {
	return &netlink.XfrmPolicy{
		Src: helperNet, Dst: helperNet, Dir: dir, Ifid: ifid,
		Action: netlink.XFRM_POLICY_BLOCK, // should it ever match a packet
		Tmpls: []netlink.XfrmPolicyTmpl{{
			Src: ipOf(m.oldSrc), Dst: ipOf(m.oldDst), Proto: netlink.XFRM_PROTO_ESP,
			Mode: m.mode, Reqid: int(m.reqid),
		}},
	}
}

// migrateRequest builds XFRM_MSG_MIGRATE: struct xfrm_userpolicy_id naming
// the helper policy, XFRMA_MIGRATE, and optionally XFRMA_ENCAP (new UDP
// encapsulation) and XFRMA_IF_ID.
func migrateRequest(m move, dir netlink.Dir, encap *netlink.XfrmStateEncap, ifid uint32) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(nl.XFRM_MSG_MIGRATE, unix.NLM_F_ACK)
	id := &nl.XfrmUserpolicyId{Dir: uint8(dir)}
	id.Sel.Family = unix.AF_INET
	id.Sel.PrefixlenD, id.Sel.PrefixlenS = 32, 32
	req.AddData(id)
	req.AddData(nl.NewRtAttr(nl.XFRMA_MIGRATE, m.marshal()))
	if encap != nil {
		t := make([]byte, nl.SizeofXfrmEncapTmpl)
		e := nl.DeserializeXfrmEncapTmpl(t)
		e.EncapType = uint16(encap.Type)
		e.EncapSport = nl.Swap16(uint16(encap.SrcPort))
		e.EncapDport = nl.Swap16(uint16(encap.DstPort))
		req.AddData(nl.NewRtAttr(nl.XFRMA_ENCAP, t))
	}
	if ifid != 0 {
		req.AddData(nl.NewRtAttr(nl.XFRMA_IF_ID, nl.Uint32Attr(ifid)))
	}
	return req
}

// UpdateSA implements dataplane.DataPlane with XFRM_MSG_MIGRATE (RFC 4555
// §3.5: same SPI, keys and counters, new outer addresses), then points the
// policies that use the SA at the new addresses.
func (d *DataPlane) UpdateSA(ctx context.Context, spi uint32, dir dataplane.Direction, u dataplane.AddrUpdate) error {
	const op = "update_sa"
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	r, ok := d.sas[saKey{spi, dir}]
	if !ok {
		return &Error{Op: op, Reason: fmt.Sprintf("SPI 0x%08x %s", spi, dir), Err: dataplane.ErrNotFound}
	}
	if err := checkOuter(op, u.Local, u.Remote); err != nil {
		return err
	}
	if r.sa.Encap && !u.Encap {
		// xfrm_state_clone keeps the old encapsulation when none is given.
		return unsupported(op, "the kernel cannot remove UDP encapsulation from a live SA; rekey instead")
	}
	next := r.sa
	next.Local, next.Remote, next.Encap = u.Local, u.Remote, u.Encap
	oldSrc, oldDst := outer(r.sa)
	newSrc, newDst := outer(next)
	m := move{oldSrc: oldSrc.Addr(), oldDst: oldDst.Addr(), newSrc: newSrc.Addr(), newDst: newDst.Addr(), reqid: r.reqid, mode: netlink.XFRM_MODE_TUNNEL}
	if r.sa.Mode == dataplane.Transport {
		m.mode = netlink.XFRM_MODE_TRANSPORT
	}
	var encap *netlink.XfrmStateEncap
	if u.Encap {
		if newSrc.Port() == 0 || newDst.Port() == 0 {
			return invalid(op, "UDP encapsulation needs both outer ports")
		}
		encap = &netlink.XfrmStateEncap{Type: netlink.XFRM_ENCAP_ESPINUDP, SrcPort: int(newSrc.Port()), DstPort: int(newDst.Port())}
	}
	var ifid uint32
	if d.binding == BindIfID {
		ifid = r.sa.Path
	}
	kdir := netlink.XFRM_DIR_OUT
	if dir == dataplane.In {
		kdir = netlink.XFRM_DIR_IN
	}

	helper := helperPolicy(m, kdir, int(ifid))
	// ip xfrm policy update src 0.0.0.0/32 dst 0.0.0.0/32 dir DIR action block tmpl src OLD_S dst OLD_D proto esp reqid R mode tunnel
	if err := d.h.XfrmPolicyUpdate(helper); err != nil {
		return kernelError(op, "install migrate helper policy", err)
	}
	// ip xfrm policy migrate (not in iproute2 6.1; strongSwan/pf_key's SADB_X_MIGRATE equivalent)
	_, err := d.exec(migrateRequest(m, kdir, encap, ifid))
	// ip xfrm policy delete src 0.0.0.0/32 dst 0.0.0.0/32 dir DIR
	if derr := d.h.XfrmPolicyDel(helper); derr != nil && !errors.Is(derr, unix.ENOENT) {
		d.log.Warn("migrate helper policy left behind", "error", derr.Error())
	}
	if err != nil {
		return kernelError(op, fmt.Sprintf("XFRM_MSG_MIGRATE SPI 0x%08x", spi), err)
	}
	// The kernel moves nothing, without error, when no state matched.
	moved := saRecord{sa: next, reqid: r.reqid}
	id := stateID(&moved)
	// ip xfrm state get src NEW_S dst NEW_D proto esp spi SPI
	st, err := d.h.XfrmStateGet(&id)
	if err != nil {
		return kernelError(op, fmt.Sprintf("SPI 0x%08x not found at its new addresses after XFRM_MSG_MIGRATE", spi), err)
	}
	zeroAlgos(st)
	if uint32(st.Reqid) != r.reqid {
		return &Error{Op: op, Reason: fmt.Sprintf("SPI 0x%08x at the new addresses has reqid %d, not %d", spi, st.Reqid, r.reqid), Err: dataplane.ErrExists}
	}
	r.sa = next

	// Rewrite the templates of every policy that uses this SA.
	var errs []error
	for _, pr := range d.policies {
		if pr.p.Direction != dir || !usesSPI(pr.p, spi) {
			continue
		}
		want, err := kernelPolicies(pr.p, d.lookupSA, d.binding, d.mask)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		got, err := d.install(op, pr.kernel, want)
		if got != nil {
			pr.kernel = got
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	d.log.Debug("SA migrated", "spi", fmt.Sprintf("0x%08x", spi), "dir", dir.String(),
		"src", newSrc.String(), "dst", newDst.String(), "encap", u.Encap)
	return errors.Join(errs...)
}

func usesSPI(p dataplane.Policy, spi uint32) bool {
	for _, s := range p.SPIs {
		if s == spi {
			return true
		}
	}
	return false
}

// exec sends a request the library has no API for on our namespace's socket.
func (d *DataPlane) exec(req *nl.NetlinkRequest) ([][]byte, error) {
	req.Sockets = d.raw
	return req.Execute(unix.NETLINK_XFRM, 0)
}
