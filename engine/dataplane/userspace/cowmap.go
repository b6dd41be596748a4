package userspace

import "maps"

// cowMap is a hash map for one writer and any number of lock-free readers.
// A published cowMap is never changed: with and without return a new one
// that shares every shard but the one they change, so a change copies the
// shard directory (a slice of pointers) and one shard instead of the whole
// map. The directory doubles when the shards grow past shardMax entries on
// average and halves below shardMin, so each shard holds a few dozen
// entries whatever the size (the rehash is linear, amortized over the
// changes that made it necessary): a change costs about sqrt(N) pointer
// copies plus a few dozen entries, a lookup one more indirection than a
// plain map.
//
// The zero value is an empty map; hash must be set before the first change.
type cowMap[K comparable, V any] struct {
	shards []map[K]V // len a power of two; index = hash >> shift
	shift  uint8
	n      int
	hash   func(K) uint32
}

const (
	shardMax = 64 // grow the directory above this many entries per shard
	shardMin = 8  // shrink it below this many

	maxShardBits = 16 // at most 65,536 shards
)

func newCowMap[K comparable, V any](hash func(K) uint32) cowMap[K, V] {
	return cowMap[K, V]{shards: make([]map[K]V, 1), shift: 32, hash: hash}
}

// get returns the value of k. It allocates nothing.
func (m *cowMap[K, V]) get(k K) (V, bool) {
	if len(m.shards) == 0 {
		var zero V
		return zero, false
	}
	v, ok := m.shards[m.hash(k)>>m.shift][k]
	return v, ok
}

// size returns the number of entries.
func (m *cowMap[K, V]) size() int { return m.n }

// with returns a map in which k holds v; m is not changed.
func (m cowMap[K, V]) with(k K, v V) cowMap[K, V] {
	if len(m.shards) == 0 {
		m = newCowMap[K, V](m.hash)
	}
	i := m.hash(k) >> m.shift
	old := m.shards[i]
	s := make(map[K]V, len(old)+1)
	maps.Copy(s, old)
	if _, had := old[k]; !had {
		m.n++
	}
	s[k] = v
	m.shards = setShard(m.shards, i, s)
	if m.n > shardMax*len(m.shards) && m.shift > 32-maxShardBits {
		return m.resized(2 * len(m.shards))
	}
	return m
}

// without returns a map without k; m is not changed.
func (m cowMap[K, V]) without(k K) cowMap[K, V] {
	if len(m.shards) == 0 {
		return m
	}
	i := m.hash(k) >> m.shift
	old := m.shards[i]
	if _, had := old[k]; !had {
		return m
	}
	var s map[K]V
	if len(old) > 1 {
		s = maps.Clone(old)
		delete(s, k)
	}
	m.n--
	m.shards = setShard(m.shards, i, s)
	if len(m.shards) > 1 && m.n < shardMin*len(m.shards) {
		return m.resized(len(m.shards) / 2)
	}
	return m
}

// setShard returns a copy of dir with s at i.
func setShard[K comparable, V any](dir []map[K]V, i uint32, s map[K]V) []map[K]V {
	nd := make([]map[K]V, len(dir))
	copy(nd, dir)
	nd[i] = s
	return nd
}

// resized rehashes m into n shards (n a power of two).
func (m cowMap[K, V]) resized(n int) cowMap[K, V] {
	shift := uint8(32)
	for l := n; l > 1; l >>= 1 {
		shift--
	}
	r := cowMap[K, V]{shards: make([]map[K]V, n), shift: shift, n: m.n, hash: m.hash}
	for k, v := range m.all {
		i := r.hash(k) >> shift
		if r.shards[i] == nil {
			r.shards[i] = make(map[K]V, m.n/n+m.n/(4*n)+1)
		}
		r.shards[i][k] = v
	}
	return r
}

// all yields every entry, in no particular order.
func (m *cowMap[K, V]) all(yield func(K, V) bool) {
	for _, s := range m.shards {
		for k, v := range s {
			if !yield(k, v) {
				return
			}
		}
	}
}

// mix32 spreads the bits of x over a 32-bit hash (the finalizer of
// MurmurHash3's 64-bit variant): SPIs and addresses chosen in sequence
// still fall in every shard.
func mix32(x uint64) uint32 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return uint32(x)
}

func hashSPI(spi uint32) uint32 { return mix32(uint64(spi)) }

func hashID(id uint64) uint32 { return mix32(id) }
