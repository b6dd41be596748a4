// Package mif holds the end-to-end tests of the multiple-interfaces issue
// (MOBIKE, multipath IKE SAs, flow steering between RAN and WLAN,
// migration) in the namespaces of test/topo, and the sequenced UDP flow
// they measure with: a sender paced at a fixed rate and a receiver that
// counts loss, duplicates, reordering and outages. bench/cmd/mobility uses
// the same flow.
//
// It is test support: nothing outside test/ and bench/ imports it.
package mif

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/mifsec/mifsec/test/topo"
)

// Every datagram of a flow starts with this header (big endian):
// magic (4), flow id (4), sequence number (8, from 1), send time (8, Unix ns).
const (
	flowMagic  = 0x6d696673 // "mifs"
	headerLen  = 24
	defaultLen = 160 // a voice frame
)

// FlowOptions configure a sender.
type FlowOptions struct {
	Src  netip.AddrPort // bound source (the inner address); port 0 = any
	Dst  netip.AddrPort // the receiver
	ID   uint32         // flow id carried in every datagram
	Rate int            // datagrams per second; 1000 when 0
	Size int            // datagram payload bytes; 160 when 0, at least 24
}

// Arrival is one datagram as the receiver saw it.
type Arrival struct {
	Seq        uint64
	Sent, Recv time.Time
}

// Receiver collects the datagrams of the flows sent to it.
type Receiver struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  map[uint32][]Arrival // by flow id, in arrival order
	bad  int
	done chan struct{}
}

// Listen opens a receiver on addr inside ns (nil: the caller's namespace).
func Listen(ns *topo.Netns, addr netip.AddrPort) (*Receiver, error) {
	var conn *net.UDPConn
	open := func() (err error) {
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	}
	var err error
	if ns != nil {
		err = ns.Do(open)
	} else {
		err = open()
	}
	if err != nil {
		return nil, fmt.Errorf("mif: listen %s in %v: %w", addr, ns, err)
	}
	_ = conn.SetReadBuffer(4 << 20)
	r := &Receiver{conn: conn, got: map[uint32][]Arrival{}, done: make(chan struct{})}
	go r.loop()
	return r, nil
}

// Addr is the address the receiver listens on.
func (r *Receiver) Addr() netip.AddrPort { return r.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (r *Receiver) loop() {
	defer close(r.done)
	buf := make([]byte, 65536)
	for {
		n, err := r.conn.Read(buf)
		if err != nil {
			return
		}
		now := time.Now()
		if n < headerLen || binary.BigEndian.Uint32(buf) != flowMagic {
			r.mu.Lock()
			r.bad++
			r.mu.Unlock()
			continue
		}
		id := binary.BigEndian.Uint32(buf[4:])
		a := Arrival{Seq: binary.BigEndian.Uint64(buf[8:]), Recv: now,
			Sent: time.Unix(0, int64(binary.BigEndian.Uint64(buf[16:])))}
		r.mu.Lock()
		r.got[id] = append(r.got[id], a)
		r.mu.Unlock()
	}
}

// Close stops the receiver.
func (r *Receiver) Close() error {
	err := r.conn.Close()
	<-r.done
	return err
}

// Arrivals returns a copy of what flow id delivered so far.
func (r *Receiver) Arrivals(id uint32) []Arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got[id])
}

// Stats of flow id, given how many datagrams its sender sent.
func (r *Receiver) Stats(id uint32, sent uint64) Stats { return Analyze(r.Arrivals(id), sent) }

// Sender is a running paced flow.
type Sender struct {
	opts   FlowOptions
	conn   *net.UDPConn
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	sent   uint64
	times  []time.Time // send time of each sequence number, from 1
	errs   uint64
	first  error
}

// StartFlow opens a socket in ns (nil: the caller's namespace) and sends
// opts.Rate datagrams per second until Stop or until ctx ends. Send errors
// (no route while a link is down) are counted, not fatal: the sequence
// number still advances, so the receiver sees them as lost.
func StartFlow(ctx context.Context, ns *topo.Netns, opts FlowOptions) (*Sender, error) {
	if opts.Rate <= 0 {
		opts.Rate = 1000
	}
	if opts.Size == 0 {
		opts.Size = defaultLen
	}
	if opts.Size < headerLen {
		return nil, fmt.Errorf("mif: flow size %d below the %d-byte header", opts.Size, headerLen)
	}
	if !opts.Dst.IsValid() {
		return nil, errors.New("mif: flow without a destination")
	}
	var conn *net.UDPConn
	dial := func() (err error) {
		var laddr *net.UDPAddr
		if opts.Src.IsValid() {
			laddr = net.UDPAddrFromAddrPort(opts.Src)
		}
		conn, err = net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(opts.Dst))
		return err
	}
	var err error
	if ns != nil {
		err = ns.Do(dial)
	} else {
		err = dial()
	}
	if err != nil {
		return nil, fmt.Errorf("mif: flow socket %s→%s in %v: %w", opts.Src, opts.Dst, ns, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Sender{opts: opts, conn: conn, cancel: cancel, done: make(chan struct{})}
	go s.loop(ctx)
	return s, nil
}

// Src is the flow's source address as bound.
func (s *Sender) Src() netip.AddrPort { return s.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// loop paces by the clock: it sends every datagram that is due, so the
// average rate holds even when the timer fires late.
func (s *Sender) loop(ctx context.Context) {
	defer close(s.done)
	iv := time.Second / time.Duration(s.opts.Rate)
	buf := make([]byte, s.opts.Size)
	binary.BigEndian.PutUint32(buf, flowMagic)
	binary.BigEndian.PutUint32(buf[4:], s.opts.ID)
	start := time.Now()
	var seq uint64
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		due := uint64(time.Since(start)/iv) + 1
		for ; seq < due; seq++ {
			binary.BigEndian.PutUint64(buf[8:], seq+1)
			now := time.Now()
			binary.BigEndian.PutUint64(buf[16:], uint64(now.UnixNano()))
			_, err := s.conn.Write(buf)
			s.mu.Lock()
			s.sent = seq + 1
			s.times = append(s.times, now)
			if err != nil {
				s.errs++
				if s.first == nil {
					s.first = err
				}
			}
			s.mu.Unlock()
		}
		t.Reset(start.Add(time.Duration(due) * iv).Sub(time.Now()))
	}
}

// Sent is the number of datagrams sent so far (the last sequence number).
func (s *Sender) Sent() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

// SentAt is when sequence number seq was sent (zero if it was not).
func (s *Sender) SentAt(seq uint64) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq == 0 || seq > uint64(len(s.times)) {
		return time.Time{}
	}
	return s.times[seq-1]
}

