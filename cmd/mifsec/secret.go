package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mifsec/mifsec/client"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// secretBytes is a secret value read from a file or stdin. Every fmt verb
// prints [redacted]; wipe zeroes it once the request is sent.
type secretBytes []byte

const redacted = "[redacted]"

func (s secretBytes) String() string             { return redacted }
func (s secretBytes) GoString() string           { return redacted }
func (s secretBytes) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }
func (s secretBytes) wipe()                      { clear(s) }

// secretFlags are the flags of `secret add`. The value never comes from a
// flag: it would land in shell history and in /proc/PID/cmdline.
type secretFlags struct {
	typ        mifsecv1.SecretType
	fromFile   string
	valueStdin bool
}

func (v *secretFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.Var(newKebabEnumFlag(&v.typ), "type", "`TYPE` of secret: "+strings.Join(kebabChoices[mifsecv1.SecretType](), "|"))
	fs.StringVar(&v.fromFile, "from-file", "", "read the value from `FILE`, byte for byte (- for stdin)")
	fs.BoolVar(&v.valueStdin, "value-stdin", false, "read the value from stdin, without its final newline (prompted, not echoed, on a terminal)")
	_ = cmd.RegisterFlagCompletionFunc("type", cobra.FixedCompletions(kebabChoices[mifsecv1.SecretType](), cobra.ShellCompDirectiveNoFileComp))
	cmd.MarkFlagsOneRequired("from-file", "value-stdin")
	cmd.MarkFlagsMutuallyExclusive("from-file", "value-stdin")
	_ = cmd.MarkFlagRequired("type")
}

// errEmptySecret: an empty PSK or key is never what the operator meant.
var errEmptySecret = errors.New("the secret value is empty")

// readSecret reads the value as the flags say. A terminal on stdin is
// prompted on prompt with echo off.
func (v *secretFlags) readSecret(ctx context.Context, stdin io.Reader, prompt io.Writer) (secretBytes, error) {
	var (
		b   []byte
		err error
	)
	switch {
	case v.fromFile != "":
		b, err = readInput(stdin, v.fromFile)
	case v.valueStdin:
		if f, ok := stdin.(*os.File); ok && isTerminal(f) {
			b, err = readHiddenLine(ctx, f, prompt, "secret value (not echoed): ")
		} else {
			b, err = readInput(stdin, "-")
		}
		if err == nil {
			b = trimNewline(b)
		}
	default:
		return nil, asUsage(errors.New("give the value with --from-file FILE or --value-stdin"))
	}
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, asUsage(errEmptySecret)
	}
	return secretBytes(b), nil
}

// trimNewline drops one final "\n" or "\r\n" (what echo and terminals add).
func trimNewline(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// buildSecretRequest turns `secret add ID` into a request. The value goes
// as Secret.value (exact bytes) so that the caller can wipe it afterwards.
func buildSecretRequest(idArg string, typ mifsecv1.SecretType, value secretBytes) (*mifsecv1.CreateSecretRequest, error) {
	id, err := client.Secrets.ID(idArg)
	if err != nil {
		return nil, err
	}
	return &mifsecv1.CreateSecretRequest{
		SecretId: id,
		Secret:   &mifsecv1.Secret{Type: typ, Data: &mifsecv1.Secret_Value{Value: value}},
	}, nil
}

// writeSecrets prints secrets (never values: the API has none to give).
func (a *app) writeSecrets(secrets []*mifsecv1.Secret, single bool) error {
	if a.json {
		if single && len(secrets) == 1 {
			return writeJSON(a.stdout, secrets[0])
		}
		return writeJSONArray(a.stdout, secrets)
	}
	return writeSecretTable(a.stdout, secrets)
}

func writeSecretTable(w io.Writer, secrets []*mifsecv1.Secret) error {
	t := newTable(w, "NAME", "TYPE", "DESCRIPTION", "USED_BY", "CREATED")
	for _, s := range secrets {
		used := make([]string, len(s.GetUsedBy()))
		for i, u := range s.GetUsedBy() {
			used[i] = lastSegment(u)
		}
		t.row(
			lastSegment(s.GetName()),
			kebab(enumShort(s.GetType())),
			s.GetDescription(),
			strings.Join(used, ","),
			formatTime(s.GetCreateTime()),
		)
	}
	return t.flush()
}

func newSecretCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "secret",
		Aliases: []string{"secrets"},
		Short:   "Manage pre-shared keys and private keys (write-only)",
		Long: `Manage pre-shared keys and private keys.

Secrets are write-only: the daemon never returns a value, only its type, a
description (length or key algorithm) and the connections that use it.
Values are never taken from flags (shell history); they come from a file or
stdin.`,
	}
	cmd.AddCommand(
		newSecretAddCmd(a),
		newSecretGetCmd(a),
		newSecretListCmd(a),
		newSecretDeleteCmd(a),
	)
	return cmd
}

