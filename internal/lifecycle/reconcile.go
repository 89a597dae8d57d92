package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/store"
)

// maxRetryDelay caps the exponential backoff between attempts.
const maxRetryDelay = 30 * time.Second

// errStale means the environment's status changed while an operation ran
// (e.g. deleted while being created); the change re-queued it, so the
// operation's result is simply dropped.
var errStale = errors.New("environment changed during the operation")

type attemptCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (a *attemptCounter) inc(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n[id]++
	return a.n[id]
}

func (a *attemptCounter) reset(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.n, id)
}

func (m *Manager) work(ctx context.Context) {
	for {
		id, ok := m.queue.get(ctx)
		if !ok {
			return
		}
		m.reconcileWithRetry(ctx, id)
		m.queue.done(id)
	}
}

func (m *Manager) reconcileWithRetry(ctx context.Context, id string) {
	held, ok := m.holdEnvironment(ctx, id)
	if !ok {
		return
	}
	defer held.release()
	opCtx, cancel := context.WithTimeout(held.ctx, m.cfg.OperationTimeout)
	defer cancel()
	acted, err := m.reconcile(opCtx, id)
	switch {
	case err == nil, errors.Is(err, errStale), errors.Is(err, store.ErrNotFound):
		m.attempts.reset(id)
		return
	case ctx.Err() != nil:
		// Shutting down: the next start converges whatever was left.
		return
	case held.ctx.Err() != nil:
		// The lease was lost (this replica was cut off from the
		// database): whoever takes it over carries on.
		m.log.Warn("environment operation abandoned: its lease was lost", "environment", id, "err", err)
		return
	}
	n := m.attempts.inc(id)
	if runtime.IsPermanent(err) || n >= m.cfg.MaxAttempts {
		m.log.Error("environment operation failed", "environment", id, "attempts", n, "err", err)
		m.attempts.reset(id)
		m.fail(ctx, id, acted, err)
		return
	}
	delay := min(m.cfg.RetryBase<<(n-1), maxRetryDelay)
	m.log.Warn("environment operation failed; retrying", "environment", id, "attempt", n, "retry_in", delay, "err", err)
	m.queue.addAfter(id, delay)
}

// reconcile moves one environment one step towards what its status asks,
// and says which status it acted on.
func (m *Manager) reconcile(ctx context.Context, id string) (acted store.Status, err error) {
	env, err := m.store.GetEnvironment(ctx, id)
	if err != nil {
		return "", err
	}
	return env.Status, m.reconcileEnvironment(ctx, env)
}

func (m *Manager) reconcileEnvironment(ctx context.Context, env store.Environment) (err error) {
	rt, err := m.runtimeFor(env)
	if err != nil {
		return m.runtimeMissing(ctx, env)
	}
	if env.StatusReason == unconfiguredReason(env.Runtime) {
		if env, err = m.setReason(ctx, env, ""); err != nil {
			return err
		}
	}
	if kind := operationKind(env.Status); kind != "" {
		defer m.observeOperation(rt.Name(), kind, time.Now(), &err)
	}
	switch env.Status {
	case store.StatusCreating, store.StatusStarting:
		return m.bringUp(ctx, rt, env)
	case store.StatusStopping:
		m.beforeStop(ctx, env)
		if err := rt.Stop(ctx, env.ID); err != nil {
			return fmt.Errorf("stop: %w", err)
		}
		env, err = m.transition(ctx, env.ID, env.Status, store.StatusStopped, func(e *store.Environment) {
			now := m.now()
			settleCost(e, now)
			e.StoppedAt = &now
			// The run is over: its agent token dies with it.
			e.AgentTokenNonce = ""
		})
		if err == nil {
			m.agentRevoked(env.ID)
			m.record(ctx, env, "stopped", env.StatusReason)
		}
		return err
	case store.StatusDeleting:
		if err := rt.Delete(ctx, env.ID); err != nil {
			return fmt.Errorf("delete: %w", err)
		}
		env, err = m.store.UpdateEnvironment(ctx, env.ID, func(e *store.Environment) error {
			if e.Status != store.StatusDeleting {
				return errStale
			}
			now := m.now()
			settleCost(e, now)
			e.DeletedAt = &now
			return nil
		})
		if err == nil {
			m.freshStorage.Delete(env.ID)
			m.publish(env)
			m.record(ctx, env, "deleted", "")
		}
		return err
	case store.StatusRunning:
		return m.checkRunning(ctx, rt, env)
	case store.StatusStopped:
		// Compute must not run for a stopped environment, e.g. when the
		// server crashed between stopping it and recording that.
		inst, err := rt.Inspect(ctx, env.ID)
		if err == nil && inst.State == runtime.StateRunning {
			return rt.Stop(ctx, env.ID)
		}
		if errors.Is(err, runtime.ErrNotFound) {
			return nil
		}
		return err
	}
	return nil // ERROR waits for the user
}

