package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/mifsec/mifsec/client"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// interfaceFlags are the settable fields of an Interface.
type interfaceFlags struct {
	link         string
	accessType   mifsecv1.AccessType
	priority     uint32
	metered      bool
	allowMissing bool
}

// interfaceFields maps each update flag to its Interface field path
// (update_mask, AIP-134), in mask order.
var interfaceFields = []struct{ flag, path string }{
	{"link", "link"},
	{"access-type", "access_type"},
	{"priority", "priority"},
	{"metered", "metered"},
}

// register adds the flags to cmd; create adds those only `add` takes.
func (v *interfaceFlags) register(cmd *cobra.Command, create bool) {
	fs := cmd.Flags()
	fs.StringVar(&v.link, "link", "", "kernel link name, e.g. wlan0")
	fs.Var(newEnumFlag(&v.accessType), "access-type",
		"`TYPE` of access network: "+strings.Join(enumChoices(mifsecv1.AccessType(0).Descriptor()), "|"))
	fs.Uint32Var(&v.priority, "priority", 0, "preference among interfaces; higher is preferred")
	fs.BoolVar(&v.metered, "metered", false, "traffic on this interface costs money")
	_ = cmd.RegisterFlagCompletionFunc("access-type", enumFlagCompletion[mifsecv1.AccessType]())
	if create {
		fs.BoolVar(&v.allowMissing, "allow-missing", false, "register even if the link does not exist yet (state absent)")
	}
}

// buildCreateRequest turns `interface add ID` and its flags into a request.
func buildCreateRequest(idArg string, v *interfaceFlags) (*mifsecv1.CreateInterfaceRequest, error) {
	id, err := client.Interfaces.ID(idArg)
	if err != nil {
		return nil, err
	}
	return &mifsecv1.CreateInterfaceRequest{
		InterfaceId: id,
		Interface: &mifsecv1.Interface{
			Link:       v.link,
			AccessType: v.accessType,
			Priority:   v.priority,
			Metered:    v.metered,
		},
		AllowMissing: v.allowMissing,
	}, nil
}

// errNothingToUpdate: an empty update_mask means "all fields" to the
// daemon, so an update with no flags must not be sent.
var errNothingToUpdate = errors.New("nothing to update: set at least one of --link, --access-type, --priority, --metered")

// buildUpdateRequest turns `interface update ID` into a request whose mask
// names exactly the flags given on the command line.
func buildUpdateRequest(idArg string, fs *pflag.FlagSet, v *interfaceFlags) (*mifsecv1.UpdateInterfaceRequest, error) {
	name, err := client.Interfaces.Name(idArg)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, f := range interfaceFields {
		if fs.Changed(f.flag) {
			paths = append(paths, f.path)
		}
	}
	if len(paths) == 0 {
		return nil, asUsage(errNothingToUpdate)
	}
	if fs.Changed("link") && v.link == "" {
		return nil, asUsage(errors.New("--link must not be empty"))
	}
	iface := &mifsecv1.Interface{
		Name:       name,
		Link:       v.link,
		AccessType: v.accessType,
		Priority:   v.priority,
		Metered:    v.metered,
	}
	mask, err := fieldmaskpb.New(iface, paths...)
	if err != nil {
		return nil, fmt.Errorf("update mask: %w", err)
	}
	return &mifsecv1.UpdateInterfaceRequest{Interface: iface, UpdateMask: mask}, nil
}

// writeInterfaces prints interfaces as a table, or as JSON: one object when
// single is set, else an array.
func (a *app) writeInterfaces(ifaces []*mifsecv1.Interface, single bool) error {
	if a.json {
		if single && len(ifaces) == 1 {
			return writeJSON(a.stdout, ifaces[0])
		}
		return writeJSONArray(a.stdout, ifaces)
	}
	return writeInterfaceTable(a.stdout, ifaces)
}

