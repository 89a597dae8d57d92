package lifecycle

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/store"
)

// clusterRuntime is the in-memory runtime named "kubernetes", placing
// workspaces on nodes (runtime.NodePlacer) as the real one does.
type clusterRuntime struct{ *memRuntime }

func (clusterRuntime) Name() string        { return "kubernetes" }
func (clusterRuntime) PlacesOnNodes() bool { return true }

// TestGPUInstanceTypeGoesWhereItCanBePlaced: an instance type asking for
// an extended resource and node labels is refused, before anything is
// recorded, on a runtime that cannot give them (naming the resource, the
// runtime and the one that can); a create naming no runtime goes to one
// that can; the environment keeps a copy of the type's placement, which
// reaches the runtime's spec at every start and survives an edit of the
// type; a retired type is refused for new environments.
func TestGPUInstanceTypeGoesWhereItCanBePlaced(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	db, user := seededStore(t, ctx)
	gpu := store.InstanceType{Name: "gpu", DisplayName: "GPU", CPUCores: 2, MemoryGB: 8, StorageGB: 20, IsActive: true,
		Resources: map[string]string{"nvidia.com/gpu": "1"}, NodeSelector: map[string]string{"pool": "gpu"}}
	if err := db.CreateInstanceType(ctx, gpu); err != nil {
		t.Fatal(err)
	}
	docker, _ := twoRuntimes()
	cluster := clusterRuntime{newMemRuntime()}

	// Only docker: refused, whether named or the default.
	onlyDocker, _ := runManager(t, ctx, Config{Store: db, Runtimes: []runtime.Runtime{docker}})
	for _, asked := range []string{"", "docker"} {
		_, err := onlyDocker.Create(ctx, CreateParams{UserID: user.ID, Name: "cuda", Template: "base", InstanceType: "gpu", Runtime: asked})
		var pe *PlacementUnsupportedError
		if !errors.As(err, &pe) || pe.Runtime != "docker" ||
			!strings.Contains(err.Error(), "nvidia.com/gpu=1") || !strings.Contains(err.Error(), "pool=gpu") || !strings.Contains(err.Error(), "none of this server's runtimes") {
			t.Fatalf("create a GPU type on docker (asked %q): %v", asked, err)
		}
	}

	m, _ := runManager(t, ctx, Config{Store: db, Runtimes: []runtime.Runtime{docker, cluster}})
	_, err := m.Create(ctx, CreateParams{UserID: user.ID, Name: "cuda", Template: "base", InstanceType: "gpu", Runtime: "docker"})
	var pe *PlacementUnsupportedError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "the docker runtime cannot give") || !strings.Contains(err.Error(), "create it on kubernetes") {
		t.Fatalf("create a GPU type on docker beside kubernetes: %v", err)
	}
	if envs, _, err := db.ListEnvironments(ctx, store.EnvironmentFilter{}); err != nil || len(envs) != 0 {
		t.Fatalf("refused creates left records: %d environments, %v", len(envs), err)
	}
	if calls := docker.callLog(); len(calls) != 0 {
		t.Fatalf("refused creates reached the runtime: %v", calls)
	}

	// No runtime named: docker is first, but only kubernetes can place it.
	env, err := m.Create(ctx, CreateParams{UserID: user.ID, Name: "cuda", Template: "base", InstanceType: "gpu"})
	if err != nil || env.Runtime != "kubernetes" || env.InstanceType != "gpu" || !maps.Equal(env.Resources, gpu.Resources) || !maps.Equal(env.NodeSelector, gpu.NodeSelector) {
		t.Fatalf("create a GPU type: %+v, %v", env, err)
	}
	// A plain type still goes to the first runtime.
	plain, err := m.Create(ctx, CreateParams{UserID: user.ID, Name: "plain", Template: "base", InstanceType: "balanced"})
	if err != nil || plain.Runtime != "docker" || plain.Resources != nil || plain.NodeSelector != nil {
		t.Fatalf("create a plain type: %+v, %v", plain, err)
	}
	if _, err := m.WaitFor(ctx, env.ID, func(e store.Environment) bool { return e.Status == store.StatusRunning }); err != nil {
		t.Fatal(err)
	}
	spec := cluster.specOf(env.ID)
	if !maps.Equal(spec.Resources, gpu.Resources) || !maps.Equal(spec.NodeSelector, gpu.NodeSelector) {
		t.Fatalf("runtime spec: resources %v, node selector %v", spec.Resources, spec.NodeSelector)
	}

	// An edit of the type, then a stop and a start: the workspace keeps
	// what it was made with.
	if _, _, err := db.UpdateInstanceType(ctx, "gpu", func(it *store.InstanceType) error {
		it.Resources = map[string]string{"nvidia.com/gpu": "4"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Stop(ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WaitFor(ctx, env.ID, func(e store.Environment) bool { return e.Status == store.StatusStopped }); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start(ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WaitFor(ctx, env.ID, func(e store.Environment) bool { return e.Status == store.StatusRunning }); err != nil {
		t.Fatal(err)
	}
	if spec := cluster.specOf(env.ID); spec.Resources["nvidia.com/gpu"] != "1" {
		t.Errorf("after an edit of the type and a restart, the spec asks for %v", spec.Resources)
	}

	// Retired: not for new environments.
	if _, _, err := db.UpdateInstanceType(ctx, "gpu", func(it *store.InstanceType) error { it.IsActive = false; return nil }); err != nil {
		t.Fatal(err)
	}
	var ve *ValidationError
	if _, err := m.Create(ctx, CreateParams{UserID: user.ID, Name: "again", Template: "base", InstanceType: "gpu"}); !errors.As(err, &ve) || ve.Field != "instance_type" {
		t.Errorf("create from a retired type: %v", err)
	}
}

// waitingRuntime reports what its starts wait on, as the kubernetes
// runtime does while no node can take a pod.
type waitingRuntime struct{ clusterRuntime }

const waitingFor = "waiting for a node that can run it: no node has a free nvidia.com/gpu"

func (r waitingRuntime) Start(ctx context.Context, id string) (runtime.Instance, error) {
	runtime.Report(ctx, waitingFor)
	return r.memRuntime.Start(ctx, id)
}

// TestStartShowsWhatItWaitsOn: what a start reports waiting on is the
// environment's status reason while it waits, and is gone once it runs.
func TestStartShowsWhatItWaitsOn(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	db, user := seededStore(t, ctx)
	rt := waitingRuntime{clusterRuntime{newMemRuntime()}}
	release := rt.holdEvery("start")
	defer release()
	m, _ := runManager(t, ctx, Config{Store: db, Runtimes: []runtime.Runtime{rt}})
	env, err := m.Create(ctx, CreateParams{UserID: user.ID, Name: "cuda", Template: "base"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.WaitFor(ctx, env.ID, func(e store.Environment) bool { return e.StatusReason == waitingFor })
	if err != nil || got.Status != store.StatusCreating {
		t.Fatalf("while the start waits: %s %q, %v", got.Status, got.StatusReason, err)
	}
	release()
	got, err = m.WaitFor(ctx, env.ID, func(e store.Environment) bool { return e.Status == store.StatusRunning })
	if err != nil || got.StatusReason != "" {
		t.Fatalf("running: %q, %v", got.StatusReason, err)
	}
}
