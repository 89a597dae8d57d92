package sdk_test

import (
	"net/http"
	"testing"
	"time"

	"dev8.dev/dev8/sdk"
)

func TestTokensAndAudit(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	admin := ts.login(t, "admin@example.com")
	member := ts.login(t, "member@example.com")

	secret, tok, err := member.CreateToken(ts.ctx, "ci", 3)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Name != "ci" || tok.ExpiresAt == nil || tok.ExpiresAt.Sub(tok.CreatedAt).Round(time.Hour) != 72*time.Hour {
		t.Fatalf("created %+v", tok)
	}
	toks, err := sdk.New(ts.url, secret).Tokens(ts.ctx)
	// A login is a session, not a token: only the one made here is listed.
	if err != nil || len(toks) != 1 || toks[0].ID != tok.ID {
		t.Fatalf("Tokens = %+v, %v", toks, err)
	}
	if _, _, err := member.CreateToken(ts.ctx, "ci", 0); apiError(t, err).Status != http.StatusConflict {
		t.Fatalf("duplicate: %v", err)
	}
	if err := admin.RevokeToken(ts.ctx, tok.ID); !sdk.IsNotFound(err) {
		t.Fatalf("another user's revoke: %v", err)
	}
	if err := member.RevokeToken(ts.ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := sdk.New(ts.url, secret).Me(ts.ctx); !sdk.IsUnauthorized(err) {
		t.Fatalf("revoked token: %v", err)
	}

	if _, err := member.AuditEvents(ts.ctx, sdk.AuditFilter{}); apiError(t, err).Status != http.StatusForbidden {
		t.Fatalf("member reading the audit log: %v", err)
	}
	list, err := admin.AuditEvents(ts.ctx, sdk.AuditFilter{ObjectType: "token", ObjectID: tok.ID, Since: time.Now().Add(-time.Hour), Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if list.Total != 2 || len(list.Events) != 2 || list.Events[0].Action != "token.revoke" || list.Events[1].Action != "token.create" {
		t.Fatalf("token events = %+v", list)
	}
}