// runtimeMissing is the reconciler's answer to an environment whose runtime
// this server is not configured for (the configuration changed): whatever
// its status, it is left as it is — its compute may well be running on an
// engine this server no longer drives — and its status reason says why.
// Once the runtime is configured again, the next reconcile clears the
// reason and goes on.
func (m *Manager) runtimeMissing(ctx context.Context, env store.Environment) error {
	reason := unconfiguredReason(env.Runtime)
	if env.StatusReason == reason {
		return nil
	}
	m.log.Warn("environment's runtime is not configured; leaving it as it is", "environment", env.ID, "runtime", env.Runtime, "status", env.Status)
	_, err := m.setReason(ctx, env, reason)
	return err
}

// setReason replaces env's status reason if its status is still the same.
func (m *Manager) setReason(ctx context.Context, env store.Environment, reason string) (store.Environment, error) {
	env, err := m.store.UpdateEnvironment(ctx, env.ID, func(e *store.Environment) error {
		if e.Status != env.Status {
			return errStale
		}
		e.StatusReason = reason
		return nil
	})
	if err == nil {
		m.publish(env)
	}
	return env, err
}

// bringUp creates (idempotently) and starts the instance, then records RUNNING.
func (m *Manager) bringUp(ctx context.Context, rt runtime.Runtime, env store.Environment) error {
	from := env.Status
	env, issued, err := m.ensureAgentToken(ctx, env)
	if err != nil {
		return err
	}
	created, err := m.createFor(ctx, rt, env, issued)
	if err != nil {
		return err
	}
	if created.StorageCreated {
		m.freshStorage.Store(env.ID, struct{}{})
	}
	// What the start waits on (no node free for it yet) is the status
	// reason meanwhile: the user sees why it takes long.
	startCtx := runtime.WithReporter(ctx, func(status string) {
		if _, err := m.setReason(ctx, env, status); err != nil && !errors.Is(err, errStale) {
			m.log.Warn("record what a start waits on", "environment", env.ID, "err", err)
		}
	})
	inst, err := rt.Start(startCtx, env.ID)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	env, err = m.transition(ctx, env.ID, from, store.StatusRunning, func(e *store.Environment) {
		now := m.now()
		e.StatusReason = ""
		e.RuntimeRef = inst.Ref
		e.VSCodeURL = m.vsCodeURL(e.ID, inst)
		e.SSHConnectionString = "dev8 ssh " + e.Name
		if e.RunningSince == nil {
			e.RunningSince = &now
		}
		e.LastAccessedAt = now
		e.StoppedAt = nil
	})
	if err == nil {
		_, fresh := m.freshStorage.LoadAndDelete(env.ID)
		m.record(ctx, env, "started", "")
		if m.cfg.AfterStart != nil {
			m.cfg.AfterStart(ctx, env, fresh)
		}
	}
	return err
}

// checkRunning notices compute that stopped on its own. Dev8 does not restart
// it behind the user's back: the environment goes to ERROR with the reason,
// and a start brings it back.
func (m *Manager) checkRunning(ctx context.Context, rt runtime.Runtime, env store.Environment) error {
	inst, err := rt.Inspect(ctx, env.ID)
	var reason string
	switch {
	case errors.Is(err, runtime.ErrNotFound):
		reason = "the workspace instance disappeared from the runtime"
	case err != nil:
		return fmt.Errorf("inspect: %w", err)
	case inst.State == runtime.StateRunning:
		if ideURL := m.vsCodeURL(env.ID, inst); ideURL != env.VSCodeURL {
			_, err := m.store.UpdateEnvironment(ctx, env.ID, func(e *store.Environment) error {
				e.VSCodeURL = ideURL
				return nil
			})
			return err
		}
		return nil
	default:
		reason = inst.ExitReason
		if reason == "" {
			reason = "the workspace stopped unexpectedly"
		}
	}
	env, err = m.transition(ctx, env.ID, store.StatusRunning, store.StatusError, func(e *store.Environment) {
		settleCost(e, m.now())
		e.StatusReason = reason
		// The compute is gone: so is its run's agent token.
		e.AgentTokenNonce = ""
	})
	if err == nil {
		m.agentRevoked(env.ID)
		m.log.Warn("environment compute stopped on its own", "environment", env.ID, "reason", reason)
		m.record(ctx, env, "error", reason)
	}
	return err
}

// fail records a failed operation as ERROR with its reason. A failed delete
// also ends in ERROR, so the user sees it and can delete again. Resting
// statuses are left alone: a failed health check of a RUNNING environment
// is tried again at the next resync rather than declared an error.
//
// Only the status the failed operation worked for is replaced: if the user
// asked for something else meanwhile (a delete of a create that is
// failing), that request stands and runs next.
func (m *Manager) fail(ctx context.Context, id string, acted store.Status, cause error) {
	env, err := m.store.UpdateEnvironment(ctx, id, func(e *store.Environment) error {
		if !IsTransitional(e.Status) || e.Status != acted {
			return errStale
		}
		settleCost(e, m.now())
		e.Status = store.StatusError
		e.StatusReason = cause.Error()
		return nil
	})
	if err != nil {
		if !errors.Is(err, errStale) {
			m.log.Error("record failure", "environment", id, "err", err)
		}
		return
	}
	m.publish(env)
	m.record(ctx, env, "error", env.StatusReason)
}

