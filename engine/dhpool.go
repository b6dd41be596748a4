package engine

import (
	"io"
	"sync"
	"time"

	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/sa"
	"github.com/mifsec/mifsec/engine/transform"
)

// dhPoolSize is how many pairs per group wait ready: enough for a burst of
// IKE_SA_INIT requests while the worker catches up.
const dhPoolSize = 32

// DefaultDHReuse is how long one D-H pair answers IKE_SA_INIT requests
// (Config.DHReuse, mifsecd --dh-reuse). RFC 7296 §2.12 lets an endpoint
// reuse its exponential "for multiple connection setups"; the cost is that
// an IKE SA set up and closed within the pair's lifetime loses perfect
// forward secrecy against someone who reads the gateway's memory before
// the pair is cleared. A pair lives for this period and until the
// exchanges that took it compute their shared secret (at once, on the
// responder): about a second, a span in which such a reader also finds
// the keys of every IKE SA still up. It halves the responder's scalar
// multiplications per handshake.
const DefaultDHReuse = time.Second

// DHReuseFlag maps a daemon's --dh-reuse value (0 = never) to
// Config.DHReuse (0 = the default, negative = never).
func DHReuseFlag(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// dhPool hands out D-H pairs made ahead of time by a worker goroutine:
// generating a pair is a scalar multiplication (X25519, ECP) or a modular
// exponentiation (MODP), the largest part of IKE_SA_INIT's CPU, and it
// then runs beside the state goroutine instead of on it (DESIGN.md §3).
// A group is stocked once it was asked for; a miss makes the pair inline.
// IKE_SA_INIT responses take handles of one shared pair per group for
// the reuse period (InitResponderDH); every other exchange gets a fresh
// pair (GenerateDH).
type dhPool struct {
	size  int
	reuse time.Duration // 0: no reuse
	now   func() time.Time
	mu    sync.Mutex
	ready map[ike.GroupID][]*transform.DHKey
	// shared is the pair IKE_SA_INIT responses of each group take now.
	shared map[ike.GroupID]sharedPair
	expiry *time.Timer // retires shared pairs once idle for their period
	want   chan ike.GroupID
	quit   chan struct{}
	done   chan struct{}
	run    bool
}

type sharedPair struct {
	pair  *transform.SharedDH
	since time.Time
}

// newDHPool: reuse as Config.DHReuse (0 = DefaultDHReuse, negative = never).
func newDHPool(size int, reuse time.Duration) *dhPool {
	switch {
	case reuse == 0:
		reuse = DefaultDHReuse
	case reuse < 0:
		reuse = 0
	}
	return &dhPool{size: size, reuse: reuse, now: time.Now, ready: map[ike.GroupID][]*transform.DHKey{},
		shared: map[ike.GroupID]sharedPair{}, want: make(chan ike.GroupID, 16),
		quit: make(chan struct{}), done: make(chan struct{})}
}

// dhSource is what sa.Config.DH gets: the pool, or nil (inline).
func (rt *runtime) dhSource() sa.DHSource {
	if rt.dh == nil {
		return nil
	}
	return rt.dh
}

// GenerateDH implements sa.DHSource. rng is ignored for pooled pairs
// (they come from crypto/rand, as rng does whenever the pool exists).
func (p *dhPool) GenerateDH(g ike.GroupID, rng io.Reader) (*transform.DHKey, error) {
	p.mu.Lock()
	keys := p.ready[g]
	var k *transform.DHKey
	n := len(keys)
	if n > 0 {
		k, keys[n-1] = keys[n-1], nil
		p.ready[g] = keys[:n-1]
		n--
	}
	p.mu.Unlock()
	// The worker is woken once half the stock is gone, not for every
	// pair: at one handshake at a time, waking its thread per pair cost
	// about as much as the pair itself.
	if n <= p.size/2 {
		select {
		case p.want <- g:
		default: // a refill is already asked for
		}
	}
	if k != nil {
		return k, nil
	}
	return transform.GenerateDH(g, rng)
}

// InitResponderDH implements sa.ReusingDHSource: a handle of the group's
// shared pair while it is younger than the reuse period, else of a new
// one (RFC 7296 §2.12).
func (p *dhPool) InitResponderDH(g ike.GroupID, rng io.Reader) (*transform.DHKey, error) {
	if p.reuse <= 0 {
		return p.GenerateDH(g, rng)
	}
	now := p.now()
	p.mu.Lock()
	if c, ok := p.shared[g]; ok {
		if now.Sub(c.since) < p.reuse {
			if h, ok := c.pair.Handle(); ok {
				p.mu.Unlock()
				return h, nil
			}
		}
		c.pair.Retire()
		delete(p.shared, g)
	}
	p.mu.Unlock()
	k, err := p.GenerateDH(g, rng)
	if err != nil {
		return nil, err
	}
	pair := transform.ShareDH(k)
	h, _ := pair.Handle()
	p.mu.Lock()
	if c, ok := p.shared[g]; ok { // another caller shared one meanwhile
		c.pair.Retire()
	}
	p.shared[g] = sharedPair{pair: pair, since: now}
	if p.expiry == nil {
		p.expiry = time.AfterFunc(p.reuse, p.expire)
	} else {
		p.expiry.Reset(p.reuse)
	}
	p.mu.Unlock()
	return h, nil
}

// expire retires the shared pairs whose period is over, so an idle
// gateway keeps none past it.
func (p *dhPool) expire() {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	var next time.Duration
	for g, c := range p.shared {
		if left := p.reuse - now.Sub(c.since); left > 0 {
			if next == 0 || left < next {
				next = left
			}
			continue
		}
		c.pair.Retire()
		delete(p.shared, g)
	}
	if next > 0 && p.expiry != nil {
		p.expiry.Reset(next)
	}
}

// start runs the worker until stop.
func (p *dhPool) start() {
	p.run = true
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.quit:
				return
			case g := <-p.want:
				p.fill(g)
			}
		}
	}()
}

// fill tops group g up; it gives up on groups it cannot make.
func (p *dhPool) fill(g ike.GroupID) {
	for {
		p.mu.Lock()
		n := len(p.ready[g])
		p.mu.Unlock()
		if n >= p.size {
			return
		}
		select {
		case <-p.quit:
			return
		default:
		}
		k, err := transform.GenerateDH(g, nil)
		if err != nil {
			return
		}
		p.mu.Lock()
		p.ready[g] = append(p.ready[g], k)
		p.mu.Unlock()
	}
}

// stop ends the worker, destroys the pairs nobody took and retires the
// shared ones (cleared once the exchanges holding them are done).
func (p *dhPool) stop() {
	if p.run {
		close(p.quit)
		<-p.done
		p.run = false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.expiry != nil {
		p.expiry.Stop()
	}
	for g, keys := range p.ready {
		for _, k := range keys {
			k.Destroy()
		}
		delete(p.ready, g)
	}
	for g, c := range p.shared {
		c.pair.Retire()
		delete(p.shared, g)
	}
}
