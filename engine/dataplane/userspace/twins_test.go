package userspace

import (
	"net/netip"
	"os"
	"sync"
)

// In-memory twins of the TUN and UDP edges, after wireguard-go's
// tun/tuntest and conn/bindtest: the pipeline runs unchanged over them.

// memTUN: the test plays the kernel. Packets put on in are read by the
// data plane; packets it writes come out on out.
type memTUN struct {
	in     chan []byte
	out    chan []byte
	closed chan struct{}
	once   sync.Once
}

func newMemTUN() *memTUN {
	return &memTUN{in: make(chan []byte, 1024), out: make(chan []byte, 1024), closed: make(chan struct{})}
}

func (t *memTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var p []byte
	select {
	case p = <-t.in:
	case <-t.closed:
		return 0, os.ErrClosed
	}
	n := 0
	for {
		sizes[n] = copy(bufs[n][offset:], p)
		n++
		if n == len(bufs) {
			return n, nil
		}
		select {
		case p = <-t.in:
		default:
			return n, nil
		}
	}
}

func (t *memTUN) Write(bufs [][]byte, offset int) error {
	for _, b := range bufs {
		select {
		case t.out <- append([]byte(nil), b[offset:]...):
		case <-t.closed:
			return os.ErrClosed
		}
	}
	return nil
}

func (t *memTUN) Stats() tunStats { return tunStats{} }

func (t *memTUN) Close() error {
	t.once.Do(func() { close(t.closed) })
	return nil
}

// memNet connects memConns by address. Every datagram sent is also offered
// to tap, if set (for capture and replay).
type memNet struct {
	mu    sync.Mutex
	conns map[netip.AddrPort]*memConn
	esps  map[netip.Addr]*memESP
	tap   func(src, dst netip.AddrPort, b []byte)
}

type memDgram struct {
	src  netip.AddrPort
	data []byte
}

type memConn struct {
	net    *memNet
	local  netip.AddrPort
	ch     chan memDgram
	closed chan struct{}
	once   sync.Once
}

func newMemNet() *memNet {
	return &memNet{conns: make(map[netip.AddrPort]*memConn), esps: make(map[netip.Addr]*memESP)}
}

func (n *memNet) listen(a netip.AddrPort) (udpConn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conns[a] != nil {
		return nil, os.ErrExist
	}
	c := &memConn{net: n, local: a, ch: make(chan memDgram, 4096), closed: make(chan struct{})}
	n.conns[a] = c
	return c, nil
}

// deliver puts a datagram on dst's queue, as if sent from src.
func (n *memNet) deliver(src, dst netip.AddrPort, b []byte) {
	n.mu.Lock()
	c, tap := n.conns[dst], n.tap
	n.mu.Unlock()
	if tap != nil {
		tap(src, dst, b)
	}
	if c == nil {
		return
	}
	select {
	case c.ch <- memDgram{src: src, data: append([]byte(nil), b...)}:
	default: // queue full: lost, like UDP
	}
}

func (c *memConn) ReadBatch(msgs []rxMsg) (int, error) {
	var d memDgram
	select {
	case d = <-c.ch:
	case <-c.closed:
		return 0, os.ErrClosed
	}
	n := 0
	for {
		m := &msgs[n]
		m.n = copy(m.buf, d.data)
		m.trunc = len(d.data) > len(m.buf)
		m.seg, m.src, m.start, m.bad = 0, d.src, 0, false
		n++
		if n == len(msgs) {
			return n, nil
		}
		select {
		case d = <-c.ch:
		default:
			return n, nil
		}
	}
}

func (c *memConn) Send(dst netip.AddrPort, pkts [][]byte) error {
	for _, p := range pkts {
		c.net.deliver(c.local, dst, p)
	}
	return nil
}

func (c *memConn) LocalAddr() netip.AddrPort { return c.local }

func (c *memConn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.net.mu.Lock()
		delete(c.net.conns, c.local)
		c.net.mu.Unlock()
	})
	return nil
}

// memESP is the twin of a raw ESP socket of one host: it receives the plain
// ESP packets sent to any of the host's addresses of its family. IPv4
// packets arrive with a 20-byte IP header in front, as from the kernel.
type memESP struct {
	net    *memNet
	v6     bool
	addrs  map[netip.Addr]bool
	ch     chan memDgram
	closed chan struct{}
	once   sync.Once
}

// espHost returns the raw-socket opener of a host that owns addrs (more can
// be added with own).
func (n *memNet) espHost(addrs ...netip.Addr) func(v6 bool) (espConn, error) {
	return func(v6 bool) (espConn, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		c := &memESP{net: n, v6: v6, addrs: map[netip.Addr]bool{}, ch: make(chan memDgram, 4096), closed: make(chan struct{})}
		for _, a := range addrs {
			if a.Is6() == v6 {
				c.addrs[a] = true
				n.esps[a] = c
			}
		}
		return c, nil
	}
}

// deliverESP puts a plain ESP packet on the queue of dst's host.
func (n *memNet) deliverESP(src, dst netip.Addr, b []byte) {
	n.mu.Lock()
	c, tap := n.esps[dst], n.tap
	n.mu.Unlock()
	if tap != nil {
		tap(netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0), b)
	}
	if c == nil {
		return
	}
	var p []byte
	if src.Is4() {
		p = make([]byte, 20+len(b))
		putIPHeader(p[:20], src, dst, protoESP, len(b))
		copy(p[20:], b)
	} else {
		p = append([]byte(nil), b...)
	}
	select {
	case c.ch <- memDgram{src: netip.AddrPortFrom(src, 0), data: p}:
	default:
	}
}

func (c *memESP) ReadBatch(msgs []rxMsg) (int, error) {
	var d memDgram
	select {
	case d = <-c.ch:
	case <-c.closed:
		return 0, os.ErrClosed
	}
	n := 0
	for {
		m := &msgs[n]
		m.n = copy(m.buf, d.data)
		m.trunc = len(d.data) > len(m.buf)
		m.seg, m.src, m.start, m.bad = 0, d.src, 0, false
		if !c.v6 && !m.trunc {
			m.start, m.bad = ipv4Payload(m.buf[:m.n])
		}
		n++
		if n == len(msgs) {
			return n, nil
		}
		select {
		case d = <-c.ch:
		default:
			return n, nil
		}
	}
}

// Send refuses a source the host does not own, as the kernel does.
func (c *memESP) Send(src, dst netip.Addr, pkts [][]byte) error {
	if !c.addrs[src] {
		return os.ErrInvalid
	}
	for _, p := range pkts {
		c.net.deliverESP(src, dst, p)
	}
	return nil
}

func (c *memESP) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.net.mu.Lock()
		for a := range c.addrs {
			if c.net.esps[a] == c {
				delete(c.net.esps, a)
			}
		}
		c.net.mu.Unlock()
	})
	return nil
}
