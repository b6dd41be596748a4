package topo

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// ICMP echo (RFC 792) over a raw socket opened inside the namespace, so
// that loss, duplicates and outages are counted exactly, without iputils.

const (
	icmpEchoReply   = 0
	icmpEchoRequest = 8
	echoHeaderLen   = 8
	// payload: 8-byte sequence counter, 8-byte send time, then padding
	echoPayloadMin = 16
)

// PingOptions configure a ping flow.
type PingOptions struct {
	Src   netip.Addr    // source address to bind (like ping -I); zero = by route
	Dst   netip.Addr    // required
	Rate  int           // packets per second; 10 when 0
	Count int           // stop after Count packets; 0 = until Stop
	Size  int           // ICMP payload bytes; 56 when 0, at least 16
	Grace time.Duration // how long Stop waits for late replies; 1 s when 0
}

// PingStats is what a ping flow saw.
type PingStats struct {
	Sent       int           // echo requests handed to the socket
	SendErrors int           // requests the kernel refused (no route, ...), counted in Sent
	Received   int           // distinct requests answered
	Lost       int           // Sent - Received
	Duplicates int           // extra replies to an already answered request
	MinRTT     time.Duration // over distinct replies
	AvgRTT     time.Duration
	MaxRTT     time.Duration
	MaxLossRun int           // longest run of consecutive unanswered requests
	Outage     time.Duration // MaxLossRun × interval: the longest gap in service
	Interval   time.Duration
}

func (s PingStats) String() string {
	return fmt.Sprintf("sent %d (send errors %d), received %d, lost %d, dup %d, rtt min/avg/max %v/%v/%v, longest loss run %d (%v)",
		s.Sent, s.SendErrors, s.Received, s.Lost, s.Duplicates, s.MinRTT, s.AvgRTT, s.MaxRTT, s.MaxLossRun, s.Outage)
}

// Ping is a running ping flow.
type Ping struct {
	conn     *net.IPConn
	dst      *net.IPAddr
	id       uint16
	opts     PingOptions
	interval time.Duration

	stopSend chan struct{}
	sendDone chan struct{}
	recvDone chan struct{}
	stopOnce sync.Once

	mu       sync.Mutex
	sent     int
	sendErrs int
	got      []uint16 // replies per request index
	rtts     []time.Duration
	stats    *PingStats
}

