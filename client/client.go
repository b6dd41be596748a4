// Package client connects to mifsecd's gRPC API and adds what every caller
// of it needs: target parsing, transport security (unix socket, mutual TLS,
// plaintext loopback for tests), paging helpers, resource names, and the
// google.rpc.ErrorInfo carried by errors.
//
// It imports only the generated API (gen/mifsec/v1) and grpc; never engine/
// nor server/.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// Client is a connection to mifsecd and the service clients bound to it.
// It is safe for concurrent use.
type Client struct {
	Interfaces  mifsecv1.InterfaceServiceClient
	Connections mifsecv1.ConnectionServiceClient
	SAs         mifsecv1.SecurityAssociationServiceClient
	Pools       mifsecv1.PoolServiceClient
	Secrets     mifsecv1.SecretServiceClient
	Events      mifsecv1.EventServiceClient

	conn   *grpc.ClientConn
	target Target
}

// Conn returns the underlying connection, for services this package does not
// wrap (grpc.health.v1, reflection).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Target returns the daemon address the client is connected to.
func (c *Client) Target() Target { return c.target }

// Close releases the connection. Streams still open fail with CANCELED.
func (c *Client) Close() error { return c.conn.Close() }

// Option configures Dial.
type Option func(*options) error

type options struct {
	tls              *tls.Config
	insecureLoopback bool
	dialOpts         []grpc.DialOption
}

// WithTLSConfig uses TLS with the given configuration; for mutual TLS it
// must carry a client certificate. The config is cloned.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(o *options) error {
		if cfg == nil {
			return errors.New("nil TLS config")
		}
		o.tls = cfg.Clone()
		if o.tls.MinVersion < tls.VersionTLS12 {
			o.tls.MinVersion = tls.VersionTLS12
		}
		return nil
	}
}

// WithTLSFiles uses mutual TLS: certFile and keyFile (PEM) authenticate the
// client, caFile (PEM) holds the CAs that may sign the daemon's certificate.
// serverName overrides the name checked in the daemon's certificate; empty
// means the target's host.
func WithTLSFiles(certFile, keyFile, caFile, serverName string) Option {
	return func(o *options) error {
		if certFile == "" || keyFile == "" || caFile == "" {
			return errors.New("mutual TLS needs a client certificate, its key and a CA file")
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return fmt.Errorf("load client certificate: %w", err)
		}
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("CA file %s: no PEM certificate found", caFile)
		}
		return WithTLSConfig(&tls.Config{
			Certificates: []tls.Certificate{cert},
			RootCAs:      pool,
			ServerName:   serverName,
			MinVersion:   tls.VersionTLS13,
		})(o)
	}
}

// WithInsecureLoopback allows plaintext TCP to a loopback address
// (`localhost`, 127.0.0.0/8, ::1). It has no effect on unix sockets and is
// refused for any other host.
func WithInsecureLoopback() Option {
	return func(o *options) error {
		o.insecureLoopback = true
		return nil
	}
}

// WithDialOptions appends raw grpc dial options (interceptors, keepalive).
// Options that set transport credentials or the dialer are overridden.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) error {
		o.dialOpts = append(o.dialOpts, opts...)
		return nil
	}
}

// Dial connects to mifsecd at target (see ParseTarget) and waits until the
// connection is ready or ctx ends. A daemon that cannot be reached gives an
// UNAVAILABLE status carrying the cause (no socket, permission denied,
// refused, TLS handshake); ctx expiry gives DEADLINE_EXCEEDED or CANCELED.
func Dial(ctx context.Context, target string, opts ...Option) (*Client, error) {
	t, err := ParseTarget(target)
	if err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	var creds credentials.TransportCredentials
	switch {
	case o.tls != nil:
		creds = credentials.NewTLS(o.tls)
	case t.Network == Unix:
		creds = insecure.NewCredentials()
	case o.insecureLoopback && t.isLoopback():
		creds = insecure.NewCredentials()
	case o.insecureLoopback:
		return nil, &TargetError{target, "plaintext TCP is allowed only to loopback addresses"}
	default:
		return nil, &TargetError{target, "TCP needs mutual TLS (or plaintext to loopback, explicitly allowed)"}
	}

	rec := &lastError{}
	network := t.Network.String()
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		rec.set(err)
		return c, err
	}
	dopts := append([]grpc.DialOption{}, o.dialOpts...)
	dopts = append(dopts,
		grpc.WithTransportCredentials(recordingCreds{creds, rec}),
		grpc.WithContextDialer(dialer),
	)
	if t.Network == Unix {
		// A socket path is no host name: send the :authority (and TLS
		// server name) grpc uses for unix targets.
		dopts = append(dopts, grpc.WithAuthority("localhost"))
	}
	// passthrough: hand the address to the dialer as is, no resolver.
	conn, err := grpc.NewClient("passthrough:///"+t.Address, dopts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", t, err)
	}
	if err := waitReady(ctx, conn, rec); err != nil {
		conn.Close()
		return nil, status.Errorf(status.Code(err), "connect to %s: %s", t, status.Convert(err).Message())
	}
	return &Client{
		Interfaces:  mifsecv1.NewInterfaceServiceClient(conn),
		Connections: mifsecv1.NewConnectionServiceClient(conn),
		SAs:         mifsecv1.NewSecurityAssociationServiceClient(conn),
		Pools:       mifsecv1.NewPoolServiceClient(conn),
		Secrets:     mifsecv1.NewSecretServiceClient(conn),
		Events:      mifsecv1.NewEventServiceClient(conn),
		conn:        conn,
		target:      t,
	}, nil
}

// waitReady blocks until conn is READY. The first TRANSIENT_FAILURE ends the
// wait: a CLI must fail fast when the daemon is not running.
func waitReady(ctx context.Context, conn *grpc.ClientConn, rec *lastError) error {
	conn.Connect()
	for {
		s := conn.GetState()
		switch s {
		case connectivity.Ready:
			return nil
		case connectivity.TransientFailure:
			if err := rec.get(); err != nil {
				return status.Error(codes.Unavailable, err.Error())
			}
			return status.Error(codes.Unavailable, "connection failed")
		case connectivity.Shutdown:
			return status.Error(codes.Canceled, "connection closed")
		}
		if !conn.WaitForStateChange(ctx, s) {
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// lastError keeps the most recent dial or handshake failure, which grpc does
// not expose through the connectivity state.
type lastError struct {
	mu  sync.Mutex
	err error
}

func (l *lastError) set(err error) {
	if err == nil {
		return
	}
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
}

func (l *lastError) get() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// recordingCreds records client handshake failures (bad certificate,
// unknown CA) in rec.
type recordingCreds struct {
	credentials.TransportCredentials
	rec *lastError
}

func (r recordingCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, info, err := r.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err != nil {
		r.rec.set(fmt.Errorf("handshake: %w", err))
	}
	return c, info, err
}

func (r recordingCreds) Clone() credentials.TransportCredentials {
	return recordingCreds{r.TransportCredentials.Clone(), r.rec}
}
