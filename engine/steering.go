package engine

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Steering rules map flows to paths (DESIGN.md §1 G3-G5). A rule matches
// flows and says, per connection, which of the connection's paths carries
// them. The engine compiles the rules into the table the data plane reads
// on every packet through the Steering hook (steertable.go).

// SteeringMode is how a rule chooses among paths.
type SteeringMode uint8

const (
	SteerUnspecified SteeringMode = iota
	// SteerActiveStandby uses the first target until it fails, then the
	// next; it does not go back by itself (non-revertive).
	SteerActiveStandby
	// SteerPriority always uses the best usable path: by the targets'
	// order when given, else by interface priority (revertive).
	SteerPriority
	// SteerLoadBalance spreads flows over paths by weight; a flow stays on
	// its path while that path is usable.
	SteerLoadBalance
	// SteerSmallestDelay uses the path with the smallest measured RTT.
	SteerSmallestDelay
)

var steerModeNames = [...]string{"unspecified", "active_standby", "priority", "load_balance", "smallest_delay"}

func (m SteeringMode) String() string {
	if int(m) < len(steerModeNames) {
		return steerModeNames[m]
	}
	return fmt.Sprintf("mode(%d)", m)
}

// PortRange is an inclusive range of transport ports; the zero value is any.
type PortRange struct {
	First uint32 `json:"first,omitempty"`
	Last  uint32 `json:"last,omitempty"`
}

func (p PortRange) any() bool { return p.First == 0 && p.Last == 0 }

// FlowMatch selects flows. Empty fields match everything.
type FlowMatch struct {
	Sources          []string  `json:"sources,omitempty"`      // prefixes
	Destinations     []string  `json:"destinations,omitempty"` // prefixes
	Protocol         uint32    `json:"protocol,omitempty"`     // IANA protocol number, 0 = any
	SourcePorts      PortRange `json:"source_ports"`
	DestinationPorts PortRange `json:"destination_ports"`
	DSCP             []uint32  `json:"dscp,omitempty"`       // RFC 2474 codepoints
	Connection       string    `json:"connection,omitempty"` // connection id
}

// SteeringTarget names paths by their local interface or its access type.
type SteeringTarget struct {
	Interface  string     `json:"interface,omitempty"`
	AccessType AccessType `json:"access_type,omitempty"`
	// Weight is the share of flows (SteerLoadBalance only).
	Weight uint32 `json:"weight,omitempty"`
}

// SteeringSpec is the configurable part of a rule.
type SteeringSpec struct {
	Match FlowMatch    `json:"match"`
	Mode  SteeringMode `json:"mode"`
	// Precedence orders rules: lower first; ties by id. The first rule
	// matching a flow decides.
	Precedence uint32           `json:"precedence,omitempty"`
	Targets    []SteeringTarget `json:"targets,omitempty"`
	// ProbeInterval is how often the paths this rule uses are probed
	// (0 = DefaultProbeInterval).
	ProbeInterval time.Duration `json:"probe_interval,omitempty"`
}

// PathRef names a path: connections/{Conn}/paths/{ID}.
type PathRef struct{ Conn, ID string }

// SteeringRule is a rule as the API shows it.
type SteeringRule struct {
	ID string
	SteeringSpec
	// ActivePaths are the paths the rule's flows use now (output only).
	ActivePaths            []PathRef
	CreateTime, UpdateTime time.Time
}

// Steering defaults and bounds.
const (
	DefaultProbeInterval = 300 * time.Millisecond
	MinProbeInterval     = 50 * time.Millisecond
	MaxProbeInterval     = time.Minute
	// probeVerifyTimeout bounds the wait for a fresh probe answer before a
	// steering change or migration moves flows (make-before-break).
	probeVerifyTimeout = 3 * time.Second
)

// SteeringFields are the fields UpdateSteeringRule accepts (proto spelling).
var SteeringFields = []string{"match", "mode", "precedence", "targets", "probe_interval"}

// Reasons of steering errors.
const (
	ReasonSteeringNotFound = "STEERING_RULE_NOT_FOUND"
	ReasonSteeringExists   = "STEERING_RULE_ALREADY_EXISTS"
	ReasonPathNotVerified  = "PATH_NOT_VERIFIED"
)

