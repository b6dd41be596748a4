// Package bootstrap reads mifsecd's configuration file (HCL) and applies it
// at start through the engine methods the API uses (STYLE.md, "one code
// path changes state"): CreateInterface, CreateSecret, CreatePool,
// CreateConnection, CreateSteeringRule, and their Update twins.
//
// Semantics, per object, in the order interfaces, secrets, pools,
// connections, steering rules (each may refer to the ones before):
//   - absent from the engine: created;
//   - present, and every attribute the file sets equals the running value:
//     left alone (attributes the file leaves out keep the running value);
//   - present with a different value: updated, only the fields that differ
//     (the file wins for what it states);
//   - a secret that exists is left alone (its value cannot be read back);
//     one of another type is an error;
//   - objects the file does not name are never deleted.
//
// The whole file is parsed, checked and its referenced files read before
// any change; errors carry file, line and column.
//
// It imports the engine and HCL, never gen/, server/ or grpc.
package bootstrap

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"

	"github.com/mifsec/mifsec/engine"
	"github.com/mifsec/mifsec/engine/dataplane"
)

// File is a parsed, checked configuration file.
type File struct {
	Interfaces  []Interface
	Secrets     []Secret
	Pools       []Pool
	Connections []Connection
	// SteeringRules are applied after connections.
	SteeringRules []SteeringRule
}

// Interface declares an interface. Nil fields are unset.
type Interface struct {
	Name         string
	Link         *string
	AccessType   *engine.AccessType
	Priority     *uint32
	Metered      *bool
	AllowMissing bool
	Range        hcl.Range
}

// Secret declares a secret read from a file.
type Secret struct {
	Name  string
	Type  engine.SecretType
	Value Value
	Range hcl.Range
}

// Value is secret material: it never prints and is zeroed by Zero.
type Value []byte

func (Value) String() string   { return "[redacted]" }
func (Value) GoString() string { return "[redacted]" }

// Pool declares an address pool.
type Pool struct {
	Name               string
	Ranges, DNS, PCSCF *[]string
	Range              hcl.Range
}

// Connection declares a connection; Set names the fields (engine
// ConnectionFields spelling) the file sets.
type Connection struct {
	Name string
	Spec engine.ConnectionSpec
	Set  map[string]bool
	// ChildSet[i] names the attributes child i sets.
	ChildSet []map[string]bool
	Range    hcl.Range
}

// Zero wipes every secret value.
func (f *File) Zero() {
	for i := range f.Secrets {
		clear(f.Secrets[i].Value)
		f.Secrets[i].Value = nil
	}
}

// The HCL schema.
type fileHCL struct {
	Interfaces  []interfaceHCL  `hcl:"interface,block"`
	Secrets     []secretHCL     `hcl:"secret,block"`
	Pools       []poolHCL       `hcl:"pool,block"`
	Connections []connectionHCL `hcl:"connection,block"`
	Steering    []steeringHCL   `hcl:"steering_rule,block"`
}

type interfaceHCL struct {
	Name         string    `hcl:"name,label"`
	Link         *string   `hcl:"link,optional"`
	AccessType   *string   `hcl:"access_type,optional"`
	Priority     *uint32   `hcl:"priority,optional"`
	Metered      *bool     `hcl:"metered,optional"`
	AllowMissing *bool     `hcl:"allow_missing,optional"`
	Body         hcl.Body  `hcl:",body"`
	Range        hcl.Range `hcl:",def_range"`
}

type secretHCL struct {
	Name  string    `hcl:"name,label"`
	Type  string    `hcl:"type"`
	File  string    `hcl:"file"`
	Body  hcl.Body  `hcl:",body"`
	Range hcl.Range `hcl:",def_range"`
}

type poolHCL struct {
	Name   string    `hcl:"name,label"`
	Ranges *[]string `hcl:"ranges,optional"`
	DNS    *[]string `hcl:"dns_servers,optional"`
	PCSCF  *[]string `hcl:"pcscf_servers,optional"`
	Range  hcl.Range `hcl:",def_range"`
}

type authHCL struct {
	PSKSecret *string  `hcl:"psk_secret,optional"`
	CertFile  *string  `hcl:"cert_file,optional"`
	KeySecret *string  `hcl:"key_secret,optional"`
	CAFile    *string  `hcl:"ca_file,optional"`
	Body      hcl.Body `hcl:",body"`
}

