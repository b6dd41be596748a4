package engine

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mifsec/mifsec/engine/dataplane"
	"github.com/mifsec/mifsec/engine/ike"
	"github.com/mifsec/mifsec/engine/sa"
	"github.com/mifsec/mifsec/engine/transform"
)

// Role of this node in a connection.
type Role uint8

const (
	RoleInitiator Role = iota + 1 // the end user
	RoleResponder                 // the gateway
)

func (r Role) String() string {
	switch r {
	case RoleInitiator:
		return "initiator"
	case RoleResponder:
		return "responder"
	}
	return fmt.Sprintf("role(%d)", r)
}

// StartAction says when a child is established.
type StartAction uint8

const (
	StartNone StartAction = iota
	StartStart
	StartTrap
)

// AuthSpec is how one side authenticates: a PSK secret, or a certificate
// chain and its key secret (local), or CA certificates (remote).
type AuthSpec struct {
	PSKSecret string `json:"psk_secret,omitempty"`
	CertPEM   string `json:"cert_pem,omitempty"`
	KeySecret string `json:"key_secret,omitempty"`
	CAPEM     string `json:"ca_pem,omitempty"`
}

func (a AuthSpec) cert() bool { return a.CertPEM != "" || a.KeySecret != "" || a.CAPEM != "" }

// ChildSpec is a Child SA template.
type ChildSpec struct {
	Name         string         `json:"name"`
	LocalTS      []string       `json:"local_ts,omitempty"`
	RemoteTS     []string       `json:"remote_ts,omitempty"`
	ESPProposals []string       `json:"esp_proposals,omitempty"`
	Mode         dataplane.Mode `json:"mode"`
	StartAction  StartAction    `json:"start_action"`
	RekeyTime    time.Duration  `json:"rekey_time"`
	RekeyBytes   uint64         `json:"rekey_bytes,omitempty"`
	RekeyPackets uint64         `json:"rekey_packets,omitempty"`
}

// ConnectionSpec is an IKEv2 peer configuration.
type ConnectionSpec struct {
	Role            Role          `json:"role"`
	LocalID         string        `json:"local_id,omitempty"`
	RemoteID        string        `json:"remote_id,omitempty"`
	LocalAuth       AuthSpec      `json:"local_auth"`
	RemoteAuth      AuthSpec      `json:"remote_auth"`
	IKEProposals    []string      `json:"ike_proposals,omitempty"`
	ESPProposals    []string      `json:"esp_proposals,omitempty"`
	RemoteAddrs     []string      `json:"remote_addrs,omitempty"`
	LocalInterfaces []string      `json:"local_interfaces,omitempty"`
	RemotePort      uint16        `json:"remote_port,omitempty"`
	DPDInterval     time.Duration `json:"dpd_interval,omitempty"`
	DPDTimeout      time.Duration `json:"dpd_timeout,omitempty"`
	IKERekeyTime    time.Duration `json:"ike_rekey_time,omitempty"`
	Children        []ChildSpec   `json:"children,omitempty"`
	VirtualIP4      bool          `json:"virtual_ip4,omitempty"`
	VirtualIP6      bool          `json:"virtual_ip6,omitempty"`
	Pool            string        `json:"pool,omitempty"`
	MOBIKE          bool          `json:"mobike"`
	Fragmentation   bool          `json:"fragmentation"`
	// Multipath keeps one IKE SA per usable path (multipath.go).
	Multipath bool `json:"multipath,omitempty"`
}

// Defaults (strongSwan's where an operator would expect them).
var (
	DefaultIKEProposals = []string{"aes256gcm16-prfsha256-x25519", "aes128-sha256-modp2048"}
	DefaultESPProposals = []string{"aes128gcm16", "aes256gcm16"}
)

const (
	DefaultIKERekey   = 4 * time.Hour
	DefaultChildRekey = time.Hour
	DefaultIKEPort    = 500
)

