package backup

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/audit"
	"dev8.dev/dev8/internal/snapshot"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/tunnel"
)

// fakeStore keeps backup records and audit events in memory.
type fakeStore struct {
	mu      sync.Mutex
	backups []store.Backup
	events  []store.AuditEvent
}

func (f *fakeStore) CreateBackup(_ context.Context, b store.Backup) (store.Backup, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b.ID = fmt.Sprintf("b%d", len(f.backups)+1)
	if b.Status == "" {
		b.Status = store.BackupPending
	}
	b.CreatedAt = time.Now()
	f.backups = append(f.backups, b)
	return b, nil
}

func (f *fakeStore) update(id string, fn func(*store.Backup)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.backups {
		if f.backups[i].ID == id {
			fn(&f.backups[i])
			return nil
		}
	}
	return store.ErrNotFound
}

func (f *fakeStore) StartBackup(_ context.Context, id string) error {
	return f.update(id, func(b *store.Backup) { b.Status = store.BackupRunning })
}

func (f *fakeStore) FinishBackup(ctx context.Context, id string, r store.BackupResult) error {
	if ctx.Err() != nil {
		return ctx.Err() // a record written under an ended context would be lost
	}
	return f.update(id, func(b *store.Backup) {
		b.Status, b.Error, b.SnapshotID = store.BackupCompleted, r.Error, r.SnapshotID
		if r.Error != "" {
			b.Status = store.BackupFailed
		}
	})
}

func (f *fakeStore) GetBackup(_ context.Context, id string) (store.Backup, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.backups {
		if b.ID == id {
			return b, nil
		}
	}
	return store.Backup{}, store.ErrNotFound
}

func (f *fakeStore) ListBackups(_ context.Context, envID string) ([]store.Backup, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.Backup
	for _, b := range slices.Backward(f.backups) {
		if b.EnvironmentID == envID {
			out = append(out, b)
		}
	}
	return out, nil
}

func (f *fakeStore) latest(envID string, ok func(store.Backup) bool) (store.Backup, error) {
	list, _ := f.ListBackups(context.Background(), envID)
	for _, b := range list {
		if ok(b) {
			return b, nil
		}
	}
	return store.Backup{}, store.ErrNotFound
}

func (f *fakeStore) LatestCompletedBackup(ctx context.Context, envID string) (store.Backup, error) {
	// As a database does, a query under an ended context fails.
	if err := ctx.Err(); err != nil {
		return store.Backup{}, err
	}
	return f.latest(envID, func(b store.Backup) bool { return b.Status == store.BackupCompleted })
}

func (f *fakeStore) LatestBackup(_ context.Context, envID string) (store.Backup, error) {
	return f.latest(envID, func(store.Backup) bool { return true })
}

func (f *fakeStore) DeleteBackupsBySnapshot(context.Context, []string) (int64, error) { return 0, nil }

func (f *fakeStore) ListEnvironments(context.Context, store.EnvironmentFilter) ([]store.Environment, int, error) {
	return nil, 0, nil
}

func (f *fakeStore) InsertAuditEvent(_ context.Context, e store.AuditEvent) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
	return nil
}

func (f *fakeStore) event(action string) (store.AuditEvent, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.events {
		if e.Action == action {
			return e, true
		}
	}
	return store.AuditEvent{}, false
}

// hangingTunnels connect every job to a supervisor that reads the job and
// never answers; dialed hears of each dial.
type hangingTunnels struct{ dialed chan string }

func (h *hangingTunnels) Dial(_ context.Context, envID string, _ tunnel.Header) (net.Conn, error) {
	server, supervisor := net.Pipe()
	go func() { _, _ = io.Copy(io.Discard, supervisor); supervisor.Close() }()
	h.dialed <- envID
	return server, nil
}

func (h *hangingTunnels) Reachable(context.Context, string) bool { return true }

// envs stands in for the lifecycle: forks wait for ever; notes are kept.
type envs struct {
	waiting chan string
	mu      sync.Mutex
	notes   []string
}

func (e *envs) WaitFor(ctx context.Context, id string, _ func(store.Environment) bool) (store.Environment, error) {
	e.waiting <- id
	<-ctx.Done()
	return store.Environment{}, ctx.Err()
}

func (e *envs) NoteRunning(_ context.Context, id, kind, reason string, settled func()) (store.Environment, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.notes = append(e.notes, id+" "+kind+": "+reason)
	if settled != nil {
		settled()
	}
	return store.Environment{}, nil
}

func receive(t *testing.T, ch chan string, what string) string {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not happen", what)
		return ""
	}
}

