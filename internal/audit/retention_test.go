package audit

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/store"
)

// TestPrunerDeletesOnlyExpired: a pass deletes every event older than the
// retention, however many batches that takes, and keeps the rest.
func TestPrunerDeletesOnlyExpired(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, err := store.Open(ctx, "", filepath.Join(t.TempDir(), "dev8.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	const expired, kept = 11, 4
	for i := range expired + kept {
		age := 91 * 24 * time.Hour // older than the default 90 days
		if i >= expired {
			age = 89 * 24 * time.Hour
		}
		if err := db.InsertAuditEvent(ctx, store.AuditEvent{CreatedAt: now.Add(-age), ActorKind: store.ActorSystem, Action: "auth.login"}); err != nil {
			t.Fatal(err)
		}
	}
	p := NewPruner(RetentionConfig{Store: db, Now: func() time.Time { return now }, batch: 3, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if p.Retention() != DefaultRetention {
		t.Fatalf("retention %v, want the default %v", p.Retention(), DefaultRetention)
	}
	n, err := p.Prune(ctx)
	if err != nil || n != expired {
		t.Fatalf("Prune = %d, %v; want %d", n, err, expired)
	}
	if _, total, err := db.ListAuditEvents(ctx, store.AuditFilter{}); err != nil || total != kept {
		t.Fatalf("%d events left (%v), want %d", total, err, kept)
	}
	// Keeping events for ever deletes nothing.
	forever := NewPruner(RetentionConfig{Store: db, Retention: -1, Now: func() time.Time { return now.Add(10 * 365 * 24 * time.Hour) }})
	if n, err := forever.Prune(ctx); err != nil || n != 0 {
		t.Fatalf("retention for ever: Prune = %d, %v; want 0", n, err)
	}
	forever.Run(ctx) // returns at once: nothing to run
}

// TestPrunerRunStopsWithItsContext: Run prunes at once, again every
// interval, and returns when its context is cancelled.
func TestPrunerRunStopsWithItsContext(t *testing.T) {
	t.Parallel()
	st := &countingStore{}
	passes := make(chan int64, 10)
	p := NewPruner(RetentionConfig{Store: st, Interval: time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		pruned: func(n int64, err error) {
			if err == nil {
				select {
				case passes <- n:
				default:
				}
			}
		}})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	for range 3 {
		select {
		case <-passes:
		case <-time.After(10 * time.Second):
			t.Fatal("no pass")
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	if st.calls() < 3 {
		t.Fatalf("%d deletes, want one per pass", st.calls())
	}
}

type countingStore struct {
	mu sync.Mutex
	n  int
}

func (s *countingStore) DeleteAuditEventsBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return 0, ctx.Err()
}

func (s *countingStore) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}
