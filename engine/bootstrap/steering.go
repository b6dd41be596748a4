package bootstrap

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/mifsec/mifsec/engine"
)

// SteeringRule declares a steering rule. Match holds the match attributes
// the file sets (MatchSet names them, proto spelling); Set names the other
// fields (engine.SteeringFields spelling) the file sets.
type SteeringRule struct {
	Name     string
	Spec     engine.SteeringSpec
	Set      map[string]bool
	MatchSet map[string]bool
	Range    hcl.Range
}

type steeringHCL struct {
	Name          string      `hcl:"name,label"`
	Mode          string      `hcl:"mode"`
	Precedence    *uint32     `hcl:"precedence,optional"`
	ProbeInterval *string     `hcl:"probe_interval,optional"`
	Match         *matchHCL   `hcl:"match,block"`
	Targets       []targetHCL `hcl:"target,block"`
	Body          hcl.Body    `hcl:",body"`
	Range         hcl.Range   `hcl:",def_range"`
}

// matchHCL takes protocol, ports and DSCP as strings so that both
// `protocol = "udp"` and `protocol = 17` read (HCL converts numbers).
type matchHCL struct {
	Sources          *[]string `hcl:"source_prefixes,optional"`
	Destinations     *[]string `hcl:"destination_prefixes,optional"`
	Protocol         *string   `hcl:"protocol,optional"`
	SourcePorts      *string   `hcl:"source_ports,optional"`
	DestinationPorts *string   `hcl:"destination_ports,optional"`
	DSCP             *[]string `hcl:"dscp,optional"`
	Connection       *string   `hcl:"connection,optional"`
	Body             hcl.Body  `hcl:",body"`
	Range            hcl.Range `hcl:",def_range"`
}

type targetHCL struct {
	Interface  *string   `hcl:"interface,optional"`
	AccessType *string   `hcl:"access_type,optional"`
	Weight     *uint32   `hcl:"weight,optional"`
	Body       hcl.Body  `hcl:",body"`
	Range      hcl.Range `hcl:",def_range"`
}

// elemRange is where element i of the list attribute name is written
// (the whole attribute, or fallback, when it is not a list literal).
func elemRange(body hcl.Body, name string, i int, fallback hcl.Range) hcl.Range {
	r := attrRange(body, name, fallback)
	if body == nil {
		return r
	}
	content, _, _ := body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: name}}})
	a, ok := content.Attributes[name]
	if !ok {
		return r
	}
	elems, diags := hcl.ExprList(a.Expr)
	if diags.HasErrors() || i >= len(elems) {
		return r
	}
	return elems[i].Range()
}

