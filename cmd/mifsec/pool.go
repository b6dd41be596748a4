package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/mifsec/mifsec/client"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// poolFlags are the settable fields of a Pool.
type poolFlags struct {
	ranges, dns, pcscf []string
}

// poolFields maps each update flag to its Pool field path (AIP-134).
var poolFields = []struct{ flag, path string }{
	{"range", "ranges"},
	{"dns", "dns_servers"},
	{"pcscf", "pcscf_servers"},
}

func (v *poolFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringSliceVar(&v.ranges, "range", nil, "address `RANGE`s, repeatable or comma-separated: CIDR (10.45.0.0/24) or first-last, IPv4 or IPv6")
	fs.StringSliceVar(&v.dns, "dns", nil, "DNS server `ADDRESS`es (INTERNAL_IP4/6_DNS); on update, --dns= clears them")
	fs.StringSliceVar(&v.pcscf, "pcscf", nil, "P-CSCF server `ADDRESS`es (RFC 7651); on update, --pcscf= clears them")
}

// buildPoolCreateRequest turns `pool add ID` into a request.
func buildPoolCreateRequest(idArg string, v *poolFlags) (*mifsecv1.CreatePoolRequest, error) {
	id, err := client.Pools.ID(idArg)
	if err != nil {
		return nil, err
	}
	if len(v.ranges) == 0 {
		return nil, asUsage(errors.New("a pool needs at least one --range"))
	}
	return &mifsecv1.CreatePoolRequest{
		PoolId: id,
		Pool:   &mifsecv1.Pool{Ranges: v.ranges, DnsServers: v.dns, PcscfServers: v.pcscf},
	}, nil
}

// buildPoolUpdateRequest turns `pool update ID` into a request whose mask
// names exactly the flags given.
func buildPoolUpdateRequest(idArg string, fs *pflag.FlagSet, v *poolFlags) (*mifsecv1.UpdatePoolRequest, error) {
	name, err := client.Pools.Name(idArg)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, f := range poolFields {
		if fs.Changed(f.flag) {
			paths = append(paths, f.path)
		}
	}
	if len(paths) == 0 {
		return nil, asUsage(errors.New("nothing to update: set at least one of --range, --dns, --pcscf"))
	}
	if fs.Changed("range") && len(v.ranges) == 0 {
		return nil, asUsage(errors.New("--range must not be empty: a pool needs at least one range"))
	}
	p := &mifsecv1.Pool{Name: name, Ranges: v.ranges, DnsServers: v.dns, PcscfServers: v.pcscf}
	mask, err := fieldmaskpb.New(p, paths...)
	if err != nil {
		return nil, fmt.Errorf("update mask: %w", err)
	}
	return &mifsecv1.UpdatePoolRequest{Pool: p, UpdateMask: mask}, nil
}

// writePools prints pools; a single pool is followed by its leases.
func (a *app) writePools(pools []*mifsecv1.Pool, single bool) error {
	if a.json {
		if single && len(pools) == 1 {
			return writeJSON(a.stdout, pools[0])
		}
		return writeJSONArray(a.stdout, pools)
	}
	if err := writePoolTable(a.stdout, pools); err != nil {
		return err
	}
	if single && len(pools) == 1 {
		if _, err := fmt.Fprintln(a.stdout); err != nil {
			return err
		}
		return writeLeaseTable(a.stdout, pools[0].GetLeases())
	}
	return nil
}

func writePoolTable(w io.Writer, pools []*mifsecv1.Pool) error {
	t := newTable(w, "NAME", "RANGES", "SIZE", "IN_USE", "LEASES", "DNS", "PCSCF")
	for _, p := range pools {
		t.row(
			lastSegment(p.GetName()),
			joinOr(p.GetRanges()),
			fmt.Sprint(p.GetSize()),
			fmt.Sprint(p.GetInUse()),
			fmt.Sprint(len(p.GetLeases())),
			joinOr(p.GetDnsServers()),
			joinOr(p.GetPcscfServers()),
		)
	}
	return t.flush()
}

// writeLeaseTable lists leases, online ones first, otherwise in the
// daemon's order.
func writeLeaseTable(w io.Writer, leases []*mifsecv1.Lease) error {
	sorted := slices.Clone(leases)
	slices.SortStableFunc(sorted, func(x, y *mifsecv1.Lease) int {
		if x.GetOnline() != y.GetOnline() {
			if x.GetOnline() {
				return -1
			}
			return 1
		}
		return 0
	})
	t := newTable(w, "ADDRESS", "IDENTITY", "ONLINE", "LEASED")
	for _, l := range sorted {
		t.row(l.GetAddress(), l.GetIdentity(), yesNo(l.GetOnline()), formatTime(l.GetLeaseTime()))
	}
	return t.flush()
}

func newPoolCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "pool",
		Aliases: []string{"pools"},
		Short:   "Manage the address pools a gateway leases inner addresses from",
	}
	cmd.AddCommand(
		newPoolAddCmd(a),
		newPoolGetCmd(a),
		newPoolListCmd(a),
		newPoolUpdateCmd(a),
		newPoolDeleteCmd(a),
	)
	return cmd
}

func newPoolAddCmd(a *app) *cobra.Command {
	var v poolFlags
	cmd := &cobra.Command{
		Use:     "add ID --range RANGE... [--dns ADDRESS...] [--pcscf ADDRESS...]",
		Aliases: []string{"create"},
		Short:   "Create an address pool",
		Example: "  mifsec pool add ue --range 10.45.0.0/24 --range fd00:45::/112 --dns 192.0.2.53\n" +
			"  mifsec pool add ims --range 10.46.0.10-10.46.0.99 --pcscf 10.46.1.1,fd00:46::1",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := buildPoolCreateRequest(args[0], &v)
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.Pools.CreatePool(ctx, req)
				if err != nil {
					return err
				}
				return a.writePools([]*mifsecv1.Pool{resp.GetPool()}, true)
			})
		},
	}
	v.register(cmd)
	_ = cmd.MarkFlagRequired("range")
	return cmd
}

func newPoolGetCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "get ID",
		Short:             "Show a pool and its leases",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completePoolIDs(true),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := client.Pools.Name(args[0])
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.Pools.GetPool(ctx, &mifsecv1.GetPoolRequest{Name: name})
				if err != nil {
					return err
				}
				return a.writePools([]*mifsecv1.Pool{resp.GetPool()}, true)
			})
		},
	}
}

func newPoolListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List all pools (every page), ordered by name",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				pools, err := listPools(ctx, c)
				if err != nil {
					return err
				}
				return a.writePools(pools, false)
			})
		},
	}
}

func newPoolUpdateCmd(a *app) *cobra.Command {
	var v poolFlags
	cmd := &cobra.Command{
		Use:   "update ID [--range RANGE...] [--dns ADDRESS...] [--pcscf ADDRESS...]",
		Short: "Replace the lists given as flags (ranges may not drop an address leased online)",
		Example: "  mifsec pool update ue --dns 192.0.2.53,192.0.2.54\n" +
			"  mifsec pool update ims --pcscf=",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completePoolIDs(true),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := buildPoolUpdateRequest(args[0], cmd.Flags(), &v)
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.Pools.UpdatePool(ctx, req)
				if err != nil {
					return err
				}
				return a.writePools([]*mifsecv1.Pool{resp.GetPool()}, true)
			})
		},
	}
	v.register(cmd)
	return cmd
}

func newPoolDeleteCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "delete ID",
		Aliases:           []string{"rm", "remove"},
		Short:             "Delete a pool that no connection uses",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completePoolIDs(true),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := client.Pools.Name(args[0])
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.Pools.DeletePool(ctx, &mifsecv1.DeletePoolRequest{Name: name})
				if err != nil {
					return err
				}
				return a.done(resp, "deleted", name)
			})
		},
	}
}

func listPools(ctx context.Context, c *client.Client) ([]*mifsecv1.Pool, error) {
	return listAll(ctx, "pools", func(ctx context.Context, token string) ([]*mifsecv1.Pool, string, error) {
		resp, err := c.Pools.ListPools(ctx, &mifsecv1.ListPoolsRequest{PageSize: listPageSize, PageToken: token})
		return resp.GetPools(), resp.GetNextPageToken(), err
	})
}

// completePoolIDs completes pool ids, described by their ranges.
func (a *app) completePoolIDs(firstArgOnly bool) cobra.CompletionFunc {
	return a.completer(firstArgOnly, func(ctx context.Context, c *client.Client) ([]completionItem, error) {
		pools, err := listPools(ctx, c)
		items := make([]completionItem, len(pools))
		for i, p := range pools {
			items[i] = completionItem{lastSegment(p.GetName()), joinOr(p.GetRanges())}
		}
		return items, err
	})
}
