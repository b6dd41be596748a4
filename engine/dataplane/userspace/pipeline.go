package userspace

import (
	"sync"
)

// Sizes of the bounded pipeline (see the package comment).
const (
	outBatch    = 128 // packets per outbound batch (a 64 KiB TSO superpacket of 1400-byte MTU is ~48)
	outHead     = 32  // headroom before an outbound inner packet: ESP header + IV (at most 24)
	outTailRoom = 128 // room after it: TFC padding, padding, trailer, ICV
	inHead      = 16  // headroom kept before a decrypted inner packet: the virtio header fits

	inMsgsGRO   = 8  // messages per inbound batch with UDP GRO (each up to 64 KiB)
	inMsgsPlain = 64 // messages per inbound batch without
	inPktsHint  = 512
)

// job is a batch the crypto workers process.
type job interface{ process() }

// pipeline owns the goroutines and the free lists.
type pipeline struct {
	d *DataPlane

	outFree chan *outElem
	inFree  chan *inElem
	work    chan job
	sendQ   chan *outElem
	writeQ  chan *inElem
	quit    chan struct{}
	orderMu sync.Mutex // inbound tickets and queueing, across socket readers
	batch   uint64     // inbound batches given tickets (orderMu)

	readers sync.WaitGroup // TUN reader and one per socket
	workers sync.WaitGroup
	tails   sync.WaitGroup // sender and TUN writer
	bg      sync.WaitGroup // SA removals after a hard expiry
	started bool
	pending []*sock // sockets opened before start
}

func (p *pipeline) init(d *DataPlane) {
	p.d = d
	nOut := 2*d.cfg.Workers + 2
	nIn := 2*d.cfg.Workers + 2
	p.outFree = make(chan *outElem, nOut)
	p.inFree = make(chan *inElem, nIn)
	p.work = make(chan job, nOut+nIn)
	p.sendQ = make(chan *outElem, nOut)
	p.writeQ = make(chan *inElem, nIn)
	p.quit = make(chan struct{})
	slot := outHead + d.cfg.MTU + outTailRoom
	for range nOut {
		p.outFree <- newOutElem(d, slot)
	}
	msgs, size := inMsgsPlain, d.cfg.MTU+512
	if !d.cfg.DisableOffload {
		msgs, size = inMsgsGRO, maxIPPacket
	}
	for range nIn {
		p.inFree <- newInElem(d, msgs, size)
	}
}

func (p *pipeline) start() {
	d := p.d
	p.started = true
	for range d.cfg.Workers {
		p.workers.Add(1)
		go p.worker()
	}
	p.tails.Add(2)
	go p.sender()
	go p.writer()
	p.readers.Add(1)
	go p.tunReader()
	for _, s := range p.pending {
		p.readers.Add(1)
		go p.sockReader(s)
	}
	p.pending = nil
}

// addReader starts the reader of a new socket (d.mu held).
func (p *pipeline) addReader(s *sock) {
	if !p.started {
		p.pending = append(p.pending, s)
		return
	}
	p.readers.Add(1)
	go p.sockReader(s)
}

// stopping tells the readers that errors from now on mean "closed".
func (p *pipeline) stopping() { close(p.quit) }

// stop runs after stopping and after the TUN and the sockets are closed:
// the readers return, the workers finish what is queued, the tails drain in
// order.
func (p *pipeline) stop() {
	if !p.started {
		return
	}
	p.readers.Wait()
	close(p.work)
	p.workers.Wait()
	close(p.sendQ)
	close(p.writeQ)
	p.tails.Wait()
	p.bg.Wait()
}

func (p *pipeline) worker() {
	defer p.workers.Done()
	for j := range p.work {
		j.process()
	}
}

// expire removes an SA that reached its hard lifetime, off the packet path.
func (p *pipeline) expire(e *saEntry) {
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		d := p.d
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.closed {
			return
		}
		if d.tab.Load().sa(e.cfg.Direction, e.cfg.SPI) == e {
			d.removeLocked(e.cfg.SPI, e.cfg.Direction)
		}
	}()
}