// ipProtocols are the IANA protocol numbers known by name.
var ipProtocols = map[string]uint32{"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "sctp": 132, "udplite": 136}

// portProtocol reports whether protocol p has ports (RFC 4301 §4.4.1.1).
func portProtocol(p uint32) bool { return p == 6 || p == 17 || p == 132 || p == 136 }

func parseProtocol(s string) (uint32, error) {
	if n, ok := ipProtocols[strings.ToLower(s)]; ok {
		return n, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("%q is not tcp, udp, icmp, icmpv6, sctp, udplite or a protocol number 0-255", s)
	}
	return uint32(n), nil
}

// parsePorts reads PORT (1-65535) or FIRST-LAST (FIRST <= LAST <= 65535).
func parsePorts(s string) (engine.PortRange, error) {
	first, last, dash := strings.Cut(strings.TrimSpace(s), "-")
	f, err1 := strconv.ParseUint(first, 10, 16)
	l, err2 := f, error(nil)
	if dash {
		l, err2 = strconv.ParseUint(last, 10, 16)
	}
	switch {
	case err1 != nil || err2 != nil || l < f:
		return engine.PortRange{}, fmt.Errorf("%q is not PORT or FIRST-LAST with FIRST <= LAST <= 65535", s)
	case l == 0:
		return engine.PortRange{}, fmt.Errorf("port 0 would match any port; leave the attribute out instead")
	}
	// The engine stores a single port as FIRST = LAST.
	return engine.PortRange{First: uint32(f), Last: uint32(l)}, nil
}

// parseDSCP reads 0-63 or a name of RFC 2474 §4.2.2.1 (csN), RFC 2597 §6
// (afXY) or RFC 3246 (ef).
func parseDSCP(s string) (uint32, error) {
	low := strings.ToLower(s)
	switch {
	case low == "ef":
		return 46, nil
	case len(low) == 3 && strings.HasPrefix(low, "cs") && low[2] >= '0' && low[2] <= '7':
		return uint32(low[2]-'0') << 3, nil
	case len(low) == 4 && strings.HasPrefix(low, "af") && low[2] >= '1' && low[2] <= '4' && low[3] >= '1' && low[3] <= '3':
		return uint32(low[2]-'0')<<3 | uint32(low[3]-'0')<<1, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil || n > 63 {
		return 0, fmt.Errorf("%q is not a DSCP: 0-63, ef, cs0-cs7 or af11-af43", s)
	}
	return uint32(n), nil
}

func parseSteeringMode(s string) (engine.SteeringMode, bool) {
	for m := engine.SteerActiveStandby; m <= engine.SteerSmallestDelay; m++ {
		if m.String() == s {
			return m, true
		}
	}
	return engine.SteerUnspecified, false
}

func (c *checker) steering(in steeringHCL) SteeringRule {
	out := SteeringRule{Name: in.Name, Range: in.Range, Set: map[string]bool{"mode": true}, MatchSet: map[string]bool{}}
	s := &out.Spec
	mode, ok := parseSteeringMode(in.Mode)
	if !ok {
		c.errAt(attrRange(in.Body, "mode", in.Range), "Invalid mode",
			`mode must be "active_standby", "priority", "load_balance" or "smallest_delay".`)
	}
	s.Mode = mode
	if in.Precedence != nil {
		s.Precedence, out.Set["precedence"] = *in.Precedence, true
	}
	if in.ProbeInterval != nil {
		d, err := time.ParseDuration(*in.ProbeInterval)
		if err != nil || d < engine.MinProbeInterval || d > engine.MaxProbeInterval {
			c.errAt(attrRange(in.Body, "probe_interval", in.Range), "Invalid probe_interval",
				fmt.Sprintf("probe_interval: %q is not a duration between %v and %v.", *in.ProbeInterval, engine.MinProbeInterval, engine.MaxProbeInterval))
		}
		s.ProbeInterval, out.Set["probe_interval"] = d, true
	}
	if in.Match != nil {
		s.Match = c.match(in.Match, out.MatchSet)
	}
	if len(in.Targets) > 0 {
		out.Set["targets"] = true
	} else if mode == engine.SteerActiveStandby {
		c.errAt(in.Range, "Missing target", "active_standby needs the active target and its standbys, in order, as target blocks.")
	}
	seen := map[engine.SteeringTarget]hcl.Range{}
	for _, t := range in.Targets {
		st := c.target(t, mode)
		key := engine.SteeringTarget{Interface: st.Interface, AccessType: st.AccessType}
		if prev, dup := seen[key]; dup && (key.Interface != "" || key.AccessType != engine.AccessUnspecified) {
			c.errAt(t.Range, "Duplicate target", fmt.Sprintf("The same target is already named at %s.", prev))
		}
		seen[key] = t.Range
		s.Targets = append(s.Targets, st)
	}
	return out
}

func (c *checker) match(in *matchHCL, set map[string]bool) engine.FlowMatch {
	var m engine.FlowMatch
	prefixes := func(p *[]string, name string) []string {
		if p == nil {
			return nil
		}
		set[name] = true
		for i, x := range *p {
			if _, err := netip.ParsePrefix(x); err == nil {
				continue
			}
			if _, err := netip.ParseAddr(x); err != nil {
				c.errAt(elemRange(in.Body, name, i, in.Range), "Invalid prefix in "+name, fmt.Sprintf("%q is not a prefix (CIDR) or an address.", x))
			}
		}
		if len(*p) == 0 {
			return nil
		}
		return slices.Clone(*p)
	}
	m.Sources = prefixes(in.Sources, "source_prefixes")
	m.Destinations = prefixes(in.Destinations, "destination_prefixes")
	if in.Protocol != nil {
		p, err := parseProtocol(*in.Protocol)
		if err != nil {
			c.errAt(attrRange(in.Body, "protocol", in.Range), "Invalid protocol", err.Error())
		}
		m.Protocol, set["protocol"] = p, true
	}
	ports := func(p *string, name string) engine.PortRange {
		if p == nil {
			return engine.PortRange{}
		}
		set[name] = true
		r := attrRange(in.Body, name, in.Range)
		pr, err := parsePorts(*p)
		if err != nil {
			c.errAt(r, "Invalid "+name, err.Error())
		} else if in.Protocol == nil || !portProtocol(m.Protocol) {
			c.errAt(r, "Ports without a port protocol", name+" needs protocol tcp, udp, sctp or udplite in the same match block (RFC 4301 §4.4.1.1).")
		}
		return pr
	}
	m.SourcePorts = ports(in.SourcePorts, "source_ports")
	m.DestinationPorts = ports(in.DestinationPorts, "destination_ports")
	if in.DSCP != nil {
		set["dscp"] = true
		for i, x := range *in.DSCP {
			d, err := parseDSCP(x)
			if err != nil {
				c.errAt(elemRange(in.Body, "dscp", i, in.Range), "Invalid dscp", err.Error())
			}
			m.DSCP = append(m.DSCP, d)
		}
	}
	if in.Connection != nil {
		if err := engine.ValidID(*in.Connection); err != nil {
			c.errAt(attrRange(in.Body, "connection", in.Range), "Invalid connection", err.Error())
		}
		m.Connection, set["connection"] = *in.Connection, true
	}
	return m
}

func (c *checker) target(in targetHCL, mode engine.SteeringMode) engine.SteeringTarget {
	var t engine.SteeringTarget
	switch {
	case in.Interface != nil && in.AccessType != nil:
		c.errAt(in.Range, "Invalid target", "Name an interface or an access_type, not both.")
	case in.Interface == nil && in.AccessType == nil:
		c.errAt(in.Range, "Invalid target", "A target names an interface or an access_type.")
	case in.Interface != nil:
		if err := engine.ValidID(*in.Interface); err != nil {
			c.errAt(attrRange(in.Body, "interface", in.Range), "Invalid interface", err.Error())
		}
		t.Interface = *in.Interface
	default:
		a, err := engine.ParseAccessType(*in.AccessType)
		if err != nil {
			c.errAt(attrRange(in.Body, "access_type", in.Range), "Invalid access_type", err.Error())
		}
		t.AccessType = a
	}
	switch {
	case mode == engine.SteerLoadBalance && (in.Weight == nil || *in.Weight == 0):
		c.errAt(attrRange(in.Body, "weight", in.Range), "Invalid weight", "load_balance targets need a weight of at least 1.")
	case mode != engine.SteerLoadBalance && in.Weight != nil && mode != engine.SteerUnspecified:
		c.errAt(attrRange(in.Body, "weight", in.Range), "Invalid weight", "Weights are for load_balance only.")
	}
	if in.Weight != nil {
		t.Weight = *in.Weight
	}
	return t
}

// SteeringRules are applied after connections: their match and targets
// name connections and interfaces.
func applySteering(ctx context.Context, e Engine, in SteeringRule) (Result, error) {
	res := Result{Kind: "steering_rule", Name: in.Name}
	cur, err := e.GetSteeringRule(ctx, in.Name)
	if notFound(err) {
		_, err = e.CreateSteeringRule(ctx, in.Name, in.Spec)
		res.Action = Created
		return res, err
	}
	if err != nil {
		return res, err
	}
	want := in.Spec
	// Match attributes the file leaves out keep their running value.
	m, cm := &want.Match, cur.Match
	if !in.MatchSet["source_prefixes"] {
		m.Sources = cm.Sources
	}
	if !in.MatchSet["destination_prefixes"] {
		m.Destinations = cm.Destinations
	}
	if !in.MatchSet["protocol"] {
		m.Protocol = cm.Protocol
	}
	if !in.MatchSet["source_ports"] {
		m.SourcePorts = cm.SourcePorts
	}
	if !in.MatchSet["destination_ports"] {
		m.DestinationPorts = cm.DestinationPorts
	}
	if !in.MatchSet["dscp"] {
		m.DSCP = cm.DSCP
	}
	if !in.MatchSet["connection"] {
		m.Connection = cm.Connection
	}
	w, c := &want, &cur.SteeringSpec
	for _, f := range []struct {
		name      string
		set       bool
		want, cur any
	}{
		{"match", len(in.MatchSet) > 0, matchKey(w.Match), matchKey(c.Match)},
		{"mode", in.Set["mode"], w.Mode, c.Mode},
		{"precedence", in.Set["precedence"], w.Precedence, c.Precedence},
		{"targets", in.Set["targets"], w.Targets, c.Targets},
		{"probe_interval", in.Set["probe_interval"], w.ProbeInterval, c.ProbeInterval},
	} {
		if f.set && !equal(f.want, f.cur) {
			res.Fields = append(res.Fields, f.name)
		}
	}
	return update(res, func() error { _, err := e.UpdateSteeringRule(ctx, in.Name, want, res.Fields); return err })
}

// matchKey is m with empty lists as nil, so [] and an absent list compare
// equal.
func matchKey(m engine.FlowMatch) engine.FlowMatch {
	for _, l := range []*[]string{&m.Sources, &m.Destinations} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	if len(m.DSCP) == 0 {
		m.DSCP = nil
	}
	return m
}