// TestShutdownCancelsAndWaitsForJobs: the jobs the service runs in the
// background — a manual snapshot, a fork, a lost volume's restore — are
// cancelled when Run's context ends, and Run returns only once each has
// recorded how it ended: the snapshot FAILED (not left RUNNING), the fork
// and the restore in the audit log and on the environment. A job asked for
// after that is refused and recorded at once.
func TestShutdownCancelsAndWaitsForJobs(t *testing.T) {
	repo, err := snapshot.OpenDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := &fakeStore{}
	tun := &hangingTunnels{dialed: make(chan string, 4)}
	lc := &envs{waiting: make(chan string, 4)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := New(Config{Store: st, Repo: repo, Tunnels: tun, Audit: audit.New(st, log, nil), Logger: log})
	svc.SetEnvironments(lc)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- svc.Run(ctx) }()

	snapEnv := store.Environment{ID: "e1", UserID: "u1", Name: "one", Status: store.StatusRunning}
	b, err := svc.CreateManual(ctx, snapEnv)
	if err != nil {
		t.Fatal(err)
	}
	svc.Start(snapEnv, b)
	if got := receive(t, tun.dialed, "the snapshot's dial"); got != "e1" {
		t.Fatalf("dialed %s", got)
	}

	source, _ := st.CreateBackup(ctx, store.Backup{EnvironmentID: "e0", UserID: "u1", Status: store.BackupCompleted, SnapshotID: "s0"})
	svc.Fork(store.Environment{ID: "e2", UserID: "u1", Name: "fork"}, source)
	receive(t, lc.waiting, "the fork's wait")

	lost, _ := st.CreateBackup(ctx, store.Backup{EnvironmentID: "e3", UserID: "u1", Status: store.BackupCompleted, SnapshotID: "s3"})
	svc.AfterStart(ctx, store.Environment{ID: "e3", UserID: "u1", Name: "lost", Status: store.StatusRunning}, true)
	receive(t, tun.dialed, "the restore's dial")
	if id, ok := svc.Restoring("e3"); !ok || id != lost.ID {
		t.Fatalf("Restoring(e3) = %q, %v during the restore", id, ok)
	}

	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Run has returned: everything below was recorded before it did.
	if got, _ := st.GetBackup(t.Context(), b.ID); got.Status != store.BackupFailed || !strings.Contains(got.Error, "the server shut down during the snapshot") {
		t.Errorf("snapshot after shutdown: %s %q, want FAILED because the server shut down", got.Status, got.Error)
	}
	if e, ok := st.event("snapshot.fork"); !ok || e.Success || e.ObjectID != "e2" || !strings.Contains(fmt.Sprint(e.Detail["error"]), "shut down") {
		t.Errorf("fork audit event = %+v, %v", e, ok)
	}
	if e, ok := st.event("environment.restore_lost_volume"); !ok || e.Success || e.ObjectID != "e3" || e.ActorKind != store.ActorSystem {
		t.Errorf("lost-volume audit event = %+v, %v", e, ok)
	}
	lc.mu.Lock()
	notes := strings.Join(lc.notes, "\n")
	lc.mu.Unlock()
	if !strings.Contains(notes, "e3 restored_lost_volume") || !strings.Contains(notes, "cut short") {
		t.Errorf("notes on the environment:\n%s", notes)
	}
	if _, ok := svc.Restoring("e3"); ok {
		t.Error("the restore is still marked in progress")
	}

	late, _ := svc.CreateManual(t.Context(), store.Environment{ID: "e4", UserID: "u1"})
	svc.Start(store.Environment{ID: "e4", UserID: "u1"}, late)
	if got, _ := st.GetBackup(t.Context(), late.ID); got.Status != store.BackupFailed || got.Error != errShuttingDown.Error() {
		t.Errorf("snapshot asked for after shutdown: %s %q", got.Status, got.Error)
	}
	select {
	case id := <-tun.dialed:
		t.Errorf("a job dialed %s after shutdown", id)
	default:
	}
}

// TestAfterStartOfANewEnvironmentAtShutdown: a new environment whose first
// start completes as the server shuts down (the snapshot lookup under an
// ended context) is not reported as one whose snapshots could not be looked
// up: there are none, and nothing was lost.
func TestAfterStartOfANewEnvironmentAtShutdown(t *testing.T) {
	repo, err := snapshot.OpenDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := &fakeStore{}
	lc := &envs{waiting: make(chan string, 1)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := New(Config{Store: st, Repo: repo, Tunnels: &hangingTunnels{dialed: make(chan string, 1)}, Audit: audit.New(st, log, nil), Logger: log})
	svc.SetEnvironments(lc)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	svc.AfterStart(ctx, store.Environment{ID: "e1", UserID: "u1", Name: "new", Status: store.StatusRunning}, true)
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if len(lc.notes) != 0 {
		t.Errorf("notes on a new environment: %q", lc.notes)
	}
	if e, ok := st.event("environment.restore_lost_volume"); ok {
		t.Errorf("audit event for a new environment: %+v", e)
	}
}
