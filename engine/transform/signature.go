package transform

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"

	"github.com/mifsec/mifsec/engine/ike"
)

// Digital Signature authentication, AUTH method 14 (RFC 7427 §3): the AUTH
// data is one octet giving the length of an ASN.1 AlgorithmIdentifier, that
// AlgorithmIdentifier (DER), then the signature value.

var (
	oidECDSASHA256   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSASHA384   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSASHA512   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidEd25519       = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidRSAPSS        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidSHA256WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
)

var hashOIDs = map[crypto.Hash]asn1.ObjectIdentifier{crypto.SHA256: oidSHA256, crypto.SHA384: oidSHA384, crypto.SHA512: oidSHA512}

var ikeHashes = map[crypto.Hash]ike.HashAlgorithm{
	crypto.SHA256: ike.HashSHA256, crypto.SHA384: ike.HashSHA384, crypto.SHA512: ike.HashSHA512, 0: ike.HashIdentity,
}

// SupportedHashes is the content of our SIGNATURE_HASH_ALGORITHMS notify
// (RFC 7427 §4; Identity for Ed25519, RFC 8420 §2).
func SupportedHashes() []ike.HashAlgorithm {
	return []ike.HashAlgorithm{ike.HashSHA256, ike.HashSHA384, ike.HashSHA512, ike.HashIdentity}
}

// pssParams is RSASSA-PSS-params (RFC 4055 §3.1).
type pssParams struct {
	Hash         pkix.AlgorithmIdentifier `asn1:"explicit,tag:0"`
	MGF          pkix.AlgorithmIdentifier `asn1:"explicit,tag:1"`
	SaltLength   int                      `asn1:"explicit,tag:2"`
	TrailerField int                      `asn1:"optional,explicit,tag:3,default:1"`
}

func hashAlgID(h crypto.Hash) pkix.AlgorithmIdentifier {
	return pkix.AlgorithmIdentifier{Algorithm: hashOIDs[h], Parameters: asn1.NullRawValue}
}

// algorithmID returns the DER AlgorithmIdentifier for a signature scheme.
func algorithmID(oid asn1.ObjectIdentifier, pss crypto.Hash) []byte {
	ai := pkix.AlgorithmIdentifier{Algorithm: oid}
	switch {
	case pss != 0:
		mgfHash, _ := asn1.Marshal(hashAlgID(pss))
		params, _ := asn1.Marshal(pssParams{
			Hash:         hashAlgID(pss),
			MGF:          pkix.AlgorithmIdentifier{Algorithm: oidMGF1, Parameters: asn1.RawValue{FullBytes: mgfHash}},
			SaltLength:   pss.Size(),
			TrailerField: 1,
		})
		ai.Parameters = asn1.RawValue{FullBytes: params}
	case oid.Equal(oidSHA256WithRSA) || oid.Equal(oidSHA384WithRSA) || oid.Equal(oidSHA512WithRSA):
		ai.Parameters = asn1.NullRawValue // RFC 4055 §5: NULL parameters
	}
	der, _ := asn1.Marshal(ai)
	return der
}

// Signer signs AUTH payloads with a private key. It prints "[redacted]".
type Signer struct {
	key    crypto.Signer
	hash   crypto.Hash // 0 for Ed25519
	algID  []byte
	pss    bool
	scheme string
}

// NewSigner picks the RFC 7427 scheme from the key: ECDSA P-256/SHA-256,
// P-384/SHA-384, P-521/SHA-512; Ed25519 (RFC 8420); RSA: RSASSA-PSS with
// SHA-256, MGF1-SHA-256 and a 32-octet salt (RFC 7427 App. A.4.3).
func NewSigner(key crypto.Signer) (*Signer, error) {
	switch pub := key.Public().(type) {
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			return &Signer{key: key, hash: crypto.SHA256, algID: algorithmID(oidECDSASHA256, 0), scheme: "ecdsa-p256-sha256"}, nil
		case elliptic.P384():
			return &Signer{key: key, hash: crypto.SHA384, algID: algorithmID(oidECDSASHA384, 0), scheme: "ecdsa-p384-sha384"}, nil
		case elliptic.P521():
			return &Signer{key: key, hash: crypto.SHA512, algID: algorithmID(oidECDSASHA512, 0), scheme: "ecdsa-p521-sha512"}, nil
		}
		return nil, errorf(ReasonUnsupported, "ECDSA curve %s", pub.Curve.Params().Name)
	case ed25519.PublicKey:
		return &Signer{key: key, algID: algorithmID(oidEd25519, 0), scheme: "ed25519"}, nil
	case *rsa.PublicKey:
		if pub.N.BitLen() < 2048 {
			return nil, errorf(ReasonBadKey, "RSA key of %d bits, want at least 2048", pub.N.BitLen())
		}
		return &Signer{key: key, hash: crypto.SHA256, pss: true, algID: algorithmID(oidRSAPSS, crypto.SHA256), scheme: "rsa-pss-sha256"}, nil
	}
	return nil, errorf(ReasonUnsupported, "private key type %T", key.Public())
}

// Hash is the RFC 7427 hash the signer uses; the peer must have listed it
// in SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4).
func (s *Signer) Hash() ike.HashAlgorithm { return ikeHashes[s.hash] }

