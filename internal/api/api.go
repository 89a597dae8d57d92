// Package api serves Dev8's REST API (the seed's contract under /api/v1, plus
// health endpoints). Handlers are methods on API; errors become responses
// in one place (writeError).
package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"dev8.dev/dev8/internal/audit"
	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/backup"
	"dev8.dev/dev8/internal/gateway"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/liveconn"
	"dev8.dev/dev8/internal/oauth"
	"dev8.dev/dev8/internal/quota"
	"dev8.dev/dev8/internal/ratelimit"
	"dev8.dev/dev8/internal/secretbox"
	"dev8.dev/dev8/internal/signup"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/supervisorbin"
	"dev8.dev/dev8/internal/tunnel"
	"dev8.dev/dev8/sdk"
)

// Store is the persistence the API reads directly; state changes go through
// the lifecycle manager.
type Store interface {
	Ping(ctx context.Context) error
	CreateUser(ctx context.Context, u store.User) (store.User, error)
	GetUser(ctx context.Context, id string) (store.User, error)
	GetUserByEmail(ctx context.Context, email string) (store.User, error)
	CreateAPIToken(ctx context.Context, t store.APIToken) (store.APIToken, error)
	GetAPITokenByHash(ctx context.Context, hash []byte) (store.APIToken, store.User, error)
	GetAPIToken(ctx context.Context, id string) (store.APIToken, store.User, error)
	TouchAPIToken(ctx context.Context, id string, at time.Time) error
	ListAPITokens(ctx context.Context, userID string) ([]store.APIToken, error)
	DeleteAPIToken(ctx context.Context, userID, id string) error
	InsertAuditEvent(ctx context.Context, e store.AuditEvent) error
	ListAuditEvents(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, int, error)
	GetEnvironment(ctx context.Context, id string) (store.Environment, error)
	ListEnvironments(ctx context.Context, f store.EnvironmentFilter) ([]store.Environment, int, error)
	ListTemplates(ctx context.Context) ([]store.Template, error)
	InstanceTypeStore
	SessionStore
	AccountStore
	UserAdminStore
	ProfileStore
	InviteStore
}

// Config configures the API.
type Config struct {
	Store     Store
	Lifecycle *lifecycle.Manager
	Logger    *slog.Logger
	// TokenTTL is how long a login's session lasts after its last use
	// (default 30 days).
	TokenTTL time.Duration
	// TokenDefaultLifetime is how long a token from POST /tokens lasts when
	// the request names no lifetime (default 30 days), TokenMaxLifetime the
	// longest a request may ask for (default 365 days; whole days count).
	TokenDefaultLifetime time.Duration
	TokenMaxLifetime     time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// AgentTokens verifies workspace supervisors' tokens.
	AgentTokens *auth.AgentTokens
	// Tunnels holds the supervisors' connections.
	Tunnels *tunnel.Registry
	// Usage stores the resource samples supervisors report.
	Usage UsageService
	// BcryptCost for new passwords (default auth.DefaultBcryptCost, never
	// below auth.MinBcryptCost).
	BcryptCost int
	// RateLimits configures throttling (zero fields: the defaults).
	RateLimits httpmw.RateLimits
	// LoginFailures keeps the login throttles' failures where every
	// replica sees them (httpmw.StoredLoginFailures over a PostgreSQL
	// store); nil keeps them in this server's memory, for a server alone.
	LoginFailures ratelimit.FailureStore
	// Streams caps the event streams and websockets people hold open
	// (zero fields: the defaults).
	Streams httpmw.StreamLimits
	// CORSOrigins may call the API from a browser on another origin
	// (scheme://host[:port]); empty allows none.
	CORSOrigins []string
	// AllowedImages, if not empty, restricts a create request's base_image
	// to template names, templates' images and these patterns (see
	// catalog.ImageAllowed).
	AllowedImages []string
	// SessionKey is the installation's secret that CSRF tokens and OAuth
	// sign-in state are signed with (auth.SessionKeySize bytes; default: a
	// random one per process).
	SessionKey []byte
	// OAuthProviders sign people in (none: passwords only).
	OAuthProviders []oauth.Provider
	// Pages is the web dashboard (nil: the API alone).
	Pages httpmw.Pages
	// IDEActivityInterval is how often at most an IDE tab in use reports
	// (default gateway.DefaultIDEActivityInterval).
	IDEActivityInterval time.Duration
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client; from anyone else the header is ignored.
	TrustedProxies []netip.Prefix
	// Requests records every request's duration by route (nil: none).
	Requests httpmw.RequestObserver
	// UserSecrets keeps users' SSH keys, secrets and git settings (nil:
	// Store, if it has the methods); SecretBox encrypts the secrets. Without
	// both, those routes answer 503.
	UserSecrets UserSecretStore
	SecretBox   *secretbox.Box
	// Quotas report every user's limits and usage; the lifecycle manager
	// enforces them with the same policy (nil: unlimited).
	Quotas *quota.Policy
	// Backups takes and restores snapshots (nil, or one without a
	// repository: the snapshot routes answer 503).
	Backups *backup.Service
	// Audit records what requests do (nil: a recorder over Store).
	Audit *audit.Recorder
	// Signup is the signup policy (nil: signup.DefaultPolicy over Store,
	// with no allowed email domains).
	Signup *signup.Gate
	// Live holds the long-lived connections (terminals, SSH, port
	// forwards, event streams, IDE websockets) by credential, so that
	// logout, revocation, suspension and role changes end them (nil: a
	// registry of the API's own, not swept).
	Live *liveconn.Registry
	// WildcardAccessURL is where workspace apps (the IDE, HTTP servers on
	// workspaces' ports) are served, each on an origin of its own:
	// [scheme://]*.domain[:port] (see appurl.Resolve); empty takes
	// *.localhost for an access URL on loopback, else a subdomain of the
	// access URL's host.
	WildcardAccessURL string
	// PathBasedApps serves the IDE under /w/{id}/ide/ on the dashboard's
	// own origin instead, where a workspace's page acts with its visitor's
	// dashboard session: only for a single trusted user.
	PathBasedApps bool
	// Supervisor is the supervisor workspaces fetch at start
	// (GET /environments/{id}/supervisor, supervisor.go); nil: none, and
	// SupervisorMissing says why.
	Supervisor        *supervisorbin.Served
	SupervisorMissing string
}