// Connection fields accepted by UpdateConnection (proto spelling).
var ConnectionFields = []string{"local_id", "remote_id", "local_auth", "remote_auth", "ike_proposals", "esp_proposals",
	"remote_addresses", "local_interfaces", "remote_port", "dpd", "ike_rekey_time", "children",
	"request_virtual_ip4", "request_virtual_ip6", "pool", "mobike", "fragmentation", "multipath"}

type connection struct {
	ID string
	ConnectionSpec
	CreateTime, UpdateTime time.Time
	// Parsed forms, filled by validate.
	ike   []ike.Proposal
	esp   [][]ike.Proposal // per child
	ts    []childTS
	addrs []netip.Addr
	// tpl is the sa.Config a responder's IKE SAs share, made when cfgGen
	// was tplGen; log is the connection's IKE logger (saconfig.go).
	tpl    *sa.Config
	tplGen uint64
	log    hclog.Logger
}

type childTS struct{ local, remote []dataplane.Selector }

func (c *connection) secretRefs() []string {
	var out []string
	for _, a := range []AuthSpec{c.LocalAuth, c.RemoteAuth} {
		if a.PSKSecret != "" {
			out = append(out, a.PSKSecret)
		}
		if a.KeySecret != "" {
			out = append(out, a.KeySecret)
		}
	}
	return out
}

// ConnectionInfo is what the API shows of a connection.
type ConnectionInfo struct {
	ID string
	ConnectionSpec
	State                  ConnState
	IKESAs                 []string // SPI names
	CreateTime, UpdateTime time.Time
}

// ConnState summarises a connection's IKE SAs.
type ConnState uint8

const (
	ConnIdle ConnState = iota + 1
	ConnConnecting
	ConnEstablished
)

