package ike

import (
	"os/exec"
	"strings"
	"testing"
)

// The codec is a leaf (DESIGN.md §3): it may import only the standard library.
func TestImportsOnlyStdlib(t *testing.T) {
	const self = "github.com/mifsec/mifsec/engine/ike"
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := false
	for _, p := range strings.Fields(string(out)) {
		if p == self {
			seen = true
			continue
		}
		t.Errorf("engine/ike depends on non-standard package %s", p)
	}
	if !seen {
		t.Fatalf("go list did not report %s itself: %q", self, out)
	}
}
