package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// result is what one CLI run produced.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the root command with args against socket (via --socket)
// with an empty environment.
func runCLI(t *testing.T, ctx context.Context, socket string, args ...string) result {
	t.Helper()
	return runCLIEnv(t, ctx, func(string) string { return "" }, append([]string{"--socket", socket}, args...)...)
}

func runCLIEnv(t *testing.T, ctx context.Context, getenv func(string) string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(ctx, args, getenv, &out, &errb)
	return result{code, out.String(), errb.String()}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// seed stores interfaces named by id with predictable fields.
func seed(f *fakeDaemon, ids ...string) {
	for i, id := range ids {
		f.put(&mifsecv1.Interface{
			Name: "interfaces/" + id, Link: id + "0", AccessType: mifsecv1.AccessType_ACCESS_TYPE_WIRED,
			Priority: uint32(i), State: mifsecv1.InterfaceState_INTERFACE_STATE_UP,
			Addresses: []string{"192.0.2." + string(rune('1'+i)) + "/24"},
		})
	}
}

func TestCLIInterfaceLifecycle(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeDaemon()
	sock := startFake(t, f)

	r := runCLI(t, ctx, sock, "interface", "add", "wlan", "--link", "wlan0", "--access-type", "wlan", "--priority", "10")
	want := "NAME  LINK   ACCESS  PRIORITY  METERED  STATE  ADDRESSES\n" +
		"wlan  wlan0  wlan    10        no       up     -\n"
	if r.code != 0 || r.stdout != want || r.stderr != "" {
		t.Fatalf("add: %+v\nwant stdout\n%s", r, want)
	}
	wantReq := &mifsecv1.CreateInterfaceRequest{InterfaceId: "wlan", Interface: &mifsecv1.Interface{
		Link: "wlan0", AccessType: mifsecv1.AccessType_ACCESS_TYPE_WLAN, Priority: 10}}
	if got := f.lastRequest(); !proto.Equal(got, wantReq) {
		t.Errorf("daemon got %v, want %v", got, wantReq)
	}

	r = runCLI(t, ctx, sock, "if", "create", "interfaces/ran", "--link=rmnet0", "--access-type=ran", "--metered", "--allow-missing", "--json")
	var created mifsecv1.Interface
	if r.code != 0 || protojson.Unmarshal([]byte(r.stdout), &created) != nil {
		t.Fatalf("add --json: %+v", r)
	}
	if created.GetName() != "interfaces/ran" || !created.GetMetered() || created.GetState() != mifsecv1.InterfaceState_INTERFACE_STATE_ABSENT {
		t.Errorf("created %v", &created)
	}

	r = runCLI(t, ctx, sock, "interface", "update", "ran", "--metered=false", "--priority", "5")
	up, _ := f.lastRequest().(*mifsecv1.UpdateInterfaceRequest)
	if r.code != 0 || !slices.Equal(up.GetUpdateMask().GetPaths(), []string{"priority", "metered"}) {
		t.Fatalf("update: %+v, request %v", r, up)
	}
	if got := f.get("interfaces/ran"); got.GetMetered() || got.GetPriority() != 5 || got.GetLink() != "rmnet0" {
		t.Errorf("after update: %v", got)
	}

	r = runCLI(t, ctx, sock, "interface", "get", "ran")
	if r.code != 0 || !strings.Contains(r.stdout, "ran   rmnet0  ran     5         no       absent  -\n") {
		t.Errorf("get: %+v", r)
	}

	r = runCLI(t, ctx, sock, "interface", "delete", "interfaces/ran")
	if r.code != 0 || r.stdout != "deleted interfaces/ran\n" {
		t.Errorf("delete: %+v", r)
	}
	r = runCLI(t, ctx, sock, "--json", "interface", "rm", "wlan")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "{}" {
		t.Errorf("delete --json: %+v", r)
	}
	r = runCLI(t, ctx, sock, "interface", "list")
	if r.code != 0 || r.stdout != "NAME  LINK  ACCESS  PRIORITY  METERED  STATE  ADDRESSES\n" {
		t.Errorf("list after delete: %+v", r)
	}
}

func TestCLIListFollowsPages(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeDaemon() // pages of at most 2
	ids := []string{"a", "b", "c", "d", "e"}
	seed(f, ids...)
	sock := startFake(t, f)

	r := runCLI(t, ctx, sock, "interface", "ls")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != 0 || len(lines) != 6 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("list: %+v", r)
	}
	for i, id := range ids {
		if !strings.HasPrefix(lines[i+1], id+" ") {
			t.Errorf("row %d = %q, want %s", i+1, lines[i+1], id)
		}
	}
	if n := f.requestCount(); n != 3 {
		t.Errorf("%d List calls, want 3 pages", n)
	}

	r = runCLI(t, ctx, sock, "interface", "list", "--json")
	var raw []json.RawMessage
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &raw) != nil || len(raw) != 5 {
		t.Fatalf("list --json: %+v", r)
	}
	var last mifsecv1.Interface
	if err := protojson.Unmarshal(raw[4], &last); err != nil || last.GetName() != "interfaces/e" {
		t.Errorf("last item %v, %v", &last, err)
	}
}

