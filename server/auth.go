package server

// Authentication and authorisation of API clients (DESIGN.md §5).
//
// Who a client is depends on how it came in:
//   - unix socket: operator (the socket's mode and group guard it);
//   - TCP with mutual TLS: the verified client certificate decides, through
//     the role map file if one is given, else the certificate's URI SAN
//     `urn:mifsec:role:viewer` / `urn:mifsec:role:operator`;
//   - plaintext TCP, only ever bound to loopback (--insecure-loopback):
//     viewer, enough for health probes and read-only tooling.
//
// What a method needs is the methodRoles table: Get*, List*, Watch, health
// and reflection need viewer; everything else needs operator. A method the
// table does not know needs operator.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Role is what an API client may do.
type Role uint8

const (
	// RoleNone may do nothing.
	RoleNone Role = iota
	// RoleViewer may read and watch: Get*, List*, Watch, health, reflection.
	RoleViewer
	// RoleOperator may call every method.
	RoleOperator
)

// String returns the role's name as written in role maps and certificates.
func (r Role) String() string {
	switch r {
	case RoleNone:
		return "none"
	case RoleViewer:
		return "viewer"
	case RoleOperator:
		return "operator"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// ParseRole reads "viewer" or "operator".
func ParseRole(s string) (Role, error) {
	switch s {
	case "viewer":
		return RoleViewer, nil
	case "operator":
		return RoleOperator, nil
	}
	return RoleNone, fmt.Errorf("unknown role %q (want viewer or operator)", s)
}

// RoleURIPrefix starts the URI SAN that grants a role by certificate:
// urn:mifsec:role:viewer or urn:mifsec:role:operator.
const RoleURIPrefix = "urn:mifsec:role:"

// Reasons of authorisation errors (google.rpc.ErrorInfo.reason).
const (
	ReasonUnauthenticated  = "UNAUTHENTICATED"
	ReasonPermissionDenied = "PERMISSION_DENIED"
)

// methodRoles is the role each method needs. A test checks it covers every
// method of every registered and generated service, and that it follows the
// naming rule (Get*/List*/Watch = viewer).
var methodRoles = map[string]Role{
	"/grpc.health.v1.Health/Check":                                   RoleViewer,
	"/grpc.health.v1.Health/List":                                    RoleViewer,
	"/grpc.health.v1.Health/Watch":                                   RoleViewer,
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      RoleViewer,
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": RoleViewer,

	"/mifsec.v1.EventService/Watch": RoleViewer,

	"/mifsec.v1.InterfaceService/CreateInterface": RoleOperator,
	"/mifsec.v1.InterfaceService/GetInterface":    RoleViewer,
	"/mifsec.v1.InterfaceService/ListInterfaces":  RoleViewer,
	"/mifsec.v1.InterfaceService/UpdateInterface": RoleOperator,
	"/mifsec.v1.InterfaceService/DeleteInterface": RoleOperator,

	"/mifsec.v1.ConnectionService/CreateConnection":    RoleOperator,
	"/mifsec.v1.ConnectionService/GetConnection":       RoleViewer,
	"/mifsec.v1.ConnectionService/ListConnections":     RoleViewer,
	"/mifsec.v1.ConnectionService/UpdateConnection":    RoleOperator,
	"/mifsec.v1.ConnectionService/DeleteConnection":    RoleOperator,
	"/mifsec.v1.ConnectionService/InitiateConnection":  RoleOperator,
	"/mifsec.v1.ConnectionService/TerminateConnection": RoleOperator,

	"/mifsec.v1.SecurityAssociationService/ListIkeSas":       RoleViewer,
	"/mifsec.v1.SecurityAssociationService/GetIkeSa":         RoleViewer,
	"/mifsec.v1.SecurityAssociationService/RekeyIkeSa":       RoleOperator,
	"/mifsec.v1.SecurityAssociationService/TerminateIkeSa":   RoleOperator,
	"/mifsec.v1.SecurityAssociationService/ListChildSas":     RoleViewer,
	"/mifsec.v1.SecurityAssociationService/GetChildSa":       RoleViewer,
	"/mifsec.v1.SecurityAssociationService/RekeyChildSa":     RoleOperator,
	"/mifsec.v1.SecurityAssociationService/TerminateChildSa": RoleOperator,
	"/mifsec.v1.SecurityAssociationService/MigrateIkeSa":     RoleOperator,
	"/mifsec.v1.ConnectionService/ListPaths":                 RoleViewer,

	"/mifsec.v1.SteeringService/CreateSteeringRule": RoleOperator,
	"/mifsec.v1.SteeringService/GetSteeringRule":    RoleViewer,
	"/mifsec.v1.SteeringService/ListSteeringRules":  RoleViewer,
	"/mifsec.v1.SteeringService/UpdateSteeringRule": RoleOperator,
	"/mifsec.v1.SteeringService/DeleteSteeringRule": RoleOperator,

	"/mifsec.v1.PoolService/CreatePool": RoleOperator,
	"/mifsec.v1.PoolService/GetPool":    RoleViewer,
	"/mifsec.v1.PoolService/ListPools":  RoleViewer,
	"/mifsec.v1.PoolService/UpdatePool": RoleOperator,
	"/mifsec.v1.PoolService/DeletePool": RoleOperator,

	"/mifsec.v1.SecretService/CreateSecret": RoleOperator,
	"/mifsec.v1.SecretService/GetSecret":    RoleViewer,
	"/mifsec.v1.SecretService/ListSecrets":  RoleViewer,
	"/mifsec.v1.SecretService/DeleteSecret": RoleOperator,
}

// MethodRole returns the role fullMethod ("/pkg.Service/Method") needs and
// whether the table knows it; unknown methods need operator.
func MethodRole(fullMethod string) (Role, bool) {
	r, ok := methodRoles[fullMethod]
	if !ok {
		return RoleOperator, false
	}
	return r, true
}

// Identity is who a client is, as far as authorisation cares.
type Identity struct {
	// Transport is "unix", "tls" or "loopback".
	Transport string
	// Subject names the client in logs: the certificate's subject, or the
	// transport for unix and loopback clients.
	Subject string
	Role    Role
}

// RoleMap grants roles to certificates by name. Its file has one rule a
// line, `<role> <kind>:<value>`, kind being cn (subject common name), uri,
// dns or email (SANs); `#` starts a comment. When a certificate matches
// several rules the highest role wins.
type RoleMap struct {
	rules []roleRule
}

type roleRule struct {
	role        Role
	kind, value string
}

// RoleMapError reports a bad line of a role map file.
type RoleMapError struct {
	File   string
	Line   int
	Reason string
}

func (e *RoleMapError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason) }

// LoadRoleMap reads a role map file.
func LoadRoleMap(path string) (*RoleMap, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := &RoleMap{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, &RoleMapError{path, n, "want `<role> <kind>:<value>`"}
		}
		role, err := ParseRole(fields[0])
		if err != nil {
			return nil, &RoleMapError{path, n, err.Error()}
		}
		kind, value, ok := strings.Cut(fields[1], ":")
		if !ok || value == "" {
			return nil, &RoleMapError{path, n, "want <kind>:<value>, kind one of cn, uri, dns, email"}
		}
		switch kind {
		case "cn", "uri", "dns", "email":
		default:
			return nil, &RoleMapError{path, n, fmt.Sprintf("unknown kind %q (want cn, uri, dns or email)", kind)}
		}
		m.rules = append(m.rules, roleRule{role, kind, value})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

// Role returns the highest role the map grants cert (RoleNone if none).
func (m *RoleMap) Role(cert *x509.Certificate) Role {
	best := RoleNone
	for _, r := range m.rules {
		if r.role > best && r.matches(cert) {
			best = r.role
		}
	}
	return best
}

func (r roleRule) matches(c *x509.Certificate) bool {
	switch r.kind {
	case "cn":
		return c.Subject.CommonName == r.value
	case "uri":
		for _, u := range c.URIs {
			if u.String() == r.value {
				return true
			}
		}
	case "dns":
		for _, d := range c.DNSNames {
			if strings.EqualFold(d, r.value) {
				return true
			}
		}
	case "email":
		for _, e := range c.EmailAddresses {
			if strings.EqualFold(e, r.value) {
				return true
			}
		}
	}
	return false
}

// certRole reads the role from the certificate's URI SANs. Several role
// URIs grant the lowest of them: a certificate that says both is not
// trusted with more than the least it claims.
func certRole(c *x509.Certificate) Role {
	role := RoleNone
	for _, u := range c.URIs {
		s := u.String()
		if !strings.HasPrefix(s, RoleURIPrefix) {
			continue
		}
		r, err := ParseRole(strings.TrimPrefix(s, RoleURIPrefix))
		if err != nil {
			continue
		}
		if role == RoleNone || r < role {
			role = r
		}
	}
	return role
}

// RoleURI returns the URI SAN that grants r, for issuing client certificates.
func RoleURI(r Role) *url.URL {
	u, _ := url.Parse(RoleURIPrefix + r.String())
	return u
}

// Authorizer decides whether a caller may call a method. With a RoleMap it
// trusts only the map, else only the certificates' role URIs.
type Authorizer struct {
	roles *RoleMap
	log   hclog.Logger
}

// NewAuthorizer returns an Authorizer; roles may be nil.
func NewAuthorizer(roles *RoleMap, log hclog.Logger) *Authorizer {
	return &Authorizer{roles: roles, log: log.Named("auth")}
}

// Identify tells who the caller in ctx is. It fails with UNAUTHENTICATED
// when the transport proves nothing acceptable.
func (a *Authorizer) Identify(ctx context.Context) (Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, statusError(codes.Unauthenticated, ReasonUnauthenticated, "", "no peer information")
	}
	info := p.AuthInfo
	if info != nil && info.AuthType() == "insecure" {
		// insecure.NewCredentials: plaintext, like no credentials at all.
		info = nil
	}
	switch info := info.(type) {
	case credentials.TLSInfo:
		if len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
			return Identity{}, statusError(codes.Unauthenticated, ReasonUnauthenticated, "", "no verified client certificate")
		}
		cert := info.State.VerifiedChains[0][0]
		id := Identity{Transport: "tls", Subject: cert.Subject.String()}
		if a.roles != nil {
			id.Role = a.roles.Role(cert)
		} else {
			id.Role = certRole(cert)
		}
		return id, nil
	case nil:
		switch addr := p.Addr.(type) {
		case *net.UnixAddr:
			return Identity{Transport: "unix", Subject: "unix", Role: RoleOperator}, nil
		case *net.TCPAddr:
			// Only an --insecure-loopback listener serves plaintext TCP;
			// refuse anything else that somehow gets here.
			if addr.IP.IsLoopback() {
				return Identity{Transport: "loopback", Subject: "loopback", Role: RoleViewer}, nil
			}
		}
	}
	return Identity{}, statusError(codes.Unauthenticated, ReasonUnauthenticated, "", "unauthenticated transport")
}

