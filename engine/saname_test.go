package engine

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// An IKE SA's name logs as its 16 hex digits in text and JSON lines alike.
func TestSANameLogs(t *testing.T) {
	for _, json := range []bool{false, true} {
		var b bytes.Buffer
		l := hclog.New(&hclog.LoggerOptions{JSONFormat: json, Output: &b})
		l.Info("IKE SA up", "ike_sa", saName(0x00a53bb9cfaf7e01))
		want := "ike_sa=00a53bb9cfaf7e01"
		if json {
			want = `"ike_sa":"00a53bb9cfaf7e01"`
		}
		if !strings.Contains(b.String(), want) {
			t.Fatalf("json=%v: %q lacks %q", json, b.String(), want)
		}
	}
}
