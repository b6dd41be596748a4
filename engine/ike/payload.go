package ike

// Payload is one IKE payload. The container (Message, EncodePayloads,
// DecodePayloads) writes and reads the generic payload header (RFC 7296 §3.2)
// and the chaining; a payload handles only its body.
type Payload interface {
	// Type is the payload's Next Payload value.
	Type() PayloadType
	appendBody(dst []byte) ([]byte, error)
	decodeBody(b []byte) error
}

// newPayload returns an empty payload of a known type, or nil.
func newPayload(t PayloadType) Payload {
	switch t {
	case PayloadSA:
		return &SA{}
	case PayloadKE:
		return &KE{}
	case PayloadIDi:
		return &Identification{}
	case PayloadIDr:
		return &Identification{Responder: true}
	case PayloadCERT:
		return &Cert{}
	case PayloadCERTREQ:
		return &CertReq{}
	case PayloadAUTH:
		return &Auth{}
	case PayloadNonce:
		return &Nonce{}
	case PayloadNotify:
		return &Notify{}
	case PayloadDelete:
		return &Delete{}
	case PayloadVendorID:
		return &VendorID{}
	case PayloadTSi:
		return &TrafficSelectors{}
	case PayloadTSr:
		return &TrafficSelectors{Responder: true}
	case PayloadSK:
		return &Encrypted{}
	case PayloadCP:
		return &Config{}
	case PayloadEAP:
		return &EAP{}
	case PayloadSKF:
		return &EncryptedFragment{}
	}
	return nil
}

// Unknown is a non-critical payload of a type this package does not know,
// kept opaque so the message can be re-encoded (RFC 7296 §2.5).
type Unknown struct {
	PayloadType PayloadType
	Body        []byte
}

func (p *Unknown) Type() PayloadType { return p.PayloadType }

func (p *Unknown) appendBody(dst []byte) ([]byte, error) {
	if newPayload(p.PayloadType) != nil || p.PayloadType == PayloadNone {
		return nil, encodeError(p.PayloadType, "known payload type given as Unknown")
	}
	return append(dst, p.Body...), nil
}

func (p *Unknown) decodeBody(b []byte) error { p.Body = b; return nil }

// clone returns b, or nil when it is empty, so that decoded values compare
// equal after a round trip.
func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
