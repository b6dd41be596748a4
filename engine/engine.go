// Package engine is mifsec's core: one goroutine owns all state (interfaces
// now; connections, SAs and steering later) and every change goes through
// the Engine's methods, whoever calls them: the gRPC server, the config
// file, tests (DESIGN.md §3, STYLE.md "one code path changes state").
//
// It must not import gen/, server/, client/, grpc or protobuf.
package engine

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mifsec/mifsec/engine/config"
	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/iface"
	"github.com/mifsec/mifsec/engine/sa"
	"github.com/mifsec/mifsec/engine/transport"
)

// Config of an Engine.
type Config struct {
	// StateDir holds the persisted configuration.
	StateDir string
	// Links is the kernel view; iface.NewMonitor in production.
	Links iface.Source
	Log   hclog.Logger
	// WatchBuffer is the number of live events a watcher may lag behind
	// before it is cut off (default 1024).
	WatchBuffer int
	// Now is the clock (default time.Now).
	Now func() time.Time

	// Transport carries IKE; nil disables IKE (configuration only).
	Transport IKETransport
	// Dataplane carries ESP; nil means SAs are negotiated but not installed.
	Dataplane dataplane.DataPlane
	// Rand is the randomness source of IKE (default crypto/rand).
	Rand io.Reader
	// Retransmit overrides the IKE retransmission schedule (zero = defaults).
	Retransmit sa.Retransmit
	// FragmentMTU is the largest fragmented IKE datagram (0 = 1280).
	FragmentMTU int
	// MemoryTrim is the idle time after SA churn before free heap memory
	// goes back to the kernel (0 = DefaultMemoryTrim, negative = never).
	MemoryTrim time.Duration
	// DHReuse is how long one D-H pair answers IKE_SA_INIT requests
	// (RFC 7296 §2.12; 0 = DefaultDHReuse, negative = a fresh pair each).
	DHReuse time.Duration
}

// Engine owns mifsec's state. Its methods are safe for concurrent use.
type Engine struct {
	cfg   Config
	log   hclog.Logger
	store *config.Store
	// secretStore keeps secrets apart from the rest (mode 0600 file).
	secretStore *config.Store
	// leaseStore holds the pools' leases (leasefile.go).
	leaseStore *config.Store
	ops        chan func(*state)
	quit       chan struct{}
	done       chan struct{}
	once       sync.Once
}

// state has one owner at a time: whoever holds mu, the loop goroutine or
// a transport reader running a datagram inline (inlinePacket).
type state struct {
	// mu is held by whoever runs the state: the loop goroutine, or a
	// transport reader handling a datagram inline (inlinePacket).
	mu          sync.Mutex
	stopped     bool // the loop has ended: nothing runs inline any more
	e           *Engine
	interfaces  map[string]*Interface
	secrets     map[string]*secret
	pools       map[string]*pool
	connections map[string]*connection
	seq         uint64
	watchers    map[*Subscription]struct{}
	rt          *runtime
	mp          *multi // paths, steering rules, merged policies
	// leasesDirty: pool leases changed since the last persist; leaseTimer
	// fires flushLeases (saconfig.go).
	leasesDirty bool
	leaseW      *leaseWriter
	leaseTimer  *time.Timer
	// cfgGen counts changes of pools and secrets: connections' sa.Config
	// templates made before are stale (saconfig.go).
	cfgGen uint64
	// trim gives free heap memory back after SA churn (trim.go).
	trim *memTrim
}

// New loads the persisted configuration, reads the kernel's view of every
// interface and starts the state goroutine.
func New(cfg Config) (*Engine, error) {
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.WatchBuffer <= 0 {
		cfg.WatchBuffer = 1024
	}
	if cfg.Links == nil {
		return nil, errors.New("engine: no link source")
	}
	store, err := config.Open(cfg.StateDir, "config.json")
	if err != nil {
		return nil, err
	}
	secretStore, err := config.Open(cfg.StateDir, "secrets.json")
	if err != nil {
		return nil, err
	}
	leaseStore, err := config.Open(cfg.StateDir, "leases.json")
	if err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:         cfg,
		log:         cfg.Log,
		store:       store,
		secretStore: secretStore,
		leaseStore:  leaseStore,
		ops:         make(chan func(*state)),
		quit:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	st := &state{e: e, interfaces: map[string]*Interface{}, secrets: map[string]*secret{},
		pools: map[string]*pool{}, connections: map[string]*connection{}, watchers: map[*Subscription]struct{}{},
		rt: newRuntime(cfg), mp: newMulti(), leaseTimer: time.NewTimer(time.Hour), trim: newMemTrim(cfg.MemoryTrim),
		leaseW: newLeaseWriter(leaseStore, cfg.Log)}
	st.leaseTimer.Stop()
	if err := st.restoreSecrets(); err != nil {
		return nil, err
	}
	if err := st.restore(); err != nil {
		return nil, err
	}
	if cfg.Dataplane != nil {
		cfg.Dataplane.SetSteering(st.mp.steer)
	}
	go e.loop(st)
	return e, nil
}

