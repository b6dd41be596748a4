package sa

import (
	"net/netip"
	"slices"
	"testing"
	"unsafe"

	"github.com/mifsec/mifsec/engine/ike"
)

// Capabilities survive the compact form: flags one by one, hash
// identifiers below 16 in ascending order (RFC 7427 §4 gives the list no
// order), larger ones dropped; the shared lists are read-only.
func TestCapSet(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []capFlag
		in    []ike.HashAlgorithm
		want  []ike.HashAlgorithm
	}{
		{"none", nil, nil, nil},
		{"ours", []capFlag{capMOBIKE}, []ike.HashAlgorithm{ike.HashSHA256, ike.HashSHA384, ike.HashSHA512, ike.HashIdentity},
			[]ike.HashAlgorithm{ike.HashSHA256, ike.HashSHA384, ike.HashSHA512, ike.HashIdentity}},
		{"peer order", []capFlag{capClone, capNoTFC}, []ike.HashAlgorithm{ike.HashSHA512, ike.HashSHA1}, []ike.HashAlgorithm{ike.HashSHA1, ike.HashSHA512}},
		{"unassigned", []capFlag{capFragmentation, capChildless}, []ike.HashAlgorithm{9, 15, 16, 1000, ike.HashSHA256},
			[]ike.HashAlgorithm{ike.HashSHA256, 9, 15}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c capSet
			for _, f := range tc.flags {
				c.set(f)
			}
			c.setHashes(tc.in)
			p := c.public()
			want := Capabilities{SignatureHashes: tc.want}
			for _, f := range tc.flags {
				switch f {
				case capFragmentation:
					want.Fragmentation = true
				case capMOBIKE:
					want.MOBIKE = true
				case capClone:
					want.Clone = true
				case capNoTFC:
					want.NoTFC = true
				case capChildless:
					want.Childless = true
				}
			}
			if p.Fragmentation != want.Fragmentation || p.MOBIKE != want.MOBIKE || p.Clone != want.Clone ||
				p.NoTFC != want.NoTFC || p.Childless != want.Childless || !slices.Equal(p.SignatureHashes, want.SignatureHashes) {
				t.Fatalf("got %+v, want %+v", p, want)
			}
			if len(p.SignatureHashes) != cap(p.SignatureHashes) {
				t.Fatal("a shared hash list has room to append into")
			}
		})
	}
}

// The IKE struct stays in the 320-byte size class, its session in the
// 128-byte one and its cached response in the 48-byte one, a Child SA in
// the 96-byte one and a policy group in the 96-byte one: a gateway holds
// one each per peer.
func TestIKESize(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size, max uintptr
	}{
		{"IKE", unsafe.Sizeof(IKE{}), 320},
		{"session", unsafe.Sizeof(session{}), 128},
		{"cachedResp", unsafe.Sizeof(cachedResp{}), 48},
		{"childSA", unsafe.Sizeof(childSA{}), 96},
		{"policyGroup", unsafe.Sizeof(policyGroup{}), 96},
	} {
		if tc.size > tc.max {
			t.Errorf("%s is %d bytes, want at most %d", tc.name, tc.size, tc.max)
		}
	}
}

// packTS shares a list equal to the configured one and keeps the others
// in one allocation, neither able to grow into the other; a Child SA's
// selectors are its own when set, else its group's.
func TestPackTS(t *testing.T) {
	a := ike.TrafficSelector{EndPort: 65535, Start: netip.MustParseAddr("10.0.0.1"), End: netip.MustParseAddr("10.0.0.1")}
	b := ike.TrafficSelector{EndPort: 65535, Start: netip.MustParseAddr("198.18.0.0"), End: netip.MustParseAddr("198.18.0.255")}
	conf := []ike.TrafficSelector{b}
	for _, tc := range []struct {
		name                   string
		local, remote          []ike.TrafficSelector
		sharedLocal, sharedRem bool
	}{
		{"one each", []ike.TrafficSelector{a}, []ike.TrafficSelector{a}, false, false},
		{"two and one", []ike.TrafficSelector{a, b}, []ike.TrafficSelector{a}, false, false},
		{"local configured", []ike.TrafficSelector{b}, []ike.TrafficSelector{a}, true, false},
		{"both configured", []ike.TrafficSelector{b}, []ike.TrafficSelector{b}, true, true},
		{"none local", nil, []ike.TrafficSelector{a}, false, false},
		{"none", nil, nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := packTS(tc.local, tc.remote, conf, conf)
			l, r := p.local, p.remote
			if !slices.Equal(l, tc.local) || !slices.Equal(r, tc.remote) || cap(l) != len(l) || cap(r) != len(r) {
				t.Fatalf("packTS: %v %v", l, r)
			}
			for _, x := range []struct {
				got    []ike.TrafficSelector
				shared bool
			}{{l, tc.sharedLocal}, {r, tc.sharedRem}} {
				if len(x.got) > 0 && (&x.got[0] == &conf[0]) != x.shared {
					t.Fatalf("list shared with the configured one: %v, want %v", !x.shared, x.shared)
				}
			}
			if !tc.sharedLocal && !tc.sharedRem && len(l) > 0 && len(r) > 0 &&
				uintptr(unsafe.Pointer(&l[len(l)-1]))+unsafe.Sizeof(a) != uintptr(unsafe.Pointer(&r[0])) {
				t.Fatal("not one allocation")
			}
			g := newPolicyGroup(1, 2, p)
			c := &childSA{group: g}
			if gl, gr := c.ts(); !slices.Equal(gl, l) || !slices.Equal(gr, r) {
				t.Fatal("a Child SA does not read its group's selectors")
			}
			own := packTS(tc.remote, tc.local, nil, nil)
			c.setOwnTS(&own)
			if ol, or := c.ts(); !slices.Equal(ol, tc.remote) || !slices.Equal(or, tc.local) {
				t.Fatal("a Child SA does not read its own selectors")
			}
		})
	}
}
