package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mifsec/mifsec/client"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// SA names (DESIGN.md §2): connections/{c}/ikeSas/{spi} and
// connections/{c}/ikeSas/{spi}/childSas/{spi}. The CLI prints and accepts
// the short forms {c}/{spi} and {c}/{spi}/{child spi}.
const (
	ikeSAsSegment   = "ikeSas"
	childSAsSegment = "childSas"
	anyParent       = "-" // AIP-159: list across parents
)

// ikeSAName returns the full name of an IKE SA given in either form.
func ikeSAName(s string) (string, error) {
	p := strings.Split(s, "/")
	switch {
	case len(p) == 4 && p[0] == string(client.Connections) && p[2] == ikeSAsSegment:
		p = []string{p[1], p[3]}
	case len(p) == 2:
	default:
		return "", asUsage(fmt.Errorf("bad IKE SA name %q: want CONNECTION/SPI or connections/CONNECTION/ikeSas/SPI", s))
	}
	if p[0] == "" || p[1] == "" || p[0] == anyParent || p[1] == anyParent {
		return "", asUsage(fmt.Errorf("bad IKE SA name %q: empty or wildcard part", s))
	}
	return strings.Join([]string{string(client.Connections), p[0], ikeSAsSegment, p[1]}, "/"), nil
}

// childSAName returns the full name of a Child SA given in either form.
func childSAName(s string) (string, error) {
	p := strings.Split(s, "/")
	switch {
	case len(p) == 6 && p[0] == string(client.Connections) && p[2] == ikeSAsSegment && p[4] == childSAsSegment:
		p = []string{p[1], p[3], p[5]}
	case len(p) == 3:
	default:
		return "", asUsage(fmt.Errorf("bad Child SA name %q: want CONNECTION/IKE_SPI/CHILD_SPI or connections/C/ikeSas/SPI/childSas/SPI", s))
	}
	for _, part := range p {
		if part == "" || part == anyParent {
			return "", asUsage(fmt.Errorf("bad Child SA name %q: empty or wildcard part", s))
		}
	}
	return strings.Join([]string{string(client.Connections), p[0], ikeSAsSegment, p[1], childSAsSegment, p[2]}, "/"), nil
}

// ikeSAParent returns the ListIkeSas parent for `sa list [CONNECTION]`.
func ikeSAParent(args []string) (string, error) {
	if len(args) == 0 || args[0] == anyParent {
		return string(client.Connections) + "/" + anyParent, nil
	}
	return client.Connections.Name(args[0])
}

// childSAParent returns the ListChildSas parent for `sa children [ARG]`:
// an IKE SA (either form), a connection (its IKE SAs), or all.
func childSAParent(args []string) (string, error) {
	all := string(client.Connections) + "/" + anyParent + "/" + ikeSAsSegment + "/" + anyParent
	if len(args) == 0 || args[0] == anyParent {
		return all, nil
	}
	s := args[0]
	if strings.Count(s, "/") == 0 || (strings.HasPrefix(s, string(client.Connections)+"/") && strings.Count(s, "/") == 1) {
		conn, err := client.Connections.Name(s)
		if err != nil {
			return "", err
		}
		return conn + "/" + ikeSAsSegment + "/" + anyParent, nil
	}
	return ikeSAName(s)
}

// shortIKEName gives an IKE SA's short form, or name itself if it has
// another shape.
func shortIKEName(name string) string {
	p := strings.Split(name, "/")
	if len(p) == 4 && p[0] == string(client.Connections) && p[2] == ikeSAsSegment {
		return p[1] + "/" + p[3]
	}
	return name
}

// shortChildName gives a Child SA's short form, or name itself.
func shortChildName(name string) string {
	p := strings.Split(name, "/")
	if len(p) == 6 && p[0] == string(client.Connections) && p[2] == ikeSAsSegment && p[4] == childSAsSegment {
		return p[1] + "/" + p[3] + "/" + p[5]
	}
	return name
}

func (a *app) writeIKESAs(sas []*mifsecv1.IkeSa, single bool) error {
	if a.json {
		if single && len(sas) == 1 {
			return writeJSON(a.stdout, sas[0])
		}
		return writeJSONArray(a.stdout, sas)
	}
	if single && len(sas) == 1 {
		return writeIKESADetail(a.stdout, sas[0])
	}
	return writeIKESATable(a.stdout, sas)
}

