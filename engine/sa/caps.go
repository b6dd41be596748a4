package sa

import (
	"slices"

	"github.com/mifsec/mifsec/engine/ike"
)

// capSet is Capabilities as an IKE SA keeps them: one bit per notify and
// the peer's RFC 7427 hash algorithms as one bit per identifier below 16
// (3 bytes instead of 32 and a slice per IKE SA). The registry assigns
// identifiers 1-5 (RFC 7427 §7, RFC 8420 §2); larger ones name nothing we
// can sign with and are not kept. Hashes list in ascending order: RFC 7427
// §4 gives the list no order of preference.
type capSet struct {
	flags  capFlag
	hashes uint16
}

type capFlag uint8

const (
	capFragmentation capFlag = 1 << iota // IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383)
	capMOBIKE                            // MOBIKE_SUPPORTED (RFC 4555)
	capClone                             // CLONE_IKE_SA_SUPPORTED (RFC 7791)
	capNoTFC                             // ESP_TFC_PADDING_NOT_SUPPORTED (RFC 7296 §1.3.1)
	capChildless                         // CHILDLESS_IKEV2_SUPPORTED (RFC 6023)
)

func (c capSet) has(f capFlag) bool { return c.flags&f != 0 }
func (c *capSet) set(f capFlag)     { c.flags |= f }

// setHashes keeps the identifiers of hs below 16.
func (c *capSet) setHashes(hs []ike.HashAlgorithm) {
	c.hashes = 0
	for _, h := range hs {
		if h < 16 {
			c.hashes |= 1 << h
		}
	}
}

// sharedHashLists are the read-only lists of the masks of identifiers 0-5
// (the assigned ones), so that snapshots of an IKE SA allocate none.
var sharedHashLists = func() (l [1 << 6][]ike.HashAlgorithm) {
	for m := range l {
		l[m] = slices.Clip(hashList(uint16(m)))
	}
	return l
}()

func hashList(m uint16) []ike.HashAlgorithm {
	var hs []ike.HashAlgorithm
	for h := range ike.HashAlgorithm(16) {
		if m&(1<<h) != 0 {
			hs = append(hs, h)
		}
	}
	return hs
}

// public returns the Capabilities; its SignatureHashes are read-only.
func (c capSet) public() Capabilities {
	p := Capabilities{Fragmentation: c.has(capFragmentation), MOBIKE: c.has(capMOBIKE), Clone: c.has(capClone),
		NoTFC: c.has(capNoTFC), Childless: c.has(capChildless)}
	if int(c.hashes) < len(sharedHashLists) {
		p.SignatureHashes = sharedHashLists[c.hashes]
	} else {
		p.SignatureHashes = slices.Clip(hashList(c.hashes))
	}
	return p
}
