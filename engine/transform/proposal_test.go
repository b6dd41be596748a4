package transform

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/mifsec/mifsec/engine/ike"
)

func T(typ ike.TransformType, id uint16, bits uint16) ike.Transform {
	return ike.Transform{Type: typ, ID: id, KeyLength: bits}
}

var (
	tGCM128  = T(ike.TransformENCR, uint16(ike.EncrAESGCM16), 128)
	tGCM256  = T(ike.TransformENCR, uint16(ike.EncrAESGCM16), 256)
	tCBC128  = T(ike.TransformENCR, uint16(ike.EncrAESCBC), 128)
	tCBC256  = T(ike.TransformENCR, uint16(ike.EncrAESCBC), 256)
	tChaCha  = T(ike.TransformENCR, uint16(ike.EncrChaCha20Poly1305), 0)
	tSHA256  = T(ike.TransformINTEG, uint16(ike.IntegHMACSHA256_128), 0)
	tSHA512  = T(ike.TransformINTEG, uint16(ike.IntegHMACSHA512_256), 0)
	tINone   = T(ike.TransformINTEG, uint16(ike.IntegNone), 0)
	tPRF256  = T(ike.TransformPRF, uint16(ike.PRFHMACSHA256), 0)
	tPRF384  = T(ike.TransformPRF, uint16(ike.PRFHMACSHA384), 0)
	tPRF512  = T(ike.TransformPRF, uint16(ike.PRFHMACSHA512), 0)
	tX25519  = T(ike.TransformDH, uint16(ike.GroupCurve25519), 0)
	tECP256  = T(ike.TransformDH, uint16(ike.GroupECP256), 0)
	tECP384  = T(ike.TransformDH, uint16(ike.GroupECP384), 0)
	tMODP2k  = T(ike.TransformDH, uint16(ike.GroupMODP2048), 0)
	tDHNone  = T(ike.TransformDH, uint16(ike.GroupNone), 0)
	tESN     = T(ike.TransformESN, uint16(ike.ESNEnabled), 0)
	tNoESN   = T(ike.TransformESN, uint16(ike.ESNNone), 0)
	tAESCTR  = T(ike.TransformENCR, uint16(ike.EncrAESCTR), 128)
	tXCBCPRF = T(ike.TransformPRF, uint16(ike.PRFAES128XCBC), 0)
)

