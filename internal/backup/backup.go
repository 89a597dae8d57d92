// Package backup is the server's snapshot work that no request waits for:
// the snapshot before every stop, the restore of a workspace whose storage
// was lost, forks (a new environment restored from a snapshot once it
// runs), manual snapshots after their 202, the schedule of SCHEDULED
// snapshots and the pruning of the repository.
//
// The repository is the server's (by default a directory store under
// <data-dir>/backups, or S3 or Azure Blob with --snapshot-store; one per
// installation, so chunks are deduplicated across every environment). The
// supervisor takes the snapshot or restores it inside the workspace, but
// holds no credentials: the service opens a tunnel stream to it
// (tunnel.ServiceSnapshot), sends the job and serves the repository on that
// stream, limited to what the job needs (snapshot.Access). Records of each
// snapshot are in the backups table.
//
// Every goroutine the service starts is its own: Run's end cancels them and
// waits for them, and a job cut short that way records how it ended.
package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"dev8.dev/dev8/internal/audit"
	"dev8.dev/dev8/internal/lease"
	"dev8.dev/dev8/internal/snapshot"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/tunnel"
)

// Store keeps snapshot records and lists environments (store.DB
// implements it).
type Store interface {
	CreateBackup(ctx context.Context, b store.Backup) (store.Backup, error)
	StartBackup(ctx context.Context, id string) error
	FinishBackup(ctx context.Context, id string, r store.BackupResult) error
	GetBackup(ctx context.Context, id string) (store.Backup, error)
	ListBackups(ctx context.Context, environmentID string) ([]store.Backup, error)
	LatestCompletedBackup(ctx context.Context, environmentID string) (store.Backup, error)
	LatestBackup(ctx context.Context, environmentID string) (store.Backup, error)
	DeleteBackupsBySnapshot(ctx context.Context, snapshotIDs []string) (int64, error)
	ListEnvironments(ctx context.Context, f store.EnvironmentFilter) ([]store.Environment, int, error)
}

// Tunnels reach workspaces' supervisors (tunnel.Registry implements it).
type Tunnels interface {
	Dial(ctx context.Context, environmentID string, h tunnel.Header) (net.Conn, error)
	// Reachable: the supervisor is connected to this server or to
	// another replica, through which Dial relays; the replica stopping a
	// workspace is not always the one its tunnel is on.
	Reachable(ctx context.Context, environmentID string) bool
}

// Environments is what the service needs of the lifecycle manager
// (lifecycle.Manager implements it): to wait for a fork to run, and to tell
// an environment's owner what a restore did.
type Environments interface {
	WaitFor(ctx context.Context, id string, cond func(store.Environment) bool) (store.Environment, error)
	NoteRunning(ctx context.Context, id, kind, reason string, settled func()) (store.Environment, error)
}

// Auditor records in the audit log (audit.Recorder implements it).
type Auditor interface {
	Record(ctx context.Context, e audit.Event)
}

// Observer records each snapshot job, for metrics (internal/metrics has
// one). trigger is the record's (MANUAL, PRE_SHUTDOWN, SCHEDULED); scanned
// and stored are the bytes a successful snapshot covered and the bytes it
// added to the repository.
type Observer interface {
	SnapshotDone(trigger string, d time.Duration, scanned, stored int64, err error)
}

// Snapshot job timeouts: a job longer than this is cancelled and recorded
// as failed.
const (
	snapshotJobTimeout = time.Hour
	restoreJobTimeout  = time.Hour
	// dialWait bounds how long a job waits for a just-started workspace's
	// supervisor to dial in.
	dialWait = 30 * time.Second
	// noteTimeout bounds telling the lifecycle about a restore; like an
	// audit insert, it outlives the job's context.
	noteTimeout = audit.Timeout
)

