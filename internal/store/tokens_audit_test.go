package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/store"
)

func TestListAndDeleteAPITokens(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		ada := mustUser(t, ctx, db, "ada@example.com")
		bob := mustUser(t, ctx, db, "bob@example.com")
		mk := func(u store.User, name, secret string) store.APIToken {
			t.Helper()
			h := sha256.Sum256([]byte(secret))
			tok, err := db.CreateAPIToken(ctx, store.APIToken{UserID: u.ID, Name: name, Hash: h[:], ExpiresAt: time.Now().Add(time.Hour)})
			if err != nil {
				t.Fatalf("CreateAPIToken(%s, %q): %v", u.Email, name, err)
			}
			return tok
		}
		login1 := mk(ada, "login", "s1")
		login2 := mk(ada, "login", "s2") // login tokens share a name
		ci := mk(ada, "ci", "s3")
		bobCI := mk(bob, "ci", "s4") // names are unique per user only
		h := sha256.Sum256([]byte("s5"))
		if _, err := db.CreateAPIToken(ctx, store.APIToken{UserID: ada.ID, Name: "ci", Hash: h[:]}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate name: err = %v, want ErrConflict", err)
		}

		got, err := db.ListAPITokens(ctx, ada.ID)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, tok := range got {
			ids = append(ids, tok.ID)
			if tok.Hash != nil {
				t.Errorf("ListAPITokens returned a hash for %s", tok.ID)
			}
			if tok.UserID != ada.ID {
				t.Errorf("token %s of user %s in ada's list", tok.ID, tok.UserID)
			}
		}
		if want := []string{ci.ID, login2.ID, login1.ID}; !reflect.DeepEqual(ids, want) {
			t.Fatalf("ListAPITokens = %v, want newest first %v", ids, want)
		}
		if got[0].Name != "ci" || !got[0].CreatedAt.Equal(ci.CreatedAt) || !got[0].ExpiresAt.Equal(ci.ExpiresAt) || got[0].LastUsedAt != nil {
			t.Errorf("listed token = %+v, want %+v", got[0], ci)
		}

		if err := db.DeleteAPIToken(ctx, ada.ID, bobCI.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleting another user's token: err = %v, want ErrNotFound", err)
		}
		if err := db.DeleteAPIToken(ctx, ada.ID, ci.ID); err != nil {
			t.Fatalf("DeleteAPIToken: %v", err)
		}
		if err := db.DeleteAPIToken(ctx, ada.ID, ci.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleting twice: err = %v, want ErrNotFound", err)
		}
		h3 := sha256.Sum256([]byte("s3"))
		if _, _, err := db.GetAPITokenByHash(ctx, h3[:]); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoked token still found: %v", err)
		}
		if b, _ := db.ListAPITokens(ctx, bob.ID); len(b) != 1 || b[0].ID != bobCI.ID {
			t.Fatalf("bob's tokens after ada's revoke = %+v", b)
		}
		// The name is free again.
		mk(ada, "ci", "s6")
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

		if byID, byIDUser, err := db.GetAPIToken(ctx, tok.ID); err != nil || !reflect.DeepEqual(byID, tok) || !reflect.DeepEqual(byIDUser, u) {
			t.Errorf("GetAPIToken = %+v, %+v, %v; want %+v, %+v", byID, byIDUser, err, tok, u)
		}
		if _, _, err := db.GetAPIToken(ctx, "tok_missing"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown id: err = %v, want ErrNotFound", err)
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

func TestAuditEvents(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		base := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
		events := []store.AuditEvent{
			{CreatedAt: base, ActorUserID: "usr_a", ActorKind: store.ActorUser, Action: "environment.create", ObjectType: "environment", ObjectID: "env_1", IP: "192.0.2.1", RequestID: "req-1", Detail: map[string]any{"name": "one"}, Success: true},
			{CreatedAt: base.Add(time.Minute), ActorKind: store.ActorSystem, Action: "environment.idle_stop", ObjectType: "environment", ObjectID: "env_1", Success: true},
			{CreatedAt: base.Add(2 * time.Minute), ActorKind: store.ActorUser, Action: "auth.login", ObjectType: "user", Detail: map[string]any{"email": "x@example.com"}, Success: false},
			{CreatedAt: base.Add(3 * time.Minute), ActorUserID: "usr_b", ActorKind: store.ActorUser, Action: "environment.create", ObjectType: "environment", ObjectID: "env_2", Success: true},
		}
		for _, e := range events {
			if err := db.InsertAuditEvent(ctx, e); err != nil {
				t.Fatalf("InsertAuditEvent: %v", err)
			}
		}
		if err := db.InsertAuditEvent(ctx, store.AuditEvent{ActorKind: "robot", Action: "x"}); err == nil {
			t.Error("an unknown actor kind was accepted")
		}

		all, total, err := db.ListAuditEvents(ctx, store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if total != 4 || len(all) != 4 {
			t.Fatalf("total %d, %d events, want 4", total, len(all))
		}
		if all[0].ObjectID != "env_2" || all[3].ObjectID != "env_1" || all[3].Action != "environment.create" {
			t.Fatalf("not newest first: %+v", all)
		}
		first := all[3]
		want := events[0]
		if first.ID == 0 || !first.CreatedAt.Equal(want.CreatedAt) || first.ActorUserID != want.ActorUserID || first.ActorKind != want.ActorKind ||
			first.IP != want.IP || first.RequestID != want.RequestID || !first.Success || first.Detail["name"] != "one" {
			t.Fatalf("round trip = %+v, want %+v", first, want)
		}
		if sys := all[2]; sys.ActorUserID != "" || sys.ActorKind != store.ActorSystem || sys.Detail != nil {
			t.Errorf("system event = %+v", sys)
		}
		if failed := all[1]; failed.Success {
			t.Errorf("failed login stored as a success: %+v", failed)
		}

		check := func(name string, f store.AuditFilter, wantTotal int, wantIDs ...string) {
			t.Helper()
			got, n, err := db.ListAuditEvents(ctx, f)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var ids []string
			for _, e := range got {
				ids = append(ids, e.Action+"/"+e.ObjectID)
			}
			if n != wantTotal || !reflect.DeepEqual(ids, wantIDs) {
				t.Errorf("%s: total %d %v, want %d %v", name, n, ids, wantTotal, wantIDs)
			}
		}
		check("actor", store.AuditFilter{ActorUserID: "usr_a"}, 1, "environment.create/env_1")
		check("action", store.AuditFilter{Action: "environment.create"}, 2, "environment.create/env_2", "environment.create/env_1")
		check("object", store.AuditFilter{ObjectType: "environment", ObjectID: "env_1"}, 2, "environment.idle_stop/env_1", "environment.create/env_1")
		check("since/until", store.AuditFilter{Since: base.Add(time.Minute), Until: base.Add(3 * time.Minute)}, 2, "auth.login/", "environment.idle_stop/env_1")
		check("page", store.AuditFilter{Limit: 2, Offset: 1}, 4, "auth.login/", "environment.idle_stop/env_1")
		check("offset only", store.AuditFilter{Offset: 3}, 4, "environment.create/env_1")
	})
}

