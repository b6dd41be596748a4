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

func newMemNet() *memNet { return &memNet{conns: make(map[netip.AddrPort]*memConn)} }

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
		m.seg, m.src = 0, d.src
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
