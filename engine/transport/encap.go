package transport

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// KernelEncap is the NAT-T port when the kernel carries ESP (the xfrm data
// plane): one UDP socket per local address on port 4500 with UDP_ENCAP_ESPINUDP
// set, so the kernel decapsulates ESP-in-UDP (RFC 3948) and hands the socket
// only IKE datagrams, still behind their non-ESP marker.
type KernelEncap struct {
	log     hclog.Logger
	mu      sync.Mutex
	socks   map[netip.AddrPort]*net.UDPConn
	handler func(local, remote netip.AddrPort, msg []byte)
	wg      sync.WaitGroup
	closed  bool
}

// NewKernelEncap returns an empty KernelEncap; Listen opens sockets.
func NewKernelEncap(log hclog.Logger) *KernelEncap {
	return &KernelEncap{log: log.Named("natt"), socks: map[netip.AddrPort]*net.UDPConn{}}
}

// Listen opens local (address:4500) with UDP encapsulation enabled.
func (k *KernelEncap) Listen(local netip.AddrPort) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return errors.New("transport: closed")
	}
	if _, ok := k.socks[local]; ok {
		return nil
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			// setsockopt(fd, SOL_UDP, UDP_ENCAP, UDP_ENCAP_ESPINUDP)
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_ENCAP, unix.UDP_ENCAP_ESPINUDP)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(nil, "udp", local.String())
	if err != nil {
		return fmt.Errorf("listen on %s: %w", local, err)
	}
	c := pc.(*net.UDPConn)
	k.socks[local] = c
	k.wg.Add(1)
	go k.read(local, c)
	return nil
}

func (k *KernelEncap) read(local netip.AddrPort, c *net.UDPConn) {
	defer k.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		// Only IKE reaches the socket; strip the non-ESP marker (RFC 3948 §2.2)
		// and ignore NAT keepalives (a single 0xFF, §2.3).
		if n < 4+28 || buf[0]|buf[1]|buf[2]|buf[3] != 0 {
			continue
		}
		k.mu.Lock()
		h := k.handler
		k.mu.Unlock()
		if h != nil {
			h(local, src, buf[4:n])
		}
	}
}

// SendIKE sends msg with the non-ESP marker from local.
func (k *KernelEncap) SendIKE(local, remote netip.AddrPort, msg []byte) error {
	k.mu.Lock()
	c := k.socks[local]
	k.mu.Unlock()
	if c == nil {
		return fmt.Errorf("transport: no NAT-T socket on %s", local)
	}
	b := make([]byte, 4+len(msg))
	copy(b[4:], msg)
	_, err := c.WriteToUDPAddrPort(b, remote)
	return err
}

// SetIKEHandler sets the receiver of IKE datagrams.
func (k *KernelEncap) SetIKEHandler(h func(local, remote netip.AddrPort, msg []byte)) {
	k.mu.Lock()
	k.handler = h
	k.mu.Unlock()
}

// Close closes every socket.
func (k *KernelEncap) Close() error {
	k.mu.Lock()
	k.closed = true
	for _, c := range k.socks {
		c.Close()
	}
	k.mu.Unlock()
	k.wg.Wait()
	return nil
}
