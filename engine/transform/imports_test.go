package transform

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the package's dependencies to the standard library,
// golang.org/x/crypto and engine/ike (see the package comment).
func TestImports(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), e.Name(), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			n++
			first := strings.Split(path, "/")[0]
			switch {
			case !strings.Contains(first, "."): // standard library
			case path == "golang.org/x/crypto" || strings.HasPrefix(path, "golang.org/x/crypto/"):
			case path == "github.com/mifsec/mifsec/engine/ike":
			default:
				t.Errorf("%s imports %s", e.Name(), path)
			}
		}
	}
	if n == 0 {
		t.Fatal("no imports found: wrong directory?")
	}
}
