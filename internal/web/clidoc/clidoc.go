// Package clidoc renders a cobra command tree as the docs' CLI reference.
package clidoc

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// Markdown is the CLI reference: every visible command and subcommand with
// its description, usage, examples and flags. The server's own flags are
// left to the configuration reference, which lists them with their
// variables.
func Markdown(root *cobra.Command) string {
	var b strings.Builder
	b.WriteString("# CLI reference\n\n")
	b.WriteString("The `dev8` binary is both the server and the client. Every client command reads the server URL and token that `dev8 login` stored; `DEV8_URL` and `DEV8_TOKEN` win over them, and `--url` and `--token` win over both. `dev8 <command> --help` prints what follows.\n\n")
	b.WriteString("<!-- Generated from the command tree: go run ./internal/web/gencli > internal/web/docs/cli.md -->\n\n")
	for _, c := range root.Commands() {
		writeCommand(&b, c, 2)
	}
	return b.String()
}

func visible(c *cobra.Command) bool {
	return c.IsAvailableCommand() && c.Name() != "help" && c.Name() != "completion"
}

func writeCommand(b *strings.Builder, c *cobra.Command, level int) {
	if !visible(c) {
		return
	}
	fmt.Fprintf(b, "%s %s\n\n", strings.Repeat("#", level), c.CommandPath())
	desc := strings.TrimSpace(c.Long)
	if desc == "" {
		desc = c.Short
	}
	b.WriteString(desc + "\n\n")
	b.WriteString("```text\nUsage:\n  " + c.UseLine() + "\n")
	if len(c.Aliases) > 0 {
		b.WriteString("\nAliases:\n  " + strings.Join(append([]string{c.Name()}, c.Aliases...), ", ") + "\n")
	}
	if c.Example != "" {
		b.WriteString("\nExamples:\n" + strings.TrimRight(c.Example, "\n") + "\n")
	}
	if c.Name() == "server" && c.Parent() == c.Root() {
		b.WriteString("```\n\nIts flags, each with an environment variable, are in the [configuration reference](/docs/configuration).\n\n")
		return
	}
	if flags := c.LocalNonPersistentFlags().FlagUsages(); flags != "" {
		b.WriteString("\nFlags:\n" + strings.TrimRight(flags, "\n") + "\n")
	}
	if flags := c.InheritedFlags().FlagUsages(); flags != "" {
		b.WriteString("\nGlobal flags:\n" + strings.TrimRight(flags, "\n") + "\n")
	}
	b.WriteString("```\n\n")
	for _, sub := range c.Commands() {
		writeCommand(b, sub, level+1)
	}
}