// StartPing starts sending echo requests from inside the namespace at
// opts.Rate per second. Stop (or Wait when Count is set) returns the stats.
// ctx bounds the whole flow: when it ends, sending stops.
func (n *Netns) StartPing(ctx context.Context, opts PingOptions) (*Ping, error) {
	if !opts.Dst.Is4() {
		return nil, fmt.Errorf("topo: ping: destination %v is not IPv4", opts.Dst)
	}
	if opts.Rate <= 0 {
		opts.Rate = 10
	}
	if opts.Size == 0 {
		opts.Size = 56
	}
	if opts.Size < echoPayloadMin {
		return nil, fmt.Errorf("topo: ping: payload of %d bytes, at least %d needed", opts.Size, echoPayloadMin)
	}
	if opts.Grace <= 0 {
		opts.Grace = time.Second
	}
	var laddr *net.IPAddr
	if opts.Src.IsValid() {
		laddr = &net.IPAddr{IP: opts.Src.AsSlice()}
	}
	var conn *net.IPConn
	err := n.Do(func() error {
		var err error
		conn, err = net.ListenIP("ip4:icmp", laddr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("topo: ping in %s: %w", n.name, err)
	}
	var idb [2]byte
	rand.Read(idb[:])
	p := &Ping{
		conn:     conn,
		dst:      &net.IPAddr{IP: opts.Dst.AsSlice()},
		id:       binary.BigEndian.Uint16(idb[:]),
		opts:     opts,
		interval: time.Second / time.Duration(opts.Rate),
		stopSend: make(chan struct{}),
		sendDone: make(chan struct{}),
		recvDone: make(chan struct{}),
	}
	go p.receive()
	go p.send(ctx)
	return p, nil
}

// Ping sends opts.Count (default 5) requests and returns the stats.
func (n *Netns) Ping(ctx context.Context, opts PingOptions) (PingStats, error) {
	if opts.Count == 0 {
		opts.Count = 5
	}
	p, err := n.StartPing(ctx, opts)
	if err != nil {
		return PingStats{}, err
	}
	return p.Wait(), nil
}

func (p *Ping) send(ctx context.Context) {
	defer close(p.sendDone)
	t := time.NewTicker(p.interval)
	defer t.Stop()
	buf := make([]byte, echoHeaderLen+p.opts.Size)
	for seq := 0; p.opts.Count == 0 || seq < p.opts.Count; seq++ {
		if seq > 0 {
			select {
			case <-t.C:
			case <-p.stopSend:
				return
			case <-ctx.Done():
				return
			}
		}
		p.mu.Lock()
		p.got = append(p.got, 0)
		p.rtts = append(p.rtts, 0)
		p.mu.Unlock()
		buf[0], buf[1] = icmpEchoRequest, 0
		buf[2], buf[3] = 0, 0
		binary.BigEndian.PutUint16(buf[4:], p.id)
		binary.BigEndian.PutUint16(buf[6:], uint16(seq))
		binary.BigEndian.PutUint64(buf[8:], uint64(seq))
		binary.BigEndian.PutUint64(buf[16:], uint64(time.Now().UnixNano()))
		binary.BigEndian.PutUint16(buf[2:], checksum(buf))
		_, err := p.conn.WriteTo(buf, p.dst)
		p.mu.Lock()
		p.sent++
		if err != nil {
			p.sendErrs++
		}
		p.mu.Unlock()
	}
}

func (p *Ping) receive() {
	defer close(p.recvDone)
	buf := make([]byte, 65536)
	for {
		n, from, err := p.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return
			}
			continue
		}
		now := time.Now()
		m := buf[:n]
		if n < echoHeaderLen+echoPayloadMin || m[0] != icmpEchoReply || m[1] != 0 ||
			binary.BigEndian.Uint16(m[4:]) != p.id || checksum(m) != 0 {
			continue
		}
		if ip, ok := from.(*net.IPAddr); !ok || !ip.IP.Equal(p.dst.IP) {
			continue
		}
		idx := binary.BigEndian.Uint64(m[8:])
		sentAt := time.Unix(0, int64(binary.BigEndian.Uint64(m[16:])))
		p.mu.Lock()
		if idx < uint64(len(p.got)) {
			p.got[idx]++
			if p.got[idx] == 1 {
				p.rtts[idx] = now.Sub(sentAt)
			}
		}
		p.mu.Unlock()
	}
}

// Stop stops sending, waits up to Grace for outstanding replies and
// returns the stats. It may be called more than once.
func (p *Ping) Stop() PingStats {
	p.stopOnce.Do(func() {
		close(p.stopSend)
		<-p.sendDone
		// Wait for outstanding replies, no longer than Grace.
		deadline := time.Now().Add(p.opts.Grace)
		for time.Now().Before(deadline) && !p.allAnswered() {
			time.Sleep(5 * time.Millisecond)
		}
		p.conn.SetReadDeadline(time.Now())
		<-p.recvDone
		p.conn.Close()
		s := p.compute()
		p.mu.Lock()
		p.stats = &s
		p.mu.Unlock()
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	return *p.stats
}

// Wait waits until Count requests were sent (or ctx of StartPing ended),
// then stops as Stop does.
func (p *Ping) Wait() PingStats {
	<-p.sendDone
	return p.Stop()
}

func (p *Ping) allAnswered() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; i < p.sent; i++ {
		if p.got[i] == 0 {
			return false
		}
	}
	return true
}

func (p *Ping) compute() PingStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := PingStats{Sent: p.sent, SendErrors: p.sendErrs, Interval: p.interval}
	var sum time.Duration
	run := 0
	for i := 0; i < p.sent; i++ {
		if p.got[i] == 0 {
			run++
			if run > s.MaxLossRun {
				s.MaxLossRun = run
			}
			continue
		}
		run = 0
		s.Received++
		s.Duplicates += int(p.got[i]) - 1
		rtt := p.rtts[i]
		sum += rtt
		if s.MinRTT == 0 || rtt < s.MinRTT {
			s.MinRTT = rtt
		}
		if rtt > s.MaxRTT {
			s.MaxRTT = rtt
		}
	}
	s.Lost = s.Sent - s.Received
	if s.Received > 0 {
		s.AvgRTT = sum / time.Duration(s.Received)
	}
	s.Outage = time.Duration(s.MaxLossRun) * p.interval
	return s
}

// checksum is the Internet checksum (RFC 1071) of b.
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = (sum >> 16) + (sum & 0xffff)
	}
	return ^uint16(sum)
}
