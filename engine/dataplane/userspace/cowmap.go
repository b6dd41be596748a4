package userspace

import "math/bits"

// cowMap is a hash map for one writer and any number of lock-free readers:
// a persistent hash array mapped trie (Bagwell, "Ideal Hash Trees", 2001).
// A published cowMap is never changed: with and without return a new one
// that shares every node but those on the path to the key, so a change
// copies about log16(N) nodes of at most 16 slots (three or four at 10,000
// entries) instead of the whole map, and a lookup follows as many
// pointers. Each level takes the next 4 bits of the key's 64-bit hash;
// keys whose hashes are equal end in a collision node, searched in order.
//
// The zero value is an empty map; hash must be set before the first change.
type cowMap[K comparable, V any] struct {
	root *hamtNode[K, V]
	n    int
	hash func(K) uint64
}

const (
	hamtBits     = 4
	hamtMask     = 1<<hamtBits - 1
	hamtMaxDepth = 64 / hamtBits // a node this deep holds colliding keys
)

// hamtNode holds the slots whose bits are set in bitmap, in bit order; a
// collision node (at hamtMaxDepth) has no bitmap and holds entries only.
// A subtree always holds two entries or more: removals pull a lone entry
// up into its parent.
type hamtNode[K comparable, V any] struct {
	bitmap uint16
	slots  []hamtSlot[K, V]
}

// hamtSlot is a subtree (sub set) or an entry.
type hamtSlot[K comparable, V any] struct {
	sub *hamtNode[K, V]
	k   K
	v   V
}

func newCowMap[K comparable, V any](hash func(K) uint64) cowMap[K, V] {
	return cowMap[K, V]{hash: hash}
}

// slotBit is the bit of hash h at depth d.
func slotBit(h uint64, d int) uint16 { return 1 << ((h >> (d * hamtBits)) & hamtMask) }

// index is the position of the slot of bit b.
func (n *hamtNode[K, V]) index(b uint16) int { return bits.OnesCount16(n.bitmap & (b - 1)) }

// get returns the value of k. It allocates nothing.
func (m *cowMap[K, V]) get(k K) (V, bool) {
	n := m.root
	if n == nil {
		var zero V
		return zero, false
	}
	h := m.hash(k)
	for d := 0; ; d++ {
		if d == hamtMaxDepth {
			for i := range n.slots {
				if n.slots[i].k == k {
					return n.slots[i].v, true
				}
			}
			break
		}
		b := slotBit(h, d)
		if n.bitmap&b == 0 {
			break
		}
		s := &n.slots[n.index(b)]
		if s.sub == nil {
			if s.k == k {
				return s.v, true
			}
			break
		}
		n = s.sub
	}
	var zero V
	return zero, false
}

// size returns the number of entries.
func (m *cowMap[K, V]) size() int { return m.n }

// with returns a map in which k holds v; m is not changed.
func (m cowMap[K, V]) with(k K, v V) cowMap[K, V] {
	root, added := m.put(m.root, 0, m.hash(k), k, v)
	m.root = root
	if added {
		m.n++
	}
	return m
}

func (m *cowMap[K, V]) put(n *hamtNode[K, V], d int, h uint64, k K, v V) (*hamtNode[K, V], bool) {
	e := hamtSlot[K, V]{k: k, v: v}
	if d == hamtMaxDepth {
		if n == nil {
			return &hamtNode[K, V]{slots: []hamtSlot[K, V]{e}}, true
		}
		for i := range n.slots {
			if n.slots[i].k == k {
				return n.replaced(i, e), false
			}
		}
		return &hamtNode[K, V]{slots: append(n.slots[:len(n.slots):len(n.slots)], e)}, true
	}
	b := slotBit(h, d)
	if n == nil {
		return &hamtNode[K, V]{bitmap: b, slots: []hamtSlot[K, V]{e}}, true
	}
	i := n.index(b)
	if n.bitmap&b == 0 {
		slots := make([]hamtSlot[K, V], len(n.slots)+1)
		copy(slots, n.slots[:i])
		slots[i] = e
		copy(slots[i+1:], n.slots[i:])
		return &hamtNode[K, V]{bitmap: n.bitmap | b, slots: slots}, true
	}
	s := n.slots[i]
	switch {
	case s.sub != nil:
		sub, added := m.put(s.sub, d+1, h, k, v)
		return n.replaced(i, hamtSlot[K, V]{sub: sub}), added
	case s.k == k:
		return n.replaced(i, e), false
	}
	// Two entries in one slot: a subtree for both.
	sub, _ := m.put(nil, d+1, m.hash(s.k), s.k, s.v)
	sub, _ = m.put(sub, d+1, h, k, v)
	return n.replaced(i, hamtSlot[K, V]{sub: sub}), true
}

