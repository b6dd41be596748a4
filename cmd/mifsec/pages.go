package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mifsec/mifsec/client"
)

// Helpers shared by the secret, pool, connection and SA commands: paging,
// completion from the daemon, input files, small cell renderers.

// listPageSize is the largest page_size the API allows (AIP-158).
const listPageSize = 1000

// maxListPages bounds listAll against a daemon that keeps returning a
// next_page_token.
const maxListPages = 100000

// listAll calls page with each next_page_token until the last page and
// returns every item. what names the collection in errors.
func listAll[T any](ctx context.Context, what string, page func(ctx context.Context, token string) ([]T, string, error)) ([]T, error) {
	var all []T
	token := ""
	for range maxListPages {
		items, next, err := page(ctx, token)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		if next == token {
			return nil, fmt.Errorf("list %s: the daemon returned the same page token %q twice", what, next)
		}
		token = next
	}
	return nil, fmt.Errorf("list %s: more than %d pages", what, maxListPages)
}

// completionItem is one suggestion: the text to insert and a description.
type completionItem struct{ value, desc string }

// completer returns a shell completion function listing items from the
// daemon. For arguments it completes the first one only; a daemon that
// cannot be reached gives no suggestions, not an error.
func (a *app) completer(firstArgOnly bool, list func(context.Context, *client.Client) ([]completionItem, error)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if firstArgOnly && len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Second)
		defer cancel()
		c, err := client.Dial(ctx, a.socket, a.dialOptions()...)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer c.Close()
		items, err := list(ctx, c)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, it := range items {
			if strings.HasPrefix(it.value, toComplete) {
				out = append(out, cobra.CompletionWithDesc(it.value, it.desc))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// maxInputFile bounds files read for PEM, JSON and secrets.
const maxInputFile = 1 << 20

// readInput reads a file named on the command line; "-" reads stdin.
func readInput(stdin io.Reader, path string) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		r = stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxInputFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", inputName(path), err)
	}
	if len(b) > maxInputFile {
		clear(b)
		return nil, fmt.Errorf("read %s: larger than %d bytes", inputName(path), maxInputFile)
	}
	return b, nil
}

func inputName(path string) string {
	if path == "-" {
		return "stdin"
	}
	return path
}

// errStdinTwice: two flags of one command cannot both read stdin.
var errStdinTwice = errors.New("only one flag may read stdin (-)")

// formatDuration renders a duration cell, "-" when unset.
func formatDuration(d *durationpb.Duration) string {
	if d == nil {
		return "-"
	}
	return d.AsDuration().String()
}

// joinOr joins list items with commas; an empty list renders as "-".
func joinOr(items []string) string {
	if len(items) == 0 {
		return "-"
	}
	return strings.Join(items, ",")
}

// kebab renders an enum's short name with dashes (private_key → private-key).
func kebab(s string) string { return strings.ReplaceAll(s, "_", "-") }

// kebabEnumFlag is an enum flag whose names are written with dashes
// (`private-key` for SECRET_TYPE_PRIVATE_KEY); underscores work too.
type kebabEnumFlag[T protoEnum] struct{ v *T }

func newKebabEnumFlag[T protoEnum](v *T) *kebabEnumFlag[T] { return &kebabEnumFlag[T]{v} }

func (f *kebabEnumFlag[T]) String() string {
	if *f.v == 0 {
		return ""
	}
	return kebab(enumShort(*f.v))
}

func (f *kebabEnumFlag[T]) Set(s string) error {
	v, err := parseEnum[T](strings.ReplaceAll(s, "-", "_"))
	if err != nil {
		var zero T
		return fmt.Errorf("unknown %s %q (want one of %s)", enumNoun(zero.Descriptor()), s, strings.Join(kebabChoices[T](), ", "))
	}
	*f.v = v
	return nil
}

func (f *kebabEnumFlag[T]) Type() string {
	var zero T
	return strings.ReplaceAll(enumNoun(zero.Descriptor()), " ", "-")
}

// kebabChoices lists the names a kebabEnumFlag accepts.
func kebabChoices[T protoEnum]() []string {
	var zero T
	out := enumChoices(zero.Descriptor())
	for i := range out {
		out[i] = kebab(out[i])
	}
	return out
}

// done reports a verb whose response carries no resource: the (empty)
// response as JSON, or "VERB NAME".
func (a *app) done(resp proto.Message, verb, name string) error {
	if a.json {
		return writeJSON(a.stdout, resp)
	}
	_, err := fmt.Fprintf(a.stdout, "%s %s\n", verb, name)
	return err
}

// field is one line of a detail view.
type field struct{ key, value string }

// writeFields prints a detail view: "key:" and the value in aligned
// columns, "-" for empty values.
func writeFields(w io.Writer, fields []field) error {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	for _, f := range fields {
		v := f.value
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s:\t%s\n", f.key, v)
	}
	return tw.Flush()
}
