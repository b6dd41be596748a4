package xfrm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The monitor listens to the XFRM multicast groups ACQUIRE and EXPIRE, like
// `ip xfrm monitor acquire expire`. It subscribes with nl.SubscribeAt rather
// than netlink.XfrmMonitor because the latter (v1.3.1) accepts only EXPIRE,
// cannot be given a namespace, and blocks on its error channel.
type monitor struct {
	s       *nl.NetlinkSocket
	events  chan<- dataplane.Event
	dir     func(uint32, netip.Addr) (dataplane.Direction, bool)
	log     hclog.Logger
	stopped atomic.Bool
	wg      sync.WaitGroup
	dropped atomic.Uint64
}

func startMonitor(ns netns.NsHandle, events chan<- dataplane.Event, dir func(uint32, netip.Addr) (dataplane.Direction, bool), log hclog.Logger) (*monitor, error) {
	s, err := nl.SubscribeAt(ns, netns.None(), unix.NETLINK_XFRM, nl.XFRMNLGRP_ACQUIRE, nl.XFRMNLGRP_EXPIRE)
	if err != nil {
		return nil, &Error{Op: "new", Reason: "subscribe to xfrm acquire/expire notifications", Err: err}
	}
	m := &monitor{s: s, events: events, dir: dir, log: log}
	m.wg.Add(1)
	go m.run()
	return m, nil
}

// stop closes the socket, which wakes the reader, and waits for it.
func (m *monitor) stop() {
	m.stopped.Store(true)
	m.s.Close()
	m.wg.Wait()
}

func (m *monitor) run() {
	defer m.wg.Done()
	for {
		msgs, from, err := m.s.Receive()
		if m.stopped.Load() {
			return
		}
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				// The kernel dropped notifications: the engine's lifetimes
				// (hard time limits) remain its safety net.
				m.log.Warn("xfrm notifications lost", "error", err.Error())
				continue
			}
			m.log.Error("xfrm monitor stopped", "error", err.Error())
			return
		}
		if from.Pid != nl.PidKernel {
			continue
		}
		for _, msg := range msgs {
			m.handle(msg.Header.Type, msg.Data)
		}
	}
}

func (m *monitor) handle(typ uint16, b []byte) {
	now := time.Now()
	switch typ {
	case nl.XFRM_MSG_EXPIRE:
		x, err := parseExpire(b)
		if err != nil {
			m.log.Warn("bad xfrm expire message", "error", err.Error())
			return
		}
		dir, ok := m.dir(x.spi, x.dst)
		if !ok {
			return // not one of ours
		}
		kind := dataplane.SoftExpired
		if x.hard {
			kind = dataplane.HardExpired
		}
		m.emit(dataplane.Event{Kind: kind, SPI: x.spi, Direction: dir, Time: now})
	case nl.XFRM_MSG_ACQUIRE:
		f, err := parseAcquire(b)
		if err != nil {
			m.log.Warn("bad xfrm acquire message", "error", err.Error())
			return
		}
		m.emit(dataplane.Event{Kind: dataplane.Acquire, Direction: dataplane.Out, Flow: f, Time: now})
	}
}

// emit never blocks the netlink reader: a full channel drops the event.
func (m *monitor) emit(e dataplane.Event) {
	select {
	case m.events <- e:
	default:
		m.dropped.Add(1)
		m.log.Warn("data plane event dropped", "kind", e.Kind.String(), "spi", fmt.Sprintf("0x%08x", e.SPI))
	}
}

// Offsets in struct xfrm_usersa_info (<linux/xfrm.h>): sel (56 bytes), then
// id {daddr[16], spi be32, proto}, saddr[16], lft, curlft, stats, seq,
// reqid, family u16 at 212; sizeof 224. struct xfrm_user_expire adds u8 hard.
const (
	usersaID      = 56
	usersaFamily  = 212
	sizeofUsersa  = 224
	sizeofExpire  = sizeofUsersa + 1
	acquireSel    = 40 // struct xfrm_user_acquire: id (24), saddr (16), sel
	sizeofSel     = 56
	minAcquireLen = acquireSel + sizeofSel
)

// ParseError is a malformed kernel message.
type ParseError struct {
	Msg    string // XFRM message type
	Reason string
}

func (e *ParseError) Error() string { return "xfrm: parse " + e.Msg + ": " + e.Reason }

type expire struct {
	spi  uint32
	dst  netip.Addr
	hard bool
}

func addrFrom(b []byte, fam uint16) (netip.Addr, bool) {
	switch fam {
	case unix.AF_INET:
		return netip.AddrFrom4([4]byte(b[:4])), true
	case unix.AF_INET6:
		return netip.AddrFrom16([16]byte(b[:16])), true
	}
	return netip.Addr{}, false
}

// parseExpire decodes struct xfrm_user_expire (XFRM_MSG_EXPIRE).
func parseExpire(b []byte) (expire, error) {
	if len(b) < sizeofExpire {
		return expire{}, &ParseError{Msg: "XFRM_MSG_EXPIRE", Reason: fmt.Sprintf("%d bytes, want %d", len(b), sizeofExpire)}
	}
	fam := binary.NativeEndian.Uint16(b[usersaFamily:])
	dst, ok := addrFrom(b[usersaID:], fam)
	if !ok {
		return expire{}, &ParseError{Msg: "XFRM_MSG_EXPIRE", Reason: fmt.Sprintf("address family %d", fam)}
	}
	return expire{
		spi:  binary.BigEndian.Uint32(b[usersaID+16:]),
		dst:  dst,
		hard: b[sizeofUsersa] != 0,
	}, nil
}

// parseAcquire decodes the flow from struct xfrm_user_acquire's selector:
// daddr[16], saddr[16], dport be16, dport_mask, sport be16, sport_mask,
// family u16, prefixlen_d, prefixlen_s, proto.
func parseAcquire(b []byte) (dataplane.Flow, error) {
	if len(b) < minAcquireLen {
		return dataplane.Flow{}, &ParseError{Msg: "XFRM_MSG_ACQUIRE", Reason: fmt.Sprintf("%d bytes, want at least %d", len(b), minAcquireLen)}
	}
	sel := b[acquireSel : acquireSel+sizeofSel]
	fam := binary.NativeEndian.Uint16(sel[40:])
	dst, ok := addrFrom(sel[0:], fam)
	if !ok {
		return dataplane.Flow{}, &ParseError{Msg: "XFRM_MSG_ACQUIRE", Reason: fmt.Sprintf("address family %d", fam)}
	}
	src, _ := addrFrom(sel[16:], fam)
	return dataplane.Flow{
		Src: src, Dst: dst, Protocol: sel[44],
		DstPort: binary.BigEndian.Uint16(sel[32:]),
		SrcPort: binary.BigEndian.Uint16(sel[36:]),
	}, nil
}
