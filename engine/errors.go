package engine

import (
	"errors"
	"fmt"
)

// Code classifies an engine error. The server maps each to the canonical
// gRPC code of the same name.
type Code uint8

const (
	Internal Code = iota
	InvalidArgument
	NotFound
	AlreadyExists
	FailedPrecondition
	ResourceExhausted
	Unavailable
	Canceled
	DeadlineExceeded
)

var codeNames = [...]string{"internal", "invalid_argument", "not_found", "already_exists",
	"failed_precondition", "resource_exhausted", "unavailable", "canceled", "deadline_exceeded"}

func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", c)
}

// Reasons: stable, machine-readable causes (google.rpc.ErrorInfo.reason).
const (
	ReasonInvalidID         = "INVALID_ID"
	ReasonInvalidLink       = "INVALID_LINK_NAME"
	ReasonInvalidAccessType = "INVALID_ACCESS_TYPE"
	ReasonLinkNotFound      = "LINK_NOT_FOUND"
	ReasonInterfaceNotFound = "INTERFACE_NOT_FOUND"
	ReasonInterfaceExists   = "INTERFACE_ALREADY_EXISTS"
	ReasonLinkInUse         = "LINK_ALREADY_REGISTERED"
	ReasonInvalidFieldMask  = "INVALID_FIELD_MASK"
	ReasonWatchOverflow     = "WATCH_OVERFLOW"
	ReasonShuttingDown      = "SHUTTING_DOWN"
	ReasonPersistFailed     = "PERSIST_FAILED"
)

// Error is what every engine method returns on failure.
type Error struct {
	Code   Code
	Reason string // see Reason* constants
	Field  string // the offending field, API spelling (e.g. "interface.link")
	Msg    string
	Err    error // cause, if any
}

func (e *Error) Error() string {
	s := e.Msg
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

func errf(code Code, reason, field, format string, a ...any) *Error {
	return &Error{Code: code, Reason: reason, Field: field, Msg: fmt.Sprintf(format, a...)}
}

// AsError returns err as an *Error, wrapping foreign errors as Internal.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: Internal, Reason: "INTERNAL", Msg: "internal error", Err: err}
}
