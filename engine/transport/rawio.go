package transport

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The IKE sockets' recvmmsg and sendmsg are issued with RawSyscall: the
// sockets are non-blocking, so neither call can block, and a raw call
// leaves the Go scheduler out. A call through syscall.Syscall (what
// x/net's ReadBatch and net's WriteMsgUDP make) wakes the runtime's
// monitor thread (sysmon) whenever the process was idle; it then polls
// every 20 µs for a while. A gateway answering handshakes one at a time is
// idle between every datagram: those wake-ups were about 15 % of its CPU
// (perf, concurrency 1). Readiness still comes from the netpoller
// (syscall.RawConn Read/Write), as for any Go socket.

// rawReader receives batches of datagrams from one socket.
type rawReader struct {
	rc    syscall.RawConn
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	bufs  [][]byte
	names []unix.RawSockaddrInet6 // large enough for either family
	oobs  [][]byte
	n     int
	errno syscall.Errno
	recv  func(fd uintptr) bool // r.recvmmsg, made once
}

// newRawReader prepares batch buffers of size bytes each, and oobLen bytes
// of control messages.
func newRawReader(c *net.UDPConn, batch, size, oobLen int) (*rawReader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &rawReader{rc: rc, hdrs: make([]unix.Mmsghdr, batch), iovs: make([]unix.Iovec, batch),
		bufs: make([][]byte, batch), names: make([]unix.RawSockaddrInet6, batch), oobs: make([][]byte, batch)}
	for i := range r.hdrs {
		// Pages of the buffers the kernel never fills stay unbacked.
		r.bufs[i] = make([]byte, size)
		r.oobs[i] = make([]byte, oobLen)
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(size)
		h := &r.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		h.Control = &r.oobs[i][0]
	}
	r.recv = r.recvmmsg
	return r, nil
}

func (r *rawReader) recvmmsg(fd uintptr) bool {
	for i := range r.hdrs {
		h := &r.hdrs[i]
		h.Hdr.Namelen = unix.SizeofSockaddrInet6
		h.Hdr.SetControllen(len(r.oobs[i]))
		h.Hdr.Flags = 0
		h.Len = 0
	}
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)),
			unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait for the netpoller
		}
		r.n, r.errno = int(n), e
		return true
	}
}

// read waits for and receives at least one datagram. A closed socket
// gives net.ErrClosed (wrapped).
func (r *rawReader) read() (int, error) {
	if err := r.rc.Read(r.recv); err != nil {
		return 0, err
	}
	if r.errno != 0 {
		return 0, r.errno
	}
	return r.n, nil
}

// datagram i of the last read: its data (the reader's buffer, valid until
// the next read), source address and control messages.
func (r *rawReader) datagram(i int) (data []byte, from netip.AddrPort, oob []byte, ok bool) {
	h := &r.hdrs[i]
	data = r.bufs[i][:h.Len]
	oob = r.oobs[i][:h.Hdr.Controllen]
	from, ok = sockaddrAddrPort(&r.names[i], h.Hdr.Namelen)
	return data, from, oob, ok && h.Hdr.Flags&unix.MSG_TRUNC == 0
}

// sockaddrAddrPort reads a sockaddr_in or sockaddr_in6.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6, n uint32) (netip.AddrPort, bool) {
	port := func(p uint16) uint16 { // network order in memory
		b := (*[2]byte)(unsafe.Pointer(&p))
		return binary.BigEndian.Uint16(b[:])
	}
	switch sa.Family {
	case unix.AF_INET:
		if n < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}, false
		}
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), port(s4.Port)), true
	case unix.AF_INET6:
		if n < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}, false
		}
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 { // a link-local peer: its zone is the interface
			if ifc, err := net.InterfaceByIndex(int(sa.Scope_id)); err == nil {
				a = a.WithZone(ifc.Name)
			}
		}
		return netip.AddrPortFrom(a, port(sa.Port)), true
	}
	return netip.AddrPort{}, false
}

// rawSender sends one datagram at a time; the caller serialises.
type rawSender struct {
	rc    syscall.RawConn
	h     unix.Msghdr
	iov   unix.Iovec
	sa4   unix.RawSockaddrInet4
	sa6   unix.RawSockaddrInet6
	errno syscall.Errno
	send  func(fd uintptr) bool // s.sendmsg, made once
}

func newRawSender(c *net.UDPConn) (*rawSender, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	s := &rawSender{rc: rc}
	s.send = s.sendmsg
	return s, nil
}

func (s *rawSender) sendmsg(fd uintptr) bool {
	for {
		_, _, e := unix.RawSyscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&s.h)), 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // socket buffer full: wait for room
		}
		s.errno = e
		return true
	}
}

// sendTo sends msg to to (an IPv4 address on an IPv4 socket, IPv6 on an
// IPv6 one) with the control messages oob.
func (s *rawSender) sendTo(msg, oob []byte, to netip.AddrPort) error {
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], to.Port())
	if to.Addr().Is4() {
		s.sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: to.Addr().As4()}
		s.sa4.Port = *(*uint16)(unsafe.Pointer(&p[0]))
		s.h.Name, s.h.Namelen = (*byte)(unsafe.Pointer(&s.sa4)), unix.SizeofSockaddrInet4
	} else {
		s.sa6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: to.Addr().As16()}
		s.sa6.Port = *(*uint16)(unsafe.Pointer(&p[0]))
		if z := to.Addr().Zone(); z != "" {
			ifc, err := net.InterfaceByName(z)
			if err != nil {
				return &net.OpError{Op: "sendmsg", Net: "udp", Addr: net.UDPAddrFromAddrPort(to), Err: err}
			}
			s.sa6.Scope_id = uint32(ifc.Index)
		}
		s.h.Name, s.h.Namelen = (*byte)(unsafe.Pointer(&s.sa6)), unix.SizeofSockaddrInet6
	}
	s.iov = unix.Iovec{}
	if len(msg) > 0 {
		s.iov.Base = &msg[0]
		s.iov.SetLen(len(msg))
	}
	s.h.Iov = &s.iov
	s.h.SetIovlen(1)
	s.h.Control = nil
	s.h.SetControllen(0)
	if len(oob) > 0 {
		s.h.Control = &oob[0]
		s.h.SetControllen(len(oob))
	}
	s.errno = 0
	err := s.rc.Write(s.send)
	s.iov.Base, s.h.Control = nil, nil // do not keep the caller's buffers
	if err != nil {
		return err
	}
	if s.errno != 0 {
		return &net.OpError{Op: "sendmsg", Net: "udp", Addr: net.UDPAddrFromAddrPort(to), Err: s.errno}
	}
	return nil
}
