package vici

import (
	"errors"
	"fmt"
)

// DecodeError reports malformed vici data from the peer.
type DecodeError struct {
	Offset int    // byte offset in the message or packet
	Reason string // what was wrong
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("vici: malformed data at offset %d: %s", e.Offset, e.Reason)
}

// EncodeError reports a message that cannot be encoded.
type EncodeError struct {
	Key    string
	Reason string
}

func (e *EncodeError) Error() string {
	if e.Key == "" {
		return "vici: cannot encode: " + e.Reason
	}
	return fmt.Sprintf("vici: cannot encode key %q: %s", e.Key, e.Reason)
}

// CommandError is a command that charon ran and answered with
// success = no (or a streamed command that reported failure).
type CommandError struct {
	Command string
	Reason  string   // errmsg from charon, if any
	Log     []string // control-log lines streamed while the command ran
}

func (e *CommandError) Error() string {
	r := e.Reason
	if r == "" {
		r = "failed without errmsg"
	}
	return fmt.Sprintf("vici: %s: %s", e.Command, r)
}

// ErrUnknownCommand is returned when charon answers CMD_UNKNOWN.
var ErrUnknownCommand = errors.New("vici: unknown command")

// ErrUnknownEvent is returned when charon answers EVENT_UNKNOWN.
var ErrUnknownEvent = errors.New("vici: unknown event")

// ProtocolError is a packet that does not fit the exchange in progress.
type ProtocolError struct {
	Reason string
}

func (e *ProtocolError) Error() string { return "vici: protocol error: " + e.Reason }
