// Package server assembles dev8 server from its parts: store, runtime,
// lifecycle manager and API, behind one HTTP listener.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"dev8.dev/dev8/internal/api"
	"dev8.dev/dev8/internal/appurl"
	"dev8.dev/dev8/internal/audit"
	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/backup"
	"dev8.dev/dev8/internal/catalog"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/liveconn"
	"dev8.dev/dev8/internal/metrics"
	"dev8.dev/dev8/internal/quota"
	"dev8.dev/dev8/internal/replicas"
	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/secretbox"
	"dev8.dev/dev8/internal/signup"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/supervisorbin"
	"dev8.dev/dev8/internal/tunnel"
	"dev8.dev/dev8/internal/usage"
	"dev8.dev/dev8/internal/web"
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
	Logger               *slog.Logger
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
	// SessionPruneInterval is how often expired sessions are deleted
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

// Server is a running control plane.
type Server struct {
	cfg     Config
	log     *slog.Logger
	Store   *store.DB
	Manager *lifecycle.Manager
	// Runtimes are the runtimes the manager drives, by name.
	Runtimes map[string]runtime.Runtime
	Tunnels  *tunnel.Registry
	// AgentTokens issues workspace supervisors' credentials.
	AgentTokens *auth.AgentTokens
	usage       *usage.Writer
	auditPruner *audit.Pruner
	live        *liveconn.Registry
	handler     http.Handler
	api         *api.API
	backups     *backup.Service
	tlsConfig   *tls.Config // nil: plain HTTP
	metrics     *metrics.Metrics
	adminLn     net.Listener // nil: no admin listener
	agentLn     net.Listener // the agent socket: see agentsocket.go
	relayKey    []byte       // signs relay credentials: see replicas.go
	// lock is held on the data directory until Close (see datadirlock.go).
	lock *dataDirLock
}

