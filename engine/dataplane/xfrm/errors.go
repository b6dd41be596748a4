package xfrm

import (
	"errors"
	"fmt"

	"github.com/mifsec/mifsec/engine/dataplane"
	"golang.org/x/sys/unix"
)

// Error reports a failed data-plane operation with the reason.
// errors.Is works against the dataplane sentinels (ErrNotFound, ErrExists,
// ErrUnsupported) and against the kernel's errno when there is one.
type Error struct {
	Op     string // add_sa, update_sa, delete_sa, add_policy, ...
	Reason string // what was wrong, for humans
	Err    error  // sentinel and/or errno; may be nil
}

func (e *Error) Error() string {
	if e.Err == nil {
		return "xfrm: " + e.Op + ": " + e.Reason
	}
	return "xfrm: " + e.Op + ": " + e.Reason + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// ErrSteeringHook is why a dataplane.Steering hook cannot be honoured here:
// the kernel never calls back into Go per packet. Flows are steered onto a
// path by marking them (PathMark) or by routing them into the path's xfrm
// interface (BindIfID).
var ErrSteeringHook = fmt.Errorf("%w: the kernel cannot call a per-packet steering hook; mark flows with PathMark or route them into the path's xfrm interface", dataplane.ErrUnsupported)

func invalid(op, reason string) error { return &Error{Op: op, Reason: reason} }

func unsupported(op, reason string) error {
	return &Error{Op: op, Reason: reason, Err: dataplane.ErrUnsupported}
}

// kernelError maps a netlink error to an *Error, keeping the errno reachable.
func kernelError(op, reason string, err error) error {
	switch {
	case errors.Is(err, unix.EEXIST):
		err = fmt.Errorf("%w: %w", dataplane.ErrExists, err)
	case errors.Is(err, unix.ESRCH), errors.Is(err, unix.ENOENT):
		err = fmt.Errorf("%w: %w", dataplane.ErrNotFound, err)
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EOPNOTSUPP):
		err = fmt.Errorf("%w: %w", dataplane.ErrUnsupported, err)
	}
	return &Error{Op: op, Reason: reason, Err: err}
}
