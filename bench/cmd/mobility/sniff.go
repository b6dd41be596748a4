package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mifsec/mifsec/test/topo"
)

// Protocol numbers and ports an ESP packet is recognised by.
const (
	protoESP  = 50   // RFC 4303
	protoUDP  = 17   // RFC 768
	natTPort  = 4500 // RFC 3948 §2: ESP-in-UDP shares port 4500 with IKE
	ethPAll   = 0x0003
	readLimit = 200 * time.Millisecond // receive timeout: how soon Close is noticed
)

// isESP reports whether an IP packet (no link header) carries ESP: IP
// protocol 50, or UDP to or from port 4500 whose payload does not start
// with the 4-byte non-ESP marker of IKE (RFC 3948 §2.2) and is not a
// one-byte NAT keepalive (RFC 3948 §2.3). Truncated packets are not ESP.
func isESP(pkt []byte) bool {
	if len(pkt) < 1 {
		return false
	}
	var proto byte
	var l4 []byte
	switch pkt[0] >> 4 {
	case 4:
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || len(pkt) < ihl {
			return false
		}
		proto, l4 = pkt[9], pkt[ihl:]
	case 6:
		if len(pkt) < 40 {
			return false
		}
		proto, l4 = pkt[6], pkt[40:] // no extension headers on these paths
	default:
		return false
	}
	switch proto {
	case protoESP:
		return len(l4) >= 8
	case protoUDP:
		if len(l4) < 8 {
			return false
		}
		sport, dport := binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		if sport != natTPort && dport != natTPort {
			return false
		}
		p := l4[8:]
		return len(p) >= 8 && binary.BigEndian.Uint32(p) != 0
	}
	return false
}

// sniffer timestamps the ESP packets a link sends (AF_PACKET, outgoing
// only, kernel time stamps from SO_TIMESTAMPNS), in whichever namespace
// the link lives: the independent witness of which path a flow takes.
type sniffer struct {
	link string
	fd   int
	mu   sync.Mutex
	out  []time.Time // send times of the ESP packets seen so far
	err  error
	stop chan struct{}
	done chan struct{}
}

// sniff starts a sniffer on link inside ns (nil: the caller's namespace).
func sniff(ns *topo.Netns, link string) (*sniffer, error) {
	s := &sniffer{link: link, fd: -1, stop: make(chan struct{}), done: make(chan struct{})}
	open := func() error {
		ifc, err := net.InterfaceByName(link)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(ethPAll)))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		tv := unix.NsecToTimeval(readLimit.Nanoseconds())
		for _, e := range []error{
			unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(ethPAll), Ifindex: ifc.Index}),
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1),
			unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv),
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20),
		} {
			if e != nil {
				unix.Close(fd)
				return e
			}
		}
		s.fd = fd
		return nil
	}
	var err error
	if ns != nil {
		err = ns.Do(open)
	} else {
		err = open()
	}
	if err != nil {
		return nil, fmt.Errorf("sniff %s in %v: %w", link, ns, err)
	}
	go s.loop()
	return s, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (s *sniffer) loop() {
	defer close(s.done)
	buf := make([]byte, 256) // headers suffice: the rest is truncated
	oob := make([]byte, 128)
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		n, oobn, _, from, err := unix.Recvmsg(s.fd, buf, oob, unix.MSG_TRUNC)
		// ENETDOWN: the link went down (reported once); the socket hears
		// the link again when it comes back up.
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) || errors.Is(err, unix.ENETDOWN) {
			continue
		}
		if err != nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			return
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Pkttype != unix.PACKET_OUTGOING || !isESP(buf[:min(n, len(buf))]) {
			continue
		}
		at := stamp(oob[:oobn])
		s.mu.Lock()
		s.out = append(s.out, at)
		s.mu.Unlock()
	}
}

// stamp is the kernel's receive time from SCM_TIMESTAMPNS, or now.
func stamp(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
				ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
				return time.Unix(ts.Unix())
			}
		}
	}
	return time.Now()
}

// Count is the number of ESP packets sent so far.
func (s *sniffer) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.out)
}

// Since counts the ESP packets sent at or after t.
func (s *sniffer) Since(t time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for i := len(s.out) - 1; i >= 0 && !s.out[i].Before(t); i-- {
		n++
	}
	return n
}

// First is the send time of the first ESP packet at or after t.
func (s *sniffer) First(t time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, at := range s.out {
		if !at.Before(t) {
			return at, true
		}
	}
	return time.Time{}, false
}

// Err is the error that stopped the sniffer, if any.
func (s *sniffer) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close stops the sniffer (within readLimit) and releases its socket.
func (s *sniffer) Close() {
	close(s.stop)
	<-s.done
	unix.Close(s.fd)
}
