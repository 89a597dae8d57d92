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
	"dev8.dev/dev8/internal/lease"
	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/liveconn"
	"dev8.dev/dev8/internal/metrics"
	"dev8.dev/dev8/internal/quota"
	"dev8.dev/dev8/internal/replicaevents"
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
	// lock is held on the data directory until Close (see datadirlock.go).
	lock *dataDirLock
	// leases: nil on SQLite (see New).
	leases *lease.Leases
	// peers carries environment changes to and from the other replicas
	// (nil on SQLite).
	peers *replicaevents.Bus
	// replicaID names this server among the replicas; relayKey signs the
	// relay credentials (replicas.go).
	replicaID string
	relayKey  []byte
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
	if cfg.ReplicaURL != "" {
		if cfg.ReplicaURL, err = replicas.CheckURL(cfg.ReplicaURL); err != nil {
			return nil, err
		}
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
	// On PostgreSQL this server may be one of several replicas: leases keep
	// work that must happen once to one of them. A SQLite file is one
	// server's (the data directory's lock says so), which does it all.
	var (
		// One name for this replica in its leases, its events and the
		// registry of replicas (replicas.go).
		replicaID = lease.NewHolder()
		leases    *lease.Leases
		peers     *replicaevents.Bus
	)
	if db.Engine() == "postgres" {
		leases = lease.New(lease.Config{Store: db, Holder: replicaID, Logger: cfg.Logger})
		peers = replicaevents.New(replicaevents.Config{Store: db, Origin: replicaID, Logger: cfg.Logger})
		cfg.Logger.Info("PostgreSQL: this server may run beside other replicas on the same database", "replica", replicaID)
	} else {
		cfg.Logger.Info("SQLite: this server runs alone; replicas need PostgreSQL (DATABASE_URL)")
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
		Leases:   leases,
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
		Leases:          leases,
		Announce:        peers.Announce,
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
		LoginFailures:  sharedLoginFailures(db, timed),
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
	return &Server{cfg: cfg, log: cfg.Logger, Store: db, Manager: mgr, Runtimes: byName(runtimes), Tunnels: tunnels, AgentTokens: agents, usage: usageWriter, auditPruner: pruner, live: live, handler: a.Handler(), api: a, backups: backups, tlsConfig: tlsConfig, metrics: m, adminLn: adminLn, agentLn: agentLn, lock: lock, leases: leases, peers: peers, replicaID: replicaID, relayKey: relayKey}, nil
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
	// The background loops outlive the listener: a request still being
	// answered while the server drains may need the lifecycle. They end
	// once the last request has (or when one of them fails).
	lctx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoops()
	context.AfterFunc(gctx, func() {
		if ctx.Err() == nil {
			stopLoops() // gctx ended on a failure, not a shutdown
		}
	})
	g.Go(func() error {
		if err := s.Manager.Run(lctx); err != nil && lctx.Err() == nil {
			return fmt.Errorf("lifecycle: %w", err)
		}
		return nil
	})
	// Retention runs on one replica at a time (the one that leads each);
	// live checks are of this replica's own connections.
	g.Go(func() error {
		s.leases.Lead(lctx, "usage.retention", func(ctx context.Context) { _ = s.usage.RunRetention(ctx) })
		return nil
	})
	g.Go(func() error { s.leases.Lead(lctx, "audit.retention", s.auditPruner.Run); return nil })
	g.Go(func() error {
		s.leases.Lead(lctx, "sessions.prune", func(ctx context.Context) { s.api.RunSessionPruning(ctx, s.cfg.SessionPruneInterval) })
		return nil
	})
	if s.Store.Engine() == "postgres" {
		g.Go(func() error {
			s.leases.Lead(lctx, "login-failures.prune", func(ctx context.Context) {
				runLoginFailurePruning(ctx, s.Store, s.cfg.SessionPruneInterval, s.cfg.Now, s.log)
			})
			return nil
		})
	}
	g.Go(func() error { s.live.Run(lctx, s.cfg.LiveCheckInterval); return nil })
	if s.peers != nil {
		g.Go(func() error { return s.peers.Run(lctx, peerChanges{s}) })
	}
	// Snapshot jobs (manual ones after their 202, forks, lost-volume
	// restores, the schedule) end with it: cancelled, recorded, waited for.
	g.Go(func() error { return s.backups.Run(lctx) })
	g.Go(func() error { return s.serveAdmin(gctx) })
	g.Go(func() error { return s.serveAgentSocket(gctx) })
	// Heartbeats until the last request is answered, then deregisters:
	// the other replicas relay here while it drains, then stop, and the
	// supervisors have redialed one of them.
	g.Go(func() error { return replica.Run(lctx) })
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
		defer stopLoops()
		s.drain(replica)
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
		defer cancel()
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
