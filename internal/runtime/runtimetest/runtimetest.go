// Package runtimetest is the contract every runtime.Runtime must meet, as a
// test suite an engine's tests run against it:
//
//	func TestContract(t *testing.T) {
//		dir := t.TempDir()
//		runtimetest.Run(t, func(t *testing.T) runtime.Runtime {
//			rt, err := local.New(local.Config{Dir: dir})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return rt
//		})
//	}
//
// newRuntime is called more than once (at least once per subtest, and twice
// where a server restart is simulated); every runtime it returns must see the
// same instances, as a restarted server would. Subtests run in parallel, each
// with its own environment ids, and delete what they create.
package runtimetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/runtime"
)

// Options adapts the suite to an engine. The zero value suits engines whose
// Instance.WorkspaceDir is a directory on this machine.
type Options struct {
	// Timeout bounds each subtest. Default 2 minutes.
	Timeout time.Duration
	// Spec returns the spec to create an environment with; the suite sets
	// EnvironmentID. Default: a minimal spec (base template, 1 CPU, 2 GB).
	Spec func() runtime.Spec
	// WriteFile and ReadFile reach a file by its path relative to a
	// running instance's workspace. Default: plain file I/O under
	// Instance.WorkspaceDir when that directory exists here; the
	// persistence test is skipped when it does not and these are nil.
	WriteFile func(ctx context.Context, rt runtime.Runtime, inst runtime.Instance, name string, data []byte) error
	ReadFile  func(ctx context.Context, rt runtime.Runtime, inst runtime.Instance, name string) ([]byte, error)
	// LoseStorage destroys a stopped instance's workspace storage behind
	// the runtime's back, as a deleted volume or a new host would (local:
	// the workspace directory; docker: the container and its volume). The
	// lost-storage test is skipped when it is nil.
	LoseStorage func(ctx context.Context, rt runtime.Runtime, inst runtime.Instance) error
}

// Run runs the contract with default Options.
func Run(t *testing.T, newRuntime func(t *testing.T) runtime.Runtime) {
	RunWithOptions(t, newRuntime, Options{})
}

// RunWithOptions runs the contract.
func RunWithOptions(t *testing.T, newRuntime func(t *testing.T) runtime.Runtime, opts Options) {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	if opts.Spec == nil {
		opts.Spec = func() runtime.Spec {
			return runtime.Spec{Name: "contract", Template: "base", CPUCores: 1, MemoryGB: 2, StorageGB: 1}
		}
	}
	s := &suite{newRuntime: newRuntime, opts: opts}
	for _, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"CreateIsStoppedAndIdempotent", s.testCreate},
		{"StartStopIdempotent", s.testStartStop},
		{"WorkspacePersists", s.testPersist},
		{"LostStorageIsReported", s.testLostStorage},
		{"DeleteRunning", s.testDeleteRunning},
		{"List", s.testList},
		{"UnknownEnvironment", s.testUnknown},
		{"NewRuntimeAdopts", s.testAdopt},
		{"ConcurrentEnvironments", s.testConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.f(t)
		})
	}
}

type suite struct {
	newRuntime func(t *testing.T) runtime.Runtime
	opts       Options
}

func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), s.opts.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// newID returns an id valid for every engine (DNS-label safe, like the
// UUIDs the store hands out) and unique across parallel runs.
func newID(t *testing.T) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "rtt-" + hex.EncodeToString(b[:])
}

// create creates a fresh environment on rt and deletes it when the test ends,
// whatever state it is left in.
func (s *suite) create(t *testing.T, ctx context.Context, rt runtime.Runtime) runtime.Instance {
	t.Helper()
	spec := s.opts.Spec()
	spec.EnvironmentID = newID(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := rt.Delete(ctx, spec.EnvironmentID); err != nil {
			t.Errorf("cleanup: Delete(%s): %v", spec.EnvironmentID, err)
		}
	})
	inst, err := rt.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create(%s): %v", spec.EnvironmentID, err)
	}
	if inst.EnvironmentID != spec.EnvironmentID {
		t.Fatalf("Create returned EnvironmentID %q, want %q", inst.EnvironmentID, spec.EnvironmentID)
	}
	if !inst.StorageCreated {
		t.Fatalf("first Create(%s): StorageCreated false, want true", spec.EnvironmentID)
	}
	return inst
}