type childHCL struct {
	Name         string    `hcl:"name,label"`
	LocalTS      *[]string `hcl:"local_ts,optional"`
	RemoteTS     *[]string `hcl:"remote_ts,optional"`
	ESPProposals *[]string `hcl:"esp_proposals,optional"`
	Mode         *string   `hcl:"mode,optional"`
	StartAction  *string   `hcl:"start_action,optional"`
	RekeyTime    *string   `hcl:"rekey_time,optional"`
	RekeyBytes   *uint64   `hcl:"rekey_bytes,optional"`
	RekeyPackets *uint64   `hcl:"rekey_packets,optional"`
	Body         hcl.Body  `hcl:",body"`
}

type connectionHCL struct {
	Name            string     `hcl:"name,label"`
	Role            string     `hcl:"role"`
	LocalID         *string    `hcl:"local_id,optional"`
	RemoteID        *string    `hcl:"remote_id,optional"`
	LocalAuth       *authHCL   `hcl:"local_auth,block"`
	RemoteAuth      *authHCL   `hcl:"remote_auth,block"`
	IKEProposals    *[]string  `hcl:"ike_proposals,optional"`
	ESPProposals    *[]string  `hcl:"esp_proposals,optional"`
	RemoteAddresses *[]string  `hcl:"remote_addresses,optional"`
	LocalInterfaces *[]string  `hcl:"local_interfaces,optional"`
	RemotePort      *uint16    `hcl:"remote_port,optional"`
	DPDInterval     *string    `hcl:"dpd_interval,optional"`
	DPDTimeout      *string    `hcl:"dpd_timeout,optional"`
	IKERekeyTime    *string    `hcl:"ike_rekey_time,optional"`
	VirtualIP4      *bool      `hcl:"request_virtual_ip4,optional"`
	VirtualIP6      *bool      `hcl:"request_virtual_ip6,optional"`
	Pool            *string    `hcl:"pool,optional"`
	MOBIKE          *bool      `hcl:"mobike,optional"`
	Fragmentation   *bool      `hcl:"fragmentation,optional"`
	Multipath       *bool      `hcl:"multipath,optional"`
	Children        []childHCL `hcl:"child,block"`
	Body            hcl.Body   `hcl:",body"`
	Range           hcl.Range  `hcl:",def_range"`
}

// Load reads and checks the file at path. Relative file references are
// resolved against the file's directory. The error is hcl.Diagnostics,
// each with file, line and column.
func Load(path string) (*File, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(src, path, filepath.Dir(path))
}

// Parse checks src, named filename in diagnostics, reading referenced
// files relative to dir.
func Parse(src []byte, filename, dir string) (*File, error) {
	hf, diags := hclparse.NewParser().ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, diags
	}
	var raw fileHCL
	if diags := gohcl.DecodeBody(hf.Body, nil, &raw); diags.HasErrors() {
		return nil, diags
	}
	c := &checker{dir: dir}
	f := &File{}
	seen := map[string]hcl.Range{}
	dup := func(kind, name string, r hcl.Range) {
		key := kind + "/" + name
		if prev, ok := seen[key]; ok {
			c.errAt(r, fmt.Sprintf("Duplicate %s", kind), fmt.Sprintf("%s %q is already declared at %s.", kind, name, prev))
		}
		seen[key] = r
		if err := engine.ValidID(name); err != nil {
			c.errAt(r, fmt.Sprintf("Invalid %s name", kind), err.Error())
		}
	}
	for _, in := range raw.Interfaces {
		dup("interface", in.Name, in.Range)
		f.Interfaces = append(f.Interfaces, c.iface(in))
	}
	for _, in := range raw.Secrets {
		dup("secret", in.Name, in.Range)
		f.Secrets = append(f.Secrets, c.secret(in))
	}
	for _, in := range raw.Pools {
		dup("pool", in.Name, in.Range)
		f.Pools = append(f.Pools, Pool{Name: in.Name, Ranges: in.Ranges, DNS: in.DNS, PCSCF: in.PCSCF, Range: in.Range})
		c.addrs(in.DNS, in.Range, "dns_servers")
		c.addrs(in.PCSCF, in.Range, "pcscf_servers")
	}
	for _, in := range raw.Connections {
		dup("connection", in.Name, in.Range)
		f.Connections = append(f.Connections, c.connection(in))
	}
	for _, in := range raw.Steering {
		dup("steering_rule", in.Name, in.Range)
		f.SteeringRules = append(f.SteeringRules, c.steering(in))
	}
	if c.diags.HasErrors() {
		f.Zero()
		return nil, c.diags
	}
	return f, nil
}

