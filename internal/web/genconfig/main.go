// Command genconfig writes the table of dev8 server's options into the
// configuration reference (internal/web/docs/configuration.md) and the
// README, from the option table in internal/cli/server.go, so neither can
// drift from the binary: go run ./internal/web/genconfig (from the
// repository's root). TestConfigurationReferenceIsCurrent in internal/web
// fails when either is stale.
package main

import (
	"fmt"
	"os"

	"dev8.dev/dev8/internal/cli"
	"dev8.dev/dev8/internal/web/clidoc"
)

func main() {
	for file, where := range map[string]int{
		"internal/web/docs/configuration.md": clidoc.ForDocs,
		"README.md":                          clidoc.ForREADME,
	} {
		if err := rewrite(file, clidoc.OptionsTable(cli.ServerOptions(), where)); err != nil {
			fmt.Fprintln(os.Stderr, "genconfig:", err)
			os.Exit(1)
		}
	}
}

func rewrite(file, table string) error {
	doc, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	out, err := clidoc.SpliceOptions(string(doc), table)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return os.WriteFile(file, []byte(out), 0o644)
}
