// Package lifecycle drives environments through their states: it records
// what users ask for, reconciles the runtime towards it in the background,
// stops idle environments and keeps their cost.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"dev8.dev/dev8/internal/audit"
	"dev8.dev/dev8/internal/catalog"
	"dev8.dev/dev8/internal/lease"
	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/store"
)

// Store is the persistence the lifecycle needs.
type Store interface {
	CreateEnvironment(ctx context.Context, e store.Environment) (store.Environment, error)
	CreateEnvironmentWithinLimits(ctx context.Context, e store.Environment, l store.EnvironmentLimits) (store.Environment, error)
	GetEnvironment(ctx context.Context, id string) (store.Environment, error)
	ListEnvironments(ctx context.Context, f store.EnvironmentFilter) ([]store.Environment, int, error)
	UpdateEnvironment(ctx context.Context, id string, fn func(*store.Environment) error) (store.Environment, error)
	UpdateEnvironmentWithinLimits(ctx context.Context, id string, l store.EnvironmentLimits, fn func(*store.Environment) error) (store.Environment, error)
	TouchEnvironment(ctx context.Context, id string, at time.Time) error
	ListIdleCandidates(ctx context.Context, cutoff time.Time) ([]store.Environment, error)
	GetTemplate(ctx context.Context, name string) (store.Template, error)
	ListTemplates(ctx context.Context) ([]store.Template, error)
	GetInstanceType(ctx context.Context, name string) (store.InstanceType, error)
	InsertActivity(ctx context.Context, a store.Activity) error
}

// Default intervals of the background loops.
const (
	DefaultReaperInterval = 30 * time.Second
	DefaultResyncInterval = 15 * time.Second
)

// Config configures a Manager. Zero durations take the defaults.
type Config struct {
	Store Store
	// Runtimes are the engines environments run on, each under its Name();
	// every environment is driven through the one it was created on
	// (store.Environment.Runtime). Runtime alone is short for a list of one.
	Runtimes []runtime.Runtime
	Runtime  runtime.Runtime
	// OfferedRuntimes names, in order of preference, the runtimes new
	// environments may be created on (nil: all of Runtimes, in order).
	// Others are driven for the environments they already have.
	OfferedRuntimes []string
	// DefaultRuntime is what a create that names no runtime gets; it must
	// be offered. Empty: the first offered runtime on which the
	// template can run now (see ChooseRuntime).
	DefaultRuntime string
	// IsAdmin says whether a user is an admin: only admins' environments
	// may run on a runtime that shares the server's host
	// (runtime.HostSharer). Nil lets everyone's (tests of one user).
	IsAdmin func(ctx context.Context, userID string) (bool, error)
	Pricing Pricing
	Logger  *slog.Logger

	// Workers bounds how many runtime operations run at once (default 4).
	Workers int
	// ReaperInterval is how often idle environments are looked for (default 30s).
	ReaperInterval time.Duration
	// ResyncInterval is how often running and transitional environments are
	// checked against the runtime, to notice compute that died (default 15s).
	ResyncInterval time.Duration
	// OperationTimeout bounds one runtime operation (default 5m).
	OperationTimeout time.Duration
	// MaxAttempts is how often a failing operation is tried before the
	// environment goes to ERROR (default 5). Permanent errors fail at once.
	MaxAttempts int
	// RetryBase is the first retry delay; it doubles each attempt up to 30s
	// (default 500ms).
	RetryBase time.Duration
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	// AgentTokens issues the credential a workspace's supervisor uses to
	// reach the server, one per start (see agenttoken.go); nil: supervisors
	// get none and cannot connect.
	AgentTokens AgentTokenIssuer
	// AgentRevoked is called when an environment's agent token stops being
	// valid (it stopped, is being deleted or started again, or its compute
	// died), after the store says so: the server drops its supervisor's
	// tunnel. Nil: nothing is called.
	// Audit records what the manager does on its own (idle stops) in the
	// audit log; nil records nothing. Best-effort: a failure is logged.
	Audit Auditor
	// Observer is told about requests, operations, sweeps and activity,
	// for metrics; nil tells no one.
	Observer Observer
	// Quota bounds what each user may have (internal/quota): Create and
	// Start ask it before anything else, and the store enforces the limits
	// it returns in the same transaction as their write. nil: no quotas.
	Quota QuotaPolicy

	// BeforeStop runs before every stop — a user's, or the idle reaper's —
	// for at most PreStopTimeout (zero: DefaultPreStopTimeout); the server
	// takes a snapshot there. It records its own outcome; whatever it is,
	// the stop goes on, so a failing hook can never keep compute running.
	// Nil: nothing runs.
	BeforeStop     func(ctx context.Context, env store.Environment)
	PreStopTimeout time.Duration
	// AfterStart is called on every start that reaches RUNNING (the first
	// one after a create included) with the environment as recorded and
	// whether the runtime had to make its workspace storage anew for it:
	// true for a new environment, and for one whose volume or directory was
	// lost while it was stopped (the server restores those from their
	// latest snapshot). It runs on the lifecycle's worker and must return
	// promptly: long work belongs to a goroutine its owner waits for. Nil:
	// nothing is called.
	AfterStart   func(ctx context.Context, env store.Environment, freshStorage bool)
	AgentRevoked func(environmentID string)

	// Leases keep work to one replica when several share the store (see
	// leases.go): each environment's operation runs under its lease, and
	// the reaper and resync on the replica that leads. Nil: this manager is
	// the only one, and does everything itself.
	Leases *lease.Leases
	// Announce tells the other replicas of each change this manager
	// publishes to its subscribers; it must not block. Nil: there are no
	// other replicas.
	Announce func(env store.Environment)
}

