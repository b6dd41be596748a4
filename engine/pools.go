package engine

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// PoolSpec is the configurable part of an address pool.
type PoolSpec struct {
	Ranges []string     `json:"ranges"` // normalised: CIDR or first-last
	DNS    []netip.Addr `json:"dns"`
	PCSCF  []netip.Addr `json:"pcscf"`
}

// Lease binds an address to a peer identity (RFC 7296 §2.19: the gateway
// gives the same identity the same address back).
type Lease struct {
	Addr      netip.Addr `json:"addr"`
	Identity  string     `json:"identity"`
	Online    bool       `json:"-"`
	LeaseTime time.Time  `json:"lease_time"`
	// holders counts the IKE SAs using the address: an identity's IKE
	// SAs share it (one per path, a re-authentication overlapping the old
	// IKE SA, RFC 7791 clones); it is online while one holds it.
	holders int
}

type addrRange struct{ first, last netip.Addr }

func (r addrRange) contains(a netip.Addr) bool {
	return r.first.Compare(a) <= 0 && a.Compare(r.last) <= 0
}

func (r addrRange) overlaps(o addrRange) bool {
	return r.first.BitLen() == o.first.BitLen() && r.first.Compare(o.last) <= 0 && o.first.Compare(r.last) <= 0
}

func (r addrRange) size() *big.Int {
	f := new(big.Int).SetBytes(r.first.AsSlice())
	l := new(big.Int).SetBytes(r.last.AsSlice())
	return l.Sub(l, f).Add(l, big.NewInt(1))
}