func writeInterfaceTable(w io.Writer, ifaces []*mifsecv1.Interface) error {
	t := newTable(w, "NAME", "LINK", "ACCESS", "PRIORITY", "METERED", "STATE", "ADDRESSES")
	for _, i := range ifaces {
		t.row(
			lastSegment(i.GetName()),
			i.GetLink(),
			enumShort(i.GetAccessType()),
			fmt.Sprint(i.GetPriority()),
			yesNo(i.GetMetered()),
			enumShort(i.GetState()),
			strings.Join(i.GetAddresses(), ","),
		)
	}
	return t.flush()
}

func newInterfaceCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "interface",
		Aliases: []string{"interfaces", "iface", "if"},
		Short:   "Manage the network interfaces mifsec may use",
	}
	cmd.AddCommand(
		newInterfaceAddCmd(a),
		newInterfaceGetCmd(a),
		newInterfaceListCmd(a),
		newInterfaceUpdateCmd(a),
		newInterfaceDeleteCmd(a),
	)
	return cmd
}

func newInterfaceAddCmd(a *app) *cobra.Command {
	var v interfaceFlags
	cmd := &cobra.Command{
		Use:     "add ID --link LINK --access-type TYPE",
		Aliases: []string{"create"},
		Short:   "Register a kernel link as an interface",
		Example: "  mifsec interface add wlan --link wlan0 --access-type wlan --priority 10\n" +
			"  mifsec interface add ran --link rmnet0 --access-type ran --metered --allow-missing",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := buildCreateRequest(args[0], &v)
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.Interfaces.CreateInterface(ctx, req)
				if err != nil {
					return err
				}
				return a.writeInterfaces([]*mifsecv1.Interface{resp.GetInterface()}, true)
			})
		},
	}
	v.register(cmd, true)
	_ = cmd.MarkFlagRequired("link")
	_ = cmd.MarkFlagRequired("access-type")
	return cmd
}

func newInterfaceGetCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "get ID",
		Short:             "Show one interface",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeInterfaceIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := client.Interfaces.Name(args[0])
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.Interfaces.GetInterface(ctx, &mifsecv1.GetInterfaceRequest{Name: name})
				if err != nil {
					return err
				}
				return a.writeInterfaces([]*mifsecv1.Interface{resp.GetInterface()}, true)
			})
		},
	}
}

func newInterfaceListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List all interfaces (every page), ordered by name",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				ifaces, err := c.ListAllInterfaces(ctx)
				if err != nil {
					return err
				}
				return a.writeInterfaces(ifaces, false)
			})
		},
	}
}

func newInterfaceUpdateCmd(a *app) *cobra.Command {
	var v interfaceFlags
	cmd := &cobra.Command{
		Use:   "update ID [--link LINK] [--access-type TYPE] [--priority N] [--metered=true|false]",
		Short: "Change the fields of an interface given as flags",
		Example: "  mifsec interface update wlan --priority 20\n" +
			"  mifsec interface update ran --metered=false",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeInterfaceIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := buildUpdateRequest(args[0], cmd.Flags(), &v)
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.Interfaces.UpdateInterface(ctx, req)
				if err != nil {
					return err
				}
				return a.writeInterfaces([]*mifsecv1.Interface{resp.GetInterface()}, true)
			})
		},
	}
	v.register(cmd, false)
	return cmd
}

func newInterfaceDeleteCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "delete ID",
		Aliases:           []string{"rm", "remove"},
		Short:             "Withdraw an interface: it is no longer used nor announced",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeInterfaceIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := client.Interfaces.Name(args[0])
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.Interfaces.DeleteInterface(ctx, &mifsecv1.DeleteInterfaceRequest{Name: name})
				if err != nil {
					return err
				}
				if a.json {
					return writeJSON(a.stdout, resp)
				}
				_, err = fmt.Fprintf(a.stdout, "deleted %s\n", name)
				return err
			})
		},
	}
}

// completeInterfaceIDs asks the daemon for interface ids (shell completion).
// A daemon that cannot be reached gives no suggestions, not an error.
func (a *app) completeInterfaceIDs(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, a.socket, a.dialOptions()...)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer c.Close()
	ifaces, err := c.ListAllInterfaces(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, i := range ifaces {
		if id := lastSegment(i.GetName()); strings.HasPrefix(id, toComplete) {
			out = append(out, cobra.CompletionWithDesc(id, i.GetLink()))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
