package server

import (
	"context"
	"fmt"
	"log/slog"

	"dev8.dev/dev8/internal/secretbox"
	"dev8.dev/dev8/internal/store"
)

// installationKey returns the installation's key called name, kept in the
// store sealed with the secret key (secret.key or DEV8_SECRET_KEY), which
// is not in the store: a copy of the database alone yields neither the
// agent token key (no token can be made or checked with it) nor the
// session key (CSRF tokens, OAuth sign-in state). A key an earlier version
// kept in the clear is sealed now, keeping its value, so running
// workspaces and open pages go on working across the upgrade.
func installationKey(ctx context.Context, db *store.DB, box *secretbox.Box, log *slog.Logger, name string, size int) ([]byte, error) {
	k, err := db.SealedInstallationSecret(ctx, name, size, box)
	if err != nil {
		return nil, fmt.Errorf("installation key %s: %w", name, err)
	}
	switch k.Outcome {
	case store.SecretSealedNow:
		log.Info("sealed an installation key that was stored in the clear", "key", name, "key_id", box.KeyID())
	case store.SecretReplaced:
		// The server keeps working (as it does when users' secrets cannot
		// be opened), but what the old key protected is void: say so.
		log.Error("an installation key was sealed with another secret key than this server's, so a new one replaces it: running workspaces' supervisors cannot reconnect until they are stopped and started, and signed-in pages must reload; if the secret key was not meant to change, restore it (DEV8_SECRET_KEY or --secret-key-file): users' secrets sealed with it stay unreadable until then",
			"key", name, "key_id", box.KeyID(), "err", k.OpenErr)
	}
	return k.Value, nil
}

// AgentToken is the agent token of env's current run, as its supervisor
// was given it; an error when the environment has no run (stopped) or
// runs with a token from before per-start tokens. For tests and
// benchmarks that act as a supervisor.
func (s *Server) AgentToken(ctx context.Context, environmentID string) (string, error) {
	env, err := s.Store.GetEnvironment(ctx, environmentID)
	if err != nil {
		return "", err
	}
	if env.AgentTokenNonce == "" || env.AgentTokenNonce == store.LegacyAgentToken {
		return "", fmt.Errorf("environment %s has no agent token of its own now (it is %s)", environmentID, env.Status)
	}
	return s.AgentTokens.Issue(env.ID, env.AgentTokenNonce), nil
}
