// Command gencli writes the docs' CLI reference (internal/web/docs/cli.md)
// from the dev8 command tree itself, so the page says what the binary
// does: go run ./internal/web/gencli > internal/web/docs/cli.md
// (TestCLIReferenceIsCurrent in internal/web fails when it is stale).
package main

import (
	"fmt"
	"os"

	"dev8.dev/dev8/internal/cli"
	"dev8.dev/dev8/internal/web/clidoc"
)

func main() {
	if _, err := fmt.Print(clidoc.Markdown(cli.NewRoot())); err != nil {
		fmt.Fprintln(os.Stderr, "gencli:", err)
		os.Exit(1)
	}
}
