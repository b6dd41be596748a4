package userspace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

const (
	udpSockBuf     = 4 << 20
	udpGSOMaxSegs  = 64    // UDP_MAX_SEGMENTS is 64 before Linux 5.9, 128 after
	udpGSOMaxBytes = 65000 // below 65535 minus IPv4/IPv6 and UDP headers
	udpMaxBatch    = 64
	cmsgSegSpace   = 24 // unix.CmsgSpace(2)
	cmsgGROSpace   = 24 // unix.CmsgSpace(4)
)

// batchConn is what ipv4.PacketConn and ipv6.PacketConn have in common.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// linuxUDP is a UDP socket with recvmmsg/sendmmsg batches and, where the
// kernel has them, UDP GSO on send (UDP_SEGMENT, Linux 4.18) and GRO on
// receive (UDP_GRO, Linux 5.0).
type linuxUDP struct {
	c     *net.UDPConn
	bc    batchConn
	local netip.AddrPort
	gso   atomic.Bool
	gro   bool

	// receive state, owned by the reader
	rmsgs []ipv4.Message
	rbufs [][1][]byte
	roobs [][cmsgGROSpace]byte

	// send state, owned by the sender
	wmsgs []ipv4.Message
	woobs [][cmsgSegSpace]byte
	addrs map[netip.AddrPort]*net.UDPAddr
}

// listenUDP opens the socket for local in the calling thread's network
// namespace.
func listenUDP(local netip.AddrPort, offload bool) (*linuxUDP, error) {
	network := "udp4"
	if local.Addr().Is6() && !local.Addr().Is4In6() {
		network = "udp6"
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(local))
	if err != nil {
		return nil, fmt.Errorf("userspace: listen %s: %w", local, err)
	}
	u := &linuxUDP{c: c, addrs: make(map[netip.AddrPort]*net.UDPAddr)}
	u.local = c.LocalAddr().(*net.UDPAddr).AddrPort()
	if network == "udp4" {
		u.bc = ipv4.NewPacketConn(c)
	} else {
		u.bc = ipv6BatchConn{ipv6.NewPacketConn(c)}
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	var gso, gro bool
	if err := rc.Control(func(fd uintptr) {
		s := int(fd)
		// Root may exceed net.core.{r,w}mem_max; others get what they may.
		if unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, udpSockBuf) != nil {
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, udpSockBuf)
		}
		if unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, udpSockBuf) != nil {
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF, udpSockBuf)
		}
		if !offload {
			return
		}
		_, err := unix.GetsockoptInt(s, unix.SOL_UDP, unix.UDP_SEGMENT)
		gso = err == nil
		gro = unix.SetsockoptInt(s, unix.SOL_UDP, unix.UDP_GRO, 1) == nil
	}); err != nil {
		c.Close()
		return nil, err
	}
	u.gso.Store(gso)
	u.gro = gro
	u.wmsgs = make([]ipv4.Message, udpMaxBatch)
	u.woobs = make([][cmsgSegSpace]byte, udpMaxBatch)
	return u, nil
}

type ipv6BatchConn struct{ c *ipv6.PacketConn }

func (b ipv6BatchConn) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	return b.c.ReadBatch(ms, flags)
}

func (b ipv6BatchConn) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	return b.c.WriteBatch(ms, flags)
}

func (u *linuxUDP) LocalAddr() netip.AddrPort { return u.local }

