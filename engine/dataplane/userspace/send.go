package userspace

import (
	"sync"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/esp"
)

// outElem is one outbound batch: up to outBatch packets read from the TUN,
// each in its own slot with headroom for the ESP header.
type outElem struct {
	d     *DataPlane
	mu    sync.Mutex // held from classification until sealed
	bufs  [][]byte   // slots, allocated once
	sizes []int
	n     int
	pkts  []outPkt
	list  [][]byte // send scratch
}

type outPkt struct {
	sa  *saEntry
	ep  *endpoint
	seq uint64
	nh  uint8
	off int // what is sealed: bufs[i][off:off+n] (the whole packet, or after its IP header)
	n   int
	out []byte // sealed packet, nil if dropped
}

func newOutElem(d *DataPlane, slot int) *outElem {
	e := &outElem{d: d, bufs: make([][]byte, outBatch), sizes: make([]int, outBatch), pkts: make([]outPkt, outBatch)}
	slab := make([]byte, slot*outBatch)
	for i := range e.bufs {
		e.bufs[i] = slab[i*slot : (i+1)*slot : (i+1)*slot]
	}
	e.list = make([][]byte, 0, outBatch)
	return e
}

// tunReader is the sequential head of the outbound pipeline: read a batch,
// classify, pick the SA, take sequence numbers, queue.
func (p *pipeline) tunReader() {
	defer p.readers.Done()
	d := p.d
	bufs := make([][]byte, outBatch) // read views that end before the tail room
	for {
		var e *outElem
		select {
		case e = <-p.outFree:
		case <-p.quit:
			return
		}
		for i := range bufs {
			bufs[i] = e.bufs[i][:len(e.bufs[i])-outTailRoom]
		}
		n, err := d.tun.Read(bufs, e.sizes, outHead)
		if err != nil {
			p.outFree <- e
			select {
			case <-p.quit:
			default:
				d.log.Error("tun read failed, outbound stopped", "error", err)
			}
			return
		}
		e.n = n
		d.drain.RLock() // released when the batch is done (sender)
		p.classify(e)
		e.mu.Lock()
		p.sendQ <- e
		p.work <- e
	}
}

// classify fills e.pkts: policy, steering, SA, sequence number.
func (p *pipeline) classify(e *outElem) {
	d := p.d
	t := d.tab.Load()
	var st dataplane.Steering
	if b := d.steer.Load(); b != nil {
		st = b.s
	}
	var f dataplane.Flow
	for i := range e.n {
		pk := &e.pkts[i]
		*pk = outPkt{}
		inner := e.bufs[i][outHead : outHead+e.sizes[i]]
		hasPorts, ok := parseFlow(inner, &f)
		if !ok {
			d.dd.inc(DropMalformed)
			continue
		}
		pe := t.lookupPolicy(&f, hasPorts)
		if pe == nil {
			d.dd.inc(DropNoPolicy)
			continue
		}
		if pe.p.Action != dataplane.Protect {
			d.dd.inc(DropPolicyDiscard)
			continue
		}
		sa := t.pickSA(st, &f, pe)
		if sa == nil {
			d.dd.inc(DropNoSA)
			p.acquire(pe, &f)
			continue
		}
		off, n, nh := 0, len(inner), esp.NextHeaderIPv4
		if sa.cfg.Mode == dataplane.Transport {
			var ok bool
			if off, n, nh, ok = transportSplit(inner); !ok {
				sa.dd.inc(DropFragment)
				continue
			}
		} else if inner[0]>>4 == 6 {
			nh = esp.NextHeaderIPv6 // tunnel mode, RFC 4303 §2.3
		}
		seq, err := sa.esp.NextSeq() // counted by esp on failure
		d.raiseLimits(sa)
		if err != nil {
			continue
		}
		pk.sa, pk.ep, pk.seq = sa, sa.ep.Load(), seq
		pk.nh, pk.off, pk.n = nh, outHead+off, n
	}
}

// acquire reports a flow without an SA, at most once a second per policy.
func (p *pipeline) acquire(pe *polEntry, f *dataplane.Flow) {
	now := time.Now().UnixNano()
	last := pe.lastAcquire.Load()
	if now-last < int64(time.Second) || !pe.lastAcquire.CompareAndSwap(last, now) {
		return
	}
	p.d.emit(dataplane.Acquire, 0, dataplane.Out, *f)
}

// process seals every packet of the batch in place (crypto worker).
func (e *outElem) process() {
	for i := range e.n {
		pk := &e.pkts[i]
		if pk.sa == nil {
			continue
		}
		head, _ := pk.sa.esp.Overhead()
		out, err := pk.sa.esp.SealInPlace(e.bufs[i][pk.off-head:], pk.n, pk.nh, pk.seq)
		if err == nil {
			pk.out = out
		}
		e.d.raiseLimits(pk.sa)
	}
	e.mu.Unlock()
}

// sender writes the batches out in queue order: per-SA order is kept.
// Consecutive packets to one endpoint leave in one Send (GSO/sendmmsg).
func (p *pipeline) sender() {
	defer p.tails.Done()
	for e := range p.sendQ {
		e.mu.Lock()
		now := time.Now()
		var cur *endpoint
		var curSA *saEntry
		e.list = e.list[:0]
		for i := range e.n {
			pk := &e.pkts[i]
			if pk.out == nil {
				continue
			}
			if pk.ep != cur {
				p.send(cur, curSA, e.list)
				e.list = e.list[:0]
				cur = pk.ep
			}
			if pk.sa != curSA {
				curSA = pk.sa
				curSA.touch(now)
			}
			e.list = append(e.list, pk.out)
		}
		p.send(cur, curSA, e.list)
		e.mu.Unlock()
		p.d.drain.RUnlock()
		clear(e.list[:cap(e.list)])
		e.list = e.list[:0]
		p.outFree <- e
	}
}

func (p *pipeline) send(ep *endpoint, sa *saEntry, pkts [][]byte) {
	if ep == nil || len(pkts) == 0 {
		return
	}
	if err := ep.sock.send(ep, pkts); err != nil {
		sa.dd[DropSendError].Add(uint64(len(pkts)))
		p.d.log.Debug("send failed", "remote", ep.remote, "error", err)
	}
}
