// Package transport carries IKE datagrams: UDP port 500 on a wildcard
// socket per address family (the local address of each datagram comes from
// IP_PKTINFO, so one socket serves every interface), and port 4500 through
// an Encap, the socket shared with the data plane by the non-ESP marker
// (RFC 3948 §2.2).
//
// Each socket's reader takes up to readBatch queued datagrams per system
// call (recvmmsg); sends write the source address's control message into
// a reused buffer and the destination as a netip.AddrPort, allocating
// nothing. Both are raw system calls on the non-blocking sockets
// (rawio.go): they never block, and they do not wake the Go runtime's
// monitor thread after each idle spell.
//
// It must not import gen/, server/, grpc or protobuf.
package transport

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Packet is one received IKE datagram, non-ESP marker removed.
type Packet struct {
	Local, Remote netip.AddrPort
	Data          []byte
}

// Encap is the NAT-T port: the userspace data plane implements it.
type Encap interface {
	Listen(local netip.AddrPort) error
	SendIKE(local, remote netip.AddrPort, msg []byte) error
	SetIKEHandler(func(local, remote netip.AddrPort, msg []byte))
}

// Config of a Transport.
type Config struct {
	// Port is the IKE port (default 500); NATPort the NAT-T port (default 4500).
	Port, NATPort uint16
	// Queue is the receive queue length (default 4096); datagrams that find
	// it full are dropped and counted.
	Queue int
}

// Transport sends and receives IKE datagrams.
type Transport struct {
	cfg   Config
	log   hclog.Logger
	encap Encap
	v4    *ipv4.PacketConn
	v6    *ipv6.PacketConn
	c4    *net.UDPConn
	c6    *net.UDPConn
	recv  chan Packet
	// inline takes a datagram on the reader's goroutine (SetInline).
	inline atomic.Pointer[func(Packet) bool]
	wg     sync.WaitGroup

	// smu guards oob, the control message buffer of Send, and the senders.
	smu    sync.Mutex
	oob    []byte
	s4, s6 *rawSender

	mu      sync.Mutex
	closed  bool
	dropped uint64
}

// New opens the IKE sockets. encap may be nil (no NAT-T port).
func New(cfg Config, encap Encap, log hclog.Logger) (*Transport, error) {
	if cfg.Port == 0 {
		cfg.Port = 500
	}
	if cfg.NATPort == 0 {
		cfg.NATPort = 4500
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 4096
	}
	t := &Transport{cfg: cfg, log: log.Named("transport"), encap: encap, recv: make(chan Packet, cfg.Queue),
		oob: make([]byte, pktinfoSpace)}
	c4, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero, Port: int(cfg.Port)})
	if err != nil {
		return nil, fmt.Errorf("listen on udp4 port %d: %w", cfg.Port, err)
	}
	t.c4 = c4
	t.v4 = ipv4.NewPacketConn(t.c4)
	if err := t.v4.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
		t.c4.Close()
		return nil, fmt.Errorf("IP_PKTINFO: %w", err)
	}
	if c6, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6unspecified, Port: int(cfg.Port)}); err == nil {
		t.c6 = c6
		t.v6 = ipv6.NewPacketConn(c6)
		if err := t.v6.SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true); err != nil {
			t.log.Warn("IPV6_RECVPKTINFO failed; IPv6 IKE disabled", "error", err)
			c6.Close()
			t.c6, t.v6 = nil, nil
		}
	} else {
		t.log.Info("no IPv6 IKE socket", "error", err)
	}
	r4, err := newRawReader(t.c4, readBatch, maxDatagram, len(ipv4.NewControlMessage(ipv4.FlagDst|ipv4.FlagInterface)))
	if err == nil {
		t.s4, err = newRawSender(t.c4)
	}
	if err != nil {
		t.c4.Close()
		if t.c6 != nil {
			t.c6.Close()
		}
		return nil, fmt.Errorf("udp4 socket: %w", err)
	}
	var r6 *rawReader
	if t.c6 != nil {
		r6, err = newRawReader(t.c6, readBatch, maxDatagram, len(ipv6.NewControlMessage(ipv6.FlagDst|ipv6.FlagInterface)))
		if err == nil {
			t.s6, err = newRawSender(t.c6)
		}
		if err != nil {
			t.c4.Close()
			t.c6.Close()
			return nil, fmt.Errorf("udp6 socket: %w", err)
		}
	}
	t.wg.Add(1)
	go t.read("udp4", r4)
	if r6 != nil {
		t.wg.Add(1)
		go t.read("udp6", r6)
	}
	if encap != nil {
		encap.SetIKEHandler(func(local, remote netip.AddrPort, msg []byte) {
			t.deliver(Packet{Local: local, Remote: remote, Data: append([]byte(nil), msg...)})
		})
	}
	return t, nil
}

