package server

import (
	"log/slog"
	"net/netip"
	"time"

	"dev8.dev/dev8/internal/backup"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/quota"
	"dev8.dev/dev8/internal/signup"
)

// Config is everything dev8 server can be told. The zero value of each
// optional field takes the documented default.
type Config struct {
	// DataDir holds the SQLite file and the local runtime's workspaces.
	DataDir string
	// DatabaseURL selects PostgreSQL; empty means SQLite in DataDir.
	DatabaseURL string
	// Runtime is the runtime new environments get when their create
	// request names none: "local" (the default when empty), "docker", or
	// "auto" (dev8 server's default): the first of Runtimes on which the
	// template can run now (see RuntimeAuto).
	Runtime string
	// Runtimes are the runtimes new environments may use, in order of
	// preference. Empty: Runtime alone, or with Runtime "auto" every
	// runtime that works here (docker when a Docker engine answers, then
	// local). Runtimes that existing environments use are driven for them
	// whether listed or not.
	Runtimes []string
	// DockerHost is the Docker engine's address (unix:///path or
	// tcp://host:port); empty means DOCKER_HOST, else the local socket.
	DockerHost string
	// LocalForMembers lets members (not only admins) run workspaces on the
	// local runtime, which isolates nothing: for one person, or a team that
	// trusts each other with the server's user and data.
	LocalForMembers bool
	// DockerNetwork is the docker runtime's Config.NetworkMode (default
	// DefaultDockerNetwork).
	DockerNetwork string
	// Kubernetes configures the kubernetes runtime.
	Kubernetes KubernetesConfig
	// Azure configures the azure runtime.
	Azure AzureConfig
	// SupervisorBinary is the static binary the docker runtime copies into
	// every container (default: the small supervisor this dev8 embeds,
	// written to <DataDir>/bin, else this executable).
	SupervisorBinary string
	// CodeServer is the code-server executable the local runtime starts in
	// each workspace; empty means none.
	CodeServer string
	// SupervisorCommand overrides how the local runtime starts a workspace's
	// supervisor (default: the embedded small supervisor, as for
	// SupervisorBinary, else this executable, with "supervisor").
	SupervisorCommand []string
	// SupervisorEnv is added to the supervisor's environment.
	SupervisorEnv []string
	// AccessURL is where people reach this server (vs_code_url is built on
	// it); default http://<listen address>.
	AccessURL string
	// AgentURL is where workspaces' supervisors reach this server; default
	// the listen address on loopback.
	AgentURL string
	// ReplicaURL is where the other replicas on this database reach this
	// one (relays of workspace tunnels; see replicas.go); default
	// http(s)://<listen address>, on loopback when it listens on every
	// interface.
	ReplicaURL string
	// AllowedHosts are more host names the server answers to, besides IP
	// addresses, localhost and the access and agent URLs' hosts (see
	// httpmw.AllowHosts): a proxy reached under several names.
	AllowedHosts []string
	// WildcardAccessURL is where workspace apps (the IDE, HTTP servers on
	// workspaces' ports) are served, each on an origin of its own:
	// [scheme://]*.domain[:port]. Empty: *.localhost when the access URL
	// is on loopback, else a subdomain of the access URL's host (see
	// appurl.Resolve).
	WildcardAccessURL string
	// UnsafePathBasedApps serves the IDE under /w/{id}/ide/ on the
	// dashboard's own origin instead, where a workspace's page acts with
	// its visitor's session: only for one trusted user.
	UnsafePathBasedApps bool
	// TemplateImages points templates at image references (template name →
	// reference) for the docker runtime; a template not named runs its
	// catalog image (dev8/<template>:latest).
	TemplateImages map[string]string
	// AllowedImages, if not empty, restricts the base_image a create
	// request may name to these patterns (see catalog.ImageAllowed) and the
	// templates' images.
	AllowedImages []string

	// UsageRetention is how long resource samples are kept (default 30
	// days).
	UsageRetention time.Duration
	// AuditRetention is how long audit events are kept (default
	// audit.DefaultRetention, 90 days; negative: for ever).
	AuditRetention time.Duration
	ReaperInterval time.Duration
	ResyncInterval time.Duration
	Pricing        lifecycle.Pricing
	TokenTTL       time.Duration
	// TokenDefaultLifetime and TokenMaxLifetime bound API tokens made with
	// POST /api/v1/tokens (defaults 30 and 365 days); see api.Config.
	TokenDefaultLifetime time.Duration
	TokenMaxLifetime     time.Duration
	BcryptCost           int           // default auth.DefaultBcryptCost; tests use the minimum
	ShutdownTimeout      time.Duration // default 30s, as in the seed
	// DrainDelay is how long a stopping server goes on answering after its
	// /ready turns 503, so that a load balancer in front of replicas stops
	// sending it requests first: about two of the balancer's health-check
	// intervals. Zero (the default): a server alone stops at once.
	DrainDelay time.Duration
	Logger     *slog.Logger
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time

	// SecretKey encrypts users' secrets at rest: 32 bytes as 64 hex digits
	// or base64 (DEV8_SECRET_KEY). Empty: the key in SecretKeyFile (default
	// <DataDir>/secret.key), created 0600 on first start.
	SecretKey     string
	SecretKeyFile string

	// TLSCert and TLSKey are PEM files; with both set the server speaks
	// HTTPS only (and sends HSTS, and marks the session cookie Secure).
	TLSCert, TLSKey string
	// Quotas are every user's limits unless an admin overrides them; nil
	// takes quota.DefaultLimits (10 environments, 5 running, no budget).
	Quotas *quota.Limits
	// RateLimits, CORSOrigins and TrustedProxies: see api.Config.
	RateLimits     httpmw.RateLimits
	CORSOrigins    []string
	TrustedProxies []netip.Prefix
	// Streams caps the event streams and websockets people hold open
	// (zero fields: httpmw's defaults).
	Streams httpmw.StreamLimits
	// RequestTimeouts bound ordinary requests' reading and whole time
	// (zero fields: httpmw's defaults); streams are exempt.
	RequestTimeouts httpmw.RequestTimeouts
	// OAuth enables sign-in with GitHub and Google (see OAuthConfig).
	OAuth OAuthConfig
	// Signup is who may create an account (default signup.DefaultPolicy,
	// invite: the first user, then people an admin invited).
	// AllowedEmailDomains may also sign up by themselves, under invite,
	// with an OAuth provider that vouches for their address.
	Signup              signup.Policy
	AllowedEmailDomains []string
	// SessionPruneInterval is how often expired sessions are deleted, and
	// on PostgreSQL the shared login failures that no longer count
	// (default api.DefaultSessionPruneInterval).
	SessionPruneInterval time.Duration
	// LiveCheckInterval is how often the credentials of open terminals,
	// SSH sessions, port-forwards, event streams and IDE websockets are
	// checked against the store (default liveconn.DefaultSweepInterval):
	// what this server revokes ends them at once; this catches the rest
	// (expiry, another replica's revocation).
	LiveCheckInterval time.Duration
	// Snapshots schedules workspace snapshots and pruning of the
	// repository (zero values: the defaults).
	Snapshots backup.Schedule
	// SnapshotStore is where the snapshot repository lives: empty for
	// <DataDir>/backups, a directory or file:///path, s3://bucket/prefix or
	// azblob://container/prefix (see backup.OpenStore).
	SnapshotStore string
	// PreStopTimeout bounds the snapshot taken before each stop (default
	// lifecycle.DefaultPreStopTimeout).
	PreStopTimeout time.Duration

	// AdminAddr is where /metrics and /debug/pprof/ are served (see
	// admin.go); empty turns the admin listener off. Tests use port 0.
	AdminAddr string
}
