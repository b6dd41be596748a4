package userspace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// protoESP is the IP protocol number of ESP (RFC 4303 §2, IANA).
const protoESP = 50

// linuxESP is a raw IP socket of protocol 50, like
// socket(AF_INET[6], SOCK_RAW, IPPROTO_ESP): it needs CAP_NET_RAW. With no
// kernel ESP handler (no xfrm state), the kernel hands every ESP packet for
// a local address to raw sockets, and sends no ICMP protocol-unreachable
// while one is open. Batches use recvmmsg/sendmmsg; the source address of
// each send goes in an IP_PKTINFO / IPV6_PKTINFO control message, so one
// unbound socket serves every local address of its family.
type linuxESP struct {
	c  *net.IPConn
	bc batchConn
	v6 bool

	// receive state, owned by the reader
	rmsgs []ipv4.Message
	rbufs [][1][]byte

	// send state, owned by the (serialised) sender
	wmsgs []ipv4.Message
	oobs  map[netip.Addr][]byte
	addrs map[netip.Addr]*net.IPAddr
}

// listenESP opens the raw socket of one family in the calling thread's
// network namespace.
func listenESP(v6 bool) (*linuxESP, error) {
	network := "ip4:50"
	if v6 {
		network = "ip6:50"
	}
	c, err := net.ListenIP(network, nil)
	if err != nil {
		return nil, fmt.Errorf("userspace: raw ESP socket (%s, needs CAP_NET_RAW): %w", network, err)
	}
	r := &linuxESP{c: c, v6: v6, oobs: make(map[netip.Addr][]byte), addrs: make(map[netip.Addr]*net.IPAddr)}
	if v6 {
		r.bc = ipv6BatchConn{ipv6.NewPacketConn(c)}
	} else {
		r.bc = ipv4.NewPacketConn(c)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	if err := rc.Control(func(fd uintptr) {
		s := int(fd)
		if unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, udpSockBuf) != nil {
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, udpSockBuf)
		}
		if unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, udpSockBuf) != nil {
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF, udpSockBuf)
		}
	}); err != nil {
		c.Close()
		return nil, err
	}
	r.wmsgs = make([]ipv4.Message, udpMaxBatch)
	return r, nil
}

// ReadBatch implements espConn. An IPv4 raw socket returns the IP header
// too (raw(7)); an IPv6 one only the payload (RFC 3542 §3).
func (r *linuxESP) ReadBatch(msgs []rxMsg) (int, error) {
	if len(r.rmsgs) < len(msgs) {
		r.rmsgs = make([]ipv4.Message, len(msgs))
		r.rbufs = make([][1][]byte, len(msgs))
	}
	rm := r.rmsgs[:len(msgs)]
	for i := range rm {
		r.rbufs[i][0] = msgs[i].buf
		rm[i].Buffers = r.rbufs[i][:]
		rm[i].OOB = nil
		rm[i].N, rm[i].NN, rm[i].Flags, rm[i].Addr = 0, 0, 0, nil
	}
	n, err := r.bc.ReadBatch(rm, 0)
	if err != nil {
		return 0, err
	}
	for i := range n {
		m := &msgs[i]
		m.n, m.start, m.seg, m.bad = rm[i].N, 0, 0, false
		m.trunc = rm[i].Flags&unix.MSG_TRUNC != 0
		m.src = netip.AddrPort{}
		if a, ok := rm[i].Addr.(*net.IPAddr); ok {
			if ip, ok := netip.AddrFromSlice(a.IP); ok {
				m.src = netip.AddrPortFrom(ip.Unmap(), 0)
			}
		}
		if !r.v6 && !m.trunc {
			m.start, m.bad = ipv4Payload(m.buf[:m.n])
		}
	}
	return n, nil
}

// ipv4Payload returns the offset of the payload of an IPv4 packet, or bad.
func ipv4Payload(p []byte) (int, bool) {
	if len(p) < ipv4HL || p[0]>>4 != 4 {
		return 0, true
	}
	hl := int(p[0]&0xf) * 4
	if hl < ipv4HL || hl > len(p) || int(binary.BigEndian.Uint16(p[2:4])) > len(p) {
		return 0, true
	}
	return hl, false
}

// Send implements espConn.
func (r *linuxESP) Send(src, dst netip.Addr, pkts [][]byte) error {
	oob, ok := r.oobs[src]
	if !ok {
		if len(r.oobs) > 1024 {
			clear(r.oobs)
		}
		if r.v6 {
			oob = (&ipv6.ControlMessage{Src: src.AsSlice()}).Marshal()
		} else {
			oob = (&ipv4.ControlMessage{Src: src.AsSlice()}).Marshal()
		}
		r.oobs[src] = oob
	}
	ia := r.addrs[dst]
	if ia == nil {
		if len(r.addrs) > 1024 {
			clear(r.addrs)
		}
		ia = &net.IPAddr{IP: dst.AsSlice()}
		r.addrs[dst] = ia
	}
	for len(pkts) > 0 {
		nm := min(len(pkts), len(r.wmsgs))
		ms := r.wmsgs[:nm]
		for i := range ms {
			ms[i].Buffers = pkts[i : i+1]
			ms[i].OOB = oob
			ms[i].Addr = ia
		}
		for len(ms) > 0 {
			n, err := r.bc.WriteBatch(ms, 0)
			if err != nil {
				var oe *net.OpError
				if errors.As(err, &oe) && isTransient(oe.Err) && n == 0 {
					n = 1 // skip the one message the kernel refused
				} else {
					r.clearW(nm)
					return err
				}
			}
			ms = ms[n:]
		}
		r.clearW(nm)
		pkts = pkts[nm:]
	}
	return nil
}

func (r *linuxESP) clearW(n int) {
	for i := range r.wmsgs[:n] {
		r.wmsgs[i].Buffers, r.wmsgs[i].OOB, r.wmsgs[i].Addr = nil, nil, nil
	}
}

func (r *linuxESP) Close() error { return r.c.Close() }