// Stop stops sending and returns how many datagrams were sent, how many
// of them the kernel refused, and the first refusal.
func (s *Sender) Stop() (sent, sendErrors uint64, first error) {
	s.cancel()
	<-s.done
	s.conn.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent, s.errs, s.first
}

// Stats is what a receiver saw of one flow.
type Stats struct {
	Sent       uint64 // datagrams sent (sequence numbers 1..Sent)
	Received   uint64 // distinct sequence numbers received
	Lost       uint64 // Sent - Received
	Duplicates uint64 // extra copies of a sequence number already received
	// Reordered counts datagrams that arrived after one with a higher
	// sequence number; MaxReorder is the largest such distance.
	Reordered  uint64
	MaxReorder uint64
	// MaxGap is the longest time between two consecutive arrivals, and
	// GapAfter the sequence number received just before it.
	MaxGap   time.Duration
	GapAfter uint64
	// MaxLossRun is the longest run of consecutive lost sequence numbers.
	MaxLossRun uint64
}

// Analyze computes the stats of one flow from its arrivals (in arrival
// order) and the number of datagrams sent.
func Analyze(arr []Arrival, sent uint64) Stats {
	st := Stats{Sent: sent}
	seen := make(map[uint64]bool, len(arr))
	var high uint64
	var last time.Time
	for _, a := range arr {
		if seen[a.Seq] {
			st.Duplicates++
			continue
		}
		seen[a.Seq] = true
		st.Received++
		if a.Seq < high {
			st.Reordered++
			st.MaxReorder = max(st.MaxReorder, high-a.Seq)
		}
		high = max(high, a.Seq)
		if !last.IsZero() && a.Recv.Sub(last) > st.MaxGap {
			st.MaxGap, st.GapAfter = a.Recv.Sub(last), high
		}
		last = a.Recv
	}
	if sent > st.Received {
		st.Lost = sent - st.Received
	}
	var run uint64
	for q := uint64(1); q <= sent; q++ {
		if seen[q] {
			run = 0
			continue
		}
		run++
		st.MaxLossRun = max(st.MaxLossRun, run)
	}
	return st
}

func (s Stats) String() string {
	return fmt.Sprintf("sent %d received %d lost %d (longest run %d) duplicates %d reordered %d (max distance %d) longest gap %v",
		s.Sent, s.Received, s.Lost, s.MaxLossRun, s.Duplicates, s.Reordered, s.MaxReorder, s.MaxGap.Round(time.Microsecond))
}

// Missing lists the sequence numbers 1..sent that never arrived.
func Missing(arr []Arrival, sent uint64) []uint64 {
	seen := make(map[uint64]bool, len(arr))
	for _, a := range arr {
		seen[a.Seq] = true
	}
	var out []uint64
	for q := uint64(1); q <= sent; q++ {
		if !seen[q] {
			out = append(out, q)
		}
	}
	return out
}

// Resumed is the first arrival of a datagram sent at or after t: the
// first that can only have taken a path still working after t. ok is
// false when none arrived.
func Resumed(arr []Arrival, t time.Time) (a Arrival, ok bool) {
	for _, x := range arr {
		if !x.Sent.Before(t) {
			return x, true
		}
	}
	return Arrival{}, false
}

// WaitSent polls until the sender sent at least n datagrams past the
// count at the call, or ctx ends.
func (s *Sender) WaitSent(ctx context.Context, n uint64) error {
	target := s.Sent() + n
	for s.Sent() < target {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// Drain waits until the receiver got nothing new of flow id for quiet,
// bounded by ctx: the datagrams still in flight have arrived.
func (r *Receiver) Drain(ctx context.Context, id uint32, quiet time.Duration) {
	n := len(r.Arrivals(id))
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(quiet):
		}
		m := len(r.Arrivals(id))
		if m == n {
			return
		}
		n = m
	}
}
