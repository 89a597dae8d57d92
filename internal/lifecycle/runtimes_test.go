package lifecycle

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/store"
)

// namedRuntime is the in-memory runtime under another name, answering
// ImageStatus from a table (images not in it are ready), as the docker
// runtime does for images it has or lacks.
type namedRuntime struct {
	*memRuntime
	name   string
	images map[string]runtime.ImageStatus
}

func (r *namedRuntime) Name() string { return r.name }

func (r *namedRuntime) ImageStatus(_ context.Context, image string) runtime.ImageStatus {
	if s, ok := r.images[image]; ok {
		return s
	}
	return runtime.ImageStatus{State: runtime.Ready}
}

// hostRuntime is the in-memory runtime named "local", without ImageStatus.
type hostRuntime struct{ *memRuntime }

func (r hostRuntime) Name() string { return "local" }

// sharingRuntime is hostRuntime saying its workspaces share the host.
type sharingRuntime struct{ hostRuntime }

func (sharingRuntime) SharesHost() bool { return true }

// runManager runs a manager over db until the test ends or stop is called.
func runManager(t *testing.T, ctx context.Context, cfg Config) (m *Manager, stop func()) {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.RetryBase = time.Millisecond
	cfg.MaxAttempts = 3
	cfg.ReaperInterval, cfg.ResyncInterval = time.Hour, time.Hour
	m = New(cfg)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager run: %v", err)
		}
	}
	t.Cleanup(stop)
	return m, stop
}

const unbuiltReason = "image dev8/nodejs:latest has not been built on this Docker engine: run make images"

func twoRuntimes() (*namedRuntime, hostRuntime) {
	docker := &namedRuntime{memRuntime: newMemRuntime(), name: "docker", images: map[string]runtime.ImageStatus{
		"dev8/nodejs": {State: runtime.Unavailable, Reason: unbuiltReason},
	}}
	return docker, hostRuntime{newMemRuntime()}
}

// TestCreateGoesWhereTheTemplateRuns: a create that names no runtime goes to
// the first offered one where its template's image can run; one that names
// a runtime where it cannot is refused before anything is recorded, with the
// runtime's reason; one naming a runtime that is not offered is refused.
func TestCreateGoesWhereTheTemplateRuns(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	db, user := seededStore(t, ctx)
	docker, local := twoRuntimes()
	m, _ := runManager(t, ctx, Config{Store: db, Runtimes: []runtime.Runtime{docker, local}})

	tpl, err := db.GetTemplate(ctx, "nodejs")
	if err != nil {
		t.Fatal(err)
	}
	statuses, err := m.TemplateStatus(ctx, tpl, user.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(statuses) != 2 || statuses[0].Runtime != "docker" || statuses[0].State != runtime.Unavailable || statuses[0].Reason != unbuiltReason ||
		statuses[1].Runtime != "local" || statuses[1].State != runtime.Ready || !statuses[1].HostTools {
		t.Fatalf("TemplateStatus(nodejs) = %+v", statuses)
	}
	if got := m.ChooseRuntime(statuses); got != "local" {
		t.Fatalf("ChooseRuntime(nodejs) = %q, want local", got)
	}

	web, err := m.Create(ctx, CreateParams{UserID: user.ID, Name: "web", Template: "nodejs"})
	if err != nil || web.Runtime != "local" {
		t.Fatalf("create from nodejs: %+v, %v; want it on local", web, err)
	}
	api, err := m.Create(ctx, CreateParams{UserID: user.ID, Name: "api", Template: "python"})
	if err != nil || api.Runtime != "docker" {
		t.Fatalf("create from python: %+v, %v; want it on docker", api, err)
	}
	for id, rt := range map[string]*memRuntime{web.ID: local.memRuntime, api.ID: docker.memRuntime} {
		if _, err := m.WaitFor(ctx, id, func(e store.Environment) bool { return e.Status == store.StatusRunning }); err != nil {
			t.Fatalf("wait for %s: %v", id, err)
		}
		if _, err := rt.Inspect(ctx, id); err != nil {
			t.Errorf("%s is not on its own runtime: %v", id, err)
		}
	}
	if _, err := docker.Inspect(ctx, web.ID); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("web also on docker: %v", err)
	}

	_, err = m.Create(ctx, CreateParams{UserID: user.ID, Name: "nope", Template: "nodejs", Runtime: "docker"})
	var tplErr *TemplateUnavailableError
	if !errors.As(err, &tplErr) || tplErr.Runtime != "docker" || !strings.Contains(err.Error(), "template nodejs cannot run on the docker runtime yet") || !strings.Contains(err.Error(), "make images") {
		t.Fatalf("create nodejs on docker: %v", err)
	}
	_, err = m.Create(ctx, CreateParams{UserID: user.ID, Name: "nope", Template: "base", Runtime: "azure"})
	var rtErr *RuntimeUnavailableError
	if !errors.As(err, &rtErr) || !rtErr.Create || !strings.Contains(err.Error(), "configured: docker, local") {
		t.Fatalf("create on azure: %v", err)
	}
	if envs, _, err := db.ListEnvironments(ctx, store.EnvironmentFilter{}); err != nil || len(envs) != 2 {
		t.Fatalf("refused creates left records: %d environments, %v", len(envs), err)
	}

	// A default runtime is taken as given, and refused the same way.
	m2, _ := runManager(t, ctx, Config{Store: db, Runtimes: []runtime.Runtime{docker, local}, DefaultRuntime: "docker"})
	if _, err := m2.Create(ctx, CreateParams{UserID: user.ID, Name: "nope", Template: "nodejs"}); !errors.As(err, &tplErr) {
		t.Fatalf("create nodejs with docker the default: %v", err)
	}
}