// replaced returns a copy of n with slot i set to s.
func (n *hamtNode[K, V]) replaced(i int, s hamtSlot[K, V]) *hamtNode[K, V] {
	slots := make([]hamtSlot[K, V], len(n.slots))
	copy(slots, n.slots)
	slots[i] = s
	return &hamtNode[K, V]{bitmap: n.bitmap, slots: slots}
}

// without returns a map without k; m is not changed.
func (m cowMap[K, V]) without(k K) cowMap[K, V] {
	if m.root == nil {
		return m
	}
	root, removed := m.remove(m.root, 0, m.hash(k), k)
	if removed {
		m.root = root
		m.n--
	}
	return m
}

// remove returns n without k, nil if that leaves it empty.
func (m *cowMap[K, V]) remove(n *hamtNode[K, V], d int, h uint64, k K) (*hamtNode[K, V], bool) {
	if d == hamtMaxDepth {
		for i := range n.slots {
			if n.slots[i].k == k {
				return n.dropped(i, 0), true
			}
		}
		return n, false
	}
	b := slotBit(h, d)
	if n.bitmap&b == 0 {
		return n, false
	}
	i := n.index(b)
	s := n.slots[i]
	if s.sub == nil {
		if s.k != k {
			return n, false
		}
		return n.dropped(i, b), true
	}
	sub, removed := m.remove(s.sub, d+1, h, k)
	switch {
	case !removed:
		return n, false
	case sub == nil: // (a subtree holds two entries or more: kept for safety)
		return n.dropped(i, b), true
	case len(sub.slots) == 1 && sub.slots[0].sub == nil:
		return n.replaced(i, sub.slots[0]), true // pull the lone entry up
	}
	return n.replaced(i, hamtSlot[K, V]{sub: sub}), true
}

// dropped returns a copy of n without slot i (of bit b), nil if none is left.
func (n *hamtNode[K, V]) dropped(i int, b uint16) *hamtNode[K, V] {
	if len(n.slots) == 1 {
		return nil
	}
	slots := make([]hamtSlot[K, V], 0, len(n.slots)-1)
	slots = append(slots, n.slots[:i]...)
	slots = append(slots, n.slots[i+1:]...)
	return &hamtNode[K, V]{bitmap: n.bitmap &^ b, slots: slots}
}

// all yields every entry, in no particular order.
func (m *cowMap[K, V]) all(yield func(K, V) bool) {
	if m.root != nil {
		m.root.all(yield)
	}
}

func (n *hamtNode[K, V]) all(yield func(K, V) bool) bool {
	for i := range n.slots {
		s := &n.slots[i]
		if s.sub != nil {
			if !s.sub.all(yield) {
				return false
			}
		} else if !yield(s.k, s.v) {
			return false
		}
	}
	return true
}

// mix64 spreads the bits of x over a 64-bit hash (the finalizer of
// MurmurHash3, a bijection): SPIs and addresses chosen in sequence still
// spread over the trie, and distinct SPIs or IDs never collide.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

func hashSPI(spi uint32) uint64 { return mix64(uint64(spi)) }

func hashID(id uint64) uint64 { return mix64(id) }
