package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/testutil/pgtest"
)

// engines lists what every test runs against.
var engines = []string{"sqlite", "postgres"}

// testContext is the test's context with a deadline, so a hung query fails
// the test instead of the whole binary.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// location returns Open's arguments for a fresh, empty database.
func location(t *testing.T, engine string) (databaseURL, sqlitePath string) {
	t.Helper()
	if engine == "postgres" {
		return pgtest.NewDatabase(t), ""
	}
	return "", filepath.Join(t.TempDir(), "state", "dev8.db")
}

func openAt(t *testing.T, databaseURL, sqlitePath string) *store.DB {
	t.Helper()
	db, err := store.Open(testContext(t), databaseURL, sqlitePath)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

// forEachEngine runs fn as a parallel subtest per engine, each with its own
// fresh database.
func forEachEngine(t *testing.T, fn func(t *testing.T, ctx context.Context, db *store.DB)) {
	t.Helper()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			url, path := location(t, engine)
			db := openAt(t, url, path)
			if got := db.Engine(); got != engine {
				t.Fatalf("Engine() = %q, want %q", got, engine)
			}
			fn(t, testContext(t), db)
		})
	}
}

func mustUser(t *testing.T, ctx context.Context, db *store.DB, email string) store.User {
	t.Helper()
	u, err := db.CreateUser(ctx, store.User{Email: email, Name: email, PasswordHash: "$2a$10$notreal"})
	if err != nil {
		t.Fatalf("CreateUser(%q): %v", email, err)
	}
	return u
}

func mustEnv(t *testing.T, ctx context.Context, db *store.DB, e store.Environment) store.Environment {
	t.Helper()
	got, err := db.CreateEnvironment(ctx, e)
	if err != nil {
		t.Fatalf("CreateEnvironment(%q): %v", e.Name, err)
	}
	return got
}

func update(t *testing.T, ctx context.Context, db *store.DB, id string, fn func(*store.Environment)) store.Environment {
	t.Helper()
	e, err := db.UpdateEnvironment(ctx, id, func(e *store.Environment) error { fn(e); return nil })
	if err != nil {
		t.Fatalf("UpdateEnvironment(%s): %v", id, err)
	}
	return e
}

func ptr[T any](v T) *T { return &v }

func checkID(t *testing.T, id, prefix string) {
	t.Helper()
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || len(rest) != 20 || strings.Trim(rest, "abcdefghijklmnopqrstuvwxyz234567") != "" {
		t.Errorf("ID %q: want %q + 20 lower-case base32 characters", id, prefix)
	}
}

func TestOpenRejectsBadArguments(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	for _, tc := range []struct{ name, url, path string }{
		{"nothing", "", ""},
		{"mysql url", "mysql://user:secret@localhost/db", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, err := store.Open(ctx, tc.url, tc.path)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks the URL's password: %v", err)
			}
		})
	}
}

func TestOpenTwiceKeepsDataAndSchema(t *testing.T) {
	t.Parallel()
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			url, path := location(t, engine)

			first, err := store.Open(ctx, url, path)
			if err != nil {
				t.Fatalf("first Open: %v", err)
			}
			u := mustUser(t, ctx, first, "keep@example.com")
			if err := first.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}

			// Migrations already applied must be skipped, not re-run.
			second := openAt(t, url, path)
			if err := second.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			got, err := second.GetUser(ctx, u.ID)
			if err != nil {
				t.Fatalf("GetUser after reopen: %v", err)
			}
			if !reflect.DeepEqual(got, u) {
				t.Errorf("after reopen got %+v, want %+v", got, u)
			}
			// A third Open alongside a live one must not disturb it.
			third := openAt(t, url, path)
			if _, err := third.GetUser(ctx, u.ID); err != nil {
				t.Fatalf("GetUser via third handle: %v", err)
			}
		})
	}
}

func TestSQLiteCreatesParentDirectoryPrivate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a", "b", "dev8.db")
	openAt(t, "", path)
	info, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("parent dir mode %o, want 700", perm)
	}
}

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