// steeringRule is the engine's copy with parsed forms and per-connection
// state (the path each connection's flows use now).
type steeringRule struct {
	ID string
	SteeringSpec
	CreateTime, UpdateTime time.Time
	src, dst               []netip.Prefix
	dscp                   uint64 // bit i set: DSCP i matches; 0 = any
	// active: per connection, the path tags in use (first = preferred).
	active map[string][]uint32
	// fresh: the spec just changed through the API, so ACTIVE_STANDBY
	// starts over from its first target.
	fresh bool
}

func (r *steeringRule) probeInterval() time.Duration {
	if r.ProbeInterval == 0 {
		return DefaultProbeInterval
	}
	return r.ProbeInterval
}

// portProtocol reports whether protocol p has ports (RFC 4301 §4.4.1.1).
func portProtocol(p uint32) bool { return p == 6 || p == 17 || p == 132 || p == 136 }

// validateSteering checks spec against the engine's objects and fills the
// parsed forms of r. Errors name the API field.
func (st *state) validateSteering(r *steeringRule) error {
	const f = "steering_rule."
	s := &r.SteeringSpec
	if s.Mode == SteerUnspecified || int(s.Mode) >= len(steerModeNames) {
		return errf(InvalidArgument, "INVALID_STEERING_MODE", f+"mode", "must be one of ACTIVE_STANDBY, PRIORITY, LOAD_BALANCE, SMALLEST_DELAY")
	}
	parse := func(in []string, field string) ([]netip.Prefix, error) {
		var out []netip.Prefix
		for i, x := range in {
			p, err := netip.ParsePrefix(strings.TrimSpace(x))
			if err != nil {
				a, err2 := netip.ParseAddr(strings.TrimSpace(x))
				if err2 != nil {
					return nil, errf(InvalidArgument, "INVALID_PREFIX", fmt.Sprintf("%s[%d]", field, i), "%q is not a prefix or address", x)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			out = append(out, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-(p.Addr().BitLen()-p.Addr().Unmap().BitLen())).Masked())
		}
		return out, nil
	}
	var err error
	if r.src, err = parse(s.Match.Sources, f+"match.source_prefixes"); err != nil {
		return err
	}
	if r.dst, err = parse(s.Match.Destinations, f+"match.destination_prefixes"); err != nil {
		return err
	}
	if s.Match.Protocol > 255 {
		return errf(InvalidArgument, "INVALID_PROTOCOL", f+"match.protocol", "must be an IP protocol number (0-255)")
	}
	for _, pr := range []struct {
		p     PortRange
		field string
	}{{s.Match.SourcePorts, "match.source_ports"}, {s.Match.DestinationPorts, "match.destination_ports"}} {
		if pr.p.any() {
			continue
		}
		if pr.p.Last == 0 {
			pr.p.Last = pr.p.First
		}
		if pr.p.First > 65535 || pr.p.Last > 65535 || pr.p.Last < pr.p.First {
			return errf(InvalidArgument, "INVALID_PORT_RANGE", f+pr.field, "need first <= last <= 65535")
		}
		if !portProtocol(s.Match.Protocol) {
			return errf(InvalidArgument, "PORTS_WITHOUT_PROTOCOL", f+pr.field, "ports need protocol tcp (6), udp (17), sctp (132) or udplite (136)")
		}
	}
	if !s.Match.SourcePorts.any() && s.Match.SourcePorts.Last == 0 {
		s.Match.SourcePorts.Last = s.Match.SourcePorts.First
	}
	if !s.Match.DestinationPorts.any() && s.Match.DestinationPorts.Last == 0 {
		s.Match.DestinationPorts.Last = s.Match.DestinationPorts.First
	}
	r.dscp = 0
	for i, d := range s.Match.DSCP {
		if d > 63 {
			return errf(InvalidArgument, "INVALID_DSCP", fmt.Sprintf("%smatch.dscp[%d]", f, i), "a DSCP is 0-63 (RFC 2474 §3)")
		}
		r.dscp |= 1 << d
	}
	if c := s.Match.Connection; c != "" {
		if _, ok := st.connections[c]; !ok {
			return errf(InvalidArgument, "CONNECTION_NOT_FOUND", f+"match.connection", "connection %q not found", c)
		}
	}
	if (s.Mode == SteerActiveStandby) && len(s.Targets) == 0 {
		return errf(InvalidArgument, "MISSING_FIELD", f+"targets", "ACTIVE_STANDBY needs the active target and its standbys, in order")
	}
	seen := map[SteeringTarget]bool{}
	for i, t := range s.Targets {
		field := fmt.Sprintf("%stargets[%d]", f, i)
		switch {
		case t.Interface != "" && t.AccessType != AccessUnspecified:
			return errf(InvalidArgument, "INVALID_TARGET", field, "name an interface or an access type, not both")
		case t.Interface != "":
			if _, ok := st.interfaces[t.Interface]; !ok {
				return errf(InvalidArgument, ReasonInterfaceNotFound, field+".interface", "interface %q not found", t.Interface)
			}
		case t.AccessType != AccessUnspecified:
			if int(t.AccessType) >= len(accessNames) {
				return errf(InvalidArgument, ReasonInvalidAccessType, field+".access_type", "unknown access type")
			}
		default:
			return errf(InvalidArgument, "INVALID_TARGET", field, "an interface or an access type is required")
		}
		switch {
		case s.Mode == SteerLoadBalance && t.Weight == 0:
			return errf(InvalidArgument, "INVALID_WEIGHT", field+".weight", "LOAD_BALANCE targets need a weight of at least 1")
		case s.Mode != SteerLoadBalance && t.Weight != 0:
			return errf(InvalidArgument, "INVALID_WEIGHT", field+".weight", "weights are for LOAD_BALANCE only")
		}
		key := SteeringTarget{Interface: t.Interface, AccessType: t.AccessType}
		if seen[key] {
			return errf(InvalidArgument, "DUPLICATE_TARGET", field, "target named twice")
		}
		seen[key] = true
	}
	if s.ProbeInterval != 0 && (s.ProbeInterval < MinProbeInterval || s.ProbeInterval > MaxProbeInterval) {
		return errf(InvalidArgument, "INVALID_PROBE_INTERVAL", f+"probe_interval", "must be between %v and %v", MinProbeInterval, MaxProbeInterval)
	}
	return nil
}

func cloneSteering(s SteeringSpec) SteeringSpec {
	s.Match.Sources = slices.Clone(s.Match.Sources)
	s.Match.Destinations = slices.Clone(s.Match.Destinations)
	s.Match.DSCP = slices.Clone(s.Match.DSCP)
	s.Targets = slices.Clone(s.Targets)
	return s
}

func (st *state) steeringView(r *steeringRule) SteeringRule {
	v := SteeringRule{ID: r.ID, SteeringSpec: cloneSteering(r.SteeringSpec), CreateTime: r.CreateTime, UpdateTime: r.UpdateTime}
	for _, conn := range slices.Sorted(maps.Keys(r.active)) {
		for _, tag := range r.active[conn] {
			if p := st.mp.byTag[tag]; p != nil {
				v.ActivePaths = append(v.ActivePaths, PathRef{Conn: p.conn, ID: p.id})
			}
		}
	}
	return v
}

func (st *state) rule(id, field string) (*steeringRule, error) {
	r, ok := st.mp.rules[id]
	if !ok {
		return nil, errf(NotFound, ReasonSteeringNotFound, field, "steering rule %q not found", id)
	}
	return r, nil
}

// steerChange is a rule change waiting for fresh probes on the paths it
// would move flows to (make-before-break).
type steerChange struct {
	done  bool
	rule  SteeringRule
	wait  <-chan struct{}
	since time.Time
}

// CreateSteeringRule adds a rule. Flows it moves go to their new path only
// once that path answered a fresh probe; the call returns after the move,
// or with an error and nothing changed.
func (e *Engine) CreateSteeringRule(ctx context.Context, id string, spec SteeringSpec) (SteeringRule, error) {
	if err := ValidID(id); err != nil {
		return SteeringRule{}, &Error{Code: InvalidArgument, Reason: ReasonInvalidID, Field: "steering_rule_id", Msg: err.Error()}
	}
	return e.changeSteering(ctx, func(st *state) (*steeringRule, error) {
		if _, ok := st.mp.rules[id]; ok {
			return nil, errf(AlreadyExists, ReasonSteeringExists, "steering_rule_id", "steering rule %q already exists", id)
		}
		now := st.e.cfg.Now()
		r := &steeringRule{ID: id, SteeringSpec: cloneSteering(spec), CreateTime: now, UpdateTime: now}
		return r, st.validateSteering(r)
	}, "created")
}

// UpdateSteeringRule changes the named fields (SteeringFields) of a rule,
// make-before-break like CreateSteeringRule.
func (e *Engine) UpdateSteeringRule(ctx context.Context, id string, spec SteeringSpec, fields []string) (SteeringRule, error) {
	if len(fields) == 0 {
		fields = SteeringFields
	}
	for _, f := range fields {
		if !slices.Contains(SteeringFields, f) {
			return SteeringRule{}, errf(InvalidArgument, ReasonInvalidFieldMask, "update_mask", "field %q cannot be updated (allowed: %s)", f, strings.Join(SteeringFields, ", "))
		}
	}
	return e.changeSteering(ctx, func(st *state) (*steeringRule, error) {
		old, err := st.rule(id, "steering_rule.name")
		if err != nil {
			return nil, err
		}
		next := &steeringRule{ID: id, SteeringSpec: cloneSteering(old.SteeringSpec), CreateTime: old.CreateTime, UpdateTime: st.e.cfg.Now()}
		src := cloneSteering(spec)
		for _, f := range fields {
			switch f {
			case "match":
				next.Match = src.Match
			case "mode":
				next.Mode = src.Mode
			case "precedence":
				next.Precedence = src.Precedence
			case "targets":
				next.Targets = src.Targets
			case "probe_interval":
				next.ProbeInterval = src.ProbeInterval
			}
		}
		return next, st.validateSteering(next)
	}, "updated")
}

// changeSteering runs a rule change in two steps: build and validate the
// new rule and probe the paths it would newly use; then, once fresh answers
// came (or the wait ended), commit only if every such path is verified.
func (e *Engine) changeSteering(ctx context.Context, build func(*state) (*steeringRule, error), verb string) (SteeringRule, error) {
	since := e.cfg.Now()
	ch, err := do(ctx, e, func(st *state) (*steerChange, error) {
		r, err := build(st)
		if err != nil {
			return nil, err
		}
		need := st.unverifiedTargets(r, since)
		if len(need) == 0 {
			v, err := st.commitSteering(r, verb)
			return &steerChange{done: true, rule: v}, err
		}
		return &steerChange{wait: st.verify(need), since: since}, nil
	})
	if err != nil || ch.done {
		return ch.ruleOrZero(), err
	}
	timer := time.NewTimer(probeVerifyTimeout)
	defer timer.Stop()
	select {
	case <-ch.wait:
	case <-timer.C:
	case <-ctx.Done():
		return SteeringRule{}, ctxError(ctx)
	}
	return do(ctx, e, func(st *state) (SteeringRule, error) {
		r, err := build(st)
		if err != nil {
			return SteeringRule{}, err
		}
		if need := st.unverifiedTargets(r, since); len(need) > 0 {
			return SteeringRule{}, errf(FailedPrecondition, ReasonPathNotVerified, "", "path %s did not answer a probe: no flow was moved", need[0].name())
		}
		return st.commitSteering(r, verb)
	})
}

func (c *steerChange) ruleOrZero() SteeringRule {
	if c == nil {
		return SteeringRule{}
	}
	return c.rule
}

// unverifiedTargets lists the paths r would move flows to that have not
// answered a probe since `since`.
func (st *state) unverifiedTargets(r *steeringRule, since time.Time) []*path {
	old := st.mp.rules[r.ID]
	var out []*path
	for _, conn := range st.ruleConns(r) {
		prev := st.currentPaths(conn, old)
		for _, tag := range st.choose(r, conn, true) {
			p := st.mp.byTag[tag]
			if p == nil || slices.Contains(prev, tag) || p.lastVerified().After(since) {
				continue
			}
			out = append(out, p)
		}
	}
	return out
}

// currentPaths is where conn's flows under rule r (nil: no rule, the
// default path) go now.
func (st *state) currentPaths(conn string, r *steeringRule) []uint32 {
	if r != nil {
		return r.active[conn]
	}
	if p := st.defaultPath(conn); p != nil {
		return []uint32{p.tag}
	}
	return nil
}

// commitSteering puts r in force: the flows move first, then the
// configuration is written. Writing it (a file with fsync, 1-6 ms) before
// the switch was most of a rule update's time to its first packet on the
// new path; the targets are verified either way. When the write fails the
// previous rule and its choices come back (the flows return, with events).
func (st *state) commitSteering(r *steeringRule, verb string) (SteeringRule, error) {
	old, had := st.mp.rules[r.ID]
	if had {
		// A copy: recompile records the new choices in r.active, and a
		// failed write restores old with its own.
		r.active, r.fresh = maps.Clone(old.active), true
	}
	st.mp.rules[r.ID] = r
	st.recompile("steering_rule_" + verb)
	if err := st.persist(); err != nil {
		if had {
			st.mp.rules[r.ID] = old
		} else {
			delete(st.mp.rules, r.ID)
		}
		st.recompile("persist_failed")
		return SteeringRule{}, err
	}
	st.e.log.Info("steering rule "+verb, "steering_rule", r.ID, "mode", r.Mode)
	v := st.steeringView(r)
	typ := EventSteeringRuleCreated
	if had {
		typ = EventSteeringRuleUpdated
	}
	st.publish(Event{Type: typ, Reason: "api", SteeringRule: &v})
	return v, nil
}

// GetSteeringRule returns one rule.
func (e *Engine) GetSteeringRule(ctx context.Context, id string) (SteeringRule, error) {
	return do(ctx, e, func(st *state) (SteeringRule, error) {
		r, err := st.rule(id, "name")
		if err != nil {
			return SteeringRule{}, err
		}
		return st.steeringView(r), nil
	})
}

// ListSteeringRules pages through rules in id order.
func (e *Engine) ListSteeringRules(ctx context.Context, after string, limit int) ([]SteeringRule, bool, error) {
	return listPage(ctx, e, after, limit, func(st *state) []SteeringRule {
		var out []SteeringRule
		for _, id := range slices.Sorted(maps.Keys(st.mp.rules)) {
			out = append(out, st.steeringView(st.mp.rules[id]))
		}
		return out
	}, func(r SteeringRule) string { return r.ID })
}

// DeleteSteeringRule removes a rule; its flows go back to the default path
// (the connection's first path, or on a gateway the path they came in on).
func (e *Engine) DeleteSteeringRule(ctx context.Context, id string) error {
	_, err := do(ctx, e, func(st *state) (struct{}, error) {
		r, err := st.rule(id, "name")
		if err != nil {
			return struct{}{}, err
		}
		delete(st.mp.rules, id)
		if err := st.persist(); err != nil {
			st.mp.rules[id] = r
			return struct{}{}, err
		}
		st.e.log.Info("steering rule deleted", "steering_rule", id)
		st.recompile("steering_rule_deleted")
		v := st.steeringView(r)
		v.ActivePaths = nil
		st.publish(Event{Type: EventSteeringRuleDeleted, Reason: "api", SteeringRule: &v})
		return struct{}{}, nil
	})
	return err
}

// persistedSteeringRule is a rule on disk.
type persistedSteeringRule struct {
	ID string `json:"id"`
	SteeringSpec
	CreateTime time.Time `json:"create_time"`
	UpdateTime time.Time `json:"update_time"`
}

func (st *state) persistedSteering() []persistedSteeringRule {
	var out []persistedSteeringRule
	for _, id := range slices.Sorted(maps.Keys(st.mp.rules)) {
		r := st.mp.rules[id]
		out = append(out, persistedSteeringRule{ID: id, SteeringSpec: r.SteeringSpec, CreateTime: r.CreateTime, UpdateTime: r.UpdateTime})
	}
	return out
}

func (st *state) restoreSteering(in []persistedSteeringRule) {
	for _, pr := range in {
		r := &steeringRule{ID: pr.ID, SteeringSpec: pr.SteeringSpec, CreateTime: pr.CreateTime, UpdateTime: pr.UpdateTime}
		if ValidID(pr.ID) != nil {
			continue
		}
		if err := st.validateSteering(r); err != nil {
			st.e.log.Warn("skipping invalid persisted steering rule", "steering_rule", pr.ID, "error", err)
			continue
		}
		st.mp.rules[pr.ID] = r
	}
}

// sortedRules is the evaluation order: precedence, then id.
func (st *state) sortedRules() []*steeringRule {
	out := slices.Collect(maps.Values(st.mp.rules))
	slices.SortFunc(out, func(a, b *steeringRule) int {
		if a.Precedence != b.Precedence {
			return int(a.Precedence) - int(b.Precedence)
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// ruleConns lists the connections a rule can steer.
func (st *state) ruleConns(r *steeringRule) []string {
	if r.Match.Connection != "" {
		return []string{r.Match.Connection}
	}
	return sortedKeys(st.connections)
}

// targetIndex is the position of the first target naming p, or -1.
func (st *state) targetIndex(r *steeringRule, p *path) int {
	ifc := st.interfaces[p.iface]
	for i, t := range r.Targets {
		if t.Interface != "" && t.Interface == p.iface {
			return i
		}
		if t.AccessType != AccessUnspecified && ifc != nil && ifc.AccessType == t.AccessType {
			return i
		}
	}
	return -1
}

// choose returns, for conn, the path tags r sends flows to (one; for
// SteerLoadBalance, all that share the flows) and the full preference order
// the data plane falls back along. Unless dryRun, it remembers the choice.
func (st *state) choose(r *steeringRule, conn string, dryRun bool) []uint32 {
	active, _ := st.chooseOrder(r, conn, dryRun)
	return active
}

func (st *state) chooseOrder(r *steeringRule, conn string, dryRun bool) (active, order []uint32) {
	var cands []*path
	for _, p := range st.connPaths(conn) {
		if !p.usable() {
			continue
		}
		if len(r.Targets) > 0 && st.targetIndex(r, p) < 0 {
			continue
		}
		cands = append(cands, p)
	}
	prio := func(p *path) uint32 {
		if ifc := st.interfaces[p.iface]; ifc != nil {
			return ifc.Priority
		}
		return 0
	}
	byTargets := func(a, b *path) int {
		if ia, ib := st.targetIndex(r, a), st.targetIndex(r, b); ia != ib {
			return ia - ib
		}
		if pa, pb := prio(a), prio(b); pa != pb {
			return int(pb) - int(pa)
		}
		return strings.Compare(a.id, b.id)
	}
	var cur uint32
	if prev := r.active[conn]; len(prev) > 0 && !r.fresh {
		cur = prev[0]
	}
	switch r.Mode {
	case SteerActiveStandby:
		slices.SortFunc(cands, byTargets)
		// Non-revertive: stay on the current path while it is usable.
		if i := slices.IndexFunc(cands, func(p *path) bool { return p.tag == cur }); i > 0 {
			c := cands[i]
			cands = append([]*path{c}, slices.Delete(cands, i, i+1)...)
		}
	case SteerPriority, SteerLoadBalance:
		slices.SortFunc(cands, byTargets)
	case SteerSmallestDelay:
		slices.SortFunc(cands, func(a, b *path) int {
			if a.rtt() != b.rtt() {
				return int(a.rtt() - b.rtt())
			}
			return strings.Compare(a.id, b.id)
		})
		// Hysteresis: leave the current path only for one at least 10%
		// faster, so that measurement noise does not move flows back and forth.
		if i := slices.IndexFunc(cands, func(p *path) bool { return p.tag == cur }); i > 0 {
			c := cands[i]
			if cands[0].rtt() > c.rtt()-c.rtt()/10 {
				cands = append([]*path{c}, slices.Delete(cands, i, i+1)...)
			}
		}
	}
	order = make([]uint32, len(cands))
	for i, p := range cands {
		order[i] = p.tag
	}
	active = order
	if r.Mode != SteerLoadBalance && len(order) > 1 {
		active = order[:1:1]
	}
	if !dryRun {
		if r.active == nil {
			r.active = map[string][]uint32{}
		}
		if len(active) == 0 {
			delete(r.active, conn)
		} else {
			r.active[conn] = active
		}
	}
	return active, order
}

// weights of a load-balancing choice, in the order of tags.
func (st *state) weights(r *steeringRule, tags []uint32) []float64 {
	w := make([]float64, len(tags))
	for i, tag := range tags {
		w[i] = 1
		if p := st.mp.byTag[tag]; p != nil {
			if j := st.targetIndex(r, p); j >= 0 {
				w[i] = float64(r.Targets[j].Weight)
			}
		}
	}
	return w
}