func newSecretAddCmd(a *app) *cobra.Command {
	var v secretFlags
	cmd := &cobra.Command{
		Use:     "add ID --type psk|private-key (--from-file FILE | --value-stdin)",
		Aliases: []string{"create"},
		Short:   "Store a secret",
		Example: "  mifsec secret add home-psk --type psk --value-stdin\n" +
			"  head -c 32 /dev/urandom | mifsec secret add gw-psk --type psk --from-file -\n" +
			"  mifsec secret add ue-key --type private-key --from-file ue.key.pem",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := client.Secrets.ID(args[0]); err != nil {
				return err
			}
			value, err := v.readSecret(cmd.Context(), cmd.InOrStdin(), a.stderr)
			if err != nil {
				return err
			}
			defer value.wipe()
			req, err := buildSecretRequest(args[0], v.typ, value)
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.Secrets.CreateSecret(ctx, req)
				if err != nil {
					return err
				}
				return a.writeSecrets([]*mifsecv1.Secret{resp.GetSecret()}, true)
			})
		},
	}
	v.register(cmd)
	return cmd
}

func newSecretGetCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "get ID",
		Short:             "Show a secret's metadata (never its value)",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeSecretIDs(true),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := client.Secrets.Name(args[0])
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.Secrets.GetSecret(ctx, &mifsecv1.GetSecretRequest{Name: name})
				if err != nil {
					return err
				}
				return a.writeSecrets([]*mifsecv1.Secret{resp.GetSecret()}, true)
			})
		},
	}
}

func newSecretListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List all secrets (every page), ordered by name",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				secrets, err := listSecrets(ctx, c)
				if err != nil {
					return err
				}
				return a.writeSecrets(secrets, false)
			})
		},
	}
}

func newSecretDeleteCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:               "delete ID",
		Aliases:           []string{"rm", "remove"},
		Short:             "Delete a secret that no connection uses",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeSecretIDs(true),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := client.Secrets.Name(args[0])
			if err != nil {
				return err
			}
			return a.call(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.Secrets.DeleteSecret(ctx, &mifsecv1.DeleteSecretRequest{Name: name})
				if err != nil {
					return err
				}
				return a.done(resp, "deleted", name)
			})
		},
	}
}

func listSecrets(ctx context.Context, c *client.Client) ([]*mifsecv1.Secret, error) {
	return listAll(ctx, "secrets", func(ctx context.Context, token string) ([]*mifsecv1.Secret, string, error) {
		resp, err := c.Secrets.ListSecrets(ctx, &mifsecv1.ListSecretsRequest{PageSize: listPageSize, PageToken: token})
		return resp.GetSecrets(), resp.GetNextPageToken(), err
	})
}

// completeSecretIDs completes secret ids, described by their type.
func (a *app) completeSecretIDs(firstArgOnly bool) cobra.CompletionFunc {
	return a.completer(firstArgOnly, func(ctx context.Context, c *client.Client) ([]completionItem, error) {
		secrets, err := listSecrets(ctx, c)
		items := make([]completionItem, len(secrets))
		for i, s := range secrets {
			items[i] = completionItem{lastSegment(s.GetName()), kebab(enumShort(s.GetType()))}
		}
		return items, err
	})
}