func TestAPITokens(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "tok@example.com")
		hash := sha256.Sum256([]byte("secret"))
		expires := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 3600))

		tok, err := db.CreateAPIToken(ctx, store.APIToken{UserID: u.ID, Name: "laptop", Hash: hash[:], ExpiresAt: expires})
		if err != nil {
			t.Fatalf("CreateAPIToken: %v", err)
		}
		checkID(t, tok.ID, "tok_")
		if tok.CreatedAt.IsZero() || !tok.ExpiresAt.Equal(expires.Truncate(time.Microsecond)) {
			t.Errorf("CreatedAt %v / ExpiresAt %v", tok.CreatedAt, tok.ExpiresAt)
		}

		gotTok, gotUser, err := db.GetAPITokenByHash(ctx, hash[:])
		if err != nil {
			t.Fatalf("GetAPITokenByHash: %v", err)
		}
		if !reflect.DeepEqual(gotTok, tok) {
			t.Errorf("token = %+v, want %+v", gotTok, tok)
		}
		if !reflect.DeepEqual(gotUser, u) {
			t.Errorf("user = %+v, want %+v", gotUser, u)
		}

		other := sha256.Sum256([]byte("other"))
		if _, _, err := db.GetAPITokenByHash(ctx, other[:]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown hash error %v, want ErrNotFound", err)
		}
		if _, err := db.CreateAPIToken(ctx, store.APIToken{UserID: u.ID, Hash: hash[:]}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("duplicate hash error %v, want ErrConflict", err)
		}

		// A token without expiry keeps a zero ExpiresAt.
		noExp := sha256.Sum256([]byte("forever"))
		forever, err := db.CreateAPIToken(ctx, store.APIToken{UserID: u.ID, Hash: noExp[:]})
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := db.GetAPITokenByHash(ctx, noExp[:])
		if err != nil || !got.ExpiresAt.IsZero() || got.LastUsedAt != nil || !reflect.DeepEqual(got, forever) {
			t.Errorf("no-expiry token = %+v, %v", got, err)
		}

		used := time.Now().Add(-time.Minute)
		if err := db.TouchAPIToken(ctx, tok.ID, used); err != nil {
			t.Fatalf("TouchAPIToken: %v", err)
		}
		gotTok, _, _ = db.GetAPITokenByHash(ctx, hash[:])
		if gotTok.LastUsedAt == nil || !gotTok.LastUsedAt.Equal(used.Truncate(time.Microsecond)) {
			t.Errorf("LastUsedAt = %v, want %v", gotTok.LastUsedAt, used)
		}
		if err := db.TouchAPIToken(ctx, "tok_missing", used); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TouchAPIToken(missing) error %v, want ErrNotFound", err)
		}
	})
}

// fullEnvironment sets every field, with times that are not UTC and carry
// nanoseconds, to check what survives the round trip.
func fullEnvironment(userID string) store.Environment {
	ist := time.FixedZone("IST", 5*3600+1800)
	return store.Environment{
		UserID:               userID,
		Name:                 "full",
		Status:               store.StatusRunning,
		StatusReason:         "reason",
		Runtime:              "docker",
		CloudRegion:          "eastus",
		RuntimeRef:           "c0ffee",
		TemplateName:         "node",
		BaseImage:            "dev8/node:20",
		InstanceType:         "balanced",
		CPUCores:             4,
		MemoryGB:             8,
		StorageGB:            50,
		EnvironmentVariables: map[string]string{"A": "1", "B": "two words", "Ü": "ñ\"'{}"},
		Ports:                []store.Port{{Port: 3000, Protocol: "http"}, {Port: 22, Protocol: "tcp"}},
		AutoStopMinutes:      30,
		VSCodeURL:            "https://example.com/vscode",
		SSHConnectionString:  "ssh -p 2222 dev8@example.com",
		EstimatedCostPerHour: 0.125,
		TotalCost:            12.3456789,
		RunningSince:         ptr(time.Date(2026, 1, 2, 3, 4, 5, 999999999, ist)),
		LastAccessedAt:       time.Date(2026, 1, 2, 4, 0, 0, 1500, ist),
		StoppedAt:            ptr(time.Date(2025, 12, 31, 23, 59, 59, 1, time.UTC)),
	}
}