func start(t *testing.T, ctx context.Context, rt runtime.Runtime, id string) runtime.Instance {
	t.Helper()
	inst, err := rt.Start(ctx, id)
	if err != nil {
		t.Fatalf("Start(%s): %v", id, err)
	}
	if inst.State != runtime.StateRunning {
		t.Fatalf("Start(%s) returned state %q, want running", id, inst.State)
	}
	if inst.EnvironmentID != id {
		t.Fatalf("Start returned EnvironmentID %q, want %q", inst.EnvironmentID, id)
	}
	return inst
}

func stop(t *testing.T, ctx context.Context, rt runtime.Runtime, id string) {
	t.Helper()
	if err := rt.Stop(ctx, id); err != nil {
		t.Fatalf("Stop(%s): %v", id, err)
	}
}

func expectState(t *testing.T, ctx context.Context, rt runtime.Runtime, id string, want runtime.State) runtime.Instance {
	t.Helper()
	inst, err := rt.Inspect(ctx, id)
	if err != nil {
		t.Fatalf("Inspect(%s): %v", id, err)
	}
	if inst.State != want {
		t.Fatalf("Inspect(%s): state %q (exit reason %q), want %q", id, inst.State, inst.ExitReason, want)
	}
	if inst.EnvironmentID != id {
		t.Fatalf("Inspect returned EnvironmentID %q, want %q", inst.EnvironmentID, id)
	}
	if want == runtime.StateStopped && inst.ExitReason != "" {
		t.Fatalf("Inspect(%s) after a requested stop: ExitReason %q, want empty", id, inst.ExitReason)
	}
	return inst
}

func expectNotFound(t *testing.T, ctx context.Context, rt runtime.Runtime, id string) {
	t.Helper()
	inst, err := rt.Inspect(ctx, id)
	if !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("Inspect(%s) = %+v, %v; want an error wrapping ErrNotFound", id, inst, err)
	}
}

// sameRun fails unless b is the same run of the instance as a: an
// idempotent Start or an adoption must not restart it.
func sameRun(t *testing.T, what string, a, b runtime.Instance) {
	t.Helper()
	if a.Ref != b.Ref {
		t.Errorf("%s: Ref %q, want %q", what, b.Ref, a.Ref)
	}
	if !a.StartedAt.IsZero() && !a.StartedAt.Equal(b.StartedAt) {
		t.Errorf("%s: StartedAt %v, want %v (was it restarted?)", what, b.StartedAt, a.StartedAt)
	}
	if a.IDEAddress != b.IDEAddress {
		t.Errorf("%s: IDEAddress %q, want %q", what, b.IDEAddress, a.IDEAddress)
	}
}

func (s *suite) testCreate(t *testing.T) {
	ctx := s.ctx(t)
	rt := s.newRuntime(t)
	inst := s.create(t, ctx, rt)
	if inst.State != runtime.StateStopped {
		t.Fatalf("Create returned state %q, want stopped", inst.State)
	}
	expectState(t, ctx, rt, inst.EnvironmentID, runtime.StateStopped)

	spec := s.opts.Spec()
	spec.EnvironmentID = inst.EnvironmentID
	again, err := rt.Create(ctx, spec)
	if err != nil {
		t.Fatalf("second Create: %v", err)
	}
	if again.State != runtime.StateStopped || again.Ref != inst.Ref {
		t.Fatalf("second Create = %+v, want the existing stopped instance %+v", again, inst)
	}
	if again.StorageCreated {
		t.Fatalf("second Create: StorageCreated true, want false (the storage was there)")
	}

	// Creating a running instance returns it, still running.
	running := start(t, ctx, rt, inst.EnvironmentID)
	again, err = rt.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create of a running instance: %v", err)
	}
	if again.State != runtime.StateRunning {
		t.Fatalf("Create of a running instance returned state %q", again.State)
	}
	if again.StorageCreated || running.StorageCreated {
		t.Fatalf("StorageCreated set by Create of a running instance (%v) or by Start (%v)", again.StorageCreated, running.StorageCreated)
	}
	sameRun(t, "Create of a running instance", running, again)
	if got := expectState(t, ctx, rt, inst.EnvironmentID, runtime.StateRunning); got.StorageCreated {
		t.Fatalf("Inspect reports StorageCreated")
	}
}

