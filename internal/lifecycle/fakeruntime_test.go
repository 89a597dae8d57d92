package lifecycle

import (
	"context"
	"fmt"
	"sync"
	"time"

	"dev8.dev/dev8/internal/runtime"
)

// memRuntime is an in-memory runtime for the lifecycle's own tests: it lets
// a test fail or hold any operation, which a real engine cannot be made to do
// on cue. It passes the same contract suite as the real engines
// (TestMemRuntimeContract), so what the lifecycle learns from it holds.
type memRuntime struct {
	mu        sync.Mutex
	instances map[string]*runtime.Instance
	// failures[op+":"+id] is returned (and consumed) by the next such call.
	failures map[string][]error
	// gates[op+":"+id] blocks that call until the channel is closed.
	gates map[string]chan struct{}
	// entered[op+":"+id] is closed when that call reaches its gate.
	entered map[string]chan struct{}
	calls   []string
	exits   chan<- string
	// files is each instance's workspace: kept across stop/start, removed
	// with the instance.
	files map[string]map[string][]byte
	// specs is the spec each instance's compute runs with: recorded by
	// Create while it is not running (the contract: for the next Start).
	specs map[string]runtime.Spec
}

func newMemRuntime() *memRuntime {
	return &memRuntime{
		instances: make(map[string]*runtime.Instance),
		failures:  make(map[string][]error),
		gates:     make(map[string]chan struct{}),
		entered:   make(map[string]chan struct{}),
		files:     make(map[string]map[string][]byte),
		specs:     make(map[string]runtime.Spec),
	}
}

func (r *memRuntime) Name() string { return "mem" }

func (r *memRuntime) NotifyExits(ch chan<- string) { r.exits = ch }

// failNext makes the next calls of op on id fail with errs, in order.
func (r *memRuntime) failNext(op, id string, errs ...error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures[op+":"+id] = append(r.failures[op+":"+id], errs...)
}

// hold blocks op on id until the returned func is called.
func (r *memRuntime) hold(op, id string) (release func()) {
	ch := make(chan struct{})
	r.mu.Lock()
	r.gates[op+":"+id] = ch
	r.mu.Unlock()
	return sync.OnceFunc(func() { close(ch) })
}

// holdEvery is hold for every environment: for a test that must hold an
// operation of an environment it has yet to create (the worker may reach it
// before a hold by id could be set).
func (r *memRuntime) holdEvery(op string) (release func()) { return r.hold(op, "*") }

// holdEntered is hold, and also says when the call has reached the gate.
func (r *memRuntime) holdEntered(op, id string) (entered <-chan struct{}, release func()) {
	ch := make(chan struct{})
	r.mu.Lock()
	r.entered[op+":"+id] = ch
	r.mu.Unlock()
	return ch, r.hold(op, id)
}

// crash simulates compute dying on its own.
func (r *memRuntime) crash(id, reason string) {
	r.mu.Lock()
	if inst, ok := r.instances[id]; ok {
		inst.State = runtime.StateStopped
		inst.ExitReason = reason
	}
	exits := r.exits
	r.mu.Unlock()
	if exits != nil {
		exits <- id
	}
}

func (r *memRuntime) enter(ctx context.Context, op, id string) error {
	r.mu.Lock()
	r.calls = append(r.calls, op+":"+id)
	gate := r.gates[op+":"+id]
	if gate == nil {
		gate = r.gates[op+":*"]
	}
	if ch := r.entered[op+":"+id]; ch != nil {
		close(ch)
		delete(r.entered, op+":"+id)
	}
	r.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if errs := r.failures[op+":"+id]; len(errs) > 0 {
		r.failures[op+":"+id] = errs[1:]
		return errs[0]
	}
	return nil
}

