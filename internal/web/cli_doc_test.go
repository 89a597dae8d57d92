package web_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"dev8.dev/dev8/internal/cli"
)

// The docs' CLI reference (made by go run ./internal/web/gencli) has a
// section for every command of the binary, and none for a command it no
// longer has.
func TestCLIReferenceCoversEveryCommand(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#{2,4} (dev8( [a-z-]+)+)$`).FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	commands := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() && sub.Name() != "help" && sub.Name() != "completion" {
				commands[sub.CommandPath()] = true
				walk(sub)
			}
		}
	}
	walk(cli.NewRoot())
	for c := range commands {
		if !documented[c] {
			t.Errorf("docs/cli.md has no section for %s: run go run ./internal/web/gencli > internal/web/docs/cli.md", c)
		}
	}
	for d := range documented {
		if !commands[d] {
			t.Errorf("docs/cli.md documents %s, which the binary does not have", d)
		}
	}
	if len(commands) < 10 || !strings.Contains(string(doc), "dev8 create") {
		t.Fatalf("found %d commands; the walk is broken", len(commands))
	}
}

// Every flag of dev8 server is in the configuration reference and in the
// README's configuration table, which are written by hand.
func TestConfigurationReferenceCoversEveryServerFlag(t *testing.T) {
	t.Parallel()
	var server *cobra.Command
	for _, c := range cli.NewRoot().Commands() {
		if c.Name() == "server" {
			server = c
		}
	}
	if server == nil {
		t.Fatal("no server command")
	}
	for _, file := range []string{"docs/configuration.md", "../../README.md"} {
		doc, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		server.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Hidden || f.Name == "help" {
				return
			}
			n++
			if !strings.Contains(string(doc), "`--"+f.Name+"`") {
				t.Errorf("%s does not document dev8 server --%s", file, f.Name)
			}
		})
		if n < 20 {
			t.Fatalf("found %d server flags; the walk is broken", n)
		}
	}
}
