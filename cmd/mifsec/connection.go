package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mifsec/mifsec/client"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// writeConnections prints connections: a table for lists, a detail view
// with the children for a single one.
func (a *app) writeConnections(conns []*mifsecv1.Connection, single bool) error {
	if a.json {
		if single && len(conns) == 1 {
			return writeJSON(a.stdout, conns[0])
		}
		return writeJSONArray(a.stdout, conns)
	}
	if single && len(conns) == 1 {
		return writeConnectionDetail(a.stdout, conns[0])
	}
	return writeConnectionTable(a.stdout, conns)
}

func writeConnectionTable(w io.Writer, conns []*mifsecv1.Connection) error {
	t := newTable(w, "NAME", "ROLE", "STATE", "REMOTE_ID", "REMOTE", "AUTH", "CHILDREN", "IKE_SAS")
	for _, c := range conns {
		children := make([]string, len(c.GetChildren()))
		for i, ch := range c.GetChildren() {
			children[i] = ch.GetName()
		}
		t.row(
			lastSegment(c.GetName()),
			enumShort(c.GetRole()),
			enumShort(c.GetState()),
			c.GetRemoteId(),
			strings.Join(c.GetRemoteAddresses(), ","),
			authKind(c.GetLocalAuth())+"/"+authKind(c.GetRemoteAuth()),
			strings.Join(children, ","),
			fmt.Sprint(len(c.GetIkeSas())),
		)
	}
	return t.flush()
}

// authKind is the one-word method of an Authentication: psk, cert, ca.
func authKind(a *mifsecv1.Authentication) string {
	switch m := a.GetMethod().(type) {
	case *mifsecv1.Authentication_PskSecret:
		return "psk"
	case *mifsecv1.Authentication_Certificate:
		if m.Certificate.GetCertificatePem() == "" {
			return "ca"
		}
		return "cert"
	}
	return "-"
}

// authText describes an Authentication for the detail view, naming
// certificates by subject.
func authText(a *mifsecv1.Authentication) string {
	switch m := a.GetMethod().(type) {
	case *mifsecv1.Authentication_PskSecret:
		return "psk " + m.PskSecret
	case *mifsecv1.Authentication_Certificate:
		var parts []string
		if pemText := m.Certificate.GetCertificatePem(); pemText != "" {
			parts = append(parts, "certificate "+pemSubjects(pemText))
		}
		if k := m.Certificate.GetKeySecret(); k != "" {
			parts = append(parts, "key "+k)
		}
		if ca := m.Certificate.GetCaPem(); ca != "" {
			parts = append(parts, "ca "+pemSubjects(ca))
		}
		return strings.Join(parts, ", ")
	}
	return ""
}

// pemSubjects names the first certificate in pemText by subject, with the
// count of the others: `"CN=ue" (+1)`.
func pemSubjects(pemText string) string {
	rest := []byte(pemText)
	var first string
	n := 0
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if n == 0 {
			first = "(unparsable)"
			if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
				first = fmt.Sprintf("%q", c.Subject.String())
			}
		}
		n++
	}
	switch n {
	case 0:
		return "(no PEM certificate)"
	case 1:
		return first
	}
	return fmt.Sprintf("%s (+%d)", first, n-1)
}

func optionalBool(b *bool) string {
	if b == nil {
		return "default"
	}
	return yesNo(*b)
}

