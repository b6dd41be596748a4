package vici

import (
	"fmt"
	"net/netip"
	"strconv"
)

// FieldError is a field of a charon answer that does not parse.
type FieldError struct {
	Field  string
	Value  string
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("vici: field %s = %q: %s", e.Field, e.Value, e.Reason)
}

// parser collects the first parse error so decoding code stays flat.
type parser struct{ err error }

func (p *parser) fail(field, v, reason string) {
	if p.err == nil {
		p.err = &FieldError{Field: field, Value: v, Reason: reason}
	}
}

// int parses an optional decimal; absent is 0.
func (p *parser) int(field, v string) int {
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		p.fail(field, v, "not a decimal integer")
	}
	return n
}

func (p *parser) uint64(field, v string) uint64 {
	if v == "" {
		return 0
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		p.fail(field, v, "not an unsigned decimal integer")
	}
	return n
}

func (p *parser) hex(field, v string, bits int) uint64 {
	if v == "" {
		return 0
	}
	n, err := strconv.ParseUint(v, 16, bits)
	if err != nil {
		p.fail(field, v, fmt.Sprintf("not a %d-bit hex number", bits))
	}
	return n
}

func (p *parser) bool(v string) bool { return v == "yes" || v == "1" }

func (p *parser) addrPort(field, host, port string) netip.AddrPort {
	if host == "" {
		return netip.AddrPort{}
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		p.fail(field, host, "not an IP address")
		return netip.AddrPort{}
	}
	var pt uint64
	if port != "" {
		pt, err = strconv.ParseUint(port, 10, 16)
		if err != nil {
			p.fail(field+"-port", port, "not a port number")
		}
	}
	return netip.AddrPortFrom(a, uint16(pt))
}

func (p *parser) addrs(field string, l []string) []netip.Addr {
	var out []netip.Addr
	for _, s := range l {
		a, err := netip.ParseAddr(s)
		if err != nil {
			p.fail(field, s, "not an IP address")
			continue
		}
		out = append(out, a)
	}
	return out
}

// IKEState is charon's IKE_SA state name (ike_sa.h ike_sa_state_t).
type IKEState string

const (
	IKECreated     IKEState = "CREATED"
	IKEConnecting  IKEState = "CONNECTING"
	IKEEstablished IKEState = "ESTABLISHED"
	IKEPassive     IKEState = "PASSIVE"
	IKERekeying    IKEState = "REKEYING"
	IKERekeyed     IKEState = "REKEYED"
	IKEDeleting    IKEState = "DELETING"
	IKEDestroying  IKEState = "DESTROYING"
)

// ChildState is charon's CHILD_SA state name (child_sa.h child_sa_state_t).
type ChildState string

const (
	ChildCreated    ChildState = "CREATED"
	ChildRouted     ChildState = "ROUTED"
	ChildInstalling ChildState = "INSTALLING"
	ChildInstalled  ChildState = "INSTALLED"
	ChildUpdating   ChildState = "UPDATING"
	ChildRekeying   ChildState = "REKEYING"
	ChildRekeyed    ChildState = "REKEYED"
	ChildRetrying   ChildState = "RETRYING"
	ChildDeleting   ChildState = "DELETING"
	ChildDeleted    ChildState = "DELETED"
	ChildDestroying ChildState = "DESTROYING"
)

// IKESA is one IKE_SA of list-sas (or of an ike-* event).
type IKESA struct {
	Name                  string // connection name
	UniqueID              uint32
	Version               int
	State                 IKEState
	Local, Remote         netip.AddrPort
	LocalID, RemoteID     string
	Initiator             bool
	InitiatorSPI          uint64
	ResponderSPI          uint64
	NATLocal, NATRemote   bool
	NATFake, NATAny       bool
	EncrAlg               string
	EncrKeysize           int
	IntegAlg, PRFAlg      string
	DHGroup               string
	Established           int // seconds
	RekeyTime, ReauthTime int // seconds until
	LocalVIPs, RemoteVIPs []netip.Addr
	TasksQueued           []string
	TasksActive           []string
	TasksPassive          []string
	Children              []ChildSA
	Raw                   *Message
}

// ChildSA is one CHILD_SA of an IKE_SA.
type ChildSA struct {
	Name                 string // CHILD_SA config name
	UniqueID             uint32
	ReqID                uint32
	State                ChildState
	Mode, Protocol       string
	Encap                bool
	SPIIn, SPIOut        uint32
	EncrAlg              string
	EncrKeysize          int
	IntegAlg, DHGroup    string
	ESN                  bool
	BytesIn, PacketsIn   uint64
	BytesOut, PacketsOut uint64
	RekeyTime, LifeTime  int // seconds until
	InstallTime          int // seconds since
	LocalTS, RemoteTS    []string
	Raw                  *Message
}

// Child returns the first CHILD_SA named name in the given state ("" = any).
func (sa IKESA) Child(name string, state ChildState) (ChildSA, bool) {
	for _, c := range sa.Children {
		if c.Name == name && (state == "" || c.State == state) {
			return c, true
		}
	}
	return ChildSA{}, false
}

