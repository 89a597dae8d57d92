package lifecycle

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/store"
)

// fakeIssuer makes readable tokens and counts nonces; revoked records
// AgentRevoked calls.
type fakeIssuer struct {
	mu      sync.Mutex
	n       int
	revoked []string
}

func (f *fakeIssuer) NewNonce() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return fmt.Sprintf("n%d", f.n)
}

func (f *fakeIssuer) Issue(environmentID, nonce string) string { return environmentID + "." + nonce }

func (f *fakeIssuer) revoke(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked = append(f.revoked, id)
}

func (f *fakeIssuer) revocations(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.revoked {
		if r == id {
			n++
		}
	}
	return n
}

func newTokenHarness(t *testing.T, setup func(h *harness)) (*harness, *fakeIssuer) {
	t.Helper()
	iss := &fakeIssuer{}
	return newHarnessWith(t, func(c *Config) { c.AgentTokens, c.AgentRevoked = iss, iss.revoke }, setup), iss
}

// TestAgentTokenPerRun: each start gives the compute a token of its own,
// kept while the run lasts (a retried start reuses it); stop, a new start,
// compute found dead and delete revoke it, in the store and to the server
// (issue 15 finding 7).
func TestAgentTokenPerRun(t *testing.T) {
	t.Parallel()
	h, iss := newTokenHarness(t, nil)
	env := h.create("runs", nil)
	if env.AgentTokenNonce != "" {
		t.Fatalf("a new environment has a token nonce %q before its first start", env.AgentTokenNonce)
	}
	env = h.waitStatus(env.ID, store.StatusRunning)
	first := env.AgentTokenNonce
	if first == "" || h.rt.agentToken(env.ID) != env.ID+"."+first {
		t.Fatalf("running: nonce %q, compute's token %q", first, h.rt.agentToken(env.ID))
	}

	// Stop: the run's token is revoked.
	if _, err := h.m.Stop(h.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	env = h.waitStatus(env.ID, store.StatusStopped)
	if env.AgentTokenNonce != "" || iss.revocations(env.ID) != 1 {
		t.Fatalf("stopped: nonce %q, %d revocations; want none and 1", env.AgentTokenNonce, iss.revocations(env.ID))
	}

	// Start again, with a start that fails once: the retry hands the
	// compute the same new token.
	h.rt.failNext("start", env.ID, errors.New("engine busy"))
	if _, err := h.m.Start(h.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	env = h.waitStatus(env.ID, store.StatusRunning)
	second := env.AgentTokenNonce
	if second == "" || second == first || h.rt.agentToken(env.ID) != env.ID+"."+second {
		t.Fatalf("second run: nonce %q (first %q), compute's token %q", second, first, h.rt.agentToken(env.ID))
	}
	iss.mu.Lock()
	issued := iss.n
	iss.mu.Unlock()
	if issued != 2 {
		t.Fatalf("%d nonces issued for two runs (one start retried), want 2", issued)
	}

	// Compute that dies: its token dies too.
	h.rt.crash(env.ID, "exit status 2")
	env = h.waitStatus(env.ID, store.StatusError)
	if env.AgentTokenNonce != "" || iss.revocations(env.ID) != 2 {
		t.Fatalf("crashed: nonce %q, %d revocations", env.AgentTokenNonce, iss.revocations(env.ID))
	}

	if _, err := h.m.Start(h.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	env = h.waitStatus(env.ID, store.StatusRunning)
	if _, err := h.m.Delete(h.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	// Revoked as soon as the delete is asked for, before the compute goes.
	if n := iss.revocations(env.ID); n != 3 {
		t.Fatalf("after the delete request: %d revocations, want 3", n)
	}
	h.waitDeleted(env.ID)
}

// TestAgentTokenStartAfterFailedStop: a stop that failed leaves the compute
// running (ERROR) with its token; a start revokes that token and restarts
// the compute with a new one, rather than leave it running with a token
// the server refuses.
func TestAgentTokenStartAfterFailedStop(t *testing.T) {
	t.Parallel()
	h, iss := newTokenHarness(t, nil)
	env := h.create("stubborn", nil)
	env = h.waitStatus(env.ID, store.StatusRunning)
	old := env.AgentTokenNonce
	h.rt.failNext("stop", env.ID, runtime.Permanent(errors.New("engine refused")))
	if _, err := h.m.Stop(h.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	env = h.waitStatus(env.ID, store.StatusError)
	if h.rt.state(env.ID) != runtime.StateRunning || env.AgentTokenNonce != old {
		t.Fatalf("after the failed stop: compute %s, nonce %q; want still running with %q", h.rt.state(env.ID), env.AgentTokenNonce, old)
	}
	if _, err := h.m.Start(h.ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	env = h.waitStatus(env.ID, store.StatusRunning)
	if env.AgentTokenNonce == old || h.rt.agentToken(env.ID) != env.ID+"."+env.AgentTokenNonce {
		t.Fatalf("restarted: nonce %q (old %q), compute's token %q", env.AgentTokenNonce, old, h.rt.agentToken(env.ID))
	}
	if iss.revocations(env.ID) != 1 {
		t.Fatalf("%d revocations, want the start's", iss.revocations(env.ID))
	}
	h.rt.mu.Lock()
	calls := slices.Clone(h.rt.calls)
	h.rt.mu.Unlock()
	i := slices.Index(calls, "stop:"+env.ID)
	if i < 0 || !slices.Contains(calls[i+1:], "stop:"+env.ID) {
		t.Fatalf("calls %v: want the compute stopped again by the start", calls)
	}
}

// TestAgentTokenAcrossServerRestart: a manager started over a store with a
// running environment (a server restart) keeps its token; one left
// starting keeps the token it was being started with; one starting with a
// token from before per-start tokens gets a new one, its compute
// restarted to take it.
func TestAgentTokenAcrossServerRestart(t *testing.T) {
	t.Parallel()
	var running, starting, legacy store.Environment
	h, _ := newTokenHarness(t, func(h *harness) {
		mk := func(name string, status store.Status, nonce string) store.Environment {
			env := mustResolve(t, h, name, "")
			env.ID, env.Status, env.AgentTokenNonce = "", status, nonce
			created, err := h.db.CreateEnvironment(h.ctx, env)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.rt.Create(h.ctx, h.m.specFor(created)); err != nil {
				t.Fatal(err)
			}
			if _, err := h.rt.Start(h.ctx, created.ID); err != nil {
				t.Fatal(err)
			}
			return created
		}
		running = mk("kept", store.StatusRunning, "n-running")
		starting = mk("midway", store.StatusStarting, "n-starting")
		legacy = mk("old", store.StatusStarting, store.LegacyAgentToken)
	})
	h.waitStatus(starting.ID, store.StatusRunning)
	h.m.resync(h.ctx)
	env, err := h.db.GetEnvironment(h.ctx, running.ID)
	if err != nil || env.Status != store.StatusRunning || env.AgentTokenNonce != "n-running" {
		t.Fatalf("running across the restart: %s %q (%v)", env.Status, env.AgentTokenNonce, err)
	}
	if env, _ := h.db.GetEnvironment(h.ctx, starting.ID); env.AgentTokenNonce != "n-starting" || h.rt.agentToken(starting.ID) != starting.ID+".n-starting" {
		t.Fatalf("starting across the restart: nonce %q, compute's token %q", env.AgentTokenNonce, h.rt.agentToken(starting.ID))
	}
	env = h.waitStatus(legacy.ID, store.StatusRunning)
	if env.AgentTokenNonce == store.LegacyAgentToken || env.AgentTokenNonce == "" || h.rt.agentToken(legacy.ID) != legacy.ID+"."+env.AgentTokenNonce {
		t.Fatalf("legacy start: nonce %q, compute's token %q", env.AgentTokenNonce, h.rt.agentToken(legacy.ID))
	}
}
