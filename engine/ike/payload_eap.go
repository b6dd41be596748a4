package ike

// EAP is the EAP payload (RFC 7296 §3.16), carried as an opaque EAP message.
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
