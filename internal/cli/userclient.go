package cli

// What the people-facing commands share: where the server and token come
// from, the login file, name resolution, waiting with progress, and exit
// codes.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"dev8.dev/dev8/sdk"
)

// Environment variables the people-facing commands read.
const (
	envURL       = "DEV8_URL"
	envToken     = "DEV8_TOKEN"
	envConfigDir = "DEV8_CONFIG_DIR" // overrides os.UserConfigDir()/dev8
)

// DefaultURL is the server a fresh `dev8 login` talks to when given none:
// where `dev8 server` listens by default.
const DefaultURL = "http://127.0.0.1:3000"

// environKey carries an environment that replaces the process's, for
// in-process runs (tests).
type environKey struct{}

func withEnviron(ctx context.Context, env map[string]string) context.Context {
	return context.WithValue(ctx, environKey{}, env)
}

func getenv(ctx context.Context, name string) string {
	if env, ok := ctx.Value(environKey{}).(map[string]string); ok {
		return env[name]
	}
	return os.Getenv(name)
}

// ExitError is a command's wish to end with a given status and no message:
// `dev8 ssh ENV -- CMD` ends with the remote command's status.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// ExitCode is the status to exit with.
func (e *ExitError) ExitCode() int { return e.Code }

// exitWith makes the command end with code (Execute exits with it, without
// a message), once the command has cleaned up.
func exitWith(code int) error {
	if code == 0 {
		return nil
	}
	return &ExitError{Code: code}
}

// userConfig is what `dev8 login` stores: config.json in configDir.
type userConfig struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

func configDir(ctx context.Context) (string, error) {
	if d := getenv(ctx, envConfigDir); d != "" {
		return d, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the config directory (set %s): %w", envConfigDir, err)
	}
	return filepath.Join(d, "dev8"), nil
}

func configPath(ctx context.Context) (string, error) {
	d, err := configDir(ctx)
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "config.json"), nil
}

// loadConfig reads the login file; none is the zero config.
func loadConfig(ctx context.Context) (userConfig, error) {
	var cfg userConfig
	p, err := configPath(ctx)
	if err != nil {
		return cfg, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, fmt.Errorf("read %s: %w", p, err)
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return cfg, fmt.Errorf("read %s: %w (log in again with: dev8 login)", p, err)
	}
	return cfg, nil
}

// saveConfig writes the login file readable by its owner only (directory
// 0700, file 0600), atomically.
func saveConfig(ctx context.Context, cfg userConfig) (string, error) {
	p, err := configPath(ctx)
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("restrict %s: %w", dir, err)
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", err
	}
	if err := writeFileAtomic(p, append(data, '\n'), 0o600); err != nil {
		return "", err
	}
	return p, nil
}

// writeFileAtomic replaces path with data: a temporary file in the same
// directory, synced, given mode, renamed over path.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// clientFlags are --url and --token, which every people-facing command has.
type clientFlags struct {
	url, token string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.url, "url", "", "Dev8 server URL ("+envURL+"; default: the one from dev8 login)")
	cmd.PersistentFlags().StringVar(&f.token, "token", "", "API token ("+envToken+"; default: the one from dev8 login)")
}

// target is where a command talks to and with which token.
type target struct {
	url, token string
	// stored is the login file's config.
	stored userConfig
}

// resolve picks the server and token: flags win over DEV8_URL/DEV8_TOKEN,
// which win over the login file. The stored token is only sent to the
// stored server.
func (f *clientFlags) resolve(ctx context.Context) (target, error) {
	stored, err := loadConfig(ctx)
	if err != nil {
		return target{}, err
	}
	s := target{url: firstNonEmpty(f.url, getenv(ctx, envURL), stored.URL), stored: stored}
	if s.url != "" {
		if s.url, err = normalizeURL(s.url); err != nil {
			return target{}, err
		}
	}
	s.token = firstNonEmpty(f.token, getenv(ctx, envToken))
	if s.token == "" && stored.Token != "" && sameURL(s.url, stored.URL) {
		s.token = stored.Token
	}
	return s, nil
}

