package web_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"dev8.dev/dev8/internal/cli"
	"dev8.dev/dev8/internal/web/clidoc"
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
// README's configuration table (generated: see
// TestConfigurationReferenceIsCurrent).
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

// The docs' CLI reference is what go run ./internal/web/gencli writes now.
func TestCLIReferenceIsCurrent(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(doc) != clidoc.Markdown(cli.NewRoot()) {
		t.Error("docs/cli.md is stale: run go run ./internal/web/gencli > internal/web/docs/cli.md")
	}
}

// The tables of dev8 server's options in the configuration reference and the
// README are what go run ./internal/web/genconfig writes from the option
// table now.
func TestConfigurationReferenceIsCurrent(t *testing.T) {
	t.Parallel()
	for file, where := range map[string]int{"docs/configuration.md": clidoc.ForDocs, "../../README.md": clidoc.ForREADME} {
		doc, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		want, err := clidoc.SpliceOptions(string(doc), clidoc.OptionsTable(cli.ServerOptions(), where))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if string(doc) != want {
			t.Errorf("%s is stale: run go run ./internal/web/genconfig", file)
		}
	}
}

// The README's table links to its own sections, the docs' to their pages;
// a cell never breaks out of the table.
func TestOptionsTableMarkdown(t *testing.T) {
	t.Parallel()
	opts := []cli.ServerOption{{Flag: "x", Env: "DEV8_X", Default: "`<data-dir>/x`", Help: "a | b <c> `d|e` f*; see [M](/docs/configuration#metrics)"}}
	docs := clidoc.OptionsTable(opts, clidoc.ForDocs)
	if !strings.Contains(docs, "| `--x` | `DEV8_X` | `<data-dir>/x` | a \\| b &lt;c> `d\\|e` f\\*; see [M](/docs/configuration#metrics) |") {
		t.Errorf("docs table:\n%s", docs)
	}
	if readme := clidoc.OptionsTable(opts, clidoc.ForREADME); !strings.Contains(readme, "[M](#metrics)") {
		t.Errorf("README table:\n%s", readme)
	}
}
