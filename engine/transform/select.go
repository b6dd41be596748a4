package transform

import (
	"slices"

	"github.com/mifsec/mifsec/engine/ike"
)

// SelectOptions tune Select.
type SelectOptions struct {
	// KEGroup is the group of the KE payload that came with the proposals
	// (GroupNone if none). When the peer offers it and we accept it, it is
	// chosen, saving an INVALID_KE_PAYLOAD round trip (RFC 7296 §1.2).
	KEGroup ike.GroupID
	// IgnoreDH drops D-H transforms from the comparison and the answer: a
	// Child SA made in IKE_AUTH has no KE (RFC 7296 §1.2).
	IgnoreDH bool
}

// Select answers an SA payload: it takes the peer's proposals in the peer's
// order and returns the first one that one of our local proposals accepts,
// reduced to one transform of each type (RFC 7296 §2.7), picking within a
// type by our local order. The answer keeps the peer's proposal number and
// SPI; the IKE layer puts our SPI in. Absent INTEG or D-H transforms count as
// NONE, an absent ESN as no ESN; NONE is echoed only if the peer sent it.
// No match is NO_PROPOSAL_CHOSEN.
func Select(local, peer []ike.Proposal, opt SelectOptions) (ike.Proposal, error) {
	for _, pp := range peer {
		for _, lp := range local {
			if lp.Protocol != pp.Protocol {
				continue
			}
			if chosen, ok := match(lp, pp, opt); ok {
				return chosen, nil
			}
		}
	}
	return ike.Proposal{}, &Error{Reason: ReasonNoProposalChosen, Notify: ike.NoProposalChosen,
		Detail: "no acceptable proposal among " + FormatProposals(peer)}
}

// implicitNone reports whether an absent transform of type typ counts as
// NONE (RFC 5282 §8; RFC 7296 §3.3.3).
func implicitNone(typ ike.TransformType) bool {
	return typ == ike.TransformINTEG || typ == ike.TransformDH || typ == ike.TransformESN
}

// hasType reports whether p lists a transform of type typ.
func hasType(p ike.Proposal, typ ike.TransformType) bool {
	for _, t := range p.Transforms {
		if t.Type == typ {
			return true
		}
	}
	return false
}

// offers reports whether p offers t: listed, or an implicit NONE.
func offers(p ike.Proposal, t ike.Transform, listed bool) bool {
	if !listed {
		return implicitNone(t.Type) && t == ike.Transform{Type: t.Type}
	}
	return slices.Contains(p.Transforms, t)
}

// match picks, type by type in our order, the first of our transforms the
// peer offers; it allocates only the answer.
func match(lp, pp ike.Proposal, opt SelectOptions) (ike.Proposal, bool) {
	var picked [8]ike.Transform // one per type of typeOrder
	n := 0
	aead := false
	for _, typ := range typeOrder {
		if typ == ike.TransformDH && opt.IgnoreDH {
			continue
		}
		lListed, pListed := hasType(lp, typ), hasType(pp, typ)
		if !lListed && !pListed && !implicitNone(typ) {
			continue
		}
		accept := func(t ike.Transform) bool {
			if t.Type != typ || !offers(pp, t, pListed) {
				return false
			}
			// RFC 5282 §8: AEAD goes with INTEG NONE, anything else needs a real INTEG.
			if typ == ike.TransformINTEG {
				return aead == (ike.IntegID(t.ID) == ike.IntegNone)
			}
			return true
		}
		var t ike.Transform
		found := false
		if typ == ike.TransformDH && opt.KEGroup != ike.GroupNone {
			// The group of the KE payload first, if we list it too.
			kt := ike.Transform{Type: typ, ID: uint16(opt.KEGroup)}
			found = offers(lp, kt, lListed) && accept(kt)
			t = kt
		}
		if !found && lListed {
			i := slices.IndexFunc(lp.Transforms, accept)
			if found = i >= 0; found {
				t = lp.Transforms[i]
			}
		}
		if !found && !lListed {
			t = ike.Transform{Type: typ} // our implicit NONE
			found = accept(t)
		}
		if !found {
			return ike.Proposal{}, false
		}
		if typ == ike.TransformENCR {
			aead = ike.EncrID(t.ID).IsAEAD()
		}
		if pListed { // NONE is echoed only if the peer sent it
			picked[n] = t
			n++
		}
	}
	// Only what this package implements can be chosen.
	if _, err := SuiteOf(ike.Proposal{Protocol: pp.Protocol, Transforms: picked[:n]}); err != nil {
		return ike.Proposal{}, false
	}
	return ike.Proposal{Number: pp.Number, Protocol: pp.Protocol, SPI: slices.Clone(pp.SPI),
		Transforms: slices.Clone(picked[:n])}, true
}

// CheckKE compares the group of the chosen proposal with the group of the
// KE payload received (GroupNone if there was none). A mismatch is
// INVALID_KE_PAYLOAD naming the chosen group (RFC 7296 §1.2, §1.3). When the
// chosen proposal has no group, any KE payload is ignored: no error.
func CheckKE(chosen ike.Proposal, keGroup ike.GroupID) error {
	want := ike.GroupNone
	for _, t := range chosen.Transforms {
		if t.Type == ike.TransformDH {
			want = ike.GroupID(t.ID)
		}
	}
	if want == ike.GroupNone || want == keGroup {
		return nil
	}
	return &Error{Reason: ReasonInvalidKE, Notify: ike.InvalidKEPayload, Group: want,
		Detail: "KE payload is " + keGroup.String() + ", chosen proposal uses " + want.String()}
}

// OfferedGroup is the group to put in KEi: that of the first D-H transform
// of the first proposal (GroupNone if there is none).
func OfferedGroup(props []ike.Proposal) ike.GroupID {
	for _, p := range props {
		for _, t := range p.Transforms {
			if t.Type == ike.TransformDH {
				return ike.GroupID(t.ID)
			}
		}
	}
	return ike.GroupNone
}

// GroupOffered reports whether g appears in our proposals: an initiator
// told INVALID_KE_PAYLOAD may retry only with a group it offered (RFC 7296 §1.2).
func GroupOffered(props []ike.Proposal, g ike.GroupID) bool {
	for _, p := range props {
		if slices.Contains(p.Transforms, ike.Transform{Type: ike.TransformDH, ID: uint16(g)}) {
			return true
		}
	}
	return false
}