func (s *suite) testStartStop(t *testing.T) {
	ctx := s.ctx(t)
	rt := s.newRuntime(t)
	id := s.create(t, ctx, rt).EnvironmentID

	first := start(t, ctx, rt, id)
	sameRun(t, "Inspect after Start", first, expectState(t, ctx, rt, id, runtime.StateRunning))
	sameRun(t, "second Start", first, start(t, ctx, rt, id))

	stop(t, ctx, rt, id)
	expectState(t, ctx, rt, id, runtime.StateStopped)
	stop(t, ctx, rt, id)
	expectState(t, ctx, rt, id, runtime.StateStopped)

	// Stopped is not the end: it starts again.
	start(t, ctx, rt, id)
	expectState(t, ctx, rt, id, runtime.StateRunning)
	stop(t, ctx, rt, id)

	if err := rt.Delete(ctx, id); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	expectNotFound(t, ctx, rt, id)
	if err := rt.Delete(ctx, id); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if err := rt.Stop(ctx, id); err != nil {
		t.Fatalf("Stop after Delete: %v", err)
	}
}

func (s *suite) fileIO() (write func(context.Context, runtime.Runtime, runtime.Instance, string, []byte) error, read func(context.Context, runtime.Runtime, runtime.Instance, string) ([]byte, error)) {
	if s.opts.WriteFile != nil && s.opts.ReadFile != nil {
		return s.opts.WriteFile, s.opts.ReadFile
	}
	write = func(_ context.Context, _ runtime.Runtime, inst runtime.Instance, name string, data []byte) error {
		return os.WriteFile(filepath.Join(inst.WorkspaceDir, name), data, 0o600)
	}
	read = func(_ context.Context, _ runtime.Runtime, inst runtime.Instance, name string) ([]byte, error) {
		return os.ReadFile(filepath.Join(inst.WorkspaceDir, name))
	}
	return write, read
}