type checker struct {
	dir   string
	diags hcl.Diagnostics
}

func (c *checker) errAt(r hcl.Range, summary, detail string) {
	c.diags = append(c.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: r.Ptr()})
}

// attrRange is where attribute name is written in body (or the fallback).
func attrRange(body hcl.Body, name string, fallback hcl.Range) hcl.Range {
	if body == nil {
		return fallback
	}
	content, _, _ := body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: name}}})
	if a, ok := content.Attributes[name]; ok {
		return a.Expr.Range()
	}
	return fallback
}

func (c *checker) iface(in interfaceHCL) Interface {
	out := Interface{Name: in.Name, Link: in.Link, Priority: in.Priority, Metered: in.Metered, Range: in.Range}
	if in.AllowMissing != nil {
		out.AllowMissing = *in.AllowMissing
	}
	if in.AccessType != nil {
		a, err := engine.ParseAccessType(*in.AccessType)
		if err != nil {
			c.errAt(attrRange(in.Body, "access_type", in.Range), "Invalid access_type", err.Error())
		}
		out.AccessType = &a
	}
	return out
}

var secretTypes = map[string]engine.SecretType{"psk": engine.SecretPSK, "private_key": engine.SecretPrivateKey}

func (c *checker) secret(in secretHCL) Secret {
	out := Secret{Name: in.Name, Range: in.Range}
	t, ok := secretTypes[in.Type]
	if !ok {
		c.errAt(attrRange(in.Body, "type", in.Range), "Invalid secret type", `type must be "psk" or "private_key".`)
	}
	out.Type = t
	p := in.File
	if !filepath.IsAbs(p) {
		p = filepath.Join(c.dir, p)
	}
	v, err := os.ReadFile(p)
	if err != nil {
		c.errAt(attrRange(in.Body, "file", in.Range), "Cannot read secret file", err.Error())
		return out
	}
	if len(v) == 0 {
		c.errAt(attrRange(in.Body, "file", in.Range), "Empty secret file", p+" is empty.")
	}
	out.Value = v
	return out
}

func (c *checker) addrs(list *[]string, r hcl.Range, field string) {
	if list == nil {
		return
	}
	for _, s := range *list {
		if _, err := netip.ParseAddr(s); err != nil {
			c.errAt(r, "Invalid address in "+field, fmt.Sprintf("%q is not an IP address.", s))
		}
	}
}

func (c *checker) duration(s *string, body hcl.Body, name string, r hcl.Range) time.Duration {
	if s == nil {
		return 0
	}
	d, err := time.ParseDuration(*s)
	if err != nil || d < 0 {
		c.errAt(attrRange(body, name, r), "Invalid duration", fmt.Sprintf("%s: %q is not a duration like \"30s\" or \"4h\".", name, *s))
	}
	return d
}