func TestCLIErrors(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeDaemon()
	seed(f, "wlan")
	sock := startFake(t, f)
	missing := filepath.Join(t.TempDir(), "none.sock")

	tests := []struct {
		name       string
		socket     string
		args       []string
		code       int
		stderr     string // prefix
		noRequests bool
	}{
		{"not found", sock, []string{"interface", "get", "nope"}, exitNotFound,
			"error: NOT_FOUND: interface \"interfaces/nope\" not found (reason=INTERFACE_NOT_FOUND, field=name)\n", false},
		{"already exists", sock, []string{"interface", "add", "wlan", "--link", "x", "--access-type", "other"}, exitConflict,
			"error: ALREADY_EXISTS: interface \"interfaces/wlan\" already exists (reason=INTERFACE_EXISTS, field=interface_id)\n", false},
		{"invalid id", sock, []string{"interface", "add", "Bad_ID", "--link", "x", "--access-type", "other"}, exitInvalid,
			"error: INVALID_ARGUMENT: bad interface id \"Bad_ID\" (reason=INVALID_INTERFACE_ID, field=interface_id)\n", false},
		{"bad enum", sock, []string{"interface", "add", "x", "--link", "x", "--access-type", "lte"}, exitUsage,
			"error: invalid argument \"lte\" for \"--access-type\" flag: unknown access type \"lte\" (want one of ran, wlan, wired, satellite, other)\nrun 'mifsec interface add --help' for usage\n", true},
		{"missing required flag", sock, []string{"interface", "add", "x", "--link", "x"}, exitUsage,
			"error: required flag(s) \"access-type\" not set\n", true},
		{"wrong arg count", sock, []string{"interface", "get"}, exitUsage, "error: accepts 1 arg(s), received 0\n", true},
		{"unknown command", sock, []string{"interfaec"}, exitUsage, "error: unknown command \"interfaec\" for \"mifsec\"", true},
		{"nothing to update", sock, []string{"interface", "update", "wlan"}, exitUsage, "error: nothing to update", true},
		{"bad name", sock, []string{"interface", "delete", "connections/c"}, exitUsage,
			"error: bad interface name \"connections/c\": want an id or interfaces/{id}\n", true},
		{"bad target", "host-without-port", []string{"interface", "list"}, exitUsage, "error: bad target", true},
		{"tcp without tls", "127.0.0.1:1", []string{"interface", "list"}, exitUsage, "error: bad target \"127.0.0.1:1\": TCP needs mutual TLS", true},
		{"daemon not running", missing, []string{"interface", "list"}, exitUnreachable,
			"error: UNAVAILABLE: connect to unix://" + missing + ": dial unix " + missing + ": connect: no such file or directory\n", true},
		{"tls files missing", "127.0.0.1:1", []string{"--tls-cert", "/nonexistent/c.pem", "--tls-key", "k", "--tls-ca", "ca", "interface", "list"},
			exitLocal, "error: load client certificate", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.requestCount()
			r := runCLI(t, ctx, tt.socket, tt.args...)
			if r.code != tt.code || !strings.HasPrefix(r.stderr, tt.stderr) || r.stdout != "" {
				t.Errorf("got %+v\nwant code %d, stderr %q", r, tt.code, tt.stderr)
			}
			if tt.noRequests && f.requestCount() != before {
				t.Errorf("a request reached the daemon")
			}
		})
	}
}

