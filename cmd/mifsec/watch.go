package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mifsec/mifsec/client"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// watchFlags select and bound a watch.
type watchFlags struct {
	categories         []mifsecv1.EventCategory
	iface              string
	connection         string
	count              int
	untilEndOfSnapshot bool
}

// buildWatchRequest turns the flags into a request.
func buildWatchRequest(v *watchFlags) (*mifsecv1.WatchRequest, error) {
	if v.count < 0 {
		return nil, asUsage(fmt.Errorf("--count must be 0 (no limit) or more, not %d", v.count))
	}
	req := &mifsecv1.WatchRequest{Categories: v.categories}
	if v.iface != "" {
		name, err := client.Interfaces.Name(v.iface)
		if err != nil {
			return nil, err
		}
		req.Interface = name
	}
	if v.connection != "" {
		name, err := client.Connections.Name(v.connection)
		if err != nil {
			return nil, err
		}
		req.Connection = name
	}
	return req, nil
}

func newWatchCmd(a *app) *cobra.Command {
	var v watchFlags
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Print events: a snapshot of the current state, an end marker, then live events",
		Long: `Print events: a snapshot of the current state, an end marker, then live events.

One line per event: SEQUENCE TIME TYPE SUBJECT DETAILS, where TIME is RFC 3339
UTC, SUBJECT the resource name ("-" for none) and DETAILS key=value pairs.
Path, steering and mobility events also give connection=, from= and to=
(paths as CONNECTION/ID, the form 'sa migrate --path' takes) and the
addresses= announced or learned (none: NO_ADDITIONAL_ADDRESSES).
With --json, one Event object per line (JSON lines).
--count and --until-end-of-snapshot stop the watch (whichever comes first);
otherwise it runs until interrupted or until the daemon ends it. --timeout
bounds connecting only.`,
		Example: "  mifsec watch --category interface --interface wlan\n" +
			"  mifsec watch --category path,steering,mobility --connection home\n" +
			"  mifsec watch --until-end-of-snapshot --json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := buildWatchRequest(&v)
			if err != nil {
				return err
			}
			return a.watch(cmd.Context(), req, &v)
		},
	}
	fs := cmd.Flags()
	fs.Var(newEnumListFlag(&v.categories), "category",
		"event `CATEGORY`, repeatable or comma-separated: "+strings.Join(enumChoices(mifsecv1.EventCategory(0).Descriptor()), "|")+" (default all)")
	fs.StringVar(&v.iface, "interface", "", "only events about this interface (`ID` or interfaces/ID)")
	fs.StringVar(&v.connection, "connection", "", "only events about this connection's SAs (`ID` or connections/ID)")
	fs.IntVar(&v.count, "count", 0, "stop after printing this many events, snapshot included (0: no limit)")
	fs.BoolVar(&v.untilEndOfSnapshot, "until-end-of-snapshot", false, "stop after the end-of-snapshot marker")
	_ = cmd.RegisterFlagCompletionFunc("category", enumFlagCompletion[mifsecv1.EventCategory]())
	_ = cmd.RegisterFlagCompletionFunc("interface", a.completeInterfaceIDs)
	return cmd
}

// watch streams events to stdout until a limit in v, the end of the stream
// or ctx. The dial is bounded by --timeout, the stream only by ctx.
func (a *app) watch(ctx context.Context, req *mifsecv1.WatchRequest, v *watchFlags) error {
	dctx, dcancel := a.withTimeout(ctx)
	c, err := client.Dial(dctx, a.socket, a.dialOptions()...)
	dcancel()
	if err != nil {
		return err
	}
	defer c.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream when a limit is reached
	stream, err := c.Events.Watch(sctx, req)
	if err != nil {
		return err
	}
	for n := 1; ; n++ {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		ev := resp.GetEvent()
		if a.json {
			err = writeJSONLine(a.stdout, ev)
		} else {
			_, err = fmt.Fprintln(a.stdout, eventLine(ev))
		}
		if err != nil {
			return err
		}
		if (v.count > 0 && n >= v.count) ||
			(v.untilEndOfSnapshot && ev.GetType() == mifsecv1.EventType_EVENT_TYPE_END_OF_SNAPSHOT) {
			return nil
		}
	}
}

