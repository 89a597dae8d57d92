package serverproc

import (
	"context"
	"testing"

	"dev8.dev/dev8/sdk"
)

// The first account SignUpAdmin makes.
const (
	AdminEmail    = "ada@example.com"
	AdminPassword = "correct horse"
)

// SignUpAdmin signs up a new installation's first user (who becomes its
// admin) at url as AdminEmail, signs in, and returns a client with the
// session's token.
func SignUpAdmin(t testing.TB, ctx context.Context, url string) *sdk.Client {
	t.Helper()
	anon := sdk.New(url, "")
	if _, err := anon.Signup(ctx, AdminEmail, AdminPassword, "Ada"); err != nil {
		t.Fatal(err)
	}
	token, _, err := anon.Login(ctx, AdminEmail, AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	return sdk.New(url, token)
}
