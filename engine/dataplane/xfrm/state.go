package xfrm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// suite is how the kernel names the algorithms of a dataplane.Suite.
type suite struct {
	aead    string // AEAD transform (RFC 4106, RFC 7634); empty for encrypt+auth
	crypt   string // cipher for encrypt+auth (RFC 3602)
	auth    string // HMAC (RFC 2404, RFC 4868)
	encLen  int    // bytes of Keys.Enc (AEAD: key ‖ 4-byte salt, RFC 4106 §8.1)
	authLen int    // bytes of Keys.Integ
	icvBits int    // AEAD ICV or HMAC truncation
}

var suites = map[dataplane.Suite]suite{
	dataplane.SuiteAESGCM128:           {aead: "rfc4106(gcm(aes))", encLen: 16 + 4, icvBits: 128},
	dataplane.SuiteAESGCM256:           {aead: "rfc4106(gcm(aes))", encLen: 32 + 4, icvBits: 128},
	dataplane.SuiteChaCha20Poly1305:    {aead: "rfc7539esp(chacha20,poly1305)", encLen: 32 + 4, icvBits: 128},
	dataplane.SuiteAESCBC128HMACSHA256: {crypt: "cbc(aes)", auth: "hmac(sha256)", encLen: 16, authLen: 32, icvBits: 128},
	dataplane.SuiteAESCBC256HMACSHA256: {crypt: "cbc(aes)", auth: "hmac(sha256)", encLen: 32, authLen: 32, icvBits: 128},
	dataplane.SuiteAESCBC128HMACSHA1:   {crypt: "cbc(aes)", auth: "hmac(sha1)", encLen: 16, authLen: 20, icvBits: 96},
	dataplane.SuiteAESCBC256HMACSHA384: {crypt: "cbc(aes)", auth: "hmac(sha384)", encLen: 32, authLen: 48, icvBits: 192},
	dataplane.SuiteAESCBC256HMACSHA512: {crypt: "cbc(aes)", auth: "hmac(sha512)", encLen: 32, authLen: 64, icvBits: 256},
}

// legacyReplayMax is the largest window of a non-ESN kernel state (one u32
// bitmap, xfrm_state.replay.bitmap).
const legacyReplayMax = 32

// maxReplay is the dataplane contract's limit.
const maxReplay = 4096

// outer returns the outer source and destination of an SA as the kernel
// sees them: ours first outbound, the peer's first inbound.
func outer(sa dataplane.SA) (src, dst netip.AddrPort) {
	if sa.Direction == dataplane.In {
		return sa.Remote, sa.Local
	}
	return sa.Local, sa.Remote
}

func ipOf(a netip.Addr) net.IP { return net.IP(a.Unmap().AsSlice()) }

// stateID is enough of a state for get and delete.
func stateID(r *saRecord) netlink.XfrmState {
	src, dst := outer(r.sa)
	return netlink.XfrmState{Src: ipOf(src.Addr()), Dst: ipOf(dst.Addr()), Proto: netlink.XFRM_PROTO_ESP, Spi: int(r.sa.SPI)}
}

func checkOuter(op string, local, remote netip.AddrPort) error {
	if !local.Addr().IsValid() || !remote.Addr().IsValid() {
		return invalid(op, "outer addresses must be set")
	}
	if local.Addr().Unmap().Is4() != remote.Addr().Unmap().Is4() {
		return invalid(op, "outer addresses of different families")
	}
	if local.Addr().IsUnspecified() || remote.Addr().IsUnspecified() {
		return invalid(op, "outer addresses must not be unspecified")
	}
	return nil
}

