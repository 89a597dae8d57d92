package lifecycle

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/catalog"
	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/testclock"
)

type harness struct {
	t     *testing.T
	ctx   context.Context
	db    *store.DB
	rt    *memRuntime
	clock *testclock.Clock
	m     *Manager
	user  store.User
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// seededStore is a new SQLite store with the catalog and one user, Ada.
func seededStore(t *testing.T, ctx context.Context) (*store.DB, store.User) {
	t.Helper()
	db, err := store.Open(ctx, "", filepath.Join(t.TempDir(), "dev8.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := catalog.Seed(ctx, db); err != nil {
		t.Fatal(err)
	}
	user, err := db.CreateUser(ctx, store.User{Email: "ada@example.com", Name: "Ada"})
	if err != nil {
		t.Fatal(err)
	}
	return db, user
}

// newHarness runs a Manager over a real SQLite store and the in-memory
// runtime. setup runs before the manager starts, to arrange a "crash" state.
func newHarness(t *testing.T, setup func(h *harness)) *harness {
	t.Helper()
	return newHarnessWith(t, nil, setup)
}

// newHarnessWith is newHarness with the manager's Config adjusted first.
func newHarnessWith(t *testing.T, configure func(*Config), setup func(h *harness)) *harness {
	t.Helper()
	ctx := testContext(t)
	db, user := seededStore(t, ctx)
	h := &harness{t: t, ctx: ctx, db: db, rt: newMemRuntime(), clock: testclock.At(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)), user: user}
	cfg := Config{
		Store:          db,
		Runtime:        h.rt,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		RetryBase:      time.Millisecond,
		MaxAttempts:    3,
		ReaperInterval: time.Hour, // tests call Reap themselves
		ResyncInterval: time.Hour,
		Now:            h.clock.Now,
	}
	if configure != nil {
		configure(&cfg)
	}
	h.m = New(cfg)
	if setup != nil {
		setup(h)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h.m.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("manager run: %v", err)
		}
	})
	return h
}

func (h *harness) create(name string, mutate func(*CreateParams)) store.Environment {
	h.t.Helper()
	p := CreateParams{UserID: h.user.ID, Name: name, Template: "nodejs"}
	if mutate != nil {
		mutate(&p)
	}
	env, err := h.m.Create(h.ctx, p)
	if err != nil {
		h.t.Fatalf("create %s: %v", name, err)
	}
	return env
}

func (h *harness) waitStatus(id string, want store.Status) store.Environment {
	h.t.Helper()
	env, err := h.m.WaitFor(h.ctx, id, func(e store.Environment) bool { return e.Status == want })
	if err != nil {
		h.t.Fatalf("waiting for %s to be %s: %v (last: %s %q)", id, want, err, env.Status, env.StatusReason)
	}
	return env
}

func (h *harness) waitDeleted(id string) {
	h.t.Helper()
	_, err := h.m.WaitFor(h.ctx, id, func(e store.Environment) bool { return e.DeletedAt != nil })
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.t.Fatalf("waiting for %s to be deleted: %v", id, err)
	}
	if _, err := h.db.GetEnvironment(h.ctx, id); !errors.Is(err, store.ErrNotFound) {
		h.t.Fatalf("deleted environment still readable: %v", err)
	}
}

