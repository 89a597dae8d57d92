package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/store"
)

func TestCreateUser(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		before := time.Now().Add(-time.Second)
		first := mustUser(t, ctx, db, "First@Example.COM")
		second := mustUser(t, ctx, db, "second@example.com")

		checkID(t, first.ID, "usr_")
		if first.Role != store.RoleAdmin {
			t.Errorf("first user role %q, want admin", first.Role)
		}
		if second.Role != store.RoleMember {
			t.Errorf("second user role %q, want member", second.Role)
		}
		if first.Email != "first@example.com" {
			t.Errorf("email %q, want lower-cased", first.Email)
		}
		if first.CreatedAt.Before(before) || !first.UpdatedAt.Equal(first.CreatedAt) || first.CreatedAt.Location() != time.UTC {
			t.Errorf("timestamps %v / %v not set to now in UTC", first.CreatedAt, first.UpdatedAt)
		}

		// A role the caller asks for is ignored: only the first user is admin.
		third, err := db.CreateUser(ctx, store.User{Email: "third@example.com", Role: store.RoleAdmin})
		if err != nil {
			t.Fatal(err)
		}
		if third.Role != store.RoleMember {
			t.Errorf("third user role %q, want member", third.Role)
		}

		for _, email := range []string{"first@example.com", "FIRST@EXAMPLE.COM", "First@Example.com"} {
			got, err := db.GetUserByEmail(ctx, email)
			if err != nil {
				t.Fatalf("GetUserByEmail(%q): %v", email, err)
			}
			if !reflect.DeepEqual(got, first) {
				t.Errorf("GetUserByEmail(%q) = %+v, want %+v", email, got, first)
			}
		}
		got, err := db.GetUser(ctx, second.ID)
		if err != nil || !reflect.DeepEqual(got, second) {
			t.Errorf("GetUser = %+v, %v; want %+v", got, err, second)
		}
		if _, err := db.GetUser(ctx, "usr_missing"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetUser(missing) error %v, want ErrNotFound", err)
		}
		if _, err := db.GetUserByEmail(ctx, "nobody@example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetUserByEmail(missing) error %v, want ErrNotFound", err)
		}
	})
}

func TestCreateUserDuplicateEmail(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		mustUser(t, ctx, db, "dup@example.com")
		for _, email := range []string{"dup@example.com", "DUP@example.com", "Dup@Example.Com"} {
			_, err := db.CreateUser(ctx, store.User{Email: email, PasswordHash: "hash-must-not-leak"})
			if !errors.Is(err, store.ErrConflict) {
				t.Errorf("CreateUser(%q) error %v, want ErrConflict", email, err)
				continue
			}
			if strings.Contains(err.Error(), "hash-must-not-leak") || strings.Contains(strings.ToLower(err.Error()), "dup@") {
				t.Errorf("conflict error leaks values: %v", err)
			}
			if !strings.Contains(err.Error(), "email") {
				t.Errorf("conflict error %q does not say which constraint", err)
			}
		}
	})
}

func TestCreateUserConcurrentSignupsOneAdmin(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		const n = 10
		// Open n connections first: otherwise the signups queue behind
		// connection setup and run one after another, and a missing lock
		// would go unnoticed.
		var wg sync.WaitGroup
		for range 3 {
			for range n {
				wg.Go(func() { db.ListEnvironments(ctx, store.EnvironmentFilter{}) })
			}
			wg.Wait()
		}

		users := make([]store.User, n)
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				users[i], errs[i] = db.CreateUser(ctx, store.User{Email: fmt.Sprintf("racer%d@example.com", i)})
			})
		}
		close(start)
		wg.Wait()
		admins := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("signup %d: %v", i, errs[i])
			}
			if users[i].Role == store.RoleAdmin {
				admins++
			}
		}
		if admins != 1 {
			t.Errorf("%d admins among %d concurrent signups, want exactly 1", admins, n)
		}
	})
}