// ParseIKESA decodes the section of one IKE_SA named name.
func ParseIKESA(name string, m *Message) (IKESA, error) {
	if m == nil {
		return IKESA{}, &FieldError{Field: name, Reason: "not a section"}
	}
	p := parser{}
	sa := IKESA{
		Name:         name,
		UniqueID:     uint32(p.dec32(name+".uniqueid", m.Str("uniqueid"))),
		Version:      p.int(name+".version", m.Str("version")),
		State:        IKEState(m.Str("state")),
		Local:        p.addrPort(name+".local-host", m.Str("local-host"), m.Str("local-port")),
		Remote:       p.addrPort(name+".remote-host", m.Str("remote-host"), m.Str("remote-port")),
		LocalID:      m.Str("local-id"),
		RemoteID:     m.Str("remote-id"),
		Initiator:    p.bool(m.Str("initiator")),
		InitiatorSPI: p.hex(name+".initiator-spi", m.Str("initiator-spi"), 64),
		ResponderSPI: p.hex(name+".responder-spi", m.Str("responder-spi"), 64),
		NATLocal:     p.bool(m.Str("nat-local")),
		NATRemote:    p.bool(m.Str("nat-remote")),
		NATFake:      p.bool(m.Str("nat-fake")),
		NATAny:       p.bool(m.Str("nat-any")),
		EncrAlg:      m.Str("encr-alg"),
		EncrKeysize:  p.int(name+".encr-keysize", m.Str("encr-keysize")),
		IntegAlg:     m.Str("integ-alg"),
		PRFAlg:       m.Str("prf-alg"),
		DHGroup:      m.Str("dh-group"),
		Established:  p.int(name+".established", m.Str("established")),
		RekeyTime:    p.int(name+".rekey-time", m.Str("rekey-time")),
		ReauthTime:   p.int(name+".reauth-time", m.Str("reauth-time")),
		LocalVIPs:    p.addrs(name+".local-vips", m.List("local-vips")),
		RemoteVIPs:   p.addrs(name+".remote-vips", m.List("remote-vips")),
		TasksQueued:  m.List("tasks-queued"),
		TasksActive:  m.List("tasks-active"),
		TasksPassive: m.List("tasks-passive"),
		Raw:          m,
	}
	children := m.Section("child-sas")
	for _, k := range children.Keys() {
		c := children.Section(k)
		if c == nil {
			p.fail(name+".child-sas."+k, "", "not a section")
			continue
		}
		sa.Children = append(sa.Children, p.child(name+".child-sas."+k, k, c))
	}
	if p.err != nil {
		return IKESA{}, p.err
	}
	return sa, nil
}

// dec32 parses a decimal unique id or reqid.
func (p *parser) dec32(field, v string) uint64 {
	if v == "" {
		return 0
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		p.fail(field, v, "not a 32-bit decimal number")
	}
	return n
}

// ParseChildSA decodes the section of one CHILD_SA stored under key.
func ParseChildSA(key string, m *Message) (ChildSA, error) {
	if m == nil {
		return ChildSA{}, &FieldError{Field: key, Reason: "not a section"}
	}
	p := parser{}
	c := p.child(key, key, m)
	return c, p.err
}

func (p *parser) child(field, key string, m *Message) ChildSA {
	name := m.Str("name") // since 5.3 keys are "<name>-<uniqueid>" with a name field
	if name == "" {
		name = key
	}
	return ChildSA{
		Name:        name,
		UniqueID:    uint32(p.dec32(field+".uniqueid", m.Str("uniqueid"))),
		ReqID:       uint32(p.dec32(field+".reqid", m.Str("reqid"))),
		State:       ChildState(m.Str("state")),
		Mode:        m.Str("mode"),
		Protocol:    m.Str("protocol"),
		Encap:       p.bool(m.Str("encap")),
		SPIIn:       uint32(p.hex(field+".spi-in", m.Str("spi-in"), 32)),
		SPIOut:      uint32(p.hex(field+".spi-out", m.Str("spi-out"), 32)),
		EncrAlg:     m.Str("encr-alg"),
		EncrKeysize: p.int(field+".encr-keysize", m.Str("encr-keysize")),
		IntegAlg:    m.Str("integ-alg"),
		DHGroup:     m.Str("dh-group"),
		ESN:         p.bool(m.Str("esn")),
		BytesIn:     p.uint64(field+".bytes-in", m.Str("bytes-in")),
		PacketsIn:   p.uint64(field+".packets-in", m.Str("packets-in")),
		BytesOut:    p.uint64(field+".bytes-out", m.Str("bytes-out")),
		PacketsOut:  p.uint64(field+".packets-out", m.Str("packets-out")),
		RekeyTime:   p.int(field+".rekey-time", m.Str("rekey-time")),
		LifeTime:    p.int(field+".life-time", m.Str("life-time")),
		InstallTime: p.int(field+".install-time", m.Str("install-time")),
		LocalTS:     m.List("local-ts"),
		RemoteTS:    m.List("remote-ts"),
		Raw:         m,
	}
}
