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
// loads it with one atomic read per batch; control operations copy, change
// and publish a new one under DataPlane.mu.
type tables struct {
	in     map[uint32]*saEntry
	out    map[uint32]*saEntry
	outPol []*polEntry // outbound policies by priority, then ID
	inPol  []*polEntry
}

// withSAs returns a copy of t in which f changed a copy of dir's SA map;
// the other map and the policy lists are shared: a control operation
// copies only what it changes (each copy is linear in the SAs of a
// gateway).
func (t *tables) withSAs(dir dataplane.Direction, f func(map[uint32]*saEntry)) *tables {
	nt := *t
	m := cloneMap(t.sas(dir))
	f(m)
	if dir == dataplane.In {
		nt.in = m
	} else {
		nt.out = m
	}
	return &nt
}

func cloneMap(m map[uint32]*saEntry) map[uint32]*saEntry {
	c := make(map[uint32]*saEntry, len(m)+1)
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (t *tables) sas(dir dataplane.Direction) map[uint32]*saEntry {
	if dir == dataplane.In {
		return t.in
	}
	return t.out
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
	// out under pipeline.orderMu.
	ordNext    uint64
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
	for _, pe := range t.outPol {
		if anyMatch(pe.p.Local, f.Src, f.SrcPort, f.Protocol, hasPorts) &&
			anyMatch(pe.p.Remote, f.Dst, f.DstPort, f.Protocol, hasPorts) {
			return pe
		}
	}
	return nil
}

// pickSA applies the steering hook and falls back to the first installed SA
// of the policy.
func (t *tables) pickSA(st dataplane.Steering, f *dataplane.Flow, pe *polEntry) *saEntry {
	if st != nil && len(pe.p.SPIs) > 1 {
		if spi := st.Pick(*f, pe.p.ID, pe.p.SPIs); spi != 0 {
			if e := t.out[spi]; e != nil && slices.Contains(pe.p.SPIs, spi) {
				return e
			}
		}
	}
	for _, spi := range pe.p.SPIs {
		if e := t.out[spi]; e != nil {
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
