package ike

import (
	"strconv"
)

// Error is a decode error. Notify is what the receiver should answer with
// (RFC 7296 §2.21, §3.10.1) and Data that notify's data, e.g. the payload type
// for UNSUPPORTED_CRITICAL_PAYLOAD (§2.5). Use errors.As to get it.
type Error struct {
	Notify NotifyType
	Data   []byte
	Reason string
}

func (e *Error) Error() string {
	return "ike: " + e.Notify.String() + ": " + e.Reason
}

// syntaxError is the common INVALID_SYNTAX case (RFC 7296 §3.10.1).
func syntaxError(pt PayloadType, reason string) *Error {
	if pt != PayloadNone {
		reason = pt.String() + ": " + reason
	}
	return &Error{Notify: InvalidSyntax, Reason: reason}
}

// EncodeError reports a message or payload that cannot be put on the wire.
type EncodeError struct {
	Payload PayloadType // PayloadNone for the message itself
	Reason  string
}

func (e *EncodeError) Error() string {
	if e.Payload == PayloadNone {
		return "ike: encode: " + e.Reason
	}
	return "ike: encode " + e.Payload.String() + ": " + e.Reason
}

func encodeError(pt PayloadType, reason string) *EncodeError {
	return &EncodeError{Payload: pt, Reason: reason}
}

func itoa(n int) string { return strconv.Itoa(n) }
