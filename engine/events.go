package engine

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/mifsec/mifsec/engine/sa"
)

// EventType says what an Event reports.
type EventType uint8

const (
	EventUnspecified EventType = iota
	EventSnapshot
	EventEndOfSnapshot
	EventInterfaceCreated
	EventInterfaceUpdated
	EventInterfaceDeleted
	EventInterfaceLinkUp
	EventInterfaceLinkDown
	EventInterfaceLinkAbsent
	EventInterfaceAddressAdded
	EventInterfaceAddressRemoved
	EventIKESAUp
	EventIKESADown
	EventIKESARekeyed
	EventChildSAUp
	EventChildSADown
	EventChildSARekeyed
	// Multiple interfaces (paths.go, steering.go, mobility.go).
	EventPathUp
	EventPathDown
	EventFlowsMoved
	EventIKESAMigrated
	EventAddressesAnnounced
	EventPeerAddresses
	EventSteeringRuleCreated
	EventSteeringRuleUpdated
	EventSteeringRuleDeleted
)

var eventNames = [...]string{"unspecified", "snapshot", "end_of_snapshot", "interface_created",
	"interface_updated", "interface_deleted", "interface_link_up", "interface_link_down",
	"interface_link_absent", "interface_address_added", "interface_address_removed",
	"ike_sa_up", "ike_sa_down", "ike_sa_rekeyed", "child_sa_up", "child_sa_down", "child_sa_rekeyed",
	"path_up", "path_down", "flows_moved", "ike_sa_migrated", "addresses_announced", "peer_addresses",
	"steering_rule_created", "steering_rule_updated", "steering_rule_deleted"}

func (t EventType) String() string {
	if int(t) < len(eventNames) {
		return eventNames[t]
	}
	return fmt.Sprintf("event(%d)", t)
}

// Category groups event types for Watch filters.
type Category uint8

const (
	CategoryInterface Category = iota + 1
	CategoryIKESA
	CategoryChildSA
	CategoryPath     // path up/down
	CategorySteering // rule changes, flows moved
	CategoryMobility // IKE SA migrated, addresses announced and learned
)

// Event is one thing that happened. Live events have consecutive sequence
// numbers; snapshot events carry the sequence number they reflect.
type Event struct {
	Seq       uint64
	Time      time.Time
	Type      EventType
	Reason    string
	Interface *Interface
	Address   netip.Prefix
	IKESA     *IKESAView
	ChildSA   *ChildSAView
	// Multiple interfaces: the path or rule concerned, the connection,
	// where flows or an IKE SA went from and to, addresses announced or
	// learned.
	Path         *PathView
	SteeringRule *SteeringRule
	Conn         string
	From, To     PathRef
	Addrs        []netip.Addr
}

func (ev Event) category() Category {
	switch ev.Type {
	case EventIKESAMigrated, EventAddressesAnnounced, EventPeerAddresses:
		return CategoryMobility
	case EventFlowsMoved:
		if ev.SteeringRule == nil {
			return CategoryMobility // a MOBIKE move's held Child SAs (mobility.go)
		}
	}
	switch {
	case ev.Path != nil:
		return CategoryPath
	case ev.SteeringRule != nil:
		return CategorySteering
	case ev.IKESA != nil:
		return CategoryIKESA
	case ev.ChildSA != nil:
		return CategoryChildSA
	}
	return CategoryInterface
}

func (ev Event) connection() string {
	switch {
	case ev.Conn != "":
		return ev.Conn
	case ev.Path != nil:
		return ev.Path.Conn
	case ev.IKESA != nil:
		return ev.IKESA.Conn
	case ev.ChildSA != nil:
		return ev.ChildSA.Conn
	}
	return ""
}

// WatchFilter selects events. The zero value selects everything.
type WatchFilter struct {
	Categories []Category
	Interface  string // id
	Connection string // id
}

