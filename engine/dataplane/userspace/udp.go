package userspace

import (
	"net"
	"net/netip"
)

// udpConn is the UDP edge: one socket on one local outer address. ReadBatch
// is called by one goroutine only, and so is Send.
type udpConn interface {
	// ReadBatch reads at least one datagram into msgs[i].buf. A datagram
	// coalesced by UDP GRO has msgs[i].seg > 0: it holds datagrams of seg
	// bytes each, the last one possibly shorter.
	ReadBatch(msgs []rxMsg) (int, error)
	// Send sends each packet as one datagram to dst, in order.
	Send(dst netip.AddrPort, pkts [][]byte) error
	LocalAddr() netip.AddrPort
	Close() error
}

// espConn is the plain-ESP edge (IP protocol 50, RFC 4303 §2 right after
// the IP header): one raw socket per address family, for every SA of that
// family. ReadBatch is called by one goroutine only; Send is serialised by
// the caller.
type espConn interface {
	// ReadBatch reads at least one ESP packet: msgs[i].buf[start:n], the IP
	// header already skipped; bad marks a packet whose header was not
	// understood. src has port 0.
	ReadBatch(msgs []rxMsg) (int, error)
	// Send sends each packet as one IP datagram of protocol 50 from src
	// (which must be a local address) to dst, in order.
	Send(src, dst netip.Addr, pkts [][]byte) error
	Close() error
}

// rxMsg is one received message.
type rxMsg struct {
	buf   []byte // receive buffer, owned by the caller
	start int    // first byte of the payload (plain ESP: after the IP header)
	n     int
	seg   int // GRO segment size, 0 if one datagram
	src   netip.AddrPort
	trunc bool // did not fit in buf
	bad   bool // plain ESP: the IP header was not understood
}

// dgram returns the datagram of the message that starts at off and the
// offset of the next one (len if none is left).
func (m *rxMsg) dgram(off int) ([]byte, int) {
	end := m.n
	if m.seg > 0 && off+m.seg < end {
		end = off + m.seg
	}
	return m.buf[off:end:end], end
}

func prefixNet(p netip.Prefix) *net.IPNet {
	a := p.Addr()
	bits := 32
	if a.Is6() {
		bits = 128
	}
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}
