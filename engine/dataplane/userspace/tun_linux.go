package userspace

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// linuxTUN is a /dev/net/tun device. With vnet set it was opened with
// IFF_VNET_HDR and the kernel may hand it TSO/USO superpackets
// (TUNSETOFFLOAD), and it writes coalesced TCP superpackets back.
type linuxTUN struct {
	f    *os.File
	rc   syscall.RawConn
	name string
	vnet bool

	// Read state, owned by the single reader.
	rbuf    []byte // one packet from the kernel, virtio header first
	pending int    // bytes of an unsplit packet in rbuf, 0 if none
	rbufs   [][]byte
	rsizes  []int
	roff    int
	rn      int
	rerr    error
	readFn  func(fd uintptr) bool
	rdrops  atomic.Uint64
	wdrops  atomic.Uint64
	coal    atomic.Uint64
	nwrites atomic.Uint64

	// Write state, owned by the single writer.
	gro     groPlan
	iov     []unix.Iovec
	wbuf    []byte
	werr    error
	writeFn func(fd uintptr) bool
}

// tunConfig is what openTUN configures on the link through netlink.
type tunConfig struct {
	Name    string
	MTU     int
	Addrs   []netip.Prefix
	Routes  []netip.Prefix
	Offload bool // try IFF_VNET_HDR with TSO/USO
}

// openTUN creates the TUN link in the calling thread's network namespace and
// configures it, like
//
//	ip tuntap add NAME mode tun [vnet_hdr]; ip link set NAME mtu MTU up
//	ip addr add ADDR dev NAME [nodad]; ip route add ROUTE dev NAME
func openTUN(c tunConfig) (*linuxTUN, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("userspace: open /dev/net/tun: %w", err)
	}
	t := &linuxTUN{}
	t.vnet = c.Offload
	if err := t.setup(fd, c.Name); err != nil {
		unix.Close(fd)
		return nil, err
	}
	t.f = os.NewFile(uintptr(fd), "/dev/net/tun")
	if t.rc, err = t.f.SyscallConn(); err != nil {
		t.f.Close()
		return nil, err
	}
	t.readFn = t.doRead
	t.writeFn = t.doWrite
	t.rbuf = make([]byte, vnetHdrLen+maxIPPacket)
	if err := configureLink(t.name, c); err != nil {
		t.f.Close()
		return nil, err
	}
	return t, nil
}

// setup runs TUNSETIFF and, when offloads are wanted, TUNSETOFFLOAD; if the
// kernel refuses the offloads it falls back to a plain TUN.
func (t *linuxTUN) setup(fd int, name string) error {
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if t.vnet {
		flags |= unix.IFF_VNET_HDR
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("userspace: tun name %q: %w", name, err)
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return fmt.Errorf("userspace: TUNSETIFF %q: %w", name, err)
	}
	t.name = ifr.Name()
	if !t.vnet {
		return nil
	}
	// TSO and, on kernels >= 6.2, USO toward us; checksums left partial.
	off := unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, off|unix.TUN_F_USO4|unix.TUN_F_USO6); err == nil {
		return nil
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, off); err == nil {
		return nil
	}
	// No offloads: keep the virtio header (always GSO_NONE) rather than
	// recreate the link.
	return unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, 0)
}

func configureLink(name string, c tunConfig) error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("userspace: netlink: %w", err)
	}
	defer h.Close()
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("userspace: link %s: %w", name, err)
	}
	if c.MTU > 0 {
		if err := h.LinkSetMTU(link, c.MTU); err != nil {
			return fmt.Errorf("userspace: set mtu of %s: %w", name, err)
		}
	}
	// Up before the addresses: an IPv6 address added to a down link stays
	// tentative for a while after the link comes up, even without DAD.
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("userspace: set %s up: %w", name, err)
	}
	for _, p := range c.Addrs {
		a := &netlink.Addr{IPNet: prefixNet(p)}
		if p.Addr().Is6() {
			// A point-to-point link without link-layer addresses has no
			// neighbours to detect duplicates with (RFC 4862 §5.4): use
			// the address at once instead of after a tentative period.
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(link, a); err != nil {
			return fmt.Errorf("userspace: add address %s to %s: %w", p, name, err)
		}
	}
	for _, p := range c.Routes {
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: prefixNet(p.Masked())}
		if err := h.RouteReplace(r); err != nil {
			return fmt.Errorf("userspace: route %s via %s: %w", p, name, err)
		}
	}
	return nil
}

func (t *linuxTUN) Name() string { return t.name }

// Read implements tunDevice.
func (t *linuxTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	t.rbufs, t.rsizes, t.roff, t.rn, t.rerr = bufs, sizes, offset, 0, nil
	err := t.rc.Read(t.readFn)
	n := t.rn
	t.rbufs, t.rsizes = nil, nil
	if n > 0 {
		return n, nil
	}
	if err == nil {
		err = t.rerr
	}
	return 0, err
}

