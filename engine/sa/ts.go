package sa

import (
	"net/netip"
	"slices"
	"strconv"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/ike"
)

// Traffic selector arithmetic (RFC 7296 §2.9, §3.13.1).

// HostTS is a selector for one address, any protocol and port.
func HostTS(a netip.Addr) ike.TrafficSelector {
	a = a.Unmap()
	return ike.TrafficSelector{StartPort: 0, EndPort: 0xffff, Start: a, End: a}
}

// PrefixTS is a selector for a prefix, any protocol and port.
func PrefixTS(p netip.Prefix) ike.TrafficSelector {
	p = p.Masked()
	return ike.TrafficSelector{StartPort: 0, EndPort: 0xffff, Start: p.Addr(), End: lastAddr(p)}
}

func anyTS(v6 bool) ike.TrafficSelector {
	if v6 {
		return PrefixTS(netip.PrefixFrom(netip.IPv6Unspecified(), 0))
	}
	return PrefixTS(netip.PrefixFrom(netip.IPv4Unspecified(), 0))
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := range b {
		bits := p.Bits() - 8*i
		switch {
		case bits >= 8:
		case bits <= 0:
			b[i] = 0xff
		default:
			b[i] |= 0xff >> bits
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func validTS(t ike.TrafficSelector) bool {
	return t.Start.IsValid() && t.End.IsValid() && t.Start.Is4() == t.End.Is4() &&
		t.Start.Compare(t.End) <= 0 && t.StartPort <= t.EndPort
}

// intersect is the common part of two selectors, if any.
func intersect(a, b ike.TrafficSelector) (ike.TrafficSelector, bool) {
	if !validTS(a) || !validTS(b) || a.Start.Is4() != b.Start.Is4() {
		return ike.TrafficSelector{}, false
	}
	var r ike.TrafficSelector
	switch {
	case a.IPProtocol == 0:
		r.IPProtocol = b.IPProtocol
	case b.IPProtocol == 0 || b.IPProtocol == a.IPProtocol:
		r.IPProtocol = a.IPProtocol
	default:
		return r, false
	}
	r.StartPort, r.EndPort = max(a.StartPort, b.StartPort), min(a.EndPort, b.EndPort)
	r.Start, r.End = a.Start, a.End
	if b.Start.Compare(r.Start) > 0 {
		r.Start = b.Start
	}
	if b.End.Compare(r.End) < 0 {
		r.End = b.End
	}
	return r, r.StartPort <= r.EndPort && r.Start.Compare(r.End) <= 0
}

// narrow appends to out the parts of the proposed selectors that the
// allowed ones cover: the responder's narrowing (§2.9).
func narrow(out, proposed, allowed []ike.TrafficSelector) []ike.TrafficSelector {
	for _, p := range proposed {
		for _, a := range allowed {
			if r, ok := intersect(p, a); ok && !containsTS(out, r) {
				out = append(out, r)
			}
		}
	}
	return out
}

// tsPack is a Child SA's local and remote selectors, each capped at its
// length and read-only (packTS).
type tsPack struct{ local, remote []ike.TrafficSelector }

// equal reports whether both lists are the same.
func (p tsPack) equal(o tsPack) bool {
	return slices.Equal(p.local, o.local) && slices.Equal(p.remote, o.remote)
}

// packTS keeps a Child SA's selectors: a list equal to its counterpart in
// shareL or shareR (the configured ones, which every IKE SA of the
// connection shares) is that list; the others are copied, together, into
// one allocation (one object per Child SA instead of two, none when both
// are the configured ones).
func packTS(local, remote, shareL, shareR []ike.TrafficSelector) tsPack {
	sl := len(local) > 0 && slices.Equal(local, shareL)
	sr := len(remote) > 0 && slices.Equal(remote, shareR)
	n := 0
	if !sl {
		n += len(local)
	}
	if !sr {
		n += len(remote)
	}
	var b []ike.TrafficSelector
	if n > 0 {
		b = make([]ike.TrafficSelector, 0, n)
	}
	keep := func(l, share []ike.TrafficSelector, shared bool) []ike.TrafficSelector {
		if shared {
			return share[:len(share):len(share)]
		}
		k := len(b)
		b = append(b, l...)
		return b[k:len(b):len(b)]
	}
	return tsPack{keep(local, shareL, sl), keep(remote, shareR, sr)}
}

func containsTS(list []ike.TrafficSelector, t ike.TrafficSelector) bool {
	for _, x := range list {
		if x == t {
			return true
		}
	}
	return false
}

// within reports whether a is inside b.
func within(a, b ike.TrafficSelector) bool {
	r, ok := intersect(a, b)
	return ok && r == a
}

// subsetTS reports whether each of got lies inside one of offered: an
// initiator's check of the responder's narrowing (§2.9).
func subsetTS(got, offered []ike.TrafficSelector) bool {
	if len(got) == 0 {
		return false
	}
	for _, g := range got {
		ok := false
		for _, o := range offered {
			ok = ok || within(g, o)
		}
		if !ok {
			return false
		}
	}
	return true
}

// selectors converts selectors to the data plane's prefixes (a range that
// is not a prefix becomes several).
func selectors(ts []ike.TrafficSelector) []dataplane.Selector {
	var out []dataplane.Selector
	for _, t := range ts {
		if !validTS(t) {
			continue
		}
		for _, p := range rangePrefixes(t.Start, t.End) {
			out = append(out, dataplane.Selector{Prefix: p, Protocol: t.IPProtocol, PortFrom: t.StartPort, PortTo: t.EndPort})
		}
	}
	return out
}

// rangePrefixes covers [start, end] with the fewest prefixes (at most 2
// per address bit).
func rangePrefixes(start, end netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for start.IsValid() && start.Compare(end) <= 0 {
		var p netip.Prefix
		for bits := 0; bits <= start.BitLen(); bits++ {
			c := netip.PrefixFrom(start, bits).Masked()
			if c.Addr() == start && lastAddr(c).Compare(end) <= 0 {
				p = c
				break
			}
		}
		out = append(out, p)
		start = lastAddr(p).Next()
	}
	return out
}

func tsString(ts []ike.TrafficSelector) []string {
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		s := t.Start.String() + "-" + t.End.String()
		if ps := rangePrefixes(t.Start, t.End); len(ps) == 1 {
			s = ps[0].String()
		}
		if t.IPProtocol != 0 || t.StartPort != 0 || t.EndPort != 0xffff {
			s += "[" + strconv.Itoa(int(t.IPProtocol)) + "/" + strconv.Itoa(int(t.StartPort)) + "-" + strconv.Itoa(int(t.EndPort)) + "]"
		}
		out = append(out, s)
	}
	return out
}