// kernelState translates an SA into the state to add. The returned state
// shares sa.Keys' bytes; the caller must not keep it.
func kernelState(sa dataplane.SA, reqid uint32, b Binding, markMask uint32) (*netlink.XfrmState, error) {
	const op = "add_sa"
	if sa.SPI < 256 {
		return nil, invalid(op, "SPI values 0-255 are reserved (RFC 4303 §2.1)")
	}
	if sa.Direction != dataplane.In && sa.Direction != dataplane.Out {
		return nil, invalid(op, "direction must be in or out")
	}
	su, ok := suites[sa.Suite]
	if !ok {
		return nil, invalid(op, "unknown suite")
	}
	if len(sa.Keys.Enc) != su.encLen || len(sa.Keys.Integ) != su.authLen {
		return nil, invalid(op, fmt.Sprintf("suite %s needs %d encryption and %d integrity key bytes, got %d and %d",
			sa.Suite, su.encLen, su.authLen, len(sa.Keys.Enc), len(sa.Keys.Integ)))
	}
	if err := checkOuter(op, sa.Local, sa.Remote); err != nil {
		return nil, err
	}
	if sa.ReplayWindow < 0 || sa.ReplayWindow > maxReplay {
		return nil, invalid(op, "replay window must be 0..4096")
	}
	if sa.TFCPadding {
		return nil, unsupported(op, "TFC padding (XFRMA_TFCPAD) cannot be set through netlink v1.3.1")
	}
	src, dst := outer(sa)
	st := &netlink.XfrmState{
		Src:   ipOf(src.Addr()),
		Dst:   ipOf(dst.Addr()),
		Proto: netlink.XFRM_PROTO_ESP,
		Spi:   int(sa.SPI),
		Reqid: int(reqid),
		Limits: netlink.XfrmStateLimits{ // 0 = no limit (XFRM_INF)
			ByteSoft: sa.Limits.SoftBytes, ByteHard: sa.Limits.HardBytes,
			PacketSoft: sa.Limits.SoftPackets, PacketHard: sa.Limits.HardPackets,
		},
	}
	switch sa.Mode {
	case dataplane.Tunnel:
		st.Mode = netlink.XFRM_MODE_TUNNEL
	case dataplane.Transport:
		st.Mode = netlink.XFRM_MODE_TRANSPORT
	default:
		return nil, invalid(op, "mode must be tunnel or transport")
	}
	if su.aead != "" {
		st.Aead = &netlink.XfrmStateAlgo{Name: su.aead, Key: sa.Keys.Enc, ICVLen: su.icvBits}
	} else {
		st.Crypt = &netlink.XfrmStateAlgo{Name: su.crypt, Key: sa.Keys.Enc}
		st.Auth = &netlink.XfrmStateAlgo{Name: su.auth, Key: sa.Keys.Integ, TruncateLen: su.icvBits}
	}
	// Anti-replay is a receiver feature (RFC 4303 §3.4.3).
	window := 0
	if sa.Direction == dataplane.In {
		window = sa.ReplayWindow
	}
	if sa.ESN {
		// The kernel keeps ESN state in xfrm_replay_state_esn, which netlink
		// v1.3.1 only sends with a non-zero window: outbound SAs get a
		// nominal one, never checked on output.
		if sa.Direction == dataplane.In && window == 0 {
			return nil, unsupported(op, "ESN without anti-replay cannot be expressed through netlink v1.3.1")
		}
		if window == 0 {
			window = legacyReplayMax
		}
		st.ESN = true
	} else if window > legacyReplayMax {
		window = legacyReplayMax
	}
	st.ReplayWindow = window
	if sa.Encap {
		// RFC 3948: ESP in UDP, ports from the outer addresses.
		if src.Port() == 0 || dst.Port() == 0 {
			return nil, invalid(op, "UDP encapsulation needs both outer ports")
		}
		st.Encap = &netlink.XfrmStateEncap{Type: netlink.XFRM_ENCAP_ESPINUDP, SrcPort: int(src.Port()), DstPort: int(dst.Port())}
	}
	switch b {
	case BindIfID:
		st.Ifid = int(sa.Path)
	case BindMark:
		if sa.Direction == dataplane.In && sa.Path != 0 {
			v, m, err := markFor(sa.Path, markMask)
			if err != nil {
				return nil, err
			}
			// Decrypted packets carry the path's mark into the policy check.
			st.OutputMark = &netlink.XfrmMark{Value: v, Mask: m}
		}
	}
	if sa.Direction == dataplane.In && sa.Mode == dataplane.Tunnel && len(sa.LocalTS) == 1 && len(sa.RemoteTS) == 1 {
		// Inner packets must match the SA's selectors (RFC 4301 §5.2).
		if sel, ok := stateSelector(sa.RemoteTS[0], sa.LocalTS[0]); ok {
			st.Selector = sel
		}
	}
	return st, nil
}

// stateSelector builds the single selector src → dst a state can carry.
// Port ranges other than one port or all ports cannot be expressed; they
// leave the ports open (the policies still apply).
func stateSelector(src, dst dataplane.Selector) (*netlink.XfrmPolicy, bool) {
	if !src.Prefix.IsValid() || !dst.Prefix.IsValid() || src.Prefix.Addr().Is4() != dst.Prefix.Addr().Is4() {
		return nil, false
	}
	proto, ok := pairProto(src, dst)
	if !ok {
		return nil, false
	}
	sel := &netlink.XfrmPolicy{Src: ipNet(src.Prefix), Dst: ipNet(dst.Prefix), Proto: netlink.Proto(proto)}
	if p, err := port(src); err == nil {
		sel.SrcPort = p
	}
	if p, err := port(dst); err == nil {
		sel.DstPort = p
	}
	return sel, true
}

func (d *DataPlane) allocReqid() uint32 {
	for {
		d.lastReqid++
		if d.lastReqid == 0 {
			continue // reqid 0 means "any" in templates
		}
		taken := false
		for _, r := range d.sas {
			if r.reqid == d.lastReqid {
				taken = true
				break
			}
		}
		if !taken {
			return d.lastReqid
		}
	}
}