func TestEnvironmentRoundTrip(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "rt@example.com")
		for _, tc := range []struct {
			name string
			env  store.Environment
		}{
			{"every field", fullEnvironment(u.ID)},
			{"nil maps, slices and pointers", store.Environment{UserID: u.ID, Name: "minimal"}},
			{"empty map and slice", store.Environment{UserID: u.ID, Name: "empty",
				EnvironmentVariables: map[string]string{}, Ports: []store.Port{}}},
			{"caller-chosen ID", store.Environment{ID: "env_chosen", UserID: u.ID, Name: "chosen"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := time.Now().Add(-time.Second)
				created := mustEnv(t, ctx, db, tc.env)
				if tc.env.ID != "" {
					if created.ID != tc.env.ID {
						t.Errorf("ID %q, want %q", created.ID, tc.env.ID)
					}
				} else {
					checkID(t, created.ID, "env_")
				}
				if created.CreatedAt.Before(before) || !created.UpdatedAt.Equal(created.CreatedAt) {
					t.Errorf("CreatedAt/UpdatedAt not set: %v %v", created.CreatedAt, created.UpdatedAt)
				}
				if tc.env.Status == "" && created.Status != store.StatusCreating {
					t.Errorf("default status %q, want CREATING", created.Status)
				}
				if tc.env.LastAccessedAt.IsZero() && !created.LastAccessedAt.Equal(created.CreatedAt) {
					t.Errorf("LastAccessedAt %v, want CreatedAt %v", created.LastAccessedAt, created.CreatedAt)
				}
				if !tc.env.LastAccessedAt.IsZero() && !created.LastAccessedAt.Equal(tc.env.LastAccessedAt.Truncate(time.Microsecond)) {
					t.Errorf("LastAccessedAt %v, want the given %v", created.LastAccessedAt, tc.env.LastAccessedAt)
				}

				got, err := db.GetEnvironment(ctx, created.ID)
				if err != nil {
					t.Fatalf("GetEnvironment: %v", err)
				}
				if !reflect.DeepEqual(got, created) {
					t.Errorf("read back\n %+v\nwant\n %+v", got, created)
				}
				if (got.EnvironmentVariables == nil) != (tc.env.EnvironmentVariables == nil) ||
					(got.Ports == nil) != (tc.env.Ports == nil) {
					t.Errorf("nil-ness of map/slice changed: %#v %#v", got.EnvironmentVariables, got.Ports)
				}

				// Everything but the store-owned fields survives an update too.
				want := got
				updated := update(t, ctx, db, got.ID, func(e *store.Environment) {})
				want.UpdatedAt = updated.UpdatedAt
				if !reflect.DeepEqual(updated, want) {
					t.Errorf("no-op update changed fields\n %+v\nwant\n %+v", updated, want)
				}
			})
		}
		if _, err := db.GetEnvironment(ctx, "env_missing"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetEnvironment(missing) error %v, want ErrNotFound", err)
		}
	})
}

func TestEnvironmentNameUniquePerUser(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		alice := mustUser(t, ctx, db, "alice@example.com")
		bob := mustUser(t, ctx, db, "bob@example.com")
		first := mustEnv(t, ctx, db, store.Environment{UserID: alice.ID, Name: "web"})

		_, err := db.CreateEnvironment(ctx, store.Environment{UserID: alice.ID, Name: "web"})
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate name error %v, want ErrConflict", err)
		}
		mustEnv(t, ctx, db, store.Environment{UserID: bob.ID, Name: "web"}) // other user: fine
		other := mustEnv(t, ctx, db, store.Environment{UserID: alice.ID, Name: "api"})

		// Renaming onto a live name conflicts, and writes nothing.
		_, err = db.UpdateEnvironment(ctx, other.ID, func(e *store.Environment) error { e.Name = "web"; return nil })
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("rename into duplicate error %v, want ErrConflict", err)
		}
		if got, _ := db.GetEnvironment(ctx, other.ID); got.Name != "api" {
			t.Errorf("failed rename left name %q", got.Name)
		}

		// Soft delete frees the name.
		deletedAt := time.Now()
		deleted := update(t, ctx, db, first.ID, func(e *store.Environment) {
			e.Status = store.StatusDeleting
			e.DeletedAt = &deletedAt
		})
		if deleted.DeletedAt == nil {
			t.Fatal("UpdateEnvironment did not return DeletedAt")
		}
		if _, err := db.GetEnvironment(ctx, first.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetEnvironment(soft-deleted) error %v, want ErrNotFound", err)
		}
		if _, err := db.UpdateEnvironment(ctx, first.ID, func(*store.Environment) error { return nil }); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UpdateEnvironment(soft-deleted) error %v, want ErrNotFound", err)
		}
		again := mustEnv(t, ctx, db, store.Environment{UserID: alice.ID, Name: "web"})
		if again.ID == first.ID {
			t.Error("re-created environment reused the deleted one's ID")
		}
		// And a second soft delete of the same name is fine too.
		update(t, ctx, db, again.ID, func(e *store.Environment) { e.DeletedAt = &deletedAt })
		mustEnv(t, ctx, db, store.Environment{UserID: alice.ID, Name: "web"})
	})
}

