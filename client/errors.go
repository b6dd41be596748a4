package client

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorDetails is a gRPC error broken down for display: the canonical code,
// the message and the google.rpc.ErrorInfo the daemon attaches (AIP-193).
type ErrorDetails struct {
	Code    codes.Code
	Message string
	// Reason is ErrorInfo.reason (UPPER_SNAKE_CASE), empty when absent.
	Reason string
	// Domain is ErrorInfo.domain.
	Domain string
	// Field is ErrorInfo.metadata["field"], or the first BadRequest field
	// violation, naming the request field at fault.
	Field string
	// Metadata is ErrorInfo.metadata, including "field".
	Metadata map[string]string
}

// Details extracts ErrorDetails from err. ok is false when err carries no
// gRPC status (a local error); the result then has code UNKNOWN.
func Details(err error) (d ErrorDetails, ok bool) {
	var se interface{ GRPCStatus() *status.Status }
	if err == nil {
		return ErrorDetails{Code: codes.OK}, false
	}
	if !errors.As(err, &se) {
		return ErrorDetails{Code: codes.Unknown, Message: err.Error()}, false
	}
	st := se.GRPCStatus()
	d = ErrorDetails{Code: st.Code(), Message: st.Message()}
	for _, det := range st.Details() {
		switch v := det.(type) {
		case *errdetails.ErrorInfo:
			if d.Reason != "" {
				continue // the first ErrorInfo wins
			}
			d.Reason, d.Domain = v.GetReason(), v.GetDomain()
			d.Metadata = v.GetMetadata()
			if f, ok := d.Metadata["field"]; ok {
				d.Field = f
			}
		case *errdetails.BadRequest:
			if d.Field == "" && len(v.GetFieldViolations()) > 0 {
				d.Field = v.GetFieldViolations()[0].GetField()
			}
		}
	}
	return d, true
}

// CodeName returns the canonical name of c, e.g. "INVALID_ARGUMENT".
func CodeName(c codes.Code) string {
	if n, ok := code.Code_name[int32(c)]; ok {
		return n
	}
	return fmt.Sprintf("CODE_%d", uint32(c))
}

// String formats d as `CODE: message (reason=..., field=..., key=value)`;
// metadata other than field follows in key order.
func (d ErrorDetails) String() string {
	var b strings.Builder
	b.WriteString(CodeName(d.Code))
	b.WriteString(": ")
	b.WriteString(d.Message)
	var extra []string
	if d.Reason != "" {
		extra = append(extra, "reason="+d.Reason)
	}
	if d.Field != "" {
		extra = append(extra, "field="+d.Field)
	}
	keys := make([]string, 0, len(d.Metadata))
	for k := range d.Metadata {
		if k != "field" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		extra = append(extra, k+"="+d.Metadata[k])
	}
	if len(extra) > 0 {
		b.WriteString(" (")
		b.WriteString(strings.Join(extra, ", "))
		b.WriteString(")")
	}
	return b.String()
}