// authorize checks that the caller may call fullMethod.
func (a *Authorizer) authorize(ctx context.Context, fullMethod string) error {
	id, err := a.Identify(ctx)
	if err != nil {
		a.log.Debug("rejected unauthenticated call", "method", fullMethod)
		return err
	}
	need, _ := MethodRole(fullMethod)
	if id.Role < need {
		a.log.Info("permission denied", "method", fullMethod, "subject", id.Subject, "transport", id.Transport, "role", id.Role.String(), "needs", need.String())
		return statusError(codes.PermissionDenied, ReasonPermissionDenied, "",
			fmt.Sprintf("%s needs role %s, caller has %s", fullMethod, need, id.Role))
	}
	return nil
}

// UnaryInterceptor authorises unary calls.
func (a *Authorizer) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := a.authorize(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor authorises streaming calls.
func (a *Authorizer) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := a.authorize(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

// TLSFiles names the PEM files of the API's TLS listener.
type TLSFiles struct {
	Cert, Key string
	// ClientCA holds the CA certificates client certificates must chain to.
	ClientCA string
}

// ServerTLSConfig builds a TLS 1.3 configuration that requires and
// verifies a client certificate from the client CA.
func ServerTLSConfig(f TLSFiles) (*tls.Config, error) {
	if f.Cert == "" || f.Key == "" || f.ClientCA == "" {
		return nil, fmt.Errorf("TLS needs a certificate, a key and a client CA")
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("load TLS key pair: %w", err)
	}
	pem, err := os.ReadFile(f.ClientCA)
	if err != nil {
		return nil, fmt.Errorf("read client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("client CA %s: no PEM certificate found", f.ClientCA)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}, nil
}