// doRead reads packets until the batch is full or the device has no more:
// the first read may wait (return false), later ones stop at EAGAIN.
func (t *linuxTUN) doRead(fd uintptr) bool {
	for t.rn < len(t.rbufs) {
		if !t.vnet {
			n, err := unix.Read(int(fd), t.rbufs[t.rn][t.roff:])
			if done, wait := t.readErr(err); done {
				return !wait
			}
			if n > 0 {
				t.rsizes[t.rn] = n
				t.rn++
			}
			continue
		}
		if t.pending == 0 {
			n, err := unix.Read(int(fd), t.rbuf)
			if done, wait := t.readErr(err); done {
				return !wait
			}
			if n <= vnetHdrLen {
				t.rdrops.Add(1)
				continue
			}
			t.pending = n
		}
		var h vnetHdr
		h.decode(t.rbuf)
		pkt := t.rbuf[vnetHdrLen:t.pending]
		if t.rn > 0 && segmentCount(&h, pkt) > len(t.rbufs)-t.rn {
			return true // keep it for the next batch
		}
		k, err := gsoSplit(&h, pkt, t.rbufs[t.rn:], t.rsizes[t.rn:], t.roff)
		t.pending = 0
		if err != nil {
			t.rdrops.Add(1)
			continue
		}
		t.rn += k
	}
	return true
}

// readErr classifies a read error: done means stop reading, wait means ask
// the poller to wait for readability first (nothing read yet).
func (t *linuxTUN) readErr(err error) (done, wait bool) {
	switch {
	case err == nil:
		return false, false
	case errors.Is(err, unix.EAGAIN):
		return true, t.rn == 0
	case errors.Is(err, unix.EINTR):
		return false, false
	}
	if t.rn == 0 {
		t.rerr = err
	}
	return true, false
}

// Write implements tunDevice.
func (t *linuxTUN) Write(bufs [][]byte, offset int) error {
	if !t.vnet {
		for _, b := range bufs {
			if err := t.write1(b[offset:]); err != nil {
				return err
			}
		}
		return nil
	}
	if offset < vnetHdrLen {
		return errors.New("userspace: tun write without headroom for the virtio header")
	}
	t.gro.plan(bufs, offset)
	groups := t.gro.groups
	gi := 0
	for i := range bufs {
		if t.gro.member[i] {
			continue // written with its group's head
		}
		for gi < len(groups) && groups[gi].head < i {
			gi++
		}
		if gi < len(groups) && groups[gi].head == i && groups[gi].segs > 1 {
			if err := t.writeGroup(bufs, offset, &groups[gi]); err != nil {
				return err
			}
			continue
		}
		hdr := bufs[i][offset-vnetHdrLen:]
		clear(hdr[:vnetHdrLen]) // GSO_NONE, checksum complete
		if err := t.write1(hdr); err != nil {
			return err
		}
	}
	return nil
}

// writeGroup writes a group as one superpacket: the head with its headers
// rewritten, then the payloads of the other members, gathered by writev.
func (t *linuxTUN) writeGroup(bufs [][]byte, offset int, g *groGroup) error {
	finishHead(bufs[g.head], offset, g.segSize, g.total, g.psh)
	t.iov = t.iov[:0]
	head := bufs[g.head][offset-vnetHdrLen:]
	t.iov = appendIov(t.iov, head)
	hl := int(g.hs.ipHL + g.hs.thl)
	for m := t.gro.next[g.head]; m >= 0; m = t.gro.next[m] {
		t.iov = appendIov(t.iov, bufs[m][offset+hl:])
	}
	t.coal.Add(uint64(g.segs))
	t.wbuf = nil
	return t.flush()
}

func appendIov(iov []unix.Iovec, b []byte) []unix.Iovec {
	v := unix.Iovec{Base: &b[0]}
	v.SetLen(len(b))
	return append(iov, v)
}

func (t *linuxTUN) write1(b []byte) error {
	t.wbuf = b
	return t.flush()
}

func (t *linuxTUN) flush() error {
	t.werr = nil
	err := t.rc.Write(t.writeFn)
	t.nwrites.Add(1)
	if err != nil {
		return err // closed
	}
	if t.werr != nil {
		t.wdrops.Add(1) // the kernel refused this packet; keep going
	}
	return nil
}

func (t *linuxTUN) doWrite(fd uintptr) bool {
	for {
		var err error
		if t.wbuf != nil {
			_, err = unix.Write(int(fd), t.wbuf)
		} else {
			_, _, e := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&t.iov[0])), uintptr(len(t.iov)))
			if e != 0 {
				err = e
			}
		}
		switch {
		case err == nil:
			return true
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return false
		}
		t.werr = err
		return true
	}
}

func (t *linuxTUN) Stats() tunStats {
	return tunStats{ReadDrops: t.rdrops.Load(), WriteDrops: t.wdrops.Load(), Coalesced: t.coal.Load(), Writes: t.nwrites.Load()}
}

func (t *linuxTUN) Close() error { return t.f.Close() }
