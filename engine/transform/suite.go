package transform

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"hash"

	"github.com/mifsec/mifsec/engine/ike"
)

// encrSpec describes an encryption transform (type 1) at one key length.
type encrSpec struct {
	aead    bool
	keyLen  int // cipher key bytes, without salt
	saltLen int // AEAD salt bytes appended to the key in SK_e / KEYMAT
	ivLen   int // IV bytes carried in the Encrypted payload
	block   int // padding alignment (RFC 7296 §3.14)
	icvLen  int // AEAD tag bytes (0 for encrypt-then-MAC: the INTEG transform decides)
}

// lookupEncr validates an ENCR transform ID with its Key Length attribute.
func lookupEncr(id ike.EncrID, keyBits uint16) (encrSpec, error) {
	switch id {
	case ike.EncrAESCBC:
		// RFC 3602 §5; IV = one block, random (RFC 7296 §3.14).
		if keyBits == 128 || keyBits == 192 || keyBits == 256 {
			return encrSpec{keyLen: int(keyBits) / 8, ivLen: 16, block: 16}, nil
		}
	case ike.EncrAESGCM16:
		// RFC 5282 §7.1: SK_e = key | 4-byte salt; IV 8 bytes; ICV 16.
		if keyBits == 128 || keyBits == 192 || keyBits == 256 {
			return encrSpec{aead: true, keyLen: int(keyBits) / 8, saltLen: 4, ivLen: 8, block: 1, icvLen: 16}, nil
		}
	case ike.EncrChaCha20Poly1305:
		// RFC 7634 §2, §3: 32-byte key | 4-byte salt, no Key Length attribute.
		if keyBits == 0 {
			return encrSpec{aead: true, keyLen: 32, saltLen: 4, ivLen: 8, block: 1, icvLen: 16}, nil
		}
	default:
		return encrSpec{}, errorf(ReasonUnsupported, "encryption algorithm %v", id)
	}
	return encrSpec{}, errorf(ReasonUnsupported, "%v with key length %d", id, keyBits)
}

// integSpec describes an integrity transform (type 3).
type integSpec struct {
	hash   func() hash.Hash
	keyLen int
	icvLen int
}

// lookupInteg validates an INTEG transform ID. Key lengths: RFC 2404 §3
// (SHA-1, 160 bits), RFC 4868 §2.1.1 (SHA-2, key = output length).
func lookupInteg(id ike.IntegID) (integSpec, error) {
	switch id {
	case ike.IntegHMACSHA1_96:
		return integSpec{sha1.New, sha1.Size, 12}, nil
	case ike.IntegHMACSHA256_128:
		return integSpec{sha256.New, sha256.Size, 16}, nil
	case ike.IntegHMACSHA384_192:
		return integSpec{sha512.New384, sha512.Size384, 24}, nil
	case ike.IntegHMACSHA512_256:
		return integSpec{sha512.New, sha512.Size, 32}, nil
	}
	return integSpec{}, errorf(ReasonUnsupported, "integrity algorithm %v", id)
}

// Suite is one negotiated set of algorithms: the content of a chosen
// proposal, with exactly one transform of each type.
type Suite struct {
	Protocol ike.ProtocolID
	Encr     ike.EncrID
	KeyBits  uint16 // Key Length attribute; 0 when the transform has none
	Integ    ike.IntegID
	PRF      ike.PRFID
	Group    ike.GroupID
	ESN      bool
}

// SuiteOf reads a chosen proposal. It fails when a type appears more than
// once, when an algorithm is not implemented, or when the combination is
// invalid (RFC 5282 §8: AEAD with an INTEG other than NONE; IKE without PRF
// or D-H, RFC 7296 §3.3.3).
func SuiteOf(p ike.Proposal) (Suite, error) {
	s := Suite{Protocol: p.Protocol}
	var seen uint64 // bit per transform type; the types above 63 are unsupported below
	for _, t := range p.Transforms {
		if t.Type < 64 {
			bit := uint64(1) << t.Type
			if seen&bit != 0 {
				return Suite{}, errorf(ReasonBadProposal, "more than one %v transform in a chosen proposal", t.Type)
			}
			seen |= bit
		}
		switch t.Type {
		case ike.TransformENCR:
			s.Encr, s.KeyBits = ike.EncrID(t.ID), t.KeyLength
		case ike.TransformINTEG:
			s.Integ = ike.IntegID(t.ID)
		case ike.TransformPRF:
			s.PRF = ike.PRFID(t.ID)
		case ike.TransformDH:
			s.Group = ike.GroupID(t.ID)
		case ike.TransformESN:
			switch ike.ESNID(t.ID) {
			case ike.ESNNone:
			case ike.ESNEnabled:
				s.ESN = true
			default:
				return Suite{}, errorf(ReasonUnsupported, "ESN transform %d", t.ID)
			}
		default:
			return Suite{}, errorf(ReasonUnsupported, "transform type %v", t.Type)
		}
	}
	if seen&(1<<ike.TransformENCR) == 0 {
		return Suite{}, errorf(ReasonBadProposal, "no encryption transform")
	}
	if err := s.validate(); err != nil {
		return Suite{}, err
	}
	return s, nil
}

func (s Suite) validate() error {
	e, err := lookupEncr(s.Encr, s.KeyBits)
	if err != nil {
		return err
	}
	switch {
	case e.aead && s.Integ != ike.IntegNone:
		return errorf(ReasonBadProposal, "AEAD %v with integrity %v (RFC 5282 §8)", s.Encr, s.Integ)
	case !e.aead && s.Integ == ike.IntegNone:
		return errorf(ReasonBadProposal, "%v needs an integrity algorithm", s.Encr)
	case !e.aead:
		if _, err := lookupInteg(s.Integ); err != nil {
			return err
		}
	}
	if s.Group != ike.GroupNone {
		if _, err := lookupGroup(s.Group); err != nil {
			return err
		}
	}
	switch s.Protocol {
	case ike.ProtoIKE:
		if _, err := NewPRF(s.PRF); err != nil {
			return err
		}
		if s.Group == ike.GroupNone {
			return errorf(ReasonBadProposal, "IKE proposal without a D-H group")
		}
		if s.ESN {
			return errorf(ReasonBadProposal, "ESN in an IKE proposal")
		}
	case ike.ProtoESP:
		if s.PRF != 0 {
			return errorf(ReasonBadProposal, "PRF in an ESP proposal")
		}
	default:
		return errorf(ReasonUnsupported, "protocol %v", s.Protocol)
	}
	return nil
}

// AEAD reports whether the encryption transform is a combined mode.
func (s Suite) AEAD() bool {
	e, err := lookupEncr(s.Encr, s.KeyBits)
	return err == nil && e.aead
}

// EncrKeyLen is the length of one encryption key as taken from prf+,
// including the AEAD salt (RFC 5282 §7.1, RFC 7634 §3).
func (s Suite) EncrKeyLen() int {
	e, _ := lookupEncr(s.Encr, s.KeyBits)
	return e.keyLen + e.saltLen
}

// IntegKeyLen is the length of one integrity key; 0 for AEAD.
func (s Suite) IntegKeyLen() int {
	if s.Integ == ike.IntegNone {
		return 0 // no error to build: AEAD asks this on every derivation
	}
	i, err := lookupInteg(s.Integ)
	if err != nil {
		return 0
	}
	return i.keyLen
}