// TestAuditLogIsAppendOnly: the store offers no way to change an audit
// event or to remove a chosen one: events go only by age, when they are
// older than the retention (DeleteAuditEventsBefore, issue 15 finding 12).
func TestAuditLogIsAppendOnly(t *testing.T) {
	t.Parallel()
	typ := reflect.TypeFor[*store.DB]()
	var audit []string
	for i := range typ.NumMethod() {
		name := typ.Method(i).Name
		if strings.Contains(name, "Audit") {
			audit = append(audit, name)
		}
	}
	if want := []string{"DeleteAuditEventsBefore", "InsertAuditEvent", "ListAuditEvents"}; !reflect.DeepEqual(audit, want) {
		t.Fatalf("audit methods of *store.DB = %v, want only %v", audit, want)
	}
}

// TestDeleteAuditEventsBefore: retention removes events older than the
// cutoff only, at most limit per call, oldest first.
func TestDeleteAuditEventsBefore(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		for i := range 7 {
			if err := db.InsertAuditEvent(ctx, store.AuditEvent{CreatedAt: base.Add(time.Duration(i) * time.Hour), ActorKind: store.ActorSystem, Action: "test.event", ObjectID: strings.Repeat("x", i)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.DeleteAuditEventsBefore(ctx, base, 0); err == nil {
			t.Fatal("a limit of 0 was accepted")
		}
		cutoff := base.Add(5 * time.Hour) // events 0..4 are older
		n, err := db.DeleteAuditEventsBefore(ctx, cutoff, 3)
		if err != nil || n != 3 {
			t.Fatalf("first batch: %d, %v; want 3", n, err)
		}
		events, total, err := db.ListAuditEvents(ctx, store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if total != 4 || len(events) != 4 || events[len(events)-1].ObjectID != "xxx" {
			t.Fatalf("after the first batch: %d events, oldest %+v; want 4, the oldest three gone", total, events[len(events)-1])
		}
		if n, err := db.DeleteAuditEventsBefore(ctx, cutoff, 3); err != nil || n != 2 {
			t.Fatalf("second batch: %d, %v; want the 2 left before the cutoff", n, err)
		}
		if n, err := db.DeleteAuditEventsBefore(ctx, cutoff, 3); err != nil || n != 0 {
			t.Fatalf("third batch: %d, %v; want 0", n, err)
		}
		events, _, err = db.ListAuditEvents(ctx, store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 2 || !events[1].CreatedAt.Equal(cutoff) {
			t.Fatalf("kept %d events (oldest %v), want 2 from the cutoff on", len(events), events[len(events)-1].CreatedAt)
		}
	})
}