func (s *suite) testPersist(t *testing.T) {
	ctx := s.ctx(t)
	rt := s.newRuntime(t)
	id := s.create(t, ctx, rt).EnvironmentID
	inst := start(t, ctx, rt, id)

	if s.opts.WriteFile == nil || s.opts.ReadFile == nil {
		if fi, err := os.Stat(inst.WorkspaceDir); inst.WorkspaceDir == "" || err != nil || !fi.IsDir() {
			t.Skipf("workspace %q is not a directory on this machine and Options.WriteFile/ReadFile are not set", inst.WorkspaceDir)
		}
	}
	write, read := s.fileIO()
	data := []byte("survives stop and start\n" + id + "\n")
	if err := write(ctx, rt, inst, "dev8-contract.txt", data); err != nil {
		t.Fatalf("write workspace file: %v", err)
	}
	stop(t, ctx, rt, id)
	inst = start(t, ctx, rt, id)
	got, err := read(ctx, rt, inst, "dev8-contract.txt")
	if err != nil {
		t.Fatalf("read workspace file after stop/start: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("workspace file after stop/start = %q, want %q", got, data)
	}
}

// testLostStorage: storage lost while stopped is made anew, empty, by the
// next Create, which says so (and only that Create); the instance then
// starts and keeps files as usual.
func (s *suite) testLostStorage(t *testing.T) {
	if s.opts.LoseStorage == nil {
		t.Skip("Options.LoseStorage is not set")
	}
	ctx := s.ctx(t)
	rt := s.newRuntime(t)
	id := s.create(t, ctx, rt).EnvironmentID
	inst := start(t, ctx, rt, id)
	write, read := s.fileIO()
	if err := write(ctx, rt, inst, "dev8-lost.txt", []byte("lost with the storage\n")); err != nil {
		t.Fatalf("write workspace file: %v", err)
	}
	stop(t, ctx, rt, id)
	if err := s.opts.LoseStorage(ctx, rt, inst); err != nil {
		t.Fatalf("LoseStorage: %v", err)
	}

	spec := s.opts.Spec()
	spec.EnvironmentID = id
	again, err := rt.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create after the storage was lost: %v", err)
	}
	if !again.StorageCreated || again.State != runtime.StateStopped {
		t.Fatalf("Create after the storage was lost = %+v, want stopped with StorageCreated", again)
	}
	if again, err = rt.Create(ctx, spec); err != nil || again.StorageCreated {
		t.Fatalf("second Create after the storage was lost = %+v, %v; want StorageCreated false", again, err)
	}
	inst = start(t, ctx, rt, id)
	if inst.StorageCreated {
		t.Fatalf("Start reports StorageCreated")
	}
	if got, err := read(ctx, rt, inst, "dev8-lost.txt"); err == nil {
		t.Fatalf("file from the lost storage is still there: %q", got)
	}
	data := []byte("written to the new storage\n")
	if err := write(ctx, rt, inst, "dev8-new.txt", data); err != nil {
		t.Fatalf("write to the new storage: %v", err)
	}
	stop(t, ctx, rt, id)
	if again, err = rt.Create(ctx, spec); err != nil || again.StorageCreated {
		t.Fatalf("Create after a plain stop = %+v, %v; want StorageCreated false", again, err)
	}
	inst = start(t, ctx, rt, id)
	if got, err := read(ctx, rt, inst, "dev8-new.txt"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file in the new storage after stop/start = %q, %v", got, err)
	}
}

func (s *suite) testDeleteRunning(t *testing.T) {
	ctx := s.ctx(t)
	rt := s.newRuntime(t)
	id := s.create(t, ctx, rt).EnvironmentID
	start(t, ctx, rt, id)
	if err := rt.Delete(ctx, id); err != nil {
		t.Fatalf("Delete of a running instance: %v", err)
	}
	expectNotFound(t, ctx, rt, id)
	if _, err := rt.Start(ctx, id); err == nil {
		t.Fatalf("Start after Delete succeeded; want an error")
	}
	expectNotFound(t, ctx, rt, id)
}

func (s *suite) testList(t *testing.T) {
	ctx := s.ctx(t)
	rt := s.newRuntime(t)
	running := s.create(t, ctx, rt).EnvironmentID
	stopped := s.create(t, ctx, rt).EnvironmentID
	deleted := s.create(t, ctx, rt).EnvironmentID
	start(t, ctx, rt, running)
	if err := rt.Delete(ctx, deleted); err != nil {
		t.Fatalf("Delete: %v", err)
	}

	// Other subtests share the runtime's state: look only at ours.
	list, err := rt.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	got := map[string]runtime.State{}
	for _, inst := range list {
		if _, dup := got[inst.EnvironmentID]; dup {
			t.Errorf("List reports %s twice", inst.EnvironmentID)
		}
		got[inst.EnvironmentID] = inst.State
	}
	for id, want := range map[string]runtime.State{running: runtime.StateRunning, stopped: runtime.StateStopped} {
		if st, ok := got[id]; !ok {
			t.Errorf("List misses %s", id)
		} else if st != want {
			t.Errorf("List reports %s %q, want %q", id, st, want)
		}
	}
	if _, ok := got[deleted]; ok {
		t.Errorf("List reports deleted instance %s", deleted)
	}
}

