package ike

// Auth is the Authentication payload (RFC 7296 §3.8).
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
