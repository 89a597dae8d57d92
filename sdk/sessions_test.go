package sdk_test

import (
	"net/http"
	"testing"

	"dev8.dev/dev8/sdk"
)

func TestSessions(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	laptop := ts.login(t, "ada@example.com")
	token, _, err := sdk.New(ts.url, "").Login(ts.ctx, "ada@example.com", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	phone := sdk.New(ts.url, token)

	list, err := phone.Sessions(ts.ctx)
	if err != nil || len(list) != 2 || !list[0].Current || list[1].Current || list[0].ExpiresAt.IsZero() {
		t.Fatalf("Sessions = %+v, %v", list, err)
	}
	if err := phone.RevokeSession(ts.ctx, list[1].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := laptop.Me(ts.ctx); !sdk.IsUnauthorized(err) {
		t.Fatalf("revoked session: %v, want 401", err)
	}
	if err := phone.RevokeSession(ts.ctx, list[1].ID); !sdk.IsNotFound(err) {
		t.Fatalf("revoking twice: %v, want 404", err)
	}
	if err := phone.Logout(ts.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := phone.Me(ts.ctx); !sdk.IsUnauthorized(err) {
		t.Fatalf("after logout: %v, want 401", err)
	}
	// An API token is not a session.
	admin := ts.login(t, "admin@example.com")
	secret, _, err := admin.CreateToken(ts.ctx, "ci", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := sdk.New(ts.url, secret).Logout(ts.ctx); apiError(t, err).Status != http.StatusBadRequest {
		t.Fatalf("logout with an API token: %v, want 400", err)
	}
}