// eventLine renders an event as `seq time type subject details`. Details
// name other objects in the short forms the CLI takes as arguments
// (interface and connection ids, paths as CONNECTION/ID).
func eventLine(ev *mifsecv1.Event) string {
	subject := "-"
	var details []string
	if ev.GetAddress() != "" {
		details = append(details, "address="+ev.GetAddress())
	}
	switch s := ev.GetSubject().(type) {
	case *mifsecv1.Event_Interface:
		i := s.Interface
		subject = i.GetName()
		details = append(details, "link="+i.GetLink())
		if ev.GetAddress() == "" {
			details = append(details,
				"access="+enumShort(i.GetAccessType()),
				fmt.Sprintf("priority=%d", i.GetPriority()),
				"metered="+yesNo(i.GetMetered()),
				"state="+enumShort(i.GetState()),
				"addresses="+strings.Join(i.GetAddresses(), ","),
			)
		}
	case *mifsecv1.Event_IkeSa:
		sa := s.IkeSa
		subject = sa.GetName()
		details = append(details,
			"state="+enumShort(sa.GetState()),
			"local="+sa.GetLocalAddress(),
			"remote="+sa.GetRemoteAddress(),
		)
		if sa.GetDownReason() != 0 {
			details = append(details, "down_reason="+enumShort(sa.GetDownReason()))
		}
	case *mifsecv1.Event_ChildSa:
		sa := s.ChildSa
		subject = sa.GetName()
		details = append(details,
			"state="+enumShort(sa.GetState()),
			"spi_in="+sa.GetSpiIn(),
			"spi_out="+sa.GetSpiOut(),
			"local_ts="+strings.Join(sa.GetLocalTs(), ","),
			"remote_ts="+strings.Join(sa.GetRemoteTs(), ","),
		)
	case *mifsecv1.Event_Path:
		subject = s.Path.GetName()
		details = append(details, pathDetails(s.Path)...)
	case *mifsecv1.Event_SteeringRule:
		subject = s.SteeringRule.GetName()
		details = append(details, steeringDetails(s.SteeringRule, ev.GetType() == mifsecv1.EventType_EVENT_TYPE_FLOWS_MOVED)...)
	}
	details = append(details, moveDetails(ev, subject)...)
	if ev.GetReason() != "" {
		details = append(details, "reason="+ev.GetReason())
	}
	d := strings.Join(details, " ")
	if d == "" {
		d = "-"
	}
	return fmt.Sprintf("%d %s %s %s %s", ev.GetSequence(), formatTime(ev.GetTime()), enumShort(ev.GetType()), subject, d)
}

// pathDetails describes a path: its interface, addresses, state (with why
// it is not up), IKE SA and probe RTT.
func pathDetails(p *mifsecv1.Path) []string {
	out := []string{
		"interface=" + lastSegment(p.GetInterface()),
		"local=" + p.GetLocalAddress(),
		"remote=" + p.GetRemoteAddress(),
		"state=" + enumShort(p.GetState()),
	}
	if p.GetDownReason() != "" && p.GetState() != mifsecv1.PathState_PATH_STATE_UP {
		out = append(out, "down_reason="+p.GetDownReason())
	}
	if p.GetIkeSa() != "" {
		out = append(out, "ike_sa="+shortIKEName(p.GetIkeSa()))
	}
	if p.GetRtt() != nil {
		out = append(out, "rtt="+p.GetRtt().AsDuration().String())
	}
	return out
}

// steeringDetails describes a rule: its mode, and unless flows only moved
// (the event's from/to say where), precedence, match, targets with their
// weights, and the paths in use.
func steeringDetails(r *mifsecv1.SteeringRule, moved bool) []string {
	out := []string{"mode=" + kebab(enumShort(r.GetMode()))}
	if moved {
		return out
	}
	out = append(out, fmt.Sprintf("precedence=%d", r.GetPrecedence()))
	if m := matchText(r.GetMatch()); m == "any" {
		out = append(out, "match=any")
	} else {
		out = append(out, strings.Split(m, " ")...)
	}
	var targets, weights []string
	for _, t := range r.GetTargets() {
		if _, ok := t.GetTarget().(*mifsecv1.SteeringTarget_AccessType); ok {
			targets = append(targets, "access:"+enumShort(t.GetAccessType()))
		} else {
			targets = append(targets, lastSegment(t.GetInterface()))
		}
		weights = append(weights, fmt.Sprint(t.GetWeight()))
	}
	if len(targets) > 0 {
		out = append(out, "targets="+strings.Join(targets, ","))
		if r.GetMode() == mifsecv1.SteeringMode_STEERING_MODE_LOAD_BALANCE {
			out = append(out, "weights="+strings.Join(weights, ","))
		}
	}
	var active []string
	for _, p := range r.GetActivePaths() {
		active = append(active, shortPathName(p))
	}
	return append(out, "active="+strings.Join(active, ","))
}

// moveDetails gives the path, steering and mobility fields of an event:
// the connection (unless the subject names it), where flows or an IKE SA
// moved from and to, and the addresses announced or learned (RFC 4555 §3.6;
// none = NO_ADDITIONAL_ADDRESSES).
func moveDetails(ev *mifsecv1.Event, subject string) []string {
	var out []string
	if c := ev.GetConnection(); c != "" && !strings.HasPrefix(subject, c+"/") {
		out = append(out, "connection="+lastSegment(c))
	}
	if ev.GetFromPath() != "" {
		out = append(out, "from="+shortPathName(ev.GetFromPath()))
	}
	if ev.GetToPath() != "" {
		out = append(out, "to="+shortPathName(ev.GetToPath()))
	}
	switch t := ev.GetType(); {
	case t == mifsecv1.EventType_EVENT_TYPE_ADDRESSES_ANNOUNCED || t == mifsecv1.EventType_EVENT_TYPE_PEER_ADDRESSES:
		a := strings.Join(ev.GetAddresses(), ",")
		if a == "" {
			a = "none"
		}
		out = append(out, "addresses="+a)
	case len(ev.GetAddresses()) > 0:
		out = append(out, "addresses="+strings.Join(ev.GetAddresses(), ","))
	}
	return out
}