func writeIKESATable(w io.Writer, sas []*mifsecv1.IkeSa) error {
	t := newTable(w, "IKE_SA", "STATE", "ROLE", "LOCAL", "REMOTE", "REMOTE_ID", "CHILDREN", "ESTABLISHED")
	for _, s := range sas {
		state := enumShort(s.GetState())
		if s.GetDownReason() != 0 {
			state += "(" + enumShort(s.GetDownReason()) + ")"
		}
		t.row(
			shortIKEName(s.GetName()),
			state,
			enumShort(s.GetRole()),
			s.GetLocalAddress(),
			s.GetRemoteAddress(),
			s.GetRemoteId(),
			fmt.Sprint(s.GetChildSaCount()),
			formatTime(s.GetEstablishTime()),
		)
	}
	return t.flush()
}

func writeIKESADetail(w io.Writer, s *mifsecv1.IkeSa) error {
	var peer []string
	for _, c := range []struct {
		on   bool
		name string
	}{{s.GetPeerMobike(), "mobike"}, {s.GetPeerFragmentation(), "fragmentation"}, {s.GetPeerClone(), "clone"}} {
		if c.on {
			peer = append(peer, c.name)
		}
	}
	var nat []string
	if s.GetLocalNat() {
		nat = append(nat, "local")
	}
	if s.GetRemoteNat() {
		nat = append(nat, "remote")
	}
	down := ""
	if s.GetDownReason() != 0 {
		down = enumShort(s.GetDownReason())
		if s.GetDownDetail() != "" {
			down += ": " + s.GetDownDetail()
		}
	}
	return writeFields(w, []field{
		{"name", s.GetName()},
		{"id", shortIKEName(s.GetName())},
		{"state", enumShort(s.GetState())},
		{"role", enumShort(s.GetRole())},
		{"spis", s.GetInitiatorSpi() + "_i " + s.GetResponderSpi() + "_r"},
		{"local", s.GetLocalAddress()},
		{"remote", s.GetRemoteAddress()},
		{"local id", s.GetLocalId()},
		{"remote id", s.GetRemoteId()},
		{"proposal", s.GetProposal()},
		{"nat", strings.Join(nat, ",")},
		{"peer supports", strings.Join(peer, ",")},
		{"virtual ips", strings.Join(s.GetVirtualIps(), ",")},
		{"child sas", fmt.Sprint(s.GetChildSaCount())},
		{"messages", fmt.Sprintf("%d in, %d out", s.GetMessagesIn(), s.GetMessagesOut())},
		{"established", formatTime(s.GetEstablishTime())},
		{"rekey", formatTime(s.GetRekeyTime())},
		{"down reason", down},
	})
}

func (a *app) writeChildSAs(sas []*mifsecv1.ChildSa, single bool) error {
	if a.json {
		if single && len(sas) == 1 {
			return writeJSON(a.stdout, sas[0])
		}
		return writeJSONArray(a.stdout, sas)
	}
	if single && len(sas) == 1 {
		return writeChildSADetail(a.stdout, sas[0])
	}
	return writeChildSATable(a.stdout, sas)
}

func writeChildSATable(w io.Writer, sas []*mifsecv1.ChildSa) error {
	t := newTable(w, "CHILD_SA", "CHILD", "STATE", "MODE", "LOCAL_TS", "REMOTE_TS", "SPI_IN", "SPI_OUT", "BYTES_IN", "BYTES_OUT")
	for _, s := range sas {
		t.row(
			shortChildName(s.GetName()),
			s.GetChild(),
			enumShort(s.GetState()),
			enumShort(s.GetMode()),
			strings.Join(s.GetLocalTs(), ","),
			strings.Join(s.GetRemoteTs(), ","),
			s.GetSpiIn(),
			s.GetSpiOut(),
			fmt.Sprint(s.GetBytesIn()),
			fmt.Sprint(s.GetBytesOut()),
		)
	}
	return t.flush()
}