func TestLifecycleHappyPath(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	env := h.create("web", nil)
	if env.Status != store.StatusCreating || env.Runtime != "mem" || env.TemplateName != "nodejs" {
		t.Fatalf("created = %+v", env)
	}
	env = h.waitStatus(env.ID, store.StatusRunning)
	if env.VSCodeURL == "" || env.RunningSince == nil {
		t.Fatalf("running env lacks IDE URL or running_since: %+v", env)
	}

	// One hour of running at the template's price.
	h.clock.Advance(time.Hour)
	if _, err := h.m.Stop(h.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	env = h.waitStatus(env.ID, store.StatusStopped)
	if h.rt.state(env.ID) != runtime.StateStopped {
		t.Fatalf("runtime state after stop = %s", h.rt.state(env.ID))
	}
	if env.StoppedAt == nil || env.RunningSince != nil {
		t.Fatalf("stopped env: stopped_at %v running_since %v", env.StoppedAt, env.RunningSince)
	}
	if math.Abs(env.TotalCost-env.EstimatedCostPerHour) > 1e-9 {
		t.Fatalf("total cost after 1h = %v, want %v", env.TotalCost, env.EstimatedCostPerHour)
	}

	// Stopped time is free; a second hour running doubles the cost.
	h.clock.Advance(5 * time.Hour)
	if _, err := h.m.Start(h.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	env = h.waitStatus(env.ID, store.StatusRunning)
	h.clock.Advance(time.Hour)
	if got := TotalCost(env, h.clock.Now()); math.Abs(got-2*env.EstimatedCostPerHour) > 1e-9 {
		t.Fatalf("total cost after 2 running hours = %v, want %v", got, 2*env.EstimatedCostPerHour)
	}

	if _, err := h.m.Delete(h.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	h.waitDeleted(env.ID)
	if h.rt.has(env.ID) {
		t.Fatal("runtime instance outlived its deleted environment")
	}
	acts, err := h.db.ListActivity(h.ctx, env.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(acts) < 6 {
		t.Fatalf("activity history has %d entries, want the whole story: %+v", len(acts), acts)
	}
}

func TestActionsFromEachStatus(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	release := h.rt.holdEvery("start")
	defer release()
	env := h.create("slow", nil)

	// While CREATING: start is a no-op, stop is refused.
	if got, err := h.m.Start(h.ctx, env.ID); err != nil || got.Status != store.StatusCreating {
		t.Fatalf("start while creating = %v, %v; want unchanged", got.Status, err)
	}
	var stateErr *StateError
	if _, err := h.m.Stop(h.ctx, env.ID); !errors.As(err, &stateErr) {
		t.Fatalf("stop while creating: err = %v, want StateError", err)
	}
	release()
	h.waitStatus(env.ID, store.StatusRunning)

	// RUNNING: start is a no-op.
	if got, err := h.m.Start(h.ctx, env.ID); err != nil || got.Status != store.StatusRunning {
		t.Fatalf("start while running = %v, %v", got.Status, err)
	}
	if _, err := h.m.Stop(h.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	h.waitStatus(env.ID, store.StatusStopped)
	// STOPPED: stop is a no-op.
	if got, err := h.m.Stop(h.ctx, env.ID); err != nil || got.Status != store.StatusStopped {
		t.Fatalf("stop while stopped = %v, %v", got.Status, err)
	}

	// DELETING: start and stop are refused, delete is a no-op.
	releaseDelete := h.rt.hold("delete", env.ID)
	defer releaseDelete()
	if _, err := h.m.Delete(h.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.Start(h.ctx, env.ID); !errors.As(err, &stateErr) {
		t.Fatalf("start while deleting: err = %v, want StateError", err)
	}
	if _, err := h.m.Stop(h.ctx, env.ID); !errors.As(err, &stateErr) {
		t.Fatalf("stop while deleting: err = %v, want StateError", err)
	}
	if got, err := h.m.Delete(h.ctx, env.ID); err != nil || got.Status != store.StatusDeleting {
		t.Fatalf("delete while deleting = %v, %v", got.Status, err)
	}
	releaseDelete()
	h.waitDeleted(env.ID)
}

func TestDeleteWhileCreating(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	release := h.rt.holdEvery("start")
	env := h.create("doomed", nil)
	if _, err := h.m.Delete(h.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	release()
	h.waitDeleted(env.ID)
	if h.rt.has(env.ID) {
		t.Fatal("instance created for an environment deleted mid-create was left behind")
	}
}

// TestDeleteWhileCreateFails: a delete asked for while a create is failing
// for good wins; the create's failure does not turn it into ERROR.
func TestDeleteWhileCreateFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	id := "env_deletefails0000000a"
	entered, release := h.rt.holdEntered("create", id)
	defer release()
	h.rt.failNext("create", id, runtime.Permanent(errors.New("no such image")))
	created, err := h.db.CreateEnvironment(h.ctx, mustResolve(t, h, "doomed", id))
	if err != nil {
		t.Fatal(err)
	}
	h.m.queue.add(created.ID)
	select {
	case <-entered:
	case <-h.ctx.Done():
		t.Fatal("the create never started")
	}
	if _, err := h.m.Delete(h.ctx, id); err != nil {
		t.Fatal(err)
	}
	release()
	h.waitDeleted(id)
}

func TestTransientErrorsAreRetried(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	// A fixed id lets the failures be arranged before the reconciler first
	// sees the environment; MaxAttempts is 3, so two failures still succeed.
	id := "env_flakytest0000000000"
	h.rt.failNext("start", id, errors.New("engine busy"), errors.New("engine busy"))
	created, err := h.db.CreateEnvironment(h.ctx, mustResolve(t, h, "flaky", id))
	if err != nil {
		t.Fatal(err)
	}
	h.m.queue.add(created.ID)
	got := h.waitStatus(created.ID, store.StatusRunning)
	if got.StatusReason != "" {
		t.Fatalf("status reason after recovery = %q", got.StatusReason)
	}
}

// mustResolve builds a CREATING environment with a fixed id, so a test can
// arrange runtime failures for it before the reconciler first sees it.
func mustResolve(t *testing.T, h *harness, name, id string) store.Environment {
	t.Helper()
	env, err := h.m.resolve(h.ctx, CreateParams{UserID: h.user.ID, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	env.ID = id
	return env
}

func TestFailuresEndInError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		errs []error
		want string
	}{
		{"permanent error fails at once", []error{runtime.Permanent(errors.New("image dev8/nodejs not found"))}, "image dev8/nodejs not found"},
		{"transient errors beyond the attempt limit", []error{errors.New("busy 1"), errors.New("busy 2"), errors.New("busy 3"), errors.New("busy 4")}, "busy 3"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			id := "env_failtest00000000000" + string(rune('a'+i))
			h.rt.failNext("create", id, tt.errs...)
			env, err := h.db.CreateEnvironment(h.ctx, mustResolve(t, h, "broken", id))
			if err != nil {
				t.Fatal(err)
			}
			h.m.queue.add(env.ID)
			env = h.waitStatus(env.ID, store.StatusError)
			if env.StatusReason == "" || !strings.Contains(env.StatusReason, tt.want) {
				t.Fatalf("reason = %q, want it to mention %q", env.StatusReason, tt.want)
			}
			// ERROR → start tries again and succeeds.
			if _, err := h.m.Start(h.ctx, env.ID); err != nil {
				t.Fatal(err)
			}
			h.waitStatus(env.ID, store.StatusRunning)
		})
	}
}

func TestCrashedComputeGoesToError(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	env := h.create("crashy", nil)
	h.waitStatus(env.ID, store.StatusRunning)
	h.rt.crash(env.ID, "workspace process exited: exit status 2")
	env = h.waitStatus(env.ID, store.StatusError)
	if env.StatusReason != "workspace process exited: exit status 2" {
		t.Fatalf("reason = %q", env.StatusReason)
	}
	if env.RunningSince != nil {
		t.Fatal("a crashed environment is still being charged")
	}
}

func TestConvergeAfterCrash(t *testing.T) {
	t.Parallel()
	var stuck [4]store.Environment
	h := newHarness(t, func(h *harness) {
		// The server died with environments mid-operation and one instance
		// whose environment never made it into the store.
		for i, st := range []store.Status{store.StatusCreating, store.StatusStarting, store.StatusStopping, store.StatusDeleting} {
			env := mustResolve(t, h, "stuck-"+string(rune('a'+i)), "")
			env.ID = ""
			env.Status = st
			created, err := h.db.CreateEnvironment(h.ctx, env)
			if err != nil {
				t.Fatal(err)
			}
			stuck[i] = created
			if st != store.StatusCreating {
				if _, err := h.rt.Create(h.ctx, h.m.specFor(created)); err != nil {
					t.Fatal(err)
				}
				if _, err := h.rt.Start(h.ctx, created.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := h.rt.Create(h.ctx, runtime.Spec{EnvironmentID: "env_orphan"}); err != nil {
			t.Fatal(err)
		}
	})
	h.waitStatus(stuck[0].ID, store.StatusRunning)
	h.waitStatus(stuck[1].ID, store.StatusRunning)
	h.waitStatus(stuck[2].ID, store.StatusStopped)
	h.waitDeleted(stuck[3].ID)
	if h.rt.has("env_orphan") {
		t.Fatal("orphaned instance survived convergence")
	}
	if h.rt.state(stuck[2].ID) != runtime.StateStopped || h.rt.has(stuck[3].ID) {
		t.Fatal("runtime does not match the converged statuses")
	}
}

// TestResyncRemovesLateOrphans: an instance that appears after start with
// no environment (a dead server's create that the engine finished late) is
// removed by the periodic resync; live environments' instances stay.
func TestResyncRemovesLateOrphans(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	live := h.create("live", nil)
	h.waitStatus(live.ID, store.StatusRunning)
	if _, err := h.rt.Create(h.ctx, runtime.Spec{EnvironmentID: "env_late_orphan"}); err != nil {
		t.Fatal(err)
	}
	h.m.resync(h.ctx)
	if h.rt.has("env_late_orphan") {
		t.Fatal("an orphan made after convergence survived the resync")
	}
	if !h.rt.has(live.ID) {
		t.Fatal("the resync removed a live environment's instance")
	}
}

func TestReaper(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	idle := h.create("idle", func(p *CreateParams) { five := 5; p.AutoStopMinutes = &five })
	busy := h.create("busy", func(p *CreateParams) { five := 5; p.AutoStopMinutes = &five })
	never := h.create("never", func(p *CreateParams) { zero := 0; p.AutoStopMinutes = &zero })
	for _, e := range []store.Environment{idle, busy, never} {
		h.waitStatus(e.ID, store.StatusRunning)
	}

	h.clock.Advance(4 * time.Minute)
	if err := h.m.Touch(h.ctx, busy.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := h.m.Reap(h.ctx); err != nil || n != 0 {
		t.Fatalf("reap at 4 min = %d, %v; want nothing stopped", n, err)
	}
	h.clock.Advance(2 * time.Minute) // idle: 6 min without activity; busy: 2
	if n, err := h.m.Reap(h.ctx); err != nil || n != 1 {
		t.Fatalf("reap at 6 min = %d, %v; want 1", n, err)
	}
	stopped := h.waitStatus(idle.ID, store.StatusStopped)
	if !strings.Contains(stopped.StatusReason, "5 minutes without activity") {
		t.Fatalf("idle stop reason = %q", stopped.StatusReason)
	}
	h.clock.Advance(24 * time.Hour)
	if n, err := h.m.Reap(h.ctx); err != nil || n != 1 {
		t.Fatalf("reap a day later = %d, %v; want only busy stopped", n, err)
	}
	h.waitStatus(busy.ID, store.StatusStopped)
	if env, _ := h.db.GetEnvironment(h.ctx, never.ID); env.Status != store.StatusRunning {
		t.Fatalf("auto_stop_minutes 0 environment was stopped: %s", env.Status)
	}

	// Starting again counts as activity: the reaper must not stop it at once.
	if _, err := h.m.Start(h.ctx, idle.ID); err != nil {
		t.Fatal(err)
	}
	h.waitStatus(idle.ID, store.StatusRunning)
	if n, err := h.m.Reap(h.ctx); err != nil || n != 0 {
		t.Fatalf("reap right after start = %d, %v", n, err)
	}
}

func TestCreateValidation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	intp := func(v int) *int { return &v }
	tests := []struct {
		name  string
		p     CreateParams
		field string
	}{
		{"empty name", CreateParams{}, "name"},
		{"upper-case name", CreateParams{Name: "Web"}, "name"},
		{"name with dot", CreateParams{Name: "a.b"}, "name"},
		{"name too long", CreateParams{Name: strings.Repeat("a", 64)}, "name"},
		{"trailing dash", CreateParams{Name: "web-"}, "name"},
		{"unknown template", CreateParams{Name: "x", Template: "cobol"}, "template_name"},
		{"unknown instance type", CreateParams{Name: "x", InstanceType: "huge"}, "instance_type"},
		{"too many cpus", CreateParams{Name: "x", CPUCores: 17}, "cpu_cores"},
		{"too much memory", CreateParams{Name: "x", MemoryGB: 65}, "memory_gb"},
		{"too much storage", CreateParams{Name: "x", StorageGB: 501}, "storage_gb"},
		{"negative auto stop", CreateParams{Name: "x", AutoStopMinutes: intp(-1)}, "auto_stop_minutes"},
		{"auto stop over a week", CreateParams{Name: "x", AutoStopMinutes: intp(MaxAutoStopMinutes + 1)}, "auto_stop_minutes"},
		{"bad env name", CreateParams{Name: "x", EnvironmentVariables: map[string]string{"1X": "y"}}, "environment_variables"},
		{"reserved env name", CreateParams{Name: "x", EnvironmentVariables: map[string]string{"DEV8_TOKEN": "y"}}, "environment_variables"},
		{"port out of range", CreateParams{Name: "x", Ports: []store.Port{{Port: 70000}}}, "ports"},
		{"duplicate port", CreateParams{Name: "x", Ports: []store.Port{{Port: 80}, {Port: 80}}}, "ports"},
		{"bad protocol", CreateParams{Name: "x", Ports: []store.Port{{Port: 80, Protocol: "gopher"}}}, "ports"},
		{"bad image", CreateParams{Name: "x", BaseImage: "UPPER CASE"}, "base_image"},
		{"bad region", CreateParams{Name: "x", CloudRegion: "East US"}, "cloud_region"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.p.UserID = h.user.ID
			// The subtest's own context: it may wait its turn to run
			// past the parent's.
			_, err := h.m.Create(testContext(t), tt.p)
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Fatalf("err = %v, want a ValidationError on %s", err, tt.field)
			}
			// An unknown template is answered with the ones there are.
			if tt.field == "template_name" && !strings.Contains(ve.Message, "base, fullstack, nodejs, python") {
				t.Errorf("unknown template: %q does not name the catalog's templates", ve.Message)
			}
		})
	}
	envs, total, err := h.db.ListEnvironments(h.ctx, store.EnvironmentFilter{})
	if err != nil || total != 0 {
		t.Fatalf("rejected requests left %d environments behind (%v): %+v", total, err, envs)
	}
}

func TestCreateResolution(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	tests := []struct {
		name               string
		p                  CreateParams
		template, instance string
		cpu                float64
		mem, storage       int
		image              string
		wantEnv            map[string]string
	}{
		{"defaults", CreateParams{}, "base", "lightweight", 1, 2, 20, "dev8/base", map[string]string{}},
		{"template sizes", CreateParams{Template: "fullstack"}, "fullstack", "compute", 4, 8, 40, "dev8/fullstack", map[string]string{"NODE_ENV": "development"}},
		{"instance type wins over template", CreateParams{Template: "nodejs", InstanceType: "memory"}, "nodejs", "memory", 2, 8, 40, "dev8/nodejs", map[string]string{"NODE_ENV": "development"}},
		{"explicit sizes win", CreateParams{InstanceType: "compute", CPUCores: 3}, "base", "custom", 3, 8, 40, "dev8/base", map[string]string{}},
		{"seed's base_image names a template", CreateParams{BaseImage: "python"}, "python", "balanced", 2, 4, 20, "dev8/python", map[string]string{"PYTHONUNBUFFERED": "1"}},
		{"image override", CreateParams{Template: "nodejs", BaseImage: "ghcr.io/acme/node:20"}, "nodejs", "balanced", 2, 4, 20, "ghcr.io/acme/node:20", map[string]string{"NODE_ENV": "development"}},
		{"request env merges over template", CreateParams{Template: "nodejs", EnvironmentVariables: map[string]string{"NODE_ENV": "test", "A": "b"}}, "nodejs", "balanced", 2, 4, 20, "dev8/nodejs", map[string]string{"NODE_ENV": "test", "A": "b"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.p.UserID = h.user.ID
			tt.p.Name = "r" + string(rune('a'+i))
			env, err := h.m.Create(testContext(t), tt.p) // as above
			if err != nil {
				t.Fatal(err)
			}
			if env.TemplateName != tt.template || env.InstanceType != tt.instance || env.CPUCores != tt.cpu || env.MemoryGB != tt.mem || env.StorageGB != tt.storage || env.BaseImage != tt.image {
				t.Fatalf("got template %s type %s %v/%d/%d image %s", env.TemplateName, env.InstanceType, env.CPUCores, env.MemoryGB, env.StorageGB, env.BaseImage)
			}
			if len(env.EnvironmentVariables) != len(tt.wantEnv) {
				t.Fatalf("env = %v, want %v", env.EnvironmentVariables, tt.wantEnv)
			}
			for k, v := range tt.wantEnv {
				if env.EnvironmentVariables[k] != v {
					t.Fatalf("env = %v, want %v", env.EnvironmentVariables, tt.wantEnv)
				}
			}
			if env.AutoStopMinutes != DefaultAutoStopMinutes {
				t.Fatalf("auto stop = %d", env.AutoStopMinutes)
			}
			if want := DefaultPricing.HourlyCost(tt.cpu, tt.mem, tt.storage); env.EstimatedCostPerHour != want {
				t.Fatalf("cost/h = %v, want %v", env.EstimatedCostPerHour, want)
			}
		})
	}
}

func TestDuplicateNameConflicts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.create("twin", nil)
	_, err := h.m.Create(h.ctx, CreateParams{UserID: h.user.ID, Name: "twin"})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate name: err = %v, want ErrConflict", err)
	}
}

func TestStateMachine(t *testing.T) {
	t.Parallel()
	for from, tos := range transitions {
		for _, to := range tos {
			if from == to {
				t.Errorf("self transition %s", from)
			}
		}
	}
	if CanTransition(store.StatusStopped, store.StatusRunning) {
		t.Error("STOPPED → RUNNING must go through STARTING")
	}
	if CanTransition(store.StatusDeleting, store.StatusRunning) {
		t.Error("DELETING → RUNNING allowed")
	}
	for _, s := range store.Statuses {
		if _, ok := transitions[s]; !ok {
			t.Errorf("status %s has no transitions", s)
		}
	}
}
