package userspace

import (
	"net/netip"
	"sync"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/esp"
)

// inElem is one inbound batch: the messages of one ReadBatch on one socket
// and the ESP packets found in them, decrypted in place.
type inElem struct {
	d    *DataPlane
	mu   sync.Mutex // held from SPI lookup until opened
	msgs []rxMsg    // buffers allocated once
	pkts []inPkt
	out  [][]byte // inner packets with inHead bytes of headroom, for the TUN
	turn []ticket // one per SA present, see saEntry.waitTurn

	// Transport-mode packets are rebuilt here, not in place: the ESP header
	// in front of the payload is too short for an IP header and the TUN's.
	// The reader reserves a slot per packet; the slab only grows.
	xbuf []byte
	xlen int
}

type inPkt struct {
	sa    *saEntry
	data  []byte
	inner []byte // with headroom, nil if dropped
	xoff  int    // transport mode: slot in xbuf; -1 in tunnel mode
	next  int32  // the next packet of the same SA in the batch, -1 if none
}

// ticket is the turn of one SA in a batch and its packets there, a list
// through inPkt.next: a batch with packets of many SAs (a gateway's) opens
// each packet once instead of scanning the batch per SA.
type ticket struct {
	sa          *saEntry
	t           uint64
	first, last int32
}

// ikeMsg is an IKE message waiting for the handler.
type ikeMsg struct {
	src netip.AddrPort
	msg []byte
}

func newInElem(d *DataPlane, msgs, size int) *inElem {
	e := &inElem{d: d, msgs: make([]rxMsg, msgs)}
	slab := make([]byte, msgs*size)
	for i := range e.msgs {
		e.msgs[i].buf = slab[i*size : (i+1)*size : (i+1)*size]
	}
	e.pkts = make([]inPkt, 0, inPktsHint)
	e.out = make([][]byte, 0, inPktsHint)
	return e
}

// sockReader is the sequential head of the inbound pipeline for one socket:
// read a batch, sort IKE from ESP, look the SPIs up, queue.
func (p *pipeline) sockReader(s *sock) {
	defer p.readers.Done()
	d := p.d
	var ikes []ikeMsg
	for {
		var e *inElem
		select {
		case e = <-p.inFree:
		case <-p.quit:
			return
		}
		n, err := s.readBatch(e.msgs)
		if err != nil {
			p.inFree <- e
			select {
			case <-p.quit:
			default:
				d.log.Error("socket read failed, reader stopped", "local", s.local, "error", err)
			}
			return
		}
		d.drain.RLock() // released when the batch is done (writer)
		t := d.tab.Load()
		e.pkts, e.out, e.xlen = e.pkts[:0], e.out[:0], 0
		for i := range n {
			m := &e.msgs[i]
			switch {
			case m.trunc:
				d.dd.inc(DropTruncated)
				continue
			case m.bad:
				d.dd.inc(DropMalformed)
				continue
			case s.raw != nil:
				// Plain ESP: the IP payload is the ESP packet, no marker
				// to tell IKE apart (RFC 4303 §2); SPIs 0..255 are reserved.
				body := m.buf[m.start:m.n:m.n]
				if spi, ok := esp.PeekSPI(body); !ok || spi < 256 {
					d.dd.inc(DropMalformed)
					continue
				}
				e.addESP(t, body)
				continue
			}
			for off := m.start; off < m.n; {
				var dg []byte
				dg, off = m.dgram(off)
				kind, body := esp.Classify(dg)
				switch kind {
				case esp.KindKeepalive:
				case esp.KindIKE:
					ikes = append(ikes, ikeMsg{src: m.src, msg: append([]byte(nil), body...)})
				case esp.KindESP:
					e.addESP(t, body)
				default:
					d.dd.inc(DropMalformed)
				}
			}
		}
		if len(e.xbuf) < e.xlen {
			e.xbuf = make([]byte, e.xlen+e.xlen/4)
		}
		if len(e.pkts) == 0 {
			d.drain.RUnlock()
			p.inFree <- e
		} else {
			e.mu.Lock()
			p.orderMu.Lock()
			p.turns(e)
			p.writeQ <- e
			p.work <- e
			p.orderMu.Unlock()
		}
		// Only now, with the batch on its way: the handler may call back
		// into the data plane (DeleteSA waits for queued batches).
		if len(ikes) > 0 {
			if h := d.ike.Load(); h != nil {
				for _, m := range ikes {
					(*h)(s.local, m.src, m.msg)
				}
			}
			clear(ikes)
			ikes = ikes[:0]
		}
	}
}

