package esp

import (
	"iter"

	"github.com/mifsec/mifsec/engine/dataplane"
)

// LimitEvent is a set of lifetime events of an SA. Each event is raised at
// most once per SA, when its threshold is first crossed.
type LimitEvent uint8

const (
	LimitSoft LimitEvent = 1 << iota // soft bytes or packets reached: rekey
	LimitHard                        // hard bytes or packets reached: SA unusable from the next packet
	LimitSeq                         // outbound sequence number close to cycling: rekey (RFC 4303 §3.3.3)
)

// Has tells whether every event of f is in e.
func (e LimitEvent) Has(f LimitEvent) bool { return f != 0 && e&f == f }

// Kinds yields the dataplane event kinds in e.
func (e LimitEvent) Kinds() iter.Seq[dataplane.EventKind] {
	return func(yield func(dataplane.EventKind) bool) {
		if e.Has(LimitSoft) && !yield(dataplane.SoftExpired) {
			return
		}
		if e.Has(LimitHard) && !yield(dataplane.HardExpired) {
			return
		}
		if e.Has(LimitSeq) {
			yield(dataplane.SeqExhausted)
		}
	}
}

func (e LimitEvent) String() string {
	if e == 0 {
		return "none"
	}
	s := ""
	for k := range e.Kinds() {
		if s != "" {
			s += "|"
		}
		s += k.String()
	}
	if e&^(LimitSoft|LimitHard|LimitSeq) != 0 {
		if s != "" {
			s += "|"
		}
		s += "unknown"
	}
	return s
}

// raise records events; those not raised before become pending for TakeEvents.
func (s *SA) raise(ev LimitEvent) {
	old := LimitEvent(s.raised.Or(uint32(ev)))
	if fresh := ev &^ old; fresh != 0 {
		s.pending.Or(uint32(fresh))
	}
}

// TakeEvents returns the lifetime events raised since the last call and
// clears them. Cheap enough to call after every Seal or Open: one atomic load
// when nothing is pending.
func (s *SA) TakeEvents() LimitEvent {
	if s.pending.Load() == 0 {
		return 0
	}
	return LimitEvent(s.pending.Swap(0))
}

// account counts one delivered or sent packet of n inner bytes against the
// lifetimes; the packet that crosses the hard limit is still processed.
func (s *SA) account(n int) {
	p := s.packets.Add(1)
	b := s.bytes.Add(uint64(n))
	l := &s.limits
	var ev LimitEvent
	if (l.SoftPackets != 0 && p >= l.SoftPackets) || (l.SoftBytes != 0 && b >= l.SoftBytes) {
		ev |= LimitSoft
	}
	if (l.HardPackets != 0 && p >= l.HardPackets) || (l.HardBytes != 0 && b >= l.HardBytes) {
		ev |= LimitHard
		s.hard.Store(true)
	}
	if ev != 0 {
		s.raise(ev)
	}
}
