package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

const (
	homeIKE   = "connections/home/ikeSas/0123456789abcdef"
	homeChild = homeIKE + "/childSas/c0ffee01"
)

func TestSANames(t *testing.T) {
	tests := []struct {
		fn      func(string) (string, error)
		in      string
		want    string
		wantErr string
	}{
		{ikeSAName, "home/0123456789abcdef", homeIKE, ""},
		{ikeSAName, homeIKE, homeIKE, ""},
		{ikeSAName, "home", "", "bad IKE SA name \"home\": want CONNECTION/SPI"},
		{ikeSAName, "home/", "", "empty or wildcard part"},
		{ikeSAName, "-/0123456789abcdef", "", "empty or wildcard part"},
		{ikeSAName, "connections/home/childSas/x", "", "bad IKE SA name"},
		{ikeSAName, "a/b/c", "", "bad IKE SA name"},
		{childSAName, "home/0123456789abcdef/c0ffee01", homeChild, ""},
		{childSAName, homeChild, homeChild, ""},
		{childSAName, "home/0123456789abcdef", "", "bad Child SA name"},
		{childSAName, "home//c0ffee01", "", "empty or wildcard part"},
		{childSAName, "connections/home/ikeSas/x/children/y", "", "bad Child SA name"},
	}
	for _, tt := range tests {
		got, err := tt.fn(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != exitUsage {
				t.Errorf("%q: got %q, %v; want usage error %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: got %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if s := shortIKEName(homeIKE); s != "home/0123456789abcdef" {
		t.Errorf("shortIKEName = %q", s)
	}
	if s := shortChildName(homeChild); s != "home/0123456789abcdef/c0ffee01" {
		t.Errorf("shortChildName = %q", s)
	}
	if s := shortChildName("odd/name"); s != "odd/name" {
		t.Errorf("shortChildName of another shape = %q", s)
	}
}

func TestSAParents(t *testing.T) {
	tests := []struct {
		fn      func([]string) (string, error)
		args    []string
		want    string
		wantErr string
	}{
		{ikeSAParent, nil, "connections/-", ""},
		{ikeSAParent, []string{"-"}, "connections/-", ""},
		{ikeSAParent, []string{"home"}, "connections/home", ""},
		{ikeSAParent, []string{"connections/home"}, "connections/home", ""},
		{ikeSAParent, []string{"home/x"}, "", "bad connection name"},
		{childSAParent, nil, "connections/-/ikeSas/-", ""},
		{childSAParent, []string{"home"}, "connections/home/ikeSas/-", ""},
		{childSAParent, []string{"connections/home"}, "connections/home/ikeSas/-", ""},
		{childSAParent, []string{"home/0123456789abcdef"}, homeIKE, ""},
		{childSAParent, []string{homeIKE}, homeIKE, ""},
		{childSAParent, []string{"a/b/c"}, "", "bad IKE SA name"},
	}
	for _, tt := range tests {
		got, err := tt.fn(tt.args)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != exitUsage {
				t.Errorf("%v: got %q, %v; want usage error %q", tt.args, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%v: got %q, %v; want %q", tt.args, got, err, tt.want)
		}
	}
}

func testSAs() ([]*mifsecv1.IkeSa, []*mifsecv1.ChildSa) {
	ikes := []*mifsecv1.IkeSa{
		{Name: homeIKE, State: mifsecv1.IkeSaState_IKE_SA_STATE_ESTABLISHED, Role: mifsecv1.Role_ROLE_INITIATOR,
			InitiatorSpi: "0123456789abcdef", ResponderSpi: "fedcba9876543210", LocalAddress: "192.0.2.10:4500", RemoteAddress: "203.0.113.1:4500",
			LocalId: "@ue", RemoteId: "@gw", Proposal: "AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519", LocalNat: true,
			PeerMobike: true, PeerClone: true, VirtualIps: []string{"10.45.0.1"}, EstablishTime: fakeTime, ChildSaCount: 1,
			MessagesIn: 4, MessagesOut: 5},
		{Name: "connections/work/ikeSas/1111111111111111", State: mifsecv1.IkeSaState_IKE_SA_STATE_DOWN, Role: mifsecv1.Role_ROLE_RESPONDER,
			DownReason: mifsecv1.DownReason_DOWN_REASON_DPD_TIMEOUT, DownDetail: "no answer in 2m"},
	}
	children := []*mifsecv1.ChildSa{
		{Name: homeChild, Child: "net", State: mifsecv1.ChildSaState_CHILD_SA_STATE_INSTALLED, Mode: mifsecv1.IpsecMode_IPSEC_MODE_TUNNEL,
			SpiIn: "c0ffee01", SpiOut: "c0ffee02", LocalTs: []string{"10.45.0.1/32"}, RemoteTs: []string{"0.0.0.0/0", "::/0"},
			Proposal: "AES_GCM_16_128", BytesIn: 1500, BytesOut: 3000, PacketsIn: 1, PacketsOut: 2, DropsIn: 7, InstallTime: fakeTime},
		{Name: "connections/work/ikeSas/1111111111111111/childSas/00000001", Child: "lan", State: mifsecv1.ChildSaState_CHILD_SA_STATE_REKEYED,
			Mode: mifsecv1.IpsecMode_IPSEC_MODE_TRANSPORT, SpiIn: "00000001", SpiOut: "00000002"},
	}
	return ikes, children
}

func TestSAOutput(t *testing.T) {
	ikes, children := testSAs()
	tests := []struct {
		name  string
		write func(*bytes.Buffer) error
		want  string
	}{
		{"ike table", func(b *bytes.Buffer) error { return writeIKESATable(b, ikes) }, "" +
			"IKE_SA                 STATE              ROLE       LOCAL            REMOTE            REMOTE_ID  CHILDREN  ESTABLISHED\n" +
			"home/0123456789abcdef  established        initiator  192.0.2.10:4500  203.0.113.1:4500  @gw        1         2026-11-27T05:45:00.123Z\n" +
			"work/1111111111111111  down(dpd_timeout)  responder  -                -                 -          0         -\n"},
		{"ike detail", func(b *bytes.Buffer) error { return writeIKESADetail(b, ikes[0]) }, "" +
			"name:          connections/home/ikeSas/0123456789abcdef\n" +
			"id:            home/0123456789abcdef\n" +
			"state:         established\n" +
			"role:          initiator\n" +
			"spis:          0123456789abcdef_i fedcba9876543210_r\n" +
			"local:         192.0.2.10:4500\n" +
			"remote:        203.0.113.1:4500\n" +
			"local id:      @ue\n" +
			"remote id:     @gw\n" +
			"proposal:      AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519\n" +
			"nat:           local\n" +
			"peer supports: mobike,clone\n" +
			"virtual ips:   10.45.0.1\n" +
			"child sas:     1\n" +
			"messages:      4 in, 5 out\n" +
			"established:   2026-11-27T05:45:00.123Z\n" +
			"rekey:         -\n" +
			"down reason:   -\n"},
		{"ike down detail", func(b *bytes.Buffer) error { return writeIKESADetail(b, ikes[1]) }, "down reason:   dpd_timeout: no answer in 2m\n"},
		{"child table", func(b *bytes.Buffer) error { return writeChildSATable(b, children) }, "" +
			"CHILD_SA                        CHILD  STATE      MODE       LOCAL_TS      REMOTE_TS       SPI_IN    SPI_OUT   BYTES_IN  BYTES_OUT\n" +
			"home/0123456789abcdef/c0ffee01  net    installed  tunnel     10.45.0.1/32  0.0.0.0/0,::/0  c0ffee01  c0ffee02  1500      3000\n" +
			"work/1111111111111111/00000001  lan    rekeyed    transport  -             -               00000001  00000002  0         0\n"},
		{"child detail", func(b *bytes.Buffer) error { return writeChildSADetail(b, children[0]) }, "" +
			"name:      connections/home/ikeSas/0123456789abcdef/childSas/c0ffee01\n" +
			"id:        home/0123456789abcdef/c0ffee01\n" +
			"child:     net\n" +
			"state:     installed\n" +
			"mode:      tunnel\n" +
			"spis:      c0ffee01_in c0ffee02_out\n" +
			"local ts:  10.45.0.1/32\n" +
			"remote ts: 0.0.0.0/0,::/0\n" +
			"local:     -\n" +
			"remote:    -\n" +
			"proposal:  AES_GCM_16_128\n" +
			"bytes:     1500 in, 3000 out\n" +
			"packets:   1 in, 2 out\n" +
			"drops in:  7\n" +
			"installed: 2026-11-27T05:45:00.123Z\n" +
			"rekey:     -\n"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := tt.write(&buf); err != nil {
			t.Fatal(err)
		}
		if got := buf.String(); got != tt.want && !(tt.name == "ike down detail" && strings.HasSuffix(got, tt.want)) {
			t.Errorf("%s:\ngot\n%s\nwant\n%s", tt.name, got, tt.want)
		}
	}
}

func TestCLISA(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeDaemon()
	ikes, children := testSAs()
	f.seedSAs(ikes, children)
	sock := startFake(t, f)

	tests := []struct {
		name    string
		args    []string
		code    int
		stdout  []string // substrings
		wantReq proto.Message
	}{
		{"list all", []string{"sa", "list"}, 0, []string{"home/0123456789abcdef  established", "work/1111111111111111  down(dpd_timeout)"},
			&mifsecv1.ListIkeSasRequest{Parent: "connections/-", PageSize: listPageSize}},
		{"list one connection", []string{"sa", "ls", "work"}, 0, []string{"work/1111111111111111"},
			&mifsecv1.ListIkeSasRequest{Parent: "connections/work", PageSize: listPageSize}},
		{"get short form", []string{"sa", "get", "home/0123456789abcdef"}, 0, []string{"id:            home/0123456789abcdef\n"},
			&mifsecv1.GetIkeSaRequest{Name: homeIKE}},
		{"get unknown", []string{"sa", "get", "home/ffffffffffffffff"}, exitNotFound, nil,
			&mifsecv1.GetIkeSaRequest{Name: "connections/home/ikeSas/ffffffffffffffff"}},
		{"children of a connection", []string{"sa", "children", "home"}, 0, []string{"home/0123456789abcdef/c0ffee01  net"},
			&mifsecv1.ListChildSasRequest{Parent: "connections/home/ikeSas/-", PageSize: listPageSize}},
		{"children of all", []string{"sa", "children", "--json"}, 0, []string{`"name": "` + homeChild + `"`, `"child": "lan"`},
			&mifsecv1.ListChildSasRequest{Parent: "connections/-/ikeSas/-", PageSize: listPageSize}},
		{"child get", []string{"sa", "child", "get", "home/0123456789abcdef/c0ffee01"}, 0, []string{"drops in:  7\n"},
			&mifsecv1.GetChildSaRequest{Name: homeChild}},
		{"child rekey", []string{"sa", "child", "rekey", homeChild}, 0, []string{"id:        home/0123456789abcdef/c0ffee02\n"},
			&mifsecv1.RekeyChildSaRequest{Name: homeChild}},
		{"child terminate", []string{"sa", "child", "terminate", "home/0123456789abcdef/c0ffee02"}, 0,
			[]string{"terminated connections/home/ikeSas/0123456789abcdef/childSas/c0ffee02\n"},
			&mifsecv1.TerminateChildSaRequest{Name: homeIKE + "/childSas/c0ffee02"}},
		{"rekey", []string{"sa", "rekey", "home/0123456789abcdef", "--json"}, 0, []string{`"name": "connections/home/ikeSas/fedcba9876543210"`},
			&mifsecv1.RekeyIkeSaRequest{Name: homeIKE}},
		{"terminate", []string{"sa", "terminate", "connections/work/ikeSas/1111111111111111"}, 0,
			[]string{"terminated connections/work/ikeSas/1111111111111111\n"},
			&mifsecv1.TerminateIkeSaRequest{Name: "connections/work/ikeSas/1111111111111111"}},
		{"children after terminate", []string{"sa", "children"}, 0, []string{"CHILD_SA "},
			&mifsecv1.ListChildSasRequest{Parent: "connections/-/ikeSas/-", PageSize: listPageSize}},
	}
	for _, tt := range tests {
		r := runCLI(t, ctx, sock, tt.args...)
		if r.code != tt.code {
			t.Errorf("%s: got %+v, want code %d", tt.name, r, tt.code)
			continue
		}
		for _, s := range tt.stdout {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("%s: stdout lacks %q:\n%s", tt.name, s, r.stdout)
			}
		}
		if got := f.lastRequest(); !proto.Equal(got, tt.wantReq) {
			t.Errorf("%s: request %v, want %v", tt.name, got, tt.wantReq)
		}
	}
	r := runCLI(t, ctx, sock, "sa", "children")
	if n := strings.Count(r.stdout, "\n"); n != 1 {
		t.Errorf("children left after terminations:\n%s", r.stdout)
	}
}

func TestCLISAUsage(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeDaemon()
	sock := startFake(t, f)
	for _, args := range [][]string{
		{"sa", "get", "0123456789abcdef"},
		{"sa", "get"},
		{"sa", "rekey", "home/-"},
		{"sa", "child", "get", "home/0123456789abcdef"},
		{"sa", "list", "a", "b"},
		{"sa", "children", "x/y/z"},
	} {
		if r := runCLI(t, ctx, sock, args...); r.code != exitUsage || r.stdout != "" {
			t.Errorf("%v: got %+v, want usage error", args, r)
		}
	}
	if n := f.requestCount(); n != 0 {
		t.Errorf("%d requests reached the daemon", n)
	}
}

func TestCLICompletionObjects(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeDaemon()
	ikes, children := testSAs()
	f.seedSAs(ikes, children)
	f.secrets["secrets/home-psk"] = &mifsecv1.Secret{Name: "secrets/home-psk", Type: mifsecv1.SecretType_SECRET_TYPE_PSK}
	f.secrets["secrets/ue-key"] = &mifsecv1.Secret{Name: "secrets/ue-key", Type: mifsecv1.SecretType_SECRET_TYPE_PRIVATE_KEY}
	f.pools["pools/ue"] = &mifsecv1.Pool{Name: "pools/ue", Ranges: []string{"10.45.0.0/24"}}
	f.conns["connections/home"] = &mifsecv1.Connection{Name: "connections/home", Role: mifsecv1.Role_ROLE_INITIATOR,
		State: mifsecv1.ConnectionState_CONNECTION_STATE_ESTABLISHED}
	sock := startFake(t, f)
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"secret", "get", ""}, []string{"home-psk\tpsk", "ue-key\tprivate-key"}},
		{[]string{"secret", "delete", "u"}, []string{"ue-key\tprivate-key"}},
		{[]string{"secret", "add", "x", "--type", ""}, []string{"psk", "private-key"}},
		{[]string{"pool", "get", ""}, []string{"ue\t10.45.0.0/24"}},
		{[]string{"connection", "initiate", ""}, []string{"home\tinitiator established"}},
		{[]string{"connection", "add", "x", "--psk", "h"}, []string{"home-psk\tpsk"}},
		{[]string{"connection", "add", "x", "--pool", ""}, []string{"ue\t10.45.0.0/24"}},
		{[]string{"connection", "update", "home", "--psk", ""}, []string{"home-psk\tpsk", "ue-key\tprivate-key"}},
		{[]string{"sa", "list", ""}, []string{"home\tinitiator established"}},
		{[]string{"sa", "get", "h"}, []string{"home/0123456789abcdef\testablished 203.0.113.1:4500"}},
		{[]string{"sa", "children", "w"}, []string{"work/1111111111111111\tdown"}},
		{[]string{"sa", "child", "rekey", ""}, []string{"home/0123456789abcdef/c0ffee01\tnet installed", "work/1111111111111111/00000001\tlan rekeyed"}},
		{[]string{"sa", "get", "home/0123456789abcdef", ""}, nil},
	}
	for _, tt := range tests {
		r := runCLI(t, ctx, sock, append([]string{"__complete"}, tt.args...)...)
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if r.code != 0 || !slices.Equal(lines[:len(lines)-1], tt.want) {
			t.Errorf("%v: got %+v, want %q", tt.args, r, tt.want)
		}
	}
}
