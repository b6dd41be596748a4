package server

import (
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mifsec/mifsec/engine"
)

const errorDomain = "mifsec.io"

var codeMap = map[engine.Code]codes.Code{
	engine.Internal:           codes.Internal,
	engine.InvalidArgument:    codes.InvalidArgument,
	engine.NotFound:           codes.NotFound,
	engine.AlreadyExists:      codes.AlreadyExists,
	engine.FailedPrecondition: codes.FailedPrecondition,
	engine.ResourceExhausted:  codes.ResourceExhausted,
	engine.Unavailable:        codes.Unavailable,
	engine.Canceled:           codes.Canceled,
	engine.DeadlineExceeded:   codes.DeadlineExceeded,
}

// statusError builds a gRPC status with ErrorInfo{reason, metadata{field}}.
func statusError(c codes.Code, reason, field, msg string) error {
	st := status.New(c, msg)
	info := &errdetails.ErrorInfo{Reason: reason, Domain: errorDomain}
	if field != "" {
		info.Metadata = map[string]string{"field": field}
	}
	if ds, err := st.WithDetails(info); err == nil {
		st = ds
	}
	return st.Err()
}

func invalid(reason, field, msg string) error {
	return statusError(codes.InvalidArgument, reason, field, field+": "+msg)
}

// toStatus maps an engine error to a gRPC status. Internal causes are logged
// by the caller, not sent to clients.
func (s *Server) toStatus(err error) error {
	if err == nil {
		return nil
	}
	var e *engine.Error
	if !errors.As(err, &e) {
		s.log.Error("unexpected error", "error", err)
		return statusError(codes.Internal, "INTERNAL", "", "internal error")
	}
	c, ok := codeMap[e.Code]
	if !ok {
		c = codes.Internal
	}
	msg := e.Error()
	if c == codes.Internal {
		s.log.Error("internal error", "reason", e.Reason, "error", err)
		msg = e.Msg
	}
	return statusError(c, e.Reason, e.Field, msg)
}