func (f WatchFilter) match(ev Event) bool {
	if len(f.Categories) > 0 {
		ok := false
		for _, c := range f.Categories {
			ok = ok || c == ev.category()
		}
		if !ok {
			return false
		}
	}
	if f.Interface != "" && (ev.Interface == nil || ev.Interface.ID != f.Interface) {
		return false
	}
	if f.Connection != "" && ev.connection() != f.Connection {
		return false
	}
	return true
}

// Subscription is one watcher. Read C until it is closed, then Err tells why.
type Subscription struct {
	C      <-chan Event
	c      chan Event
	filter WatchFilter
	e      *Engine

	mu  sync.Mutex
	err error
}

// Err is the reason C was closed.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// end closes the subscription; called on the state goroutine only.
func (s *Subscription) end(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	close(s.c)
}

// Close stops the subscription. It is safe to call more than once.
func (s *Subscription) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	do(ctx, s.e, func(st *state) (struct{}, error) {
		if _, ok := st.watchers[s]; ok {
			delete(st.watchers, s)
			s.end(nil)
		}
		return struct{}{}, nil
	})
}

// Watch subscribes to events: first the current state selected by filter
// (EventSnapshot), then one EventEndOfSnapshot, then live events. A watcher
// that falls more than Config.WatchBuffer events behind is ended with a
// ResourceExhausted error.
func (e *Engine) Watch(ctx context.Context, filter WatchFilter) (*Subscription, error) {
	return do(ctx, e, func(st *state) (*Subscription, error) {
		var snap []Event
		now := st.e.cfg.Now()
		for _, ifc := range sortedInterfaces(st.interfaces) {
			ev := Event{Seq: st.seq, Time: now, Type: EventSnapshot, Interface: ifc.clone()}
			if filter.match(ev) {
				snap = append(snap, ev)
			}
		}
		c := make(chan Event, len(snap)+1+st.e.cfg.WatchBuffer)
		for _, ev := range snap {
			c <- ev
		}
		c <- Event{Seq: st.seq, Time: now, Type: EventEndOfSnapshot}
		s := &Subscription{C: c, c: c, filter: filter, e: e}
		st.watchers[s] = struct{}{}
		return s, nil
	})
}

// publishIKE publishes an IKE SA event, building the view only when
// someone watches: views (identities, selectors and names as strings) were
// most of the engine's allocations per handshake. down, when set, is the
// reason the view gives.
func (st *state) publishIKE(s *ikeSA, t EventType, reason string, down sa.Reason, detail string) {
	if len(st.watchers) == 0 {
		st.seq++
		return
	}
	v := st.ikeView(s)
	if down != sa.ReasonNone {
		v.DownReason, v.DownDetail = down, detail
	}
	st.publish(Event{Type: t, Reason: reason, IKESA: &v})
}

// publishChild publishes a Child SA event, its view built only when
// someone watches.
func (st *state) publishChild(s *ikeSA, c sa.ChildInfo, t EventType, reason string) {
	if len(st.watchers) == 0 {
		st.seq++
		return
	}
	v := st.childView(s, c)
	st.publish(Event{Type: t, Reason: reason, ChildSA: &v})
}

// publish stamps ev and delivers it to every matching watcher without
// blocking; a watcher whose buffer is full is ended. Sequence numbers
// count every event, watched or not.
func (st *state) publish(ev Event) {
	st.seq++
	if len(st.watchers) == 0 {
		return
	}
	ev.Seq = st.seq
	ev.Time = st.e.cfg.Now()
	for w := range st.watchers {
		if !w.filter.match(ev) {
			continue
		}
		select {
		case w.c <- ev:
		default:
			st.rt.stats.EventsDropped++
			delete(st.watchers, w)
			st.e.log.Warn("watcher too slow, ending it", "buffer", st.e.cfg.WatchBuffer)
			w.end(errf(ResourceExhausted, ReasonWatchOverflow, "", "watcher fell more than %d events behind; watch again", st.e.cfg.WatchBuffer))
		}
	}
}
