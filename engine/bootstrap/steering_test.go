package bootstrap

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mifsec/mifsec/engine"
)

var voiceSpec = engine.SteeringSpec{
	Match: engine.FlowMatch{
		Sources:          []string{"10.8.0.0/24"},
		Destinations:     []string{"198.51.100.0/24", "2001:db8::1"},
		Protocol:         17,
		SourcePorts:      engine.PortRange{First: 5060, Last: 5060},
		DestinationPorts: engine.PortRange{First: 5060, Last: 5061},
		DSCP:             []uint32{46, 34},
		Connection:       "gw",
	},
	Mode:          engine.SteerActiveStandby,
	Precedence:    10,
	Targets:       []engine.SteeringTarget{{Interface: "ran"}, {Interface: "wlan"}},
	ProbeInterval: 100 * time.Millisecond,
}

func TestParseSteering(t *testing.T) {
	f, err := Load("testdata/enduser.hcl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Zero()
	if len(f.SteeringRules) != 3 {
		t.Fatalf("%d rules", len(f.SteeringRules))
	}
	v := f.SteeringRules[0]
	if v.Name != "voice" || !reflect.DeepEqual(v.Spec, voiceSpec) {
		t.Errorf("voice: %s %+v\nwant %+v", v.Name, v.Spec, voiceSpec)
	}
	if len(v.MatchSet) != 7 || len(v.Set) != 4 {
		t.Errorf("voice sets %v, match sets %v", v.Set, v.MatchSet)
	}
	b := f.SteeringRules[1]
	wantBulk := []engine.SteeringTarget{{AccessType: engine.AccessWLAN, Weight: 3}, {AccessType: engine.AccessRAN, Weight: 1}}
	if b.Spec.Mode != engine.SteerLoadBalance || b.Spec.Match.Protocol != 6 || !reflect.DeepEqual(b.Spec.Targets, wantBulk) {
		t.Errorf("bulk: %+v", b.Spec)
	}
	if len(b.MatchSet) != 1 || !b.MatchSet["protocol"] || b.Set["probe_interval"] {
		t.Errorf("bulk sets %v, match sets %v", b.Set, b.MatchSet)
	}
	r := f.SteeringRules[2]
	if r.Spec.Mode != engine.SteerPriority || r.Spec.Precedence != 1000 || len(r.MatchSet) != 0 || r.Spec.Targets[1].AccessType != engine.AccessRAN {
		t.Errorf("rest: %+v", r)
	}
	if !f.Connections[0].Spec.Multipath || !f.Connections[0].Set["multipath"] {
		t.Errorf("connection multipath not read: %+v", f.Connections[0].Set)
	}
}

func TestApplySteering(t *testing.T) {
	f, err := Load("testdata/enduser.hcl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Zero()
	state := t.TempDir()
	e := newEngine(t, state)
	res, err := f.Apply(ctx(t), e, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := actions(res), "interface/wlan=created interface/ran=created secret/gw-psk=created connection/gw=created steering_rule/voice=created steering_rule/bulk=created steering_rule/rest=created"; got != want {
		t.Errorf("first apply:\n got %s\nwant %s", got, want)
	}
	got, err := e.GetSteeringRule(ctx(t), "voice")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.SteeringSpec, voiceSpec) {
		t.Errorf("engine holds %+v\nwant %+v", got.SteeringSpec, voiceSpec)
	}
	if c, _ := e.GetConnection(ctx(t), "gw"); !c.Multipath {
		t.Error("connection gw is not multipath")
	}
	res, err = f.Apply(ctx(t), e, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := actions(res), "interface/wlan=unchanged interface/ran=unchanged secret/gw-psk=unchanged connection/gw=unchanged steering_rule/voice=unchanged steering_rule/bulk=unchanged steering_rule/rest=unchanged"; got != want {
		t.Errorf("second apply:\n got %s\nwant %s", got, want)
	}
	e.Close()

	// After a restart: changes made through the API are put back where
	// the file states the field, a rule the file does not name stays, and
	// an edited file updates only the fields it changes.
	e = newEngine(t, state)
	defer e.Close()
	rest, _ := e.GetSteeringRule(ctx(t), "rest")
	rest.Precedence, rest.ProbeInterval = 5, time.Second
	if _, err := e.UpdateSteeringRule(ctx(t), "rest", rest.SteeringSpec, []string{"precedence", "probe_interval"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateSteeringRule(ctx(t), "extra", engine.SteeringSpec{Mode: engine.SteerSmallestDelay}); err != nil {
		t.Fatal(err)
	}
	src, _ := os.ReadFile("testdata/enduser.hcl")
	edited := strings.Replace(string(src), `dscp                 = ["ef", 34]`, `dscp = ["ef"]`, 1)
	edited = strings.Replace(edited, "weight      = 3", "weight = 2", 1)
	edited = strings.Replace(edited, `mode       = "priority"`, `mode = "smallest_delay"`, 1)
	if edited == string(src) {
		t.Fatal("edit did not apply")
	}
	f2, err := Parse([]byte(edited), "edited.hcl", "testdata")
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Zero()
	res, err = f2.Apply(ctx(t), e, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := actions(res[4:]), "steering_rule/voice=updated(match) steering_rule/bulk=updated(targets) steering_rule/rest=updated(mode,precedence)"; got != want {
		t.Errorf("edited apply:\n got %s\nwant %s", got, want)
	}
	v, _ := e.GetSteeringRule(ctx(t), "voice")
	if !reflect.DeepEqual(v.Match.DSCP, []uint32{46}) || v.Match.Protocol != 17 || v.Match.Connection != "gw" {
		t.Errorf("voice match after edit: %+v", v.Match)
	}
	rest, _ = e.GetSteeringRule(ctx(t), "rest")
	// probe_interval is not in the file's block: the API's value stays.
	if rest.Mode != engine.SteerSmallestDelay || rest.Precedence != 1000 || rest.ProbeInterval != time.Second {
		t.Errorf("rest after edit: %+v", rest.SteeringSpec)
	}
	if _, err := e.GetSteeringRule(ctx(t), "extra"); err != nil {
		t.Errorf("rule not in the file: %v", err)
	}

	// Match attributes the file leaves out keep their running values.
	trimmed := strings.Replace(edited, `dscp = ["ef"]`, "", 1)
	trimmed = strings.Replace(trimmed, `connection           = "gw"`, "", 1)
	f3, err := Parse([]byte(trimmed), "trimmed.hcl", "testdata")
	if err != nil {
		t.Fatal(err)
	}
	defer f3.Zero()
	res, err = f3.Apply(ctx(t), e, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := actions(res[4:5]), "steering_rule/voice=unchanged"; got != want {
		t.Errorf("trimmed apply: got %s, want %s", got, want)
	}
}

func TestApplySteeringRefused(t *testing.T) {
	cases := []struct{ name, file, want string }{
		{"unknown interface", `steering_rule "r" {
  mode = "priority"
  target {
    interface = "eth7"
  }
}`, `interface "eth7" not found`},
		{"unknown connection", `steering_rule "r" {
  mode = "priority"
  match {
    connection = "nope"
  }
}`, `connection "nope" not found`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, t.TempDir())
			defer e.Close()
			f, err := Parse([]byte(tc.file), "mifsec.hcl", t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			res, err := f.Apply(ctx(t), e, nil)
			var ae *ApplyError
			if !errors.As(err, &ae) || ae.Kind != "steering_rule" || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "mifsec.hcl:1,1") {
				t.Fatalf("error %v, want ApplyError at mifsec.hcl:1,1 containing %q", err, tc.want)
			}
			if len(res) != 0 {
				t.Errorf("results %v", res)
			}
			if _, err := e.GetSteeringRule(ctx(t), "r"); !notFound(err) {
				t.Errorf("rule created despite the error: %v", err)
			}
		})
	}
}

func TestParseSteeringErrors(t *testing.T) {
	// rule wraps body (from line 3) in a PRIORITY rule.
	rule := func(body string) string { return "steering_rule \"r\" {\n  mode = \"priority\"\n" + body + "}\n" }
	match := func(attrs string) string { return rule("  match {\n" + attrs + "\n  }\n") }
	lb := func(body string) string { return "steering_rule \"r\" {\n  mode = \"load_balance\"\n" + body + "}\n" }
	cases := []struct {
		name, src string
		line, col int
		want      string
	}{
		{"missing mode", "steering_rule \"r\" {\n}\n", 1, 19, "Missing required argument"},
		{"bad mode", "steering_rule \"r\" {\n  mode = \"fastest\"\n}\n", 2, 10, "Invalid mode"},
		{"bad name", "steering_rule \"Voice\" {\n  mode = \"priority\"\n}\n", 1, 1, "Invalid steering_rule name"},
		{"duplicate", rule("") + rule(""), 4, 1, "Duplicate steering_rule"},
		{"precedence type", rule("  precedence = \"first\"\n"), 3, 17, "Unsuitable value type"},
		{"probe interval syntax", rule("  probe_interval = \"often\"\n"), 3, 20, "Invalid probe_interval"},
		{"probe interval too short", rule("  probe_interval = \"10ms\"\n"), 3, 20, "Invalid probe_interval"},
		{"probe interval too long", rule("  probe_interval = \"2m\"\n"), 3, 20, "Invalid probe_interval"},
		{"unknown match attribute", match("    dport = 53"), 4, 5, "Unsupported argument"},
		{"source prefix", match("    source_prefixes = [\"10.0.0.0/8\", \"nope\"]"), 4, 38, "Invalid prefix in source_prefixes"},
		{"destination prefix", match("    destination_prefixes = [\"10.0.0.0/33\"]"), 4, 29, "Invalid prefix in destination_prefixes"},
		{"protocol name", match("    protocol = \"tcpp\""), 4, 16, "Invalid protocol"},
		{"protocol number", match("    protocol = 256"), 4, 16, "Invalid protocol"},
		{"source ports syntax", match("    protocol = \"udp\"\n    source_ports = \"a-b\""), 5, 20, "Invalid source_ports"},
		{"destination ports reversed", match("    protocol = \"tcp\"\n    destination_ports = \"90-80\""), 5, 25, "Invalid destination_ports"},
		{"destination port too big", match("    protocol = 6\n    destination_ports = 65536"), 5, 25, "Invalid destination_ports"},
		{"port zero", match("    protocol = 6\n    destination_ports = 0"), 5, 25, "Invalid destination_ports"},
		{"ports without protocol", match("    destination_ports = 53"), 4, 25, "Ports without a port protocol"},
		{"ports with icmp", match("    protocol = \"icmp\"\n    source_ports = 53"), 5, 20, "Ports without a port protocol"},
		{"dscp range", match("    dscp = [\"ef\", 64]"), 4, 19, "Invalid dscp"},
		{"dscp name", match("    dscp = [\"af44\"]"), 4, 13, "Invalid dscp"},
		{"match connection", match("    connection = \"connections/gw\""), 4, 18, "Invalid connection"},
		{"target both", rule("  target {\n    interface = \"wlan\"\n    access_type = \"wlan\"\n  }\n"), 3, 3, "Invalid target"},
		{"target neither", rule("  target {\n  }\n"), 3, 3, "Invalid target"},
		{"target access type", rule("  target {\n    access_type = \"lte\"\n  }\n"), 4, 19, "Invalid access_type"},
		{"target interface", rule("  target {\n    interface = \"WLAN0\"\n  }\n"), 4, 17, "Invalid interface"},
		{"target unknown attribute", rule("  target {\n    link = \"wlan0\"\n  }\n"), 4, 5, "Unsupported argument"},
		{"duplicate target", rule("  target {\n    access_type = \"ran\"\n  }\n  target {\n    access_type = \"ran\"\n  }\n"), 6, 3, "Duplicate target"},
		{"weight missing", lb("  target {\n    interface = \"wlan\"\n  }\n"), 3, 3, "Invalid weight"},
		{"weight zero", lb("  target {\n    interface = \"wlan\"\n    weight = 0\n  }\n"), 5, 14, "Invalid weight"},
		{"weight outside load_balance", rule("  target {\n    interface = \"wlan\"\n    weight = 2\n  }\n"), 5, 14, "Invalid weight"},
		{"active_standby without targets", "steering_rule \"r\" {\n  mode = \"active_standby\"\n}\n", 1, 1, "Missing target"},
		{"connection multipath type", "connection \"c\" {\n  role = \"initiator\"\n  multipath = \"yes\"\n}\n", 3, 16, "Unsuitable value type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkDiag(t, tc.src, t.TempDir(), tc.line, tc.col, tc.want) })
	}
}
