package ike

import (
	"encoding/binary"
	"strconv"
)

// RFC 7296 §3.3: Security Association payload.

const (
	lastSubstruc     = 0
	moreProposals    = 2 // §3.3.1 Last Substruc
	moreTransforms   = 3 // §3.3.2 Last Substruc
	attrFormatTV     = 0x8000
	attrKeyLength    = 14 // §3.3.5 Key Length (in bits), TV format
	proposalHdrLen   = 8
	transformHdrLen  = 8
	keyLengthAttrLen = 4
)

// Transform is one transform of a proposal (§3.3.2). ID is typed by Type:
// EncrID, PRFID, IntegID, GroupID or ESNID.
type Transform struct {
	Type      TransformType
	ID        uint16
	KeyLength uint16 // bits; 0 = no Key Length attribute (§3.3.5, TV format)
}

// String names the transform, e.g. "ENCR_AES_GCM_16/256".
func (t Transform) String() string {
	var s string
	switch t.Type {
	case TransformENCR:
		s = EncrID(t.ID).String()
	case TransformPRF:
		s = PRFID(t.ID).String()
	case TransformINTEG:
		s = IntegID(t.ID).String()
	case TransformDH:
		s = GroupID(t.ID).String()
	case TransformESN:
		s = ESNID(t.ID).String()
	default:
		s = t.Type.String() + ":" + strconv.Itoa(int(t.ID))
	}
	if t.KeyLength != 0 {
		s += "/" + strconv.Itoa(int(t.KeyLength))
	}
	return s
}

// Proposal is one proposal substructure (§3.3.1). SPI is empty in
// IKE_SA_INIT, 8 octets when rekeying the IKE SA, 4 for ESP and AH.
type Proposal struct {
	Number     uint8
	Protocol   ProtocolID
	SPI        []byte
	Transforms []Transform
}

// SA is the Security Association payload (§3.3).
type SA struct {
	Proposals []Proposal
}

func (*SA) Type() PayloadType { return PayloadSA }

func (p *SA) appendBody(dst []byte) ([]byte, error) {
	if len(p.Proposals) == 0 {
		return nil, encodeError(PayloadSA, "no proposals")
	}
	for i := range p.Proposals {
		pr := &p.Proposals[i]
		if len(pr.SPI) > 0xff {
			return nil, encodeError(PayloadSA, "SPI longer than 255 octets")
		}
		if len(pr.Transforms) == 0 || len(pr.Transforms) > 0xff {
			return nil, encodeError(PayloadSA, "proposal "+itoa(int(pr.Number))+" needs 1..255 transforms")
		}
		start := len(dst)
		last := byte(moreProposals)
		if i == len(p.Proposals)-1 {
			last = lastSubstruc
		}
		dst = append(dst, last, 0, 0, 0, pr.Number, byte(pr.Protocol), byte(len(pr.SPI)), byte(len(pr.Transforms)))
		dst = append(dst, pr.SPI...)
		for j, t := range pr.Transforms {
			last := byte(moreTransforms)
			if j == len(pr.Transforms)-1 {
				last = lastSubstruc
			}
			tlen := transformHdrLen
			if t.KeyLength != 0 {
				tlen += keyLengthAttrLen
			}
			dst = append(dst, last, 0, 0, byte(tlen), byte(t.Type), 0)
			dst = binary.BigEndian.AppendUint16(dst, t.ID)
			if t.KeyLength != 0 {
				dst = binary.BigEndian.AppendUint16(dst, attrFormatTV|attrKeyLength)
				dst = binary.BigEndian.AppendUint16(dst, t.KeyLength)
			}
		}
		n := len(dst) - start
		if n > maxPayloadLen {
			return nil, encodeError(PayloadSA, "proposal longer than 65535 octets")
		}
		binary.BigEndian.PutUint16(dst[start+2:], uint16(n))
	}
	return dst, nil
}

func (p *SA) decodeBody(b []byte) error {
	p.Proposals = nil
	if len(b) == 0 {
		return syntaxError(PayloadSA, "no proposals")
	}
	// One slice for the proposals and one for all their transforms; one
	// block for both when there is one proposal of up to 8 transforms (as
	// in every answer, §2.7).
	np, nt := countProposals(b)
	var slab []Transform
	if np == 1 && nt <= 8 {
		box := new(struct {
			p [1]Proposal
			t [8]Transform
		})
		p.Proposals, slab = box.p[:0], box.t[:0:nt]
	} else {
		p.Proposals = make([]Proposal, 0, np)
		slab = make([]Transform, 0, nt)
	}
	for more := true; more; {
		if len(b) < proposalHdrLen {
			return syntaxError(PayloadSA, "truncated proposal header")
		}
		last, plen := b[0], int(binary.BigEndian.Uint16(b[2:4]))
		switch last {
		case lastSubstruc:
			more = false
		case moreProposals:
		default:
			return syntaxError(PayloadSA, "proposal Last Substruc "+itoa(int(last)))
		}
		if plen < proposalHdrLen || plen > len(b) {
			return syntaxError(PayloadSA, "bad Proposal Length "+itoa(plen))
		}
		if !more && plen != len(b) {
			return syntaxError(PayloadSA, "octets after the last proposal")
		}
		pr, ok, err := decodeProposal(b[:plen], slab)
		if err != nil {
			return err
		}
		if ok {
			p.Proposals = append(p.Proposals, pr)
			slab = slab[:len(slab)+len(pr.Transforms)]
		}
		b = b[plen:]
	}
	if len(p.Proposals) == 0 {
		// Every proposal carried an attribute we do not understand (§3.3.6).
		return &Error{Notify: NoProposalChosen, Reason: "SA: every proposal has an unsupported transform attribute"}
	}
	return nil
}

