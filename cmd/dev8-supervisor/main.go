// Command dev8-supervisor is the process that runs inside every workspace:
// `dev8 supervisor` without the rest of dev8. It links internal/supervisor
// and what that needs, and none of the server, the stores, the web pages or
// the command line, so it idles in about half the memory (docs/benchmarks.md,
// "Supervisor RSS").
//
// Users never see it: `make build` builds it first and embeds it in dev8
// (internal/supervisorbin), and `dev8 server` writes it to
// <data-dir>/bin/dev8-supervisor-<sha256 prefix> and starts every workspace
// with it, on the local runtime and inside docker containers alike. A dev8
// built without it (plain `go build ./cmd/dev8`) runs `dev8 supervisor`
// instead.
//
// It takes the same command line as `dev8 supervisor`, so the runtimes
// start either with the same argv ([binary, "supervisor"]): the word
// "supervisor" (optional here), then nothing but -h/--help, or `install
// PATH`, which copies the binary to PATH (supervisor.InstallSelf), or
// `seed-home SRC DST` (supervisor.SeedHome).
// Everything else comes from the DEV8_* environment variables
// internal/supervisor documents.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"dev8.dev/dev8/internal/supervisor"
)

const usage = `dev8 supervisor runs inside every workspace. The runtime starts it and
configures it through DEV8_* environment variables; people do not run it by hand.

Usage:
  %s supervisor
  %[1]s install PATH   copy this executable to PATH (a Kubernetes
                       workspace's init container does)
  %[1]s seed-home SRC DST
                       copy the image's home SRC into DST, the home's volume,
                       if that is empty (another init container does)
`

func main() {
	os.Exit(run(context.Background(), os.Args, os.Stdout, os.Stderr))
}

// run is main without the exit: the exit code for argv.
func run(ctx context.Context, argv []string, stdout, stderr io.Writer) int {
	args := argv[1:]
	if len(args) > 0 && args[0] == "supervisor" {
		args = args[1:]
	}
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintf(stdout, usage, argv[0])
		return 0
	}
	if len(args) > 0 && args[0] == "install" {
		if len(args) != 2 {
			fmt.Fprintf(stderr, "dev8 supervisor install: want one PATH\n\n"+usage, argv[0])
			return 1
		}
		if err := supervisor.InstallSelf(args[1]); err != nil {
			fmt.Fprintln(stderr, "dev8 supervisor:", err)
			return 1
		}
		return 0
	}
	if len(args) > 0 && args[0] == "seed-home" {
		if len(args) != 3 {
			fmt.Fprintf(stderr, "dev8 supervisor seed-home: want SRC and DST\n\n"+usage, argv[0])
			return 1
		}
		if err := supervisor.SeedHome(args[1], args[2], stderr); err != nil {
			fmt.Fprintln(stderr, "dev8 supervisor:", err)
			return 1
		}
		return 0
	}
	if len(args) > 0 {
		fmt.Fprintf(stderr, "dev8 supervisor: unexpected arguments %q (it is configured through DEV8_* variables)\n\n"+usage, args, argv[0])
		return 1
	}
	if err := supervisor.Main(ctx); err != nil {
		fmt.Fprintln(stderr, "dev8 supervisor:", err)
		return 1
	}
	return 0
}