func (c *checker) readFile(p *string, body hcl.Body, name string, r hcl.Range) string {
	if p == nil {
		return ""
	}
	path := *p
	if !filepath.IsAbs(path) {
		path = filepath.Join(c.dir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		c.errAt(attrRange(body, name, r), "Cannot read "+name, err.Error())
	}
	return string(b)
}

func (c *checker) auth(in *authHCL, r hcl.Range) engine.AuthSpec {
	if in == nil {
		return engine.AuthSpec{}
	}
	var a engine.AuthSpec
	if in.PSKSecret != nil {
		a.PSKSecret = *in.PSKSecret
	}
	if in.KeySecret != nil {
		a.KeySecret = *in.KeySecret
	}
	a.CertPEM = c.readFile(in.CertFile, in.Body, "cert_file", r)
	a.CAPEM = c.readFile(in.CAFile, in.Body, "ca_file", r)
	return a
}

var roles = map[string]engine.Role{"initiator": engine.RoleInitiator, "responder": engine.RoleResponder}
var modes = map[string]dataplane.Mode{"tunnel": dataplane.Tunnel, "transport": dataplane.Transport}
var startActions = map[string]engine.StartAction{"none": engine.StartNone, "start": engine.StartStart, "trap": engine.StartTrap}

func (c *checker) connection(in connectionHCL) Connection {
	out := Connection{Name: in.Name, Range: in.Range, Set: map[string]bool{}}
	s := &out.Spec
	role, ok := roles[in.Role]
	if !ok {
		c.errAt(attrRange(in.Body, "role", in.Range), "Invalid role", `role must be "initiator" or "responder".`)
	}
	s.Role = role
	str := func(p *string, dst *string, field string) {
		if p != nil {
			*dst, out.Set[field] = *p, true
		}
	}
	list := func(p *[]string, dst *[]string, field string) {
		if p != nil {
			*dst, out.Set[field] = *p, true
		}
	}
	flag := func(p *bool, dst *bool, field string) {
		if p != nil {
			*dst, out.Set[field] = *p, true
		}
	}
	str(in.LocalID, &s.LocalID, "local_id")
	str(in.RemoteID, &s.RemoteID, "remote_id")
	str(in.Pool, &s.Pool, "pool")
	list(in.IKEProposals, &s.IKEProposals, "ike_proposals")
	list(in.ESPProposals, &s.ESPProposals, "esp_proposals")
	list(in.RemoteAddresses, &s.RemoteAddrs, "remote_addresses")
	list(in.LocalInterfaces, &s.LocalInterfaces, "local_interfaces")
	flag(in.VirtualIP4, &s.VirtualIP4, "request_virtual_ip4")
	flag(in.VirtualIP6, &s.VirtualIP6, "request_virtual_ip6")
	flag(in.MOBIKE, &s.MOBIKE, "mobike")
	flag(in.Fragmentation, &s.Fragmentation, "fragmentation")
	flag(in.Multipath, &s.Multipath, "multipath")
	if in.RemotePort != nil {
		s.RemotePort, out.Set["remote_port"] = *in.RemotePort, true
	}
	if in.LocalAuth != nil {
		s.LocalAuth, out.Set["local_auth"] = c.auth(in.LocalAuth, in.Range), true
	}
	if in.RemoteAuth != nil {
		s.RemoteAuth, out.Set["remote_auth"] = c.auth(in.RemoteAuth, in.Range), true
	}
	if in.DPDInterval != nil || in.DPDTimeout != nil {
		out.Set["dpd"] = true
	}
	s.DPDInterval = c.duration(in.DPDInterval, in.Body, "dpd_interval", in.Range)
	s.DPDTimeout = c.duration(in.DPDTimeout, in.Body, "dpd_timeout", in.Range)
	if in.IKERekeyTime != nil {
		s.IKERekeyTime, out.Set["ike_rekey_time"] = c.duration(in.IKERekeyTime, in.Body, "ike_rekey_time", in.Range), true
	}
	if len(in.Children) > 0 {
		out.Set["children"] = true
	}
	for _, ch := range in.Children {
		set := map[string]bool{}
		cs := engine.ChildSpec{Name: ch.Name}
		if ch.LocalTS != nil {
			cs.LocalTS, set["local_ts"] = *ch.LocalTS, true
		}
		if ch.RemoteTS != nil {
			cs.RemoteTS, set["remote_ts"] = *ch.RemoteTS, true
		}
		if ch.ESPProposals != nil {
			cs.ESPProposals, set["esp_proposals"] = *ch.ESPProposals, true
		}
		if ch.Mode != nil {
			m, ok := modes[*ch.Mode]
			if !ok {
				c.errAt(attrRange(ch.Body, "mode", in.Range), "Invalid mode", `mode must be "tunnel" or "transport".`)
			}
			cs.Mode, set["mode"] = m, true
		}
		if ch.StartAction != nil {
			a, ok := startActions[*ch.StartAction]
			if !ok {
				c.errAt(attrRange(ch.Body, "start_action", in.Range), "Invalid start_action", `start_action must be "none", "start" or "trap".`)
			}
			cs.StartAction, set["start_action"] = a, true
		}
		if ch.RekeyTime != nil {
			cs.RekeyTime, set["rekey_time"] = c.duration(ch.RekeyTime, ch.Body, "rekey_time", in.Range), true
		}
		if ch.RekeyBytes != nil {
			cs.RekeyBytes, set["rekey_bytes"] = *ch.RekeyBytes, true
		}
		if ch.RekeyPackets != nil {
			cs.RekeyPackets, set["rekey_packets"] = *ch.RekeyPackets, true
		}
		s.Children = append(s.Children, cs)
		out.ChildSet = append(out.ChildSet, set)
	}
	return out
}
