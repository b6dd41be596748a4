package vici

import (
	"context"
	"strconv"
	"time"
)

// Secret is key material handed to charon (a PSK, a private key). It never
// prints its value; Zero wipes it.
type Secret []byte

func (Secret) String() string   { return "[redacted]" }
func (Secret) GoString() string { return "[redacted]" }

// Zero overwrites the secret in place.
func (s Secret) Zero() { clear(s) }

// Version is the answer of the version command.
type Version struct {
	Daemon, Version, Sysname, Release, Machine string
}

// Version asks charon for its version.
func (c *Client) Version(ctx context.Context) (Version, error) {
	m, err := c.Call(ctx, "version", nil)
	if err != nil {
		return Version{}, err
	}
	return Version{
		Daemon: m.Str("daemon"), Version: m.Str("version"), Sysname: m.Str("sysname"),
		Release: m.Str("release"), Machine: m.Str("machine"),
	}, nil
}

// Stats is the parsed answer of the stats command.
type Stats struct {
	Running     string // uptime, human readable
	Since       string
	WorkersIdle int
	Workers     int
	Scheduled   int
	IKESAs      int
	HalfOpen    int
	Plugins     []string
	Raw         *Message
}

// Stats asks charon for its statistics.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	m, err := c.Call(ctx, "stats", nil)
	if err != nil {
		return Stats{}, err
	}
	p := parser{}
	s := Stats{
		Running:     m.Section("uptime").Str("running"),
		Since:       m.Section("uptime").Str("since"),
		Workers:     p.int("workers.total", m.Section("workers").Str("total")),
		WorkersIdle: p.int("workers.idle", m.Section("workers").Str("idle")),
		Scheduled:   p.int("scheduled", m.Str("scheduled")),
		IKESAs:      p.int("ikesas.total", m.Section("ikesas").Str("total")),
		HalfOpen:    p.int("ikesas.half-open", m.Section("ikesas").Str("half-open")),
		Plugins:     m.List("plugins"),
		Raw:         m,
	}
	return s, p.err
}

// timeoutMS converts ctx's deadline into the timeout argument of initiate
// and terminate, so charon answers before the client gives up.
func timeoutMS(ctx context.Context) string {
	dl, ok := ctx.Deadline()
	if !ok {
		return "0" // wait for the result
	}
	ms := time.Until(dl).Milliseconds() - 100
	if ms < 1 {
		ms = 1
	}
	return strconv.FormatInt(ms, 10)
}

func (c *Client) controlCommand(ctx context.Context, cmd string, req *Message) error {
	req.Set("timeout", timeoutMS(ctx)).Set("loglevel", "1")
	var log []string
	resp, err := c.Stream(ctx, cmd, "control-log", req, func(m *Message) {
		log = append(log, m.Str("msg"))
	})
	if err != nil {
		return err
	}
	return checkSuccess(cmd, resp, log)
}

// Initiate starts the CHILD_SA config child (with its IKE_SA). ike names
// the connection to look child up in; it may be empty. Returns when the SA
// is up or failed.
func (c *Client) Initiate(ctx context.Context, child, ike string) error {
	req := NewMessage().Set("child", child)
	if ike != "" {
		req.Set("ike", ike)
	}
	return c.controlCommand(ctx, "initiate", req)
}

// Terminate deletes the IKE_SA(s) of connection ike and waits for it.
func (c *Client) Terminate(ctx context.Context, ike string) error {
	return c.controlCommand(ctx, "terminate", NewMessage().Set("ike", ike))
}

// TerminateID deletes the IKE_SA with the given unique id.
func (c *Client) TerminateID(ctx context.Context, ikeID uint32) error {
	return c.controlCommand(ctx, "terminate", NewMessage().Set("ike_id", strconv.FormatUint(uint64(ikeID), 10)))
}

// TerminateChild deletes the CHILD_SA(s) of CHILD_SA config child.
func (c *Client) TerminateChild(ctx context.Context, child string) error {
	return c.controlCommand(ctx, "terminate", NewMessage().Set("child", child))
}

// Rekey selects what to rekey: exactly one of the fields should be set.
type Rekey struct {
	IKE     string // IKE_SA config name
	Child   string // CHILD_SA config name
	IKEID   uint32 // IKE_SA unique id
	ChildID uint32 // CHILD_SA unique id
	Reauth  bool   // reauthenticate instead of rekeying an IKE_SA
}

// Rekey starts a rekey and returns how many SAs matched. charon answers
// before the exchange completes: wait for the ike-rekey/child-rekey event
// (or compare SPIs) to know it worked.
func (c *Client) Rekey(ctx context.Context, r Rekey) (matches int, err error) {
	req := NewMessage()
	if r.IKE != "" {
		req.Set("ike", r.IKE)
	}
	if r.Child != "" {
		req.Set("child", r.Child)
	}
	if r.IKEID != 0 {
		req.Set("ike_id", strconv.FormatUint(uint64(r.IKEID), 10))
	}
	if r.ChildID != 0 {
		req.Set("child_id", strconv.FormatUint(uint64(r.ChildID), 10))
	}
	if r.Reauth {
		req.Set("reauth", "yes")
	}
	resp, err := c.callOK(ctx, "rekey", req)
	if resp != nil && resp.Str("matches") != "" {
		n, perr := strconv.Atoi(resp.Str("matches"))
		if perr != nil && err == nil {
			err = &FieldError{Field: "matches", Value: resp.Str("matches"), Reason: perr.Error()}
		}
		matches = n
	}
	return matches, err
}