// transition moves an environment from one status to another if it is
// still in the first; otherwise it returns errStale.
func (m *Manager) transition(ctx context.Context, id string, from, to store.Status, mutate func(*store.Environment)) (store.Environment, error) {
	env, err := m.store.UpdateEnvironment(ctx, id, func(e *store.Environment) error {
		if e.Status != from || !CanTransition(from, to) {
			return errStale
		}
		e.Status = to
		if mutate != nil {
			mutate(e)
		}
		return nil
	})
	if err == nil {
		m.publish(env)
	}
	return env, err
}

// converge runs once at start: every environment left mid-operation is
// queued again, and runtime instances whose environment is gone are removed.
func (m *Manager) converge(ctx context.Context) error {
	instances, err := m.removeOrphans(ctx)
	if err != nil {
		return err
	}
	envs, _, err := m.store.ListEnvironments(ctx, store.EnvironmentFilter{})
	if err != nil {
		return fmt.Errorf("list environments: %w", err)
	}
	for _, env := range envs {
		m.queue.add(env.ID)
	}
	m.log.Info("converged with runtimes", "runtimes", m.RuntimeNames(), "instances", instances, "environments", len(envs))
	return nil
}

// removeOrphans removes the runtime instances whose environment is gone
// and returns how many instances the runtime listed. At start they are
// what a crash left behind; later, what a dead server's request still in
// flight in the engine made after the new server had converged (a
// container create that dockerd finished after its client was killed).
func (m *Manager) removeOrphans(ctx context.Context) (int, error) {
	total := 0
	for _, name := range m.RuntimeNames() {
		rt := m.runtimes[name]
		instances, err := rt.List(ctx)
		if err != nil {
			return 0, fmt.Errorf("list %s instances: %w", name, err)
		}
		total += len(instances)
		for _, inst := range instances {
			_, err := m.store.GetEnvironment(ctx, inst.EnvironmentID)
			if errors.Is(err, store.ErrNotFound) {
				m.log.Info("removing orphaned workspace instance", "runtime", name, "environment", inst.EnvironmentID, "ref", inst.Ref)
				if err := rt.Delete(ctx, inst.EnvironmentID); err != nil {
					return 0, fmt.Errorf("remove orphan %s from %s: %w", inst.EnvironmentID, name, err)
				}
			} else if err != nil {
				return 0, err
			}
		}
	}
	return total, nil
}

// resync queues every environment whose compute should be running or is
// mid-operation, so compute that died is noticed and nothing stays stuck,
// and removes orphaned instances.
func (m *Manager) resync(ctx context.Context) {
	if _, err := m.removeOrphans(ctx); err != nil && ctx.Err() == nil {
		m.log.Error("resync: remove orphaned instances", "err", err)
	}
	envs, _, err := m.store.ListEnvironments(ctx, store.EnvironmentFilter{Statuses: []store.Status{
		store.StatusRunning, store.StatusCreating, store.StatusStarting, store.StatusStopping, store.StatusDeleting,
	}})
	if err != nil {
		if ctx.Err() == nil {
			m.log.Error("resync: list environments", "err", err)
		}
		return
	}
	for _, env := range envs {
		m.queue.add(env.ID)
	}
}

func (m *Manager) specFor(env store.Environment) runtime.Spec {
	ports := make([]runtime.Port, len(env.Ports))
	for i, p := range env.Ports {
		ports[i] = runtime.Port{Port: p.Port, Protocol: p.Protocol}
	}
	var token string
	if m.cfg.AgentTokens != nil && env.AgentTokenNonce != "" && env.AgentTokenNonce != store.LegacyAgentToken {
		token = m.cfg.AgentTokens.Issue(env.ID, env.AgentTokenNonce)
	}
	urls := m.getURLs()
	return runtime.Spec{
		AgentURL:      urls.AgentURL,
		AgentSocket:   urls.AgentSocket,
		AgentToken:    token,
		EnvironmentID: env.ID,
		UserID:        env.UserID,
		Name:          env.Name,
		Template:      env.TemplateName,
		Image:         env.BaseImage,
		CPUCores:      env.CPUCores,
		MemoryGB:      env.MemoryGB,
		StorageGB:     env.StorageGB,
		Env:           env.EnvironmentVariables,
		Ports:         ports,
		Resources:     env.Resources,
		NodeSelector:  env.NodeSelector,
		Region:        env.CloudRegion,
	}
}

// IDEPath is where the server proxies an environment's code-server.
func IDEPath(environmentID string) string { return "/w/" + environmentID + "/ide/" }

// vsCodeURL is where a person opens the environment's IDE: the server's
// proxy of its code-server (only its owner gets through), opened on the
// workspace folder. Empty when the workspace has no IDE.
func (m *Manager) vsCodeURL(environmentID string, inst runtime.Instance) string {
	if inst.IDEAddress == "" {
		return ""
	}
	u := strings.TrimRight(m.getURLs().AccessURL, "/") + IDEPath(environmentID)
	if inst.WorkspaceDir != "" {
		u += "?folder=" + url.QueryEscape(inst.WorkspaceDir)
	}
	return u
}