// ParseSelector reads a traffic selector in strongSwan syntax:
// `prefix`, `prefix[proto]`, `prefix[proto/port]`, `prefix[proto/from-to]`
// with proto a number or tcp, udp, icmp, icmpv6, sctp.
func ParseSelector(s string) (dataplane.Selector, error) {
	s = strings.TrimSpace(s)
	var sel dataplane.Selector
	addr, rest, hasProto := strings.Cut(s, "[")
	p, err := netip.ParsePrefix(addr)
	if err != nil {
		a, err2 := netip.ParseAddr(addr)
		if err2 != nil {
			return sel, fmt.Errorf("%q is not a prefix or address", addr)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	sel.Prefix = p.Masked()
	sel.PortTo = 65535
	if !hasProto {
		return sel, nil
	}
	inner, ok := strings.CutSuffix(rest, "]")
	if !ok {
		return sel, fmt.Errorf("%q: missing ]", s)
	}
	proto, ports, hasPorts := strings.Cut(inner, "/")
	protos := map[string]uint8{"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132, "gre": 47, "any": 0, "": 0}
	if n, ok := protos[proto]; ok {
		sel.Protocol = n
	} else if n, err := strconv.ParseUint(proto, 10, 8); err == nil {
		sel.Protocol = uint8(n)
	} else {
		return sel, fmt.Errorf("%q: unknown protocol %q", s, proto)
	}
	if hasPorts && ports != "" && ports != "%any" {
		from, to, isRange := strings.Cut(ports, "-")
		f, err := strconv.ParseUint(from, 10, 16)
		if err != nil {
			return sel, fmt.Errorf("%q: bad port %q", s, from)
		}
		t := f
		if isRange {
			if t, err = strconv.ParseUint(to, 10, 16); err != nil || t < f {
				return sel, fmt.Errorf("%q: bad port range %q", s, ports)
			}
		}
		if sel.Protocol == 0 {
			return sel, fmt.Errorf("%q: ports need a protocol", s)
		}
		sel.PortFrom, sel.PortTo = uint16(f), uint16(t)
	}
	return sel, nil
}

// FormatSelector writes a selector back in the syntax ParseSelector reads.
func FormatSelector(s dataplane.Selector) string {
	out := s.Prefix.String()
	if s.Protocol == 0 {
		return out
	}
	out += "[" + strconv.Itoa(int(s.Protocol))
	if s.PortFrom != 0 || s.PortTo != 65535 {
		out += "/" + strconv.Itoa(int(s.PortFrom))
		if s.PortTo != s.PortFrom {
			out += "-" + strconv.Itoa(int(s.PortTo))
		}
	}
	return out + "]"
}

// validate checks a connection against the engine's other objects and
// fills its parsed forms. Errors name the API field.
func (st *state) validateConnection(c *connection) error {
	s := &c.ConnectionSpec
	if s.Role != RoleInitiator && s.Role != RoleResponder {
		return errf(InvalidArgument, "INVALID_ROLE", "connection.role", "must be ROLE_INITIATOR or ROLE_RESPONDER")
	}
	for _, f := range []struct {
		v, field string
		any      bool
	}{{s.LocalID, "connection.local_id", false}, {s.RemoteID, "connection.remote_id", true}} {
		if f.v == "" {
			continue
		}
		if err := validIdentity(f.v, f.any); err != nil {
			return errf(InvalidArgument, "INVALID_IDENTITY", f.field, "%v", err)
		}
	}
	if err := st.validateAuth(s.LocalAuth, "connection.local_auth", true); err != nil {
		return err
	}
	if err := st.validateAuth(s.RemoteAuth, "connection.remote_auth", false); err != nil {
		return err
	}
	if len(s.IKEProposals) == 0 {
		s.IKEProposals = slices.Clone(DefaultIKEProposals)
	}
	ikeProps, err := transform.ParseProposals(strings.Join(s.IKEProposals, ","), ike.ProtoIKE)
	if err != nil {
		return errf(InvalidArgument, "INVALID_PROPOSAL", "connection.ike_proposals", "%v", err)
	}
	c.ike = ikeProps
	if len(s.ESPProposals) == 0 {
		s.ESPProposals = slices.Clone(DefaultESPProposals)
	}
	if _, err := transform.ParseProposals(strings.Join(s.ESPProposals, ","), ike.ProtoESP); err != nil {
		return errf(InvalidArgument, "INVALID_PROPOSAL", "connection.esp_proposals", "%v", err)
	}
	c.addrs = nil
	for i, a := range s.RemoteAddrs {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return errf(InvalidArgument, "INVALID_ADDRESS", fmt.Sprintf("connection.remote_addresses[%d]", i), "%q is not an IP address", a)
		}
		c.addrs = append(c.addrs, ip.Unmap())
	}
	if s.Role == RoleInitiator && len(c.addrs) == 0 {
		return errf(InvalidArgument, "MISSING_FIELD", "connection.remote_addresses", "an initiator needs at least one remote address")
	}
	for i, n := range s.LocalInterfaces {
		if _, ok := st.interfaces[n]; !ok {
			return errf(InvalidArgument, ReasonInterfaceNotFound, fmt.Sprintf("connection.local_interfaces[%d]", i), "interface %q not found", n)
		}
	}
	if s.RemotePort == 0 {
		s.RemotePort = DefaultIKEPort
	}
	if s.IKERekeyTime == 0 {
		s.IKERekeyTime = DefaultIKERekey
	}
	if s.IKERekeyTime < 0 || s.DPDInterval < 0 || s.DPDTimeout < 0 {
		return errf(InvalidArgument, "INVALID_DURATION", "connection.dpd", "durations must not be negative")
	}
	if s.Pool != "" {
		if s.Role != RoleResponder {
			return errf(InvalidArgument, "POOL_ON_INITIATOR", "connection.pool", "only a responder leases addresses")
		}
		if _, ok := st.pools[s.Pool]; !ok {
			return errf(InvalidArgument, "POOL_NOT_FOUND", "connection.pool", "pool %q not found", s.Pool)
		}
	}
	if s.Multipath && s.Role != RoleInitiator {
		return errf(InvalidArgument, "MULTIPATH_ON_RESPONDER", "connection.multipath", "only an initiator sets up paths; a responder accepts them all")
	}
	if (s.VirtualIP4 || s.VirtualIP6) && s.Role != RoleInitiator {
		return errf(InvalidArgument, "VIRTUAL_IP_ON_RESPONDER", "connection.request_virtual_ip4", "only an initiator requests a virtual IP")
	}
	c.esp, c.ts = nil, nil
	seen := map[string]bool{}
	for i := range s.Children {
		ch := &s.Children[i]
		field := fmt.Sprintf("connection.children[%d]", i)
		if err := ValidID(ch.Name); err != nil {
			return errf(InvalidArgument, "INVALID_CHILD_NAME", field+".name", "%v", err)
		}
		if seen[ch.Name] {
			return errf(InvalidArgument, "DUPLICATE_CHILD", field+".name", "child %q is defined twice", ch.Name)
		}
		seen[ch.Name] = true
		props := ch.ESPProposals
		if len(props) == 0 {
			props = s.ESPProposals
		}
		esp, err := transform.ParseProposals(strings.Join(props, ","), ike.ProtoESP)
		if err != nil {
			return errf(InvalidArgument, "INVALID_PROPOSAL", field+".esp_proposals", "%v", err)
		}
		c.esp = append(c.esp, esp)
		var ts childTS
		if ts.local, err = parseSelectors(ch.LocalTS, field+".local_ts"); err != nil {
			return err
		}
		if ts.remote, err = parseSelectors(ch.RemoteTS, field+".remote_ts"); err != nil {
			return err
		}
		if err := checkFamilies(ts, s, field); err != nil {
			return err
		}
		c.ts = append(c.ts, ts)
		if ch.Mode == 0 {
			ch.Mode = dataplane.Tunnel
		}
		if ch.RekeyTime == 0 {
			ch.RekeyTime = DefaultChildRekey
		}
	}
	return nil
}

func parseSelectors(in []string, field string) ([]dataplane.Selector, error) {
	var out []dataplane.Selector
	for i, s := range in {
		sel, err := ParseSelector(s)
		if err != nil {
			return nil, errf(InvalidArgument, "INVALID_TRAFFIC_SELECTOR", fmt.Sprintf("%s[%d]", field, i), "%v", err)
		}
		out = append(out, sel)
	}
	return out, nil
}

// checkFamilies refuses a child whose local and remote selectors share no
// address family, or that asks for a virtual IP of a family it has no
// selector for (RFC 7296 §2.9: such a child could carry no packet).
func checkFamilies(ts childTS, s *ConnectionSpec, field string) error {
	fams := func(sels []dataplane.Selector) (v4, v6 bool) {
		for _, x := range sels {
			v4 = v4 || x.Prefix.Addr().Is4()
			v6 = v6 || x.Prefix.Addr().Is6()
		}
		return
	}
	l4, l6 := fams(ts.local)
	r4, r6 := fams(ts.remote)
	if len(ts.local) > 0 && len(ts.remote) > 0 && !(l4 && r4) && !(l6 && r6) {
		return errf(InvalidArgument, "SELECTOR_FAMILY_MISMATCH", field+".remote_ts", "local and remote traffic selectors have no address family in common")
	}
	if len(ts.remote) > 0 && ((s.VirtualIP4 && !r4 && !s.VirtualIP6) || (s.VirtualIP6 && !r6 && !s.VirtualIP4)) {
		return errf(InvalidArgument, "SELECTOR_FAMILY_MISMATCH", field+".remote_ts", "the requested virtual IP family has no remote traffic selector")
	}
	return nil
}

func (st *state) validateAuth(a AuthSpec, field string, local bool) error {
	switch {
	case a.PSKSecret != "" && a.cert():
		return errf(InvalidArgument, "INVALID_AUTH", field, "choose psk_secret or certificate, not both")
	case a.PSKSecret != "":
		return st.checkSecretRef(a.PSKSecret, SecretPSK, field+".psk_secret")
	case a.cert() && local:
		if a.CertPEM == "" || a.KeySecret == "" {
			return errf(InvalidArgument, "INVALID_AUTH", field+".certificate", "certificate_pem and key_secret are both required")
		}
		if _, err := parseCertChain(a.CertPEM); err != nil {
			return errf(InvalidArgument, "INVALID_CERTIFICATE", field+".certificate.certificate_pem", "%v", err)
		}
		return st.checkSecretRef(a.KeySecret, SecretPrivateKey, field+".certificate.key_secret")
	case a.cert():
		if a.CAPEM == "" {
			return errf(InvalidArgument, "INVALID_AUTH", field+".certificate.ca_pem", "the CA certificates the peer must chain to are required")
		}
		if _, err := transform.ParseTrustStorePEM([]byte(a.CAPEM)); err != nil {
			return errf(InvalidArgument, "INVALID_CERTIFICATE", field+".certificate.ca_pem", "%v", err)
		}
		return nil
	}
	return errf(InvalidArgument, "MISSING_FIELD", field, "psk_secret or certificate is required")
}

func (st *state) checkSecretRef(id string, typ SecretType, field string) error {
	s, ok := st.secrets[id]
	if !ok {
		return errf(InvalidArgument, "SECRET_NOT_FOUND", field, "secret %q not found", id)
	}
	if s.Type != typ {
		return errf(InvalidArgument, "WRONG_SECRET_TYPE", field, "secret %q is a %s, want %s", id, s.Type, typ)
	}
	return nil
}

func (st *state) connectionInfo(c *connection) ConnectionInfo {
	in := ConnectionInfo{ID: c.ID, ConnectionSpec: c.ConnectionSpec, CreateTime: c.CreateTime, UpdateTime: c.UpdateTime, State: ConnIdle}
	in.IKESAs, in.State = st.connSAs(c.ID)
	return in
}

// CreateConnection adds a connection.
func (e *Engine) CreateConnection(ctx context.Context, id string, spec ConnectionSpec) (ConnectionInfo, error) {
	if err := ValidID(id); err != nil {
		return ConnectionInfo{}, &Error{Code: InvalidArgument, Reason: ReasonInvalidID, Field: "connection_id", Msg: err.Error()}
	}
	return do(ctx, e, func(st *state) (ConnectionInfo, error) {
		if _, ok := st.connections[id]; ok {
			return ConnectionInfo{}, errf(AlreadyExists, "CONNECTION_ALREADY_EXISTS", "connection_id", "connection %q already exists", id)
		}
		now := st.e.cfg.Now()
		c := &connection{ID: id, ConnectionSpec: cloneSpec(spec), CreateTime: now, UpdateTime: now}
		if err := st.validateConnection(c); err != nil {
			return ConnectionInfo{}, err
		}
		st.connections[id] = c
		if err := st.persist(); err != nil {
			delete(st.connections, id)
			return ConnectionInfo{}, err
		}
		st.e.log.Info("connection created", "connection", id, "role", c.Role)
		st.connectionAdded(c)
		return st.connectionInfo(c), nil
	})
}

// GetConnection returns one connection.
func (e *Engine) GetConnection(ctx context.Context, id string) (ConnectionInfo, error) {
	return do(ctx, e, func(st *state) (ConnectionInfo, error) {
		c, err := st.connection(id, "name")
		if err != nil {
			return ConnectionInfo{}, err
		}
		return st.connectionInfo(c), nil
	})
}

// ListConnections pages through connections in id order.
func (e *Engine) ListConnections(ctx context.Context, after string, limit int) ([]ConnectionInfo, bool, error) {
	return listPage(ctx, e, after, limit, func(st *state) []ConnectionInfo {
		var out []ConnectionInfo
		for _, c := range st.connections {
			out = append(out, st.connectionInfo(c))
		}
		slices.SortFunc(out, func(a, b ConnectionInfo) int { return cmpString(a.ID, b.ID) })
		return out
	}, func(c ConnectionInfo) string { return c.ID })
}

// UpdateConnection replaces the named fields (ConnectionFields); running SAs
// keep their parameters until they are rekeyed.
func (e *Engine) UpdateConnection(ctx context.Context, id string, spec ConnectionSpec, fields []string) (ConnectionInfo, error) {
	if len(fields) == 0 {
		fields = ConnectionFields
	}
	for _, f := range fields {
		if !slices.Contains(ConnectionFields, f) {
			return ConnectionInfo{}, errf(InvalidArgument, ReasonInvalidFieldMask, "update_mask", "field %q cannot be updated (allowed: %s)", f, strings.Join(ConnectionFields, ", "))
		}
	}
	return do(ctx, e, func(st *state) (ConnectionInfo, error) {
		c, err := st.connection(id, "connection.name")
		if err != nil {
			return ConnectionInfo{}, err
		}
		next := &connection{ID: c.ID, ConnectionSpec: cloneSpec(c.ConnectionSpec), CreateTime: c.CreateTime}
		src := cloneSpec(spec)
		n := &next.ConnectionSpec
		for _, f := range fields {
			switch f {
			case "local_id":
				n.LocalID = src.LocalID
			case "remote_id":
				n.RemoteID = src.RemoteID
			case "local_auth":
				n.LocalAuth = src.LocalAuth
			case "remote_auth":
				n.RemoteAuth = src.RemoteAuth
			case "ike_proposals":
				n.IKEProposals = src.IKEProposals
			case "esp_proposals":
				n.ESPProposals = src.ESPProposals
			case "remote_addresses":
				n.RemoteAddrs = src.RemoteAddrs
			case "local_interfaces":
				n.LocalInterfaces = src.LocalInterfaces
			case "remote_port":
				n.RemotePort = src.RemotePort
			case "dpd":
				n.DPDInterval, n.DPDTimeout = src.DPDInterval, src.DPDTimeout
			case "ike_rekey_time":
				n.IKERekeyTime = src.IKERekeyTime
			case "children":
				n.Children = src.Children
			case "request_virtual_ip4":
				n.VirtualIP4 = src.VirtualIP4
			case "request_virtual_ip6":
				n.VirtualIP6 = src.VirtualIP6
			case "pool":
				n.Pool = src.Pool
			case "mobike":
				n.MOBIKE = src.MOBIKE
			case "fragmentation":
				n.Fragmentation = src.Fragmentation
			case "multipath":
				n.Multipath = src.Multipath
			}
		}
		if err := st.validateConnection(next); err != nil {
			return ConnectionInfo{}, err
		}
		next.UpdateTime = st.e.cfg.Now()
		st.connections[id] = next
		if err := st.persist(); err != nil {
			st.connections[id] = c
			return ConnectionInfo{}, err
		}
		st.connectionUpdated(c, next)
		return st.connectionInfo(next), nil
	})
}

// DeleteConnection terminates the connection's SAs and removes it.
func (e *Engine) DeleteConnection(ctx context.Context, id string) error {
	_, err := do(ctx, e, func(st *state) (struct{}, error) {
		c, err := st.connection(id, "name")
		if err != nil {
			return struct{}{}, err
		}
		delete(st.connections, id)
		if err := st.persist(); err != nil {
			st.connections[id] = c
			return struct{}{}, err
		}
		st.connectionRemoved(c)
		st.e.log.Info("connection deleted", "connection", id)
		return struct{}{}, nil
	})
	return err
}

func (st *state) connection(id, field string) (*connection, error) {
	c, ok := st.connections[id]
	if !ok {
		return nil, errf(NotFound, "CONNECTION_NOT_FOUND", field, "connection %q not found", id)
	}
	return c, nil
}

func cloneSpec(s ConnectionSpec) ConnectionSpec {
	s.IKEProposals = slices.Clone(s.IKEProposals)
	s.ESPProposals = slices.Clone(s.ESPProposals)
	s.RemoteAddrs = slices.Clone(s.RemoteAddrs)
	s.LocalInterfaces = slices.Clone(s.LocalInterfaces)
	s.Children = slices.Clone(s.Children)
	for i := range s.Children {
		c := &s.Children[i]
		c.LocalTS, c.RemoteTS, c.ESPProposals = slices.Clone(c.LocalTS), slices.Clone(c.RemoteTS), slices.Clone(c.ESPProposals)
	}
	return s
}