// countProposals counts the proposals of an SA body and their transforms
// (§3.3.1: Num Transforms) as far as the proposal headers are well formed.
func countProposals(b []byte) (proposals, transforms int) {
	for len(b) >= proposalHdrLen {
		plen := int(binary.BigEndian.Uint16(b[2:4]))
		if plen < proposalHdrLen || plen > len(b) {
			break
		}
		proposals++
		transforms += int(b[7])
		b = b[plen:]
	}
	return proposals, transforms
}

// decodeProposal decodes one proposal substructure. ok is false when the
// proposal carries a transform attribute other than Key Length: RFC 7296
// §3.3.6 has the receiver reject such a proposal, so it is dropped here.
// The transforms go into the spare capacity of slab when it has room (cut
// to their number, so appending to them cannot overwrite a neighbour's).
func decodeProposal(b []byte, slab []Transform) (pr Proposal, ok bool, err error) {
	pr.Number, pr.Protocol = b[4], ProtocolID(b[5])
	spiSize, nt := int(b[6]), int(b[7])
	b = b[proposalHdrLen:]
	if spiSize > len(b) {
		return pr, false, syntaxError(PayloadSA, "SPI Size beyond the proposal")
	}
	pr.SPI = nilIfEmpty(b[:spiSize])
	b = b[spiSize:]
	if nt == 0 {
		return pr, false, syntaxError(PayloadSA, "proposal "+itoa(int(pr.Number))+" has no transforms")
	}
	ok = true
	if cap(slab)-len(slab) >= nt {
		pr.Transforms = slab[len(slab) : len(slab) : len(slab)+nt]
	} else {
		pr.Transforms = make([]Transform, 0, nt)
	}
	for i := 0; i < nt; i++ {
		if len(b) < transformHdrLen {
			return pr, false, syntaxError(PayloadSA, "truncated transform")
		}
		last, tlen := b[0], int(binary.BigEndian.Uint16(b[2:4]))
		if want := byte(moreTransforms); i == nt-1 {
			if last != lastSubstruc {
				return pr, false, syntaxError(PayloadSA, "Last Substruc of the last transform is "+itoa(int(last)))
			}
		} else if last != want {
			return pr, false, syntaxError(PayloadSA, "transform Last Substruc "+itoa(int(last))+" before the last transform")
		}
		if tlen < transformHdrLen || tlen > len(b) {
			return pr, false, syntaxError(PayloadSA, "bad Transform Length "+itoa(tlen))
		}
		t := Transform{Type: TransformType(b[4]), ID: binary.BigEndian.Uint16(b[6:8])}
		known, err := decodeAttributes(&t, b[transformHdrLen:tlen])
		if err != nil {
			return pr, false, err
		}
		ok = ok && known
		pr.Transforms = append(pr.Transforms, t)
		b = b[tlen:]
	}
	if len(b) != 0 {
		return pr, false, syntaxError(PayloadSA, "Number of Transforms "+itoa(nt)+" leaves octets in the proposal")
	}
	return pr, ok, nil
}

// decodeAttributes reads transform attributes (§3.3.5). known is false if an
// attribute other than Key Length is present.
func decodeAttributes(t *Transform, b []byte) (known bool, err error) {
	known = true
	seenKeyLength := false
	for len(b) > 0 {
		if len(b) < 4 {
			return false, syntaxError(PayloadSA, "truncated transform attribute")
		}
		at := binary.BigEndian.Uint16(b[0:2])
		n := 4
		if at&attrFormatTV == 0 {
			n += int(binary.BigEndian.Uint16(b[2:4]))
			if n > len(b) {
				return false, syntaxError(PayloadSA, "attribute length beyond the transform")
			}
		}
		switch {
		case at == attrFormatTV|attrKeyLength:
			if seenKeyLength {
				return false, syntaxError(PayloadSA, "two Key Length attributes")
			}
			seenKeyLength = true
			t.KeyLength = binary.BigEndian.Uint16(b[2:4])
			if t.KeyLength == 0 {
				return false, syntaxError(PayloadSA, "Key Length 0")
			}
		case at == attrKeyLength:
			return false, syntaxError(PayloadSA, "Key Length attribute in TLV format")
		default:
			known = false
		}
		b = b[n:]
	}
	return known, nil
}