// Port is the IKE port; NATPort the NAT-T port.
func (t *Transport) Port() uint16    { return t.cfg.Port }
func (t *Transport) NATPort() uint16 { return t.cfg.NATPort }

// Packets delivers received datagrams.
func (t *Transport) Packets() <-chan Packet { return t.recv }

// Dropped counts datagrams lost to a full queue.
func (t *Transport) Dropped() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped
}

// SetInline installs f, which the socket readers offer each datagram
// to before queuing it, as long as nothing is queued: f handles it on the
// reader's goroutine and returns true, or returns false (busy) and the
// datagram is queued. It spares an idle receiver the hand-over to another
// goroutine (a thread wake-up per datagram). nil removes it. Datagrams of
// the NAT-T port (the data plane's goroutine) are always queued.
func (t *Transport) SetInline(f func(Packet) bool) {
	if f == nil {
		t.inline.Store(nil)
		return
	}
	t.inline.Store(&f)
}

func (t *Transport) deliver(p Packet) {
	select {
	case t.recv <- p:
	default:
		t.mu.Lock()
		t.dropped++
		t.mu.Unlock()
	}
}

const maxDatagram = 65535

// readBatch is how many datagrams one receive call may return: under a
// burst of handshakes (a gateway after a restart) one recvmmsg instead
// of one recvmsg each; a lone datagram still costs one call.
const readBatch = 16

// read receives one socket's datagrams until it is closed.
func (t *Transport) read(network string, r *rawReader) {
	defer t.wg.Done()
	for {
		n, err := r.read()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				t.log.Error(network+" read failed", "error", err)
			}
			return
		}
		for i := range n {
			data, from, oob, ok := r.datagram(i)
			local, okDst := pktinfoDst(oob)
			if !ok || !okDst {
				continue
			}
			p := Packet{Local: netip.AddrPortFrom(local.Unmap(), t.cfg.Port), Remote: from, Data: append([]byte(nil), data...)}
			if f := t.inline.Load(); f == nil || len(t.recv) > 0 || !(*f)(p) {
				t.deliver(p)
			}
		}
	}
}

// ListenNAT opens the NAT-T port on a local address.
func (t *Transport) ListenNAT(addr netip.Addr) error {
	if t.encap == nil {
		return errors.New("transport: no NAT-T port")
	}
	return t.encap.Listen(netip.AddrPortFrom(addr, t.cfg.NATPort))
}

// Send sends an IKE message from local: port 500 datagrams go out of the
// wildcard socket with local as the source address (IP_PKTINFO), others
// through the NAT-T port with the non-ESP marker.
func (t *Transport) Send(local, remote netip.AddrPort, msg []byte) error {
	if local.Port() != t.cfg.Port {
		if t.encap == nil {
			return errors.New("transport: no NAT-T port")
		}
		return t.encap.SendIKE(local, remote, msg)
	}
	s, src := t.s4, local.Addr().Unmap()
	if remote.Addr().Unmap().Is4() {
		remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	} else {
		if t.c6 == nil {
			return errors.New("transport: no IPv6 socket")
		}
		s, src = t.s6, local.Addr()
	}
	if src.Is4() != remote.Addr().Is4() {
		return fmt.Errorf("transport: cannot send from %s to %s", local, remote)
	}
	t.smu.Lock()
	defer t.smu.Unlock()
	return s.sendTo(msg, pktinfoSrc(t.oob, src), remote)
}

// Close stops the readers.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	if t.encap != nil {
		t.encap.SetIKEHandler(nil)
	}
	t.c4.Close()
	if t.c6 != nil {
		t.c6.Close()
	}
	t.wg.Wait()
	return nil
}