func TestListEnvironments(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		alice := mustUser(t, ctx, db, "alice@example.com")
		bob := mustUser(t, ctx, db, "bob@example.com")
		statuses := []store.Status{store.StatusRunning, store.StatusStopped, store.StatusError}
		var all []store.Environment // newest first, as List returns them
		for i := range 12 {
			owner := alice
			if i%3 == 2 {
				owner = bob
			}
			e := mustEnv(t, ctx, db, store.Environment{UserID: owner.ID, Name: fmt.Sprintf("env-%02d", i), Status: statuses[i%len(statuses)]})
			all = append([]store.Environment{e}, all...)
		}
		gone := mustEnv(t, ctx, db, store.Environment{UserID: alice.ID, Name: "gone", Status: store.StatusRunning})
		update(t, ctx, db, gone.ID, func(e *store.Environment) { e.DeletedAt = ptr(time.Now()) })

		// CreatedAt can tie within a microsecond; the order is then by ID.
		slices.SortStableFunc(all, func(a, b store.Environment) int {
			if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(b.ID, a.ID)
		})
		match := func(f store.EnvironmentFilter) []store.Environment {
			var out []store.Environment
			for _, e := range all {
				if (f.UserID == "" || e.UserID == f.UserID) && (len(f.Statuses) == 0 || slices.Contains(f.Statuses, e.Status)) {
					out = append(out, e)
				}
			}
			return out
		}

		for _, tc := range []struct {
			name   string
			filter store.EnvironmentFilter
		}{
			{"everything", store.EnvironmentFilter{}},
			{"one user", store.EnvironmentFilter{UserID: alice.ID}},
			{"other user", store.EnvironmentFilter{UserID: bob.ID}},
			{"one status", store.EnvironmentFilter{Statuses: []store.Status{store.StatusRunning}}},
			{"two statuses for a user", store.EnvironmentFilter{UserID: alice.ID, Statuses: []store.Status{store.StatusRunning, store.StatusError}}},
			{"no match", store.EnvironmentFilter{Statuses: []store.Status{store.StatusCreating}}},
			{"unknown user", store.EnvironmentFilter{UserID: "usr_nobody"}},
			{"first page", store.EnvironmentFilter{Limit: 5}},
			{"middle page", store.EnvironmentFilter{Limit: 5, Offset: 5}},
			{"last page", store.EnvironmentFilter{Limit: 5, Offset: 10}},
			{"offset without limit", store.EnvironmentFilter{Offset: 7}},
			{"past the end", store.EnvironmentFilter{Limit: 5, Offset: 50}},
			{"filtered page", store.EnvironmentFilter{UserID: alice.ID, Limit: 3, Offset: 2}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				matching := match(tc.filter)
				want := matching[min(tc.filter.Offset, len(matching)):]
				if tc.filter.Limit > 0 && len(want) > tc.filter.Limit {
					want = want[:tc.filter.Limit]
				}
				got, total, err := db.ListEnvironments(ctx, tc.filter)
				if err != nil {
					t.Fatalf("ListEnvironments: %v", err)
				}
				if total != len(matching) {
					t.Errorf("total %d, want %d", total, len(matching))
				}
				if len(got) != len(want) {
					t.Fatalf("got %d environments, want %d", len(got), len(want))
				}
				for i := range got {
					if !reflect.DeepEqual(got[i], want[i]) {
						t.Errorf("[%d] = %s (%s), want %s (%s)", i, got[i].Name, got[i].ID, want[i].Name, want[i].ID)
					}
				}
			})
		}
	})
}

func TestUpdateEnvironmentRollsBackOnError(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "rb@example.com")
		orig := mustEnv(t, ctx, db, fullEnvironment(u.ID))

		errVeto := errors.New("veto")
		_, err := db.UpdateEnvironment(ctx, orig.ID, func(e *store.Environment) error {
			e.Name = "changed"
			e.TotalCost = 999
			e.EnvironmentVariables["NEW"] = "x"
			return fmt.Errorf("lifecycle says no: %w", errVeto)
		})
		if !errors.Is(err, errVeto) {
			t.Fatalf("error %v, want one wrapping errVeto", err)
		}
		got, err := db.GetEnvironment(ctx, orig.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, orig) {
			t.Errorf("after failed update\n %+v\nwant unchanged\n %+v", got, orig)
		}

		for _, tc := range []struct {
			name string
			fn   func(*store.Environment)
		}{
			{"ID", func(e *store.Environment) { e.ID = "env_other" }},
			{"UserID", func(e *store.Environment) { e.UserID = "usr_other" }},
			{"CreatedAt", func(e *store.Environment) { e.CreatedAt = e.CreatedAt.Add(time.Hour) }},
		} {
			_, err := db.UpdateEnvironment(ctx, orig.ID, func(e *store.Environment) error { tc.fn(e); return nil })
			if err == nil {
				t.Errorf("changing %s: no error", tc.name)
			}
		}
		if got, _ := db.GetEnvironment(ctx, orig.ID); !reflect.DeepEqual(got, orig) {
			t.Errorf("rejected updates changed the row: %+v", got)
		}

		if _, err := db.UpdateEnvironment(ctx, "env_missing", func(*store.Environment) error {
			t.Error("fn called for a missing environment")
			return nil
		}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing environment error %v, want ErrNotFound", err)
		}
	})
}

