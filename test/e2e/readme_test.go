package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mifsec/mifsec/test/daemon"
	"github.com/mifsec/mifsec/test/topo"
)

// TestReadmeGrpcurl runs the grpcurl lines of README.md as printed, in
// order, against a live mifsecd (only the socket path differs).
func TestReadmeGrpcurl(t *testing.T) {
	tp := topo.Build(t)
	d := daemon.Start(t, tp.UE, "--dataplane", "none")
	grpcurl := daemon.Tool(t, "grpcurl")
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	i := strings.Index(section, "## grpcurl")
	if i < 0 {
		t.Fatal("README has no grpcurl section")
	}
	section = section[i:]
	start := strings.Index(section, "```sh\n")
	end := strings.Index(section[start+6:], "```")
	block := section[start+6 : start+6+end]
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		if strings.HasPrefix(l, "grpcurl ") {
			lines = append(lines, l)
		}
	}
	if len(lines) < 10 {
		t.Fatalf("only %d grpcurl lines in the README", len(lines))
	}
	for _, l := range lines {
		cmd := exec.Command("bash", "-c", "S=unix://"+d.Socket+"; "+l)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(grpcurl)+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		watch := strings.Contains(l, "EventService/Watch")
		if watch {
			// -max-time ends the stream; the snapshot and its marker must be there.
			if !strings.Contains(string(out), "EVENT_TYPE_END_OF_SNAPSHOT") {
				t.Fatalf("%s:\n%s", l, out)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v\n%s\nmifsecd log:\n%s", l, err, out, d.Log())
		}
	}
}
