package ike

// Cert is the Certificate payload (RFC 7296 §3.6).
type Cert struct {
	Encoding CertEncoding
	Data     []byte
}

func (*Cert) Type() PayloadType { return PayloadCERT }

func (p *Cert) appendBody(dst []byte) ([]byte, error) {
	return append(append(dst, byte(p.Encoding)), p.Data...), nil
}

func (p *Cert) decodeBody(b []byte) error {
	if len(b) < 1 {
		return syntaxError(PayloadCERT, "no Cert Encoding")
	}
	p.Encoding, p.Data = CertEncoding(b[0]), nilIfEmpty(b[1:])
	return nil
}

// CertReq is the Certificate Request payload (§3.7). For X.509 encodings the
// Certification Authority field is a list of 20-octet SHA-1 hashes of CA
// SubjectPublicKeyInfo; see Authorities.
type CertReq struct {
	Encoding CertEncoding
	Data     []byte
}

func (*CertReq) Type() PayloadType { return PayloadCERTREQ }

// Authorities splits Data into SHA-1 hashes (§3.7). ok is false when its
// length is not a multiple of 20.
func (p *CertReq) Authorities() (hashes [][]byte, ok bool) {
	if len(p.Data)%20 != 0 {
		return nil, false
	}
	for b := p.Data; len(b) > 0; b = b[20:] {
		hashes = append(hashes, b[:20:20])
	}
	return hashes, true
}

func (p *CertReq) appendBody(dst []byte) ([]byte, error) {
	return append(append(dst, byte(p.Encoding)), p.Data...), nil
}

func (p *CertReq) decodeBody(b []byte) error {
	if len(b) < 1 {
		return syntaxError(PayloadCERTREQ, "no Cert Encoding")
	}
	p.Encoding, p.Data = CertEncoding(b[0]), nilIfEmpty(b[1:])
	return nil
}
