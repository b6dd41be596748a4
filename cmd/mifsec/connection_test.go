package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// testCertPEM makes a self-signed ECDSA certificate for cn, in PEM.
func testCertPEM(t *testing.T, cn string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<32, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestParseChild(t *testing.T) {
	tests := []struct {
		spec    string
		want    *mifsecv1.Child
		wantErr string
	}{
		{"net", &mifsecv1.Child{Name: "net"}, ""},
		{"name=net,remote=0.0.0.0/0", &mifsecv1.Child{Name: "net", RemoteTs: []string{"0.0.0.0/0"}}, ""},
		{"net,local=10.0.0.0/8[tcp/443],local=fd00::/8,remote=0.0.0.0/0,remote=::/0,esp=aes128gcm16-x25519,esp=aes256gcm16," +
			"mode=transport,start=trap,rekey=30m,rekey-bytes=1000000,rekey-packets=5000",
			&mifsecv1.Child{Name: "net", LocalTs: []string{"10.0.0.0/8[tcp/443]", "fd00::/8"}, RemoteTs: []string{"0.0.0.0/0", "::/0"},
				EspProposals: []string{"aes128gcm16-x25519", "aes256gcm16"}, Mode: mifsecv1.IpsecMode_IPSEC_MODE_TRANSPORT,
				StartAction: mifsecv1.StartAction_START_ACTION_TRAP, RekeyTime: durationpb.New(30 * time.Minute),
				RekeyBytes: 1000000, RekeyPackets: 5000}, ""},
		{"v6,remote=2001:db8::/32,mode=TUNNEL,start=start", &mifsecv1.Child{Name: "v6", RemoteTs: []string{"2001:db8::/32"},
			Mode: mifsecv1.IpsecMode_IPSEC_MODE_TUNNEL, StartAction: mifsecv1.StartAction_START_ACTION_START}, ""},
		{"", nil, "starts with the child's NAME"},
		{"local=10.0.0.0/8", nil, "starts with the child's NAME"},
		{"net,10.0.0.0/8", nil, `"10.0.0.0/8": want KEY=VALUE`},
		{"net,local=", nil, `"local=": want KEY=VALUE`},
		{"net,mode=beet", nil, `mode=beet: unknown ipsec mode "beet" (want one of tunnel, transport)`},
		{"net,start=always", nil, "start=always: unknown start action"},
		{"net,mode=tunnel,mode=transport", nil, "mode given twice"},
		{"net,rekey=soon", nil, "rekey=soon: time: invalid duration"},
		{"net,rekey=-1h", nil, "rekey=-1h: negative"},
		{"net,rekey-bytes=-1", nil, "rekey-bytes=-1:"},
		{"net,rekey-bytes=1x", nil, "rekey-bytes=1x:"},
		{"net,proto=tcp", nil, `unknown key "proto"`},
	}
	for _, tt := range tests {
		got, err := parseChild(tt.spec)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: got %v, %v; want error %q", tt.spec, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !proto.Equal(got, tt.want) {
			t.Errorf("%q: got %v, %v\nwant %v", tt.spec, got, err, tt.want)
		}
	}
}

// parseConnectionFlags registers the connection flags as add (create) or
// update does and parses args; flag-group rules are checked too.
func parseConnectionFlags(t *testing.T, create bool, args []string) (*connectionFlags, *pflag.FlagSet, error) {
	t.Helper()
	var v connectionFlags
	cmd := &cobra.Command{Use: "x"}
	v.register(cmd, &app{}, create)
	if err := cmd.Flags().Parse(args); err != nil {
		return nil, nil, err
	}
	return &v, cmd.Flags(), cmd.ValidateFlagGroups()
}

func pskAuthOf(name string) *mifsecv1.Authentication {
	return &mifsecv1.Authentication{Method: &mifsecv1.Authentication_PskSecret{PskSecret: name}}
}