// client resolves the server and token and requires both.
func (f *clientFlags) client(ctx context.Context) (*sdk.Client, target, error) {
	s, err := f.resolve(ctx)
	if err != nil {
		return nil, s, err
	}
	if s.url == "" || s.token == "" {
		what := "not logged in"
		if s.url != "" {
			what = "not logged in to " + s.url
		}
		return nil, s, fmt.Errorf("%s: run \"dev8 login <server URL>\" (or set %s and %s)", what, envURL, envToken)
	}
	return newSDKClient(s.url, s.token), s, nil
}

// run is the RunE of a command that talks to the server: it makes the
// client, runs do with it and makes do's error friendly.
func (f *clientFlags) run(do func(ctx context.Context, cmd *cobra.Command, c *sdk.Client, args []string) error) func(*cobra.Command, []string) error {
	return withFriendlyErrors(func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		c, _, err := f.client(ctx)
		if err != nil {
			return err
		}
		return do(ctx, cmd, c, args)
	})
}

// environment is client, then the environment named nameOrID.
func (f *clientFlags) environment(ctx context.Context, nameOrID string) (*sdk.Client, *sdk.Environment, error) {
	c, _, err := f.client(ctx)
	if err != nil {
		return nil, nil, err
	}
	env, err := c.FindEnvironment(ctx, nameOrID)
	if err != nil {
		return nil, nil, err
	}
	return c, env, nil
}

func newSDKClient(url, token string) *sdk.Client {
	return sdk.New(url, token, sdk.WithUserAgent("dev8-cli/"+version()))
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// normalizeURL accepts "host:port" too: loopback gets http://, anything
// else https://.
func normalizeURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if !strings.Contains(raw, "://") {
		host := raw
		if i := strings.IndexAny(host, ":/"); i >= 0 {
			host = host[:i]
		}
		if host == "localhost" || strings.HasPrefix(host, "127.") || strings.HasPrefix(raw, "[::1]") {
			raw = "http://" + raw
		} else {
			raw = "https://" + raw
		}
	}
	u, err := sdk.ParseBaseURL(raw)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

func sameURL(a, b string) bool {
	na, err1 := normalizeURL(a)
	nb, err2 := normalizeURL(b)
	return err1 == nil && err2 == nil && na == nb
}

// friendly adds what to do next to errors people meet.
func friendly(err error) error {
	if err == nil {
		return nil
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		return err
	}
	if sdk.IsUnauthorized(err) {
		return fmt.Errorf("%w (log in again: dev8 login <server URL>)", err)
	}
	return err
}

// withFriendlyErrors wraps a RunE with friendly.
func withFriendlyErrors(run func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error { return friendly(run(cmd, args)) }
}

// localUser is the local account name: the SSH user for workspaces.
func localUser(ctx context.Context) string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		name := u.Username
		if i := strings.LastIndexByte(name, '\\'); i >= 0 { // DOMAIN\user
			name = name[i+1:]
		}
		return name
	}
	return firstNonEmpty(getenv(ctx, "USER"), getenv(ctx, "LOGNAME"), "dev8")
}

// terminalFd returns the descriptor of r or w if it is a terminal.
func terminalFd(v any) (int, bool) {
	f, ok := v.(interface{ Fd() uintptr })
	if !ok {
		return 0, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}

// progress prints an environment's status changes as they happen.
type progress struct {
	w     io.Writer
	start time.Time
	last  sdk.Status
}

func newProgress(w io.Writer) *progress { return &progress{w: w, start: time.Now()} }

func (p *progress) onChange(e sdk.Environment) {
	if e.Status == p.last {
		return
	}
	p.last = e.Status
	line := fmt.Sprintf("  %-9s %5.1fs", e.Status, time.Since(p.start).Seconds())
	if e.StatusReason != "" {
		line += "  " + e.StatusReason
	}
	fmt.Fprintln(p.w, line)
}

// connectHelp is what to run to use a running environment.
func connectHelp(w io.Writer, e *sdk.Environment) {
	fmt.Fprintf(w, "Environment %q is running.\n", e.Name)
	fmt.Fprintf(w, "  SSH:      dev8 ssh %s\n", e.Name)
	if e.VSCodeURL != "" {
		fmt.Fprintf(w, "  VS Code:  %s\n", e.VSCodeURL)
	}
}
