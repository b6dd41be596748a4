package engine

import (
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/mifsec/mifsec/engine/config"
)

// persistedLeases is leases.json: the pools' leases, apart from the
// configuration document so that writing them (every second while they
// change, all of them each time) does not hold the state: the state
// goroutine copies them and a writer goroutine encodes and syncs the file.
// A lease lost to a crash only means the identity may get another address
// (RFC 7296 §2.19 makes no promise).
type persistedLeases struct {
	Version int                `json:"version"`
	Pools   map[string][]Lease `json:"pools"`
}

// leaseWriter writes lease snapshots to leases.json, newest first: a
// snapshot that arrives while one is written replaces any still waiting.
type leaseWriter struct {
	store *config.Store
	log   hclog.Logger
	save  func(v any) error // store.Save; tests slow it down

	mu      sync.Mutex
	next    *persistedLeases
	kick    chan struct{}
	quit    chan struct{}
	done    chan struct{}
	started bool
	stopped bool
}

func newLeaseWriter(store *config.Store, log hclog.Logger) *leaseWriter {
	return &leaseWriter{store: store, log: log, save: store.SaveCompact, kick: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{})}
}

func (w *leaseWriter) start() {
	w.started = true
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.quit:
				return
			case <-w.kick:
				w.writeNext()
			}
		}
	}()
}

// submit queues p to be written; a snapshot still waiting is dropped.
// After stop, p is written at once.
func (w *leaseWriter) submit(p *persistedLeases) {
	w.mu.Lock()
	w.next = p
	stopped := w.stopped
	w.mu.Unlock()
	if stopped || !w.started {
		w.writeNext()
		return
	}
	select {
	case w.kick <- struct{}{}:
	default: // the writer is already asked
	}
}

func (w *leaseWriter) writeNext() {
	w.mu.Lock()
	p := w.next
	w.next = nil
	w.mu.Unlock()
	if p == nil {
		return
	}
	if err := w.save(p); err != nil {
		w.log.Warn("could not persist leases", "error", err, "path", w.store.Path())
	}
}

// stop ends the writer after it wrote what waits; later snapshots are
// written by their submitter.
func (w *leaseWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	if w.started {
		close(w.quit)
		<-w.done
		w.started = false
	}
	w.writeNext()
}

// leaseSnapshot copies every pool's leases (values: the writer encodes
// them while the state goes on).
func (st *state) leaseSnapshot() *persistedLeases {
	p := &persistedLeases{Version: persistVersion, Pools: make(map[string][]Lease, len(st.pools))}
	for _, id := range slices.Sorted(maps.Keys(st.pools)) {
		pl := st.pools[id]
		ls := make([]Lease, 0, len(pl.leases))
		for _, l := range pl.leases {
			ls = append(ls, *l)
		}
		slices.SortFunc(ls, func(a, b Lease) int { return a.Addr.Compare(b.Addr) })
		p.Pools[id] = ls
	}
	return p
}

// restoreLeases puts the leases of leases.json into the restored pools
// (they replace leases an older version kept in config.json); leases of
// pools that are gone, or outside their pool's ranges now, are dropped.
// Without leases.json, leases read from config.json are written to it
// soon.
func (st *state) restoreLeases(legacy bool) error {
	var p persistedLeases
	found, err := st.e.leaseStore.Load(&p)
	if err != nil {
		return err
	}
	if !found {
		if legacy {
			st.leaseChanged()
		}
		return nil
	}
	for id, pl := range st.pools {
		pl.leases, pl.byAddr = map[leaseKey]*Lease{}, map[netip.Addr]*Lease{}
		for _, l := range p.Pools[id] {
			if !l.Addr.IsValid() || !slices.ContainsFunc(pl.ranges, func(r addrRange) bool { return r.contains(l.Addr) }) {
				continue
			}
			l.Online, l.holders = false, 0
			pl.leases[leaseKey{l.Identity, l.Addr.Is6()}] = &l
			pl.byAddr[l.Addr] = &l
		}
	}
	return nil
}