// QuotaPolicy decides how much a user may have.
type QuotaPolicy interface {
	// Admit refuses, with an error, a request by ownerID's environments
	// that would add compute (addsCompute: a create, or the start of an
	// environment not already running or on its way) when the user may
	// not have more (a spent budget), and returns the limits the store
	// then enforces on the write.
	Admit(ctx context.Context, ownerID string, addsCompute bool) (store.EnvironmentLimits, error)
}

// Auditor records in the audit log (audit.Recorder implements it).
type Auditor interface {
	Record(ctx context.Context, e audit.Event)
}

// URLs are where the server is reached: AccessURL by people (vs_code_url
// is built on it), AgentURL by workspaces' supervisors, and AgentSocket
// (a path on this host, if the server listens there) by the supervisors of
// workspaces on this host that have no network path to the server: see
// runtime.Spec.AgentSocket.
type URLs struct {
	AccessURL   string
	AgentURL    string
	AgentSocket string
}

// Manager owns every environment state change. The API and the dashboard
// call it; nothing else writes an environment's status.
type Manager struct {
	cfg      Config
	store    Store
	runtimes map[string]runtime.Runtime // by name
	offered  []string                   // Config.OfferedRuntimes, resolved
	log      *slog.Logger
	queue    *queue
	attempts attemptCounter
	exits    chan string
	events   broadcaster
	urls     atomic.Pointer[URLs]
	// freshStorage holds environments whose runtime made their workspace
	// storage anew (runtime.Instance.StorageCreated) and that have not
	// reached RUNNING since: a Create that is retried after a failed Start
	// finds the storage it made and no longer says so.
	freshStorage sync.Map // environment id → struct{}
}

// DefaultPreStopTimeout bounds the work before a stop (Config.BeforeStop).
const DefaultPreStopTimeout = 2 * time.Minute

// beforeStop runs the BeforeStop hook, bounded by its timeout.
func (m *Manager) beforeStop(ctx context.Context, env store.Environment) {
	if m.cfg.BeforeStop == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.PreStopTimeout)
	defer cancel()
	m.cfg.BeforeStop(ctx, env)
}

