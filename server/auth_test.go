package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/mifsec/mifsec/engine"
	"github.com/mifsec/mifsec/engine/iface/ifacetest"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// testCA issues certificates for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

type leafOpts struct {
	cn      string
	uris    []string
	dns     []string
	server  bool
	expired bool
}

func (ca *testCA) issue(t *testing.T, o leafOpts) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: o.cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, DNSNames: o.dns,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if o.server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	if o.expired {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
	}
	for _, s := range o.uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// writePEM writes a certificate and key as PEM files and returns their paths.
func writePEM(t *testing.T, dir, name string, c tls.Certificate) (string, string) {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(c.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	cp, kp := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(cp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600)
	os.WriteFile(kp, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
	return cp, kp
}

// authServer serves the API with TLS on loopback TCP, plaintext on a unix
// socket and plaintext on a loopback port, all behind one Authorizer.
type authServer struct {
	ca                       *testCA
	tlsAddr, plainAddr, sock string
}

func newAuthServer(t *testing.T, roles *RoleMap) *authServer {
	t.Helper()
	dir := t.TempDir()
	ca := newTestCA(t, "mifsec test CA")
	certFile, keyFile := writePEM(t, dir, "server", ca.issue(t, leafOpts{cn: "mifsecd", server: true}))
	caFile := filepath.Join(dir, "ca.crt")
	os.WriteFile(caFile, ca.pem, 0o600)
	tlsCfg, err := ServerTLSConfig(TLSFiles{Cert: certFile, Key: keyFile, ClientCA: caFile})
	if err != nil {
		t.Fatal(err)
	}

	links := ifacetest.New()
	links.AddLink("wlan0", "192.0.2.10/24")
	eng, err := engine.New(engine.Config{StateDir: t.TempDir(), Links: links, Log: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv := New(eng, hclog.NewNullLogger())
	auth := NewAuthorizer(roles, hclog.NewNullLogger())
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(auth.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(auth.StreamInterceptor()),
	}
	gTLS := grpc.NewServer(append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))...)
	// The unix socket without credentials, the loopback port with
	// insecure credentials: mifsecd serves them like that.
	gPlain := grpc.NewServer(opts...)
	gLoop := grpc.NewServer(append(opts, grpc.Creds(insecure.NewCredentials()))...)
	srv.Register(gTLS)
	srv.Register(gPlain)
	srv.Register(gLoop)

	tlsLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plainLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "api.sock")
	unixLis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go gTLS.Serve(tlsLis)
	go gLoop.Serve(plainLis)
	go gPlain.Serve(unixLis)
	t.Cleanup(func() {
		srv.Shutdown()
		eng.Close()
		gTLS.Stop()
		gPlain.Stop()
		gLoop.Stop()
	})
	return &authServer{ca: ca, tlsAddr: tlsLis.Addr().String(), plainAddr: plainLis.Addr().String(), sock: sock}
}

func dialTLS(t *testing.T, addr string, serverCA *testCA, client *tls.Certificate) *grpc.ClientConn {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(serverCA.cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}
	if client != nil {
		cfg.Certificates = []tls.Certificate{*client}
	}
	return dial(t, addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
}

func dial(t *testing.T, target string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// rpcClass is one class of RPC, called once.
type rpcClass struct {
	name string
	call func(ctx context.Context, conn *grpc.ClientConn) error
}

var rpcClasses = []rpcClass{
	{"get", func(ctx context.Context, c *grpc.ClientConn) error {
		_, err := mifsecv1.NewInterfaceServiceClient(c).ListInterfaces(ctx, &mifsecv1.ListInterfacesRequest{})
		return err
	}},
	{"watch", func(ctx context.Context, c *grpc.ClientConn) error {
		st, err := mifsecv1.NewEventServiceClient(c).Watch(ctx, &mifsecv1.WatchRequest{})
		if err != nil {
			return err
		}
		_, err = st.Recv()
		return err
	}},
	{"health", func(ctx context.Context, c *grpc.ClientConn) error {
		_, err := healthpb.NewHealthClient(c).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}},
	{"mutate", func(ctx context.Context, c *grpc.ClientConn) error {
		// A create that would succeed: NotFound or AlreadyExists would
		// also prove the call got past authorisation, so count those as OK.
		_, err := mifsecv1.NewInterfaceServiceClient(c).CreateInterface(ctx, &mifsecv1.CreateInterfaceRequest{
			InterfaceId: "wlan", Interface: &mifsecv1.Interface{Link: "wlan0", AccessType: mifsecv1.AccessType_ACCESS_TYPE_WLAN}})
		if c := status.Code(err); c == codes.AlreadyExists {
			return nil
		}
		return err
	}},
}

func TestAuthRoles(t *testing.T) {
	a := newAuthServer(t, nil)
	operator := a.ca.issue(t, leafOpts{cn: "orchestrator", uris: []string{"urn:mifsec:role:operator"}})
	viewer := a.ca.issue(t, leafOpts{cn: "dashboard", uris: []string{"urn:mifsec:role:viewer"}})
	both := a.ca.issue(t, leafOpts{cn: "confused", uris: []string{"urn:mifsec:role:operator", "urn:mifsec:role:viewer"}})
	norole := a.ca.issue(t, leafOpts{cn: "nobody", uris: []string{"urn:mifsec:role:admin"}})

	conns := map[string]*grpc.ClientConn{
		"operator": dialTLS(t, a.tlsAddr, a.ca, &operator),
		"viewer":   dialTLS(t, a.tlsAddr, a.ca, &viewer),
		"both":     dialTLS(t, a.tlsAddr, a.ca, &both),
		"norole":   dialTLS(t, a.tlsAddr, a.ca, &norole),
		"unix":     dial(t, "unix://"+a.sock, grpc.WithTransportCredentials(insecure.NewCredentials())),
		"loopback": dial(t, a.plainAddr, grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
	// want[client][class] is the expected code.
	ok, denied := codes.OK, codes.PermissionDenied
	want := map[string]map[string]codes.Code{
		"operator": {"get": ok, "watch": ok, "health": ok, "mutate": ok},
		"unix":     {"get": ok, "watch": ok, "health": ok, "mutate": ok},
		"viewer":   {"get": ok, "watch": ok, "health": ok, "mutate": denied},
		"both":     {"get": ok, "watch": ok, "health": ok, "mutate": denied},
		"loopback": {"get": ok, "watch": ok, "health": ok, "mutate": denied},
		"norole":   {"get": denied, "watch": denied, "health": denied, "mutate": denied},
	}
	for client, classes := range want {
		for _, rc := range rpcClasses {
			t.Run(client+"/"+rc.name, func(t *testing.T) {
				c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				err := rc.call(c, conns[client])
				if got := status.Code(err); got != classes[rc.name] {
					t.Fatalf("code %v, want %v (%v)", got, classes[rc.name], err)
				}
				if status.Code(err) == codes.PermissionDenied && !strings.Contains(status.Convert(err).Message(), "needs role") {
					t.Errorf("message does not say why: %v", err)
				}
			})
		}
	}
}

func TestAuthRejectsBadClients(t *testing.T) {
	a := newAuthServer(t, nil)
	foreign := newTestCA(t, "someone else's CA")
	expired := a.ca.issue(t, leafOpts{cn: "old", uris: []string{"urn:mifsec:role:operator"}, expired: true})
	foreignCert := foreign.issue(t, leafOpts{cn: "intruder", uris: []string{"urn:mifsec:role:operator"}})

	cases := []struct {
		name string
		conn *grpc.ClientConn
	}{
		{"expired", dialTLS(t, a.tlsAddr, a.ca, &expired)},
		{"foreign CA", dialTLS(t, a.tlsAddr, a.ca, &foreignCert)},
		{"no certificate", dialTLS(t, a.tlsAddr, a.ca, nil)},
		{"plaintext to TLS port", dial(t, a.tlsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := mifsecv1.NewInterfaceServiceClient(tc.conn).ListInterfaces(c, &mifsecv1.ListInterfacesRequest{})
			// The handshake fails: the client sees the connection refused
			// (UNAVAILABLE), never a served call.
			if got := status.Code(err); got != codes.Unavailable && got != codes.Unauthenticated {
				t.Fatalf("code %v, want UNAVAILABLE or UNAUTHENTICATED (%v)", got, err)
			}
		})
	}
}

func TestAuthRoleMap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "roles")
	os.WriteFile(path, []byte(`# who may do what
operator cn:orchestrator
viewer   dns:grafana.example.net   # dashboards
viewer   uri:spiffe://example.net/ops
operator uri:spiffe://example.net/ops
`), 0o600)
	m, err := LoadRoleMap(path)
	if err != nil {
		t.Fatal(err)
	}
	a := newAuthServer(t, m)
	// With a role map the certificate's own role URI is ignored.
	selfGranted := a.ca.issue(t, leafOpts{cn: "mallory", uris: []string{"urn:mifsec:role:operator"}})
	grafana := a.ca.issue(t, leafOpts{cn: "grafana", dns: []string{"Grafana.example.net"}})
	orch := a.ca.issue(t, leafOpts{cn: "orchestrator"})
	spiffe := a.ca.issue(t, leafOpts{cn: "x", uris: []string{"spiffe://example.net/ops"}})
	cases := []struct {
		name        string
		cert        tls.Certificate
		get, mutate codes.Code
	}{
		{"self-granted role URI", selfGranted, codes.PermissionDenied, codes.PermissionDenied},
		{"viewer by dns", grafana, codes.OK, codes.PermissionDenied},
		{"operator by cn", orch, codes.OK, codes.OK},
		{"highest of two rules", spiffe, codes.OK, codes.OK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := dialTLS(t, a.tlsAddr, a.ca, &tc.cert)
			c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if got := status.Code(rpcClasses[0].call(c, conn)); got != tc.get {
				t.Errorf("get: %v, want %v", got, tc.get)
			}
			if got := status.Code(rpcClasses[3].call(c, conn)); got != tc.mutate {
				t.Errorf("mutate: %v, want %v", got, tc.mutate)
			}
		})
	}
}

func TestLoadRoleMapErrors(t *testing.T) {
	cases := []struct{ text, want string }{
		{"admin cn:x\n", ":1: unknown role"},
		{"# ok\noperator\n", ":2: want"},
		{"viewer cn\n", ":1: want <kind>:<value>"},
		{"viewer cn:\n", ":1: want <kind>:<value>"},
		{"viewer ip:127.0.0.1\n", `:1: unknown kind "ip"`},
		{"viewer cn:a extra\n", ":1: want"},
	}
	for _, tc := range cases {
		path := filepath.Join(t.TempDir(), "roles")
		os.WriteFile(path, []byte(tc.text), 0o600)
		_, err := LoadRoleMap(path)
		var rme *RoleMapError
		if !errors.As(err, &rme) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want RoleMapError containing %q", tc.text, err, tc.want)
		}
	}
	if _, err := LoadRoleMap(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Error("missing file: no error")
	}
}

// TestMethodRolesCoverEveryMethod checks the table against every service
// the server registers and every generated service, and against the
// naming rule.
func TestMethodRolesCoverEveryMethod(t *testing.T) {
	links := ifacetest.New()
	eng, err := engine.New(engine.Config{StateDir: t.TempDir(), Links: links, Log: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	g := grpc.NewServer()
	New(eng, hclog.NewNullLogger()).Register(g)
	seen := map[string]bool{}
	check := func(service, method string) {
		full := "/" + service + "/" + method
		seen[full] = true
		got, known := MethodRole(full)
		if !known {
			t.Errorf("%s is not in methodRoles", full)
			return
		}
		want := RoleOperator
		if strings.HasPrefix(method, "Get") || strings.HasPrefix(method, "List") || method == "Watch" ||
			service == "grpc.health.v1.Health" || strings.HasPrefix(service, "grpc.reflection.") {
			want = RoleViewer
		}
		if got != want {
			t.Errorf("%s needs %v, the naming rule says %v", full, got, want)
		}
	}
	for name, info := range g.GetServiceInfo() {
		for _, m := range info.Methods {
			check(name, m.Name)
		}
	}
	for _, sd := range []grpc.ServiceDesc{
		mifsecv1.InterfaceService_ServiceDesc, mifsecv1.EventService_ServiceDesc, mifsecv1.ConnectionService_ServiceDesc,
		mifsecv1.SecurityAssociationService_ServiceDesc, mifsecv1.PoolService_ServiceDesc, mifsecv1.SecretService_ServiceDesc,
		healthpb.Health_ServiceDesc,
	} {
		for _, m := range sd.Methods {
			check(sd.ServiceName, m.MethodName)
		}
		for _, s := range sd.Streams {
			check(sd.ServiceName, s.StreamName)
		}
	}
	for full := range methodRoles {
		if !seen[full] && !strings.Contains(full, "reflection.v1alpha") {
			t.Errorf("methodRoles has %s, which no service has", full)
		}
	}
	if r, known := MethodRole("/mifsec.v1.FutureService/GetThing"); known || r != RoleOperator {
		t.Errorf("unknown method: %v %v, want operator and unknown", r, known)
	}
}

func TestRoleStrings(t *testing.T) {
	for _, r := range []Role{RoleViewer, RoleOperator} {
		got, err := ParseRole(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRole(%q) = %v, %v", r.String(), got, err)
		}
		if RoleURI(r).String() != RoleURIPrefix+r.String() {
			t.Errorf("RoleURI(%v) = %v", r, RoleURI(r))
		}
	}
	if RoleNone.String() != "none" || Role(9).String() != "Role(9)" {
		t.Error("bad String")
	}
	if _, err := ParseRole("root"); err == nil {
		t.Error("ParseRole(root): no error")
	}
}

func TestServerTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "ca")
	cert, key := writePEM(t, dir, "s", ca.issue(t, leafOpts{cn: "s", server: true}))
	notPEM := filepath.Join(dir, "junk")
	os.WriteFile(notPEM, []byte("junk"), 0o600)
	cases := []struct {
		name string
		f    TLSFiles
		want string
	}{
		{"missing CA", TLSFiles{Cert: cert, Key: key}, "needs a certificate, a key and a client CA"},
		{"bad key pair", TLSFiles{Cert: cert, Key: notPEM, ClientCA: notPEM}, "load TLS key pair"},
		{"absent CA", TLSFiles{Cert: cert, Key: key, ClientCA: filepath.Join(dir, "absent")}, "read client CA"},
		{"CA without PEM", TLSFiles{Cert: cert, Key: key, ClientCA: notPEM}, "no PEM certificate"},
	}
	for _, tc := range cases {
		if _, err := ServerTLSConfig(tc.f); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
