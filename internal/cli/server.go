package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"dev8.dev/dev8/internal/api"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/snapshot"
)

func defaultDataDir() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ".dev8"
	}
	return filepath.Join(home, ".dev8")
}

// defaultCodeServer is DEV8_CODE_SERVER, else code-server on PATH, else none.
func defaultCodeServer() string {
	if v := os.Getenv("DEV8_CODE_SERVER"); v != "" {
		return v
	}
	if p, err := exec.LookPath("code-server"); err == nil {
		return p
	}
	return ""
}

func envFloat(name string, def float64) float64 {
	if v := os.Getenv(name); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	return def
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

// disabledIfZero maps a flag's "0 turns it off" to httpmw.RateLimits' negative
// (there, zero means the default).
func disabledIfZero[T int | float64](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

func newServerCommand() *cobra.Command {
	var (
		addr, dataDir, databaseURL, runtimeName, codeServer string
		logFormat, logLevel                                 string
		corsOrigins, trustedProxies                         string
		templateImages                                      []string
		allowedImages                                       string
		cfg                                                 server.Config
		quotas                                              api.Quotas
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Dev8 control plane: REST API, reconciler and idle reaper",
		Long: `dev8 server runs the control plane. With no configuration it keeps its
data in ~/.dev8 (SQLite) and runs workspaces as Docker containers when a
Docker engine answers, as local processes otherwise (a log line at start,
"workspace runtime: …", says which, and why).

Every flag has an environment variable; a .env file in the working directory
is read at start. Flags win over the environment.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), logFormat, logLevel)
			if err != nil {
				return err
			}
			if codeServer == "off" {
				codeServer = ""
			}
			cfg.DataDir, cfg.DatabaseURL, cfg.Runtime, cfg.CodeServer, cfg.Logger = dataDir, databaseURL, runtimeName, codeServer, log
			// The key is read from the environment only (a flag would show
			// in ps) and removed from it, so no child process inherits it.
			cfg.SecretKey = os.Getenv("DEV8_SECRET_KEY")
			_ = os.Unsetenv("DEV8_SECRET_KEY")
			if cfg.CORSOrigins, err = httpmw.ParseCORSOrigins(corsOrigins); err != nil {
				return fmt.Errorf("--cors-origins: %w", err)
			}
			if cfg.TemplateImages, err = server.ParseTemplateImages(templateImages); err != nil {
				return fmt.Errorf("--template-image: %w", err)
			}
			if cfg.AllowedImages, err = api.ParseAllowedImages(allowedImages); err != nil {
				return fmt.Errorf("--allowed-images: %w", err)
			}
			if cfg.TrustedProxies, err = httpmw.ParseTrustedProxies(trustedProxies); err != nil {
				return fmt.Errorf("--trusted-proxies: %w", err)
			}
			if quotas.MaxEnvironments < 0 || quotas.MaxRunningEnvironments < 0 || quotas.MonthlyBudgetUSD < 0 {
				return errors.New("--quota-environments, --quota-running and --quota-monthly-budget must not be negative (0 is unlimited)")
			}
			cfg.Quotas = &quotas
			rl := &cfg.RateLimits
			rl.PrincipalRate, rl.IPRate = disabledIfZero(rl.PrincipalRate), disabledIfZero(rl.IPRate)
			rl.LoginFailures, rl.LoginIPFailures = disabledIfZero(rl.LoginFailures), disabledIfZero(rl.LoginIPFailures)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServer(ctx, addr, cfg)
		},
	}
	reaper, err := envDuration("DEV8_REAPER_INTERVAL", lifecycle.DefaultReaperInterval)
	resync, err2 := envDuration("DEV8_RESYNC_INTERVAL", lifecycle.DefaultResyncInterval)
	f := cmd.Flags()
	f.StringVar(&addr, "addr", envString("DEV8_ADDR", "127.0.0.1:3000"), "listen address (DEV8_ADDR)")
	f.StringVar(&dataDir, "data-dir", envString("DEV8_DATA_DIR", defaultDataDir()), "data directory: SQLite store and local workspaces (DEV8_DATA_DIR)")
	f.StringVar(&databaseURL, "database-url", envString("DATABASE_URL", ""), "PostgreSQL URL; empty uses SQLite in the data dir (DATABASE_URL)")
	f.StringVar(&cfg.AccessURL, "access-url", envString("DEV8_ACCESS_URL", ""), "URL people reach this server at; vs_code_url is built on it (DEV8_ACCESS_URL; default http://<addr>)")
	f.StringVar(&cfg.AdminAddr, "admin-addr", envString("DEV8_ADMIN_ADDR", ""), "admin listen address serving Prometheus /metrics and pprof /debug/pprof/, without authentication: keep it on loopback or a private network, e.g. 127.0.0.1:9464; empty turns it off (DEV8_ADMIN_ADDR)")
	f.StringVar(&cfg.AgentURL, "agent-url", envString("DEV8_AGENT_URL", ""), "URL workspaces' supervisors reach this server at (DEV8_AGENT_URL; default http://<addr>)")
	f.StringVar(&runtimeName, "runtime", envString("DEV8_RUNTIME", "auto"), "workspace runtime: auto (docker when a Docker engine answers, else local), local (processes of this user), or docker (one container and volume per workspace; needs a Docker engine and the workspace images) (DEV8_RUNTIME)")
	f.StringVar(&codeServer, "code-server", defaultCodeServer(), "code-server executable for local workspaces, or off (DEV8_CODE_SERVER; default: code-server on PATH)")
	f.DurationVar(&cfg.ReaperInterval, "reaper-interval", reaper, "how often idle environments are looked for (DEV8_REAPER_INTERVAL)")
	f.DurationVar(&cfg.ResyncInterval, "resync-interval", resync, "how often running environments are checked against the runtime (DEV8_RESYNC_INTERVAL)")
	f.Float64Var(&cfg.Pricing.CPUHour, "price-cpu-hour", envFloat("DEV8_PRICE_CPU_HOUR", lifecycle.DefaultPricing.CPUHour), "price per vCPU-hour (DEV8_PRICE_CPU_HOUR)")
	f.Float64Var(&cfg.Pricing.MemoryGBHour, "price-memory-gb-hour", envFloat("DEV8_PRICE_MEMORY_GB_HOUR", lifecycle.DefaultPricing.MemoryGBHour), "price per GB of memory per hour (DEV8_PRICE_MEMORY_GB_HOUR)")
	f.Float64Var(&cfg.Pricing.StorageGBHour, "price-storage-gb-hour", envFloat("DEV8_PRICE_STORAGE_GB_HOUR", lifecycle.DefaultPricing.StorageGBHour), "price per GB of storage per hour (DEV8_PRICE_STORAGE_GB_HOUR)")
	retention, err3 := envDuration("DEV8_USAGE_RETENTION", 30*24*time.Hour)
	tokenDefault, err4 := envDuration("DEV8_TOKEN_DEFAULT_LIFETIME", api.DefaultTokenLifetime)
	tokenMax, err5 := envDuration("DEV8_TOKEN_MAX_LIFETIME", api.DefaultTokenMaxLifetime)
	f.DurationVar(&cfg.TokenDefaultLifetime, "token-default-lifetime", tokenDefault, "lifetime of an API token created without expires_in_days (DEV8_TOKEN_DEFAULT_LIFETIME)")
	f.DurationVar(&cfg.TokenMaxLifetime, "token-max-lifetime", tokenMax, "longest lifetime an API token may be created with; whole days count (DEV8_TOKEN_MAX_LIFETIME)")
	f.DurationVar(&cfg.UsageRetention, "usage-retention", retention, "how long resource usage samples are kept (DEV8_USAGE_RETENTION)")
	snapshotInterval, err6 := envDuration("DEV8_SNAPSHOT_INTERVAL", 15*time.Minute)
	f.DurationVar(&cfg.Snapshots.Interval, "snapshot-interval", snapshotInterval, "how often a running workspace used since its last snapshot gets a scheduled one (DEV8_SNAPSHOT_INTERVAL)")
	preStopTimeout, err7 := envDuration("DEV8_PRE_STOP_TIMEOUT", lifecycle.DefaultPreStopTimeout)
	f.DurationVar(&cfg.PreStopTimeout, "pre-stop-timeout", preStopTimeout, "how long a stop (a user's or the idle auto-stop) waits for the snapshot it takes first; the stop goes on when it runs out (DEV8_PRE_STOP_TIMEOUT)")
	f.IntVar(&cfg.Snapshots.Retention.KeepLast, "snapshot-keep-last", envInt("DEV8_SNAPSHOT_KEEP_LAST", snapshot.DefaultRetention.KeepLast), "snapshots kept per environment when pruning, the newest ones; at least 1 (DEV8_SNAPSHOT_KEEP_LAST)")
	f.IntVar(&cfg.Snapshots.Retention.KeepDaily, "snapshot-keep-daily", envInt("DEV8_SNAPSHOT_KEEP_DAILY", snapshot.DefaultRetention.KeepDaily), "days for which pruning also keeps each environment's newest snapshot of the day (DEV8_SNAPSHOT_KEEP_DAILY)")
	f.StringVar(&cfg.SnapshotStore, "snapshot-store", envString("DEV8_SNAPSHOT_STORE", ""), "where the snapshot repository lives: a directory or file:///path, s3://bucket/prefix?endpoint=host:port&region=name, or azblob://container/prefix?account=name; credentials come from the environment (AWS_*, AZURE_STORAGE_*), never the URL (DEV8_SNAPSHOT_STORE; default <data-dir>/backups)")
	f.StringVar(&logFormat, "log-format", envString("DEV8_LOG_FORMAT", "text"), "log format: text or json (DEV8_LOG_FORMAT)")
	f.StringVar(&logLevel, "log-level", envString("DEV8_LOG_LEVEL", "info"), "log level: debug, info, warn, error (DEV8_LOG_LEVEL)")
	f.StringVar(&cfg.SecretKeyFile, "secret-key-file", envString("DEV8_SECRET_KEY_FILE", ""), "file holding the key that encrypts users' secrets, created 0600 on first start; ignored when DEV8_SECRET_KEY (64 hex digits or base64 of 32 bytes; no flag, so it never shows in ps) is set (DEV8_SECRET_KEY_FILE; default <data-dir>/secret.key)")
	f.StringVar(&cfg.TLSCert, "tls-cert", envString("DEV8_TLS_CERT", ""), "PEM certificate (chain) file; with --tls-key the server speaks HTTPS only (DEV8_TLS_CERT)")
	f.StringVar(&cfg.TLSKey, "tls-key", envString("DEV8_TLS_KEY", ""), "PEM private key file for --tls-cert (DEV8_TLS_KEY)")
	f.StringArrayVar(&templateImages, "template-image", envList("DEV8_TEMPLATE_IMAGES"), "template=image: the image the docker runtime runs for a template, e.g. nodejs=registry.example/dev8/nodejs:1; repeatable (DEV8_TEMPLATE_IMAGES, comma-separated; default dev8/<template>:latest)")
	f.StringVar(&allowedImages, "allowed-images", envString("DEV8_ALLOWED_IMAGES", ""), "comma-separated image patterns a create request's base_image may name besides the templates (registry.example/team/* or a prefix ending in /); empty allows any (DEV8_ALLOWED_IMAGES)")
	f.StringVar(&corsOrigins, "cors-origins", envString("DEV8_CORS_ORIGINS", ""), "comma-separated origins (https://app.example.com) allowed to call the API from a browser; empty allows none (DEV8_CORS_ORIGINS)")
	f.StringVar(&cfg.OAuth.GitHub.ClientID, "github-client-id", envString("DEV8_GITHUB_CLIENT_ID", ""), "GitHub OAuth app client id; with the secret, enables sign-in with GitHub (DEV8_GITHUB_CLIENT_ID)")
	f.StringVar(&cfg.OAuth.GitHub.ClientSecret, "github-client-secret", envString("DEV8_GITHUB_CLIENT_SECRET", ""), "GitHub OAuth app client secret; prefer the environment variable (DEV8_GITHUB_CLIENT_SECRET)")
	f.StringVar(&cfg.OAuth.GitHub.URL, "github-url", envString("DEV8_GITHUB_URL", ""), "GitHub web URL, for GitHub Enterprise Server (DEV8_GITHUB_URL; default https://github.com)")
	f.StringVar(&cfg.OAuth.GitHub.APIURL, "github-api-url", envString("DEV8_GITHUB_API_URL", ""), "GitHub REST API URL (DEV8_GITHUB_API_URL; default https://api.github.com, or <github-url>/api/v3)")
	f.StringVar(&cfg.OAuth.Google.ClientID, "google-client-id", envString("DEV8_GOOGLE_CLIENT_ID", ""), "Google OAuth client id; with the secret, enables sign-in with Google (DEV8_GOOGLE_CLIENT_ID)")
	f.StringVar(&cfg.OAuth.Google.ClientSecret, "google-client-secret", envString("DEV8_GOOGLE_CLIENT_SECRET", ""), "Google OAuth client secret; prefer the environment variable (DEV8_GOOGLE_CLIENT_SECRET)")
	f.StringVar(&cfg.OAuth.Google.Issuer, "google-issuer", envString("DEV8_GOOGLE_ISSUER", ""), "OpenID Connect issuer for Google sign-in (DEV8_GOOGLE_ISSUER; default https://accounts.google.com)")
	f.StringVar(&trustedProxies, "trusted-proxies", envString("DEV8_TRUSTED_PROXIES", ""), "comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For is believed for rate limiting (DEV8_TRUSTED_PROXIES)")
	f.Float64Var(&cfg.RateLimits.PrincipalRate, "rate-limit-user", envFloat("DEV8_RATE_LIMIT_USER", httpmw.DefaultPrincipalRate), "API requests per second per user or workspace agent; 0 disables (DEV8_RATE_LIMIT_USER)")
	f.IntVar(&cfg.RateLimits.PrincipalBurst, "rate-limit-user-burst", envInt("DEV8_RATE_LIMIT_USER_BURST", httpmw.DefaultPrincipalBurst), "requests a user or agent may make at once (DEV8_RATE_LIMIT_USER_BURST)")
	f.Float64Var(&cfg.RateLimits.IPRate, "rate-limit-ip", envFloat("DEV8_RATE_LIMIT_IP", httpmw.DefaultIPRate), "requests per second per client address, health probes exempt; 0 disables (DEV8_RATE_LIMIT_IP)")
	f.IntVar(&cfg.RateLimits.IPBurst, "rate-limit-ip-burst", envInt("DEV8_RATE_LIMIT_IP_BURST", httpmw.DefaultIPBurst), "requests a client address may make at once (DEV8_RATE_LIMIT_IP_BURST)")
	f.IntVar(&cfg.RateLimits.LoginFailures, "login-max-failures", envInt("DEV8_LOGIN_MAX_FAILURES", httpmw.DefaultLoginFailures), "failed logins per account before backoff (1 s doubling to 15 min); 0 disables (DEV8_LOGIN_MAX_FAILURES)")
	f.IntVar(&quotas.MaxEnvironments, "quota-environments", envInt("DEV8_QUOTA_ENVIRONMENTS", api.DefaultQuotas.MaxEnvironments), "environments a user may have (all but those being deleted); 0 is unlimited; an admin may override it per user (DEV8_QUOTA_ENVIRONMENTS)")
	f.IntVar(&quotas.MaxRunningEnvironments, "quota-running", envInt("DEV8_QUOTA_RUNNING", api.DefaultQuotas.MaxRunningEnvironments), "environments a user may have creating, starting or running at once; 0 is unlimited (DEV8_QUOTA_RUNNING)")
	f.Float64Var(&quotas.MonthlyBudgetUSD, "quota-monthly-budget", envFloat("DEV8_QUOTA_MONTHLY_BUDGET", api.DefaultQuotas.MonthlyBudgetUSD), "USD a user's environments may cost per calendar month (UTC) before creating and starting are refused; 0 is no budget (DEV8_QUOTA_MONTHLY_BUDGET)")
	f.IntVar(&cfg.RateLimits.LoginIPFailures, "login-max-failures-ip", envInt("DEV8_LOGIN_MAX_FAILURES_IP", httpmw.DefaultLoginIPFailures), "failed logins per client address before backoff; 0 disables (DEV8_LOGIN_MAX_FAILURES_IP)")
	if err := errors.Join(err, err2, err3, err4, err5, err6, err7); err != nil {
		cmd.PreRunE = func(*cobra.Command, []string) error { return err }
	}
	return cmd
}

func runServer(ctx context.Context, addr string, cfg server.Config) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return srv.Serve(ctx, ln)
}

// envList splits a comma-separated variable (empty: none).
func envList(name string) []string {
	var out []string
	for _, v := range strings.Split(os.Getenv(name), ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
