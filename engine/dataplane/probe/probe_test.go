package probe

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func fixed(ok bool, reason string) Prober {
	return func(context.Context) (bool, string) { return ok, reason }
}

func TestSelect(t *testing.T) {
	down := fixed(false, "kernel ESP unavailable: function not implemented")
	up := fixed(true, "kernel ESP available")
	tests := []struct {
		name, mode string
		probe      Prober
		plane      string
		reason     string // substring
		wantErr    bool
	}{
		{"auto without ESP", Auto, down, Userspace, "kernel ESP unavailable: function not implemented", false},
		{"empty is auto", "", down, Userspace, "kernel ESP unavailable", false},
		{"auto with ESP", Auto, up, Xfrm, "kernel ESP available", false},
		{"forced xfrm with ESP", Xfrm, up, Xfrm, "configured: xfrm", false},
		{"forced xfrm without ESP", Xfrm, down, "", "", true},
		{"forced userspace", Userspace, down, Userspace, "configured: userspace", false},
		{"unknown mode", "dpdk", up, "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
			c, err := Select(context.Background(), tc.mode, tc.probe, log)
			if tc.wantErr {
				var se *SelectError
				if !errors.As(err, &se) {
					t.Fatalf("err = %v, want *SelectError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Plane != tc.plane || !strings.Contains(c.Reason, tc.reason) {
				t.Fatalf("got %+v, want plane %s reason containing %q", c, tc.plane, tc.reason)
			}
			if !strings.Contains(logs.String(), "plane="+tc.plane) {
				t.Fatalf("choice not logged: %q", logs.String())
			}
		})
	}
}

// TestProbeHost runs the real probe. On a kernel without ESP (this
// project's build machines) auto must fall back to userspace and xfrm must
// fail; inside the test VM (MIFSEC_VM_TEST=1) the kernel has ESP.
func TestProbeHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs CAP_NET_ADMIN")
	}
	ok, reason := Probe(context.Background())
	t.Logf("probe: ok=%v reason=%s", ok, reason)
	c, err := Select(context.Background(), Auto, nil, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	_, xerr := Select(context.Background(), Xfrm, nil, hclog.NewNullLogger())
	inVM := os.Getenv("MIFSEC_VM_TEST") == "1"
	switch {
	case inVM && (!ok || c.Plane != Xfrm || xerr != nil):
		t.Fatalf("in the VM the kernel has ESP: probe %v %q, auto %+v, xfrm err %v", ok, reason, c, xerr)
	case !inVM && ok:
		t.Logf("this host's kernel can do ESP: auto picked %s", c.Plane)
	case !inVM:
		if c.Plane != Userspace || !strings.HasPrefix(c.Reason, "kernel ESP unavailable: ") {
			t.Fatalf("auto = %+v, want userspace with 'kernel ESP unavailable: <error>'", c)
		}
		if xerr == nil || !strings.Contains(xerr.Error(), "kernel ESP unavailable") {
			t.Fatalf("forcing xfrm: err = %v, want a clear error", xerr)
		}
	}
}

func TestProbeCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if ok, reason := Probe(ctx); ok || !strings.Contains(reason, "canceled") {
		t.Fatalf("Probe(cancelled) = %v, %q", ok, reason)
	}
}
