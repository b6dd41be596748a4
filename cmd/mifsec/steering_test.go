package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

func parseSteeringFlags(t *testing.T, args []string) (*steeringFlags, *pflag.FlagSet) {
	t.Helper()
	var v steeringFlags
	cmd := &cobra.Command{Use: "x"}
	v.register(cmd, &app{})
	if err := cmd.Flags().Parse(args); err != nil {
		t.Fatal(err)
	}
	return &v, cmd.Flags()
}

func ifaceTarget(name string, w uint32) *mifsecv1.SteeringTarget {
	return &mifsecv1.SteeringTarget{Target: &mifsecv1.SteeringTarget_Interface{Interface: name}, Weight: w}
}

func accessTarget(a mifsecv1.AccessType) *mifsecv1.SteeringTarget {
	return &mifsecv1.SteeringTarget{Target: &mifsecv1.SteeringTarget_AccessType{AccessType: a}}
}

func TestSteeringValueParsers(t *testing.T) {
	dscp := []struct {
		in   string
		want uint32
		ok   bool
	}{{"0", 0, true}, {"63", 63, true}, {"ef", 46, true}, {"EF", 46, true}, {"cs0", 0, true}, {"cs6", 48, true},
		{"af11", 10, true}, {"af41", 34, true}, {"af43", 38, true}, {"64", 0, false}, {"af44", 0, false}, {"cs8", 0, false}, {"-1", 0, false}}
	for _, tt := range dscp {
		got, err := parseDSCP(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseDSCP(%q) = %d, %v", tt.in, got, err)
		}
	}
	protos := []struct {
		in   string
		want uint32
		ok   bool
	}{{"tcp", 6, true}, {"UDP", 17, true}, {"icmpv6", 58, true}, {"50", 50, true}, {"0", 0, true}, {"256", 0, false}, {"gre", 0, false}}
	for _, tt := range protos {
		got, err := parseProtocol(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseProtocol(%q) = %d, %v", tt.in, got, err)
		}
	}
	ports := []struct {
		in   string
		want *mifsecv1.PortRange
		ok   bool
	}{{"", nil, true}, {"443", &mifsecv1.PortRange{First: 443}, true}, {"1000-2000", &mifsecv1.PortRange{First: 1000, Last: 2000}, true},
		{"80-80", &mifsecv1.PortRange{First: 80}, true}, {"2000-1000", nil, false}, {"65536", nil, false}, {"a-b", nil, false}, {"1-", nil, false}}
	for _, tt := range ports {
		got, err := parsePorts("dport", tt.in)
		if (err == nil) != tt.ok || !proto.Equal(got, tt.want) {
			t.Errorf("parsePorts(%q) = %v, %v", tt.in, got, err)
		}
	}
	targets := []struct {
		in      string
		want    *mifsecv1.SteeringTarget
		wantErr string
	}{
		{"wlan", ifaceTarget("interfaces/wlan", 0), ""},
		{"interfaces/ran,weight=3", ifaceTarget("interfaces/ran", 3), ""},
		{"interface=eth", ifaceTarget("interfaces/eth", 0), ""},
		{"access=ran", accessTarget(mifsecv1.AccessType_ACCESS_TYPE_RAN), ""},
		{"access=wifi", nil, `unknown access type "wifi"`},
		{"wlan,weight=0", nil, "at least 1"},
		{"wlan,weight=1,weight=2", nil, "only weight=N may follow"},
		{"wlan,prio=1", nil, "only weight=N may follow"},
		{"pools/x", nil, "bad interface name"},
	}
	for _, tt := range targets {
		got, err := parseTarget(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseTarget(%q) = %v, %v; want error %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !proto.Equal(got, tt.want) {
			t.Errorf("parseTarget(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestBuildSteeringCreateRequest(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    *mifsecv1.SteeringRule
		wantErr string
	}{
		{"priority by access type", []string{"--mode", "priority", "--target", "access=wlan", "--target", "access=ran", "--dscp", "ef,af41"},
			&mifsecv1.SteeringRule{Mode: mifsecv1.SteeringMode_STEERING_MODE_PRIORITY,
				Targets: []*mifsecv1.SteeringTarget{accessTarget(mifsecv1.AccessType_ACCESS_TYPE_WLAN), accessTarget(mifsecv1.AccessType_ACCESS_TYPE_RAN)},
				Match:   &mifsecv1.FlowMatch{Dscp: []uint32{46, 34}}}, ""},
		{"load balance, full match", []string{"--mode=load-balance", "--target", "wlan,weight=3", "--target", "ran,weight=1", "--precedence", "10",
			"--probe-interval", "100ms", "--src", "10.45.0.0/16", "--dst", "0.0.0.0/0,::/0", "--protocol", "tcp", "--sport", "1024-65535",
			"--dport", "443", "--connection", "home"},
			&mifsecv1.SteeringRule{Mode: mifsecv1.SteeringMode_STEERING_MODE_LOAD_BALANCE, Precedence: 10, ProbeInterval: durationpb.New(100 * time.Millisecond),
				Targets: []*mifsecv1.SteeringTarget{ifaceTarget("interfaces/wlan", 3), ifaceTarget("interfaces/ran", 1)},
				Match: &mifsecv1.FlowMatch{SourcePrefixes: []string{"10.45.0.0/16"}, DestinationPrefixes: []string{"0.0.0.0/0", "::/0"},
					Protocol: 6, SourcePorts: &mifsecv1.PortRange{First: 1024, Last: 65535}, DestinationPorts: &mifsecv1.PortRange{First: 443},
					Connection: "connections/home"}}, ""},
		{"smallest delay, no match", []string{"--mode", "SMALLEST_DELAY"},
			&mifsecv1.SteeringRule{Mode: mifsecv1.SteeringMode_STEERING_MODE_SMALLEST_DELAY}, ""},
		{"bad target", []string{"--mode", "priority", "--target", "access=lte"}, nil, `--target "access=lte": unknown access type`},
		{"bad dscp", []string{"--mode", "priority", "--dscp", "99"}, nil, `--dscp "99"`},
		{"negative probe", []string{"--mode", "priority", "--probe-interval", "-1s"}, nil, "must not be negative"},
		{"bad connection", []string{"--mode", "priority", "--connection", "a/b"}, nil, "bad connection name"},
	}
	for _, tt := range tests {
		v, fs := parseSteeringFlags(t, tt.args)
		got, err := buildSteeringCreateRequest("voice", fs, v)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != exitUsage {
				t.Errorf("%s: got %v, %v; want usage error %q", tt.name, got, err, tt.wantErr)
			}
			continue
		}
		want := &mifsecv1.CreateSteeringRuleRequest{SteeringRuleId: "voice", SteeringRule: tt.want}
		if err != nil || !proto.Equal(got, want) {
			t.Errorf("%s: got %v, %v\nwant %v", tt.name, got, err, want)
		}
	}
}

func TestBuildSteeringUpdateRequest(t *testing.T) {
	cur := &mifsecv1.SteeringRule{Name: "steeringRules/bulk", Mode: mifsecv1.SteeringMode_STEERING_MODE_LOAD_BALANCE,
		Match: &mifsecv1.FlowMatch{Protocol: 6, DestinationPorts: &mifsecv1.PortRange{First: 443}, Connection: "connections/home"}}
	tests := []struct {
		name      string
		args      []string
		wantPaths []string
		want      *mifsecv1.SteeringRule
		reads     int
		wantErr   string
	}{
		{"targets only, no read", []string{"--target", "ran", "--target", "wlan"}, []string{"targets"},
			&mifsecv1.SteeringRule{Name: "steeringRules/bulk", Targets: []*mifsecv1.SteeringTarget{ifaceTarget("interfaces/ran", 0), ifaceTarget("interfaces/wlan", 0)}}, 0, ""},
		{"one match field keeps the others", []string{"--dport", "8443"}, []string{"match"},
			&mifsecv1.SteeringRule{Name: "steeringRules/bulk", Match: &mifsecv1.FlowMatch{Protocol: 6,
				DestinationPorts: &mifsecv1.PortRange{First: 8443}, Connection: "connections/home"}}, 1, ""},
		{"clear the connection", []string{"--connection=", "--precedence", "0"}, []string{"precedence", "match"},
			&mifsecv1.SteeringRule{Name: "steeringRules/bulk", Match: &mifsecv1.FlowMatch{Protocol: 6,
				DestinationPorts: &mifsecv1.PortRange{First: 443}}}, 1, ""},
		{"mode", []string{"--mode", "active-standby"}, []string{"mode"},
			&mifsecv1.SteeringRule{Name: "steeringRules/bulk", Mode: mifsecv1.SteeringMode_STEERING_MODE_ACTIVE_STANDBY}, 0, ""},
		{"nothing", nil, nil, nil, 0, "nothing to update"},
		{"bad match flag fails before reading", []string{"--sport", "x"}, nil, nil, 0, `--sport "x"`},
	}
	for _, tt := range tests {
		v, fs := parseSteeringFlags(t, tt.args)
		reads := 0
		got, err := buildSteeringUpdateRequest("bulk", fs, v, func() (*mifsecv1.SteeringRule, error) { reads++; return cur, nil })
		if reads != tt.reads {
			t.Errorf("%s: %d reads, want %d", tt.name, reads, tt.reads)
		}
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != exitUsage {
				t.Errorf("%s: got %v, %v; want usage error %q", tt.name, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got.GetUpdateMask().GetPaths(), tt.wantPaths) || !proto.Equal(got.GetSteeringRule(), tt.want) {
			t.Errorf("%s: got %v, %v\nwant %v %v", tt.name, got, err, tt.wantPaths, tt.want)
		}
	}
	if cur.GetMatch().GetDestinationPorts().GetFirst() != 443 {
		t.Error("the current rule was modified")
	}
}

func TestSteeringTable(t *testing.T) {
	rules := []*mifsecv1.SteeringRule{
		{Name: "steeringRules/bulk", Mode: mifsecv1.SteeringMode_STEERING_MODE_LOAD_BALANCE, Precedence: 10,
			Match:       &mifsecv1.FlowMatch{DestinationPrefixes: []string{"0.0.0.0/0"}, Protocol: 6, SourcePorts: &mifsecv1.PortRange{First: 1, Last: 9}, DestinationPorts: &mifsecv1.PortRange{First: 443}, Dscp: []uint32{0}, Connection: "connections/home"},
			Targets:     []*mifsecv1.SteeringTarget{ifaceTarget("interfaces/wlan", 3), ifaceTarget("interfaces/ran", 1)},
			ActivePaths: []string{"connections/home/paths/wlan-gw", "connections/home/paths/ran-gw"}},
		{Name: "steeringRules/voice", Mode: mifsecv1.SteeringMode_STEERING_MODE_PRIORITY,
			Targets: []*mifsecv1.SteeringTarget{accessTarget(mifsecv1.AccessType_ACCESS_TYPE_WLAN)}},
	}
	var buf bytes.Buffer
	if err := writeSteeringTable(&buf, rules); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"NAME   PRECEDENCE  MODE          MATCH                                                         TARGETS                     ACTIVE_PATHS\n" +
		"bulk   10          load-balance  dst=0.0.0.0/0 proto=tcp sport=1-9 dport=443 dscp=0 conn=home  wlan,weight=3 ran,weight=1  home/wlan-gw,home/ran-gw\n" +
		"voice  0           priority      any                                                           access=wlan                 -\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestCLISteering(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeDaemon()
	sock := startFake(t, f)

	r := runCLI(t, ctx, sock, "steering", "add", "bulk", "--mode", "load-balance", "--target", "wlan,weight=3", "--target", "ran",
		"--protocol", "tcp", "--dport", "443")
	if r.code != 0 || !strings.Contains(r.stdout, "bulk  0           load-balance  proto=tcp dport=443  wlan,weight=3 ran  -\n") {
		t.Fatalf("add: %+v", r)
	}
	before := f.requestCount()
	r = runCLI(t, ctx, sock, "steering", "update", "bulk", "--dport", "8443", "--src", "10.45.0.0/16")
	if r.code != 0 || !strings.Contains(r.stdout, "src=10.45.0.0/16 proto=tcp dport=8443") {
		t.Errorf("update match: %+v", r)
	}
	if n := f.requestCount() - before; n != 2 {
		t.Errorf("%d requests, want Get then Update", n)
	}
	r = runCLI(t, ctx, sock, "rule", "get", "steeringRules/bulk", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"mode": "STEERING_MODE_LOAD_BALANCE"`) {
		t.Errorf("get --json: %+v", r)
	}
	r = runCLI(t, ctx, sock, "steering", "ls")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 2 {
		t.Errorf("list: %+v", r)
	}
	r = runCLI(t, ctx, sock, "steering", "delete", "bulk")
	if r.code != 0 || r.stdout != "deleted steeringRules/bulk\n" {
		t.Errorf("delete: %+v", r)
	}
	r = runCLI(t, ctx, sock, "steering", "update", "bulk", "--dport", "1")
	if r.code != exitNotFound {
		t.Errorf("update of a deleted rule: %+v", r)
	}
	before = f.requestCount()
	for _, args := range [][]string{
		{"steering", "add", "x"},
		{"steering", "add", "x", "--mode", "fastest"},
		{"steering", "update", "x"},
		{"steering", "update", "x", "--dscp", "af99"},
		{"steering", "get", "a/b"},
	} {
		if r := runCLI(t, ctx, sock, args...); r.code != exitUsage {
			t.Errorf("%v: got %+v, want usage error", args, r)
		}
	}
	if f.requestCount() != before {
		t.Error("a usage error reached the daemon")
	}
}

func testPaths() []*mifsecv1.Path {
	return []*mifsecv1.Path{
		{Name: "connections/home/paths/ran-gw", Interface: "interfaces/ran", LocalAddress: "10.0.0.2:4500", RemoteAddress: "203.0.113.1:4500",
			State: mifsecv1.PathState_PATH_STATE_SILENT, DownReason: "silent", Loss: 0.5},
		{Name: "connections/home/paths/wlan-gw", Interface: "interfaces/wlan", LocalAddress: "192.0.2.10:4500", RemoteAddress: "203.0.113.1:4500",
			State: mifsecv1.PathState_PATH_STATE_UP, IkeSa: homeIKE, Rtt: durationpb.New(12500 * time.Microsecond), BytesIn: 100, BytesOut: 200},
		{Name: "connections/work/paths/eth-gw", Interface: "interfaces/eth", State: mifsecv1.PathState_PATH_STATE_DOWN, DownReason: "link_down"},
	}
}

func TestCLIPathsAndMigrate(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeDaemon()
	ikes, children := testSAs()
	f.seedSAs(ikes, children)
	for _, p := range testPaths() {
		f.paths[p.GetName()] = p
	}
	seed(f, "ran")
	sock := startFake(t, f)

	r := runCLI(t, ctx, sock, "connection", "paths", "home")
	want := "" +
		"PATH          INTERFACE  LOCAL            REMOTE            STATE           RTT     LOSS   IKE_SA                 BYTES_IN  BYTES_OUT\n" +
		"home/ran-gw   ran        10.0.0.2:4500    203.0.113.1:4500  silent(silent)  -       50.0%  -                      0         0\n" +
		"home/wlan-gw  wlan       192.0.2.10:4500  203.0.113.1:4500  up              12.5ms  0.0%   home/0123456789abcdef  100       200\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("paths: %+v\nwant\n%s", r, want)
	}
	if got := f.lastRequest(); !proto.Equal(got, &mifsecv1.ListPathsRequest{Parent: "connections/home", PageSize: listPageSize}) {
		t.Errorf("request %v", got)
	}
	r = runCLI(t, ctx, sock, "conn", "path", "--json")
	if r.code != 0 || strings.Count(r.stdout, `"name": "connections/`) != 3 {
		t.Errorf("all paths: %+v", r)
	}

	tests := []struct {
		args    []string
		code    int
		stdout  string
		wantReq *mifsecv1.MigrateIkeSaRequest
	}{
		{[]string{"sa", "migrate", "home/0123456789abcdef", "--path", "ran-gw"}, 0, "local:         10.0.0.2:4500\n",
			&mifsecv1.MigrateIkeSaRequest{Name: homeIKE, Target: &mifsecv1.MigrateIkeSaRequest_Path{Path: "connections/home/paths/ran-gw"}}},
		{[]string{"sa", "migrate", homeIKE, "--path", "home/wlan-gw"}, 0, "local:         192.0.2.10:4500\n",
			&mifsecv1.MigrateIkeSaRequest{Name: homeIKE, Target: &mifsecv1.MigrateIkeSaRequest_Path{Path: "connections/home/paths/wlan-gw"}}},
		{[]string{"sa", "migrate", "home/0123456789abcdef", "--interface", "ran"}, 0, "local:         192.0.2.1:4500\n",
			&mifsecv1.MigrateIkeSaRequest{Name: homeIKE, Target: &mifsecv1.MigrateIkeSaRequest_Interface{Interface: "interfaces/ran"}}},
		{[]string{"sa", "migrate", "home/0123456789abcdef", "--path", "work/eth-gw"}, exitInvalid, "",
			&mifsecv1.MigrateIkeSaRequest{Name: homeIKE, Target: &mifsecv1.MigrateIkeSaRequest_Path{Path: "connections/work/paths/eth-gw"}}},
	}
	for _, tt := range tests {
		r := runCLI(t, ctx, sock, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stdout, tt.stdout) {
			t.Errorf("%v: got %+v", tt.args, r)
		}
		if got := f.lastRequest(); !proto.Equal(got, tt.wantReq) {
			t.Errorf("%v: request %v, want %v", tt.args, got, tt.wantReq)
		}
	}
	before := f.requestCount()
	for _, args := range [][]string{
		{"sa", "migrate", "home/0123456789abcdef"},
		{"sa", "migrate", "home/0123456789abcdef", "--path", "a", "--interface", "b"},
		{"sa", "migrate", "home/0123456789abcdef", "--path", "a/b/c"},
		{"sa", "migrate", "home", "--interface", "ran"},
	} {
		if r := runCLI(t, ctx, sock, args...); r.code != exitUsage {
			t.Errorf("%v: got %+v, want usage error", args, r)
		}
	}
	if f.requestCount() != before {
		t.Error("a usage error reached the daemon")
	}
	r = runCLI(t, ctx, sock, "__complete", "sa", "migrate", "home/0123456789abcdef", "--path", "home/")
	if !strings.HasPrefix(r.stdout, "home/ran-gw\tsilent 203.0.113.1:4500\nhome/wlan-gw\tup 203.0.113.1:4500\n:4\n") {
		t.Errorf("path completion: %+v", r)
	}
}