// Config configures a Service. Without Store and Repo the server keeps no
// snapshots: Available is false and the service does nothing.
type Config struct {
	Store   Store
	Repo    snapshot.Store
	Tunnels Tunnels
	// Environments is the lifecycle manager. The manager takes the
	// service's hooks at construction, so the server builds the service
	// first and passes the manager with SetEnvironments before either
	// runs.
	Environments Environments
	Audit        Auditor
	// Observer records every snapshot job's outcome (nil: none).
	Observer Observer
	Logger   *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Schedule paces SCHEDULED snapshots and pruning (zero values: the
	// defaults).
	Schedule Schedule
	// Leases run the schedule on one replica at a time when several share
	// the store (nil: this server is the only one).
	Leases *lease.Leases
}

// Service runs snapshot jobs. Its methods are safe for concurrent use.
type Service struct {
	store   Store
	repo    snapshot.Store
	tunnels Tunnels
	envs    Environments
	audit   Auditor
	obs     Observer
	log     *slog.Logger
	now     func() time.Time
	sched   Schedule
	leases  *lease.Leases
	jobs    jobs
	// restoring holds the lost-volume restores in progress: environment
	// id → *lostVolumeRestore (restore.go).
	restoring sync.Map
}

// New returns a Service; Run it for the schedule, and so that shutdown
// cancels and waits for its jobs.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{store: cfg.Store, repo: cfg.Repo, tunnels: cfg.Tunnels, envs: cfg.Environments, audit: cfg.Audit,
		obs: cfg.Observer, log: cfg.Logger, now: cfg.Now, sched: cfg.Schedule.withDefaults(), leases: cfg.Leases}
	s.jobs.init()
	return s
}

// SetEnvironments gives the service the lifecycle manager, which is built
// after it (it takes the service's hooks). Call it before Run and before
// the manager runs.
func (s *Service) SetEnvironments(e Environments) { s.envs = e }

// Available reports whether this server keeps snapshots.
func (s *Service) Available() bool { return s != nil && s.store != nil && s.repo != nil }

// Run takes SCHEDULED snapshots and prunes the repository (see Schedule)
// while this replica leads "snapshots.schedule", until ctx ends; then it cancels every job still running and returns once
// they have recorded how they ended.
func (s *Service) Run(ctx context.Context) error {
	defer s.jobs.stop()
	if !s.Available() {
		<-ctx.Done()
		return nil
	}
	s.leases.Lead(ctx, "snapshots.schedule", s.runSchedule)
	return nil
}

// errShuttingDown is the answer for a job asked for once Run has ended.
var errShuttingDown = errors.New("the server is shutting down")

// jobs owns the goroutines the service starts: they run under one context
// that stop cancels, and stop waits for them.
type jobs struct {
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func (j *jobs) init() {
	// The jobs outlive the request or lifecycle call that started them;
	// only shutdown ends them.
	j.ctx, j.cancel = context.WithCancel(context.Background())
}

// start runs f in a goroutine of its own, or reports false once stop has
// been called.
func (j *jobs) start(f func(ctx context.Context)) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return false
	}
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		f(j.ctx)
	}()
	return true
}

// stop refuses new jobs, cancels the running ones and waits for them.
func (j *jobs) stop() {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	j.cancel()
	j.wg.Wait()
}

// List is an environment's snapshots, newest first.
func (s *Service) List(ctx context.Context, environmentID string) ([]store.Backup, error) {
	return s.store.ListBackups(ctx, environmentID)
}

// Get is one snapshot record.
func (s *Service) Get(ctx context.Context, id string) (store.Backup, error) {
	return s.store.GetBackup(ctx, id)
}

// Verify checks the whole repository: every snapshot's record and trees
// decode, and every chunk they use is there and matches its hash.
func (s *Service) Verify(ctx context.Context) (*snapshot.VerifyReport, error) {
	repo, err := snapshot.Open(ctx, s.repo)
	if err != nil {
		return nil, fmt.Errorf("open snapshot repository: %w", err)
	}
	report, err := repo.Verify(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify snapshot repository: %w", err)
	}
	return report, nil
}

// DialError is a job that could not reach the workspace's supervisor.
type DialError struct{ Err error }

func (e *DialError) Error() string { return "open workspace stream: " + e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

// runJob opens a snapshot stream to the environment's supervisor and serves
// the repository to it until the job ends.
func (s *Service) runJob(ctx context.Context, envID string, job snapshot.Job, access snapshot.Access) (snapshot.JobResult, error) {
	dialCtx, cancel := context.WithTimeout(ctx, dialWait)
	conn, err := s.tunnels.Dial(dialCtx, envID, tunnel.Header{Service: tunnel.ServiceSnapshot})
	cancel()
	if err != nil {
		return snapshot.JobResult{}, &DialError{Err: err}
	}
	return snapshot.ServeJob(ctx, conn, s.repo, job, access)
}

// auditSystem records something the service did on its own to an
// environment.
func (s *Service) auditSystem(ctx context.Context, action, envID string, success bool, detail map[string]any) {
	if s.audit == nil {
		return
	}
	s.audit.Record(ctx, audit.Event{Actor: audit.System, Action: action, Target: audit.Environment(envID), Success: success, Detail: detail})
}

// cutShort reports whether ctx was cancelled (the server shutting down),
// not timed out.
func cutShort(ctx context.Context) bool { return errors.Is(ctx.Err(), context.Canceled) }
