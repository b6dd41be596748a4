package transform

import (
	"slices"
	"strconv"
	"strings"

	"github.com/mifsec/mifsec/engine/ike"
)

// Proposal strings follow strongSwan's syntax: algorithm keywords joined by
// '-', proposals separated by ','. Examples:
//
//	aes256gcm16-prfsha256-x25519           IKE, AEAD
//	aes128-sha256-modp2048                 IKE, PRF taken from the INTEG (strongSwan rule)
//	aes128gcm16-esn                        ESP with extended sequence numbers
//	chacha20poly1305-prfsha384-ecp384      IKE
//	aes256gcm16,aes128-sha256-modp2048     two ESP proposals, the second with PFS

// keyword is one algorithm keyword and the transform it stands for.
type keyword struct {
	name string
	t    ike.Transform
}

func tr(t ike.TransformType, id uint16, bits uint16) ike.Transform {
	return ike.Transform{Type: t, ID: id, KeyLength: bits}
}

// keywords lists the canonical spelling first for each transform (Format
// uses the first match), then aliases.
var keywords = []keyword{
	{"aes128", tr(ike.TransformENCR, uint16(ike.EncrAESCBC), 128)},
	{"aes192", tr(ike.TransformENCR, uint16(ike.EncrAESCBC), 192)},
	{"aes256", tr(ike.TransformENCR, uint16(ike.EncrAESCBC), 256)},
	{"aes", tr(ike.TransformENCR, uint16(ike.EncrAESCBC), 128)},
	{"aes128gcm16", tr(ike.TransformENCR, uint16(ike.EncrAESGCM16), 128)},
	{"aes192gcm16", tr(ike.TransformENCR, uint16(ike.EncrAESGCM16), 192)},
	{"aes256gcm16", tr(ike.TransformENCR, uint16(ike.EncrAESGCM16), 256)},
	{"aes128gcm128", tr(ike.TransformENCR, uint16(ike.EncrAESGCM16), 128)},
	{"aes192gcm128", tr(ike.TransformENCR, uint16(ike.EncrAESGCM16), 192)},
	{"aes256gcm128", tr(ike.TransformENCR, uint16(ike.EncrAESGCM16), 256)},
	{"aes128gcm", tr(ike.TransformENCR, uint16(ike.EncrAESGCM16), 128)},
	{"aes192gcm", tr(ike.TransformENCR, uint16(ike.EncrAESGCM16), 192)},
	{"aes256gcm", tr(ike.TransformENCR, uint16(ike.EncrAESGCM16), 256)},
	{"chacha20poly1305", tr(ike.TransformENCR, uint16(ike.EncrChaCha20Poly1305), 0)},
	{"sha1", tr(ike.TransformINTEG, uint16(ike.IntegHMACSHA1_96), 0)},
	{"sha", tr(ike.TransformINTEG, uint16(ike.IntegHMACSHA1_96), 0)},
	{"sha256", tr(ike.TransformINTEG, uint16(ike.IntegHMACSHA256_128), 0)},
	{"sha2_256", tr(ike.TransformINTEG, uint16(ike.IntegHMACSHA256_128), 0)},
	{"sha384", tr(ike.TransformINTEG, uint16(ike.IntegHMACSHA384_192), 0)},
	{"sha2_384", tr(ike.TransformINTEG, uint16(ike.IntegHMACSHA384_192), 0)},
	{"sha512", tr(ike.TransformINTEG, uint16(ike.IntegHMACSHA512_256), 0)},
	{"sha2_512", tr(ike.TransformINTEG, uint16(ike.IntegHMACSHA512_256), 0)},
	{"prfsha1", tr(ike.TransformPRF, uint16(ike.PRFHMACSHA1), 0)},
	{"prfsha256", tr(ike.TransformPRF, uint16(ike.PRFHMACSHA256), 0)},
	{"prfsha384", tr(ike.TransformPRF, uint16(ike.PRFHMACSHA384), 0)},
	{"prfsha512", tr(ike.TransformPRF, uint16(ike.PRFHMACSHA512), 0)},
	{"x25519", tr(ike.TransformDH, uint16(ike.GroupCurve25519), 0)},
	{"curve25519", tr(ike.TransformDH, uint16(ike.GroupCurve25519), 0)},
	{"ecp256", tr(ike.TransformDH, uint16(ike.GroupECP256), 0)},
	{"ecp384", tr(ike.TransformDH, uint16(ike.GroupECP384), 0)},
	{"ecp521", tr(ike.TransformDH, uint16(ike.GroupECP521), 0)},
	{"modp2048", tr(ike.TransformDH, uint16(ike.GroupMODP2048), 0)},
	{"modp3072", tr(ike.TransformDH, uint16(ike.GroupMODP3072), 0)},
	{"modp4096", tr(ike.TransformDH, uint16(ike.GroupMODP4096), 0)},
	{"esn", tr(ike.TransformESN, uint16(ike.ESNEnabled), 0)},
	{"noesn", tr(ike.TransformESN, uint16(ike.ESNNone), 0)},
}