// API holds what the handlers share.
type API struct {
	// authState: sessions, CSRF and OAuth sign-in (sessions.go).
	authState
	// apps: workspace apps on their own origins (apps.go).
	apps appsState

	store                Store
	lifecycle            *lifecycle.Manager
	log                  *slog.Logger
	tokenTTL             time.Duration
	tokenDefaultLifetime time.Duration
	tokenMaxLifetime     time.Duration
	now                  func() time.Time
	passwords            *auth.Passwords
	tunnels              *tunnel.Registry
	usage                UsageService
	throttles            *httpmw.Throttles
	streams              *httpmw.Streams
	requests             httpmw.RequestObserver
	userSecrets          UserSecretStore
	secretBox            *secretbox.Box
	quotas               *quota.Policy
	allowedImages        []string
	backups              *backup.Service
	auditLog             *audit.Recorder
	gate                 *signup.Gate
	liveConns            *liveconn.Registry
	pages                httpmw.Pages
	supervisor           *supervisorbin.Served
	supervisorMissing    string
	// authn, proxies and corsOrigins are the middleware's (httpmw); the
	// login and session handlers use them too. gateway serves the
	// workspace connections (tunnel, IDE, SSH/terminal/port bridges).
	authn       *httpmw.Auth
	proxies     httpmw.TrustedProxies
	corsOrigins []string
	gateway     *gateway.Gateway
	// shuttingDown closes when the server begins a graceful shutdown
	// (Shutdown), ending the event streams.
	shuttingDown chan struct{}
	// draining: the server is stopping, and /ready says so (Drain).
	draining     atomic.Bool
	shutdownOnce sync.Once
}

