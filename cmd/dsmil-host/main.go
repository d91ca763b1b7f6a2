// Command dsmil-host runs and administers the DSMIL L7 plane.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/dsmil/l7/host/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
