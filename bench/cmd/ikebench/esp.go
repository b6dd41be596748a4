package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mifsec/mifsec/engine"
)

// firstESP measures, o.espSamples times on fresh connections, the time
// from calling InitiateConnection to the first ESP packet towards the peer
// on the wire: as soon as the call returns a UDP datagram goes to an inner
// address behind the peer (from a socket opened beforehand, as an
// application's would be; retried while the route through the TUN is not
// there yet) and a packet socket on o.sniff sees it leave encrypted. The
// time on the wire is the kernel's timestamp of the packet at that tap
// (SO_TIMESTAMPNS, taken as the veth transmits it); the time the sniffer's
// goroutine got it, later by a thread wake-up, is reported beside it
// (wake_*: the measure before 2026-11-27).
func firstESP(ctx context.Context, o options, e *engine.Engine) error {
	peer := netip.MustParseAddr(o.peer)
	dst, err := netip.ParseAddr(o.espDst)
	if err != nil {
		return fmt.Errorf("-esp-dst: %w", err)
	}
	sn, err := newSniffer(o.sniff, peer)
	if err != nil {
		return err
	}
	defer sn.close()
	app, err := net.ListenUDP("udp", nil)
	if err != nil {
		return err
	}
	defer app.Close()
	time.Sleep(500 * time.Millisecond)
	var lat, wake, ike []time.Duration
	for i := 1; i <= o.espSamples; i++ {
		sn.reset()
		t0 := time.Now()
		if _, err := e.InitiateConnection(ctx, fmt.Sprintf("c%d", i), ""); err != nil {
			return err
		}
		t1 := time.Now()
		if err := sendUntilRouted(ctx, app, dst); err != nil {
			return err
		}
		seen, err := sn.wait(ctx, 2*time.Second)
		if err != nil {
			return fmt.Errorf("sample %d: %w", i, err)
		}
		lat = append(lat, seen.wire.Sub(t0))
		wake = append(wake, seen.read.Sub(t0))
		ike = append(ike, t1.Sub(t0))
		// Leave the next sample a quiet machine: bring the SA down.
		if err := e.TerminateConnection(ctx, fmt.Sprintf("c%d", i)); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	slices.Sort(lat)
	slices.Sort(wake)
	slices.Sort(ike)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Printf("mifsec first_esp samples=%d med_ms=%.3f p90_ms=%.3f min_ms=%.3f max_ms=%.3f initiate_med_ms=%.3f initiate_p90_ms=%.3f wake_med_ms=%.3f wake_p90_ms=%.3f\n",
		len(lat), ms(lat[len(lat)/2]), ms(lat[len(lat)*9/10]), ms(lat[0]), ms(lat[len(lat)-1]),
		ms(ike[len(ike)/2]), ms(ike[len(ike)*9/10]), ms(wake[len(wake)/2]), ms(wake[len(wake)*9/10]))
	return nil
}

// sendUntilRouted sends one UDP datagram from c to dst:9 (discard),
// retrying while there is no route yet (the TUN route comes with the
// Child SA).
func sendUntilRouted(ctx context.Context, c *net.UDPConn, dst netip.Addr) error {
	to := netip.AddrPortFrom(dst, 9)
	for {
		_, err := c.WriteToUDPAddrPort([]byte("ikebench"), to)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// sniffer watches an interface for ESP (IP protocol 50, or UDP to 4500
// without the non-ESP marker) towards peer.
type sniffer struct {
	fd   int
	peer netip.Addr
	seen chan sighting
	stop atomic.Bool
	done chan struct{}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func newSniffer(name string, peer netip.Addr) (*sniffer, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("-sniff: %w", err)
	}
	// Outgoing packets reach only ETH_P_ALL taps (not per-protocol ones).
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// The kernel stamps each packet as the tap gets it: packet(7), socket(7).
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		unix.Close(fd)
		return nil, err
	}
	tv := unix.Timeval{Usec: 100000}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, err
	}
	s := &sniffer{fd: fd, peer: peer, seen: make(chan sighting, 64), done: make(chan struct{})}
	go s.read()
	return s, nil
}

// sighting is when an ESP packet went by: the kernel's stamp at the tap
// (wire) and when this process read it (read).
type sighting struct{ wire, read time.Time }

func (s *sniffer) read() {
	defer close(s.done)
	buf := make([]byte, 2048)
	oob := make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))))
	for !s.stop.Load() {
		n, oobn, _, _, err := unix.Recvmsg(s.fd, buf, oob, 0)
		if err != nil {
			continue
		}
		now := time.Now()
		if !isESPTo(buf[:n], s.peer) {
			continue
		}
		wire, ok := stampOf(oob[:oobn])
		if !ok {
			wire = now
		}
		select {
		case s.seen <- sighting{wire: wire, read: now}:
		default:
		}
	}
}

// stampOf reads the SCM_TIMESTAMPNS control message.
func stampOf(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS &&
			len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			return time.Unix(ts.Unix()), true
		}
	}
	return time.Time{}, false
}

// isESPTo reads an IPv4 packet.
func isESPTo(p []byte, peer netip.Addr) bool {
	if len(p) < 20 || p[0]>>4 != 4 {
		return false
	}
	if netip.AddrFrom4([4]byte(p[16:20])) != peer {
		return false
	}
	hl := int(p[0]&0x0f) * 4
	switch p[9] {
	case unix.IPPROTO_ESP:
		return true
	case unix.IPPROTO_UDP:
		if len(p) < hl+12 {
			return false
		}
		return binary.BigEndian.Uint16(p[hl+2:]) == 4500 && binary.BigEndian.Uint32(p[hl+8:]) != 0
	}
	return false
}

func (s *sniffer) reset() {
	for {
		select {
		case <-s.seen:
		default:
			return
		}
	}
}

func (s *sniffer) wait(ctx context.Context, d time.Duration) (sighting, error) {
	select {
	case t := <-s.seen:
		return t, nil
	case <-time.After(d):
		return sighting{}, errors.New("no ESP packet seen")
	case <-ctx.Done():
		return sighting{}, ctx.Err()
	}
}

func (s *sniffer) close() {
	s.stop.Store(true)
	<-s.done
	unix.Close(s.fd)
}