// New returns the API.
func New(cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 30 * 24 * time.Hour
	}
	if cfg.TokenMaxLifetime < day {
		cfg.TokenMaxLifetime = auth.DefaultTokenMaxLifetime
	}
	if cfg.TokenDefaultLifetime <= 0 {
		cfg.TokenDefaultLifetime = min(auth.DefaultTokenLifetime, cfg.TokenMaxLifetime)
	}
	cfg.TokenDefaultLifetime = min(cfg.TokenDefaultLifetime, cfg.TokenMaxLifetime)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Quotas == nil {
		cfg.Quotas = quota.New(cfg.Store, quota.Limits{}, cfg.Now)
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = auth.DefaultBcryptCost
	}
	a := &API{
		store:                cfg.Store,
		lifecycle:            cfg.Lifecycle,
		log:                  cfg.Logger,
		tokenTTL:             cfg.TokenTTL,
		tokenDefaultLifetime: cfg.TokenDefaultLifetime,
		tokenMaxLifetime:     cfg.TokenMaxLifetime,
		now:                  cfg.Now,
		passwords:            auth.NewPasswords(cfg.BcryptCost),
		tunnels:              cfg.Tunnels,
		usage:                cfg.Usage,
		throttles:            httpmw.NewThrottles(cfg.RateLimits, cfg.LoginFailures, cfg.TrustedProxies, cfg.Now, cfg.Logger),
		streams:              httpmw.NewStreams(cfg.Streams, cfg.Logger),
		proxies:              cfg.TrustedProxies,
		corsOrigins:          cfg.CORSOrigins,
		requests:             cfg.Requests,
		shuttingDown:         make(chan struct{}),
		pages:                cfg.Pages,
		userSecrets:          userSecretStore(cfg),
		secretBox:            cfg.SecretBox,
		quotas:               cfg.Quotas,
		allowedImages:        cfg.AllowedImages,
		backups:              cfg.Backups,
		auditLog:             cfg.Audit,
		gate:                 signupGate(cfg),
		liveConns:            cfg.Live,
		supervisor:           cfg.Supervisor,
		supervisorMissing:    cfg.SupervisorMissing,
	}
	if a.liveConns == nil {
		a.liveConns = liveconn.New(cfg.Logger)
	}
	if a.auditLog == nil {
		a.auditLog = audit.New(cfg.Store, cfg.Logger, cfg.Now)
	}
	a.initAuth(cfg)
	gw := gateway.Config{Tunnels: cfg.Tunnels, Activity: cfg.Lifecycle, Logger: cfg.Logger, IDEActivityInterval: cfg.IDEActivityInterval,
		Tickets: a.apps.tickets, AppSessions: a.apps.sessions, DashboardURL: a.publicURL}
	if cfg.Pages != nil {
		gw.IDEPage = cfg.Pages.IDEUnavailable
		gw.AppPage = cfg.Pages.AppPage
	}
	a.gateway = gateway.New(gw)
	a.authn = httpmw.NewAuth(httpmw.AuthConfig{Store: cfg.Store, Agents: cfg.AgentTokens, Live: a.liveConns, Cookies: a.cookies,
		Proxies: cfg.TrustedProxies, SessionTTL: cfg.TokenTTL, Logger: cfg.Logger, Now: cfg.Now, AppSessions: a.apps.sessions})
	return a
}

// Handler is the whole HTTP surface of the API: the dashboard's origin
// (the API, the pages) and workspace apps' own origins (appsRouter), told
// apart by the request's host.
func (a *API) Handler() http.Handler {
	return &hostRouter{Mux: a.dashboardRouter(), apps: a.appsRouter(), isApp: a.isAppHost}
}

