package client

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
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeInterfaces serves a fixed, sorted set of interfaces, at most pageCap
// per page whatever the request asks, to exercise paging.
type fakeInterfaces struct {
	mifsecv1.UnimplementedInterfaceServiceServer
	ifaces  []*mifsecv1.Interface
	pageCap int
}

func (f *fakeInterfaces) ListInterfaces(_ context.Context, req *mifsecv1.ListInterfacesRequest) (*mifsecv1.ListInterfacesResponse, error) {
	start := 0
	if req.GetPageToken() != "" {
		n, err := strconv.Atoi(req.GetPageToken())
		if err != nil || n < 0 || n > len(f.ifaces) {
			return nil, status.Error(codes.InvalidArgument, "bad page token")
		}
		start = n
	}
	size := int(req.GetPageSize())
	if size <= 0 || size > f.pageCap {
		size = f.pageCap
	}
	end := min(start+size, len(f.ifaces))
	resp := &mifsecv1.ListInterfacesResponse{Interfaces: f.ifaces[start:end]}
	if end < len(f.ifaces) {
		resp.NextPageToken = strconv.Itoa(end)
	}
	return resp, nil
}

func (f *fakeInterfaces) GetInterface(_ context.Context, req *mifsecv1.GetInterfaceRequest) (*mifsecv1.GetInterfaceResponse, error) {
	for _, i := range f.ifaces {
		if i.GetName() == req.GetName() {
			return &mifsecv1.GetInterfaceResponse{Interface: i}, nil
		}
	}
	st, _ := status.New(codes.NotFound, fmt.Sprintf("interface %q not found", req.GetName())).WithDetails(
		&errdetails.ErrorInfo{Reason: "INTERFACE_NOT_FOUND", Metadata: map[string]string{"field": "name"}})
	return nil, st.Err()
}

func newFake(n, pageCap int) *fakeInterfaces {
	f := &fakeInterfaces{pageCap: pageCap}
	for i := range n {
		f.ifaces = append(f.ifaces, &mifsecv1.Interface{Name: fmt.Sprintf("interfaces/if%03d", i), Link: fmt.Sprintf("eth%d", i)})
	}
	return f
}

// serve runs srv on lis until the test ends.
func serve(t *testing.T, lis net.Listener, f *fakeInterfaces, opts ...grpc.ServerOption) {
	t.Helper()
	srv := grpc.NewServer(opts...)
	mifsecv1.RegisterInterfaceServiceServer(srv, f)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
}

func unixServer(t *testing.T, f *fakeInterfaces) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.sock")
	lis, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, lis, f)
	return path
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestDialUnixAndListAll(t *testing.T) {
	for _, n := range []int{0, 1, 3, 4, 7} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			f := newFake(n, 3)
			path := unixServer(t, f)
			for _, target := range []string{path, "unix://" + path} {
				c, err := Dial(ctxT(t), target)
				if err != nil {
					t.Fatal(err)
				}
				got, err := c.ListAllInterfaces(ctxT(t))
				c.Close()
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != n {
					t.Fatalf("%s: got %d interfaces, want %d", target, len(got), n)
				}
				if !sort.SliceIsSorted(got, func(i, j int) bool { return got[i].GetName() < got[j].GetName() }) {
					t.Errorf("not in order")
				}
				for i := range got {
					if got[i].GetName() != f.ifaces[i].GetName() {
						t.Errorf("item %d = %s, want %s", i, got[i].GetName(), f.ifaces[i].GetName())
					}
				}
			}
		})
	}
}

// loopingPager always returns the same next_page_token.
type loopingPager struct {
	mifsecv1.UnimplementedInterfaceServiceServer
}

func (loopingPager) ListInterfaces(context.Context, *mifsecv1.ListInterfacesRequest) (*mifsecv1.ListInterfacesResponse, error) {
	return &mifsecv1.ListInterfacesResponse{NextPageToken: "again"}, nil
}

func TestListAllStopsOnRepeatedToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.sock")
	lis, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	mifsecv1.RegisterInterfaceServiceServer(srv, loopingPager{})
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	defer func() { srv.Stop(); <-done }()
	c, err := Dial(ctxT(t), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ListAllInterfaces(ctxT(t)); err == nil || !strings.Contains(err.Error(), "same page token") {
		t.Errorf("got %v, want a repeated-token error", err)
	}
}

func TestErrorDetailsOverTheWire(t *testing.T) {
	path := unixServer(t, newFake(1, 10))
	c, err := Dial(ctxT(t), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Interfaces.GetInterface(ctxT(t), &mifsecv1.GetInterfaceRequest{Name: "interfaces/nope"})
	d, ok := Details(err)
	want := `NOT_FOUND: interface "interfaces/nope" not found (reason=INTERFACE_NOT_FOUND, field=name)`
	if !ok || d.String() != want {
		t.Errorf("got %q, %v; want %q", d.String(), ok, want)
	}
}

func TestDialFailures(t *testing.T) {
	dir := t.TempDir()
	plainFile := filepath.Join(dir, "not-a-socket")
	if err := os.WriteFile(plainFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A listener that is closed at once gives a free port nobody listens on.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := lis.Addr().String()
	lis.Close()

	tests := []struct {
		name   string
		target string
		opts   []Option
		code   codes.Code
		substr string
	}{
		{"missing socket", filepath.Join(dir, "none.sock"), nil, codes.Unavailable, "no such file"},
		{"not a socket", plainFile, nil, codes.Unavailable, "connection refused"},
		{"tcp refused", closedPort, []Option{WithInsecureLoopback()}, codes.Unavailable, "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Dial(ctxT(t), tt.target, tt.opts...)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			if status.Code(err) != tt.code || !strings.Contains(err.Error(), tt.substr) {
				t.Errorf("got %v, want %v containing %q", err, tt.code, tt.substr)
			}
		})
	}
}