// Sign returns the AUTH data for method 14 over the signed octets. rng may
// be nil (crypto/rand).
func (s *Signer) Sign(rng io.Reader, signedOctets []byte) ([]byte, error) {
	if rng == nil {
		rng = rand.Reader
	}
	var opts crypto.SignerOpts = s.hash
	digest := signedOctets
	if s.hash != 0 {
		h := s.hash.New()
		h.Write(signedOctets)
		digest = h.Sum(nil)
	}
	if s.pss {
		opts = &rsa.PSSOptions{SaltLength: s.hash.Size(), Hash: s.hash}
	}
	sig, err := s.key.Sign(rng, digest, opts) // ECDSA: DER Ecdsa-Sig-Value
	if err != nil {
		return nil, errorf(ReasonBadKey, "%s signature: %v", s.scheme, err)
	}
	out := make([]byte, 0, 1+len(s.algID)+len(sig))
	out = append(out, byte(len(s.algID)))
	out = append(out, s.algID...)
	return append(out, sig...), nil
}

func (s *Signer) String() string             { return "Signer(" + s.scheme + ") " + redacted }
func (s *Signer) GoString() string           { return s.String() }
func (s *Signer) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// VerifySignature checks AUTH data of method 14 against the peer's public
// key (from its verified certificate). Besides the schemes NewSigner makes,
// it accepts RSA PKCS#1 v1.5 with SHA-2 (strongSwan's default with RSA keys)
// and ECDSA with any SHA-2 hash. SHA-1 is refused (RFC 8247 §3.2).
func VerifySignature(pub crypto.PublicKey, signedOctets, auth []byte) error {
	fail := func(format string, args ...any) error {
		e := errorf(ReasonAuthFailed, format, args...)
		e.Notify = ike.AuthenticationFailed
		return e
	}
	if len(auth) < 1 || len(auth) < 1+int(auth[0]) {
		return fail("AUTH data shorter than its AlgorithmIdentifier")
	}
	algDER, sig := auth[1:1+int(auth[0])], auth[1+int(auth[0]):]
	var ai pkix.AlgorithmIdentifier
	if rest, err := asn1.Unmarshal(algDER, &ai); err != nil || len(rest) != 0 {
		return fail("malformed AlgorithmIdentifier")
	}
	digest := func(h crypto.Hash) []byte {
		d := h.New()
		d.Write(signedOctets)
		return d.Sum(nil)
	}
	ecHash := map[string]crypto.Hash{oidECDSASHA256.String(): crypto.SHA256, oidECDSASHA384.String(): crypto.SHA384, oidECDSASHA512.String(): crypto.SHA512}
	rsaHash := map[string]crypto.Hash{oidSHA256WithRSA.String(): crypto.SHA256, oidSHA384WithRSA.String(): crypto.SHA384, oidSHA512WithRSA.String(): crypto.SHA512}
	ok := false
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		h, known := ecHash[ai.Algorithm.String()]
		if !known || len(ai.Parameters.FullBytes) != 0 {
			return fail("algorithm %v with an ECDSA key", ai.Algorithm)
		}
		ok = ecdsa.VerifyASN1(k, digest(h), sig)
	case ed25519.PublicKey:
		if !ai.Algorithm.Equal(oidEd25519) || len(ai.Parameters.FullBytes) != 0 {
			return fail("algorithm %v with an Ed25519 key", ai.Algorithm)
		}
		ok = ed25519.Verify(k, signedOctets, sig)
	case *rsa.PublicKey:
		if h, known := rsaHash[ai.Algorithm.String()]; known {
			ok = rsa.VerifyPKCS1v15(k, h, digest(h), sig) == nil
			break
		}
		if !ai.Algorithm.Equal(oidRSAPSS) {
			return fail("algorithm %v with an RSA key", ai.Algorithm)
		}
		h, salt, err := parsePSS(ai.Parameters.FullBytes)
		if err != nil {
			return fail("%v", err)
		}
		ok = rsa.VerifyPSS(k, h, digest(h), sig, &rsa.PSSOptions{SaltLength: salt, Hash: h}) == nil
	default:
		return fail("public key type %T", pub)
	}
	if !ok {
		return fail("signature does not verify")
	}
	return nil
}

// parsePSS reads RSASSA-PSS-params, accepting SHA-2 with MGF1 of the same
// hash and trailer field 1 (RFC 4055 §3.1).
func parsePSS(der []byte) (crypto.Hash, int, error) {
	var p pssParams
	if rest, err := asn1.Unmarshal(der, &p); err != nil || len(rest) != 0 {
		return 0, 0, fmt.Errorf("malformed RSASSA-PSS parameters")
	}
	var h crypto.Hash
	for c, oid := range hashOIDs {
		if oid.Equal(p.Hash.Algorithm) {
			h = c
		}
	}
	if h == 0 {
		return 0, 0, fmt.Errorf("RSASSA-PSS hash %v not accepted", p.Hash.Algorithm)
	}
	var mgfHash pkix.AlgorithmIdentifier
	if !p.MGF.Algorithm.Equal(oidMGF1) {
		return 0, 0, fmt.Errorf("RSASSA-PSS mask generation %v not accepted", p.MGF.Algorithm)
	}
	if _, err := asn1.Unmarshal(p.MGF.Parameters.FullBytes, &mgfHash); err != nil || !mgfHash.Algorithm.Equal(p.Hash.Algorithm) {
		return 0, 0, fmt.Errorf("RSASSA-PSS MGF1 hash differs from the message hash")
	}
	if p.TrailerField != 1 || p.SaltLength < 0 {
		return 0, 0, fmt.Errorf("RSASSA-PSS trailer or salt length invalid")
	}
	return h, p.SaltLength, nil
}
