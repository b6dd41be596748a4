package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"go.uber.org/goleak"

	"github.com/mifsec/mifsec/engine"
	"github.com/mifsec/mifsec/engine/iface/ifacetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newEngine(t *testing.T, dir string) *engine.Engine {
	t.Helper()
	links := ifacetest.New()
	links.AddLink("wlan0", "192.0.2.10/24")
	links.AddLink("rmnet0", "198.51.100.7/30")
	e, err := engine.New(engine.Config{StateDir: dir, Links: links, Log: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func actions(rs []Result) string {
	var out []string
	for _, r := range rs {
		s := r.Kind + "/" + r.Name + "=" + r.Action.String()
		if len(r.Fields) > 0 {
			s += "(" + strings.Join(r.Fields, ",") + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func TestApplyGateway(t *testing.T) {
	f, err := Load("testdata/gateway.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprintf("%v %+v %#v", f.Secrets[0].Value, f.Secrets[0], f.Secrets[0].Value); strings.Contains(s, "not-a-real-psk") {
		t.Fatalf("secret value printed: %s", s)
	}
	state := t.TempDir()
	e := newEngine(t, state)
	res, err := f.Apply(ctx(t), e, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := actions(res), "interface/wlan=created interface/ran=created secret/ue-psk=created pool/ue=created connection/ue=created"; got != want {
		t.Errorf("first apply:\n got %s\nwant %s", got, want)
	}
	c, err := e.GetConnection(ctx(t), "ue")
	if err != nil {
		t.Fatal(err)
	}
	if c.Role != engine.RoleResponder || c.Pool != "ue" || c.DPDInterval != 30*time.Second || !c.MOBIKE ||
		len(c.Children) != 1 || c.Children[0].RemoteTS[0] != "10.8.0.0/24" || c.LocalAuth.PSKSecret != "ue-psk" {
		t.Errorf("connection: %+v", c)
	}
	ran, _ := e.GetInterface(ctx(t), "ran")
	if ran.Link != "rmnet0" || ran.AccessType != engine.AccessRAN || ran.Priority != 20 || !ran.Metered {
		t.Errorf("interface ran: %+v", ran)
	}
	// Same file again: nothing to do (defaults the engine filled in are
	// not differences).
	res, err = f.Apply(ctx(t), e, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := actions(res), "interface/wlan=unchanged interface/ran=unchanged secret/ue-psk=unchanged pool/ue=unchanged connection/ue=unchanged"; got != want {
		t.Errorf("second apply:\n got %s\nwant %s", got, want)
	}
	f.Zero()
	if f.Secrets[0].Value != nil {
		t.Error("Zero left the secret")
	}
	e.Close()

	// After a restart from the state directory, an edited file updates only
	// what it changes; an object changed through the API is put back.
	e = newEngine(t, state)
	defer e.Close()
	if _, err := e.UpdateInterface(ctx(t), "wlan", engine.InterfaceSpec{Priority: 99}, []string{engine.FieldPriority}); err != nil {
		t.Fatal(err)
	}
	src, _ := os.ReadFile("testdata/gateway.hcl")
	edited := strings.Replace(string(src), `dpd_interval = "30s"`, `dpd_interval = "10s"`, 1)
	edited = strings.Replace(edited, `dns_servers = ["10.8.0.1"]`, `dns_servers = ["10.8.0.1", "10.8.0.2"]`, 1)
	f, err = Parse([]byte(edited), "edited.hcl", "testdata")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Zero()
	res, err = f.Apply(ctx(t), e, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := actions(res), "interface/wlan=updated(priority) interface/ran=unchanged secret/ue-psk=unchanged pool/ue=updated(dns_servers) connection/ue=updated(dpd)"; got != want {
		t.Errorf("edited apply:\n got %s\nwant %s", got, want)
	}
	c, _ = e.GetConnection(ctx(t), "ue")
	p, _ := e.GetPool(ctx(t), "ue")
	w, _ := e.GetInterface(ctx(t), "wlan")
	if c.DPDInterval != 10*time.Second || len(p.DNS) != 2 || w.Priority != 10 {
		t.Errorf("after edit: dpd %v, dns %v, wlan priority %d", c.DPDInterval, p.DNS, w.Priority)
	}
}

func TestApplyConflicts(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "k"), []byte("some psk value"), 0o600)
	psk := `secret "k" {
  type = "psk"
  file = "k"
}
`
	cases := []struct {
		name, setup, file, want string
	}{
		{"secret type differs",
			`secret "s" {
  type = "psk"
  file = "k"
}`,
			`secret "s" {
  type = "private_key"
  file = "k"
}`, `exists with type psk`},
		{"role differs",
			psk + `connection "c" {
  role = "responder"
  local_auth { psk_secret = "k" }
  remote_auth { psk_secret = "k" }
}`,
			`connection "c" {
  role = "initiator"
  remote_addresses = ["192.0.2.1"]
}`, "the role cannot change"},
		{"engine refuses",
			psk,
			`connection "c" {
  role = "initiator"
  local_auth { psk_secret = "k" }
  remote_auth { psk_secret = "k" }
}`, "an initiator needs at least one remote address"},
		{"missing link",
			"",
			`interface "x" {
  link = "eth9"
  access_type = "wired"
}`, "eth9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, t.TempDir())
			defer e.Close()
			if tc.setup != "" {
				f, err := Parse([]byte(tc.setup), "setup.hcl", dir)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.Apply(ctx(t), e, nil); err != nil {
					t.Fatal(err)
				}
			}
			f, err := Parse([]byte(tc.file), "mifsec.hcl", dir)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.Apply(ctx(t), e, hclog.NewNullLogger())
			var ae *ApplyError
			if !errors.As(err, &ae) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "mifsec.hcl:1,1") {
				t.Fatalf("error %v, want ApplyError at mifsec.hcl:1,1 containing %q", err, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600)
	cases := []struct {
		name, src string
		line, col int
		want      string
	}{
		{"syntax", "interface \"a\" {\n  link = \n}\n", 2, 10, "Invalid expression"},
		{"unknown attribute", "interface \"a\" {\n  lnk = \"x\"\n}\n", 2, 3, "Unsupported argument"},
		{"unknown block", "route \"voice\" {\n}\n", 1, 1, "Unsupported block type"},
		{"access type", "interface \"a\" {\n  access_type = \"5g\"\n}\n", 2, 17, "Invalid access_type"},
		{"bad duration", "connection \"c\" {\n  role = \"initiator\"\n  dpd_interval = \"soon\"\n}\n", 3, 18, "Invalid duration"},
		{"bad role", "connection \"c\" {\n  role = \"boss\"\n}\n", 2, 10, "Invalid role"},
		{"missing role", "connection \"c\" {\n}\n", 1, 16, "Missing required argument"},
		{"child mode", "connection \"c\" {\n  role = \"initiator\"\n  child \"n\" {\n    mode = \"beet\"\n  }\n}\n", 4, 12, "Invalid mode"},
		{"start action", "connection \"c\" {\n  role = \"initiator\"\n  child \"n\" {\n    start_action = \"go\"\n  }\n}\n", 4, 20, "Invalid start_action"},
		{"secret type", "secret \"s\" {\n  type = \"password\"\n  file = \"empty\"\n}\n", 2, 10, "Invalid secret type"},
		{"secret file absent", "secret \"s\" {\n  type = \"psk\"\n  file = \"absent\"\n}\n", 3, 10, "Cannot read secret file"},
		{"secret file empty", "secret \"s\" {\n  type = \"psk\"\n  file = \"empty\"\n}\n", 3, 10, "Empty secret file"},
		{"cert file absent", "connection \"c\" {\n  role = \"responder\"\n  remote_auth {\n    ca_file = \"nope.pem\"\n  }\n}\n", 4, 15, "Cannot read ca_file"},
		{"duplicate", "pool \"p\" {\n}\npool \"p\" {\n}\n", 3, 1, "Duplicate pool"},
		{"bad name", "pool \"P Q\" {\n}\n", 1, 1, "Invalid pool name"},
		{"bad dns", "pool \"p\" {\n  dns_servers = [\"dns.example\"]\n}\n", 1, 1, "Invalid address in dns_servers"},
		{"wrong type", "interface \"a\" {\n  priority = \"high\"\n}\n", 2, 15, "Unsuitable value type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkDiag(t, tc.src, dir, tc.line, tc.col, tc.want) })
	}
}

// checkDiag parses src and wants its first diagnostic at line:col with a
// summary containing want.
func checkDiag(t *testing.T, src, dir string, line, col int, want string) {
	t.Helper()
	_, err := Parse([]byte(src), "mifsec.hcl", dir)
	var diags hcl.Diagnostics
	if !errors.As(err, &diags) || len(diags) == 0 {
		t.Fatalf("error %v, want hcl.Diagnostics", err)
	}
	d := diags[0]
	if !strings.Contains(d.Summary, want) {
		t.Errorf("summary %q, want %q", d.Summary, want)
	}
	if d.Subject == nil || d.Subject.Filename != "mifsec.hcl" || d.Subject.Start.Line != line || d.Subject.Start.Column != col {
		t.Errorf("at %v, want mifsec.hcl:%d,%d", d.Subject, line, col)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("mifsec.hcl:%d,%d", line, col)) {
		t.Errorf("error text %q lacks the position", err)
	}
}

func TestParseKeepsUnsetFieldsUnset(t *testing.T) {
	f, err := Parse([]byte(`
interface "wlan" {}
connection "c" {
  role = "initiator"
  remote_addresses = ["192.0.2.1"]
  mobike = false
  child "n" {
    rekey_time = "30m"
  }
}
`), "x.hcl", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	in := f.Interfaces[0]
	if in.Link != nil || in.AccessType != nil || in.Priority != nil || in.Metered != nil || in.AllowMissing {
		t.Errorf("interface: %+v", in)
	}
	var set []string
	for k := range f.Connections[0].Set {
		set = append(set, k)
	}
	slices.Sort(set)
	if got := strings.Join(set, ","); got != "children,mobike,remote_addresses" {
		t.Errorf("set fields %s", got)
	}
	if cs := f.Connections[0].ChildSet[0]; len(cs) != 1 || !cs["rekey_time"] {
		t.Errorf("child set %v", cs)
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{Unchanged: "unchanged", Created: "created", Updated: "updated", 9: "Action(9)"} {
		if a.String() != want {
			t.Errorf("%d: %q", a, a.String())
		}
	}
}