func TestParseProposals(t *testing.T) {
	ikeP := func(n uint8, ts ...ike.Transform) ike.Proposal {
		return ike.Proposal{Number: n, Protocol: ike.ProtoIKE, Transforms: ts}
	}
	espP := func(n uint8, ts ...ike.Transform) ike.Proposal {
		return ike.Proposal{Number: n, Protocol: ike.ProtoESP, Transforms: ts}
	}
	cases := []struct {
		in    string
		proto ike.ProtocolID
		want  []ike.Proposal
		canon string
	}{
		{"aes256gcm16-prfsha256-x25519", ike.ProtoIKE, []ike.Proposal{ikeP(1, tGCM256, tPRF256, tX25519)}, "aes256gcm16-prfsha256-x25519"},
		{"aes128-sha256-modp2048", ike.ProtoIKE, []ike.Proposal{ikeP(1, tCBC128, tPRF256, tSHA256, tMODP2k)}, "aes128-prfsha256-sha256-modp2048"},
		{"chacha20poly1305-prfsha384-ecp384", ike.ProtoIKE, []ike.Proposal{ikeP(1, tChaCha, tPRF384, tECP384)}, "chacha20poly1305-prfsha384-ecp384"},
		{"aes128gcm16-esn", ike.ProtoESP, []ike.Proposal{espP(1, tGCM128, tESN)}, "aes128gcm16-esn"},
		{"aes128gcm16", ike.ProtoESP, []ike.Proposal{espP(1, tGCM128, tNoESN)}, "aes128gcm16"},
		{"aes128gcm16-esn-noesn", ike.ProtoESP, []ike.Proposal{espP(1, tGCM128, tESN, tNoESN)}, "aes128gcm16-esn-noesn"},
		{"AES256GCM16-aes128gcm16-ecp256-x25519", ike.ProtoESP, []ike.Proposal{espP(1, tGCM256, tGCM128, tECP256, tX25519, tNoESN)}, "aes256gcm16-aes128gcm16-ecp256-x25519"},
		{"aes256-aes128-sha512-sha256-prfsha512-x25519-modp2048", ike.ProtoIKE,
			[]ike.Proposal{ikeP(1, tCBC256, tCBC128, tPRF512, tSHA512, tSHA256, tX25519, tMODP2k)}, "aes256-aes128-prfsha512-sha512-sha256-x25519-modp2048"},
		{"aes256gcm16-prfsha256-x25519, aes128-sha256-modp2048", ike.ProtoIKE,
			[]ike.Proposal{ikeP(1, tGCM256, tPRF256, tX25519), ikeP(2, tCBC128, tPRF256, tSHA256, tMODP2k)},
			"aes256gcm16-prfsha256-x25519,aes128-prfsha256-sha256-modp2048"},
		{"aes256gcm16,aes128-sha256-modp2048", ike.ProtoESP,
			[]ike.Proposal{espP(1, tGCM256, tNoESN), espP(2, tCBC128, tSHA256, tMODP2k, tNoESN)}, "aes256gcm16,aes128-sha256-modp2048"},
	}
	for _, c := range cases {
		got, err := ParseProposals(c.in, c.proto)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q:\n got %v\nwant %v", c.in, got, c.want)
		}
		s := FormatProposals(got)
		if s != c.canon {
			t.Errorf("%q formats as %q, want %q", c.in, s, c.canon)
		}
		again, err := ParseProposals(s, c.proto)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("%q: round trip through %q gives %v, %v", c.in, s, again, err)
		}
	}
}

func TestParseProposalErrors(t *testing.T) {
	cases := []struct {
		in    string
		proto ike.ProtocolID
	}{
		{"", ike.ProtoIKE},
		{"aes128gcm16-prfsha256-x25519,", ike.ProtoIKE},
		{"aes128-sha256-modp1024", ike.ProtoIKE},              // unknown group
		{"aes128gcm16-sha256-prfsha256-x25519", ike.ProtoIKE}, // AEAD with INTEG
		{"aes128gcm16-sha256", ike.ProtoESP},                  // AEAD with INTEG
		{"aes128gcm16-x25519", ike.ProtoIKE},                  // no PRF
		{"aes128-sha256", ike.ProtoIKE},                       // no D-H
		{"aes128-modp2048", ike.ProtoIKE},                     // no INTEG
		{"aes128", ike.ProtoESP},                              // no INTEG
		{"sha256-prfsha256-x25519", ike.ProtoIKE},             // no ENCR
		{"aes128-aes128gcm16-sha256-x25519", ike.ProtoIKE},    // AEAD mixed with CBC
		{"aes128gcm16-prfsha256-x25519-esn", ike.ProtoIKE},    // ESN in IKE
		{"aes128gcm16-prfsha256", ike.ProtoESP},               // PRF in ESP
		{"aes128gcm16-aes128gcm16", ike.ProtoESP},             // repeated
		{"aes128gcm16--esn", ike.ProtoESP},                    // empty keyword
		{"aes128gcm16", ike.ProtoAH},                          // protocol
	}
	for _, c := range cases {
		_, err := ParseProposals(c.in, c.proto)
		var e *Error
		if !errors.As(err, &e) || (e.Reason != ReasonBadProposal && e.Reason != ReasonUnsupported) || e.Detail == "" {
			t.Errorf("%q (%v): err = %v", c.in, c.proto, err)
		}
	}
}

