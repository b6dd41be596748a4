package ike

import (
	"encoding/binary"
	"net/netip"
)

// KE is the Key Exchange payload (RFC 7296 §3.4). Data is the public value:
// MODP left-padded to the prime length, ECP x|y (RFC 5903 §7), Curve25519 u.
type KE struct {
	Group GroupID
	Data  []byte
}

func (*KE) Type() PayloadType { return PayloadKE }

func (p *KE) appendBody(dst []byte) ([]byte, error) {
	dst = binary.BigEndian.AppendUint16(dst, uint16(p.Group))
	dst = append(dst, 0, 0)
	return append(dst, p.Data...), nil
}

func (p *KE) decodeBody(b []byte) error {
	if len(b) < 4 {
		return syntaxError(PayloadKE, "shorter than 4 octets")
	}
	p.Group = GroupID(binary.BigEndian.Uint16(b[0:2]))
	p.Data = nilIfEmpty(b[4:])
	return nil
}

// Identification is the IDi (or, with Responder set, IDr) payload (§3.5).
type Identification struct {
	Responder bool
	IDType    IDType
	Data      []byte
}

func (p *Identification) Type() PayloadType {
	if p.Responder {
		return PayloadIDr
	}
	return PayloadIDi
}

// RestOfIDPayload returns ID Type, the three RESERVED octets and the data: the
// ID payload body that enters the AUTH computation (RFC 7296 §2.15).
func (p *Identification) RestOfIDPayload() []byte {
	b, _ := p.appendBody(make([]byte, 0, 4+len(p.Data)))
	return b
}

// Addr returns the address of an ID_IPV4_ADDR or ID_IPV6_ADDR identity.
func (p *Identification) Addr() (netip.Addr, bool) {
	switch {
	case p.IDType == IDIPv4Addr && len(p.Data) == 4:
		return netip.AddrFrom4([4]byte(p.Data)), true
	case p.IDType == IDIPv6Addr && len(p.Data) == 16:
		return netip.AddrFrom16([16]byte(p.Data)), true
	}
	return netip.Addr{}, false
}

// IdentificationFromAddr builds an ID_IPV4_ADDR or ID_IPV6_ADDR identity.
func IdentificationFromAddr(a netip.Addr, responder bool) *Identification {
	if a.Is4() {
		b := a.As4()
		return &Identification{Responder: responder, IDType: IDIPv4Addr, Data: b[:]}
	}
	b := a.As16()
	return &Identification{Responder: responder, IDType: IDIPv6Addr, Data: b[:]}
}

func (p *Identification) appendBody(dst []byte) ([]byte, error) {
	dst = append(dst, byte(p.IDType), 0, 0, 0)
	return append(dst, p.Data...), nil
}

func (p *Identification) decodeBody(b []byte) error {
	if len(b) < 4 {
		return syntaxError(p.Type(), "shorter than 4 octets")
	}
	p.IDType = IDType(b[0])
	p.Data = nilIfEmpty(b[4:])
	switch {
	case p.IDType == IDIPv4Addr && len(p.Data) != 4:
		return syntaxError(p.Type(), "ID_IPV4_ADDR of "+itoa(len(p.Data))+" octets")
	case p.IDType == IDIPv6Addr && len(p.Data) != 16:
		return syntaxError(p.Type(), "ID_IPV6_ADDR of "+itoa(len(p.Data))+" octets")
	}
	return nil
}

// Cert is the Certificate payload (§3.6).
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

// Auth is the Authentication payload (§3.8).
type Auth struct {
	Method AuthMethod
	Data   []byte
}

func (*Auth) Type() PayloadType { return PayloadAUTH }

func (p *Auth) appendBody(dst []byte) ([]byte, error) {
	dst = append(dst, byte(p.Method), 0, 0, 0)
	return append(dst, p.Data...), nil
}

func (p *Auth) decodeBody(b []byte) error {
	if len(b) < 4 {
		return syntaxError(PayloadAUTH, "shorter than 4 octets")
	}
	p.Method, p.Data = AuthMethod(b[0]), nilIfEmpty(b[4:])
	return nil
}

// Nonce lengths (§3.9: "at least 128 bits ... MUST NOT exceed 2048 bits").
const (
	MinNonceLen = 16
	MaxNonceLen = 256
)

// Nonce is the Nonce payload (§3.9).
type Nonce struct {
	Data []byte
}

func (*Nonce) Type() PayloadType { return PayloadNonce }

func (p *Nonce) appendBody(dst []byte) ([]byte, error) {
	if len(p.Data) < MinNonceLen || len(p.Data) > MaxNonceLen {
		return nil, encodeError(PayloadNonce, "nonce of "+itoa(len(p.Data))+" octets, want 16..256")
	}
	return append(dst, p.Data...), nil
}

func (p *Nonce) decodeBody(b []byte) error {
	if len(b) < MinNonceLen || len(b) > MaxNonceLen {
		return syntaxError(PayloadNonce, "nonce of "+itoa(len(b))+" octets, want 16..256")
	}
	p.Data = b
	return nil
}

// VendorID is the Vendor ID payload (§3.12).
type VendorID struct {
	Data []byte
}

func (*VendorID) Type() PayloadType { return PayloadVendorID }

func (p *VendorID) appendBody(dst []byte) ([]byte, error) { return append(dst, p.Data...), nil }

func (p *VendorID) decodeBody(b []byte) error { p.Data = nilIfEmpty(b); return nil }

// EAP is the EAP payload (§3.16), carried as an opaque EAP message.
type EAP struct {
	Message []byte
}

func (*EAP) Type() PayloadType { return PayloadEAP }

func (p *EAP) appendBody(dst []byte) ([]byte, error) {
	if len(p.Message) < 4 {
		return nil, encodeError(PayloadEAP, "EAP message shorter than its 4-octet header")
	}
	return append(dst, p.Message...), nil
}

func (p *EAP) decodeBody(b []byte) error {
	// §3.16: the body is one EAP message (RFC 3748 §4), header at least 4 octets.
	if len(b) < 4 {
		return syntaxError(PayloadEAP, "EAP message shorter than its 4-octet header")
	}
	p.Message = b
	return nil
}