func TestUpdateEnvironmentChangesFields(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "upd@example.com")
		orig := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "before"})
		next := fullEnvironment(u.ID)
		updated := update(t, ctx, db, orig.ID, func(e *store.Environment) {
			id, created := e.ID, e.CreatedAt
			*e = next
			e.ID, e.CreatedAt = id, created
		})
		if updated.UpdatedAt.Before(orig.UpdatedAt) {
			t.Errorf("UpdatedAt went back: %v < %v", updated.UpdatedAt, orig.UpdatedAt)
		}
		got, err := db.GetEnvironment(ctx, orig.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, updated) {
			t.Errorf("read back\n %+v\nwant\n %+v", got, updated)
		}
		if got.Name != "full" || got.Ports[0].Port != 3000 || *got.RunningSince != next.RunningSince.UTC().Truncate(time.Microsecond) {
			t.Errorf("fields not updated: %+v", got)
		}
		// Clearing pointers, maps and slices clears them.
		cleared := update(t, ctx, db, orig.ID, func(e *store.Environment) {
			e.RunningSince, e.StoppedAt, e.EnvironmentVariables, e.Ports = nil, nil, nil, nil
		})
		got, _ = db.GetEnvironment(ctx, orig.ID)
		if !reflect.DeepEqual(got, cleared) || got.RunningSince != nil || got.EnvironmentVariables != nil || got.Ports != nil {
			t.Errorf("cleared fields read back as %+v", got)
		}
	})
}

func TestUpdateEnvironmentConcurrent(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "conc@example.com")
		e := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "counter"})
		const n = 20
		var wg sync.WaitGroup
		errs := make(chan error, n)
		start := make(chan struct{})
		for range n {
			wg.Go(func() {
				<-start
				_, err := db.UpdateEnvironment(ctx, e.ID, func(e *store.Environment) error {
					e.TotalCost++
					return nil
				})
				errs <- err
			})
		}
		// Readers running alongside must neither fail nor block the writers.
		for range 5 {
			wg.Go(func() {
				<-start
				for range 20 {
					if _, err := db.GetEnvironment(ctx, e.ID); err != nil {
						errs <- fmt.Errorf("concurrent read: %w", err)
						return
					}
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		got, err := db.GetEnvironment(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.TotalCost != n {
			t.Errorf("TotalCost = %v after %d concurrent increments, want %d", got.TotalCost, n, n)
		}
	})
}

func TestTouchEnvironment(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "touch@example.com")
		base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		e := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "t", LastAccessedAt: base})

		steps := []struct {
			name string
			at   time.Time
			want time.Time
		}{
			{"later moves it", base.Add(time.Minute), base.Add(time.Minute)},
			{"earlier does not", base.Add(30 * time.Second), base.Add(time.Minute)},
			{"same does not", base.Add(time.Minute), base.Add(time.Minute)},
			{"a microsecond later does", base.Add(time.Minute + time.Microsecond), base.Add(time.Minute + time.Microsecond)},
			{"other zone, later", base.Add(2 * time.Hour).In(time.FixedZone("W", -5*3600)), base.Add(2 * time.Hour)},
		}
		for _, s := range steps {
			if err := db.TouchEnvironment(ctx, e.ID, s.at); err != nil {
				t.Fatalf("%s: TouchEnvironment: %v", s.name, err)
			}
			got, err := db.GetEnvironment(ctx, e.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !got.LastAccessedAt.Equal(s.want) {
				t.Errorf("%s: LastAccessedAt = %v, want %v", s.name, got.LastAccessedAt, s.want)
			}
		}
		if err := db.TouchEnvironment(ctx, "env_missing", base); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing environment error %v, want ErrNotFound", err)
		}
		update(t, ctx, db, e.ID, func(e *store.Environment) { e.DeletedAt = ptr(time.Now()) })
		if err := db.TouchEnvironment(ctx, e.ID, base.Add(24*time.Hour)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("soft-deleted environment error %v, want ErrNotFound", err)
		}
	})
}

