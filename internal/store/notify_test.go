package store_test

import (
	"context"
	"testing"
	"time"

	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/pgtest"
	"dev8.dev/dev8/internal/testutil/wait"
)

// TestNotifyReachesOtherReplicas: what one store handle sends, every
// listener on the same PostgreSQL database hears, in order; another
// database's listeners hear nothing.
func TestNotifyReachesOtherReplicas(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	ctx := wait.Context(t, time.Minute)
	a, b := openAt(t, url, ""), openAt(t, url, "")
	other := openAt(t, pgtest.NewDatabase(t), "")

	listen := func(db *store.DB) (<-chan string, func()) {
		heard := make(chan string, 16)
		ready := make(chan struct{})
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- db.Listen(lctx, "dev8_test", func() { close(ready) }, func(p string) { heard <- p }) }()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("Listen: %v", err)
		}
		return heard, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Listen returned %v after its context ended, want nil", err)
			}
		}
	}
	heardB, stopB := listen(b)
	defer stopB()
	heardOther, stopOther := listen(other)
	defer stopOther()
	for _, p := range []string{"one", "two", `{"id":"env_1"}`} {
		if err := a.Notify(ctx, "dev8_test", p); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"one", "two", `{"id":"env_1"}`} {
		select {
		case got := <-heardB:
			if got != want {
				t.Fatalf("heard %q, want %q", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("b never heard %q", want)
		}
	}
	// A marker sent on the other database after a's payloads: when it
	// arrives, a's would have too, had they crossed databases.
	if err := other.Notify(ctx, "dev8_test", "marker"); err != nil {
		t.Fatal(err)
	}
	if got := <-heardOther; got != "marker" {
		t.Fatalf("another database's listener heard %q", got)
	}
}

// TestNotifyOnSQLite: a server alone sends to no one and hears nothing,
// without error.
func TestNotifyOnSQLite(t *testing.T) {
	t.Parallel()
	_, path := location(t, "sqlite")
	db := openAt(t, "", path)
	ctx, cancel := context.WithCancel(wait.Context(t, time.Minute))
	if err := db.Notify(ctx, "dev8_test", "x"); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.Listen(ctx, "dev8_test", func() { close(ready) }, func(p string) { t.Errorf("heard %q on SQLite", p) })
	}()
	<-ready
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Listen = %v, want nil", err)
	}
}