// Close stops the state goroutine, ends all watchers and closes the link source.
func (e *Engine) Close() error {
	e.once.Do(func() { close(e.quit) })
	<-e.done
	return e.cfg.Links.Close()
}

func (e *Engine) loop(st *state) {
	defer close(e.done)
	defer st.trim.stop()
	changes := e.cfg.Links.Changes()
	packets, dpEvents := st.rt.packets(), st.rt.dpEvents()
	if st.rt.dh != nil && st.rt.tr != nil {
		st.rt.dh.start()
		defer st.rt.dh.stop()
	}
	st.leaseW.start()
	st.mu.Lock()
	for _, ifc := range sortedInterfaces(st.interfaces) {
		st.listenNAT(ifc)
	}
	st.startConnections()
	st.pathsChanged("start")
	st.mu.Unlock()
	if in, ok := st.rt.tr.(inlineTransport); ok {
		in.SetInline(st.inlinePacket)
		defer in.SetInline(nil)
	}
	for {
		select {
		case <-st.mp.probeC():
			st.mu.Lock()
			st.probeTick()
		case p := <-packets:
			st.mu.Lock()
			st.packet(p)
		case <-st.rt.timer.C:
			st.mu.Lock()
			st.tick()
		case ev, ok := <-dpEvents:
			if !ok {
				dpEvents = nil
				continue
			}
			st.mu.Lock()
			st.dpEvent(ev)
		case <-st.leaseTimer.C:
			st.mu.Lock()
			st.flushLeases()
		case <-st.trim.C():
			st.mu.Lock()
			st.trimTick()
		case <-e.quit:
			st.mu.Lock()
			st.stopped = true
			st.shutdownSAs()
			if st.rt.routes.close != nil {
				st.rt.routes.close()
			}
			st.leaseTimer.Stop()
			st.flushLeases()
			st.leaseW.stop() // after writing what waits
			for w := range st.watchers {
				w.end(&Error{Code: Unavailable, Reason: ReasonShuttingDown, Msg: "mifsecd is shutting down"})
			}
			st.mu.Unlock()
			return
		case op := <-e.ops:
			st.mu.Lock()
			op(st)
		case c, ok := <-changes:
			if !ok {
				changes = nil
				e.log.Error("link monitor stopped; interface state is no longer followed")
				continue
			}
			st.mu.Lock()
			st.rt.routeSrc.clear() // sources towards peers may have changed
			if f := st.rt.routes.forget; f != nil {
				// A link that changed may have been renamed or recreated
				// under its name: its cached index is looked up again.
				name := c.Name
				if c.Resync {
					name = ""
				}
				f(name)
			}
			st.linkChanged(c)
		}
		st.mu.Unlock()
	}
}

// inlineTransport is a transport whose readers can hand a datagram to
// the state directly (transport.Transport.SetInline).
type inlineTransport interface {
	SetInline(f func(transport.Packet) bool)
}

// inlinePacket handles a datagram on the transport reader's goroutine
// when the state is free: the state has one owner at a time, the loop or
// a reader holding st.mu, and an idle gateway answers without waking the
// loop's thread first. It declines (the datagram is queued for the loop)
// while the loop works or once the engine stopped.
func (st *state) inlinePacket(p transport.Packet) bool {
	if !st.mu.TryLock() {
		return false
	}
	defer st.mu.Unlock()
	if st.stopped {
		return false
	}
	st.packet(p)
	return true
}

// do runs f on the state goroutine and waits for it, honouring ctx.
func do[T any](ctx context.Context, e *Engine, f func(*state) (T, error)) (T, error) {
	var zero T
	type result struct {
		v   T
		err error
	}
	reply := make(chan result, 1)
	op := func(st *state) {
		v, err := f(st)
		reply <- result{v, err}
	}
	select {
	case e.ops <- op:
	case <-ctx.Done():
		return zero, ctxError(ctx)
	case <-e.quit:
		return zero, &Error{Code: Unavailable, Reason: ReasonShuttingDown, Msg: "mifsecd is shutting down"}
	}
	// Once accepted, the operation runs to completion: waiting for the reply
	// is short and keeps the caller's view consistent with the state.
	r := <-reply
	return r.v, r.err
}

func ctxError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &Error{Code: DeadlineExceeded, Reason: "DEADLINE_EXCEEDED", Msg: "deadline exceeded", Err: ctx.Err()}
	}
	return &Error{Code: Canceled, Reason: "CANCELED", Msg: "canceled", Err: ctx.Err()}
}