// prfForInteg is strongSwan's rule for IKE proposals without a PRF keyword:
// each INTEG algorithm brings the PRF of the same hash.
var prfForInteg = map[ike.IntegID]ike.PRFID{
	ike.IntegHMACSHA1_96:    ike.PRFHMACSHA1,
	ike.IntegHMACSHA256_128: ike.PRFHMACSHA256,
	ike.IntegHMACSHA384_192: ike.PRFHMACSHA384,
	ike.IntegHMACSHA512_256: ike.PRFHMACSHA512,
}

// typeOrder is the order of transform types inside a proposal we build.
var typeOrder = []ike.TransformType{ike.TransformENCR, ike.TransformPRF, ike.TransformINTEG, ike.TransformDH, ike.TransformESN}

// ParseProposals parses a comma-separated list of proposals for protocol
// proto (ike.ProtoIKE or ike.ProtoESP). Proposals are numbered from 1 and
// carry no SPI: the IKE layer fills it in.
func ParseProposals(s string, proto ike.ProtocolID) ([]ike.Proposal, error) {
	if proto != ike.ProtoIKE && proto != ike.ProtoESP {
		return nil, errorf(ReasonUnsupported, "proposals for protocol %v", proto)
	}
	parts := strings.Split(s, ",")
	if len(parts) > 255 {
		return nil, errorf(ReasonBadProposal, "%d proposals, at most 255", len(parts))
	}
	out := make([]ike.Proposal, 0, len(parts))
	for i, part := range parts {
		p, err := parseProposal(strings.TrimSpace(part), proto)
		if err != nil {
			return nil, err
		}
		p.Number = uint8(i + 1)
		out = append(out, p)
	}
	return out, nil
}