func TestCLITimeout(t *testing.T) {
	f := newFakeDaemon()
	f.blockGet = true
	sock := startFake(t, f)
	start := time.Now()
	r := runCLI(t, testCtx(t), sock, "--timeout", "200ms", "interface", "get", "wlan")
	if r.code != exitUnreachable || !strings.HasPrefix(r.stderr, "error: DEADLINE_EXCEEDED: ") {
		t.Errorf("got %+v", r)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestCLISocketFromEnvironment(t *testing.T) {
	f := newFakeDaemon()
	seed(f, "eth")
	sock := startFake(t, f)
	env := func(k string) string {
		if k == "MIFSEC_SOCKET" {
			return "unix://" + sock
		}
		return ""
	}
	r := runCLIEnv(t, testCtx(t), env, "interface", "get", "eth")
	if r.code != 0 || !strings.Contains(r.stdout, "eth   eth0") {
		t.Errorf("got %+v", r)
	}
	// --socket wins over the environment.
	r = runCLIEnv(t, testCtx(t), env, "--socket", filepath.Join(t.TempDir(), "x.sock"), "interface", "get", "eth")
	if r.code != exitUnreachable {
		t.Errorf("--socket ignored: %+v", r)
	}
}

func liveEvents() []*mifsecv1.Event {
	wlan := &mifsecv1.Interface{Name: "interfaces/wlan", Link: "wlan0", AccessType: mifsecv1.AccessType_ACCESS_TYPE_WLAN,
		State: mifsecv1.InterfaceState_INTERFACE_STATE_DOWN}
	return []*mifsecv1.Event{
		{Sequence: 1, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_INTERFACE_LINK_DOWN, Reason: "netlink",
			Subject: &mifsecv1.Event_Interface{Interface: wlan}},
		{Sequence: 2, Time: fakeTime, Type: mifsecv1.EventType_EVENT_TYPE_INTERFACE_ADDRESS_REMOVED, Reason: "netlink",
			Address: "192.0.2.1/24", Subject: &mifsecv1.Event_Interface{Interface: wlan}},
	}
}

func TestCLIWatch(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		holdOpen bool
		endErr   error
		code     int
		lines    []string // prefixes of stdout lines, in order
		stderr   string
		wantReq  *mifsecv1.WatchRequest
	}{
		{
			name: "until end of snapshot", args: []string{"--until-end-of-snapshot"}, holdOpen: true,
			lines: []string{
				"0 2026-11-27T05:45:00.123Z snapshot interfaces/eth link=eth0 access=wired priority=0 metered=no state=up addresses=192.0.2.1/24",
				"0 2026-11-27T05:45:00.123Z snapshot interfaces/wlan link=wlan0 access=wired priority=1",
				"0 2026-11-27T05:45:00.123Z end_of_snapshot - -",
			},
			wantReq: &mifsecv1.WatchRequest{},
		},
		{
			name: "count with filters", args: []string{"--count", "4", "--category", "interface", "--interface", "wlan"}, holdOpen: true,
			lines: []string{
				"0 2026-11-27T05:45:00.123Z snapshot interfaces/wlan ",
				"0 2026-11-27T05:45:00.123Z end_of_snapshot - -",
				"1 2026-11-27T05:45:00.123Z interface_link_down interfaces/wlan link=wlan0 access=wlan priority=0 metered=no state=down addresses= reason=netlink",
				"2 2026-11-27T05:45:00.123Z interface_address_removed interfaces/wlan address=192.0.2.1/24 link=wlan0 reason=netlink",
			},
			wantReq: &mifsecv1.WatchRequest{Categories: []mifsecv1.EventCategory{mifsecv1.EventCategory_EVENT_CATEGORY_INTERFACE}, Interface: "interfaces/wlan"},
		},
		{
			name: "stream ends", args: nil,
			lines:   []string{"0 ", "0 ", "0 ", "1 ", "2 "},
			wantReq: &mifsecv1.WatchRequest{},
		},
		{
			name: "watcher cut off", args: nil, endErr: apiError(codes.ResourceExhausted, "WATCH_OVERFLOW", "", "watcher too slow"),
			code:    exitExhausted,
			lines:   []string{"0 ", "0 ", "0 ", "1 ", "2 "},
			stderr:  "error: RESOURCE_EXHAUSTED: watcher too slow (reason=WATCH_OVERFLOW)\n",
			wantReq: &mifsecv1.WatchRequest{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDaemon()
			seed(f, "eth", "wlan")
			f.live, f.holdOpen, f.endErr = liveEvents(), tt.holdOpen, tt.endErr
			sock := startFake(t, f)
			r := runCLI(t, testCtx(t), sock, append([]string{"watch"}, tt.args...)...)
			if r.code != tt.code || r.stderr != tt.stderr {
				t.Fatalf("got %+v, want code %d stderr %q", r, tt.code, tt.stderr)
			}
			got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
			if len(got) != len(tt.lines) {
				t.Fatalf("got %d lines, want %d:\n%s", len(got), len(tt.lines), r.stdout)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.lines[i]) {
					t.Errorf("line %d:\ngot  %s\nwant %s...", i, got[i], tt.lines[i])
				}
			}
			if req := f.lastRequest(); !proto.Equal(req, tt.wantReq) {
				t.Errorf("request %v, want %v", req, tt.wantReq)
			}
		})
	}
}

