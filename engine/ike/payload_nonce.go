package ike

// Nonce lengths (§3.9: "at least 128 bits ... MUST NOT exceed 2048 bits").
const (
	MinNonceLen = 16
	MaxNonceLen = 256
)

// Nonce is the Nonce payload (RFC 7296 §3.9).
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
