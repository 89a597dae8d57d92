package lifecycle

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"dev8.dev/dev8/internal/store"
)

// fakePolicy answers Admit with its fields and records what it was asked.
type fakePolicy struct {
	mu     sync.Mutex
	limits store.EnvironmentLimits
	err    error
	asked  []bool // addsCompute of each call
}

func (p *fakePolicy) Admit(_ context.Context, ownerID string, addsCompute bool) (store.EnvironmentLimits, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = append(p.asked, addsCompute)
	l := p.limits
	l.UserID = ownerID
	return l, p.err
}

func (p *fakePolicy) calls() []bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]bool(nil), p.asked...)
}

// The quota policy given at construction is asked before anything is
// written, and the store enforces the limits it returns.
func TestQuotaPolicy(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	db, user := seededStore(t, ctx)
	policy := &fakePolicy{limits: store.EnvironmentLimits{MaxEnvironments: 2, MaxActive: 1}}
	// Never run: requests are recorded and queued, nothing provisions.
	m := New(Config{Store: db, Runtime: newMemRuntime(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Quota: policy})
	create := func(name string) (store.Environment, error) {
		return m.Create(ctx, CreateParams{UserID: user.ID, Name: name, Template: "nodejs"})
	}

	// A refusal leaves no trace.
	refused := errors.New("budget spent")
	policy.err = refused
	if _, err := create("refused"); !errors.Is(err, refused) {
		t.Fatalf("create refused by the policy: %v", err)
	}
	if _, n, err := db.ListEnvironments(ctx, store.EnvironmentFilter{UserID: user.ID}); err != nil || n != 0 {
		t.Fatalf("after a refusal: %d environments, %v", n, err)
	}
	policy.err = nil

	first, err := create("first")
	if err != nil {
		t.Fatal(err)
	}
	var qe *store.QuotaExceededError
	if _, err := create("second"); !errors.As(err, &qe) || qe.Limit != "running environments" {
		t.Fatalf("second while the first is creating: %v", err)
	}
	if _, err := db.UpdateEnvironment(ctx, first.ID, func(e *store.Environment) error { e.Status = store.StatusStopped; return nil }); err != nil {
		t.Fatal(err)
	}
	second, err := create("second")
	if err != nil {
		t.Fatal(err)
	}
	// The second holds the one running slot: starting the first is refused.
	if _, err := m.Start(ctx, first.ID); !errors.As(err, &qe) || qe.Limit != "running environments" {
		t.Fatalf("start over the limit: %v", err)
	}
	// Starting one that already counts as running adds no compute.
	if _, err := m.Start(ctx, second.ID); err != nil {
		t.Fatalf("start of a creating environment: %v", err)
	}
	if got, want := policy.calls(), []bool{true, true, true, true, true, false}; !slices.Equal(got, want) {
		t.Errorf("policy asked with addsCompute %v, want %v", got, want)
	}
	// A refused start changes nothing.
	policy.err = refused
	if _, err := m.Start(ctx, first.ID); !errors.Is(err, refused) {
		t.Fatalf("start refused by the policy: %v", err)
	}
	if e, err := db.GetEnvironment(ctx, first.ID); err != nil || e.Status != store.StatusStopped {
		t.Errorf("after a refused start: %s, %v", e.Status, err)
	}
}
