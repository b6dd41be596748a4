package strongswan

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/netip"
	"time"

	"github.com/mifsec/mifsec/test/strongswan/vici"
)

// CA is a throw-away test certification authority (ECDSA P-256).
type CA struct {
	Name string // file stem in swanctl/x509ca
	Cert *x509.Certificate
	PEM  []byte
	key  *ecdsa.PrivateKey
}

// Cert is an end-entity certificate with its private key.
type Cert struct {
	Name   string // file stem in swanctl/x509 and swanctl/ecdsa
	Cert   *x509.Certificate
	PEM    []byte
	keyPEM vici.Secret
	key    *ecdsa.PrivateKey
	issuer *CA
}

func (c *CA) String() string   { return fmt.Sprintf("CA %s (%s)", c.Name, c.Cert.Subject) }
func (c *Cert) String() string { return fmt.Sprintf("cert %s (%s)", c.Name, c.Cert.Subject) }

// File is the certificate's file name, for Auth.Certs.
func (c *Cert) File() string { return c.Name + ".pem" }

// File is the CA certificate's file name, for Auth.CACerts.
func (c *CA) File() string { return c.Name + ".pem" }

// KeyPEM is the private key as SEC1 PEM ("EC PRIVATE KEY"); it prints as
// [redacted].
func (c *Cert) KeyPEM() vici.Secret { return c.keyPEM }

// Key is the private key, for a test's own IKE implementation.
func (c *Cert) Key() *ecdsa.PrivateKey { return c.key }

// Destroy zeroes the PEM copy of the key and drops the key. (The big.Int
// inside ecdsa.PrivateKey cannot be wiped reliably; it is only released.)
func (c *Cert) Destroy() {
	c.keyPEM.Zero()
	c.keyPEM = nil
	c.key = nil
}

// CertOptions say what a certificate certifies.
type CertOptions struct {
	CommonName string
	DNSNames   []string     // subjectAltName dNSName (IKE ID_FQDN)
	IPs        []netip.Addr // subjectAltName iPAddress (ID_IPV4_ADDR)
	Emails     []string     // subjectAltName rfc822Name (ID_RFC822_ADDR)
	Lifetime   time.Duration
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
}

// NewCA creates a self-signed CA named name, valid for a day.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{Organization: []string{"mifsec test"}, CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("strongswan: create CA %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Name: name, Cert: cert, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}, nil
}

// Issue creates an end-entity certificate named name (the file stem),
// usable for IKE by both ends (serverAuth and clientAuth).
func (ca *CA) Issue(name string, o CertOptions) (*Cert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	if o.Lifetime <= 0 {
		o.Lifetime = 24 * time.Hour
	}
	if o.CommonName == "" {
		o.CommonName = name
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:   sn,
		Subject:        pkix.Name{Organization: []string{"mifsec test"}, CommonName: o.CommonName},
		NotBefore:      now.Add(-time.Hour),
		NotAfter:       now.Add(o.Lifetime),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:       o.DNSNames,
		EmailAddresses: o.Emails,
	}
	for _, ip := range o.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("strongswan: issue %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	kpem := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	clear(kder)
	return &Cert{
		Name: name, Cert: cert, key: key, issuer: ca,
		PEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM: vici.Secret(kpem),
	}, nil
}
