package userspace

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/mifsec/mifsec/engine/dataplane"
)

// polIndex finds the outbound policy of a flow, the first by priority then
// ID whose selectors hold it (RFC 4301 §4.4.1), without trying every
// policy. A policy is filed under each distinct remote prefix it has, in the
// bucket of that prefix's family and length: the policies that can hold a
// flow are those filed under its destination masked to each length in use,
// and those with a remote selector for any address (rest). The first match
// of each of these ordered lists is the best of its list; the lookup
// returns the best of those. A gateway (one /32 per end user, a few site
// prefixes) does one map lookup per prefix length in use.
//
// A published polIndex is never changed: with and without return a new one
// sharing what they do not change.
type polIndex struct {
	v4, v6 []prefixBucket // one per prefix length in use, in no order
	rest   []*polEntry    // a remote selector holds every address; ordered
}

// prefixBucket files policies by their remote prefixes of one length.
type prefixBucket struct {
	bits int
	m    cowMap[addrKey, []*polEntry] // masked prefix -> policies, ordered
}

// addrKey is an address as two words (IPv4: the low 32 bits of lo).
type addrKey struct{ hi, lo uint64 }

func keyOf(a netip.Addr) addrKey {
	if a.Is4() {
		b := a.As4()
		return addrKey{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return addrKey{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

// masked keeps the first bits bits of k, an address of the family (v6).
func (k addrKey) masked(v6 bool, bits int) addrKey {
	if !v6 {
		return addrKey{lo: k.lo & uint64(^uint32(0)<<(32-bits))}
	}
	if bits <= 64 {
		return addrKey{hi: k.hi & (^uint64(0) << (64 - bits))}
	}
	return addrKey{hi: k.hi, lo: k.lo & (^uint64(0) << (128 - bits))}
}

func hashKey(k addrKey) uint64 { return mix64(k.hi*0x9e3779b97f4a7c15 + k.lo) }

// matches applies the policy's selectors to a flow: source in Local,
// destination in Remote (RFC 4301 §4.4.1).
func (pe *polEntry) matches(f *dataplane.Flow, hasPorts bool) bool {
	return anyMatch(pe.p.Remote, f.Dst, f.DstPort, f.Protocol, hasPorts) &&
		anyMatch(pe.p.Local, f.Src, f.SrcPort, f.Protocol, hasPorts)
}

// lookup returns the policy of the flow, or nil. It allocates nothing.
func (x *polIndex) lookup(f *dataplane.Flow, hasPorts bool) *polEntry {
	best := firstMatch(x.rest, f, hasPorts, nil)
	bs, v6 := x.v4, false
	if !f.Dst.Is4() {
		bs, v6 = x.v6, true
	}
	if len(bs) == 0 {
		return best
	}
	k := keyOf(f.Dst)
	for i := range bs {
		b := &bs[i]
		if l, ok := b.m.get(k.masked(v6, b.bits)); ok {
			best = firstMatch(l, f, hasPorts, best)
		}
	}
	return best
}

// firstMatch returns the first policy of ps (ordered) that holds the flow
// if it comes before best, else best.
func firstMatch(ps []*polEntry, f *dataplane.Flow, hasPorts bool, best *polEntry) *polEntry {
	for _, pe := range ps {
		if best != nil && comparePolicies(pe, best) >= 0 {
			break
		}
		if pe.matches(f, hasPorts) {
			return pe
		}
	}
	return best
}

// remoteKey is where one remote selector files its policy.
type remoteKey struct {
	v6   bool
	bits int
	k    addrKey
}

// remoteKeys returns the distinct places pe is filed under, or ok false if
// a remote selector holds every address (pe goes to rest).
func remoteKeys(pe *polEntry) (ks []remoteKey, ok bool) {
	for i := range pe.p.Remote {
		pfx := pe.p.Remote[i].Prefix
		if !pfx.IsValid() {
			return nil, false
		}
		v6 := !pfx.Addr().Is4()
		rk := remoteKey{v6: v6, bits: pfx.Bits(), k: keyOf(pfx.Addr()).masked(v6, pfx.Bits())}
		if !slices.Contains(ks, rk) {
			ks = append(ks, rk)
		}
	}
	return ks, true
}

// with returns an index that also holds pe; x is not changed.
func (x polIndex) with(pe *polEntry) polIndex { return x.file(pe, true) }

// without returns an index without pe (filed by with); x is not changed.
func (x polIndex) without(pe *polEntry) polIndex { return x.file(pe, false) }

func (x polIndex) file(pe *polEntry, add bool) polIndex {
	ks, ok := remoteKeys(pe)
	if !ok {
		x.rest = putPolicyIn(x.rest, pe, add)
		return x
	}
	for _, rk := range ks {
		bs := &x.v4
		if rk.v6 {
			bs = &x.v6
		}
		i := slices.IndexFunc(*bs, func(b prefixBucket) bool { return b.bits == rk.bits })
		b := prefixBucket{bits: rk.bits, m: newCowMap[addrKey, []*polEntry](hashKey)}
		if i >= 0 {
			b = (*bs)[i]
		}
		l, _ := b.m.get(rk.k)
		if l = putPolicyIn(l, pe, add); len(l) > 0 {
			b.m = b.m.with(rk.k, l)
		} else {
			b.m = b.m.without(rk.k)
		}
		switch {
		case i < 0:
			*bs = append(slices.Clip(*bs), b)
		case b.m.size() == 0:
			*bs = slices.Delete(slices.Clone(*bs), i, i+1)
		default:
			*bs = slices.Clone(*bs)
			(*bs)[i] = b
		}
	}
	return x
}

// putPolicyIn returns a new ordered list: ps with pe added, or without it.
func putPolicyIn(ps []*polEntry, pe *polEntry, add bool) []*polEntry {
	if add {
		return withPolicy(ps, pe)
	}
	if i := slices.Index(ps, pe); i >= 0 {
		return withoutPolicy(ps, i)
	}
	return ps
}