// LoadConn loads (or replaces) connection name; conn holds the swanctl.conf
// keys of the connection (see swanctl.conf(5)), with certificate data
// instead of file names.
func (c *Client) LoadConn(ctx context.Context, name string, conn *Message) error {
	_, err := c.callOK(ctx, "load-conn", NewMessage().SetSection(name, conn))
	return err
}

// UnloadConn unloads connection name.
func (c *Client) UnloadConn(ctx context.Context, name string) error {
	_, err := c.callOK(ctx, "unload-conn", NewMessage().Set("name", name))
	return err
}

// Conns lists the names of the connections loaded over vici.
func (c *Client) Conns(ctx context.Context) ([]string, error) {
	m, err := c.Call(ctx, "get-conns", nil)
	if err != nil {
		return nil, err
	}
	return m.List("conns"), nil
}

// Shared is a shared secret for load-shared.
type Shared struct {
	ID     string   // unique identifier, to replace or unload it later (optional)
	Type   string   // IKE, EAP, XAUTH or NTLM; IKE when empty
	Data   Secret   // the secret
	Owners []string // identities the secret belongs to; none = any
}

// LoadShared loads a shared secret (PSK, EAP or XAuth).
func (c *Client) LoadShared(ctx context.Context, s Shared) error {
	typ := s.Type
	if typ == "" {
		typ = "IKE"
	}
	req := NewMessage()
	if s.ID != "" {
		req.Set("id", s.ID)
	}
	req.Set("type", typ).Set("data", string(s.Data)).SetList("owners", s.Owners...)
	_, err := c.callOK(ctx, "load-shared", req)
	return err
}

// LoadCert loads a certificate. typ is X509 (default); flag is NONE, CA,
// AA or OCSP (NONE when empty). data is PEM or DER.
func (c *Client) LoadCert(ctx context.Context, typ, flag string, data []byte) error {
	if typ == "" {
		typ = "X509"
	}
	if flag == "" {
		flag = "NONE"
	}
	req := NewMessage().Set("type", typ).Set("flag", flag).Set("data", string(data))
	_, err := c.callOK(ctx, "load-cert", req)
	return err
}

// LoadKey loads a private key of type typ (ECDSA, RSA, ED25519, any).
func (c *Client) LoadKey(ctx context.Context, typ string, key Secret) error {
	req := NewMessage().Set("type", typ).Set("data", string(key))
	_, err := c.callOK(ctx, "load-key", req)
	return err
}

// ClearCreds unloads every credential loaded over vici.
func (c *Client) ClearCreds(ctx context.Context) error {
	_, err := c.callOK(ctx, "clear-creds", nil)
	return err
}

// Pool is a virtual IP and attribute pool for load-pool.
type Pool struct {
	Addrs      string              // CIDR or range, e.g. 10.45.0.0/24
	DNS        []string            // DNS servers
	Attributes map[string][]string // other attributes by swanctl name (split_include, ...) or number
}

// LoadPool loads (or updates) pool name.
func (c *Client) LoadPool(ctx context.Context, name string, p Pool) error {
	m := NewMessage().Set("addrs", p.Addrs)
	if len(p.DNS) > 0 {
		m.SetList("dns", p.DNS...)
	}
	for k, v := range p.Attributes {
		m.SetList(k, v...)
	}
	_, err := c.callOK(ctx, "load-pool", NewMessage().SetSection(name, m))
	return err
}

// UnloadPool unloads pool name (fails while leases are online).
func (c *Client) UnloadPool(ctx context.Context, name string) error {
	_, err := c.callOK(ctx, "unload-pool", NewMessage().Set("name", name))
	return err
}

// Lease is one address of a pool.
type Lease struct {
	Address, Identity, Status string
}

// PoolInfo is one pool of get-pools.
type PoolInfo struct {
	Name            string
	Base            string
	Size            int
	Online, Offline int
	Leases          []Lease
}

// Pools lists the loaded pools with their leases.
func (c *Client) Pools(ctx context.Context) ([]PoolInfo, error) {
	m, err := c.Call(ctx, "get-pools", NewMessage().Set("leases", "yes"))
	if err != nil {
		return nil, err
	}
	var out []PoolInfo
	p := parser{}
	for _, name := range m.Keys() {
		s := m.Section(name)
		if s == nil {
			continue
		}
		pi := PoolInfo{
			Name: name, Base: s.Str("base"),
			Size:    p.int(name+".size", s.Str("size")),
			Online:  p.int(name+".online", s.Str("online")),
			Offline: p.int(name+".offline", s.Str("offline")),
		}
		ls := s.Section("leases")
		for _, k := range ls.Keys() {
			l := ls.Section(k)
			pi.Leases = append(pi.Leases, Lease{Address: l.Str("address"), Identity: l.Str("identity"), Status: l.Str("status")})
		}
		out = append(out, pi)
	}
	return out, p.err
}

// ListSAs lists the IKE_SAs (with their CHILD_SAs); ike filters by
// connection name when not empty.
func (c *Client) ListSAs(ctx context.Context, ike string) ([]IKESA, error) {
	req := NewMessage()
	if ike != "" {
		req.Set("ike", ike)
	}
	var raw []*Message
	if _, err := c.Stream(ctx, "list-sas", "list-sa", req, func(m *Message) { raw = append(raw, m) }); err != nil {
		return nil, err
	}
	var out []IKESA
	for _, m := range raw {
		for _, name := range m.Keys() {
			sa, err := ParseIKESA(name, m.Section(name))
			if err != nil {
				return nil, err
			}
			out = append(out, sa)
		}
	}
	return out, nil
}
