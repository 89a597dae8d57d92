// Command dev8 is Dev8's single binary: control plane, workspace supervisor
// and command line.
package main

import (
	"context"
	"os"

	"dev8.dev/dev8/internal/cli"
)

func main() {
	os.Exit(cli.Execute(context.Background()))
}