// TestTouchEnvironmentConcurrent: touches written together (one batch) still
// answer each caller for its own environment, and the latest time wins.
func TestTouchEnvironmentConcurrent(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "touches@example.com")
		base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		const envs, perEnv = 8, 25
		ids := make([]string, envs)
		for i := range ids {
			ids[i] = mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: fmt.Sprintf("c%d", i), LastAccessedAt: base}).ID
		}
		gone := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "gone", LastAccessedAt: base})
		update(t, ctx, db, gone.ID, func(e *store.Environment) { e.DeletedAt = ptr(time.Now()) })

		var wg sync.WaitGroup
		errs := make(chan error, envs*perEnv+2*perEnv)
		for i, id := range ids {
			for k := range perEnv {
				wg.Go(func() {
					// Env i's latest touch is base + i minutes + perEnv-1 seconds.
					at := base.Add(time.Duration(i)*time.Minute + time.Duration(k)*time.Second)
					if err := db.TouchEnvironment(ctx, id, at); err != nil {
						errs <- fmt.Errorf("touch %s: %w", id, err)
					}
				})
			}
		}
		for range perEnv {
			for _, id := range []string{"env_missing", gone.ID} {
				wg.Go(func() {
					if err := db.TouchEnvironment(ctx, id, base.Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
						errs <- fmt.Errorf("touch of %s: %v, want ErrNotFound", id, err)
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for i, id := range ids {
			got, err := db.GetEnvironment(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			want := base.Add(time.Duration(i)*time.Minute + (perEnv-1)*time.Second)
			if !got.LastAccessedAt.Equal(want) {
				t.Errorf("env %d: LastAccessedAt = %v, want %v", i, got.LastAccessedAt, want)
			}
		}
		// A caller that gives up still has its touch written.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_ = db.TouchEnvironment(cctx, ids[0], base.Add(48*time.Hour))
		if err := db.TouchEnvironment(ctx, ids[1], base); err != nil { // waits for any batch in flight
			t.Fatal(err)
		}
		got, err := db.GetEnvironment(ctx, ids[0])
		if err != nil {
			t.Fatal(err)
		}
		if !got.LastAccessedAt.Equal(base.Add(48 * time.Hour)) {
			t.Errorf("a cancelled caller's touch was lost: %v", got.LastAccessedAt)
		}
	})
}

func TestListIdleCandidates(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "idle@example.com")
		cutoff := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		old := cutoff.Add(-time.Hour)
		cases := []struct {
			name     string
			status   store.Status
			autoStop int
			accessed time.Time
			deleted  bool
			want     bool
		}{
			{"idle-oldest", store.StatusRunning, 30, old.Add(-time.Hour), false, true},
			{"idle", store.StatusRunning, 30, old, false, true},
			{"just-before-cutoff", store.StatusRunning, 5, cutoff.Add(-time.Microsecond), false, true},
			{"at-cutoff", store.StatusRunning, 30, cutoff, false, false},
			{"recent", store.StatusRunning, 30, cutoff.Add(time.Minute), false, false},
			{"auto-stop-off", store.StatusRunning, 0, old, false, false},
			{"stopped", store.StatusStopped, 30, old, false, false},
			{"starting", store.StatusStarting, 30, old, false, false},
			{"deleted", store.StatusRunning, 30, old, true, false},
		}
		var want []string
		for _, c := range cases {
			e := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: c.name, Status: c.status,
				AutoStopMinutes: c.autoStop, LastAccessedAt: c.accessed})
			if c.deleted {
				update(t, ctx, db, e.ID, func(e *store.Environment) { e.DeletedAt = ptr(time.Now()) })
			}
			if c.want {
				want = append(want, c.name)
			}
		}
		got, err := db.ListIdleCandidates(ctx, cutoff)
		if err != nil {
			t.Fatalf("ListIdleCandidates: %v", err)
		}
		var names []string
		for _, e := range got {
			names = append(names, e.Name)
		}
		if !slices.Equal(names, want) {
			t.Errorf("idle candidates %v, want %v (least recently accessed first)", names, want)
		}
	})
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		node := store.Template{
			Name: "node", DisplayName: "Node.js", Description: "Node 20", BaseImage: "dev8/node:20",
			DefaultCPU: 2, DefaultMemory: 4, DefaultStorage: 20, Category: "language",
			Tags: []string{"javascript", "typescript"}, Icon: "node.svg", IsPopular: true, IsActive: true,
			DefaultPorts:   []store.Port{{Port: 3000, Protocol: "http"}},
			DefaultEnvVars: map[string]string{"NODE_ENV": "development"},
			Extensions:     []string{"dbaeumer.vscode-eslint"},
		}
		templates := []store.Template{
			node,
			{Name: "python", DisplayName: "Python", IsActive: true},
			{Name: "go", DisplayName: "Go", IsActive: true, IsPopular: true},
			{Name: "retired", DisplayName: "Old", IsActive: false, IsPopular: true},
			{Name: "alpine", DisplayName: "Alpine", IsActive: true},
		}
		for _, tpl := range templates {
			if err := db.EnsureTemplate(ctx, tpl); err != nil {
				t.Fatalf("EnsureTemplate(%s): %v", tpl.Name, err)
			}
		}
		// Ensuring again with different content changes nothing.
		changed := node
		changed.DisplayName, changed.IsPopular, changed.Tags = "Overwritten", false, nil
		if err := db.EnsureTemplate(ctx, changed); err != nil {
			t.Fatalf("EnsureTemplate again: %v", err)
		}

		got, err := db.GetTemplate(ctx, "node")
		if err != nil {
			t.Fatalf("GetTemplate: %v", err)
		}
		checkID(t, got.ID, "tpl_")
		want := node
		want.ID, want.CreatedAt, want.UpdatedAt = got.ID, got.CreatedAt, got.UpdatedAt
		if got.CreatedAt.IsZero() || !reflect.DeepEqual(got, want) {
			t.Errorf("GetTemplate\n %+v\nwant\n %+v", got, want)
		}
		plain, err := db.GetTemplate(ctx, "python")
		if err != nil || plain.Tags != nil || plain.DefaultEnvVars != nil || plain.IsPopular {
			t.Errorf("GetTemplate(python) = %+v, %v", plain, err)
		}
		for _, name := range []string{"retired", "missing"} {
			if _, err := db.GetTemplate(ctx, name); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("GetTemplate(%s) error %v, want ErrNotFound", name, err)
			}
		}

		list, err := db.ListTemplates(ctx)
		if err != nil {
			t.Fatalf("ListTemplates: %v", err)
		}
		var names []string
		for _, tpl := range list {
			names = append(names, tpl.Name)
		}
		if wantNames := []string{"go", "node", "alpine", "python"}; !slices.Equal(names, wantNames) {
			t.Errorf("ListTemplates order %v, want %v", names, wantNames)
		}
	})
}

