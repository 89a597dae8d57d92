// Package cli is the dev8 command line: server, supervisor and version.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/joho/godotenv"
	"github.com/spf13/cobra"
)

// NewRoot returns the dev8 command tree.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "dev8",
		Short:         "Dev8: self-hosted cloud development environments",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServerCommand(), newSupervisorCommand(), newVersionCommand())
	root.AddCommand(newLoginCommand(), newLogoutCommand(), newListCommand(), newCreateCommand(), newStartCommand(), newStopCommand(), newRemoveCommand(), newSSHCommand(), newConfigSSHCommand(), newPortForwardCommand(), newTokensCommand(), newUsersCommand(), newInvitesCommand(), newInstanceTypesCommand())
	root.AddCommand(newSnapshotCommand(), newSnapshotsCommand(), newRestoreCommand(), newTemplatesCommand())
	return root
}

// Execute runs the command line and returns the process exit code.
func Execute(ctx context.Context) int {
	// .env is read before the commands are built, because flags take their
	// defaults from the environment. Variables already set win over it.
	if readsDotEnv(os.Args[1:]) {
		if err := godotenv.Load(); err != nil && !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintln(os.Stderr, "dev8: read .env:", err)
			return 1
		}
	}
	if err := NewRoot().ExecuteContext(ctx); err != nil {
		var exit *ExitError
		if errors.As(err, &exit) {
			return exit.Code
		}
		fmt.Fprintln(os.Stderr, "dev8:", err)
		return 1
	}
	return 0
}

// readsDotEnv tells whether a command line takes configuration from ./.env.
// The supervisor does not: it starts in the workspace, where .env belongs to
// the user's project, and whatever it holds would reach every session.
func readsDotEnv(args []string) bool {
	return len(args) == 0 || args[0] != "supervisor"
}

// newLogger returns a text or JSON slog logger at the given level.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}
