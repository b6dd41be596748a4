package sa

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestSansIO enforces the package contract (doc.go): allowed imports only,
// no goroutines, no clock, no sockets.
func TestSansIO(t *testing.T) {
	allowed := map[string]bool{
		"github.com/mifsec/mifsec/engine/ike":          true,
		"github.com/mifsec/mifsec/engine/transform":    true,
		"github.com/mifsec/mifsec/engine/dataplane":    true,
		"github.com/mifsec/mifsec/engine/internal/few": true, // a short-list type, no I/O
		"github.com/hashicorp/go-hclog":                true,
	}
	forbidden := map[string]bool{"net": true, "os": true, "syscall": true, "sync": true, "unsafe": true, "math/rand": true}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	n := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		n++
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			std := !strings.Contains(strings.Split(p, "/")[0], ".")
			if (std && forbidden[p]) || (!std && !allowed[p]) {
				t.Errorf("%s imports %s", name, p)
			}
		}
		ast.Inspect(f, func(x ast.Node) bool {
			switch v := x.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: goroutine at %v", name, fset.Position(v.Pos()))
			case *ast.SelectorExpr:
				if id, ok := v.X.(*ast.Ident); ok && id.Name == "time" && (v.Sel.Name == "Now" || v.Sel.Name == "Since" || v.Sel.Name == "Sleep" || v.Sel.Name == "After" || v.Sel.Name == "NewTimer") {
					t.Errorf("%s: time.%s at %v", name, v.Sel.Name, fset.Position(v.Pos()))
				}
			}
			return true
		})
	}
	if n < 5 {
		t.Fatalf("only %d files checked", n)
	}
}
