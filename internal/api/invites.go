package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/signup"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// InviteStore is the persistence of invites and of the signups the policy
// (signup.Gate) lets through.
type InviteStore interface {
	HasUsers(ctx context.Context) (bool, error)
	CreateFirstUser(ctx context.Context, u store.User) (store.User, error)
	CreateInvitedUser(ctx context.Context, u store.User, hash []byte, at time.Time, check func(store.Invite) error) (store.User, store.Invite, error)
	CreateInvite(ctx context.Context, i store.Invite) (store.Invite, error)
	GetInviteByHash(ctx context.Context, hash []byte) (store.Invite, error)
	ListInvites(ctx context.Context, f store.InviteFilter) ([]store.Invite, int, error)
	RevokeInvite(ctx context.Context, id string, at time.Time) (store.Invite, error)
}

const (
	// DefaultInviteDays is how long an invite lasts when its request names
	// no lifetime; MaxInviteDays the longest one may.
	DefaultInviteDays = 7
	MaxInviteDays     = 90
)

// toInviteJSON renders i as the API shows it (the sdk's Invite).
func toInviteJSON(i store.Invite, now time.Time) sdk.Invite {
	out := sdk.Invite{ID: i.ID, Email: i.Email, Role: string(i.Role), State: string(i.State(now)),
		CreatedAt: i.CreatedAt, ExpiresAt: i.ExpiresAt, UsedAt: i.UsedAt, RevokedAt: i.RevokedAt}
	if i.CreatedBy != "" {
		out.CreatedBy = &i.CreatedBy
	}
	if i.UsedBy != "" {
		out.UsedBy = &i.UsedBy
	}
	return out
}

type createInviteRequest struct {
	Email         string `json:"email"`
	Role          string `json:"role"`
	ExpiresInDays *int   `json:"expires_in_days"`
}

// createInvite: POST /invites (admins). The token is in this answer only,
// inside the link to send; the store keeps its hash.
func (a *API) createInvite(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	var req createInviteRequest
	if err := httpapi.DecodeJSON(r, &req, false); err != nil {
		a.writeError(w, r, err)
		return
	}
	req.Email = strings.ToLower(strings.TrimSpace(req.Email))
	if req.Email != "" {
		if err := validateEmail(req.Email); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	role := store.RoleMember
	switch req.Role {
	case "", string(store.RoleMember):
	case string(store.RoleAdmin):
		role = store.RoleAdmin
	default:
		a.writeError(w, r, httpapi.Validation(fmt.Sprintf("role: %q is not member or admin", req.Role)))
		return
	}
	days := DefaultInviteDays
	if req.ExpiresInDays != nil {
		if days = *req.ExpiresInDays; days < 1 || days > MaxInviteDays {
			a.writeError(w, r, httpapi.Validation(fmt.Sprintf("expires_in_days: must be between 1 and %d", MaxInviteDays)))
			return
		}
	}
	if req.Email != "" {
		// An invite nobody could use is refused while the admin is there to
		// hear why.
		_, err := a.store.GetUserByEmail(r.Context(), req.Email)
		if err == nil {
			a.writeError(w, r, &httpapi.Error{Status: http.StatusConflict, Code: httpapi.CodeConflict, Message: "Email already registered",
				Details: req.Email + " has an account already; no invite is needed"})
			return
		}
		if !errors.Is(err, store.ErrNotFound) {
			a.writeError(w, r, fmt.Errorf("look up user: %w", err))
			return
		}
	}
	token, hash, err := signup.NewInviteToken()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	now := a.now()
	inv, err := a.store.CreateInvite(r.Context(), store.Invite{Hash: hash, Email: req.Email, Role: role, CreatedBy: caller.ID,
		CreatedAt: now, ExpiresAt: now.Add(time.Duration(days) * day)})
	if err != nil {
		a.writeError(w, r, fmt.Errorf("create invite: %w", err))
		return
	}
	a.log.InfoContext(r.Context(), "invite created", "invite", inv.ID, "by", caller.ID, "role", inv.Role)
	a.audit(r, "invite.create", "invite", inv.ID, true, map[string]any{"email": inv.Email, "role": string(inv.Role), "expires_at": inv.ExpiresAt})
	httpapi.WriteJSON(w, http.StatusCreated, sdk.CreatedInvite{Invite: toInviteJSON(inv, now), Token: token, URL: a.inviteURL(r, token)})
}

// inviteURL is the link that signs someone up with token: the sign-up page
// at the server's access URL.
func (a *API) inviteURL(r *http.Request, token string) string {
	return a.publicURL(r) + "/signup?invite=" + url.QueryEscape(token)
}

// listInvites: GET /invites?all=&limit=&offset= (admins): the pending
// invites, or with all=true every one, newest first.
func (a *API) listInvites(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	now := a.now()
	f := store.InviteFilter{PendingAt: now}
	switch q.Get("all") {
	case "", "false":
	case "true":
		f.PendingAt = time.Time{}
	default:
		a.writeError(w, r, httpapi.Validation("all: must be true or false"))
		return
	}
	var err error
	if f.Limit, err = httpapi.IntParam(q.Get("limit"), "limit", defaultListLimit, 1, maxListLimit); err != nil {
		a.writeError(w, r, err)
		return
	}
	if f.Offset, err = httpapi.IntParam(q.Get("offset"), "offset", 0, 0, 1<<31-1); err != nil {
		a.writeError(w, r, err)
		return
	}
	invites, total, err := a.store.ListInvites(r.Context(), f)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("list invites: %w", err))
		return
	}
	out := make([]sdk.Invite, len(invites))
	for i, inv := range invites {
		out[i] = toInviteJSON(inv, now)
	}
	httpapi.WriteJSON(w, http.StatusOK, sdk.InviteList{Invites: out, Total: total, Limit: f.Limit, Offset: f.Offset})
}

// revokeInvite: DELETE /invites/{id} (admins). Its link stops working at
// once; a used or revoked invite cannot be revoked (again).
func (a *API) revokeInvite(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	now := a.now()
	inv, err := a.store.RevokeInvite(r.Context(), id, now)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.writeError(w, r, httpapi.NotFound("Invite"))
		return
	case errors.Is(err, store.ErrInviteSpent):
		a.writeError(w, r, &httpapi.Error{Status: http.StatusConflict, Code: httpapi.CodeInvalidState, Message: "Invite is not pending",
			Details: fmt.Sprintf("invite %s was %s already", id, inv.State(now))})
		return
	case err != nil:
		a.writeError(w, r, fmt.Errorf("revoke invite: %w", err))
		return
	}
	a.log.InfoContext(r.Context(), "invite revoked", "invite", inv.ID, "by", mustUser(r.Context()).ID)
	a.audit(r, "invite.revoke", "invite", inv.ID, true, map[string]any{"email": inv.Email, "role": string(inv.Role)})
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"invite": toInviteJSON(inv, now)})
}
