package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

func parsePoolFlags(t *testing.T, args []string) (*poolFlags, *pflag.FlagSet) {
	t.Helper()
	var v poolFlags
	cmd := &cobra.Command{Use: "x"}
	v.register(cmd)
	if err := cmd.Flags().Parse(args); err != nil {
		t.Fatal(err)
	}
	return &v, cmd.Flags()
}

func TestBuildPoolCreateRequest(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		args    []string
		want    *mifsecv1.CreatePoolRequest
		wantErr string
	}{
		{"repeated and comma-separated", "ue",
			[]string{"--range", "10.45.0.0/24", "--range=fd00:45::/112,10.46.0.10-10.46.0.99", "--dns", "192.0.2.53", "--pcscf", "10.46.1.1,fd00:46::1"},
			&mifsecv1.CreatePoolRequest{PoolId: "ue", Pool: &mifsecv1.Pool{
				Ranges:       []string{"10.45.0.0/24", "fd00:45::/112", "10.46.0.10-10.46.0.99"},
				DnsServers:   []string{"192.0.2.53"},
				PcscfServers: []string{"10.46.1.1", "fd00:46::1"}}}, ""},
		{"full name", "pools/ims", []string{"--range", "10.0.0.0/8"},
			&mifsecv1.CreatePoolRequest{PoolId: "ims", Pool: &mifsecv1.Pool{Ranges: []string{"10.0.0.0/8"}}}, ""},
		{"no range", "ue", []string{"--dns", "192.0.2.53"}, nil, "at least one --range"},
		{"other collection", "secrets/x", []string{"--range", "10.0.0.0/8"}, nil, "bad pool name"},
	}
	for _, tt := range tests {
		v, _ := parsePoolFlags(t, tt.args)
		got, err := buildPoolCreateRequest(tt.id, v)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != exitUsage {
				t.Errorf("%s: got %v, %v; want usage error %q", tt.name, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !proto.Equal(got, tt.want) {
			t.Errorf("%s: got %v, %v\nwant %v", tt.name, got, err, tt.want)
		}
	}
}

func TestBuildPoolUpdateRequest(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantPaths []string
		wantPool  *mifsecv1.Pool
		wantErr   string
	}{
		{"dns only", []string{"--dns", "192.0.2.53,192.0.2.54"}, []string{"dns_servers"},
			&mifsecv1.Pool{Name: "pools/ue", DnsServers: []string{"192.0.2.53", "192.0.2.54"}}, ""},
		{"clear pcscf", []string{"--pcscf="}, []string{"pcscf_servers"},
			&mifsecv1.Pool{Name: "pools/ue", PcscfServers: []string{}}, ""},
		{"all, mask in field order", []string{"--pcscf", "10.1.1.1", "--range", "10.0.0.0/24", "--dns", "192.0.2.1"},
			[]string{"ranges", "dns_servers", "pcscf_servers"},
			&mifsecv1.Pool{Name: "pools/ue", Ranges: []string{"10.0.0.0/24"}, DnsServers: []string{"192.0.2.1"}, PcscfServers: []string{"10.1.1.1"}}, ""},
		{"nothing", nil, nil, nil, "nothing to update"},
		{"empty ranges", []string{"--range="}, nil, nil, "--range must not be empty"},
	}
	for _, tt := range tests {
		v, fs := parsePoolFlags(t, tt.args)
		got, err := buildPoolUpdateRequest("ue", fs, v)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != exitUsage {
				t.Errorf("%s: got %v, %v; want usage error %q", tt.name, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got.GetUpdateMask().GetPaths(), tt.wantPaths) || !proto.Equal(got.GetPool(), tt.wantPool) {
			t.Errorf("%s: got %v, %v", tt.name, got, err)
		}
	}
}

func TestLeaseTable(t *testing.T) {
	leases := []*mifsecv1.Lease{
		{Address: "10.45.0.2", Identity: "old@example", LeaseTime: fakeTime},
		{Address: "10.45.0.1", Identity: "ue@example", Online: true, LeaseTime: fakeTime},
	}
	var buf bytes.Buffer
	if err := writeLeaseTable(&buf, leases); err != nil {
		t.Fatal(err)
	}
	want := "ADDRESS    IDENTITY     ONLINE  LEASED\n" +
		"10.45.0.1  ue@example   yes     2026-11-27T05:45:00.123Z\n" +
		"10.45.0.2  old@example  no      2026-11-27T05:45:00.123Z\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestCLIPool(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeDaemon()
	sock := startFake(t, f)

	r := runCLI(t, ctx, sock, "pool", "add", "ue", "--range", "10.45.0.0/24", "--dns", "192.0.2.53")
	want := "NAME  RANGES        SIZE  IN_USE  LEASES  DNS         PCSCF\n" +
		"ue    10.45.0.0/24  254   0       0       192.0.2.53  -\n" +
		"\n" +
		"ADDRESS  IDENTITY  ONLINE  LEASED\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("add: %+v\nwant\n%s", r, want)
	}

	f.mu.Lock()
	p := f.pools["pools/ue"]
	p.InUse = 1
	p.Leases = []*mifsecv1.Lease{{Address: "10.45.0.1", Identity: "ue@example", Online: true, LeaseTime: fakeTime}}
	f.mu.Unlock()
	r = runCLI(t, ctx, sock, "pool", "get", "pools/ue")
	if r.code != 0 || !strings.Contains(r.stdout, "ue    10.45.0.0/24  254   1       1 ") ||
		!strings.HasSuffix(r.stdout, "10.45.0.1  ue@example  yes     2026-11-27T05:45:00.123Z\n") {
		t.Errorf("get: %+v", r)
	}

	r = runCLI(t, ctx, sock, "pool", "update", "ue", "--dns=", "--pcscf", "10.46.1.1")
	if r.code != 0 {
		t.Fatalf("update: %+v", r)
	}
	if got := f.lastRequest().(*mifsecv1.UpdatePoolRequest); !slices.Equal(got.GetUpdateMask().GetPaths(), []string{"dns_servers", "pcscf_servers"}) {
		t.Errorf("update mask %v", got.GetUpdateMask().GetPaths())
	}
	r = runCLI(t, ctx, sock, "--json", "pool", "get", "ue")
	var got mifsecv1.Pool
	if r.code != 0 || protojson.Unmarshal([]byte(r.stdout), &got) != nil {
		t.Fatalf("get --json: %+v", r)
	}
	if len(got.GetDnsServers()) != 0 || !slices.Equal(got.GetPcscfServers(), []string{"10.46.1.1"}) || len(got.GetLeases()) != 1 {
		t.Errorf("after update: %v", &got)
	}

	for _, id := range []string{"a", "b", "c"} {
		if r := runCLI(t, ctx, sock, "pool", "add", id, "--range", "10.9.0.0/24"); r.code != 0 {
			t.Fatalf("add %s: %+v", id, r)
		}
	}
	r = runCLI(t, ctx, sock, "pool", "list")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != 0 || len(lines) != 5 || !strings.HasPrefix(lines[1], "a ") || !strings.HasPrefix(lines[4], "ue ") {
		t.Errorf("list over pages: %+v", r)
	}
	r = runCLI(t, ctx, sock, "pool", "delete", "ue")
	if r.code != 0 || r.stdout != "deleted pools/ue\n" {
		t.Errorf("delete: %+v", r)
	}
	r = runCLI(t, ctx, sock, "pool", "get", "ue")
	if r.code != exitNotFound || r.stderr != "error: NOT_FOUND: pool \"pools/ue\" not found (reason=POOL_NOT_FOUND, field=name)\n" {
		t.Errorf("get deleted: %+v", r)
	}
	r = runCLI(t, ctx, sock, "pool", "add", "x")
	if r.code != exitUsage || !strings.HasPrefix(r.stderr, `error: required flag(s) "range" not set`) {
		t.Errorf("add without range: %+v", r)
	}
}
