package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"dev8.dev/dev8/internal/signup"
	"dev8.dev/dev8/internal/store"
)

// The signup policy (package signup) as the API applies it: admitSignup
// answers early, before a password is hashed; createUser then makes the
// account in the one store step that enforces the same rule, so two
// requests racing for the first account, or for one invite, cannot both
// win.

// admitSignup refuses a signup the policy does not allow: with an invite,
// one that cannot be used by email now; without, any signup but the first
// (unless the policy is open).
func (a *API) admitSignup(r *http.Request, email, invite string) error {
	if invite != "" {
		inv, err := a.gate.Invite(r.Context(), invite, email)
		if err != nil {
			a.auditInviteRefused(r, inv, email, err)
		}
		return err
	}
	ok, err := a.gate.SelfService(r.Context())
	if err != nil {
		return err
	}
	if !ok {
		a.log.InfoContext(r.Context(), "signup refused by policy", "policy", a.gate.Policy(), "remote", r.RemoteAddr)
		return a.gate.Refusal()
	}
	return nil
}

// createUser makes the account a signup admitted: with an invite, as the
// invite says (and uses it up); else under an open policy as anyone, or
// else only as the installation's first user. selfService says whether
// this user may sign up without an invite although the policy is not open
// (an OAuth sign-in from an allowed domain).
func (a *API) createUser(r *http.Request, u store.User, invite string, selfService bool) (store.User, error) {
	ctx := r.Context()
	switch {
	case invite != "":
		hash, ok := signup.HashInviteToken(invite)
		if !ok {
			return store.User{}, &signup.InviteError{Reason: signup.InviteUnknown}
		}
		user, inv, err := a.store.CreateInvitedUser(ctx, u, hash, a.now(), a.gate.Usable(u.Email))
		if errors.Is(err, store.ErrNotFound) {
			return store.User{}, &signup.InviteError{Reason: signup.InviteUnknown}
		}
		var invErr *signup.InviteError
		if errors.As(err, &invErr) {
			a.auditInviteRefused(r, inv, u.Email, err)
		}
		if err != nil {
			return store.User{}, err
		}
		a.auditAs(r, user.ID, "invite.use", "invite", inv.ID, true, map[string]any{"email": user.Email, "role": string(user.Role), "user_id": user.ID})
		return user, nil
	case selfService || a.gate.Policy() == signup.Open:
		return a.store.CreateUser(ctx, u)
	}
	user, err := a.store.CreateFirstUser(ctx, u)
	if errors.Is(err, store.ErrUsersExist) {
		// Someone else was first a moment ago.
		return store.User{}, a.gate.Refusal()
	}
	return user, err
}

// auditInviteRefused records a refused use of an invite that exists (an
// unknown token is not recorded: anyone can send those, as often as the
// rate limit lets them).
func (a *API) auditInviteRefused(r *http.Request, inv store.Invite, email string, err error) {
	var invErr *signup.InviteError
	if inv.ID == "" || !errors.As(err, &invErr) {
		return
	}
	a.auditAs(r, "", "invite.use", "invite", inv.ID, false, map[string]any{"email": loginEmail(email), "reason": string(invErr.Reason)})
}

// SignupGate is the signup policy the API applies, for the dashboard to
// ask what to offer.
func (a *API) SignupGate() *signup.Gate { return a.gate }

// signupGate is cfg's gate, or the default policy over its store.
func signupGate(cfg Config) *signup.Gate {
	if cfg.Signup != nil {
		return cfg.Signup
	}
	var st signup.Store
	if cfg.Store != nil {
		st = cfg.Store
	}
	return signup.New(signup.Config{Store: st, Now: cfg.Now})
}

// inviteUsable is what oauthStart checks before sending a browser to the
// provider with an invite: the same answer the callback will get, unless
// the invite is used or revoked meanwhile.
func (a *API) inviteUsable(ctx context.Context, token string) error {
	if _, err := a.gate.Invite(ctx, token, ""); err != nil {
		return fmt.Errorf("oauth sign-in with an invite: %w", err)
	}
	return nil
}