func (r *memRuntime) Create(ctx context.Context, spec runtime.Spec) (runtime.Instance, error) {
	if err := r.enter(ctx, "create", spec.EnvironmentID); err != nil {
		return runtime.Instance{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if inst, ok := r.instances[spec.EnvironmentID]; ok {
		if inst.State != runtime.StateRunning {
			r.specs[spec.EnvironmentID] = spec
		}
		out := *inst
		if r.files[spec.EnvironmentID] == nil && inst.State != runtime.StateRunning {
			r.files[spec.EnvironmentID] = map[string][]byte{} // lost storage, made anew
			out.StorageCreated = true
		}
		return out, nil
	}
	inst := &runtime.Instance{EnvironmentID: spec.EnvironmentID, Ref: "mem-" + spec.EnvironmentID, State: runtime.StateStopped, WorkspaceDir: "/workspace"}
	r.instances[spec.EnvironmentID] = inst
	r.specs[spec.EnvironmentID] = spec
	r.files[spec.EnvironmentID] = map[string][]byte{}
	out := *inst
	out.StorageCreated = true
	return out, nil
}

// loseStorage drops a stopped instance's workspace, as a deleted volume
// would; the next Create makes it anew and says so.
func (r *memRuntime) loseStorage(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if inst, ok := r.instances[id]; !ok || inst.State == runtime.StateRunning {
		return fmt.Errorf("lose storage of %s: not a stopped instance", id)
	}
	delete(r.files, id)
	return nil
}

func (r *memRuntime) Start(ctx context.Context, id string) (runtime.Instance, error) {
	if err := r.enter(ctx, "start", id); err != nil {
		return runtime.Instance{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	inst, ok := r.instances[id]
	if !ok {
		return runtime.Instance{}, fmt.Errorf("start %s: no such instance", id)
	}
	if inst.State != runtime.StateRunning {
		inst.State = runtime.StateRunning
		inst.ExitReason = ""
		inst.StartedAt = time.Now()
		inst.IDEAddress = "127.0.0.1:1"
	}
	return *inst, nil
}

func (r *memRuntime) Stop(ctx context.Context, id string) error {
	if err := r.enter(ctx, "stop", id); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if inst, ok := r.instances[id]; ok {
		inst.State = runtime.StateStopped
		inst.ExitReason = ""
		inst.IDEAddress = ""
	}
	return nil
}

func (r *memRuntime) Delete(ctx context.Context, id string) error {
	if err := r.enter(ctx, "delete", id); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.instances, id)
	delete(r.files, id)
	delete(r.specs, id)
	return nil
}

func (r *memRuntime) Inspect(ctx context.Context, id string) (runtime.Instance, error) {
	if err := r.enter(ctx, "inspect", id); err != nil {
		return runtime.Instance{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	inst, ok := r.instances[id]
	if !ok {
		return runtime.Instance{}, runtime.ErrNotFound
	}
	return *inst, nil
}

func (r *memRuntime) List(ctx context.Context) ([]runtime.Instance, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]runtime.Instance, 0, len(r.instances))
	for _, inst := range r.instances {
		out = append(out, *inst)
	}
	return out, nil
}

func (r *memRuntime) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.instances[id]
	return ok
}

func (r *memRuntime) state(id string) runtime.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	if inst, ok := r.instances[id]; ok {
		return inst.State
	}
	return ""
}

func (r *memRuntime) writeFile(id, name string, data []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	inst, ok := r.instances[id]
	if !ok || inst.State != runtime.StateRunning || r.files[id] == nil {
		return fmt.Errorf("write %s: instance %s is not running (or has no storage)", name, id)
	}
	r.files[id][name] = append([]byte(nil), data...)
	return nil
}

func (r *memRuntime) readFile(id, name string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	data, ok := r.files[id][name]
	if !ok {
		return nil, fmt.Errorf("read %s: no such file in %s", name, id)
	}
	return data, nil
}

// agentToken is the agent token id's compute was last given.
func (r *memRuntime) agentToken(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.specs[id].AgentToken
}

// specOf is the spec id's compute was last given.
func (r *memRuntime) specOf(id string) runtime.Spec {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.specs[id]
}

// callLog is every call made so far, as "op:id".
func (r *memRuntime) callLog() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// callCount is how often call (op+":"+id) reached the runtime.
func (r *memRuntime) callCount(call string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		if c == call {
			n++
		}
	}
	return n
}