// addESP looks the SA of an ESP packet up and adds the packet to the batch.
func (e *inElem) addESP(t *tables, body []byte) {
	spi, _ := esp.PeekSPI(body)
	sa, _ := t.in.get(spi)
	if sa == nil {
		e.d.espDrops.Inc(esp.DropUnknownSPI)
		return
	}
	pk := inPkt{sa: sa, data: body, xoff: -1}
	if sa.cfg.Mode == dataplane.Transport {
		pk.xoff = e.xlen
		e.xlen += inHead + ipv6HL + len(body)
	}
	e.pkts = append(e.pkts, pk)
}

// turns hands out one ticket per SA present in the batch and links the
// packets of each SA, in batch order. p.orderMu held: the SAs' ticket
// fields are only used under it.
func (p *pipeline) turns(e *inElem) {
	p.batch++
	e.turn = e.turn[:0]
	for i := range e.pkts {
		pk := &e.pkts[i]
		pk.next = -1
		sa := pk.sa
		if sa.ordBatch != p.batch {
			sa.ordBatch, sa.ordTurn = p.batch, int32(len(e.turn))
			e.turn = append(e.turn, ticket{sa: sa, t: sa.ordNext, first: int32(i), last: int32(i)})
			sa.ordNext++
			continue
		}
		tk := &e.turn[sa.ordTurn]
		e.pkts[tk.last].next = int32(i)
		tk.last = int32(i)
	}
}

// process opens every packet of the batch, SA by SA when their turn comes,
// and checks the inner packets against their SA's selectors (crypto worker).
func (e *inElem) process() {
	d := e.d
	now := time.Now()
	for _, tk := range e.turn {
		tk.sa.waitTurn(tk.t)
		for i := tk.first; i >= 0; i = e.pkts[i].next {
			pk := &e.pkts[i]
			pk.inner = e.open(pk)
		}
		tk.sa.doneTurn()
		d.raiseLimits(tk.sa)
		tk.sa.touch(now)
	}
	for i := range e.pkts {
		if in := e.pkts[i].inner; in != nil {
			e.out = append(e.out, in)
		}
	}
	e.mu.Unlock()
}

// open decrypts one packet; it returns the inner packet with inHead bytes
// of headroom in front, or nil.
func (e *inElem) open(pk *inPkt) []byte {
	inner, nh, err := pk.sa.esp.Open(pk.data) // drops counted by esp
	if err != nil {
		return nil
	}
	var pkt, out []byte
	if pk.xoff >= 0 {
		// Transport mode: IP header rebuilt in front of the payload.
		src, dst := pk.sa.rb.addrs(pk.sa.ep.Load())
		hl := ipHeaderLen(src)
		if hl+len(inner) > maxIPPacket {
			pk.sa.reject(len(inner))
			e.d.dd.inc(DropBadInner)
			return nil
		}
		out = e.xbuf[pk.xoff : pk.xoff+inHead+hl+len(inner)]
		pkt = out[inHead:]
		copy(pkt[hl:], inner)
		putIPHeader(pkt[:hl], src, dst, nh, len(inner))
		if !pk.sa.rb.fromTS {
			fixChecksum(pkt, hl, nh)
		}
	} else {
		// inner is a subslice of data: reuse the bytes before it (ESP
		// header and IV) as the TUN headroom.
		off := cap(pk.data) - cap(inner)
		if off < inHead {
			pk.sa.reject(len(inner))
			e.d.dd.inc(DropBadInner)
			return nil
		}
		pkt, out = inner, pk.data[off-inHead:off+len(inner)]
	}
	if !inboundAllowed(&pk.sa.cfg, pkt) {
		pk.sa.reject(len(inner))
		pk.sa.esp.CountDrop(esp.DropSelectorMismatch)
		return nil
	}
	e.d.observeInbound(pk.sa, pkt)
	return out
}

// writer hands the batches to the TUN in queue order.
func (p *pipeline) writer() {
	defer p.tails.Done()
	for e := range p.writeQ {
		e.mu.Lock()
		if len(e.out) > 0 {
			if err := p.d.tun.Write(e.out, inHead); err != nil {
				select {
				case <-p.quit:
				default:
					p.d.log.Error("tun write failed", "error", err)
				}
			}
		}
		e.mu.Unlock()
		p.d.drain.RUnlock()
		clear(e.pkts)
		clear(e.out)
		clear(e.turn)
		e.pkts, e.out, e.turn = e.pkts[:0], e.out[:0], e.turn[:0]
		p.inFree <- e
	}
}