// parseRange reads `prefix` or `first-last`. IPv4 prefixes shorter than /31
// lose their network and broadcast addresses.
func parseRange(s string) (addrRange, string, error) {
	s = strings.TrimSpace(s)
	if a, b, ok := strings.Cut(s, "-"); ok {
		first, err1 := netip.ParseAddr(strings.TrimSpace(a))
		last, err2 := netip.ParseAddr(strings.TrimSpace(b))
		if err1 != nil || err2 != nil {
			return addrRange{}, "", fmt.Errorf("range %q: want first-last addresses", s)
		}
		first, last = first.Unmap(), last.Unmap()
		if first.BitLen() != last.BitLen() || last.Less(first) {
			return addrRange{}, "", fmt.Errorf("range %q: addresses of different families or reversed", s)
		}
		return addrRange{first, last}, first.String() + "-" + last.String(), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return addrRange{}, "", fmt.Errorf("range %q: want a CIDR prefix or first-last", s)
	}
	p = p.Masked()
	first := p.Addr()
	last := lastAddr(p)
	if first.Is4() && p.Bits() < 31 {
		first, last = first.Next(), last.Prev()
	}
	return addrRange{first, last}, p.String(), nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

type pool struct {
	ID         string
	PoolSpec   PoolSpec
	CreateTime time.Time
	ranges     []addrRange
	leases     map[leaseKey]*Lease
	byAddr     map[netip.Addr]*Lease
	// hint is, per range, where the search for a free address resumes:
	// addresses before it were taken when it moved (nil: from the start).
	hint []netip.Addr
}

// PoolInfo is what the API shows of a pool.
type PoolInfo struct {
	ID string
	PoolSpec
	Leases     []Lease
	Size       uint64
	InUse      uint64
	CreateTime time.Time
}

func (p *pool) info() PoolInfo {
	in := PoolInfo{ID: p.ID, PoolSpec: p.PoolSpec, CreateTime: p.CreateTime}
	total := new(big.Int)
	for _, r := range p.ranges {
		total.Add(total, r.size())
	}
	if total.IsUint64() {
		in.Size = total.Uint64()
	} else {
		in.Size = math.MaxUint64
	}
	for _, l := range p.leases {
		in.Leases = append(in.Leases, *l)
		if l.Online {
			in.InUse++
		}
	}
	slices.SortFunc(in.Leases, func(a, b Lease) int { return a.Addr.Compare(b.Addr) })
	return in
}

// validatePoolSpec parses and normalises spec.
func validatePoolSpec(spec *PoolSpec) ([]addrRange, error) {
	if len(spec.Ranges) == 0 {
		return nil, errf(InvalidArgument, "INVALID_POOL_RANGE", "pool.ranges", "at least one range is required")
	}
	var rs []addrRange
	for i, s := range spec.Ranges {
		r, norm, err := parseRange(s)
		if err != nil {
			return nil, errf(InvalidArgument, "INVALID_POOL_RANGE", fmt.Sprintf("pool.ranges[%d]", i), "%v", err)
		}
		for j, o := range rs {
			if r.overlaps(o) {
				return nil, errf(InvalidArgument, "OVERLAPPING_POOL_RANGES", fmt.Sprintf("pool.ranges[%d]", i), "overlaps pool.ranges[%d]", j)
			}
		}
		spec.Ranges[i] = norm
		rs = append(rs, r)
	}
	return rs, nil
}

// CreatePool adds an address pool.
func (e *Engine) CreatePool(ctx context.Context, id string, spec PoolSpec) (PoolInfo, error) {
	if err := ValidID(id); err != nil {
		return PoolInfo{}, &Error{Code: InvalidArgument, Reason: ReasonInvalidID, Field: "pool_id", Msg: err.Error()}
	}
	spec.Ranges = slices.Clone(spec.Ranges)
	rs, err := validatePoolSpec(&spec)
	if err != nil {
		return PoolInfo{}, err
	}
	return do(ctx, e, func(st *state) (PoolInfo, error) {
		if _, ok := st.pools[id]; ok {
			return PoolInfo{}, errf(AlreadyExists, "POOL_ALREADY_EXISTS", "pool_id", "pool %q already exists", id)
		}
		if err := st.checkPoolOverlap(id, rs); err != nil {
			return PoolInfo{}, err
		}
		p := &pool{ID: id, PoolSpec: spec, CreateTime: st.e.cfg.Now(), ranges: rs,
			leases: map[leaseKey]*Lease{}, byAddr: map[netip.Addr]*Lease{}}
		st.pools[id] = p
		st.configChanged()
		if err := st.persist(); err != nil {
			delete(st.pools, id)
			return PoolInfo{}, err
		}
		st.e.log.Info("pool created", "pool", id, "ranges", strings.Join(spec.Ranges, ","))
		return p.info(), nil
	})
}

func (st *state) checkPoolOverlap(id string, rs []addrRange) error {
	for _, o := range st.pools {
		if o.ID == id {
			continue
		}
		for i, r := range rs {
			for _, or := range o.ranges {
				if r.overlaps(or) {
					return errf(InvalidArgument, "OVERLAPPING_POOL_RANGES", fmt.Sprintf("pool.ranges[%d]", i), "overlaps pool %q", o.ID)
				}
			}
		}
	}
	return nil
}

// GetPool returns a pool with its leases.
func (e *Engine) GetPool(ctx context.Context, id string) (PoolInfo, error) {
	return do(ctx, e, func(st *state) (PoolInfo, error) {
		p, err := st.pool(id, "name")
		if err != nil {
			return PoolInfo{}, err
		}
		return p.info(), nil
	})
}

// ListPools pages through pools in id order.
func (e *Engine) ListPools(ctx context.Context, after string, limit int) ([]PoolInfo, bool, error) {
	return listPage(ctx, e, after, limit, func(st *state) []PoolInfo {
		var out []PoolInfo
		for _, p := range st.pools {
			out = append(out, p.info())
		}
		slices.SortFunc(out, func(a, b PoolInfo) int { return cmpString(a.ID, b.ID) })
		return out
	}, func(p PoolInfo) string { return p.ID })
}

// Pool fields accepted by UpdatePool.
var PoolFields = []string{"ranges", "dns_servers", "pcscf_servers"}

// UpdatePool changes the named fields of a pool.
func (e *Engine) UpdatePool(ctx context.Context, id string, spec PoolSpec, fields []string) (PoolInfo, error) {
	if len(fields) == 0 {
		fields = PoolFields
	}
	for _, f := range fields {
		if !slices.Contains(PoolFields, f) {
			return PoolInfo{}, errf(InvalidArgument, ReasonInvalidFieldMask, "update_mask", "field %q cannot be updated (allowed: %s)", f, strings.Join(PoolFields, ", "))
		}
	}
	return do(ctx, e, func(st *state) (PoolInfo, error) {
		p, err := st.pool(id, "pool.name")
		if err != nil {
			return PoolInfo{}, err
		}
		next := p.PoolSpec
		next.Ranges = slices.Clone(next.Ranges)
		for _, f := range fields {
			switch f {
			case "ranges":
				next.Ranges = slices.Clone(spec.Ranges)
			case "dns_servers":
				next.DNS = slices.Clone(spec.DNS)
			case "pcscf_servers":
				next.PCSCF = slices.Clone(spec.PCSCF)
			}
		}
		rs, err := validatePoolSpec(&next)
		if err != nil {
			return PoolInfo{}, err
		}
		if err := st.checkPoolOverlap(id, rs); err != nil {
			return PoolInfo{}, err
		}
		for _, l := range p.leases {
			if l.Online && !slices.ContainsFunc(rs, func(r addrRange) bool { return r.contains(l.Addr) }) {
				return PoolInfo{}, errf(FailedPrecondition, "LEASE_IN_USE", "pool.ranges", "address %s is leased to %s and online", l.Addr, l.Identity)
			}
		}
		old, oldRanges := p.PoolSpec, p.ranges
		p.PoolSpec, p.ranges, p.hint = next, rs, nil
		st.configChanged() // DNS and P-CSCF servers are in connections' templates
		if err := st.persist(); err != nil {
			p.PoolSpec, p.ranges = old, oldRanges
			return PoolInfo{}, err
		}
		// Forget offline leases that fell out of the ranges.
		for ident, l := range p.leases {
			if !slices.ContainsFunc(rs, func(r addrRange) bool { return r.contains(l.Addr) }) {
				delete(p.leases, ident)
				delete(p.byAddr, l.Addr)
			}
		}
		return p.info(), nil
	})
}

// DeletePool removes a pool no connection uses.
func (e *Engine) DeletePool(ctx context.Context, id string) error {
	_, err := do(ctx, e, func(st *state) (struct{}, error) {
		p, err := st.pool(id, "name")
		if err != nil {
			return struct{}{}, err
		}
		for _, c := range st.connections {
			if c.Pool == id {
				return struct{}{}, errf(FailedPrecondition, "POOL_IN_USE", "name", "pool %q is used by connection %q", id, c.ID)
			}
		}
		delete(st.pools, id)
		st.configChanged()
		if err := st.persist(); err != nil {
			st.pools[id] = p
			return struct{}{}, err
		}
		return struct{}{}, nil
	})
	return err
}

func (st *state) pool(id, field string) (*pool, error) {
	p, ok := st.pools[id]
	if !ok {
		return nil, errf(NotFound, "POOL_NOT_FOUND", field, "pool %q not found", id)
	}
	return p, nil
}

// lease gives identity an address of the wanted family: the one it had
// before if any, else the first free one. Addresses only become free again
// when UpdatePool forgets leases (which resets the hints), so resuming
// after the last address handed out finds the first free one without
// walking every lease: constant time per lease instead of linear.
func (p *pool) lease(identity string, v6 bool, now time.Time) (netip.Addr, error) {
	if l, ok := p.leases[leaseKey{identity, v6}]; ok {
		l.Online = true
		l.holders++
		return l.Addr, nil
	}
	if len(p.hint) != len(p.ranges) {
		p.hint = make([]netip.Addr, len(p.ranges))
	}
	for i, r := range p.ranges {
		if r.first.Is6() != v6 {
			continue
		}
		a := r.first
		if h := p.hint[i]; h.IsValid() && r.contains(h) {
			a = h
		}
		for tried := 0; a.IsValid() && r.contains(a); a = a.Next() {
			if _, used := p.byAddr[a]; !used {
				l := &Lease{Addr: a, Identity: identity, Online: true, LeaseTime: now, holders: 1}
				p.leases[leaseKey{identity, v6}] = l
				p.byAddr[a] = l
				p.hint[i] = a.Next()
				return a, nil
			}
			if tried++; tried > 1<<20 {
				break // bounded search on huge IPv6 ranges
			}
		}
		p.hint[i] = r.last.Next() // full from the hint on: only the fallback below
	}
	// Reuse the oldest offline lease of another identity.
	var oldest *Lease
	for _, l := range p.leases {
		if !l.Online && l.Addr.Is6() == v6 && (oldest == nil || l.LeaseTime.Before(oldest.LeaseTime)) {
			oldest = l
		}
	}
	if oldest == nil {
		return netip.Addr{}, fmt.Errorf("pool %q is exhausted", p.ID)
	}
	delete(p.leases, leaseKey{oldest.Identity, v6})
	l := &Lease{Addr: oldest.Addr, Identity: identity, Online: true, LeaseTime: now, holders: 1}
	p.leases[leaseKey{identity, v6}] = l
	p.byAddr[l.Addr] = l
	return l.Addr, nil
}

// release gives back one holder's use of identity's lease; with the last
// the lease goes offline and is remembered for the identity's return.
func (p *pool) release(identity string, a netip.Addr) {
	if l, ok := p.leases[leaseKey{identity, a.Is6()}]; ok && l.Addr == a {
		if l.holders > 0 {
			l.holders--
		}
		if l.holders == 0 {
			l.Online = false
		}
	}
}

// leaseKey files a lease by identity and family (an identity may hold one
// IPv4 and one IPv6 address); the key shares the lease's identity string.
type leaseKey struct {
	identity string
	v6       bool
}
