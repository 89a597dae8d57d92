package replicaevents_test

import (
	"context"
	"testing"
	"time"

	"dev8.dev/dev8/internal/replicaevents"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/pgtest"
	"dev8.dev/dev8/internal/testutil/wait"
)

type published chan store.Environment

func (p published) PublishFromReplica(env store.Environment) { p <- env }

// replica runs a Bus over its own store handle on url, as a replica
// does, and returns it with what it published.
func replica(t *testing.T, ctx context.Context, url, name string) (*store.DB, *replicaevents.Bus, published) {
	t.Helper()
	db, err := store.Open(ctx, url, "")
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{}, 1)
	bus := replicaevents.New(replicaevents.Config{Store: db, Origin: name, Ready: func() {
		select {
		case ready <- struct{}{}:
		default:
		}
	}})
	out := make(published, 16)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- bus.Run(rctx, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		db.Close()
	})
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatal("the bus never listened")
	}
	return db, bus, out
}

func next(t *testing.T, ctx context.Context, p published) store.Environment {
	t.Helper()
	select {
	case env := <-p:
		return env
	case <-ctx.Done():
		t.Fatal("nothing published")
		return store.Environment{}
	}
}

// TestChangesReachOtherReplicas: a change one replica announces is
// published by the others as the store has it, and not again by the one
// that made it; a deletion arrives as one, with its owner.
func TestChangesReachOtherReplicas(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, time.Minute)
	url := pgtest.NewDatabase(t)
	dbA, busA, pubA := replica(t, ctx, url, "rep_a")
	_, busB, pubB := replica(t, ctx, url, "rep_b")
	_, _, pubC := replica(t, ctx, url, "rep_c")

	user, err := dbA.CreateUser(ctx, store.User{Email: "ada@example.com", Name: "Ada"})
	if err != nil {
		t.Fatal(err)
	}
	env, err := dbA.CreateEnvironment(ctx, store.Environment{UserID: user.ID, Name: "web", Status: store.StatusCreating})
	if err != nil {
		t.Fatal(err)
	}
	busA.Announce(env)
	for _, p := range []published{pubB, pubC} {
		got := next(t, ctx, p)
		if got.ID != env.ID || got.UserID != user.ID || got.Status != store.StatusCreating || got.DeletedAt != nil {
			t.Fatalf("published %+v, want %s CREATING of %s", got, env.ID, user.ID)
		}
	}
	env, err = dbA.UpdateEnvironment(ctx, env.ID, func(e *store.Environment) error {
		now := time.Now().UTC()
		e.DeletedAt = &now
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	busA.Announce(env)
	for _, p := range []published{pubB, pubC} {
		if got := next(t, ctx, p); got.ID != env.ID || got.UserID != user.ID || got.DeletedAt == nil {
			t.Fatalf("published %+v, want %s deleted, of %s", got, env.ID, user.ID)
		}
	}
	// An environment announced as changed but gone by the time it is read
	// is a deletion too.
	busA.Announce(store.Environment{ID: "env_gone", UserID: user.ID})
	if got := next(t, ctx, pubB); got.ID != "env_gone" || got.DeletedAt == nil {
		t.Fatalf("published %+v, want env_gone deleted", got)
	}
	// Replica a hears its own notes and b's in order: the first it
	// publishes is b's, sent after all of a's.
	busB.Announce(store.Environment{ID: "env_from_b", UserID: user.ID})
	if got := next(t, ctx, pubA); got.ID != "env_from_b" {
		t.Fatalf("replica a published %s first: its own change again", got.ID)
	}
}