func TestInstanceTypes(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		types := []store.InstanceType{
			{Name: "memory", DisplayName: "Memory", CPUCores: 2, MemoryGB: 16, StorageGB: 40, SortOrder: 4},
			{Name: "lightweight", DisplayName: "Light", Description: "small", CPUCores: 1, MemoryGB: 2, StorageGB: 10, SortOrder: 1},
			{Name: "compute", DisplayName: "Compute", CPUCores: 8, MemoryGB: 16, StorageGB: 40, SortOrder: 3},
			{Name: "balanced", DisplayName: "Balanced", CPUCores: 2, MemoryGB: 4, StorageGB: 20, SortOrder: 2},
		}
		for _, it := range types {
			if err := db.EnsureInstanceType(ctx, it); err != nil {
				t.Fatalf("EnsureInstanceType(%s): %v", it.Name, err)
			}
		}
		if err := db.EnsureInstanceType(ctx, store.InstanceType{Name: "balanced", CPUCores: 64, SortOrder: 0}); err != nil {
			t.Fatal(err)
		}
		got, err := db.GetInstanceType(ctx, "balanced")
		if err != nil || !reflect.DeepEqual(got, types[3]) {
			t.Errorf("GetInstanceType = %+v, %v; want the original %+v", got, err, types[3])
		}
		if _, err := db.GetInstanceType(ctx, "huge"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetInstanceType(missing) error %v, want ErrNotFound", err)
		}
		list, err := db.ListInstanceTypes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []store.InstanceType{types[1], types[3], types[2], types[0]}
		if !reflect.DeepEqual(list, want) {
			t.Errorf("ListInstanceTypes = %+v, want %+v", list, want)
		}
	})
}

