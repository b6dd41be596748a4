package esp

import "encoding/binary"

// Port is the UDP port of IKE and UDP-encapsulated ESP after NAT detection
// (RFC 3948 §2, RFC 7296 §2.23).
const Port = 4500

// NonESPMarkerLen is the length of the four zero bytes that precede an IKE
// message on port 4500 (RFC 3948 §2.2).
const NonESPMarkerLen = 4

// KeepaliveByte is the single-byte payload of a NAT-keepalive (RFC 3948 §2.3).
const KeepaliveByte = 0xFF

// Kind says what a UDP payload received on port 4500 carries.
type Kind uint8

const (
	KindInvalid   Kind = iota // too short, or an SPI in the reserved range 1..255
	KindIKE                   // non-ESP marker, then an IKE message (RFC 3948 §2.2)
	KindKeepalive             // NAT-keepalive: ignore (RFC 3948 §2.3)
	KindESP                   // an ESP packet, SPI first (RFC 3948 §2.1)
)

func (k Kind) String() string {
	switch k {
	case KindIKE:
		return "ike"
	case KindKeepalive:
		return "nat_keepalive"
	case KindESP:
		return "esp"
	}
	return "invalid"
}

// Classify tells apart what arrived in a UDP payload on port 4500 and returns
// the message without its marker: the IKE message after the non-ESP marker,
// or the whole ESP packet. The result is a subslice of payload.
func Classify(payload []byte) (Kind, []byte) {
	switch {
	case len(payload) == 1 && payload[0] == KeepaliveByte:
		return KindKeepalive, nil
	case len(payload) < 8:
		// Shorter than SPI and sequence number, or than a marker and the
		// smallest useful IKE data.
		return KindInvalid, nil
	}
	spi := binary.BigEndian.Uint32(payload)
	switch {
	case spi == 0:
		return KindIKE, payload[NonESPMarkerLen:]
	case spi < 256:
		return KindInvalid, nil // reserved SPI values (RFC 4303 §2.1)
	}
	return KindESP, payload
}

// PeekSPI returns the SPI of an ESP packet for the SA lookup.
func PeekSPI(pkt []byte) (uint32, bool) {
	if len(pkt) < 8 {
		return 0, false
	}
	return binary.BigEndian.Uint32(pkt), true
}

// AppendIKE appends the non-ESP marker and an IKE message to dst: the UDP
// payload to send on port 4500.
func AppendIKE(dst, msg []byte) []byte {
	dst = append(dst, 0, 0, 0, 0)
	return append(dst, msg...)
}

// PutNonESPMarker writes the marker into b[:4], for callers that reserved
// NonESPMarkerLen bytes in front of an IKE message. It returns b.
func PutNonESPMarker(b []byte) []byte {
	clear(b[:NonESPMarkerLen])
	return b
}

// AppendKeepalive appends the NAT-keepalive payload to dst (RFC 3948 §2.3).
func AppendKeepalive(dst []byte) []byte { return append(dst, KeepaliveByte) }
