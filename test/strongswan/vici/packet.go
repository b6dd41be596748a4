package vici

import (
	"encoding/binary"
	"fmt"
	"io"
)

// packetType is the first byte of a transport segment (vici README,
// "Packet layer").
type packetType uint8

const (
	pktCmdRequest      packetType = 0
	pktCmdResponse     packetType = 1
	pktCmdUnknown      packetType = 2
	pktEventRegister   packetType = 3
	pktEventUnregister packetType = 4
	pktEventConfirm    packetType = 5
	pktEventUnknown    packetType = 6
	pktEvent           packetType = 7
)

func (p packetType) String() string {
	switch p {
	case pktCmdRequest:
		return "CMD_REQUEST"
	case pktCmdResponse:
		return "CMD_RESPONSE"
	case pktCmdUnknown:
		return "CMD_UNKNOWN"
	case pktEventRegister:
		return "EVENT_REGISTER"
	case pktEventUnregister:
		return "EVENT_UNREGISTER"
	case pktEventConfirm:
		return "EVENT_CONFIRM"
	case pktEventUnknown:
		return "EVENT_UNKNOWN"
	case pktEvent:
		return "EVENT"
	}
	return fmt.Sprintf("PACKET_%d", uint8(p))
}

// named reports whether the type carries a name tag after the type byte.
func (p packetType) named() bool {
	switch p {
	case pktCmdRequest, pktEventRegister, pktEventUnregister, pktEvent:
		return true
	}
	return false
}

// hasMessage reports whether the type wraps a message.
func (p packetType) hasMessage() bool {
	switch p {
	case pktCmdRequest, pktCmdResponse, pktEvent:
		return true
	}
	return false
}

// maxSegment is the transport limit on one segment (vici README,
// "Transport protocol": 512KB of data).
const maxSegment = 512 * 1024

type packet struct {
	typ  packetType
	name string
	msg  *Message
}

func (p packet) marshal() ([]byte, error) {
	b := make([]byte, 4, 64)
	b = append(b, byte(p.typ))
	if p.typ.named() {
		var err error
		if b, err = appendName(b, p.name); err != nil {
			return nil, err
		}
	}
	if p.typ.hasMessage() && p.msg != nil {
		var err error
		if b, err = p.msg.appendTo(b, 0); err != nil {
			return nil, err
		}
	}
	n := len(b) - 4
	if n > maxSegment {
		return nil, &EncodeError{Reason: fmt.Sprintf("packet of %d bytes exceeds the %d byte segment limit", n, maxSegment)}
	}
	binary.BigEndian.PutUint32(b, uint32(n))
	return b, nil
}

func writePacket(w io.Writer, p packet) error {
	b, err := p.marshal()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func readPacket(r io.Reader) (packet, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return packet{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return packet{}, &DecodeError{Offset: 0, Reason: "empty segment"}
	}
	if n > maxSegment {
		return packet{}, &DecodeError{Offset: 0, Reason: fmt.Sprintf("segment of %d bytes exceeds the %d byte limit", n, maxSegment)}
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return packet{}, err
	}
	return parsePacket(buf)
}

func parsePacket(buf []byte) (packet, error) {
	p := packet{typ: packetType(buf[0])}
	if p.typ > pktEvent {
		return packet{}, &DecodeError{Offset: 0, Reason: fmt.Sprintf("unknown packet type %d", buf[0])}
	}
	off := 1
	if p.typ.named() {
		if len(buf) < 2 {
			return packet{}, &DecodeError{Offset: 1, Reason: "truncated name length"}
		}
		l := int(buf[1])
		if 2+l > len(buf) {
			return packet{}, &DecodeError{Offset: 2, Reason: fmt.Sprintf("name of %d bytes exceeds the packet", l)}
		}
		p.name = string(buf[2 : 2+l])
		off = 2 + l
	}
	if !p.typ.hasMessage() {
		if off != len(buf) {
			return packet{}, &DecodeError{Offset: off, Reason: fmt.Sprintf("%v carries %d unexpected bytes", p.typ, len(buf)-off)}
		}
		return p, nil
	}
	m, err := Unmarshal(buf[off:])
	if err != nil {
		if de, ok := err.(*DecodeError); ok {
			de.Offset += off
		}
		return packet{}, err
	}
	p.msg = m
	return p, nil
}
