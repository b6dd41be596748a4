// Command mifsec is the command-line client of mifsecd: it manages
// interfaces (and, as the API grows, connections, SAs, pools, secrets,
// steering rules) and watches events over the daemon's gRPC API.
//
// Each resource lives in its own file (interface.go, watch.go) that builds a
// cobra command from the shared pieces: the app (global flags, dialling,
// errors) in root.go and errors.go, table and JSON output in output.go, enum
// flags in enum.go.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
