package ike

import "encoding/binary"

// Encrypted is the Encrypted and Authenticated payload SK (RFC 7296 §3.14):
// Body is IV | ciphertext | ICV as on the wire, First the type of the first
// inner payload (the SK Next Payload field). Encryption is done by
// engine/transform; see EncryptedOffset for the associated data, and
// DecodePayloads / EncodePayloads for the plaintext chain.
type Encrypted struct {
	First PayloadType
	Body  []byte
}

func (*Encrypted) Type() PayloadType { return PayloadSK }

func (p *Encrypted) appendBody(dst []byte) ([]byte, error) { return append(dst, p.Body...), nil }

func (p *Encrypted) decodeBody(b []byte) error { p.Body = nilIfEmpty(b); return nil }

// EncryptedFragment is the Encrypted Fragment payload SKF (RFC 7383 §2.5).
// First is set in fragment 1 only and zero in the others. Body is
// IV | ciphertext | ICV of this fragment.
type EncryptedFragment struct {
	First  PayloadType
	Number uint16 // 1..Total
	Total  uint16
	Body   []byte
}

func (*EncryptedFragment) Type() PayloadType { return PayloadSKF }

func (p *EncryptedFragment) appendBody(dst []byte) ([]byte, error) {
	if p.Number == 0 || p.Number > p.Total {
		return nil, encodeError(PayloadSKF, "Fragment Number "+itoa(int(p.Number))+" outside 1.."+itoa(int(p.Total)))
	}
	dst = binary.BigEndian.AppendUint16(dst, p.Number)
	dst = binary.BigEndian.AppendUint16(dst, p.Total)
	return append(dst, p.Body...), nil
}

func (p *EncryptedFragment) decodeBody(b []byte) error {
	if len(b) < 4 {
		return syntaxError(PayloadSKF, "shorter than the fragment header")
	}
	p.Number = binary.BigEndian.Uint16(b[0:2])
	p.Total = binary.BigEndian.Uint16(b[2:4])
	// RFC 7383 §2.5: numbering starts at 1 and Total is the count of fragments.
	if p.Number == 0 || p.Number > p.Total {
		return syntaxError(PayloadSKF, "Fragment Number "+itoa(int(p.Number))+" outside 1.."+itoa(int(p.Total)))
	}
	p.Body = nilIfEmpty(b[4:])
	return nil
}