// persisted is the on-disk configuration document.
type persisted struct {
	Version     int                   `json:"version"`
	Interfaces  []persistedInterface  `json:"interfaces"`
	Pools       []persistedPool       `json:"pools,omitempty"`
	Connections []persistedConnection `json:"connections,omitempty"`
	// SteeringRules: steering.go.
	SteeringRules []persistedSteeringRule `json:"steering_rules,omitempty"`
}

type persistedPool struct {
	ID string `json:"id"`
	PoolSpec
	Leases     []Lease   `json:"leases,omitempty"` // read only: versions before leases.json
	CreateTime time.Time `json:"create_time"`
}

type persistedConnection struct {
	ID string `json:"id"`
	ConnectionSpec
	CreateTime time.Time `json:"create_time"`
	UpdateTime time.Time `json:"update_time"`
}

type persistedInterface struct {
	ID string `json:"id"`
	InterfaceSpec
	CreateTime time.Time `json:"create_time"`
}

const persistVersion = 1

func (st *state) restore() error {
	var p persisted
	found, err := st.e.store.Load(&p)
	if err != nil || !found {
		return err
	}
	legacy := false // leases in config.json
	for _, pi := range p.Interfaces {
		if ValidID(pi.ID) != nil || pi.InterfaceSpec.validate("") != nil {
			st.e.log.Warn("skipping invalid persisted interface", "id", pi.ID)
			continue
		}
		ifc := &Interface{ID: pi.ID, InterfaceSpec: pi.InterfaceSpec, CreateTime: pi.CreateTime, UpdateTime: st.e.cfg.Now()}
		st.observe(ifc)
		st.interfaces[pi.ID] = ifc
	}
	for _, pp := range p.Pools {
		spec := pp.PoolSpec
		rs, err := validatePoolSpec(&spec)
		if ValidID(pp.ID) != nil || err != nil {
			st.e.log.Warn("skipping invalid persisted pool", "pool", pp.ID)
			continue
		}
		pl := &pool{ID: pp.ID, PoolSpec: spec, CreateTime: pp.CreateTime, ranges: rs,
			leases: map[leaseKey]*Lease{}, byAddr: map[netip.Addr]*Lease{}}
		for _, l := range pp.Leases {
			l := l
			pl.leases[leaseKey{l.Identity, l.Addr.Is6()}] = &l
			pl.byAddr[l.Addr] = &l
			legacy = true
		}
		st.pools[pp.ID] = pl
	}
	for _, pc := range p.Connections {
		c := &connection{ID: pc.ID, ConnectionSpec: pc.ConnectionSpec, CreateTime: pc.CreateTime, UpdateTime: pc.UpdateTime}
		if ValidID(pc.ID) != nil {
			continue
		}
		if err := st.validateConnection(c); err != nil {
			st.e.log.Warn("skipping invalid persisted connection", "connection", pc.ID, "error", err)
			continue
		}
		st.connections[pc.ID] = c
	}
	if err := st.restoreLeases(legacy); err != nil {
		return err
	}
	st.restoreSteering(p.SteeringRules)
	st.e.log.Info("configuration restored", "interfaces", len(st.interfaces), "pools", len(st.pools),
		"connections", len(st.connections), "secrets", len(st.secrets), "path", st.e.store.Path())
	return nil
}

func (st *state) persist() error {
	p := persisted{Version: persistVersion}
	for _, ifc := range sortedInterfaces(st.interfaces) {
		p.Interfaces = append(p.Interfaces, persistedInterface{ID: ifc.ID, InterfaceSpec: ifc.InterfaceSpec, CreateTime: ifc.CreateTime})
	}
	for _, id := range slices.Sorted(maps.Keys(st.pools)) {
		pl := st.pools[id]
		// Leases go to leases.json (leasefile.go).
		p.Pools = append(p.Pools, persistedPool{ID: id, PoolSpec: pl.PoolSpec, CreateTime: pl.CreateTime})
	}
	for _, id := range slices.Sorted(maps.Keys(st.connections)) {
		c := st.connections[id]
		p.Connections = append(p.Connections, persistedConnection{ID: id, ConnectionSpec: c.ConnectionSpec, CreateTime: c.CreateTime, UpdateTime: c.UpdateTime})
	}
	p.SteeringRules = st.persistedSteering()
	if err := st.e.store.Save(p); err != nil {
		return &Error{Code: Internal, Reason: ReasonPersistFailed, Msg: "could not persist configuration", Err: err}
	}
	if len(st.pools) > 0 {
		st.leaseChanged() // a pool change may have changed its leases
	}
	return nil
}
