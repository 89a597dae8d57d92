package lifecycle

import (
	"context"
	"fmt"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/store"
)

// AgentTokenIssuer makes supervisors' credentials (auth.AgentTokens): a
// token is made from its environment's id and the nonce of the run, which
// the manager keeps in the store (store.Environment.AgentTokenNonce).
//
// Every start is a run with a fresh nonce, chosen once and kept until the
// run ends, so a start that is retried, or picked up again after a server
// restart, hands the runtime the same token, and a running workspace keeps
// its token across server restarts. A stop, a delete, the next start, or
// compute found dead clears the nonce: the run's token is refused from
// then on, wherever it was copied to.
type AgentTokenIssuer interface {
	NewNonce() string
	Issue(environmentID, nonce string) string
}

// ensureAgentToken gives env a nonce for this run if it has none yet (or
// only the mark of a run from before nonces), and says whether it did.
func (m *Manager) ensureAgentToken(ctx context.Context, env store.Environment) (store.Environment, bool, error) {
	if m.cfg.AgentTokens == nil || (env.AgentTokenNonce != "" && env.AgentTokenNonce != store.LegacyAgentToken) {
		return env, false, nil
	}
	from, nonce := env.Status, m.cfg.AgentTokens.NewNonce()
	env, err := m.store.UpdateEnvironment(ctx, env.ID, func(e *store.Environment) error {
		if e.Status != from {
			return errStale
		}
		e.AgentTokenNonce = nonce
		return nil
	})
	if err != nil {
		return env, false, fmt.Errorf("issue agent token: %w", err)
	}
	return env, true, nil
}

// createFor creates (idempotently) env's instance for this run. A runtime
// keeps what Create says for the next start only, so compute found already
// running cannot take a token issued just now: whatever credential it was
// started with has been revoked (a start after a failed stop). It is
// restarted, so the supervisor comes back with the new token.
func (m *Manager) createFor(ctx context.Context, rt runtime.Runtime, env store.Environment, issued bool) (runtime.Instance, error) {
	spec := m.specFor(env)
	created, err := rt.Create(ctx, spec)
	if err != nil {
		return created, fmt.Errorf("create: %w", err)
	}
	if !issued || created.State != runtime.StateRunning {
		return created, nil
	}
	m.log.Info("restarting compute that runs with a revoked agent token", "environment", env.ID)
	if err := rt.Stop(ctx, env.ID); err != nil {
		return created, fmt.Errorf("stop compute holding a revoked agent token: %w", err)
	}
	again, err := rt.Create(ctx, spec)
	if err != nil {
		return again, fmt.Errorf("create: %w", err)
	}
	again.StorageCreated = again.StorageCreated || created.StorageCreated
	return again, nil
}

// agentRevoked tells the server that environmentID's agent token is no
// longer valid.
func (m *Manager) agentRevoked(environmentID string) {
	if m.cfg.AgentRevoked != nil {
		m.cfg.AgentRevoked(environmentID)
	}
}