func (s *suite) testUnknown(t *testing.T) {
	ctx := s.ctx(t)
	rt := s.newRuntime(t)
	id := newID(t)
	expectNotFound(t, ctx, rt, id)
	// Start cannot run what was never created: an error (which one is the
	// engine's), and nothing created on the way.
	if inst, err := rt.Start(ctx, id); err == nil {
		t.Errorf("Start of an unknown instance = %+v, nil; want an error", inst)
	}
	expectNotFound(t, ctx, rt, id)
	if err := rt.Stop(ctx, id); err != nil {
		t.Errorf("Stop of an unknown instance: %v; want nil (nothing runs)", err)
	}
	if err := rt.Delete(ctx, id); err != nil {
		t.Errorf("Delete of an unknown instance: %v; want nil", err)
	}
	expectNotFound(t, ctx, rt, id)
}

func (s *suite) testAdopt(t *testing.T) {
	ctx := s.ctx(t)
	rt1 := s.newRuntime(t)
	running := s.create(t, ctx, rt1).EnvironmentID
	stopped := s.create(t, ctx, rt1).EnvironmentID
	before := start(t, ctx, rt1, running)

	// A second runtime over the same state, as after a server restart.
	rt2 := s.newRuntime(t)
	sameRun(t, "Inspect from a new runtime", before, expectState(t, ctx, rt2, running, runtime.StateRunning))
	expectState(t, ctx, rt2, stopped, runtime.StateStopped)
	list, err := rt2.List(ctx)
	if err != nil {
		t.Fatalf("List from a new runtime: %v", err)
	}
	found := 0
	for _, inst := range list {
		switch inst.EnvironmentID {
		case running:
			found++
			if inst.State != runtime.StateRunning {
				t.Errorf("List from a new runtime reports %s %q, want running", running, inst.State)
			}
		case stopped:
			found++
			if inst.State != runtime.StateStopped {
				t.Errorf("List from a new runtime reports %s %q, want stopped", stopped, inst.State)
			}
		}
	}
	if found != 2 {
		t.Errorf("List from a new runtime found %d of our 2 instances", found)
	}
	sameRun(t, "Start from a new runtime", before, start(t, ctx, rt2, running))

	// The new runtime can stop what the old one started. The old one is
	// only looked at from here on: two live runtimes mutating the same
	// state is not a situation the contract covers.
	stop(t, ctx, rt2, running)
	expectState(t, ctx, rt2, running, runtime.StateStopped)
	expectState(t, ctx, rt1, running, runtime.StateStopped)
	start(t, ctx, rt2, running)
	if err := rt2.Delete(ctx, running); err != nil {
		t.Fatalf("Delete from the new runtime: %v", err)
	}
	expectNotFound(t, ctx, rt1, running)
	expectNotFound(t, ctx, rt2, running)
}

func (s *suite) testConcurrent(t *testing.T) {
	ctx := s.ctx(t)
	rt := s.newRuntime(t)
	const n = 3
	ids := make([]string, n)
	for i := range ids {
		ids[i] = s.create(t, ctx, rt).EnvironmentID
	}
	run := func(op string, f func(id string) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i, id := range ids {
			wg.Go(func() { errs[i] = f(id) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("concurrent %s: %v", op, err)
		}
	}
	run("Start", func(id string) error {
		inst, err := rt.Start(ctx, id)
		if err == nil && inst.State != runtime.StateRunning {
			err = fmt.Errorf("Start(%s) returned state %q", id, inst.State)
		}
		return err
	})
	for _, id := range ids {
		expectState(t, ctx, rt, id, runtime.StateRunning)
	}
	run("Stop", func(id string) error { return rt.Stop(ctx, id) })
	for _, id := range ids {
		expectState(t, ctx, rt, id, runtime.StateStopped)
	}
	run("Delete", func(id string) error { return rt.Delete(ctx, id) })
	for _, id := range ids {
		expectNotFound(t, ctx, rt, id)
	}
}