func TestDialRefusesInsecureTCP(t *testing.T) {
	tests := []struct {
		target string
		opts   []Option
	}{
		{"127.0.0.1:7000", nil},
		{"10.1.2.3:7000", []Option{WithInsecureLoopback()}},
		{"gw.example.net:7000", []Option{WithInsecureLoopback()}},
	}
	for _, tt := range tests {
		_, err := Dial(ctxT(t), tt.target, tt.opts...)
		var te *TargetError
		if !errors.As(err, &te) {
			t.Errorf("%s: got %v, want *TargetError", tt.target, err)
		}
	}
}

func TestDialOptionErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		opt    Option
		substr string
	}{
		{"nil config", WithTLSConfig(nil), "nil TLS config"},
		{"missing parts", WithTLSFiles("a", "", "c", ""), "needs a client certificate"},
		{"unreadable cert", WithTLSFiles(filepath.Join(dir, "x"), filepath.Join(dir, "y"), filepath.Join(dir, "z"), ""), "load client certificate"},
	}
	for _, tt := range tests {
		_, err := Dial(ctxT(t), "127.0.0.1:7000", tt.opt)
		if err == nil || !strings.Contains(err.Error(), tt.substr) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.substr)
		}
	}
}

func TestDialDeadline(t *testing.T) {
	// A listener that never completes the HTTP/2 handshake keeps the
	// connection CONNECTING; the deadline must end Dial.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		lis.Close()
		for c := range accepted {
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	c, err := Dial(ctx, lis.Addr().String(), WithInsecureLoopback())
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded")
	}
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("got %v, want DEADLINE_EXCEEDED", err)
	}
}

func TestInsecureLoopbackTCP(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, lis, newFake(2, 10))
	c, err := Dial(ctxT(t), lis.Addr().String(), WithInsecureLoopback())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := c.ListAllInterfaces(ctxT(t)); err != nil || len(got) != 2 {
		t.Errorf("got %d, %v", len(got), err)
	}
	if c.Target().Network != TCP {
		t.Errorf("Target() = %v", c.Target())
	}
}

// pki writes a CA, a server certificate for 127.0.0.1 and client
// certificates signed by the CA and by a stranger CA, all PEM, into dir.
type pki struct {
	caFile, serverCert, serverKey, clientCert, clientKey, strangerCert, strangerKey string
	caPool                                                                          *x509.CertPool
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	ca, caKey := selfSigned(t, "test CA")
	stranger, strangerKey := selfSigned(t, "stranger CA")
	p := pki{caPool: x509.NewCertPool()}
	p.caPool.AddCert(ca)
	p.caFile = writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw)
	p.serverCert, p.serverKey = leaf(t, dir, "server", ca, caKey, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf(t, dir, "client", ca, caKey, x509.ExtKeyUsageClientAuth)
	p.strangerCert, p.strangerKey = leaf(t, dir, "stranger", stranger, strangerKey, x509.ExtKeyUsageClientAuth)
	return p
}

func selfSigned(t *testing.T, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
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
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func leaf(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+"-key.pem", "EC PRIVATE KEY", kder)
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	srvCert, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, lis, newFake(3, 10), grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{srvCert},
		ClientCAs:    p.caPool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	})))
	addr := lis.Addr().String()

	t.Run("good client", func(t *testing.T) {
		c, err := Dial(ctxT(t), addr, WithTLSFiles(p.clientCert, p.clientKey, p.caFile, ""))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, err := c.ListAllInterfaces(ctxT(t)); err != nil || len(got) != 3 {
			t.Errorf("got %d, %v", len(got), err)
		}
	})
	// The server rejects the stranger's certificate; in TLS 1.3 the client
	// learns it on its first read, so the failure may come from Dial or from
	// the first RPC, but it must come.
	t.Run("client cert from another CA", func(t *testing.T) {
		c, err := Dial(ctxT(t), addr, WithTLSFiles(p.strangerCert, p.strangerKey, p.caFile, ""))
		if err == nil {
			_, err = c.ListAllInterfaces(ctxT(t))
			c.Close()
		}
		if status.Code(err) != codes.Unavailable {
			t.Errorf("got %v, want UNAVAILABLE", err)
		}
	})
	t.Run("server not signed by the CA", func(t *testing.T) {
		other := newPKI(t)
		_, err := Dial(ctxT(t), addr, WithTLSFiles(other.clientCert, other.clientKey, other.caFile, ""))
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "handshake") {
			t.Errorf("got %v, want UNAVAILABLE handshake failure", err)
		}
	})
	t.Run("wrong server name", func(t *testing.T) {
		_, err := Dial(ctxT(t), addr, WithTLSFiles(p.clientCert, p.clientKey, p.caFile, "gw.example.net"))
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "handshake") {
			t.Errorf("got %v, want UNAVAILABLE handshake failure", err)
		}
	})
}