// ReadBatch implements udpConn.
func (u *linuxUDP) ReadBatch(msgs []rxMsg) (int, error) {
	if len(u.rmsgs) < len(msgs) {
		u.rmsgs = make([]ipv4.Message, len(msgs))
		u.rbufs = make([][1][]byte, len(msgs))
		u.roobs = make([][cmsgGROSpace]byte, len(msgs))
	}
	rm := u.rmsgs[:len(msgs)]
	for i := range rm {
		u.rbufs[i][0] = msgs[i].buf
		rm[i].Buffers = u.rbufs[i][:]
		rm[i].OOB = u.roobs[i][:]
		rm[i].N, rm[i].NN, rm[i].Flags, rm[i].Addr = 0, 0, 0, nil
	}
	n, err := u.bc.ReadBatch(rm, 0)
	if err != nil {
		return 0, err
	}
	for i := range n {
		m := &msgs[i]
		m.n, m.start, m.bad = rm[i].N, 0, false
		m.trunc = rm[i].Flags&unix.MSG_TRUNC != 0
		m.seg = groSize(rm[i].OOB[:rm[i].NN])
		m.src = netip.AddrPort{}
		if a, ok := rm[i].Addr.(*net.UDPAddr); ok {
			ap := a.AddrPort()
			m.src = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
	}
	return n, nil
}

// groSize finds the UDP_GRO control message (the segment size) in oob.
func groSize(oob []byte) int {
	const hdr = int(unsafe.Sizeof(unix.Cmsghdr{}))
	for len(oob) >= hdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < hdr || l > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && l >= hdr+4 {
			return int(binary.NativeEndian.Uint32(oob[hdr:]))
		}
		a := cmsgAlign(l)
		if a >= len(oob) {
			return 0
		}
		oob = oob[a:]
	}
	return 0
}

func cmsgAlign(n int) int {
	const a = int(unsafe.Sizeof(uintptr(0)))
	return (n + a - 1) &^ (a - 1)
}

// putSegCmsg writes a UDP_SEGMENT control message for seg-byte segments.
func putSegCmsg(b []byte, seg int) []byte {
	const hdr = int(unsafe.Sizeof(unix.Cmsghdr{}))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(hdr + 2)
	binary.NativeEndian.PutUint16(b[hdr:], uint16(seg))
	return b[:cmsgAlign(hdr+2)]
}

// Send implements udpConn. With GSO, runs of equal-sized datagrams (the last
// may be shorter) leave in one sendmsg with UDP_SEGMENT, the datagrams as
// the iovec: no copy.
func (u *linuxUDP) Send(dst netip.AddrPort, pkts [][]byte) error {
	ua := u.addrs[dst]
	if ua == nil {
		if len(u.addrs) > 1024 {
			clear(u.addrs)
		}
		ua = net.UDPAddrFromAddrPort(dst)
		u.addrs[dst] = ua
	}
	gso := u.gso.Load()
	nm, start := 0, 0
	for i := 0; i < len(pkts); {
		j := i + 1
		if gso {
			seg, total := len(pkts[i]), len(pkts[i])
			for j < len(pkts) && j-i < udpGSOMaxSegs && len(pkts[j]) <= seg && total+len(pkts[j]) <= udpGSOMaxBytes {
				total += len(pkts[j])
				j++
				if len(pkts[j-1]) < seg {
					break // a shorter datagram ends the run
				}
			}
		}
		m := &u.wmsgs[nm]
		m.Buffers = pkts[i:j]
		m.Addr = ua
		m.OOB = nil
		if j-i > 1 {
			m.OOB = putSegCmsg(u.woobs[nm][:], len(pkts[i]))
		}
		nm++
		i = j
		if nm == len(u.wmsgs) || i == len(pkts) {
			if err := u.flush(nm); err != nil {
				if gso && errors.Is(err, unix.EIO) {
					// The route's device cannot segment UDP: send whole
					// datagrams from now on.
					u.gso.Store(false)
					return u.Send(dst, pkts[start:])
				}
				return err
			}
			nm, start = 0, i
		}
	}
	return nil
}

func (u *linuxUDP) flush(nm int) error {
	ms := u.wmsgs[:nm]
	for len(ms) > 0 {
		n, err := u.bc.WriteBatch(ms, 0)
		if err != nil {
			var se *net.OpError
			if errors.As(err, &se) && isTransient(se.Err) && n == 0 {
				// e.g. ECONNREFUSED from an earlier ICMP: skip one message.
				n = 1
			} else {
				return err
			}
		}
		ms = ms[n:]
	}
	for i := range u.wmsgs[:nm] {
		u.wmsgs[i].Buffers, u.wmsgs[i].Addr = nil, nil
	}
	return nil
}

func isTransient(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EMSGSIZE, unix.ENOBUFS, unix.EPERM:
		return true
	}
	return false
}

func (u *linuxUDP) Close() error { return u.c.Close() }
