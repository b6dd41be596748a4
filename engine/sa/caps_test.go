package sa

import (
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

// The IKE struct stays in the 384-byte size class: a gateway holds one
// per peer.
func TestIKESize(t *testing.T) {
	if n := unsafe.Sizeof(IKE{}); n > 384 {
		t.Fatalf("IKE is %d bytes, want at most 384", n)
	}
	if n := unsafe.Sizeof(session{}); n > 176 {
		t.Fatalf("session is %d bytes, want at most 176", n)
	}
}