// SetURLs tells the manager where the server listens. The server calls it
// once it knows its address, before Run.
func (m *Manager) SetURLs(u URLs) { m.urls.Store(&u) }

func (m *Manager) getURLs() URLs {
	if u := m.urls.Load(); u != nil {
		return *u
	}
	return URLs{}
}

// New returns a Manager; call Run to start its background work.
func New(cfg Config) *Manager {
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.ReaperInterval <= 0 {
		cfg.ReaperInterval = DefaultReaperInterval
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = DefaultResyncInterval
	}
	if cfg.OperationTimeout <= 0 {
		cfg.OperationTimeout = 5 * time.Minute
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 500 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Pricing == (Pricing{}) {
		cfg.Pricing = DefaultPricing
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.PreStopTimeout <= 0 {
		cfg.PreStopTimeout = DefaultPreStopTimeout
	}
	if len(cfg.Runtimes) == 0 && cfg.Runtime != nil {
		cfg.Runtimes = []runtime.Runtime{cfg.Runtime}
	}
	m := &Manager{
		cfg:      cfg,
		store:    cfg.Store,
		runtimes: make(map[string]runtime.Runtime, len(cfg.Runtimes)),
		offered:  slices.Clone(cfg.OfferedRuntimes),
		log:      cfg.Logger,
		queue:    newQueue(),
		attempts: attemptCounter{n: make(map[string]int)},
		exits:    make(chan string, 64),
	}
	for _, rt := range cfg.Runtimes {
		m.runtimes[rt.Name()] = rt
		if cfg.OfferedRuntimes == nil {
			m.offered = append(m.offered, rt.Name())
		}
		if n, ok := rt.(runtime.ExitNotifier); ok {
			n.NotifyExits(m.exits)
		}
	}
	return m
}

func (m *Manager) now() time.Time { return m.cfg.Now().UTC() }

// Run converges every environment with the runtime, then reconciles, reaps
// and resyncs until ctx is done. It returns after in-flight operations end;
// it never stops workspaces on its way out.
func (m *Manager) Run(ctx context.Context) error {
	defer m.queue.close()
	// Nothing is reconciled before the first convergence: orphans must be
	// told apart from instances the workers are about to create.
	for delay := m.cfg.RetryBase; ; delay = min(2*delay, maxRetryDelay) {
		err := m.converge(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		m.log.Error("converge with runtime; retrying", "retry_in", delay, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
	g, ctx := errgroup.WithContext(ctx)
	for range m.cfg.Workers {
		g.Go(func() error { m.work(ctx); return nil })
	}
	g.Go(func() error { m.lead(ctx, "lifecycle.reaper", m.cfg.ReaperInterval, m.reap); return nil })
	g.Go(func() error { m.lead(ctx, "lifecycle.resync", m.cfg.ResyncInterval, m.resync); return nil })
	if m.cfg.Leases != nil {
		g.Go(func() error { m.every(ctx, m.cfg.Leases.TTL()/2, m.takeOver); return nil })
	}
	g.Go(func() error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case id := <-m.exits:
				m.queue.add(id)
			}
		}
	})
	return g.Wait()
}

func (m *Manager) every(ctx context.Context, d time.Duration, fn func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

// CreateParams is a create request after its JSON has been checked.
// Zero values mean "not given".
type CreateParams struct {
	UserID       string
	Name         string
	Template     string
	InstanceType string
	BaseImage    string
	CPUCores     float64 // vCPUs (catalog.CheckCPU)
	MemoryGB     int
	StorageGB    int
	CloudRegion  string
	// Runtime names the runtime to create it on; empty: the default.
	Runtime              string
	EnvironmentVariables map[string]string
	Ports                []store.Port
	// AutoStopMinutes nil means the default (30); 0 means never.
	AutoStopMinutes *int
}

// DefaultAutoStopMinutes applies when a create request does not say.
const DefaultAutoStopMinutes = 30

// Create records a new environment in CREATING and queues its provisioning.
// The owner's quota is checked first (Config.Quota).
func (m *Manager) Create(ctx context.Context, p CreateParams) (store.Environment, error) {
	limits, err := m.admit(ctx, p.UserID, true)
	if err != nil {
		return store.Environment{}, err
	}
	env, err := m.resolve(ctx, p)
	if err != nil {
		return store.Environment{}, err
	}
	if limits != nil {
		env, err = m.store.CreateEnvironmentWithinLimits(ctx, env, *limits)
	} else {
		env, err = m.store.CreateEnvironment(ctx, env)
	}
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.Environment{}, &NameTakenError{Name: p.Name}
		}
		return store.Environment{}, fmt.Errorf("create environment: %w", err)
	}
	m.publish(env)
	m.cfg.Observer.LifecycleRequested("create")
	m.record(ctx, env, "created", fmt.Sprintf("template %s, %s (%s vCPU, %d GB)", env.TemplateName, env.InstanceType, catalog.FormatCPU(env.CPUCores), env.MemoryGB))
	m.queue.add(env.ID)
	return env, nil
}

// Start asks for a stopped (or failed) environment to run again. Starting an
// environment that is running or on its way there changes nothing. Its
// owner's quota is checked first (Config.Quota); starting one that already
// counts as running is never refused.
func (m *Manager) Start(ctx context.Context, id string) (store.Environment, error) {
	env, err := m.store.GetEnvironment(ctx, id)
	if err != nil {
		return store.Environment{}, err
	}
	if err := m.checkHostSharing(ctx, env); err != nil {
		return store.Environment{}, err
	}
	var limits *store.EnvironmentLimits
	if m.cfg.Quota != nil {
		// Whose quota, and whether the start adds compute (which the budget
		// is asked about); the running limit itself is checked again by the
		// store, under the owner's lock, with the status as it is then.
		if limits, err = m.admit(ctx, env.UserID, !slices.Contains(store.ActiveStatuses, env.Status)); err != nil {
			return store.Environment{}, err
		}
	}
	return m.request(ctx, id, "start", limits, func(e *store.Environment) (bool, error) {
		switch e.Status {
		case store.StatusRunning, store.StatusStarting, store.StatusCreating:
			return false, nil
		case store.StatusStopped, store.StatusError:
			e.Status = store.StatusStarting
			e.StatusReason = ""
			// A start is a new run with a new agent token; the last
			// run's dies now (a failed one's compute may still hold it).
			e.AgentTokenNonce = ""
			return true, nil
		}
		return false, &StateError{Action: "start", Status: e.Status}
	})
}

// Stop asks for a running (or failed) environment to stop, keeping its
// storage. Stopping one that is stopped or stopping changes nothing.
func (m *Manager) Stop(ctx context.Context, id string) (store.Environment, error) {
	return m.request(ctx, id, "stop", nil, func(e *store.Environment) (bool, error) {
		switch e.Status {
		case store.StatusStopped, store.StatusStopping:
			return false, nil
		case store.StatusRunning, store.StatusError:
			e.Status = store.StatusStopping
			e.StatusReason = "stopped by its owner"
			return true, nil
		}
		return false, &StateError{Action: "stop", Status: e.Status}
	})
}

// Delete asks for an environment's compute and storage to be removed. It is
// allowed from every status, including while it is being created.
func (m *Manager) Delete(ctx context.Context, id string) (store.Environment, error) {
	return m.request(ctx, id, "delete", nil, func(e *store.Environment) (bool, error) {
		if e.Status == store.StatusDeleting {
			return false, nil
		}
		e.Status = store.StatusDeleting
		e.StatusReason = ""
		e.AgentTokenNonce = ""
		return true, nil
	})
}

// Touch records that a person used the environment now.
func (m *Manager) Touch(ctx context.Context, id string) error {
	if err := m.store.TouchEnvironment(ctx, id, m.now()); err != nil {
		return err
	}
	m.cfg.Observer.ActivityReported()
	return nil
}

// admit asks the quota policy, if there is one, whether ownerID may go on;
// nil limits mean there is none.
func (m *Manager) admit(ctx context.Context, ownerID string, addsCompute bool) (*store.EnvironmentLimits, error) {
	if m.cfg.Quota == nil {
		return nil, nil
	}
	l, err := m.cfg.Quota.Admit(ctx, ownerID, addsCompute)
	if err != nil {
		return nil, err
	}
	return &l, nil
}

// request applies a user's action to the stored status, within limits when
// they are given, and queues the reconciler when it changed anything.
func (m *Manager) request(ctx context.Context, id, action string, limits *store.EnvironmentLimits, apply func(*store.Environment) (bool, error)) (store.Environment, error) {
	var (
		changed  bool
		hadToken bool
	)
	update := m.store.UpdateEnvironment
	if limits != nil {
		update = func(ctx context.Context, id string, fn func(*store.Environment) error) (store.Environment, error) {
			return m.store.UpdateEnvironmentWithinLimits(ctx, id, *limits, fn)
		}
	}
	env, err := update(ctx, id, func(e *store.Environment) error {
		if _, err := m.runtimeFor(*e); err != nil {
			return err
		}
		var err error
		hadToken = e.AgentTokenNonce != ""
		changed, err = apply(e)
		if changed && e.Status == store.StatusStarting {
			// Starting counts as use; otherwise the reaper would stop at
			// once an environment that last saw activity days ago.
			e.LastAccessedAt = m.now()
		}
		return err
	})
	if err != nil {
		return store.Environment{}, err
	}
	if changed {
		if hadToken && env.AgentTokenNonce == "" {
			m.agentRevoked(id)
		}
		m.publish(env)
		m.attempts.reset(id)
		m.cfg.Observer.LifecycleRequested(action)
		m.record(ctx, env, action+"_requested", "")
		m.queue.add(id)
	}
	return env, nil
}

// NoteRunning tells the owner of a RUNNING environment something the server
// did to it on its own (its workspace restored from a snapshot after its
// storage was lost): reason becomes its status reason, published like any
// change, and kind/reason go to its history. It returns ErrNotRunning, and
// changes nothing, if the environment is no longer RUNNING. The next status
// change replaces the reason.
//
// settled, if not nil, runs in every case once the reason is stored and
// before the change is published: what it ends (a restore the API shows as
// in progress) is over by the time a watcher hears of the new reason, and a
// watcher that saw it still going sees the reason that tells how it went.
func (m *Manager) NoteRunning(ctx context.Context, id, kind, reason string, settled func()) (store.Environment, error) {
	env, err := m.store.UpdateEnvironment(ctx, id, func(e *store.Environment) error {
		if e.Status != store.StatusRunning {
			return ErrNotRunning
		}
		e.StatusReason = reason
		return nil
	})
	if settled != nil {
		settled()
	}
	if err != nil {
		return store.Environment{}, err
	}
	m.publish(env)
	m.record(ctx, env, kind, reason)
	return env, nil
}

// ErrNotRunning is NoteRunning's answer for an environment that is not
// RUNNING.
var ErrNotRunning = errors.New("environment is not running")

// record appends to the environment's activity history. History is
// best-effort: losing an entry must not fail the operation it describes.
func (m *Manager) record(ctx context.Context, env store.Environment, kind, detail string) {
	err := m.store.InsertActivity(ctx, store.Activity{
		EnvironmentID: env.ID,
		UserID:        env.UserID,
		Kind:          kind,
		Detail:        detail,
		CreatedAt:     m.now(),
	})
	if err != nil {
		m.log.Warn("record activity", "environment", env.ID, "kind", kind, "err", err)
	}
}
