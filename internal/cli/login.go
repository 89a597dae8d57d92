package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/sdk"
)

func newLoginCommand() *cobra.Command {
	var (
		flags clientFlags
		email string
	)
	cmd := &cobra.Command{
		Use:   "login [server URL]",
		Short: "Log in to a Dev8 server and remember the token",
		Long: `dev8 login asks for your email and password (the password is not echoed),
exchanges them for an API token, and stores the server URL and the token in
` + "`<user config dir>/dev8/config.json`" + ` (readable by you only). With --token it
stores an existing token instead. Either way the token is checked first.

Without a terminal, the email and the password are read as two lines from
standard input, so scripts can pipe them. DEV8_URL and DEV8_TOKEN, when set,
win over the stored login in every command; --url and --token win over both.`,
		Example: `  dev8 login http://127.0.0.1:3000
  dev8 login https://dev8.example.com --token "$DEV8_TOKEN"
  printf '%s\n%s\n' ada@example.com "$PASSWORD" | dev8 login https://dev8.example.com`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			stored, err := loadConfig(ctx)
			if err != nil && len(args) == 0 && flags.url == "" {
				return err
			}
			raw := DefaultURL
			if len(args) == 1 {
				raw = args[0]
			} else {
				raw = firstNonEmpty(flags.url, getenv(ctx, envURL), stored.URL, raw)
			}
			url, err := normalizeURL(raw)
			if err != nil {
				return err
			}
			token := flags.token
			if token == "" {
				email, password, err := readCredentials(cmd, email)
				if err != nil {
					return err
				}
				token, _, err = newSDKClient(url, "").Login(ctx, email, password)
				if err != nil {
					return fmt.Errorf("log in to %s: %w", url, err)
				}
			}
			me, err := newSDKClient(url, token).Me(ctx)
			if err != nil {
				if sdk.IsUnauthorized(err) {
					return fmt.Errorf("%s does not accept this token: %w", url, err)
				}
				return fmt.Errorf("check the token with %s: %w", url, err)
			}
			path, err := saveConfig(ctx, userConfig{URL: url, Token: token})
			if err != nil {
				return err
			}
			who := me.Email
			if me.Name != "" {
				who = fmt.Sprintf("%s (%s)", me.Email, me.Name)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Logged in to %s as %s.\n", url, who)
			fmt.Fprintf(out, "Saved to %s.\n", path)
			if v := getenv(ctx, envToken); v != "" && v != token {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: %s is set and wins over the stored token\n", envToken)
			}
			return nil
		},
	}
	flags.register(cmd)
	cmd.Flags().StringVar(&email, "email", "", "email to log in with (asked for when not given)")
	return cmd
}

// readCredentials asks for the email (unless given) and the password: on a
// terminal with prompts and no echo for the password, otherwise as lines
// from standard input.
func readCredentials(cmd *cobra.Command, email string) (string, string, error) {
	in := cmd.InOrStdin()
	fd, tty := terminalFd(in)
	prompt := cmd.ErrOrStderr()
	if !tty {
		prompt = io.Discard
	}
	r := bufio.NewReader(in)
	if email == "" {
		fmt.Fprint(prompt, "Email: ")
		line, err := readLine(r)
		if err != nil {
			return "", "", fmt.Errorf("read email: %w", err)
		}
		email = line
	}
	if email == "" {
		return "", "", errors.New("no email given")
	}
	var password string
	if tty {
		fmt.Fprint(prompt, "Password: ")
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(prompt)
		if err != nil {
			return "", "", fmt.Errorf("read password: %w", err)
		}
		password = string(b)
	} else {
		line, err := readLine(r)
		if err != nil {
			return "", "", fmt.Errorf("read password: %w", err)
		}
		password = line
	}
	if password == "" {
		return "", "", errors.New("no password given")
	}
	return email, password, nil
}

// readLine reads one line without its line ending; the last line may lack
// a newline.
func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("standard input ended")
		}
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func newLogoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "End the session and forget the stored server and token",
		Long: `dev8 logout ends the session dev8 login started (the server stops accepting
its token at once) and removes the login file. A token stored with
dev8 login --token (an API token) is only forgotten: revoke it with
dev8 tokens rm.`,
		Example: "  dev8 logout",
		Args:    cobra.NoArgs,
		RunE: withFriendlyErrors(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			stored, _ := loadConfig(ctx)
			path, err := configPath(ctx)
			if err != nil {
				return err
			}
			if stored.URL != "" && strings.HasPrefix(stored.Token, auth.SessionTokenPrefix) {
				// Best effort: the file goes either way, and a session the
				// server no longer knows (401) is already over.
				lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := newSDKClient(stored.URL, stored.Token).Logout(lctx)
				cancel()
				if err != nil && !sdk.IsUnauthorized(err) {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: could not end the session on %s (%v); it expires unused in 30 days\n", stored.URL, err)
				}
			}
			if err := os.Remove(path); errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintln(cmd.OutOrStdout(), "Not logged in.")
				return nil
			} else if err != nil {
				return fmt.Errorf("remove %s: %w", path, err)
			}
			if stored.URL != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "Logged out of %s.\n", stored.URL)
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), "Logged out.")
			}
			return nil
		}),
	}
}
