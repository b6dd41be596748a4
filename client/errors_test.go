package client

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

func withDetails(t *testing.T, c codes.Code, msg string, det ...protoadapt.MessageV1) error {
	t.Helper()
	st, err := status.New(c, msg).WithDetails(det...)
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

func TestDetails(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		ok     bool
		want   string
		reason string
		field  string
	}{
		{
			name: "error info with field",
			err: withDetails(t, codes.InvalidArgument, "bad link", &errdetails.ErrorInfo{
				Reason: "INVALID_LINK", Domain: "mifsec.dev",
				Metadata: map[string]string{"field": "interface.link", "link": "wl@n"},
			}),
			ok: true, reason: "INVALID_LINK", field: "interface.link",
			want: "INVALID_ARGUMENT: bad link (reason=INVALID_LINK, field=interface.link, link=wl@n)",
		},
		{
			name: "bad request only",
			err: withDetails(t, codes.InvalidArgument, "bad", &errdetails.BadRequest{
				FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "page_size"}},
			}),
			ok: true, field: "page_size",
			want: "INVALID_ARGUMENT: bad (field=page_size)",
		},
		{
			name: "first error info wins",
			err: withDetails(t, codes.NotFound, "gone",
				&errdetails.ErrorInfo{Reason: "A"}, &errdetails.ErrorInfo{Reason: "B"}),
			ok: true, reason: "A",
			want: "NOT_FOUND: gone (reason=A)",
		},
		{
			name: "plain status",
			err:  status.Error(codes.Unavailable, "no daemon"),
			ok:   true,
			want: "UNAVAILABLE: no daemon",
		},
		{
			name: "wrapped status",
			err:  fmt.Errorf("list: %w", status.Error(codes.PermissionDenied, "viewer")),
			ok:   true,
			want: "PERMISSION_DENIED: viewer",
		},
		{
			name: "local error",
			err:  errors.New("boom"),
			ok:   false,
			want: "UNKNOWN: boom",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := Details(tt.err)
			if ok != tt.ok || d.Reason != tt.reason || d.Field != tt.field || d.String() != tt.want {
				t.Errorf("Details() = %+v, %v; String() = %q\nwant ok=%v reason=%q field=%q %q",
					d, ok, d.String(), tt.ok, tt.reason, tt.field, tt.want)
			}
		})
	}
}

func TestCodeName(t *testing.T) {
	if got := CodeName(codes.FailedPrecondition); got != "FAILED_PRECONDITION" {
		t.Errorf("got %s", got)
	}
	if got := CodeName(codes.Code(99)); got != "CODE_99" {
		t.Errorf("got %s", got)
	}
}