func TestCLIWatchJSONLines(t *testing.T) {
	f := newFakeDaemon()
	seed(f, "eth")
	f.live = liveEvents()
	sock := startFake(t, f)
	r := runCLI(t, testCtx(t), sock, "watch", "--json")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != 0 || len(lines) != 4 {
		t.Fatalf("got %+v", r)
	}
	wantTypes := []mifsecv1.EventType{
		mifsecv1.EventType_EVENT_TYPE_SNAPSHOT, mifsecv1.EventType_EVENT_TYPE_END_OF_SNAPSHOT,
		mifsecv1.EventType_EVENT_TYPE_INTERFACE_LINK_DOWN, mifsecv1.EventType_EVENT_TYPE_INTERFACE_ADDRESS_REMOVED,
	}
	for i, l := range lines {
		var ev mifsecv1.Event
		if err := protojson.Unmarshal([]byte(l), &ev); err != nil || ev.GetType() != wantTypes[i] {
			t.Errorf("line %d %q: %v, %v", i, l, ev.GetType(), err)
		}
	}
}

func TestCLIWatchInterrupted(t *testing.T) {
	f := newFakeDaemon()
	f.holdOpen = true
	sock := startFake(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() {
		var out, errb bytes.Buffer
		code := run(ctx, []string{"--socket", sock, "watch"}, func(string) string { return "" }, &out, &errb)
		done <- result{code, out.String(), errb.String()}
	}()
	// Wait for the watch to reach the daemon, then interrupt.
	deadline := time.Now().Add(10 * time.Second)
	for f.requestCount() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case r := <-done:
		if r.code != exitInterrupted || r.stderr != "" || !strings.Contains(r.stdout, "end_of_snapshot") {
			t.Errorf("got %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop on interrupt")
	}
}

func TestCLICompletion(t *testing.T) {
	f := newFakeDaemon()
	seed(f, "eth", "wlan", "wwan")
	sock := startFake(t, f)
	ctx := testCtx(t)

	r := runCLI(t, ctx, sock, "completion", "bash")
	if r.code != 0 || !strings.Contains(r.stdout, "__start_mifsec") {
		t.Errorf("completion bash: code %d, stderr %q", r.code, r.stderr)
	}
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "interface", "get", "w"}, []string{"wlan\twlan0", "wwan\twwan0"}},
		{[]string{"__complete", "interface", "delete", ""}, []string{"eth\teth0", "wlan\twlan0", "wwan\twwan0"}},
		{[]string{"__complete", "interface", "add", "x", "--access-type", ""}, []string{"ran", "wlan", "wired", "satellite", "other"}},
		{[]string{"__complete", "watch", "--category", ""}, enumChoices(mifsecv1.EventCategory(0).Descriptor())},
	}
	for _, tt := range tests {
		r := runCLI(t, ctx, sock, tt.args...)
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if r.code != 0 || len(lines) < 1 || !slices.Equal(lines[:len(lines)-1], tt.want) {
			t.Errorf("%v: got %+v, want %q", tt.args, r, tt.want)
		}
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		c    codes.Code
		want int
	}{
		{codes.InvalidArgument, exitInvalid}, {codes.FailedPrecondition, exitInvalid}, {codes.OutOfRange, exitInvalid},
		{codes.NotFound, exitNotFound}, {codes.AlreadyExists, exitConflict}, {codes.Aborted, exitConflict},
		{codes.PermissionDenied, exitDenied}, {codes.Unauthenticated, exitDenied},
		{codes.Unavailable, exitUnreachable}, {codes.DeadlineExceeded, exitUnreachable},
		{codes.ResourceExhausted, exitExhausted},
		{codes.Internal, exitServer}, {codes.Unimplemented, exitServer}, {codes.Unknown, exitServer}, {codes.Canceled, exitServer},
	}
	for _, tt := range tests {
		if got := exitCode(status.Error(tt.c, "x")); got != tt.want {
			t.Errorf("%v: exit %d, want %d", tt.c, got, tt.want)
		}
	}
}