func TestResourceUsage(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "usage@example.com")
		e := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "busy"})
		other := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "quiet"})
		base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

		// More rows than one INSERT batch holds, inserted newest first to
		// show the list orders by time, not by insertion.
		const n = 1234
		var rows []store.ResourceUsage
		for i := n - 1; i >= 0; i-- {
			rows = append(rows, store.ResourceUsage{
				EnvironmentID: e.ID, Timestamp: base.Add(time.Duration(i) * time.Minute).Add(789 * time.Nanosecond),
				CPUUsagePercent: float64(i) / 10, MemoryUsageMB: int64(i) * 1 << 20, DiskUsageMB: 5000 + int64(i),
				NetworkInMB: 1.5, NetworkOutMB: 2.25, CostAmount: 0.001, BillingPeriod: "2026-11",
			})
		}
		rows = append(rows, store.ResourceUsage{EnvironmentID: other.ID, Timestamp: base, BillingPeriod: "2026-11"})
		if err := db.InsertResourceUsage(ctx, rows); err != nil {
			t.Fatalf("InsertResourceUsage: %v", err)
		}
		if err := db.InsertResourceUsage(ctx, nil); err != nil {
			t.Fatalf("InsertResourceUsage(nil): %v", err)
		}

		all, err := db.ListResourceUsage(ctx, e.ID, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != n {
			t.Fatalf("listed %d samples, want %d", len(all), n)
		}
		first := all[0]
		if first.ID == 0 || first.EnvironmentID != e.ID || !first.Timestamp.Equal(base) || first.CPUUsagePercent != 0 ||
			first.DiskUsageMB != 5000 || first.NetworkInMB != 1.5 || first.NetworkOutMB != 2.25 || first.CostAmount != 0.001 ||
			first.BillingPeriod != "2026-11" || first.Timestamp.Location() != time.UTC {
			t.Errorf("first sample %+v", first)
		}
		if last := all[n-1]; last.MemoryUsageMB != int64(n-1)<<20 || !last.Timestamp.Equal(base.Add((n-1)*time.Minute)) {
			t.Errorf("last sample %+v", last)
		}
		if !slices.IsSortedFunc(all, func(a, b store.ResourceUsage) int { return a.Timestamp.Compare(b.Timestamp) }) {
			t.Error("samples not oldest first")
		}

		since := base.Add(1000 * time.Minute)
		page, err := db.ListResourceUsage(ctx, e.ID, since, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) != 10 || !page[0].Timestamp.Equal(since) || !page[9].Timestamp.Equal(since.Add(9*time.Minute)) {
			t.Errorf("since+limit page: %d rows, first %v", len(page), page[0].Timestamp)
		}

		deleted, err := db.DeleteResourceUsageBefore(ctx, since)
		if err != nil {
			t.Fatal(err)
		}
		if deleted != 1000+1 { // 1000 of e's and the other environment's one
			t.Errorf("deleted %d, want 1001", deleted)
		}
		left, _ := db.ListResourceUsage(ctx, e.ID, time.Time{}, 0)
		if len(left) != n-1000 || !left[0].Timestamp.Equal(since) {
			t.Errorf("after retention %d rows left, first %v", len(left), left[0].Timestamp)
		}
		if none, _ := db.ListResourceUsage(ctx, other.ID, time.Time{}, 0); len(none) != 0 {
			t.Errorf("other environment still has %d rows", len(none))
		}

		if err := db.InsertResourceUsage(ctx, []store.ResourceUsage{{EnvironmentID: "env_missing"}}); err == nil {
			t.Error("usage for a missing environment was accepted")
		}
	})
}

func TestActivity(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		u := mustUser(t, ctx, db, "act@example.com")
		e := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "a"})
		other := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "b"})
		base := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
		events := []store.Activity{
			{EnvironmentID: e.ID, UserID: u.ID, Kind: "created", CreatedAt: base},
			{EnvironmentID: e.ID, UserID: u.ID, Kind: "started", Detail: "docker", CreatedAt: base.Add(time.Second)},
			{EnvironmentID: e.ID, Kind: "idle_stopped", Detail: "idle 30m", CreatedAt: base.Add(time.Hour)},
			{EnvironmentID: other.ID, UserID: u.ID, Kind: "created", CreatedAt: base},
		}
		for _, a := range events {
			if err := db.InsertActivity(ctx, a); err != nil {
				t.Fatalf("InsertActivity(%s): %v", a.Kind, err)
			}
		}
		if err := db.InsertActivity(ctx, store.Activity{EnvironmentID: e.ID, Kind: "ping"}); err != nil {
			t.Fatal(err)
		}

		got, err := db.ListActivity(ctx, e.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, a := range got {
			kinds = append(kinds, a.Kind)
		}
		if want := []string{"ping", "idle_stopped", "started", "created"}; !slices.Equal(kinds, want) {
			t.Fatalf("kinds %v, want %v (newest first)", kinds, want)
		}
		if time.Since(got[0].CreatedAt) > time.Minute {
			t.Errorf("zero CreatedAt not set to now: %v", got[0].CreatedAt)
		}
		idle := got[1]
		if idle.ID == 0 || idle.UserID != "" || idle.Detail != "idle 30m" || !idle.CreatedAt.Equal(base.Add(time.Hour)) || idle.EnvironmentID != e.ID {
			t.Errorf("idle event %+v", idle)
		}
		if got[2].UserID != u.ID || got[2].Detail != "docker" {
			t.Errorf("started event %+v", got[2])
		}
		limited, err := db.ListActivity(ctx, e.ID, 2)
		if err != nil || len(limited) != 2 || limited[0].Kind != "ping" {
			t.Errorf("limited list %+v, %v", limited, err)
		}
	})
}

func TestInstallationSecret(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		const n = 8
		got := make([][]byte, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := db.InstallationSecret(ctx, "agent-token-key", 32)
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = v
			}()
		}
		wg.Wait()
		for i := range n {
			if len(got[i]) != 32 || !bytes.Equal(got[i], got[0]) {
				t.Fatalf("concurrent first reads disagree: %x vs %x", got[i], got[0])
			}
		}
		other, err := db.InstallationSecret(ctx, "other", 16)
		if err != nil || len(other) != 16 || bytes.Equal(other, got[0][:16]) {
			t.Fatalf("second secret = %x, %v", other, err)
		}
	})
}