// New opens the store (migrating it), seeds the catalog and builds the
// runtime, manager and API. Serve starts them. A second server on the same
// data directory is refused before it touches anything there.
func New(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// Every line logged about a request names its id.
	cfg.Logger = slog.New(httpmw.LogRequestIDs(cfg.Logger.Handler()))
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.DataDir == "" {
		return nil, errors.New("data dir is required")
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lock.release()
		}
	}()
	if err := checkTokenLifetimes(cfg.TokenDefaultLifetime, cfg.TokenMaxLifetime); err != nil {
		return nil, err
	}
	if err := checkSignup(cfg.Signup, cfg.AllowedEmailDomains); err != nil {
		return nil, err
	}
	// The certificate is loaded before anything else so a typo in a path
	// fails at start, not at the first client's handshake.
	tlsConfig, err := loadTLS(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, err
	}
	oauthProviders, err := cfg.OAuth.providers()
	if err != nil {
		return nil, err
	}
	if cfg.WildcardAccessURL != "" {
		if _, err := appurl.ParseWildcard(cfg.WildcardAccessURL); err != nil {
			return nil, err
		}
	}
	if cfg.ReplicaURL != "" {
		if cfg.ReplicaURL, err = replicas.CheckURL(cfg.ReplicaURL); err != nil {
			return nil, err
		}
	}
	if cfg.SecretKeyFile == "" {
		cfg.SecretKeyFile = filepath.Join(cfg.DataDir, "secret.key")
	}
	box, keySource, err := secretbox.Load(cfg.SecretKey, cfg.SecretKeyFile)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	if keySource == secretbox.SourceFileCreated {
		cfg.Logger.Warn("created a new key for users' secrets; back it up with the database, or set DEV8_SECRET_KEY", "file", cfg.SecretKeyFile, "key_id", box.KeyID())
	} else {
		cfg.Logger.Info("secret key loaded", "source", string(keySource), "key_id", box.KeyID())
	}
	site, err := web.New(cfg.Logger, api.OpenAPIDocument())
	if err != nil {
		return nil, fmt.Errorf("web pages: %w", err)
	}
	db, err := store.Open(ctx, cfg.DatabaseURL, filepath.Join(cfg.DataDir, "dev8.db"))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := catalog.Seed(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	useEmbeddedSupervisor(&cfg, supervisorbin.Binary())
	served, servedMissing := serveSupervisor(cfg)
	plan, err := planRuntimes(ctx, cfg, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	logRuntimes(cfg.Logger, plan, cfg.LocalForMembers)
	imageRefs, builtHere, err := templateImageRefs(ctx, db, cfg.TemplateImages)
	if err != nil {
		db.Close()
		return nil, err
	}
	tunnels := tunnel.NewRegistry(cfg.Logger)
	runtimes, err := buildRuntimes(ctx, cfg, plan, runtimeDeps{db: db, imageRefs: imageRefs, builtHere: builtHere, tunnels: tunnels})
	if err != nil {
		db.Close()
		return nil, err
	}
	agentKey, err := installationKey(ctx, db, box, cfg.Logger, "agent-token-key", auth.AgentKeySize)
	if err != nil {
		db.Close()
		return nil, err
	}
	agents := auth.NewAgentTokens(agentKey)
	sessionKey, err := installationKey(ctx, db, box, cfg.Logger, "session-key", auth.SessionKeySize)
	if err != nil {
		db.Close()
		return nil, err
	}
	relayKey, err := installationKey(ctx, db, box, cfg.Logger, relayKeyName, relayKeySize)
	if err != nil {
		db.Close()
		return nil, err
	}
	snapshots, err := openSnapshotRepo(ctx, db, cfg.SnapshotStore, cfg.DataDir, cfg.Logger)
	if err != nil {
		db.Close()
		return nil, err
	}
	adminLn, err := listenAdmin(cfg.AdminAddr)
	if err != nil {
		db.Close()
		return nil, err
	}
	var agentLn net.Listener
	agentSocket, err := agentSocketPath(cfg.DataDir)
	if err == nil {
		agentLn, err = listenAgentSocket(agentSocket)
	}
	if err != nil {
		if adminLn != nil {
			adminLn.Close()
		}
		db.Close()
		return nil, err
	}
	// The series are kept whether or not the admin listener serves them:
	// one code path for tests and production, at ~2 µs a request.
	m := metrics.New(cfg.Logger)
	timed := m.InstrumentStore(db)
	tunnels.SetObserver(m)
	quotas := quota.New(timed, quotasOrDefault(cfg.Quotas), cfg.Now)
	// One audit log for the API, the backup service and the lifecycle.
	auditLog := audit.New(timed, cfg.Logger, cfg.Now)
	// The backup service comes before the lifecycle manager, which takes
	// its hooks at construction; the manager is handed to it right after.
	backups := backup.New(backup.Config{
		Store:    timed,
		Repo:     snapshots,
		Tunnels:  tunnels,
		Audit:    auditLog,
		Observer: m,
		Logger:   cfg.Logger,
		Now:      cfg.Now,
		Schedule: cfg.Snapshots,
	})
	isAdmin := func(ctx context.Context, userID string) (bool, error) {
		u, err := timed.GetUser(ctx, userID)
		if err != nil {
			return false, err
		}
		return u.Role == store.RoleAdmin, nil
	}
	if cfg.LocalForMembers {
		isAdmin = nil
	}
	mgr := lifecycle.New(lifecycle.Config{
		IsAdmin: isAdmin,
		Quota:   quotas,
		// Every stop (a user's or the idle reaper's) first snapshots the
		// workspace, so nothing written before it is lost.
		BeforeStop:     backups.PreStopSnapshot,
		PreStopTimeout: cfg.PreStopTimeout,
		// A workspace whose storage was lost while stopped comes back
		// from its latest snapshot.
		AfterStart: backups.AfterStart,
		// Each start issues the supervisor a token of its own; whatever
		// revokes it (a stop, a delete, the next start) drops its tunnel.
		AgentTokens:     agents,
		AgentRevoked:    tunnels.Disconnect,
		Observer:        m,
		Store:           timed,
		Runtimes:        runtimes,
		OfferedRuntimes: plan.Offered,
		DefaultRuntime:  plan.Default,
		Pricing:         cfg.Pricing,
		Logger:          cfg.Logger,
		ReaperInterval:  cfg.ReaperInterval,
		ResyncInterval:  cfg.ResyncInterval,
		Now:             cfg.Now,
		Audit:           auditLog,
	})
	backups.SetEnvironments(mgr)
	usageWriter := usage.NewWriter(usage.Config{Store: timed, Logger: cfg.Logger, Retention: cfg.UsageRetention, Now: cfg.Now})
	// One signup policy for the API, which enforces it, and the pages,
	// which offer only what it allows.
	gate := signup.New(signup.Config{Policy: cfg.Signup, AllowedDomains: cfg.AllowedEmailDomains, Store: timed, Now: cfg.Now})
	site.SetSignup(gate)
	live := liveconn.New(cfg.Logger)
	a := api.New(api.Config{
		Signup:               gate,
		Pages:                site,
		Usage:                usageWriter,
		Requests:             m,
		Store:                timed,
		Lifecycle:            mgr,
		Logger:               cfg.Logger,
		TokenTTL:             cfg.TokenTTL,
		TokenDefaultLifetime: cfg.TokenDefaultLifetime,
		TokenMaxLifetime:     cfg.TokenMaxLifetime,
		Now:                  cfg.Now,
		BcryptCost:           cfg.BcryptCost,
		AgentTokens:          agents,
		Tunnels:              tunnels,
		SecretBox:            box,
		Backups:              backups,
		Audit:                auditLog,
		Live:                 live,

		Quotas:         quotas,
		RateLimits:     cfg.RateLimits,
		Streams:        cfg.Streams,
		CORSOrigins:    cfg.CORSOrigins,
		AllowedImages:  allowedImages(cfg.AllowedImages, imageRefs),
		TrustedProxies: cfg.TrustedProxies,
		SessionKey:     sessionKey,
		OAuthProviders: oauthProviders,

		WildcardAccessURL: cfg.WildcardAccessURL,
		PathBasedApps:     cfg.UnsafePathBasedApps,
		Supervisor:        served,
		SupervisorMissing: servedMissing,
	})
	m.WatchEnvironments(db)
	m.WatchQueue(mgr)
	m.WatchTunnels(tunnels)
	m.WatchUsage(usageWriter)
	m.WatchPools(db)
	cfg.Logger.Info("dev8 server ready", "store", db.Engine(), "runtimes", mgr.RuntimeNames(), "data_dir", cfg.DataDir, "code_server", cfg.CodeServer,
		"signup", gate.Policy(), "allowed_email_domains", cfg.AllowedEmailDomains)
	pruner := audit.NewPruner(audit.RetentionConfig{Store: timed, Retention: cfg.AuditRetention, Logger: cfg.Logger, Now: cfg.Now})
	return &Server{cfg: cfg, log: cfg.Logger, Store: db, Manager: mgr, Runtimes: byName(runtimes), Tunnels: tunnels, AgentTokens: agents, usage: usageWriter, auditPruner: pruner, live: live, handler: a.Handler(), api: a, backups: backups, tlsConfig: tlsConfig, metrics: m, adminLn: adminLn, agentLn: agentLn, relayKey: relayKey, lock: lock}, nil
}

// RemoveInstance removes env's compute and storage from its runtime at
// once, past the lifecycle (which is not told): for test and benchmark
// harnesses cleaning up what outlives a server by design (containers,
// volumes). An environment whose runtime is not here is left alone.
func (s *Server) RemoveInstance(ctx context.Context, env store.Environment) error {
	rt, ok := s.Runtimes[env.Runtime]
	if !ok {
		return nil
	}
	return rt.Delete(ctx, env.ID)
}

// byName indexes runtimes by name.
func byName(runtimes []runtime.Runtime) map[string]runtime.Runtime {
	out := make(map[string]runtime.Runtime, len(runtimes))
	for _, rt := range runtimes {
		out[rt.Name()] = rt
	}
	return out
}

// quotasOrDefault is q, or quota.DefaultLimits when q is nil.
func quotasOrDefault(q *quota.Limits) quota.Limits {
	if q == nil {
		return quota.DefaultLimits
	}
	return *q
}

// checkTokenLifetimes refuses lifetimes API tokens cannot have (zero takes
// the default).
func checkTokenLifetimes(def, maxLife time.Duration) error {
	switch {
	case def < 0 || maxLife < 0:
		return errors.New("token lifetimes must not be negative")
	case maxLife != 0 && maxLife < 24*time.Hour:
		return fmt.Errorf("token maximum lifetime %s: must be at least a day (24h)", maxLife)
	}
	if maxLife == 0 {
		maxLife = auth.DefaultTokenMaxLifetime
	}
	if def > maxLife {
		return fmt.Errorf("token default lifetime %s is longer than the maximum %s", def, maxLife)
	}
	return nil
}

// loadTLS reads the certificate and key; neither set means plain HTTP.
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("TLS needs both a certificate and a key (--tls-cert and --tls-key)")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		// HTTP/1.1 only: the tunnels, terminals and IDE are websockets
		// that upgrade an HTTP/1.1 connection (and hijack it), which an
		// HTTP/2 stream cannot do.
		NextProtos: []string{"http/1.1"},
	}, nil
}

