package userspace

import (
	"net/netip"
	"sync"
	"time"

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
}

type inPkt struct {
	sa   *saEntry
	data []byte
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
		n, err := s.conn.ReadBatch(e.msgs)
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
		e.pkts, e.out = e.pkts[:0], e.out[:0]
		for i := range n {
			m := &e.msgs[i]
			if m.trunc {
				d.dd.inc(DropTruncated)
				continue
			}
			for off := 0; off < m.n; {
				var dg []byte
				dg, off = m.dgram(off)
				kind, body := esp.Classify(dg)
				switch kind {
				case esp.KindKeepalive:
				case esp.KindIKE:
					ikes = append(ikes, ikeMsg{src: m.src, msg: append([]byte(nil), body...)})
				case esp.KindESP:
					spi, _ := esp.PeekSPI(body)
					sa := t.in[spi]
					if sa == nil {
						d.espDrops.Inc(esp.DropUnknownSPI)
						continue
					}
					e.pkts = append(e.pkts, inPkt{sa: sa, data: body})
				default:
					d.dd.inc(DropMalformed)
				}
			}
		}
		if len(e.pkts) == 0 {
			d.drain.RUnlock()
			p.inFree <- e
		} else {
			e.mu.Lock()
			p.writeQ <- e
			p.work <- e
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

// process opens every packet of the batch and checks the inner packets
// against their SA's selectors (crypto worker).
func (e *inElem) process() {
	d := e.d
	var last *saEntry
	now := time.Now()
	for i := range e.pkts {
		pk := &e.pkts[i]
		inner, _, err := pk.sa.esp.Open(pk.data) // drops counted by esp
		d.raiseLimits(pk.sa)
		if err != nil {
			continue
		}
		if !inboundAllowed(&pk.sa.cfg, inner) {
			pk.sa.esp.CountDrop(esp.DropSelectorMismatch)
			continue
		}
		// inner is a subslice of data: reuse the bytes before it (ESP
		// header and IV) as the TUN headroom.
		off := cap(pk.data) - cap(inner)
		if off < inHead {
			d.dd.inc(DropBadInner)
			continue
		}
		e.out = append(e.out, pk.data[off-inHead:off+len(inner)])
		if pk.sa != last {
			last = pk.sa
			last.touch(now)
		}
	}
	e.mu.Unlock()
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
		e.pkts, e.out = e.pkts[:0], e.out[:0]
		p.inFree <- e
	}
}
