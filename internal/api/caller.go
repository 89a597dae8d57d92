package api

import (
	"context"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/store"
)

// mustUser returns the caller on routes behind RequireUser; reaching it
// without one is a routing bug.
func mustUser(ctx context.Context) store.User {
	u, ok := auth.UserFrom(ctx)
	if !ok {
		panic("api: authenticated route reached without a user")
	}
	return u
}