func TestBuildConnectionCreateRequest(t *testing.T) {
	cert := testCertPEM(t, "ue.example")
	ca := testCertPEM(t, "Test CA")
	certFile := writeTemp(t, "ue.pem", []byte(cert))
	chainFile := writeTemp(t, "chain.pem", []byte(cert+ca))
	caFile := writeTemp(t, "ca.pem", []byte(ca))
	keyFile := writeTemp(t, "key.pem", []byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"))
	jsonFile := writeTemp(t, "c.json", []byte(`{"name":"connections/old","role":"ROLE_RESPONDER","state":"CONNECTION_STATE_ESTABLISHED",
		"localAuth":{"pskSecret":"secrets/a"},"remoteAuth":{"pskSecret":"secrets/a"},"remoteAddresses":["192.0.2.1"],"ikeSas":["connections/old/ikeSas/0123456789abcdef"]}`))
	badJSON := writeTemp(t, "bad.json", []byte(`{"role":"ROLE_RESPONDER","bogus":1}`))

	tests := []struct {
		name    string
		args    []string
		stdin   string
		want    *mifsecv1.Connection
		wantErr string
	}{
		{
			name: "psk both sides, every simple flag",
			args: []string{"--role", "initiator", "--psk", "home-psk", "--local-id", "@ue.example", "--remote-id", "@gw.example",
				"--ike-proposal", "aes256gcm16-prfsha256-x25519,aes128-sha256-modp2048", "--esp-proposal", "aes128gcm16",
				"--remote", "gw.example", "--remote", "203.0.113.1", "--interface", "wlan,interfaces/ran", "--remote-port", "4500",
				"--dpd-interval", "30s", "--dpd-timeout", "2m", "--ike-rekey", "4h", "--virtual-ip4", "--virtual-ip6",
				"--mobike=false", "--fragmentation=false", "--child", "net,remote=0.0.0.0/0,remote=::/0,start=start", "--child", "voice,local=10.1.0.0/16"},
			want: &mifsecv1.Connection{Role: mifsecv1.Role_ROLE_INITIATOR, LocalId: "@ue.example", RemoteId: "@gw.example",
				LocalAuth: pskAuthOf("secrets/home-psk"), RemoteAuth: pskAuthOf("secrets/home-psk"),
				IkeProposals: []string{"aes256gcm16-prfsha256-x25519", "aes128-sha256-modp2048"}, EspProposals: []string{"aes128gcm16"},
				RemoteAddresses: []string{"gw.example", "203.0.113.1"}, LocalInterfaces: []string{"interfaces/wlan", "interfaces/ran"},
				RemotePort: 4500, Dpd: &mifsecv1.Dpd{Interval: durationpb.New(30 * time.Second), Timeout: durationpb.New(2 * time.Minute)},
				IkeRekeyTime: durationpb.New(4 * time.Hour), RequestVirtualIp4: true, RequestVirtualIp6: true,
				Mobike: proto.Bool(false), Fragmentation: proto.Bool(false),
				Children: []*mifsecv1.Child{
					{Name: "net", RemoteTs: []string{"0.0.0.0/0", "::/0"}, StartAction: mifsecv1.StartAction_START_ACTION_START},
					{Name: "voice", LocalTs: []string{"10.1.0.0/16"}}}},
		},
		{
			name: "psk locally, certificate from the peer",
			args: []string{"--role=responder", "--psk", "secrets/gw", "--remote-ca-file", caFile, "--pool", "ue"},
			want: &mifsecv1.Connection{Role: mifsecv1.Role_ROLE_RESPONDER, LocalAuth: pskAuthOf("secrets/gw"),
				RemoteAuth: &mifsecv1.Authentication{Method: &mifsecv1.Authentication_Certificate{Certificate: &mifsecv1.CertificateAuth{CaPem: ca}}},
				Pool:       "pools/ue"},
		},
		{
			name: "different PSKs each way",
			args: []string{"--role=responder", "--psk", "mine", "--remote-psk", "theirs"},
			want: &mifsecv1.Connection{Role: mifsecv1.Role_ROLE_RESPONDER, LocalAuth: pskAuthOf("secrets/mine"), RemoteAuth: pskAuthOf("secrets/theirs")},
		},
		{
			name: "certificates, chain from stdin",
			args: []string{"--role=initiator", "--cert-file", "-", "--key-secret", "ue-key", "--remote-ca-file", caFile}, stdin: cert + ca,
			want: &mifsecv1.Connection{Role: mifsecv1.Role_ROLE_INITIATOR,
				LocalAuth: &mifsecv1.Authentication{Method: &mifsecv1.Authentication_Certificate{Certificate: &mifsecv1.CertificateAuth{
					CertificatePem: cert + ca, KeySecret: "secrets/ue-key"}}},
				RemoteAuth: &mifsecv1.Authentication{Method: &mifsecv1.Authentication_Certificate{Certificate: &mifsecv1.CertificateAuth{CaPem: ca}}}},
		},
		{
			name: "from json, output-only fields dropped, flags override",
			args: []string{"--from-json", jsonFile, "--remote", "203.0.113.9", "--virtual-ip4"},
			want: &mifsecv1.Connection{Role: mifsecv1.Role_ROLE_RESPONDER, LocalAuth: pskAuthOf("secrets/a"), RemoteAuth: pskAuthOf("secrets/a"),
				RemoteAddresses: []string{"203.0.113.9"}, RequestVirtualIp4: true},
		},
		{
			name: "from json on stdin",
			args: []string{"--from-json", "-"}, stdin: `{"role":"ROLE_INITIATOR","localAuth":{"pskSecret":"secrets/a"},"remoteAuth":{"pskSecret":"secrets/a"}}`,
			want: &mifsecv1.Connection{Role: mifsecv1.Role_ROLE_INITIATOR, LocalAuth: pskAuthOf("secrets/a"), RemoteAuth: pskAuthOf("secrets/a")},
		},
		{
			name: "chain from a file",
			args: []string{"--role=initiator", "--cert-file", chainFile, "--key-secret", "ue-key", "--remote-psk", "p"},
			want: &mifsecv1.Connection{Role: mifsecv1.Role_ROLE_INITIATOR,
				LocalAuth: &mifsecv1.Authentication{Method: &mifsecv1.Authentication_Certificate{Certificate: &mifsecv1.CertificateAuth{
					CertificatePem: cert + ca, KeySecret: "secrets/ue-key"}}},
				RemoteAuth: pskAuthOf("secrets/p")},
		},
		{name: "no role", args: []string{"--psk", "a"}, wantErr: "--role is required"},
		{name: "no local auth", args: []string{"--role", "initiator", "--remote-psk", "a"}, wantErr: "set how this side authenticates"},
		{name: "cert without remote auth", args: []string{"--role", "initiator", "--cert-file", certFile, "--key-secret", "k"},
			wantErr: "set how the peer authenticates"},
		{name: "psk and cert", args: []string{"--role", "initiator", "--psk", "a", "--cert-file", certFile, "--key-secret", "k"},
			wantErr: "cert-file psk] were all set"},
		{name: "cert without key", args: []string{"--role", "initiator", "--cert-file", certFile, "--remote-psk", "a"},
			wantErr: "[cert-file key-secret] are set they must all be set"},
		{name: "key in the cert file", args: []string{"--role", "initiator", "--cert-file", keyFile, "--key-secret", "k", "--remote-psk", "a"},
			wantErr: `PEM block "PRIVATE KEY" is not a CERTIFICATE`},
		{name: "no PEM", args: []string{"--role", "initiator", "--psk", "a", "--remote-ca-file", jsonFile}, wantErr: "no PEM certificate found"},
		{name: "stdin twice", args: []string{"--role", "initiator", "--cert-file", "-", "--key-secret", "k", "--remote-ca-file", "-"},
			wantErr: "only one flag may read stdin"},
		{name: "unknown JSON field", args: []string{"--from-json", badJSON}, wantErr: `not a Connection: proto:`},
		{name: "bad child", args: []string{"--role", "initiator", "--psk", "a", "--child", "net,remote"}, wantErr: `--child "net,remote": "remote": want KEY=VALUE`},
		{name: "port too large", args: []string{"--role", "initiator", "--psk", "a", "--remote-port", "70000"}, wantErr: "--remote-port 70000: at most 65535"},
		{name: "negative duration", args: []string{"--role", "initiator", "--psk", "a", "--dpd-interval", "-1s"}, wantErr: "--dpd-interval -1s: must not be negative"},
		{name: "bad interface", args: []string{"--role", "initiator", "--psk", "a", "--interface", "pools/x"}, wantErr: "bad interface name"},
		{name: "bad pool", args: []string{"--role", "initiator", "--psk", "a", "--pool", "a/b"}, wantErr: "bad pool name"},
		{name: "bad psk name", args: []string{"--role", "initiator", "--psk", "pools/a"}, wantErr: "bad secret name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, fs, err := parseConnectionFlags(t, true, tt.args)
			var got *mifsecv1.CreateConnectionRequest
			if err == nil {
				got, err = buildConnectionCreateRequest("home", fs, v, strings.NewReader(tt.stdin))
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := &mifsecv1.CreateConnectionRequest{ConnectionId: "home", Connection: tt.want}
			if !proto.Equal(got, want) {
				t.Errorf("got  %v\nwant %v", got, want)
			}
		})
	}
}

func TestBuildConnectionUpdateRequest(t *testing.T) {
	jsonFile := writeTemp(t, "c.json", []byte(`{"name":"connections/x","role":"ROLE_INITIATOR","remoteId":"@gw","mobike":true,"createTime":"2026-11-27T05:45:00Z"}`))
	tests := []struct {
		name      string
		args      []string
		wantPaths []string
		want      *mifsecv1.Connection
		partial   bool
		wantErr   string
	}{
		{"remote only", []string{"--remote", "203.0.113.9"}, []string{"remote_addresses"},
			&mifsecv1.Connection{Name: "connections/home", RemoteAddresses: []string{"203.0.113.9"}}, false, ""},
		{"psk sets both auths", []string{"--psk", "new"}, []string{"local_auth", "remote_auth"},
			&mifsecv1.Connection{Name: "connections/home", LocalAuth: pskAuthOf("secrets/new"), RemoteAuth: pskAuthOf("secrets/new")}, false, ""},
		{"remote psk only", []string{"--remote-psk", "theirs"}, []string{"remote_auth"},
			&mifsecv1.Connection{Name: "connections/home", RemoteAuth: pskAuthOf("secrets/theirs")}, false, ""},
		{"false and empty are changes", []string{"--mobike=false", "--pool=", "--virtual-ip4=false"},
			[]string{"request_virtual_ip4", "pool", "mobike"},
			&mifsecv1.Connection{Name: "connections/home", Mobike: proto.Bool(false)}, false, ""},
		{"both dpd durations", []string{"--dpd-timeout", "1m", "--dpd-interval", "10s"}, []string{"dpd"},
			&mifsecv1.Connection{Name: "connections/home", Dpd: &mifsecv1.Dpd{Interval: durationpb.New(10 * time.Second), Timeout: durationpb.New(time.Minute)}}, false, ""},
		{"one dpd duration", []string{"--dpd-interval", "10s"}, []string{"dpd"},
			&mifsecv1.Connection{Name: "connections/home", Dpd: &mifsecv1.Dpd{Interval: durationpb.New(10 * time.Second)}}, true, ""},
		{"children replaced", []string{"--child", "a", "--child", "b,mode=transport"}, []string{"children"},
			&mifsecv1.Connection{Name: "connections/home", Children: []*mifsecv1.Child{{Name: "a"}, {Name: "b", Mode: mifsecv1.IpsecMode_IPSEC_MODE_TRANSPORT}}}, false, ""},
		{"from json without role and output-only fields", []string{"--from-json", jsonFile, "--local-id", "@ue"},
			[]string{"remote_id", "mobike", "local_id"},
			&mifsecv1.Connection{Name: "connections/home", RemoteId: "@gw", LocalId: "@ue", Mobike: proto.Bool(true)}, false, ""},
		{"nothing", nil, nil, nil, false, "nothing to update"},
		{"role cannot change", []string{"--role", "responder"}, nil, nil, false, "unknown flag: --role"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, fs, err := parseConnectionFlags(t, false, tt.args)
			var got *mifsecv1.UpdateConnectionRequest
			if err == nil {
				got, err = buildConnectionUpdateRequest("home", fs, v, strings.NewReader(""))
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.GetUpdateMask().GetPaths(), tt.wantPaths) || !proto.Equal(got.GetConnection(), tt.want) {
				t.Errorf("got mask %v, %v\nwant %v, %v", got.GetUpdateMask().GetPaths(), got.GetConnection(), tt.wantPaths, tt.want)
			}
			if partialDPD(fs, v) != tt.partial {
				t.Errorf("partialDPD = %v", !tt.partial)
			}
		})
	}
}