// AddSA implements dataplane.DataPlane. The data plane keeps no copy of the
// keys; the caller still owns (and zeroes) sa.Keys.
func (d *DataPlane) AddSA(ctx context.Context, sa dataplane.SA) error {
	const op = "add_sa"
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	k := saKey{sa.SPI, sa.Direction}
	if _, ok := d.sas[k]; ok {
		return &Error{Op: op, Reason: fmt.Sprintf("SPI 0x%08x %s", sa.SPI, sa.Direction), Err: dataplane.ErrExists}
	}
	reqid := d.allocReqid()
	st, err := kernelState(sa, reqid, d.binding, d.mask)
	if err != nil {
		return err
	}
	// ip xfrm state add src S dst D proto esp spi SPI reqid R mode tunnel
	//   { aead 'rfc4106(gcm(aes))' K 128 | enc 'cbc(aes)' K auth-trunc 'hmac(sha256)' K 128 }
	//   [replay-window W] [flag esn] [encap espinudp SP DP 0.0.0.0]
	//   [output-mark M mask MM] [if_id N] [sel src R dst L] [limit packet-soft N ...]
	err = d.h.XfrmStateAdd(st)
	st.Aead, st.Crypt, st.Auth = nil, nil, nil
	if err != nil {
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.ENOENT) {
			// ENOSYS: no such algorithm; ENOENT: crypto init failed (missing module).
			return &Error{Op: op, Reason: fmt.Sprintf("kernel cannot run %s", sa.Suite), Err: fmt.Errorf("%w: %w", dataplane.ErrUnsupported, err)}
		}
		return kernelError(op, fmt.Sprintf("SPI 0x%08x %s", sa.SPI, sa.Direction), err)
	}
	sa.Keys = dataplane.Keys{}
	sa.LocalTS = append([]dataplane.Selector(nil), sa.LocalTS...)
	sa.RemoteTS = append([]dataplane.Selector(nil), sa.RemoteTS...)
	d.sas[k] = &saRecord{sa: sa, reqid: reqid}
	d.log.Debug("SA added", "spi", fmt.Sprintf("0x%08x", sa.SPI), "dir", sa.Direction.String(),
		"suite", sa.Suite.String(), "path", sa.Path, "reqid", reqid)
	return nil
}

// DeleteSA implements dataplane.DataPlane. An SA the kernel already removed
// (hard expiry) is deleted without error.
func (d *DataPlane) DeleteSA(ctx context.Context, spi uint32, dir dataplane.Direction) error {
	const op = "delete_sa"
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	k := saKey{spi, dir}
	r, ok := d.sas[k]
	if !ok {
		return &Error{Op: op, Reason: fmt.Sprintf("SPI 0x%08x %s", spi, dir), Err: dataplane.ErrNotFound}
	}
	st := stateID(r)
	// ip xfrm state delete src S dst D proto esp spi SPI
	if err := d.h.XfrmStateDel(&st); err != nil && !errors.Is(err, unix.ESRCH) {
		return kernelError(op, fmt.Sprintf("SPI 0x%08x %s", spi, dir), err)
	}
	delete(d.sas, k)
	d.log.Debug("SA deleted", "spi", fmt.Sprintf("0x%08x", spi), "dir", dir.String())
	return nil
}

// Counters implements dataplane.DataPlane from the kernel's lifetime and
// statistics counters (struct xfrm_lifetime_cur, struct xfrm_stats).
func (d *DataPlane) Counters(ctx context.Context, spi uint32, dir dataplane.Direction) (dataplane.Counters, error) {
	const op = "counters"
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.begin(ctx, op); err != nil {
		return dataplane.Counters{}, err
	}
	r, ok := d.sas[saKey{spi, dir}]
	if !ok {
		return dataplane.Counters{}, &Error{Op: op, Reason: fmt.Sprintf("SPI 0x%08x %s", spi, dir), Err: dataplane.ErrNotFound}
	}
	id := stateID(r)
	// ip -s xfrm state get src S dst D proto esp spi SPI
	st, err := d.h.XfrmStateGet(&id)
	if err != nil {
		return dataplane.Counters{}, kernelError(op, fmt.Sprintf("SPI 0x%08x %s", spi, dir), err)
	}
	zeroAlgos(st) // the kernel returns the keys too
	c := dataplane.Counters{
		Bytes:   st.Statistics.Bytes,
		Packets: st.Statistics.Packets,
		Drops: map[string]uint64{
			"replay":          uint64(st.Statistics.Replay),
			"replay_window":   uint64(st.Statistics.ReplayWindow),
			"integrity_check": uint64(st.Statistics.Failed),
		},
	}
	if st.Statistics.UseTime != 0 {
		c.LastUsed = time.Unix(int64(st.Statistics.UseTime), 0)
	}
	return c, nil
}

func zeroAlgos(st *netlink.XfrmState) {
	for _, a := range []*netlink.XfrmStateAlgo{st.Aead, st.Crypt, st.Auth} {
		if a != nil {
			clear(a.Key)
		}
	}
}