// TestEnvironmentOnARuntimeNotConfigured: a server restarted without the
// runtime an environment runs on leaves it as it is (no ERROR), says why in
// its status reason and refuses actions on it; restarted with the runtime
// again, the environment goes on where it was.
func TestEnvironmentOnARuntimeNotConfigured(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	db, user := seededStore(t, ctx)
	docker, local := twoRuntimes()

	m, stop := runManager(t, ctx, Config{Store: db, Runtimes: []runtime.Runtime{docker, local}})
	env, err := m.Create(ctx, CreateParams{UserID: user.ID, Name: "api", Template: "python", Runtime: "docker"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.WaitFor(ctx, env.ID, func(e store.Environment) bool { return e.Status == store.StatusRunning }); err != nil {
		t.Fatal(err)
	}
	stop()

	// Restarted with local only.
	m, stop = runManager(t, ctx, Config{Store: db, Runtimes: []runtime.Runtime{local}})
	env, err = m.WaitFor(ctx, env.ID, func(e store.Environment) bool { return e.StatusReason != "" })
	if err != nil {
		t.Fatal(err)
	}
	if env.Status != store.StatusRunning || !strings.Contains(env.StatusReason, "its runtime (docker) is not configured on this server") {
		t.Fatalf("without docker: %s %q", env.Status, env.StatusReason)
	}
	for name, action := range map[string]func(context.Context, string) (store.Environment, error){"stop": m.Stop, "start": m.Start, "delete": m.Delete} {
		var rtErr *RuntimeUnavailableError
		if _, err := action(ctx, env.ID); !errors.As(err, &rtErr) || rtErr.Create || rtErr.Runtime != "docker" {
			t.Errorf("%s without docker: %v", name, err)
		}
	}
	if inst, err := docker.Inspect(ctx, env.ID); err != nil || inst.State != runtime.StateRunning {
		t.Fatalf("the docker instance was touched: %+v, %v", inst, err)
	}
	stop()

	// Restarted with docker again: the reason goes, and it is driven as before.
	m, _ = runManager(t, ctx, Config{Store: db, Runtimes: []runtime.Runtime{docker, local}})
	env, err = m.WaitFor(ctx, env.ID, func(e store.Environment) bool { return e.StatusReason == "" })
	if err != nil || env.Status != store.StatusRunning {
		t.Fatalf("with docker again: %+v, %v", env, err)
	}
	if _, err := m.Stop(ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WaitFor(ctx, env.ID, func(e store.Environment) bool { return e.Status == store.StatusStopped }); err != nil {
		t.Fatal(err)
	}
	if inst, err := docker.Inspect(ctx, env.ID); err != nil || inst.State != runtime.StateStopped {
		t.Fatalf("stopped on docker: %+v, %v", inst, err)
	}
}

// TestHostSharingRuntimeIsForAdmins: on a runtime whose workspaces share the
// server's host, a member can neither create (named, or by default) nor
// start an environment, and is told why; a create that names no runtime
// goes where they may; an admin may do all of it. Nothing is recorded for
// a refused create, and a refused start changes nothing.
func TestHostSharingRuntimeIsForAdmins(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	db, admin := seededStore(t, ctx) // the first user: an admin
	member, err := db.CreateUser(ctx, store.User{Email: "grace@example.com", Name: "Grace"})
	if err != nil || admin.Role != store.RoleAdmin || member.Role != store.RoleMember {
		t.Fatalf("users: %s and %s, %v; want an admin and a member", admin.Role, member.Role, err)
	}
	docker, host := twoRuntimes()
	local := sharingRuntime{host}
	isAdmin := func(ctx context.Context, id string) (bool, error) {
		u, err := db.GetUser(ctx, id)
		return u.Role == store.RoleAdmin, err
	}
	m, _ := runManager(t, ctx, Config{Store: db, Runtimes: []runtime.Runtime{local, docker}, IsAdmin: isAdmin})

	tpl, err := db.GetTemplate(ctx, "python")
	if err != nil {
		t.Fatal(err)
	}
	statuses, err := m.TemplateStatus(ctx, tpl, member.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(statuses) != 2 || statuses[0].Runtime != "local" || statuses[0].State != runtime.Unavailable || !statuses[0].AdminOnly ||
		!strings.Contains(statuses[0].Reason, "only admins") || statuses[1].State != runtime.Ready {
		t.Fatalf("TemplateStatus(python) for a member = %+v", statuses)
	}
	if got := m.ChooseRuntime(statuses); got != "docker" {
		t.Fatalf("ChooseRuntime for a member = %q, want docker", got)
	}
	if statuses, err = m.TemplateStatus(ctx, tpl, admin.ID); err != nil || statuses[0].State != runtime.Ready || statuses[0].AdminOnly {
		t.Fatalf("TemplateStatus(python) for an admin = %+v, %v", statuses, err)
	}

	var adminOnly *AdminOnlyError
	if _, err := m.Create(ctx, CreateParams{UserID: member.ID, Name: "mine", Template: "python", Runtime: "local"}); !errors.As(err, &adminOnly) || adminOnly.Runtime != "local" {
		t.Fatalf("member's create on local: %v, want AdminOnlyError", err)
	}
	// nodejs cannot run on docker: the member is told about docker, not
	// given local.
	var unavailable *TemplateUnavailableError
	if _, err := m.Create(ctx, CreateParams{UserID: member.ID, Name: "web", Template: "nodejs"}); !errors.As(err, &unavailable) || unavailable.Runtime != "docker" {
		t.Fatalf("member's create from nodejs: %v, want TemplateUnavailableError on docker", err)
	}
	if envs, _, err := db.ListEnvironments(ctx, store.EnvironmentFilter{UserID: member.ID}); err != nil || len(envs) != 0 {
		t.Fatalf("refused creates recorded %d environments (%v)", len(envs), err)
	}
	onDocker, err := m.Create(ctx, CreateParams{UserID: member.ID, Name: "api", Template: "python"})
	if err != nil || onDocker.Runtime != "docker" {
		t.Fatalf("member's create with no runtime: %+v, %v; want it on docker", onDocker, err)
	}
	mine, err := m.Create(ctx, CreateParams{UserID: admin.ID, Name: "mine", Template: "python", Runtime: "local"})
	if err != nil || mine.Runtime != "local" {
		t.Fatalf("admin's create on local: %+v, %v", mine, err)
	}
	if _, err := m.WaitFor(ctx, mine.ID, func(e store.Environment) bool { return e.Status == store.StatusRunning }); err != nil {
		t.Fatal(err)
	}

	// An environment on local whose owner is (now) a member: its start is
	// refused and its status left as it was.
	if _, err := m.Stop(ctx, mine.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WaitFor(ctx, mine.ID, func(e store.Environment) bool { return e.Status == store.StatusStopped }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.UpdateManagedUser(ctx, member.ID, func(u *store.ManagedUser) error { u.Role = store.RoleAdmin; return nil }); err != nil {
		t.Fatal(err) // another admin, so Ada may stop being one
	}
	if _, _, err := db.UpdateManagedUser(ctx, admin.ID, func(u *store.ManagedUser) error { u.Role = store.RoleMember; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start(ctx, mine.ID); !errors.As(err, &adminOnly) {
		t.Fatalf("start on local by a former admin: %v, want AdminOnlyError", err)
	}
	if env, err := db.GetEnvironment(ctx, mine.ID); err != nil || env.Status != store.StatusStopped {
		t.Fatalf("after the refused start: %s, %v; want STOPPED", env.Status, err)
	}
}
