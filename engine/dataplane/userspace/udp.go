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

// rxMsg is one received message.
type rxMsg struct {
	buf   []byte // receive buffer, owned by the caller
	n     int
	seg   int // GRO segment size, 0 if one datagram
	src   netip.AddrPort
	trunc bool // did not fit in buf
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