func TestFormatUnknown(t *testing.T) {
	p := ike.Proposal{Protocol: ike.ProtoIKE, Transforms: []ike.Transform{tAESCTR, tXCBCPRF, tINone, tDHNone}}
	if got := FormatProposal(p); got != "encr:13/128-prf:4" {
		t.Fatalf("got %q", got)
	}
}

func TestSelect(t *testing.T) {
	mustParse := func(s string, proto ike.ProtocolID) []ike.Proposal {
		p, err := ParseProposals(s, proto)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	spi := []byte{1, 2, 3, 4}
	peer := func(proto ike.ProtocolID, ps ...[]ike.Transform) []ike.Proposal {
		var out []ike.Proposal
		for i, ts := range ps {
			out = append(out, ike.Proposal{Number: uint8(i + 1), Protocol: proto, SPI: spi, Transforms: ts})
		}
		return out
	}
	cases := []struct {
		name  string
		local []ike.Proposal
		peer  []ike.Proposal
		opt   SelectOptions
		want  []ike.Transform // nil: NO_PROPOSAL_CHOSEN
		num   uint8
	}{
		{"peer order wins across proposals",
			mustParse("aes128gcm16-prfsha256-x25519,aes256gcm16-prfsha256-x25519", ike.ProtoIKE),
			peer(ike.ProtoIKE, []ike.Transform{tGCM256, tPRF256, tX25519}, []ike.Transform{tGCM128, tPRF256, tX25519}),
			SelectOptions{}, []ike.Transform{tGCM256, tPRF256, tX25519}, 1},
		{"local order within a proposal",
			mustParse("aes256gcm16-aes128gcm16-prfsha384-prfsha256-ecp256-x25519", ike.ProtoIKE),
			peer(ike.ProtoIKE, []ike.Transform{tGCM128, tGCM256, tPRF256, tPRF384, tX25519, tECP256}),
			SelectOptions{}, []ike.Transform{tGCM256, tPRF384, tECP256}, 1},
		{"KE group hint avoids INVALID_KE_PAYLOAD",
			mustParse("aes256gcm16-prfsha256-ecp256-x25519", ike.ProtoIKE),
			peer(ike.ProtoIKE, []ike.Transform{tGCM256, tPRF256, tX25519, tECP256}),
			SelectOptions{KEGroup: ike.GroupCurve25519}, []ike.Transform{tGCM256, tPRF256, tX25519}, 1},
		{"KE hint we do not accept is ignored",
			mustParse("aes256gcm16-prfsha256-ecp256", ike.ProtoIKE),
			peer(ike.ProtoIKE, []ike.Transform{tGCM256, tPRF256, tX25519, tECP256}),
			SelectOptions{KEGroup: ike.GroupCurve25519}, []ike.Transform{tGCM256, tPRF256, tECP256}, 1},
		{"first peer proposal unacceptable",
			mustParse("aes128-sha256-modp2048", ike.ProtoIKE),
			peer(ike.ProtoIKE, []ike.Transform{tAESCTR, tSHA256, tPRF256, tMODP2k}, []ike.Transform{tCBC128, tSHA256, tPRF256, tMODP2k}),
			SelectOptions{}, []ike.Transform{tCBC128, tPRF256, tSHA256, tMODP2k}, 2},
		{"no mixing of two local proposals",
			mustParse("aes128-sha256-modp2048,aes256-sha512-x25519", ike.ProtoIKE),
			peer(ike.ProtoIKE, []ike.Transform{tCBC128, tSHA512, tPRF512, tX25519}),
			SelectOptions{}, nil, 0},
		{"AEAD with explicit INTEG NONE is echoed",
			mustParse("aes128gcm16", ike.ProtoESP),
			peer(ike.ProtoESP, []ike.Transform{tGCM128, tINone, tNoESN}),
			SelectOptions{}, []ike.Transform{tGCM128, tINone, tNoESN}, 1},
		{"AEAD with a real INTEG is refused",
			mustParse("aes128gcm16", ike.ProtoESP),
			peer(ike.ProtoESP, []ike.Transform{tGCM128, tSHA256, tNoESN}),
			SelectOptions{}, nil, 0},
		{"combined and CBC in one peer proposal pick a consistent INTEG",
			mustParse("aes128-sha256,aes128gcm16", ike.ProtoESP),
			peer(ike.ProtoESP, []ike.Transform{tGCM128, tCBC128, tSHA256, tINone, tNoESN}),
			SelectOptions{}, []ike.Transform{tCBC128, tSHA256, tNoESN}, 1},
		{"ESN: peer requires it, we allow both",
			mustParse("aes256gcm16-noesn-esn", ike.ProtoESP),
			peer(ike.ProtoESP, []ike.Transform{tGCM256, tESN}),
			SelectOptions{}, []ike.Transform{tGCM256, tESN}, 1},
		{"ESN: peer requires it, we do not",
			mustParse("aes256gcm16", ike.ProtoESP),
			peer(ike.ProtoESP, []ike.Transform{tGCM256, tESN}),
			SelectOptions{}, nil, 0},
		{"ESN: absent at the peer means none",
			mustParse("aes256gcm16", ike.ProtoESP),
			peer(ike.ProtoESP, []ike.Transform{tGCM256}),
			SelectOptions{}, []ike.Transform{tGCM256}, 1},
		{"PFS group must match",
			mustParse("aes256gcm16-modp2048", ike.ProtoESP),
			peer(ike.ProtoESP, []ike.Transform{tGCM256, tNoESN}),
			SelectOptions{}, nil, 0},
		{"peer offers PFS or none, we want none",
			mustParse("aes256gcm16", ike.ProtoESP),
			peer(ike.ProtoESP, []ike.Transform{tGCM256, tMODP2k, tDHNone, tNoESN}),
			SelectOptions{}, []ike.Transform{tGCM256, tDHNone, tNoESN}, 1},
		{"IKE_AUTH ignores D-H",
			mustParse("aes256gcm16-modp2048", ike.ProtoESP),
			peer(ike.ProtoESP, []ike.Transform{tGCM256, tX25519, tNoESN}),
			SelectOptions{IgnoreDH: true}, []ike.Transform{tGCM256, tNoESN}, 1},
		{"protocol must match",
			mustParse("aes256gcm16", ike.ProtoESP),
			peer(ike.ProtoAH, []ike.Transform{tGCM256, tNoESN}),
			SelectOptions{}, nil, 0},
		{"no peer proposals", mustParse("aes256gcm16", ike.ProtoESP), nil, SelectOptions{}, nil, 0},
	}
	for _, c := range cases {
		got, err := Select(c.local, c.peer, c.opt)
		if c.want == nil {
			var e *Error
			if !errors.As(err, &e) || e.Reason != ReasonNoProposalChosen || e.Notify != ike.NoProposalChosen {
				t.Errorf("%s: got %v, %v; want NO_PROPOSAL_CHOSEN", c.name, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(got.Transforms, c.want) || got.Number != c.num || string(got.SPI) != string(spi) {
			t.Errorf("%s: got #%d %v, want #%d %v", c.name, got.Number, got.Transforms, c.num, c.want)
		}
		if _, err := SuiteOf(got); err != nil {
			t.Errorf("%s: chosen proposal not a valid suite: %v", c.name, err)
		}
	}
}

func TestCheckKE(t *testing.T) {
	chosen := ike.Proposal{Protocol: ike.ProtoIKE, Transforms: []ike.Transform{tGCM256, tPRF256, tECP256}}
	if err := CheckKE(chosen, ike.GroupECP256); err != nil {
		t.Fatal(err)
	}
	err := CheckKE(chosen, ike.GroupCurve25519)
	var e *Error
	if !errors.As(err, &e) || e.Notify != ike.InvalidKEPayload || e.Group != ike.GroupECP256 || string(e.NotifyData()) != "\x00\x13" {
		t.Fatalf("err = %v", err)
	}
	if !errors.Is(err, ErrInvalidKE) {
		t.Fatal("errors.Is(ErrInvalidKE) false")
	}
	// Chosen without a group: a KE payload is ignored (RFC 7296 §1.3, strongSwan #2831).
	if err := CheckKE(ike.Proposal{Transforms: []ike.Transform{tGCM256, tNoESN}}, ike.GroupMODP2048); err != nil {
		t.Fatal(err)
	}
	props, _ := ParseProposals("aes256gcm16-prfsha256-x25519-ecp256,aes128-sha256-modp2048", ike.ProtoIKE)
	if OfferedGroup(props) != ike.GroupCurve25519 || !GroupOffered(props, ike.GroupMODP2048) || GroupOffered(props, ike.GroupECP384) {
		t.Fatal("OfferedGroup/GroupOffered")
	}
}

func TestSuiteOf(t *testing.T) {
	bad := []ike.Proposal{
		{Protocol: ike.ProtoIKE, Transforms: []ike.Transform{tGCM256, tGCM128, tPRF256, tX25519}},
		{Protocol: ike.ProtoIKE, Transforms: []ike.Transform{tGCM256, tX25519}},
		{Protocol: ike.ProtoIKE, Transforms: []ike.Transform{tGCM256, tPRF256}},
		{Protocol: ike.ProtoIKE, Transforms: []ike.Transform{tCBC128, tPRF256, tX25519}},
		{Protocol: ike.ProtoIKE, Transforms: []ike.Transform{tGCM128, tSHA256, tPRF256, tX25519}},
		{Protocol: ike.ProtoESP, Transforms: []ike.Transform{tGCM128, tPRF256}},
		{Protocol: ike.ProtoESP, Transforms: []ike.Transform{tSHA256}},
		{Protocol: ike.ProtoESP, Transforms: []ike.Transform{tAESCTR, tSHA256}},
		{Protocol: ike.ProtoESP, Transforms: []ike.Transform{tGCM128, T(ike.TransformESN, 7, 0)}},
		{Protocol: ike.ProtoESP, Transforms: []ike.Transform{tGCM128, T(ike.TransformADDKE1, 1, 0)}},
	}
	for _, p := range bad {
		if _, err := SuiteOf(p); err == nil {
			t.Errorf("%v accepted", p.Transforms)
		}
	}
}

// refOfType and refMatch are the literal form of the selection rules (the
// transforms of one type, an absent INTEG, D-H or ESN as an explicit NONE),
// kept as an oracle for match, which does the same without building lists.
func refOfType(p ike.Proposal, typ ike.TransformType) (ts []ike.Transform, implicit bool) {
	for _, t := range p.Transforms {
		if t.Type == typ {
			ts = append(ts, t)
		}
	}
	if len(ts) == 0 && implicitNone(typ) {
		return []ike.Transform{{Type: typ}}, true
	}
	return ts, false
}

func refMatch(lp, pp ike.Proposal, opt SelectOptions) (ike.Proposal, bool) {
	out := ike.Proposal{Number: pp.Number, Protocol: pp.Protocol, SPI: slices.Clone(pp.SPI)}
	aead := false
	for _, typ := range typeOrder {
		if typ == ike.TransformDH && opt.IgnoreDH {
			continue
		}
		ls, _ := refOfType(lp, typ)
		ps, implicit := refOfType(pp, typ)
		if len(ls) == 0 && len(ps) == 0 {
			continue
		}
		accept := func(t ike.Transform) bool {
			if !slices.Contains(ps, t) {
				return false
			}
			if typ == ike.TransformINTEG {
				return aead == (ike.IntegID(t.ID) == ike.IntegNone)
			}
			return true
		}
		i := -1
		if typ == ike.TransformDH && opt.KEGroup != ike.GroupNone {
			i = slices.Index(ls, ike.Transform{Type: typ, ID: uint16(opt.KEGroup)})
			if i >= 0 && !accept(ls[i]) {
				i = -1
			}
		}
		if i < 0 {
			i = slices.IndexFunc(ls, accept)
		}
		if i < 0 {
			return ike.Proposal{}, false
		}
		if typ == ike.TransformENCR {
			aead = ike.EncrID(ls[i].ID).IsAEAD()
		}
		if !implicit {
			out.Transforms = append(out.Transforms, ls[i])
		}
	}
	if _, err := SuiteOf(out); err != nil {
		return ike.Proposal{}, false
	}
	return out, true
}

// TestMatchAgainstReference draws random proposal pairs from a small pool
// of transforms (so that matches, near misses, implicit NONEs, AEAD with
// and without INTEG all occur) and compares match with refMatch.
func TestMatchAgainstReference(t *testing.T) {
	pool := []ike.Transform{
		{Type: ike.TransformENCR, ID: uint16(ike.EncrAESGCM16), KeyLength: 128},
		{Type: ike.TransformENCR, ID: uint16(ike.EncrAESGCM16), KeyLength: 256},
		{Type: ike.TransformENCR, ID: uint16(ike.EncrAESCBC), KeyLength: 128},
		{Type: ike.TransformENCR, ID: uint16(ike.EncrChaCha20Poly1305)},
		{Type: ike.TransformPRF, ID: uint16(ike.PRFHMACSHA256)},
		{Type: ike.TransformPRF, ID: uint16(ike.PRFHMACSHA384)},
		{Type: ike.TransformINTEG, ID: uint16(ike.IntegHMACSHA256_128)},
		{Type: ike.TransformINTEG, ID: uint16(ike.IntegNone)},
		{Type: ike.TransformDH, ID: uint16(ike.GroupCurve25519)},
		{Type: ike.TransformDH, ID: uint16(ike.GroupECP256)},
		{Type: ike.TransformDH, ID: uint16(ike.GroupNone)},
		{Type: ike.TransformESN, ID: uint16(ike.ESNNone)},
		{Type: ike.TransformESN, ID: uint16(ike.ESNEnabled)},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	draw := func(proto ike.ProtocolID) ike.Proposal {
		p := ike.Proposal{Number: uint8(1 + rng.IntN(3)), Protocol: proto}
		if rng.IntN(2) == 0 {
			p.SPI = []byte{1, 2, 3, 4}
		}
		for _, tr := range pool {
			if rng.IntN(3) == 0 {
				p.Transforms = append(p.Transforms, tr)
			}
		}
		rng.Shuffle(len(p.Transforms), func(i, j int) { p.Transforms[i], p.Transforms[j] = p.Transforms[j], p.Transforms[i] })
		return p
	}
	matched := 0
	for i := 0; i < 20000; i++ {
		proto := []ike.ProtocolID{ike.ProtoIKE, ike.ProtoESP}[rng.IntN(2)]
		lp, pp := draw(proto), draw(proto)
		opt := SelectOptions{IgnoreDH: rng.IntN(3) == 0}
		if rng.IntN(2) == 0 {
			opt.KEGroup = []ike.GroupID{ike.GroupCurve25519, ike.GroupECP256, ike.GroupMODP2048}[rng.IntN(3)]
		}
		got, gok := match(lp, pp, opt)
		want, wok := refMatch(lp, pp, opt)
		if gok != wok || !reflect.DeepEqual(got, want) {
			t.Fatalf("match(%v, %v, %+v) = %v %v, want %v %v", lp, pp, opt, got, gok, want, wok)
		}
		if gok {
			matched++
		}
	}
	if matched < 100 {
		t.Fatalf("only %d of 20000 pairs matched: the draw tests too little", matched)
	}
}