// dashboardRouter serves the dashboard's origin: the API and the pages.
func (a *API) dashboardRouter() *chi.Mux {
	r := chi.NewRouter()
	// Security headers and CORS come before anything that can refuse, so
	// refusals carry them too (a browser hides a 429 without CORS headers
	// from the page). Cross-origin state changes and websockets are
	// refused next, for every route at once, before anything runs. The
	// address throttle comes before authentication so a flood is refused
	// before it reaches the database or bcrypt.
	r.Use(httpmw.ObserveRequests(a.requests), httpmw.RequestID, httpmw.EchoRequestID, httpmw.Recover(a.log), httpmw.LogRequests(a.log),
		httpmw.SecurityHeaders, httpmw.CORS(a.corsOrigins), a.authn.RefuseCrossOrigin, a.throttles.ByAddress)
	var notFoundPage http.Handler
	if a.pages != nil {
		notFoundPage = a.authn.PageGuard(nil).OptionalUser(http.HandlerFunc(a.pages.NotFound))
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		// Under /w/ (code-server's paths) only a browser's navigation gets the page.
		if a.pages != nil && !strings.HasPrefix(r.URL.Path, "/api/") && (!strings.HasPrefix(r.URL.Path, "/w/") || httpmw.WantsPage(r)) {
			// A signed-in visitor keeps their navigation on the 404 page.
			notFoundPage.ServeHTTP(w, r)
			return
		}
		a.writeError(w, r, &httpapi.Error{Status: http.StatusNotFound, Code: httpapi.CodeNotFound, Message: "No such route", Details: r.Method + " " + r.URL.Path})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		a.writeError(w, r, &httpapi.Error{Status: http.StatusMethodNotAllowed, Code: httpapi.CodeMethodNotAllowed, Message: "Method not allowed", Details: r.Method + " " + r.URL.Path})
	})

	// Load balancers may probe with HEAD. (chi's GetHead only reroutes
	// HEAD inside a router's own middleware stack, so these name it.)
	for path, h := range map[string]http.HandlerFunc{"/health": a.health, "/live": a.live, "/ready": a.ready} {
		r.Get(path, h)
		r.Head(path, h)
	}

	r.Route("/api/v1", func(r chi.Router) {
		r.Use(httpmw.LimitBody, middleware.GetHead)
		r.Get("/openapi.json", serveOpenAPI)
		r.Post("/auth/signup", a.signup)
		r.Post("/auth/login", a.login)
		r.Get("/auth/providers", a.listProviders)
		r.Get("/auth/oauth/{provider}", a.oauthStart)
		r.Get("/auth/oauth/{provider}/callback", a.oauthCallback)

		r.Group(func(r chi.Router) {
			r.Use(a.authn.Authenticate, a.throttles.ByPrincipal)
			r.Group(func(r chi.Router) {
				r.Use(a.authn.RequireUser)
				r.Get("/auth/me", a.me)
				r.Patch("/auth/me", a.patchMe)
				r.Post("/auth/password", a.changePassword)
				r.Post("/auth/logout", a.logout)
				r.Get("/auth/sessions", a.listSessions)
				r.Route("/auth/sessions/{id}", func(r chi.Router) {
					r.Delete("/", a.deleteSession)
				})
				r.Get("/templates", a.listTemplates)
				// Instance types (instancetypes.go): everyone lists the
				// active ones; admins add, edit and retire them.
				r.Get("/instance-types", a.listInstanceTypes)
				r.With(a.authn.RequireAdmin).Post("/instance-types", a.createInstanceType)
				r.Route("/instance-types/{name}", func(r chi.Router) {
					r.With(a.authn.RequireAdmin).Patch("/", a.patchInstanceType)
				})
				r.Get("/environments", a.listEnvironments)
				// Streams hold a slot (a cap per user and in all) and
				// outlive the ordinary request time bounds.
				r.With(a.streams.Hold, httpmw.LongLived, a.authn.TrackLive).Get("/environments/events", a.environmentEvents)
				r.Post("/environments", a.createEnvironment)
				r.Get("/tokens", a.listTokens)
				r.Post("/tokens", a.createToken)
				r.Route("/tokens/{id}", func(r chi.Router) {
					r.Delete("/", a.deleteToken)
				})
				r.With(a.authn.RequireAdmin).Get("/audit", a.listAudit)
				// Reads the whole repository: as long as it is big.
				r.With(a.authn.RequireAdmin, httpmw.LongLived).Post("/snapshots/verify", a.verifySnapshots)
				r.Get("/ssh-keys", a.listSSHKeys)
				r.Post("/ssh-keys", a.createSSHKey)
				r.Route("/ssh-keys/{id}", func(r chi.Router) {
					r.Delete("/", a.deleteSSHKey)
				})
				r.Get("/secrets", a.listSecrets)
				r.Route("/secrets/{name}", func(r chi.Router) {
					r.Put("/", a.putSecret)
					r.Delete("/", a.deleteSecret)
				})
				r.Get("/git", a.getGit)
				r.Put("/git", a.putGit)
				r.Delete("/git/github-token", a.deleteGitHubToken)
				// Users (admin.go): admins manage roles, suspension
				// and quotas; a member may read only themself.
				r.With(a.authn.RequireAdmin).Get("/users", a.listUsers)
				r.Route("/users/{id}", func(r chi.Router) {
					r.Get("/", a.getUser)
					r.With(a.authn.RequireAdmin).Patch("/", a.patchUser)
				})
				// Invites (invites.go): admins make, list and revoke them.
				r.Group(func(r chi.Router) {
					r.Use(a.authn.RequireAdmin)
					r.Get("/invites", a.listInvites)
					r.Post("/invites", a.createInvite)
					r.Route("/invites/{id}", func(r chi.Router) {
						r.Delete("/", a.revokeInvite)
					})
				})
			})
			r.Route("/environments/{id}", func(r chi.Router) {
				r.Use(a.authn.LoadEnvironment)
				// Both the owner and the environment's own supervisor.
				r.Post("/activity", a.reportActivity)
				r.Group(func(r chi.Router) {
					r.Use(a.authn.RequireUser)
					r.Get("/", a.getEnvironment)
					r.Delete("/", a.deleteEnvironment)
					r.Post("/start", a.startEnvironment)
					r.Post("/stop", a.stopEnvironment)
					// Streams hold a slot (a cap per user and in all), outlive the
					// ordinary request time bounds, and end when their credential
					// is revoked (TrackLive).
					r.With(a.streams.Hold, httpmw.LongLived, a.authn.TrackLive).Get("/ssh", a.gateway.SSH)
					r.With(a.streams.Hold, httpmw.LongLived, a.authn.TrackLive).Get("/port-forward", a.gateway.PortForward)
					r.With(a.streams.Hold, httpmw.LongLived, a.authn.TrackLive).Get("/pty", a.gateway.Terminal)
					r.Get("/ide/health", a.gateway.IDEHealth)
					r.Post("/app-tickets", a.createAppTicket)
					r.Get("/usage", a.listUsage)
					r.Get("/snapshots", a.listSnapshots)
					r.Post("/snapshots", a.createSnapshot)
					r.Route("/snapshots/{sid}", func(r chi.Router) {
						r.Get("/", a.getSnapshot)
						// Answers once the files are back: as long as they are big.
						r.With(httpmw.LongLived).Post("/restore", a.restoreSnapshot)
					})
				})
				r.Group(func(r chi.Router) {
					r.Use(a.authn.RequireAgent)
					// One per workspace, not counted among people's streams.
					r.With(httpmw.LongLived).Get("/tunnel", a.gateway.Tunnel)
					r.Get("/manifest", a.manifest)
					// As long as its bytes take to send.
					r.With(httpmw.LongLived).Get("/supervisor", a.supervisorBinary)
					r.Post("/usage", a.ingestUsage)
				})
			})
		})
	})

	// Workspace apps, opened from the dashboard's origin: /w/{id}/ide/…
	// (the environment's vs_code_url) and /w/{id}/ports/{port}/… check who
	// asks and send them to the app's own origin with a one-time ticket
	// (apps.go). Only with --unsafe-path-based-apps is code-server served
	// here instead, owning every path below /w/{id}/ide/. A browser
	// navigating there without a session is sent to sign in and back, and
	// gets the 404 page for an environment it may not see; API clients
	// (and the path-based IDE's own requests) get JSON.
	r.Route("/w/{id}", func(r chi.Router) {
		ide := func(next http.Handler) http.Handler {
			return a.authn.AuthenticateIDE(a.authn.RequireUser(a.authn.LoadEnvironment(next)))
		}
		if a.pages != nil {
			guard := a.authn.PageGuard(http.HandlerFunc(a.pages.NotFound))
			r.Use(httpmw.PageOr(func(next http.Handler) http.Handler { return guard.RequireUser(guard.LoadEnvironment(next)) }, ide))
		} else {
			r.Use(ide)
		}
		r.Get("/ide", gateway.IDERedirect)
		r.Get("/ports/{port}", portRedirect)
		r.Get("/ports/{port}/*", a.openPort)
		r.Head("/ports/{port}/*", a.openPort)
		if !a.apps.pathBased {
			r.Get("/ide/*", a.openIDE)
			r.Head("/ide/*", a.openIDE)
			return
		}
		r.Group(func(r chi.Router) {
			r.Use(a.pathAppsGuard)
			// code-server's requests are proxied as long as they last; its
			// websockets count among the user's streams.
			r.With(httpmw.LongLived, a.streams.HoldUpgrades, a.authn.TrackLiveWebsockets).HandleFunc("/ide/*", a.gateway.IDE)
			r.Get("/activity.js", a.gateway.ActivityScript)
			r.Post("/activity", a.gateway.IDEActivity)
		})
	})

	if a.pages != nil {
		r.Group(func(r chi.Router) {
			a.pages.Routes(r, a.authn.PageGuard(http.HandlerFunc(a.pages.NotFound)))
		})
	}
	return r
}

func (a *API) health(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "healthy"})
}

func (a *API) live(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "alive"})
}

// ready answers 503 until the store answers, so a load balancer holds
// traffic back from a server that cannot serve it.
func (a *API) ready(w http.ResponseWriter, r *http.Request) {
	if a.draining.Load() {
		httpapi.WriteJSON(w, http.StatusServiceUnavailable, sdk.ErrorResponse{Error: "Not ready", Details: "the server is shutting down", Code: httpapi.CodeNotReady})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.store.Ping(ctx); err != nil {
		a.log.WarnContext(r.Context(), "readiness check failed", "err", err)
		httpapi.WriteJSON(w, http.StatusServiceUnavailable, sdk.ErrorResponse{Error: "Not ready", Details: "the store does not answer", Code: httpapi.CodeNotReady})
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// writeError answers err through httpapi.WriteError with the API's log.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	httpapi.WriteError(a.log, w, r, err)
}
