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

// Paths (DESIGN.md §2) are output only: connections/{c}/paths/{id}, printed
// and accepted as {c}/{id}.
const pathsSegment = "paths"

// shortPathName gives a path's short form, or name itself.
func shortPathName(name string) string {
	p := strings.Split(name, "/")
	if len(p) == 4 && p[0] == string(client.Connections) && p[2] == pathsSegment {
		return p[1] + "/" + p[3]
	}
	return name
}

// pathName returns the full name of a path given as
// connections/{c}/paths/{id}, {c}/{id}, or a bare id of connection conn.
func pathName(s, conn string) (string, error) {
	p := strings.Split(s, "/")
	switch {
	case len(p) == 4 && p[0] == string(client.Connections) && p[2] == pathsSegment:
		p = []string{p[1], p[3]}
	case len(p) == 2:
	case len(p) == 1 && conn != "":
		p = []string{conn, p[0]}
	default:
		return "", asUsage(fmt.Errorf("bad path name %q: want CONNECTION/ID or connections/CONNECTION/paths/ID", s))
	}
	if p[0] == "" || p[1] == "" || p[0] == anyParent || p[1] == anyParent {
		return "", asUsage(fmt.Errorf("bad path name %q: empty or wildcard part", s))
	}
	return strings.Join([]string{string(client.Connections), p[0], pathsSegment, p[1]}, "/"), nil
}

func (a *app) writePaths(paths []*mifsecv1.Path) error {
	if a.json {
		return writeJSONArray(a.stdout, paths)
	}
	return writePathTable(a.stdout, paths)
}

func writePathTable(w io.Writer, paths []*mifsecv1.Path) error {
	t := newTable(w, "PATH", "INTERFACE", "LOCAL", "REMOTE", "STATE", "RTT", "LOSS", "IKE_SA", "BYTES_IN", "BYTES_OUT")
	for _, p := range paths {
		state := enumShort(p.GetState())
		if p.GetDownReason() != "" && p.GetState() != mifsecv1.PathState_PATH_STATE_UP {
			state += "(" + p.GetDownReason() + ")"
		}
		rtt := ""
		if p.GetRtt() != nil {
			rtt = p.GetRtt().AsDuration().String()
		}
		t.row(
			shortPathName(p.GetName()),
			lastSegment(p.GetInterface()),
			p.GetLocalAddress(),
			p.GetRemoteAddress(),
			state,
			rtt,
			fmt.Sprintf("%.1f%%", 100*p.GetLoss()),
			shortIKEName(p.GetIkeSa()),
			fmt.Sprint(p.GetBytesIn()),
			fmt.Sprint(p.GetBytesOut()),
		)
	}
	return t.flush()
}

func newConnectionPathsCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "paths [ID]",
		Aliases: []string{"path"},
		Short:   "List the paths (local interface × remote address) of a connection, or of all",
		Long: `List the paths of a connection (all connections without ID): each local
interface × remote address with its state, probe RTT and loss, the IKE SA on
it and its traffic. Paths print as CONNECTION/ID, the form 'sa migrate
--path' takes.`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: a.completeConnectionIDs(true),
		RunE: func(cmd *cobra.Command, args []string) error {
			parent, err := ikeSAParent(args) // same parents as IKE SAs
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				paths, err := listPaths(ctx, c, parent)
				if err != nil {
					return err
				}
				return a.writePaths(paths)
			})
		},
	}
}

func listPaths(ctx context.Context, c *client.Client, parent string) ([]*mifsecv1.Path, error) {
	return listAll(ctx, "paths", func(ctx context.Context, token string) ([]*mifsecv1.Path, string, error) {
		resp, err := c.Connections.ListPaths(ctx, &mifsecv1.ListPathsRequest{Parent: parent, PageSize: listPageSize, PageToken: token})
		return resp.GetPaths(), resp.GetNextPageToken(), err
	})
}

// buildMigrateRequest turns `sa migrate IKE_SA (--interface ID | --path P)`
// into a request; a bare path id is taken in the IKE SA's connection.
func buildMigrateRequest(saArg, iface, path string) (*mifsecv1.MigrateIkeSaRequest, error) {
	name, err := ikeSAName(saArg)
	if err != nil {
		return nil, err
	}
	req := &mifsecv1.MigrateIkeSaRequest{Name: name}
	switch {
	case iface != "" && path != "":
		return nil, asUsage(fmt.Errorf("give --interface or --path, not both"))
	case iface != "":
		n, err := client.Interfaces.Name(iface)
		if err != nil {
			return nil, err
		}
		req.Target = &mifsecv1.MigrateIkeSaRequest_Interface{Interface: n}
	case path != "":
		n, err := pathName(path, strings.Split(name, "/")[1])
		if err != nil {
			return nil, err
		}
		req.Target = &mifsecv1.MigrateIkeSaRequest_Path{Path: n}
	default:
		return nil, asUsage(fmt.Errorf("give the target: --interface ID or --path PATH"))
	}
	return req, nil
}

func newIKESAMigrateCmd(a *app) *cobra.Command {
	var iface, path string
	cmd := &cobra.Command{
		Use:   "migrate IKE_SA (--interface ID | --path PATH)",
		Short: "Move an IKE SA and its Child SAs to an interface or path (MOBIKE, RFC 4555 §3.5)",
		Long: `Move an IKE SA and its Child SAs to an interface or a path of the same
connection (MOBIKE, RFC 4555 §3.5), make-before-break: the target answers a
path test first. It returns when the move is done, or fails with nothing
moved. --path takes CONNECTION/ID, the full name, or an ID of the IKE SA's
connection.`,
		Example:           "  mifsec sa migrate home/0123456789abcdef --interface ran\n  mifsec sa migrate home/0123456789abcdef --path wlan-gw1",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeIKESAs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := buildMigrateRequest(args[0], iface, path)
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.SAs.MigrateIkeSa(ctx, req)
				if err != nil {
					return err
				}
				return a.writeIKESAs([]*mifsecv1.IkeSa{resp.GetIkeSa()}, true)
			})
		},
	}
	cmd.Flags().StringVar(&iface, "interface", "", "move to this interface (`ID`): its address towards the peer")
	cmd.Flags().StringVar(&path, "path", "", "move to this `PATH` of the same connection")
	cmd.MarkFlagsOneRequired("interface", "path")
	cmd.MarkFlagsMutuallyExclusive("interface", "path")
	_ = cmd.RegisterFlagCompletionFunc("interface", a.completeInterfaceIDs)
	_ = cmd.RegisterFlagCompletionFunc("path", a.completer(false, func(ctx context.Context, c *client.Client) ([]completionItem, error) {
		paths, err := listPaths(ctx, c, string(client.Connections)+"/"+anyParent)
		items := make([]completionItem, len(paths))
		for i, p := range paths {
			items[i] = completionItem{shortPathName(p.GetName()), strings.TrimSpace(enumShort(p.GetState()) + " " + p.GetRemoteAddress())}
		}
		return items, err
	}))
	return cmd
}
