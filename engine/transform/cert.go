package transform

import (
	"bytes"
	"crypto/sha1"
	"crypto/x509"
	"encoding/pem"
	"net"
	"strings"
	"time"

	"github.com/mifsec/mifsec/engine/ike"
)

// TrustStore holds the CA certificates peers' chains must lead to.
type TrustStore struct {
	roots *x509.CertPool
	cas   []*x509.Certificate
}

// NewTrustStore builds a store from CA certificates.
func NewTrustStore(cas ...*x509.Certificate) (*TrustStore, error) {
	t := &TrustStore{roots: x509.NewCertPool()}
	for _, c := range cas {
		if !c.IsCA {
			return nil, &Error{Reason: ReasonBadCertificate, Detail: "trust anchor " + c.Subject.String() + " is not a CA"}
		}
		t.roots.AddCert(c)
		t.cas = append(t.cas, c)
	}
	return t, nil
}

// ParseTrustStorePEM reads CA certificates in PEM.
func ParseTrustStorePEM(data []byte) (*TrustStore, error) {
	var cas []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		cas = append(cas, c)
	}
	if len(cas) == 0 {
		return nil, &Error{Reason: ReasonBadCertificate, Detail: "no CERTIFICATE block in PEM data"}
	}
	return NewTrustStore(cas...)
}

// ParseCertificate reads the data of a CERT payload with encoding 4, X.509
// Certificate - Signature (RFC 7296 §3.6): one DER certificate.
func ParseCertificate(der []byte) (*x509.Certificate, error) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, &Error{Reason: ReasonBadCertificate, Notify: ike.AuthenticationFailed, Detail: err.Error()}
	}
	return c, nil
}

// CertReqHash is a CA's entry in CERTREQ: the SHA-1 hash of its
// SubjectPublicKeyInfo (RFC 7296 §3.7).
func CertReqHash(ca *x509.Certificate) [sha1.Size]byte {
	return sha1.Sum(ca.RawSubjectPublicKeyInfo)
}

// CertReq is the data of our CERTREQ payload (encoding 4): the concatenated
// hashes of our trust anchors (RFC 7296 §3.7).
func (t *TrustStore) CertReq() []byte {
	out := make([]byte, 0, sha1.Size*len(t.cas))
	for _, c := range t.cas {
		h := CertReqHash(c)
		out = append(out, h[:]...)
	}
	return out
}

// Requests reports whether a peer's CERTREQ data names the CA whose
// certificate is given, i.e. whether a chain to it is wanted.
func Requests(certReq []byte, ca *x509.Certificate) bool {
	h := CertReqHash(ca)
	for len(certReq) >= sha1.Size {
		if bytes.Equal(certReq[:sha1.Size], h[:]) {
			return true
		}
		certReq = certReq[sha1.Size:]
	}
	return false
}

// Verify checks a peer's certificates (CERT payload data, end entity first,
// then any intermediates in any order) up to one of our CAs at time now,
// and returns the end-entity certificate, whose key then checks AUTH.
// Extended key usage is not required (RFC 4945 §5.1.3.12).
func (t *TrustStore) Verify(certs [][]byte, now time.Time) (*x509.Certificate, error) {
	if len(certs) == 0 {
		return nil, &Error{Reason: ReasonBadCertificate, Notify: ike.AuthenticationFailed, Detail: "no certificate"}
	}
	leaf, err := ParseCertificate(certs[0])
	if err != nil {
		return nil, err
	}
	inter := x509.NewCertPool()
	for _, der := range certs[1:] {
		c, err := ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		inter.AddCert(c)
	}
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots: t.roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, &Error{Reason: ReasonBadCertificate, Notify: ike.AuthenticationFailed, Detail: err.Error()}
	}
	return leaf, nil
}

// MatchID checks that an ID payload names the subject of a certificate
// (RFC 4945 §3.1): IP addresses, FQDN and RFC 822 names against the
// subjectAltName, a DER DN against the whole subject.
func MatchID(c *x509.Certificate, typ ike.IDType, data []byte) error {
	ok := false
	switch typ {
	case ike.IDIPv4Addr, ike.IDIPv6Addr:
		if (typ == ike.IDIPv4Addr && len(data) == 4) || (typ == ike.IDIPv6Addr && len(data) == 16) {
			for _, ip := range c.IPAddresses {
				ok = ok || ip.Equal(net.IP(data))
			}
		}
	case ike.IDFQDN:
		for _, n := range c.DNSNames {
			ok = ok || strings.EqualFold(n, string(data))
		}
	case ike.IDRFC822Addr:
		for _, n := range c.EmailAddresses {
			ok = ok || strings.EqualFold(n, string(data))
		}
	case ike.IDDERASN1DN:
		ok = bytes.Equal(c.RawSubject, data)
	}
	if !ok {
		return &Error{Reason: ReasonAuthFailed, Notify: ike.AuthenticationFailed,
			Detail: typ.String() + " identity not found in the certificate of " + c.Subject.String()}
	}
	return nil
}