func writeChildSADetail(w io.Writer, s *mifsecv1.ChildSa) error {
	return writeFields(w, []field{
		{"name", s.GetName()},
		{"id", shortChildName(s.GetName())},
		{"child", s.GetChild()},
		{"state", enumShort(s.GetState())},
		{"mode", enumShort(s.GetMode())},
		{"spis", s.GetSpiIn() + "_in " + s.GetSpiOut() + "_out"},
		{"local ts", strings.Join(s.GetLocalTs(), ",")},
		{"remote ts", strings.Join(s.GetRemoteTs(), ",")},
		{"local", s.GetLocalAddress()},
		{"remote", s.GetRemoteAddress()},
		{"proposal", s.GetProposal()},
		{"bytes", fmt.Sprintf("%d in, %d out", s.GetBytesIn(), s.GetBytesOut())},
		{"packets", fmt.Sprintf("%d in, %d out", s.GetPacketsIn(), s.GetPacketsOut())},
		{"drops in", fmt.Sprint(s.GetDropsIn())},
		{"installed", formatTime(s.GetInstallTime())},
		{"rekey", formatTime(s.GetRekeyTime())},
	})
}

func newSACmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "sa",
		Aliases: []string{"sas"},
		Short:   "Show and act on live IKE and Child SAs",
		Long: `Show and act on live IKE and Child SAs.

IKE SAs are named CONNECTION/SPI (the initiator's SPI, 16 hex digits) and
Child SAs CONNECTION/IKE_SPI/CHILD_SPI (the inbound SPI, 8 hex digits), as
the lists print them; the full resource names
connections/C/ikeSas/SPI[/childSas/SPI] work too.`,
	}
	child := &cobra.Command{
		Use:   "child",
		Short: "Act on one Child SA",
	}
	child.AddCommand(
		newChildSAGetCmd(a),
		newChildSARekeyCmd(a),
		newChildSATerminateCmd(a),
	)
	cmd.AddCommand(
		newIKESAListCmd(a),
		newIKESAGetCmd(a),
		newIKESARekeyCmd(a),
		newIKESATerminateCmd(a),
		newIKESAMigrateCmd(a),
		newChildSAListCmd(a),
		child,
	)
	return cmd
}

func newIKESAListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "list [CONNECTION]",
		Aliases:           []string{"ls"},
		Short:             "List the IKE SAs of a connection, or of all connections",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: a.completeConnectionIDs(true),
		RunE: func(cmd *cobra.Command, args []string) error {
			parent, err := ikeSAParent(args)
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				sas, err := listIKESAs(ctx, c, parent)
				if err != nil {
					return err
				}
				return a.writeIKESAs(sas, false)
			})
		},
	}
}

// ikeSACmd builds get, rekey and terminate on one IKE SA.
func ikeSACmd(a *app, use, short string, act func(context.Context, *client.Client, string) error) *cobra.Command {
	return &cobra.Command{
		Use:               use + " IKE_SA",
		Short:             short,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeIKESAs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := ikeSAName(args[0])
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error { return act(ctx, c, name) })
		},
	}
}

func newIKESAGetCmd(a *app) *cobra.Command {
	return ikeSACmd(a, "get", "Show one IKE SA", func(ctx context.Context, c *client.Client, name string) error {
		resp, err := c.SAs.GetIkeSa(ctx, &mifsecv1.GetIkeSaRequest{Name: name})
		if err != nil {
			return err
		}
		return a.writeIKESAs([]*mifsecv1.IkeSa{resp.GetIkeSa()}, true)
	})
}

func newIKESARekeyCmd(a *app) *cobra.Command {
	return ikeSACmd(a, "rekey", "Rekey an IKE SA (RFC 7296 §1.3.2); shows the new one", func(ctx context.Context, c *client.Client, name string) error {
		resp, err := c.SAs.RekeyIkeSa(ctx, &mifsecv1.RekeyIkeSaRequest{Name: name})
		if err != nil {
			return err
		}
		return a.writeIKESAs([]*mifsecv1.IkeSa{resp.GetIkeSa()}, true)
	})
}

func newIKESATerminateCmd(a *app) *cobra.Command {
	return ikeSACmd(a, "terminate", "Delete an IKE SA and its Child SAs", func(ctx context.Context, c *client.Client, name string) error {
		resp, err := c.SAs.TerminateIkeSa(ctx, &mifsecv1.TerminateIkeSaRequest{Name: name})
		if err != nil {
			return err
		}
		return a.done(resp, "terminated", name)
	})
}

func newChildSAListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "children [IKE_SA | CONNECTION]",
		Short: "List the Child SAs of an IKE SA, of a connection, or all",
		Args:  cobra.MaximumNArgs(1),
		ValidArgsFunction: a.completer(true, func(ctx context.Context, c *client.Client) ([]completionItem, error) {
			return ikeSACompletions(ctx, c)
		}),
		RunE: func(cmd *cobra.Command, args []string) error {
			parent, err := childSAParent(args)
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				sas, err := listChildSAs(ctx, c, parent)
				if err != nil {
					return err
				}
				return a.writeChildSAs(sas, false)
			})
		},
	}
}

// childSACmd builds get, rekey and terminate on one Child SA.
func childSACmd(a *app, use, short string, act func(context.Context, *client.Client, string) error) *cobra.Command {
	return &cobra.Command{
		Use:               use + " CHILD_SA",
		Short:             short,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeChildSAs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := childSAName(args[0])
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error { return act(ctx, c, name) })
		},
	}
}

func newChildSAGetCmd(a *app) *cobra.Command {
	return childSACmd(a, "get", "Show one Child SA", func(ctx context.Context, c *client.Client, name string) error {
		resp, err := c.SAs.GetChildSa(ctx, &mifsecv1.GetChildSaRequest{Name: name})
		if err != nil {
			return err
		}
		return a.writeChildSAs([]*mifsecv1.ChildSa{resp.GetChildSa()}, true)
	})
}

func newChildSARekeyCmd(a *app) *cobra.Command {
	return childSACmd(a, "rekey", "Rekey a Child SA (RFC 7296 §1.3.3); shows the new one", func(ctx context.Context, c *client.Client, name string) error {
		resp, err := c.SAs.RekeyChildSa(ctx, &mifsecv1.RekeyChildSaRequest{Name: name})
		if err != nil {
			return err
		}
		return a.writeChildSAs([]*mifsecv1.ChildSa{resp.GetChildSa()}, true)
	})
}

func newChildSATerminateCmd(a *app) *cobra.Command {
	return childSACmd(a, "terminate", "Delete a Child SA", func(ctx context.Context, c *client.Client, name string) error {
		resp, err := c.SAs.TerminateChildSa(ctx, &mifsecv1.TerminateChildSaRequest{Name: name})
		if err != nil {
			return err
		}
		return a.done(resp, "terminated", name)
	})
}

func listIKESAs(ctx context.Context, c *client.Client, parent string) ([]*mifsecv1.IkeSa, error) {
	return listAll(ctx, "IKE SAs", func(ctx context.Context, token string) ([]*mifsecv1.IkeSa, string, error) {
		resp, err := c.SAs.ListIkeSas(ctx, &mifsecv1.ListIkeSasRequest{Parent: parent, PageSize: listPageSize, PageToken: token})
		return resp.GetIkeSas(), resp.GetNextPageToken(), err
	})
}

func listChildSAs(ctx context.Context, c *client.Client, parent string) ([]*mifsecv1.ChildSa, error) {
	return listAll(ctx, "Child SAs", func(ctx context.Context, token string) ([]*mifsecv1.ChildSa, string, error) {
		resp, err := c.SAs.ListChildSas(ctx, &mifsecv1.ListChildSasRequest{Parent: parent, PageSize: listPageSize, PageToken: token})
		return resp.GetChildSas(), resp.GetNextPageToken(), err
	})
}

func ikeSACompletions(ctx context.Context, c *client.Client) ([]completionItem, error) {
	sas, err := listIKESAs(ctx, c, string(client.Connections)+"/"+anyParent)
	items := make([]completionItem, len(sas))
	for i, s := range sas {
		items[i] = completionItem{shortIKEName(s.GetName()), strings.TrimSpace(enumShort(s.GetState()) + " " + s.GetRemoteAddress())}
	}
	return items, err
}

// completeIKESAs completes IKE SAs in short form, described by state and
// peer address.
func (a *app) completeIKESAs() cobra.CompletionFunc {
	return a.completer(true, ikeSACompletions)
}

// completeChildSAs completes Child SAs in short form, described by
// template name and state.
func (a *app) completeChildSAs() cobra.CompletionFunc {
	return a.completer(true, func(ctx context.Context, c *client.Client) ([]completionItem, error) {
		all := string(client.Connections) + "/" + anyParent + "/" + ikeSAsSegment + "/" + anyParent
		sas, err := listChildSAs(ctx, c, all)
		items := make([]completionItem, len(sas))
		for i, s := range sas {
			items[i] = completionItem{shortChildName(s.GetName()), s.GetChild() + " " + enumShort(s.GetState())}
		}
		return items, err
	})
}