func parseProposal(s string, proto ike.ProtocolID) (ike.Proposal, error) {
	bad := func(format string, args ...any) error {
		e := errorf(ReasonBadProposal, format, args...)
		e.Detail = strconv.Quote(s) + ": " + e.Detail
		return e
	}
	if s == "" {
		return ike.Proposal{}, bad("empty proposal")
	}
	byType := map[ike.TransformType][]ike.Transform{}
	for _, tok := range strings.Split(s, "-") {
		k := slices.IndexFunc(keywords, func(k keyword) bool { return k.name == strings.ToLower(tok) })
		if k < 0 {
			return ike.Proposal{}, bad("unknown algorithm %q", tok)
		}
		t := keywords[k].t
		if slices.Contains(byType[t.Type], t) {
			return ike.Proposal{}, bad("%q given twice", tok)
		}
		byType[t.Type] = append(byType[t.Type], t)
	}
	encr := byType[ike.TransformENCR]
	if len(encr) == 0 {
		return ike.Proposal{}, bad("no encryption algorithm")
	}
	aead := ike.EncrID(encr[0].ID).IsAEAD()
	for _, t := range encr[1:] {
		if ike.EncrID(t.ID).IsAEAD() != aead {
			// RFC 5282 §8: combined and non-combined modes go in separate proposals.
			return ike.Proposal{}, bad("AEAD and non-AEAD encryption in one proposal")
		}
	}
	switch {
	case aead && len(byType[ike.TransformINTEG]) > 0:
		return ike.Proposal{}, bad("AEAD encryption with an integrity algorithm (RFC 5282 §8)")
	case !aead && len(byType[ike.TransformINTEG]) == 0:
		return ike.Proposal{}, bad("no integrity algorithm for a non-AEAD encryption")
	}
	switch proto {
	case ike.ProtoIKE:
		if len(byType[ike.TransformPRF]) == 0 {
			for _, t := range byType[ike.TransformINTEG] {
				byType[ike.TransformPRF] = append(byType[ike.TransformPRF],
					tr(ike.TransformPRF, uint16(prfForInteg[ike.IntegID(t.ID)]), 0))
			}
		}
		if len(byType[ike.TransformPRF]) == 0 {
			return ike.Proposal{}, bad("IKE proposal without a PRF (add prfsha256 or similar)")
		}
		if len(byType[ike.TransformDH]) == 0 {
			return ike.Proposal{}, bad("IKE proposal without a key exchange group")
		}
		if len(byType[ike.TransformESN]) > 0 {
			return ike.Proposal{}, bad("ESN in an IKE proposal")
		}
	case ike.ProtoESP:
		if len(byType[ike.TransformPRF]) > 0 {
			return ike.Proposal{}, bad("PRF in an ESP proposal")
		}
		if len(byType[ike.TransformESN]) == 0 {
			// RFC 7296 §3.3.3: ESP always carries an ESN transform.
			byType[ike.TransformESN] = []ike.Transform{tr(ike.TransformESN, uint16(ike.ESNNone), 0)}
		}
	}
	p := ike.Proposal{Protocol: proto}
	for _, typ := range typeOrder {
		p.Transforms = append(p.Transforms, byType[typ]...)
	}
	return p, nil
}

// FormatProposals writes proposals back in the syntax ParseProposals reads,
// with canonical keywords and the PRF always explicit. A transform this
// package does not implement is written as type:id[/bits] (for display only).
func FormatProposals(props []ike.Proposal) string {
	var b strings.Builder
	for i, p := range props {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(FormatProposal(p))
	}
	return b.String()
}

// FormatProposal writes one proposal; see FormatProposals.
func FormatProposal(p ike.Proposal) string {
	var toks []string
	esnOnlyNone := p.Protocol == ike.ProtoESP
	for _, t := range p.Transforms {
		if t.Type == ike.TransformESN && ike.ESNID(t.ID) == ike.ESNEnabled {
			esnOnlyNone = false
		}
	}
	for _, typ := range typeOrder {
		for _, t := range p.Transforms {
			if t.Type != typ {
				continue
			}
			switch {
			case t.Type == ike.TransformESN && ike.ESNID(t.ID) == ike.ESNNone && esnOnlyNone:
				continue // the default
			case t.Type == ike.TransformINTEG && ike.IntegID(t.ID) == ike.IntegNone,
				t.Type == ike.TransformDH && ike.GroupID(t.ID) == ike.GroupNone:
				continue // NONE is the same as absent
			}
			toks = append(toks, transformName(t))
		}
	}
	for _, t := range p.Transforms {
		if !slices.Contains(typeOrder, t.Type) {
			toks = append(toks, transformName(t))
		}
	}
	return strings.Join(toks, "-")
}

func transformName(t ike.Transform) string {
	for _, k := range keywords {
		if k.t == t {
			return k.name
		}
	}
	s := strings.ToLower(t.Type.String()) + ":" + strconv.Itoa(int(t.ID))
	if t.KeyLength != 0 {
		s += "/" + strconv.Itoa(int(t.KeyLength))
	}
	return s
}
