package main

import (
	"errors"

	"google.golang.org/grpc/codes"

	"github.com/mifsec/mifsec/client"
)

// Exit codes, one per class of failure; see rootLong.
const (
	exitOK          = 0
	exitLocal       = 1
	exitUsage       = 2
	exitInvalid     = 3
	exitNotFound    = 4
	exitConflict    = 5
	exitDenied      = 6
	exitUnreachable = 7
	exitExhausted   = 8
	exitServer      = 9
	exitInterrupted = 130
)

// usageError marks a mistake on the command line.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// asUsage marks err as a command-line mistake (exit code 2).
func asUsage(err error) error { return &usageError{err} }

// exitCode classifies err.
func exitCode(err error) int {
	var (
		ue *usageError
		te *client.TargetError
		ne *client.NameError
	)
	if errors.As(err, &ue) || errors.As(err, &te) || errors.As(err, &ne) {
		return exitUsage
	}
	d, ok := client.Details(err)
	if !ok {
		return exitLocal
	}
	switch d.Code {
	case codes.OK:
		return exitOK
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return exitInvalid
	case codes.NotFound:
		return exitNotFound
	case codes.AlreadyExists, codes.Aborted:
		return exitConflict
	case codes.PermissionDenied, codes.Unauthenticated:
		return exitDenied
	case codes.Unavailable, codes.DeadlineExceeded:
		return exitUnreachable
	case codes.ResourceExhausted:
		return exitExhausted
	}
	return exitServer
}

// errorText renders err for stderr: `CODE: message (reason=..., field=...)`
// for gRPC errors, the message otherwise.
func errorText(err error) string {
	if d, ok := client.Details(err); ok {
		return d.String()
	}
	return err.Error()
}
