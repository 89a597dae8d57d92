package server

import (
	"context"
	"log/slog"
	"time"

	"dev8.dev/dev8/internal/api"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/ratelimit"
	"dev8.dev/dev8/internal/store"
)

// sharedLoginFailures is where the login throttles keep their failures:
// on PostgreSQL in the database, so that replicas behind one load
// balancer count a guesser's failures together whichever of them answers
// (nil: in memory, for SQLite's server, which runs alone).
func sharedLoginFailures(db *store.DB, s httpmw.LoginFailureStore) ratelimit.FailureStore {
	if db.Engine() != "postgres" {
		return nil
	}
	return httpmw.StoredLoginFailures(s)
}

// loginFailurePruner is the store's part in runLoginFailurePruning.
type loginFailurePruner interface {
	DeleteExpiredLoginFailures(ctx context.Context, now time.Time) (int64, error)
}

// runLoginFailurePruning deletes the shared login failures that no longer
// count (their window and their lock are over) every interval (default
// api.DefaultSessionPruneInterval) until ctx ends. The throttles treat
// such records as none already; this keeps the table to the failures of
// the last window (an hour) rather than every key ever tried. It is
// periodic rather than part of each write so that the login path takes
// no lock but its own key's.
func runLoginFailurePruning(ctx context.Context, db loginFailurePruner, interval time.Duration, now func() time.Time, log *slog.Logger) {
	if interval <= 0 {
		interval = api.DefaultSessionPruneInterval
	}
	if now == nil {
		now = time.Now
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := db.DeleteExpiredLoginFailures(ctx, now())
		switch {
		case err != nil && ctx.Err() == nil:
			log.WarnContext(ctx, "prune login failures", "err", err)
		case n > 0:
			log.InfoContext(ctx, "pruned login failures that no longer count", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
