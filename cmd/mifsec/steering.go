package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/mifsec/mifsec/client"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// steeringRules is the collection of SteeringRule names (`steeringRules/{id}`).
const steeringRules client.Collection = "steeringRules"

// steeringFlags are the flags of `steering add` and `update`.
type steeringFlags struct {
	mode          mifsecv1.SteeringMode
	precedence    uint32
	targets       []string
	probeInterval time.Duration

	src, dst   []string
	protocol   string
	sport      string
	dport      string
	dscp       []string
	connection string
}

// matchFlags set fields of the rule's FlowMatch; they all land in the one
// update_mask path `match`.
var matchFlags = []string{"src", "dst", "protocol", "sport", "dport", "dscp", "connection"}

// steeringFields maps the other flags to their update_mask paths.
var steeringFields = []struct{ flag, path string }{
	{"mode", "mode"},
	{"precedence", "precedence"},
	{"target", "targets"},
	{"probe-interval", "probe_interval"},
}

const steeringTargetSyntax = `Targets (--target, repeatable, in preference order):
  ID | interfaces/ID     an interface
  access=TYPE           every interface of an access type (ran, wlan, wired, ...)
  ...,weight=N          load-balance share of the target (at least 1)`

func (v *steeringFlags) register(cmd *cobra.Command, a *app) {
	fs := cmd.Flags()
	fs.Var(newKebabEnumFlag(&v.mode), "mode", "`MODE`: "+strings.Join(kebabChoices[mifsecv1.SteeringMode](), "|"))
	fs.Uint32Var(&v.precedence, "precedence", 0, "rules are tried by increasing precedence; the first match decides")
	fs.StringArrayVar(&v.targets, "target", nil, "`TARGET` in preference order: ID, access=TYPE, with ,weight=N for load-balance")
	fs.DurationVar(&v.probeInterval, "probe-interval", 0, "how often the rule's paths are probed (0: 300ms)")
	fs.StringSliceVar(&v.src, "src", nil, "match source `PREFIX`es of inner packets")
	fs.StringSliceVar(&v.dst, "dst", nil, "match destination `PREFIX`es")
	fs.StringVar(&v.protocol, "protocol", "", "match IP `PROTOCOL`: tcp, udp, icmp, icmpv6, sctp or a number (any: 0)")
	fs.StringVar(&v.sport, "sport", "", "match source `PORT` or FIRST-LAST")
	fs.StringVar(&v.dport, "dport", "", "match destination `PORT` or FIRST-LAST")
	fs.StringSliceVar(&v.dscp, "dscp", nil, "match DSCP `CODEPOINT`s: 0-63 or ef, csN, afXY")
	fs.StringVar(&v.connection, "connection", "", "match only flows of this `CONNECTION`")
	_ = cmd.RegisterFlagCompletionFunc("mode", cobra.FixedCompletions(kebabChoices[mifsecv1.SteeringMode](), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("protocol", cobra.FixedCompletions([]string{"tcp", "udp", "icmp", "icmpv6", "sctp"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("connection", a.completeConnectionIDs(false))
}

// ipProtocols are the IANA protocol numbers the --protocol flag knows by name.
var ipProtocols = map[string]uint32{"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "sctp": 132}

func parseProtocol(s string) (uint32, error) {
	if n, ok := ipProtocols[strings.ToLower(s)]; ok {
		return n, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("--protocol %q: want tcp, udp, icmp, icmpv6, sctp or 0-255", s)
	}
	return uint32(n), nil
}

// parsePorts parses PORT or FIRST-LAST; "" means any (nil).
func parsePorts(flag, s string) (*mifsecv1.PortRange, error) {
	if s == "" {
		return nil, nil
	}
	first, last, dash := strings.Cut(s, "-")
	f, err1 := strconv.ParseUint(first, 10, 16)
	l, err2 := f, error(nil)
	if dash {
		l, err2 = strconv.ParseUint(last, 10, 16)
	}
	if err1 != nil || err2 != nil || l < f {
		return nil, fmt.Errorf("--%s %q: want PORT or FIRST-LAST with FIRST <= LAST <= 65535", flag, s)
	}
	r := &mifsecv1.PortRange{First: uint32(f)}
	if dash && l != f {
		r.Last = uint32(l)
	}
	return r, nil
}

// parseDSCP accepts 0-63 or the names of RFC 2474 (csN), RFC 2597 (afXY)
// and RFC 3246 (ef).
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
		return 0, fmt.Errorf("--dscp %q: want 0-63, ef, cs0-cs7 or af11-af43", s)
	}
	return uint32(n), nil
}

// parseTarget parses one --target (see steeringTargetSyntax).
func parseTarget(s string) (*mifsecv1.SteeringTarget, error) {
	parts := strings.Split(s, ",")
	t := &mifsecv1.SteeringTarget{}
	if typ, ok := strings.CutPrefix(parts[0], "access="); ok {
		at, err := parseEnum[mifsecv1.AccessType](typ)
		if err != nil {
			return nil, err
		}
		t.Target = &mifsecv1.SteeringTarget_AccessType{AccessType: at}
	} else {
		name, err := client.Interfaces.Name(strings.TrimPrefix(parts[0], "interface="))
		if err != nil {
			return nil, err
		}
		t.Target = &mifsecv1.SteeringTarget_Interface{Interface: name}
	}
	for _, p := range parts[1:] {
		w, ok := strings.CutPrefix(p, "weight=")
		if !ok || t.Weight != 0 {
			return nil, fmt.Errorf("%q: only weight=N may follow the target", p)
		}
		n, err := strconv.ParseUint(w, 10, 32)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("weight %q: want a whole number of at least 1", w)
		}
		t.Weight = uint32(n)
	}
	return t, nil
}

// applyMatch overrides m's fields with the match flags set on fs.
func (v *steeringFlags) applyMatch(fs *pflag.FlagSet, m *mifsecv1.FlowMatch) error {
	if fs.Changed("src") {
		m.SourcePrefixes = v.src
	}
	if fs.Changed("dst") {
		m.DestinationPrefixes = v.dst
	}
	if fs.Changed("protocol") {
		p, err := parseProtocol(v.protocol)
		if err != nil {
			return err
		}
		m.Protocol = p
	}
	var err error
	if fs.Changed("sport") {
		if m.SourcePorts, err = parsePorts("sport", v.sport); err != nil {
			return err
		}
	}
	if fs.Changed("dport") {
		if m.DestinationPorts, err = parsePorts("dport", v.dport); err != nil {
			return err
		}
	}
	if fs.Changed("dscp") {
		m.Dscp = nil
		for _, d := range v.dscp {
			n, err := parseDSCP(d)
			if err != nil {
				return err
			}
			m.Dscp = append(m.Dscp, n)
		}
	}
	if fs.Changed("connection") {
		m.Connection = ""
		if v.connection != "" {
			name, err := client.Connections.Name(v.connection)
			if err != nil {
				return err
			}
			m.Connection = name
		}
	}
	return nil
}

// applyRule sets the rule's non-match fields from the flags set on fs and
// returns their update_mask paths.
func (v *steeringFlags) applyRule(fs *pflag.FlagSet, r *mifsecv1.SteeringRule) ([]string, error) {
	var paths []string
	for _, f := range steeringFields {
		if fs.Changed(f.flag) {
			paths = append(paths, f.path)
		}
	}
	r.Mode, r.Precedence = v.mode, v.precedence
	for _, s := range v.targets {
		t, err := parseTarget(s)
		if err != nil {
			return nil, fmt.Errorf("--target %q: %w", s, err)
		}
		r.Targets = append(r.Targets, t)
	}
	if fs.Changed("probe-interval") {
		if v.probeInterval < 0 {
			return nil, fmt.Errorf("--probe-interval %v: must not be negative", v.probeInterval)
		}
		r.ProbeInterval = durationpb.New(v.probeInterval)
	}
	return paths, nil
}

func matchChanged(fs *pflag.FlagSet) bool {
	for _, f := range matchFlags {
		if fs.Changed(f) {
			return true
		}
	}
	return false
}

// buildSteeringCreateRequest turns `steering add ID` into a request.
func buildSteeringCreateRequest(idArg string, fs *pflag.FlagSet, v *steeringFlags) (*mifsecv1.CreateSteeringRuleRequest, error) {
	id, err := steeringRules.ID(idArg)
	if err != nil {
		return nil, err
	}
	r := &mifsecv1.SteeringRule{}
	if _, err := v.applyRule(fs, r); err != nil {
		return nil, asUsage(err)
	}
	if matchChanged(fs) {
		r.Match = &mifsecv1.FlowMatch{}
		if err := v.applyMatch(fs, r.Match); err != nil {
			return nil, asUsage(err)
		}
	}
	return &mifsecv1.CreateSteeringRuleRequest{SteeringRuleId: id, SteeringRule: r}, nil
}

// buildSteeringUpdateRequest turns `steering update ID` into a request.
// The match flags change single fields of the one `match` field, so when
// any is given, current supplies the rest of the match (read-modify-write).
func buildSteeringUpdateRequest(idArg string, fs *pflag.FlagSet, v *steeringFlags,
	current func() (*mifsecv1.SteeringRule, error)) (*mifsecv1.UpdateSteeringRuleRequest, error) {
	name, err := steeringRules.Name(idArg)
	if err != nil {
		return nil, err
	}
	r := &mifsecv1.SteeringRule{Name: name}
	paths, err := v.applyRule(fs, r)
	if err != nil {
		return nil, asUsage(err)
	}
	if matchChanged(fs) {
		r.Match = &mifsecv1.FlowMatch{}
		if err := v.applyMatch(fs, &mifsecv1.FlowMatch{}); err != nil { // usage errors before any call
			return nil, asUsage(err)
		}
		cur, err := current()
		if err != nil {
			return nil, err
		}
		if cur.GetMatch() != nil {
			r.Match = proto.Clone(cur.GetMatch()).(*mifsecv1.FlowMatch)
		}
		if err := v.applyMatch(fs, r.Match); err != nil {
			return nil, asUsage(err)
		}
		paths = append(paths, "match")
	}
	if len(paths) == 0 {
		return nil, asUsage(errors.New("nothing to update: set a flag"))
	}
	mask, err := fieldmaskpb.New(r, paths...)
	if err != nil {
		return nil, fmt.Errorf("update mask: %w", err)
	}
	return &mifsecv1.UpdateSteeringRuleRequest{SteeringRule: r, UpdateMask: mask}, nil
}

// matchText summarises a FlowMatch: `dst=10.0.0.0/8 proto=tcp dport=443`,
// "any" when empty.
func matchText(m *mifsecv1.FlowMatch) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("src", strings.Join(m.GetSourcePrefixes(), ","))
	add("dst", strings.Join(m.GetDestinationPrefixes(), ","))
	if p := m.GetProtocol(); p != 0 {
		name := fmt.Sprint(p)
		for k, n := range ipProtocols {
			if n == p {
				name = k
			}
		}
		add("proto", name)
	}
	add("sport", portsText(m.GetSourcePorts()))
	add("dport", portsText(m.GetDestinationPorts()))
	var dscp []string
	for _, d := range m.GetDscp() {
		dscp = append(dscp, fmt.Sprint(d))
	}
	add("dscp", strings.Join(dscp, ","))
	add("conn", lastSegment(m.GetConnection()))
	if len(parts) == 0 {
		return "any"
	}
	return strings.Join(parts, " ")
}

func portsText(r *mifsecv1.PortRange) string {
	if r == nil {
		return ""
	}
	if r.GetLast() == 0 || r.GetLast() == r.GetFirst() {
		return fmt.Sprint(r.GetFirst())
	}
	return fmt.Sprintf("%d-%d", r.GetFirst(), r.GetLast())
}

// targetsText renders targets as --target takes them.
func targetsText(ts []*mifsecv1.SteeringTarget) string {
	var out []string
	for _, t := range ts {
		s := lastSegment(t.GetInterface())
		if _, ok := t.GetTarget().(*mifsecv1.SteeringTarget_AccessType); ok {
			s = "access=" + enumShort(t.GetAccessType())
		}
		if t.GetWeight() != 0 {
			s += fmt.Sprintf(",weight=%d", t.GetWeight())
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func (a *app) writeSteeringRules(rules []*mifsecv1.SteeringRule, single bool) error {
	if a.json {
		if single && len(rules) == 1 {
			return writeJSON(a.stdout, rules[0])
		}
		return writeJSONArray(a.stdout, rules)
	}
	return writeSteeringTable(a.stdout, rules)
}

func writeSteeringTable(w io.Writer, rules []*mifsecv1.SteeringRule) error {
	t := newTable(w, "NAME", "PRECEDENCE", "MODE", "MATCH", "TARGETS", "ACTIVE_PATHS")
	for _, r := range rules {
		active := make([]string, len(r.GetActivePaths()))
		for i, p := range r.GetActivePaths() {
			active[i] = shortPathName(p)
		}
		t.row(
			lastSegment(r.GetName()),
			fmt.Sprint(r.GetPrecedence()),
			kebab(enumShort(r.GetMode())),
			matchText(r.GetMatch()),
			targetsText(r.GetTargets()),
			strings.Join(active, ","),
		)
	}
	return t.flush()
}

func newSteeringCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "steering",
		Aliases: []string{"steering-rule", "steering-rules", "rule"},
		Short:   "Manage steering rules: which path carries which flows",
	}
	cmd.AddCommand(
		newSteeringAddCmd(a),
		newSteeringGetCmd(a),
		newSteeringListCmd(a),
		newSteeringUpdateCmd(a),
		newSteeringDeleteCmd(a),
	)
	return cmd
}

func newSteeringAddCmd(a *app) *cobra.Command {
	var v steeringFlags
	cmd := &cobra.Command{
		Use:     "add ID --mode MODE [--target TARGET...] [match flags]",
		Aliases: []string{"create"},
		Short:   "Add a steering rule; returns once its flows moved (make-before-break)",
		Long: `Add a steering rule. Flows it moves go to their new path only once that
path answered a fresh probe; the call returns when they moved, or fails with
nothing changed.

Match flags (--src, --dst, --protocol, --sport, --dport, --dscp,
--connection) select flows; none matches every flow.

` + steeringTargetSyntax,
		Example: "  mifsec steering add voice --mode priority --target access=wlan --target access=ran --dscp ef\n" +
			"  mifsec steering add bulk --mode load-balance --target wlan,weight=3 --target ran,weight=1 --protocol tcp --dport 443\n" +
			"  mifsec steering add backup --mode active-standby --target wired --target ran --precedence 100",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := buildSteeringCreateRequest(args[0], cmd.Flags(), &v)
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := steeringClient(c).CreateSteeringRule(ctx, req)
				if err != nil {
					return err
				}
				return a.writeSteeringRules([]*mifsecv1.SteeringRule{resp.GetSteeringRule()}, true)
			})
		},
	}
	v.register(cmd, a)
	_ = cmd.MarkFlagRequired("mode")
	return cmd
}

func newSteeringGetCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "get ID",
		Short:             "Show a steering rule and the paths it uses now",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeSteeringIDs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := steeringRules.Name(args[0])
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := steeringClient(c).GetSteeringRule(ctx, &mifsecv1.GetSteeringRuleRequest{Name: name})
				if err != nil {
					return err
				}
				return a.writeSteeringRules([]*mifsecv1.SteeringRule{resp.GetSteeringRule()}, true)
			})
		},
	}
}

func newSteeringListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List all steering rules (every page), ordered by name",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				rules, err := listSteeringRules(ctx, c)
				if err != nil {
					return err
				}
				return a.writeSteeringRules(rules, false)
			})
		},
	}
}

func newSteeringUpdateCmd(a *app) *cobra.Command {
	var v steeringFlags
	cmd := &cobra.Command{
		Use:   "update ID [flags]",
		Short: "Change the fields given as flags (make-before-break)",
		Long: `Change the fields given as flags. --target replaces all targets; match
flags change only their own part of the match (the rest is read back from
the daemon); --connection= removes the connection from the match.

` + steeringTargetSyntax,
		Example:           "  mifsec steering update voice --target access=ran --target access=wlan\n  mifsec steering update bulk --dport 8443",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeSteeringIDs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Flag errors first, without the daemon.
			if _, err := buildSteeringUpdateRequest(args[0], cmd.Flags(), &v,
				func() (*mifsecv1.SteeringRule, error) { return &mifsecv1.SteeringRule{}, nil }); err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				sc := steeringClient(c)
				req, err := buildSteeringUpdateRequest(args[0], cmd.Flags(), &v, func() (*mifsecv1.SteeringRule, error) {
					name, _ := steeringRules.Name(args[0])
					resp, err := sc.GetSteeringRule(ctx, &mifsecv1.GetSteeringRuleRequest{Name: name})
					return resp.GetSteeringRule(), err
				})
				if err != nil {
					return err
				}
				resp, err := sc.UpdateSteeringRule(ctx, req)
				if err != nil {
					return err
				}
				return a.writeSteeringRules([]*mifsecv1.SteeringRule{resp.GetSteeringRule()}, true)
			})
		},
	}
	v.register(cmd, a)
	return cmd
}

func newSteeringDeleteCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "delete ID",
		Aliases:           []string{"rm", "remove"},
		Short:             "Delete a steering rule; its flows go back to the default path",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeSteeringIDs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := steeringRules.Name(args[0])
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := steeringClient(c).DeleteSteeringRule(ctx, &mifsecv1.DeleteSteeringRuleRequest{Name: name})
				if err != nil {
					return err
				}
				return a.done(resp, "deleted", name)
			})
		},
	}
}

// steeringClient binds the SteeringService to the client's connection.
func steeringClient(c *client.Client) mifsecv1.SteeringServiceClient {
	return mifsecv1.NewSteeringServiceClient(c.Conn())
}

func listSteeringRules(ctx context.Context, c *client.Client) ([]*mifsecv1.SteeringRule, error) {
	sc := steeringClient(c)
	return listAll(ctx, "steering rules", func(ctx context.Context, token string) ([]*mifsecv1.SteeringRule, string, error) {
		resp, err := sc.ListSteeringRules(ctx, &mifsecv1.ListSteeringRulesRequest{PageSize: listPageSize, PageToken: token})
		return resp.GetSteeringRules(), resp.GetNextPageToken(), err
	})
}

// completeSteeringIDs completes rule ids, described by mode.
func (a *app) completeSteeringIDs() cobra.CompletionFunc {
	return a.completer(true, func(ctx context.Context, c *client.Client) ([]completionItem, error) {
		rules, err := listSteeringRules(ctx, c)
		items := make([]completionItem, len(rules))
		for i, r := range rules {
			items[i] = completionItem{lastSegment(r.GetName()), kebab(enumShort(r.GetMode()))}
		}
		return items, err
	})
}