func TestMergeDPD(t *testing.T) {
	cur := &mifsecv1.Connection{Dpd: &mifsecv1.Dpd{Interval: durationpb.New(time.Second), Timeout: durationpb.New(time.Hour)}}
	for _, tt := range []struct {
		flag string
		want *mifsecv1.Dpd
	}{
		{"--dpd-interval=5s", &mifsecv1.Dpd{Interval: durationpb.New(5 * time.Second), Timeout: durationpb.New(time.Hour)}},
		{"--dpd-timeout=0s", &mifsecv1.Dpd{Interval: durationpb.New(time.Second), Timeout: durationpb.New(0)}},
	} {
		v, fs, err := parseConnectionFlags(t, false, []string{tt.flag})
		if err != nil {
			t.Fatal(err)
		}
		req, err := buildConnectionUpdateRequest("home", fs, v, nil)
		if err != nil {
			t.Fatal(err)
		}
		mergeDPD(req, fs, cur)
		if !proto.Equal(req.GetConnection().GetDpd(), tt.want) {
			t.Errorf("%s: got %v, want %v", tt.flag, req.GetConnection().GetDpd(), tt.want)
		}
	}
}

func TestConnectionDetail(t *testing.T) {
	cert, ca := testCertPEM(t, "ue.example"), testCertPEM(t, "Test CA")
	c := &mifsecv1.Connection{Name: "connections/home", Role: mifsecv1.Role_ROLE_INITIATOR, State: mifsecv1.ConnectionState_CONNECTION_STATE_ESTABLISHED,
		LocalId: "@ue", RemoteId: "@gw",
		LocalAuth: &mifsecv1.Authentication{Method: &mifsecv1.Authentication_Certificate{Certificate: &mifsecv1.CertificateAuth{
			CertificatePem: cert + ca, KeySecret: "secrets/ue-key"}}},
		RemoteAuth:      &mifsecv1.Authentication{Method: &mifsecv1.Authentication_Certificate{Certificate: &mifsecv1.CertificateAuth{CaPem: ca}}},
		RemoteAddresses: []string{"203.0.113.1"}, Dpd: &mifsecv1.Dpd{Interval: durationpb.New(30 * time.Second)},
		RequestVirtualIp4: true, Mobike: proto.Bool(true), IkeSas: []string{"connections/home/ikeSas/0123456789abcdef"},
		CreateTime: fakeTime,
		Children: []*mifsecv1.Child{{Name: "net", RemoteTs: []string{"0.0.0.0/0", "::/0"}, StartAction: mifsecv1.StartAction_START_ACTION_START,
			RekeyTime: durationpb.New(time.Hour), RekeyBytes: 1000}}}
	var buf bytes.Buffer
	if err := writeConnectionDetail(&buf, c); err != nil {
		t.Fatal(err)
	}
	want := `name:          connections/home
role:          initiator
state:         established
local id:      @ue
remote id:     @gw
local auth:    certificate "CN=ue.example" (+1), key secrets/ue-key
remote auth:   ca "CN=Test CA"
ike proposals: -
esp proposals: -
remote:        203.0.113.1
remote port:   -
interfaces:    -
dpd:           interval 30s, timeout -
ike rekey:     -
virtual ip:    ipv4
pool:          -
mobike:        yes
fragmentation: default
multipath:     no
ike sas:       home/0123456789abcdef
created:       2026-11-27T05:45:00.123Z
updated:       -

CHILD  LOCAL_TS  REMOTE_TS       MODE  START  ESP  REKEY
net    -         0.0.0.0/0,::/0  -     start  -    1h0m0s 1000B
`
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestConnectionTable(t *testing.T) {
	conns := []*mifsecv1.Connection{
		{Name: "connections/gw", Role: mifsecv1.Role_ROLE_RESPONDER, State: mifsecv1.ConnectionState_CONNECTION_STATE_IDLE,
			RemoteId: "%any", LocalAuth: pskAuthOf("secrets/a"),
			RemoteAuth: &mifsecv1.Authentication{Method: &mifsecv1.Authentication_Certificate{Certificate: &mifsecv1.CertificateAuth{CaPem: "x"}}}},
		{Name: "connections/home", Role: mifsecv1.Role_ROLE_INITIATOR, State: mifsecv1.ConnectionState_CONNECTION_STATE_ESTABLISHED,
			RemoteAddresses: []string{"192.0.2.1", "2001:db8::1"}, LocalAuth: pskAuthOf("secrets/a"), RemoteAuth: pskAuthOf("secrets/a"),
			Children: []*mifsecv1.Child{{Name: "net"}, {Name: "voice"}}, IkeSas: []string{"a", "b"}},
	}
	var buf bytes.Buffer
	if err := writeConnectionTable(&buf, conns); err != nil {
		t.Fatal(err)
	}
	want := "NAME  ROLE       STATE        REMOTE_ID  REMOTE                 AUTH     CHILDREN   IKE_SAS\n" +
		"gw    responder  idle         %any       -                      psk/ca   -          0\n" +
		"home  initiator  established  -          192.0.2.1,2001:db8::1  psk/psk  net,voice  2\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestCLIConnection(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeDaemon()
	sock := startFake(t, f)
	f.secrets["secrets/home-psk"] = &mifsecv1.Secret{Name: "secrets/home-psk", Type: mifsecv1.SecretType_SECRET_TYPE_PSK}

	r := runCLI(t, ctx, sock, "connection", "add", "home", "--role", "initiator", "--psk", "home-psk", "--remote", "203.0.113.1",
		"--dpd-interval", "30s", "--dpd-timeout", "2m", "--child", "net,remote=0.0.0.0/0,remote=::/0,start=start")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "name:          connections/home\nrole:          initiator\nstate:         idle\n") ||
		!strings.Contains(r.stdout, "\nnet    -         0.0.0.0/0,::/0  -     start  -    -\n") {
		t.Fatalf("add: %+v", r)
	}
	r = runCLI(t, ctx, sock, "connection", "add", "gw", "--role", "responder", "--psk", "nope")
	if r.code != exitInvalid || !strings.HasPrefix(r.stderr, "error: FAILED_PRECONDITION: secret \"secrets/nope\" not found") {
		t.Errorf("add with a missing secret: %+v", r)
	}

	// Only --dpd-interval: the timeout is read back and kept.
	before := f.requestCount()
	r = runCLI(t, ctx, sock, "conn", "update", "home", "--dpd-interval", "10s")
	if r.code != 0 || !strings.Contains(r.stdout, "dpd:           interval 10s, timeout 2m0s\n") {
		t.Errorf("update dpd: %+v", r)
	}
	if n := f.requestCount() - before; n != 2 {
		t.Errorf("%d requests, want Get then Update", n)
	}

	r = runCLI(t, ctx, sock, "connection", "get", "home", "--json")
	saved := writeTemp(t, "home.json", []byte(r.stdout))
	r = runCLI(t, ctx, sock, "connection", "add", "copy", "--from-json", saved, "--remote", "203.0.113.9")
	if r.code != 0 {
		t.Fatalf("add --from-json: %+v", r)
	}
	var c mifsecv1.Connection
	r = runCLI(t, ctx, sock, "--json", "connection", "get", "copy")
	if err := protojson.Unmarshal([]byte(r.stdout), &c); err != nil || c.GetRemoteAddresses()[0] != "203.0.113.9" ||
		c.GetDpd().GetInterval().AsDuration() != 10*time.Second || len(c.GetChildren()) != 1 || len(c.GetIkeSas()) != 0 {
		t.Errorf("copy: %v, %v", &c, err)
	}

	r = runCLI(t, ctx, sock, "connection", "initiate", "home")
	if r.code != 0 || r.stdout != "initiated connections/home: IKE SA home/0123456789abcdef\n" {
		t.Errorf("initiate: %+v", r)
	}
	r = runCLI(t, ctx, sock, "connection", "up", "home", "--child", "net", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"ikeSa": "connections/home/ikeSas/0123456789abcdef"`) {
		t.Errorf("initiate --json: %+v", r)
	}
	if got := f.lastRequest(); !proto.Equal(got, &mifsecv1.InitiateConnectionRequest{Name: "connections/home", Child: "net"}) {
		t.Errorf("initiate request %v", got)
	}
	r = runCLI(t, ctx, sock, "connection", "list")
	want := "NAME  ROLE       STATE        REMOTE_ID  REMOTE       AUTH     CHILDREN  IKE_SAS\n" +
		"copy  initiator  idle         -          203.0.113.9  psk/psk  net       0\n" +
		"home  initiator  established  -          203.0.113.1  psk/psk  net       2\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("list: %+v\nwant\n%s", r, want)
	}
	r = runCLI(t, ctx, sock, "connection", "terminate", "home")
	if r.code != 0 || r.stdout != "terminated connections/home\n" {
		t.Errorf("terminate: %+v", r)
	}
	r = runCLI(t, ctx, sock, "connection", "delete", "copy", "--json")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "{}" {
		t.Errorf("delete: %+v", r)
	}
	r = runCLI(t, ctx, sock, "connection", "initiate", "copy")
	if r.code != exitNotFound {
		t.Errorf("initiate deleted: %+v", r)
	}
}

func TestCLIConnectionUsage(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeDaemon()
	sock := startFake(t, f)
	tests := []struct {
		args   []string
		stderr string
	}{
		{[]string{"connection", "add", "x", "--psk", "a"}, "error: --role is required"},
		{[]string{"connection", "add", "x", "--role", "initiator", "--psk", "a", "--cert-file", "c", "--key-secret", "k"},
			"error: if any flags in the group [psk cert-file] are set none of the others can be"},
		{[]string{"connection", "update", "x"}, "error: nothing to update"},
		{[]string{"connection", "update", "x", "--child", "bad=1"}, "error: --child \"bad=1\": starts with the child's NAME"},
		{[]string{"connection", "add", "x", "--role", "peer"}, `error: invalid argument "peer" for "--role" flag: unknown role "peer" (want one of initiator, responder)`},
		{[]string{"connection", "get", "a/b"}, "error: bad connection name"},
	}
	for _, tt := range tests {
		r := runCLI(t, ctx, sock, tt.args...)
		if r.code != exitUsage || !strings.HasPrefix(r.stderr, tt.stderr) {
			t.Errorf("%v: got %+v, want %q", tt.args, r, tt.stderr)
		}
	}
	if n := f.requestCount(); n != 0 {
		t.Errorf("%d requests reached the daemon", n)
	}
}