// Handler is the server's HTTP surface.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves ln and runs the lifecycle manager until ctx is done, then
// shuts down gracefully: in-flight requests finish (bounded by
// ShutdownTimeout), background loops stop, workspaces keep running.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	urls := s.urls(ln.Addr())
	urls.AgentSocket = s.AgentSocket()
	s.Manager.SetURLs(urls)
	s.api.SetPublicURL(urls.AccessURL)
	s.logApps()
	warnOpenSignup(s.log, s.api.SignupGate().Policy(), ln.Addr())
	// Before any tunnel arrives: each is noted as this replica's.
	replica, err := s.startReplica(ctx, ln.Addr())
	if err != nil {
		return err
	}
	srv := &http.Server{
		// Hosts are checked before anything else runs (see AllowHosts):
		// the server's own, and its workspace apps' (see appurl).
		// The kubernetes runtime's pods may reach it under a name of its
		// own (an in-cluster service's).
		Handler: httpmw.AllowHosts(s.log, httpmw.Hosts{URLs: []string{urls.AccessURL, urls.AgentURL, s.cfg.Kubernetes.AgentURL, replica.URL()},
			Names: s.cfg.AllowedHosts, Extra: s.api.IsAppHost})(s.withRelay(replica, s.handler)),
		ReadHeaderTimeout: 10 * time.Second,
		// Headers are small (a bearer token, a cookie); 64 KiB leaves room
		// for a proxy's additions while keeping a slow-loris client's
		// buffer far below the 1 MiB default.
		MaxHeaderBytes: 64 << 10,
		TLSConfig:      s.tlsConfig,
		IdleTimeout:    2 * time.Minute,
		BaseContext:    func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	// The body's arrival and the whole request are bounded (ReadTimeout,
	// WriteTimeout); the routes that stream (websockets: tunnels,
	// terminals, the IDE; event streams) lift the bounds for themselves
	// once the caller is authenticated (httpmw.LongLived).
	s.cfg.RequestTimeouts.Apply(srv)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := s.Manager.Run(gctx); err != nil && gctx.Err() == nil {
			return fmt.Errorf("lifecycle: %w", err)
		}
		return nil
	})
	g.Go(func() error { _ = s.usage.RunRetention(gctx); return nil })
	g.Go(func() error { s.auditPruner.Run(gctx); return nil })
	g.Go(func() error { s.live.Run(gctx, s.cfg.LiveCheckInterval); return nil })
	g.Go(func() error { s.api.RunSessionPruning(gctx, s.cfg.SessionPruneInterval); return nil })
	// Snapshot jobs (manual ones after their 202, forks, lost-volume
	// restores, the schedule) end with it: cancelled, recorded, waited for.
	g.Go(func() error { return s.backups.Run(gctx) })
	g.Go(func() error { return s.serveAdmin(gctx) })
	g.Go(func() error { return s.serveAgentSocket(gctx) })
	// Heartbeats until shutdown, then deregisters: the other replicas
	// stop relaying here and the supervisors redial one of them.
	g.Go(func() error { return replica.Run(gctx) })
	g.Go(func() error {
		s.log.Info("listening", "addr", ln.Addr().String())
		serve := srv.Serve
		if s.tlsConfig != nil {
			s.log.Info("serving HTTPS only", "cert", s.cfg.TLSCert)
			// The certificate is in TLSConfig already.
			serve = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
		}
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		s.log.Info("shutting down")
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
		defer cancel()
		// Tunnels and the connections through them are hijacked: Shutdown
		// neither waits for nor closes them. Supervisors redial the next
		// server.
		s.Tunnels.Close()
		// Event streams would hold Shutdown until its timeout.
		s.api.Shutdown()
		err := srv.Shutdown(shutdownCtx)
		// After the last request: samples still queued are written.
		if cerr := s.usage.Close(); cerr != nil {
			s.log.Warn("flush usage samples", "err", cerr)
		}
		if err != nil {
			return fmt.Errorf("shut down http: %w", err)
		}
		return nil
	})
	return g.Wait()
}

