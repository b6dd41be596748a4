package userspace

import (
	"cmp"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/esp"
)

// tables is an immutable snapshot of the SAs and policies. The packet path
// loads it with one atomic read per batch; control operations build a new
// one under DataPlane.mu and publish it. A change copies only the path to
// its key in the maps it changes (cowMap) and the candidate list of one
// index bucket: its cost grows with the logarithm of the number of SAs.
type tables struct {
	in, out cowMap[uint32, *saEntry]
	pols    cowMap[uint64, *polEntry] // every policy, both directions, by ID
	// outIdx holds the outbound policies. Inbound packets are checked
	// against the selectors of the SA that opened them (RFC 4301 §5.2),
	// not looked up: inbound policies are only kept.
	outIdx polIndex
}

func newTables() *tables {
	return &tables{
		in:   newCowMap[uint32, *saEntry](hashSPI),
		out:  newCowMap[uint32, *saEntry](hashSPI),
		pols: newCowMap[uint64, *polEntry](hashID),
	}
}

// sa returns the installed SA, or nil. It allocates nothing.
func (t *tables) sa(dir dataplane.Direction, spi uint32) *saEntry {
	m := &t.out
	if dir == dataplane.In {
		m = &t.in
	}
	e, _ := m.get(spi)
	return e
}

// withSA returns a copy of t in which dir's SA spi is e, or is gone if e is
// nil; t is not changed.
func (t *tables) withSA(dir dataplane.Direction, spi uint32, e *saEntry) *tables {
	nt := *t
	m := &nt.out
	if dir == dataplane.In {
		m = &nt.in
	}
	if e != nil {
		*m = m.with(spi, e)
	} else {
		*m = m.without(spi)
	}
	return &nt
}

// withPolicy returns a copy of t in which pe replaces the policy of its ID
// (old, nil if none); t is not changed.
func (t *tables) withPolicy(old, pe *polEntry) *tables {
	nt := *t
	if old != nil && old.p.Direction == dataplane.Out {
		nt.outIdx = nt.outIdx.without(old)
	}
	if pe == nil {
		nt.pols = nt.pols.without(old.p.ID)
		return &nt
	}
	nt.pols = nt.pols.with(pe.p.ID, pe)
	if pe.p.Direction == dataplane.Out {
		nt.outIdx = nt.outIdx.with(pe)
	}
	return &nt
}

// saEntry is one installed SA.
type saEntry struct {
	cfg  dataplane.SA // Keys cleared: esp.SA holds the only copy
	esp  *esp.SA
	ep   atomic.Pointer[endpoint]
	last atomic.Int64 // unix nanoseconds of the last packet
	dd   dataDrops    // drops decided here (send errors, transport fragments)
	rb   rebuild      // inbound transport mode: addresses of the rebuilt header

	// Packets esp.SA.Open counted as delivered that the data plane dropped
	// afterwards (selector mismatch, no room): Counters subtracts them, so
	// such a packet counts as a drop only.
	rejPackets, rejBytes atomic.Uint64

	// Inbound batches open this SA's packets one batch at a time, in the
	// order the readers queued them: esp.SA.Open updates the replay window
	// as it goes, so opening two batches of one SA out of order would make
	// the later one push the earlier out of the window. Tickets are handed
	// out under pipeline.orderMu, as are ordBatch and ordTurn: the last
	// batch that took one and the index of its ticket there.
	ordNext    uint64
	ordBatch   uint64
	ordTurn    int32
	ordMu      sync.Mutex
	ordCond    sync.Cond
	ordServing uint64
}

// waitTurn blocks until ticket t may open its packets.
func (e *saEntry) waitTurn(t uint64) {
	e.ordMu.Lock()
	for e.ordServing != t {
		e.ordCond.Wait()
	}
	e.ordMu.Unlock()
}

// doneTurn lets the next ticket go.
func (e *saEntry) doneTurn() {
	e.ordMu.Lock()
	e.ordServing++
	e.ordMu.Unlock()
	e.ordCond.Broadcast()
}

// endpoint is where an outbound SA sends: its socket and the peer.
type endpoint struct {
	local, remote netip.AddrPort
	sock          *sock
}

func (e *saEntry) touch(now time.Time) { e.last.Store(now.UnixNano()) }

// reject takes back an opened packet of n inner bytes that is not delivered.
func (e *saEntry) reject(n int) {
	e.rejPackets.Add(1)
	e.rejBytes.Add(uint64(n))
}

// polEntry is one installed policy.
type polEntry struct {
	p           dataplane.Policy
	lastAcquire atomic.Int64
}

// comparePolicies orders policies by priority, then ID (IDs are unique).
func comparePolicies(a, b *polEntry) int {
	if c := cmp.Compare(a.p.Priority, b.p.Priority); c != 0 {
		return c
	}
	return cmp.Compare(a.p.ID, b.p.ID)
}

// withPolicy returns a new list: ps (ordered, not changed) with pe in its
// place, found by binary search instead of sorting the whole list again.
func withPolicy(ps []*polEntry, pe *polEntry) []*polEntry {
	i, _ := slices.BinarySearchFunc(ps, pe, comparePolicies)
	out := make([]*polEntry, 0, len(ps)+1)
	out = append(out, ps[:i]...)
	out = append(out, pe)
	return append(out, ps[i:]...)
}

// withoutPolicy returns a new list: ps without its element i.
func withoutPolicy(ps []*polEntry, i int) []*polEntry {
	out := make([]*polEntry, 0, len(ps)-1)
	out = append(out, ps[:i]...)
	return append(out, ps[i+1:]...)
}

// lookupPolicy finds the first outbound policy whose selectors hold the
// flow: source in Local, destination in Remote (RFC 4301 §4.4.1).
func (t *tables) lookupPolicy(f *dataplane.Flow, hasPorts bool) *polEntry {
	return t.outIdx.lookup(f, hasPorts)
}

// pickSA applies the steering hook and falls back to the first installed SA
// of the policy.
func (t *tables) pickSA(st dataplane.Steering, f *dataplane.Flow, pe *polEntry) *saEntry {
	if st != nil && len(pe.p.SPIs) > 1 {
		if spi := st.Pick(*f, pe.p.ID, pe.p.SPIs); spi != 0 {
			if e, _ := t.out.get(spi); e != nil && slices.Contains(pe.p.SPIs, spi) {
				return e
			}
		}
	}
	for _, spi := range pe.p.SPIs {
		if e, _ := t.out.get(spi); e != nil {
			return e
		}
	}
	return nil
}

// inboundAllowed checks a decrypted (tunnel mode) or rebuilt (transport mode) packet against the SA's
// selectors: source in RemoteTS, destination in LocalTS (RFC 4301 §5.2 step 4).
func inboundAllowed(sa *dataplane.SA, inner []byte) bool {
	var f dataplane.Flow
	hasPorts, ok := parseFlow(inner, &f)
	if !ok {
		return false
	}
	return anyMatch(sa.RemoteTS, f.Src, f.SrcPort, f.Protocol, hasPorts) &&
		anyMatch(sa.LocalTS, f.Dst, f.DstPort, f.Protocol, hasPorts)
}