func writeConnectionDetail(w io.Writer, c *mifsecv1.Connection) error {
	var vip []string
	if c.GetRequestVirtualIp4() {
		vip = append(vip, "ipv4")
	}
	if c.GetRequestVirtualIp6() {
		vip = append(vip, "ipv6")
	}
	port := ""
	if c.GetRemotePort() != 0 {
		port = fmt.Sprint(c.GetRemotePort())
	}
	dpd := ""
	if d := c.GetDpd(); d != nil {
		dpd = "interval " + formatDuration(d.GetInterval()) + ", timeout " + formatDuration(d.GetTimeout())
	}
	ikeRekey := ""
	if c.GetIkeRekeyTime() != nil {
		ikeRekey = formatDuration(c.GetIkeRekeyTime())
	}
	ikeSAs := make([]string, len(c.GetIkeSas()))
	for i, s := range c.GetIkeSas() {
		ikeSAs[i] = shortIKEName(s)
	}
	err := writeFields(w, []field{
		{"name", c.GetName()},
		{"role", enumShort(c.GetRole())},
		{"state", enumShort(c.GetState())},
		{"local id", c.GetLocalId()},
		{"remote id", c.GetRemoteId()},
		{"local auth", authText(c.GetLocalAuth())},
		{"remote auth", authText(c.GetRemoteAuth())},
		{"ike proposals", strings.Join(c.GetIkeProposals(), ",")},
		{"esp proposals", strings.Join(c.GetEspProposals(), ",")},
		{"remote", strings.Join(c.GetRemoteAddresses(), ",")},
		{"remote port", port},
		{"interfaces", strings.Join(c.GetLocalInterfaces(), ",")},
		{"dpd", dpd},
		{"ike rekey", ikeRekey},
		{"virtual ip", strings.Join(vip, ",")},
		{"pool", c.GetPool()},
		{"mobike", optionalBool(c.Mobike)},
		{"fragmentation", optionalBool(c.Fragmentation)},
		{"multipath", yesNo(c.GetMultipath())},
		{"ike sas", strings.Join(ikeSAs, ",")},
		{"created", formatTime(c.GetCreateTime())},
		{"updated", formatTime(c.GetUpdateTime())},
	})
	if err != nil || len(c.GetChildren()) == 0 {
		return err
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return err
	}
	t := newTable(w, "CHILD", "LOCAL_TS", "REMOTE_TS", "MODE", "START", "ESP", "REKEY")
	for _, ch := range c.GetChildren() {
		rekey := ""
		if ch.GetRekeyTime() != nil {
			rekey = formatDuration(ch.GetRekeyTime())
		}
		if ch.GetRekeyBytes() != 0 {
			rekey += fmt.Sprintf(" %dB", ch.GetRekeyBytes())
		}
		if ch.GetRekeyPackets() != 0 {
			rekey += fmt.Sprintf(" %dpkt", ch.GetRekeyPackets())
		}
		t.row(
			ch.GetName(),
			strings.Join(ch.GetLocalTs(), ","),
			strings.Join(ch.GetRemoteTs(), ","),
			enumOrDefault(ch.GetMode()),
			enumOrDefault(ch.GetStartAction()),
			strings.Join(ch.GetEspProposals(), ","),
			strings.TrimSpace(rekey),
		)
	}
	return t.flush()
}

// enumOrDefault renders UNSPECIFIED as "-" (the daemon's default applies).
func enumOrDefault[T protoEnum](e T) string {
	if e == 0 {
		return ""
	}
	return enumShort(e)
}

func newConnectionCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "connection",
		Aliases: []string{"connections", "conn"},
		Short:   "Manage IKEv2 connections and start or stop their SAs",
	}
	cmd.AddCommand(
		newConnectionAddCmd(a),
		newConnectionGetCmd(a),
		newConnectionListCmd(a),
		newConnectionUpdateCmd(a),
		newConnectionDeleteCmd(a),
		newConnectionInitiateCmd(a),
		newConnectionTerminateCmd(a),
		newConnectionPathsCmd(a),
	)
	return cmd
}

const connectionAddLong = `Add a connection.

Authentication: --psk SECRET makes both sides use that pre-shared key, unless
--remote-psk or --remote-ca-file says how the peer authenticates; with
certificates, --cert-file PEM --key-secret SECRET authenticate this side.
Secrets are stored first with 'mifsec secret add'.

--from-json FILE starts from a protojson Connection (as 'connection get
--json' prints it; output-only fields are ignored); flags then override
its fields.

Child SAs: ` + childSyntax

func newConnectionAddCmd(a *app) *cobra.Command {
	var v connectionFlags
	cmd := &cobra.Command{
		Use:     "add ID --role ROLE (--psk SECRET | --cert-file PEM --key-secret SECRET) [flags]",
		Aliases: []string{"create"},
		Short:   "Add a connection",
		Long:    connectionAddLong,
		Example: "  mifsec connection add home --role initiator --psk home-psk --local-id @ue.example --remote-id @gw.example \\\n" +
			"      --remote gw.example --interface wlan,ran --virtual-ip4 --child net,remote=0.0.0.0/0,remote=::/0,start=start\n" +
			"  mifsec connection add ues --role responder --cert-file gw.pem --key-secret gw-key --remote-ca-file ca.pem \\\n" +
			"      --remote-id %any --pool ue --child net,local=0.0.0.0/0\n" +
			"  mifsec connection add copy --from-json home.json --remote 203.0.113.9",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := buildConnectionCreateRequest(args[0], cmd.Flags(), &v, cmd.InOrStdin())
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.Connections.CreateConnection(ctx, req)
				if err != nil {
					return err
				}
				return a.writeConnections([]*mifsecv1.Connection{resp.GetConnection()}, true)
			})
		},
	}
	v.register(cmd, a, true)
	return cmd
}

func newConnectionGetCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "get ID",
		Short:             "Show one connection and its children",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeConnectionIDs(true),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := client.Connections.Name(args[0])
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.Connections.GetConnection(ctx, &mifsecv1.GetConnectionRequest{Name: name})
				if err != nil {
					return err
				}
				return a.writeConnections([]*mifsecv1.Connection{resp.GetConnection()}, true)
			})
		},
	}
}

func newConnectionListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List all connections (every page), ordered by name",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				conns, err := listConnections(ctx, c)
				if err != nil {
					return err
				}
				return a.writeConnections(conns, false)
			})
		},
	}
}

func newConnectionUpdateCmd(a *app) *cobra.Command {
	var v connectionFlags
	cmd := &cobra.Command{
		Use:   "update ID [flags]",
		Short: "Change the fields given as flags; established SAs keep theirs until rekeyed",
		Long: `Change the fields given as flags (or present in --from-json); the role
cannot change. List flags (--remote, --child, ...) replace the whole list;
--pool= clears the pool. Established SAs keep their parameters until their
next rekey.

Child SAs: ` + childSyntax,
		Example: "  mifsec connection update home --remote 203.0.113.9 --dpd-interval 30s\n" +
			"  mifsec connection update home --child net,remote=0.0.0.0/0,mode=tunnel --mobike=false",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeConnectionIDs(true),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := buildConnectionUpdateRequest(args[0], cmd.Flags(), &v, cmd.InOrStdin())
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				if partialDPD(cmd.Flags(), &v) {
					cur, err := c.Connections.GetConnection(ctx, &mifsecv1.GetConnectionRequest{Name: req.GetConnection().GetName()})
					if err != nil {
						return err
					}
					mergeDPD(req, cmd.Flags(), cur.GetConnection())
				}
				resp, err := c.Connections.UpdateConnection(ctx, req)
				if err != nil {
					return err
				}
				return a.writeConnections([]*mifsecv1.Connection{resp.GetConnection()}, true)
			})
		},
	}
	v.register(cmd, a, false)
	return cmd
}

func newConnectionDeleteCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "delete ID",
		Aliases:           []string{"rm", "remove"},
		Short:             "Terminate a connection's SAs and remove it",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeConnectionIDs(true),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := client.Connections.Name(args[0])
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.Connections.DeleteConnection(ctx, &mifsecv1.DeleteConnectionRequest{Name: name})
				if err != nil {
					return err
				}
				return a.done(resp, "deleted", name)
			})
		},
	}
}

func newConnectionInitiateCmd(a *app) *cobra.Command {
	var child string
	cmd := &cobra.Command{
		Use:     "initiate ID [--child NAME]",
		Aliases: []string{"up"},
		Short:   "Establish the IKE SA and its children; returns when the IKE SA is up",
		Long: `Establish the connection's IKE SA and its children (or only --child).
It returns when the IKE SA is up, or with the reason it failed; raise
--timeout for slow peers. Prints the new IKE SA as 'sa' commands take it.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeConnectionIDs(true),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := client.Connections.Name(args[0])
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.Connections.InitiateConnection(ctx, &mifsecv1.InitiateConnectionRequest{Name: name, Child: child})
				if err != nil {
					return err
				}
				if a.json {
					return writeJSON(a.stdout, resp)
				}
				_, err = fmt.Fprintf(a.stdout, "initiated %s: IKE SA %s\n", name, shortIKEName(resp.GetIkeSa()))
				return err
			})
		},
	}
	cmd.Flags().StringVar(&child, "child", "", "only this child (`NAME` of a --child template)")
	return cmd
}

func newConnectionTerminateCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "terminate ID",
		Aliases:           []string{"down"},
		Short:             "Delete the connection's IKE SAs (with their children); the connection stays",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeConnectionIDs(true),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := client.Connections.Name(args[0])
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.Connections.TerminateConnection(ctx, &mifsecv1.TerminateConnectionRequest{Name: name})
				if err != nil {
					return err
				}
				return a.done(resp, "terminated", name)
			})
		},
	}
}

func listConnections(ctx context.Context, c *client.Client) ([]*mifsecv1.Connection, error) {
	return listAll(ctx, "connections", func(ctx context.Context, token string) ([]*mifsecv1.Connection, string, error) {
		resp, err := c.Connections.ListConnections(ctx, &mifsecv1.ListConnectionsRequest{PageSize: listPageSize, PageToken: token})
		return resp.GetConnections(), resp.GetNextPageToken(), err
	})
}

// completeConnectionIDs completes connection ids, described by role and
// state.
func (a *app) completeConnectionIDs(firstArgOnly bool) cobra.CompletionFunc {
	return a.completer(firstArgOnly, func(ctx context.Context, c *client.Client) ([]completionItem, error) {
		conns, err := listConnections(ctx, c)
		items := make([]completionItem, len(conns))
		for i, cn := range conns {
			items[i] = completionItem{lastSegment(cn.GetName()), enumShort(cn.GetRole()) + " " + enumShort(cn.GetState())}
		}
		return items, err
	})
}
