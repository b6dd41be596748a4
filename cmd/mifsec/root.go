package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/mifsec/mifsec/client"
)

// app holds what every command shares: global flags, output streams and the
// environment. One app per run; nothing global.
type app struct {
	stdout, stderr io.Writer

	socket           string
	json             bool
	timeout          time.Duration
	tlsCert          string
	tlsKey           string
	tlsCA            string
	tlsServerName    string
	insecureLoopback bool

	// started is set once a command's RunE is reached: errors before it are
	// usage errors (flags, arguments).
	started bool
}

const rootLong = `mifsec drives mifsecd, the mifsec IKEv2/IPsec daemon, over its gRPC API.

The daemon is reached on a unix socket (--socket, $MIFSEC_SOCKET, default
/run/mifsec/mifsec.sock), as unix:///path, or as host:port over TCP, which
needs mutual TLS (--tls-cert, --tls-key, --tls-ca) or, to a loopback address
only, --insecure-loopback.

Output is a table by default. With --json:
  get, add, update   one JSON object, the resource (protojson, camelCase names)
  list               one JSON array of resources
  delete             the empty response object {}
  watch              JSON lines: one Event object per line
Resource ids may be given as "wlan" or "interfaces/wlan".

Exit codes:
  0    success
  1    local failure (files, output)
  2    usage: bad flag, argument, id or target
  3    INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE
  4    NOT_FOUND
  5    ALREADY_EXISTS, ABORTED
  6    PERMISSION_DENIED, UNAUTHENTICATED
  7    UNAVAILABLE, DEADLINE_EXCEEDED (daemon not reachable or too slow)
  8    RESOURCE_EXHAUSTED (e.g. a watcher that fell behind)
  9    any other error from the daemon (INTERNAL, UNIMPLEMENTED, ...)
  130  interrupted`

// newRootCmd builds the command tree. getenv supplies defaults from the
// environment ($MIFSEC_SOCKET).
func newRootCmd(a *app, getenv func(string) string) *cobra.Command {
	root := &cobra.Command{
		Use:           "mifsec",
		Short:         "Control mifsecd, the mifsec IKEv2/IPsec daemon",
		Long:          rootLong,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Cobra checks required flags and flag groups only after this
		// hook; check them first so that they count as usage errors.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := cmd.ValidateRequiredFlags(); err != nil {
				return err
			}
			if err := cmd.ValidateFlagGroups(); err != nil {
				return err
			}
			a.started = true
			return nil
		},
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)

	socket := getenv("MIFSEC_SOCKET")
	if socket == "" {
		socket = client.DefaultSocket
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.socket, "socket", socket, "daemon address: unix socket path, unix:///path or host:port ($MIFSEC_SOCKET)")
	pf.BoolVar(&a.json, "json", false, "print JSON (protojson) instead of tables")
	pf.DurationVar(&a.timeout, "timeout", 10*time.Second, "deadline for each command (for watch: for connecting only); 0 for none")
	pf.StringVar(&a.tlsCert, "tls-cert", "", "client certificate (PEM) for mutual TLS over TCP")
	pf.StringVar(&a.tlsKey, "tls-key", "", "client private key (PEM) for mutual TLS over TCP")
	pf.StringVar(&a.tlsCA, "tls-ca", "", "CA certificates (PEM) that sign the daemon's certificate")
	pf.StringVar(&a.tlsServerName, "tls-server-name", "", "name to check in the daemon's certificate (default: the target host)")
	pf.BoolVar(&a.insecureLoopback, "insecure-loopback", false, "allow plaintext TCP to a loopback address (testing only)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return err })

	root.AddCommand(
		newInterfaceCmd(a),
		newConnectionCmd(a),
		newSACmd(a),
		newPoolCmd(a),
		newSecretCmd(a),
		newSteeringCmd(a),
		newWatchCmd(a),
	)
	return root
}

// dialOptions turns the TLS flags into client options.
func (a *app) dialOptions() []client.Option {
	var opts []client.Option
	if a.tlsCert != "" || a.tlsKey != "" || a.tlsCA != "" {
		opts = append(opts, client.WithTLSFiles(a.tlsCert, a.tlsKey, a.tlsCA, a.tlsServerName))
	}
	if a.insecureLoopback {
		opts = append(opts, client.WithInsecureLoopback())
	}
	return opts
}

// withTimeout bounds ctx by --timeout, unless it is 0.
func (a *app) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if a.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, a.timeout)
}

// call dials the daemon and runs fn, all within --timeout.
func (a *app) call(ctx context.Context, fn func(context.Context, *client.Client) error) error {
	ctx, cancel := a.withTimeout(ctx)
	defer cancel()
	c, err := client.Dial(ctx, a.socket, a.dialOptions()...)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(ctx, c)
}

// run executes the CLI with args and returns the process exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := newRootCmd(a, getenv)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	if ctx.Err() != nil {
		return exitInterrupted
	}
	if !a.started {
		err = &usageError{err}
	}
	code := exitCode(err)
	fmt.Fprintf(stderr, "error: %s\n", errorText(err))
	var ue *usageError
	if errors.As(err, &ue) && cmd != nil {
		fmt.Fprintf(stderr, "run '%s --help' for usage\n", cmd.CommandPath())
	}
	return code
}