// logApps says where workspace apps are served, and warns when the IDE is
// on the dashboard's own origin or apps cannot be opened at all.
func (s *Server) logApps() {
	if s.api.PathBasedApps() {
		s.log.Warn("--unsafe-path-based-apps: every workspace's IDE is served on the dashboard's own origin (/w/{id}/ide/), " +
			"where the workspace's pages act with their visitor's Dev8 session: a member's IDE can act as whoever opens it. " +
			"Use it only when you are the one user; admins' browsers are refused other people's IDEs")
	}
	d, err := s.api.AppDomain()
	if err != nil {
		s.log.Warn("workspace apps cannot be opened on origins of their own", "err", err)
		return
	}
	s.log.Info("workspace apps are served on origins of their own", "url", d.Pattern())
}

// urls are the server's URLs when it listens on addr.
func (s *Server) urls(addr net.Addr) lifecycle.URLs {
	scheme := "http"
	if s.tlsConfig != nil {
		scheme = "https"
	}
	return urlsFor(scheme, addr, s.cfg.AccessURL, s.cfg.AgentURL)
}

// OpenURL is what people should open in a browser when the server listens
// on addr: the access URL if one is configured, else the address itself
// (on loopback when it listens on every interface).
func (s *Server) OpenURL(addr net.Addr) string { return s.urls(addr).AccessURL }

// urlsFor fills in the URLs not configured from the address the server
// listens on: that address itself, or loopback when it listens on every
// interface. (Workspaces on other hosts need DEV8_AGENT_URL.)
func urlsFor(scheme string, addr net.Addr, accessURL, agentURL string) lifecycle.URLs {
	host, port, err := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); err != nil || ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	own := scheme + "://" + net.JoinHostPort(host, port)
	if accessURL == "" {
		accessURL = own
	}
	if agentURL == "" {
		agentURL = own
	}
	return lifecycle.URLs{AccessURL: strings.TrimRight(accessURL, "/"), AgentURL: strings.TrimRight(agentURL, "/")}
}

// Close releases the store. Call it after Serve returns.
func (s *Server) Close() error {
	s.closeAdmin()
	// Serve closed it if it ran; this one removes the file otherwise.
	_ = s.agentLn.Close()
	for _, rt := range s.Runtimes {
		if c, ok := rt.(io.Closer); ok {
			// The docker runtime's engine client and event watcher.
			_ = c.Close()
		}
	}
	err := s.Store.Close()
	s.lock.release()
	return err
}
