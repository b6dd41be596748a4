package vici

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Event names charon raises (vici README, "Server-issued events").
const (
	EventIKEUpDown   = "ike-updown"
	EventChildUpDown = "child-updown"
	EventIKERekey    = "ike-rekey"
	EventChildRekey  = "child-rekey"
	EventLog         = "log"
)

// Event is one event message.
type Event struct {
	Name     string
	Msg      *Message
	Received time.Time
}

// subscriptionBuffer bounds the events held for a slow reader; beyond it
// events are counted in Dropped rather than stalling charon's socket.
const subscriptionBuffer = 1024

// Subscription receives events on its own connection until Close.
type Subscription struct {
	// C delivers events in arrival order; it is closed when the
	// subscription ends (Close, or the socket failed: see Err).
	C <-chan Event

	conn    net.Conn
	done    chan struct{}
	dropped atomic.Uint64
	mu      sync.Mutex
	err     error
	closed  atomic.Bool
}

// Subscribe opens a connection to the same socket and registers for the
// named events.
func (c *Client) Subscribe(ctx context.Context, events ...string) (*Subscription, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	for _, ev := range events {
		if err := register(conn, pktEventRegister, ev); err != nil {
			conn.Close()
			return nil, err
		}
	}
	conn.SetDeadline(time.Time{})
	ch := make(chan Event, subscriptionBuffer)
	s := &Subscription{C: ch, conn: conn, done: make(chan struct{})}
	go s.read(ch)
	return s, nil
}

func (s *Subscription) read(ch chan<- Event) {
	defer close(s.done)
	defer close(ch)
	for {
		p, err := readPacket(s.conn)
		if err != nil {
			if !s.closed.Load() {
				s.setErr(err)
			}
			return
		}
		switch p.typ {
		case pktEvent:
			select {
			case ch <- Event{Name: p.name, Msg: p.msg, Received: time.Now()}:
			default:
				s.dropped.Add(1)
			}
		case pktEventConfirm:
		default:
			s.setErr(&ProtocolError{Reason: fmt.Sprintf("%v on an event connection", p.typ)})
			return
		}
	}
}

func (s *Subscription) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// Err is why the subscription ended on its own (nil after Close).
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Dropped counts events lost because C was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription and waits for its reader to stop.
func (s *Subscription) Close() error {
	s.closed.Store(true)
	err := s.conn.Close()
	<-s.done
	return err
}

// Wait returns the first event for which match returns true, skipping
// the others, or an error when ctx ends or the subscription closes.
func (s *Subscription) Wait(ctx context.Context, match func(Event) bool) (Event, error) {
	for {
		select {
		case ev, ok := <-s.C:
			if !ok {
				if err := s.Err(); err != nil {
					return Event{}, fmt.Errorf("vici: subscription ended: %w", err)
				}
				return Event{}, fmt.Errorf("vici: subscription closed")
			}
			if match == nil || match(ev) {
				return ev, nil
			}
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// UpDown decodes an ike-updown or child-updown event: up, and the IKE_SA
// (for child-updown with only the affected CHILD_SA).
func (e Event) UpDown() (up bool, sa IKESA, err error) {
	if e.Name != EventIKEUpDown && e.Name != EventChildUpDown {
		return false, IKESA{}, &ProtocolError{Reason: fmt.Sprintf("%s is not an up/down event", e.Name)}
	}
	up = e.Msg.Str("up") == "yes"
	for _, k := range e.Msg.Keys() {
		if sec := e.Msg.Section(k); sec != nil {
			sa, err = ParseIKESA(k, sec)
			return up, sa, err
		}
	}
	return up, IKESA{}, &FieldError{Field: e.Name, Reason: "no IKE_SA section"}
}

// IKERekey decodes an ike-rekey event.
func (e Event) IKERekey() (old, new IKESA, err error) {
	if e.Name != EventIKERekey {
		return IKESA{}, IKESA{}, &ProtocolError{Reason: fmt.Sprintf("%s is not %s", e.Name, EventIKERekey)}
	}
	for _, k := range e.Msg.Keys() {
		sec := e.Msg.Section(k)
		if sec == nil {
			continue
		}
		if old, err = ParseIKESA(k, sec.Section("old")); err != nil {
			return
		}
		new, err = ParseIKESA(k, sec.Section("new"))
		return
	}
	return IKESA{}, IKESA{}, &FieldError{Field: e.Name, Reason: "no IKE_SA section"}
}

// ChildRekey decodes a child-rekey event: the IKE_SA and the old and new
// CHILD_SA.
func (e Event) ChildRekey() (ike IKESA, old, new ChildSA, err error) {
	if e.Name != EventChildRekey {
		return IKESA{}, ChildSA{}, ChildSA{}, &ProtocolError{Reason: fmt.Sprintf("%s is not %s", e.Name, EventChildRekey)}
	}
	for _, k := range e.Msg.Keys() {
		sec := e.Msg.Section(k)
		if sec == nil {
			continue
		}
		// Parse the IKE_SA without its children: they hold old/new pairs.
		children := sec.Section("child-sas")
		if ike, err = ParseIKESA(k, sec.without("child-sas")); err != nil {
			return
		}
		for _, ck := range children.Keys() {
			pair := children.Section(ck)
			if old, err = ParseChildSA(ck, pair.Section("old")); err != nil {
				return
			}
			if new, err = ParseChildSA(ck, pair.Section("new")); err != nil {
				return
			}
			return
		}
		return ike, old, new, &FieldError{Field: e.Name + "." + k, Reason: "no CHILD_SA pair"}
	}
	return IKESA{}, ChildSA{}, ChildSA{}, &FieldError{Field: e.Name, Reason: "no IKE_SA section"}
}

// without returns a shallow copy of m lacking key.
func (m *Message) without(key string) *Message {
	out := &Message{}
	for _, k := range m.Keys() {
		if k != key {
			out.set(k, m.vals[k])
		}
	}
	return out
}
