package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"dev8.dev/dev8/internal/audit"
	"dev8.dev/dev8/internal/store"
)

// reap stops every RUNNING environment whose last activity is older than its
// auto_stop_minutes (0 = never). The rule is checked again inside the update,
// so activity that arrives while the sweep runs wins.
func (m *Manager) reap(ctx context.Context) {
	if _, err := m.Reap(ctx); err != nil && ctx.Err() == nil {
		m.log.Error("idle reaper", "err", err)
	}
}

// Reap runs one sweep now and returns how many environments it stopped.
func (m *Manager) Reap(ctx context.Context) (stopped int, err error) {
	start := time.Now()
	defer func() { m.cfg.Observer.ReaperRan(stopped, time.Since(start), err) }()
	now := m.now()
	// No environment can idle out sooner than a minute; the store narrows to
	// those, the exact per-environment rule is applied here.
	candidates, err := m.store.ListIdleCandidates(ctx, now.Add(-time.Minute))
	if err != nil {
		return 0, fmt.Errorf("list idle candidates: %w", err)
	}
	for _, c := range candidates {
		if !idle(c, now) {
			continue
		}
		env, err := m.store.UpdateEnvironment(ctx, c.ID, func(e *store.Environment) error {
			if e.Status != store.StatusRunning || !idle(*e, now) {
				return errStale
			}
			e.Status = store.StatusStopping
			e.StatusReason = fmt.Sprintf("stopped after %d minutes without activity", e.AutoStopMinutes)
			return nil
		})
		if errors.Is(err, errStale) || errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return stopped, fmt.Errorf("stop idle environment %s: %w", c.ID, err)
		}
		stopped++
		m.publish(env)
		m.log.Info("stopping idle environment", "environment", env.ID, "last_accessed_at", env.LastAccessedAt, "auto_stop_minutes", env.AutoStopMinutes)
		m.record(ctx, env, "idle_stop_requested", env.StatusReason)
		m.auditSystem(ctx, "environment.idle_stop", env, map[string]any{
			"name": env.Name, "owner_id": env.UserID, "reason": env.StatusReason,
			"last_accessed_at": env.LastAccessedAt, "auto_stop_minutes": env.AutoStopMinutes,
		})
		m.queue.add(env.ID)
	}
	return stopped, nil
}

func idle(e store.Environment, now time.Time) bool {
	return e.AutoStopMinutes > 0 && !e.LastAccessedAt.Add(time.Duration(e.AutoStopMinutes)*time.Minute).After(now)
}

// auditSystem records an action the manager took by itself (actor
// system), best-effort.
func (m *Manager) auditSystem(ctx context.Context, action string, env store.Environment, detail map[string]any) {
	if m.cfg.Audit == nil {
		return
	}
	m.cfg.Audit.Record(ctx, audit.Event{Actor: audit.System, Action: action, Target: audit.Environment(env.ID), Detail: detail, Success: true})
}
