package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"golang.org/x/oauth2"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/oauth"
	"dev8.dev/dev8/internal/signup"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// AccountStore is the persistence of OAuth provider accounts.
type AccountStore interface {
	CreateAccount(ctx context.Context, a store.Account) (store.Account, error)
	GetAccount(ctx context.Context, provider, providerAccountID string) (store.Account, store.User, error)
	TouchAccount(ctx context.Context, id string, at time.Time, email string) error
	ListAccounts(ctx context.Context, userID string) ([]store.Account, error)
}

const (
	// oauthStateCookie carries a sign-in's state, PKCE verifier and next
	// path from the start to the callback, signed so none can be altered.
	oauthStateCookie = "dev8_oauth"
	oauthCookiePath  = "/api/v1/auth/oauth/"
	// oauthStateTTL is how long a browser has to come back from the
	// provider.
	oauthStateTTL = 10 * time.Minute
)

func oauthStartPath(provider string) string { return "/api/v1/auth/oauth/" + provider }

// listProviders says how one signs in and up here: the OAuth providers,
// and the signup policy, so that pages offer only what works.
func (a *API) listProviders(w http.ResponseWriter, r *http.Request) {
	out := sdk.SignupInfo{Providers: make([]sdk.AuthProvider, 0, len(a.oauthOrder)), Password: true, SignupPolicy: string(a.gate.Policy())}
	for _, name := range a.oauthOrder {
		p := a.oauth[name]
		out.Providers = append(out.Providers, sdk.AuthProvider{Name: name, DisplayName: p.DisplayName(), StartURL: oauthStartPath(name)})
	}
	var err error
	if out.SignupOpen, err = a.gate.SelfService(r.Context()); err != nil {
		a.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

// publicURL is where people reach this server: the configured access URL,
// else what this request was addressed to.
func (a *API) publicURL(r *http.Request) string {
	if u := a.cookies.PublicURL(); u != "" {
		return u
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// SetPublicURL tells the API where people reach it (the server's access
// URL): OAuth redirect URLs are built on it, browser requests from its
// origin count as same-origin, and workspace apps' origins are named under
// it (or under --wildcard-access-url).
func (a *API) SetPublicURL(u string) {
	a.cookies.SetPublicURL(u)
	a.setAppDomain(u)
}

func (a *API) redirectURL(r *http.Request, provider string) string {
	return a.publicURL(r) + oauthStartPath(provider) + "/callback"
}

func (a *API) oauthProvider(w http.ResponseWriter, r *http.Request) (oauth.Provider, bool) {
	name := chi.URLParam(r, "provider")
	p, ok := a.oauth[name]
	if !ok {
		a.oauthFail(w, r, &httpapi.Error{Status: http.StatusNotFound, Code: httpapi.CodeNotFound, Message: "Sign-in provider not configured",
			Details: fmt.Sprintf("%q is not one of this server's providers (GET /api/v1/auth/providers lists them)", name)})
		return nil, false
	}
	return p, true
}

// oauthStart sends the browser to the provider, with a fresh state and a
// PKCE challenge; the state, verifier and next path wait in a signed,
// short-lived HttpOnly cookie scoped to the callback.
func (a *API) oauthStart(w http.ResponseWriter, r *http.Request) {
	p, ok := a.oauthProvider(w, r)
	if !ok {
		return
	}
	// Someone signing up with an invite hears at once if it cannot be
	// used, not after the provider's pages.
	invite := r.URL.Query().Get("invite")
	if invite != "" {
		if err := a.inviteUsable(r.Context(), invite); err != nil {
			a.oauthFail(w, r, err)
			return
		}
	}
	state, err := oauth.NewStateParam()
	if err != nil {
		a.oauthFail(w, r, err)
		return
	}
	st := oauth.State{
		Provider: p.Name(),
		State:    state,
		Verifier: oauth2.GenerateVerifier(),
		Next:     httpmw.SafeNext(r.URL.Query().Get("next"), "/"),
		Expires:  a.now().Add(oauthStateTTL).Unix(),
		Invite:   invite,
	}
	target, err := p.AuthCodeURL(r.Context(), a.redirectURL(r, p.Name()), st.State, st.Verifier)
	if err != nil {
		a.log.WarnContext(r.Context(), "oauth provider unavailable", "provider", p.Name(), "err", err)
		a.oauthFail(w, r, providerUnavailable(p))
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     oauthStateCookie,
		Value:    a.oauthStates.Sign(st),
		Path:     oauthCookiePath,
		MaxAge:   int(oauthStateTTL / time.Second),
		HttpOnly: true,
		Secure:   a.cookies.Secure(r),
		// Lax: the provider's redirect back is a top-level GET
		// navigation, which carries it.
		SameSite: http.SameSiteLaxMode,
	})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusFound)
}

func providerUnavailable(p oauth.Provider) *httpapi.Error {
	return &httpapi.Error{Status: http.StatusBadGateway, Code: httpapi.CodeOAuthFailed, Message: p.DisplayName() + " sign-in is unavailable",
		Details: "the provider could not be reached; try again later"}
}

// oauthCallback finishes a sign-in: the state must match the cookie's, the
// code is exchanged with the verifier, and the identity is matched to a
// user (by linked account, else verified email, else a new user). Then a
// session starts and the browser goes to the next path.
func (a *API) oauthCallback(w http.ResponseWriter, r *http.Request) {
	p, ok := a.oauthProvider(w, r)
	if !ok {
		return
	}
	// The state is single-use whatever happens next.
	http.SetCookie(w, &http.Cookie{Name: oauthStateCookie, Value: "", Path: oauthCookiePath, MaxAge: -1, HttpOnly: true, Secure: a.cookies.Secure(r), SameSite: http.SameSiteLaxMode})
	q := r.URL.Query()
	c, err := r.Cookie(oauthStateCookie)
	if err != nil || c.Value == "" {
		a.auditAs(r, "", "auth.oauth_login", "user", "", false, map[string]any{"provider": p.Name(), "reason": "no state cookie"})
		a.oauthFail(w, r, &httpapi.Error{Status: http.StatusBadRequest, Code: httpapi.CodeOAuthFailed, Message: "Sign-in state missing",
			Details: "the sign-in expired or was started in another browser; start again"})
		return
	}
	st, ok := a.oauthStates.Open(c.Value)
	if !ok || st.Provider != p.Name() || q.Get("state") == "" || subtle.ConstantTimeCompare([]byte(st.State), []byte(q.Get("state"))) != 1 {
		a.auditAs(r, "", "auth.oauth_login", "user", "", false, map[string]any{"provider": p.Name(), "reason": "state mismatch"})
		a.oauthFail(w, r, &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeOAuthFailed, Message: "Sign-in state does not match",
			Details: "this answer is not for the sign-in this browser started (or it expired); start again"})
		return
	}
	if e := q.Get("error"); e != "" {
		a.auditAs(r, "", "auth.oauth_login", "user", "", false, map[string]any{"provider": p.Name(), "reason": "provider error", "error": truncateUTF8(e, 64)})
		a.oauthFail(w, r, &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeOAuthFailed, Message: p.DisplayName() + " sign-in was not completed",
			Details: "the provider answered " + truncateUTF8(e, 64)})
		return
	}
	code := q.Get("code")
	if code == "" {
		a.oauthFail(w, r, httpapi.Validation("code: is required"))
		return
	}
	id, err := p.Identify(r.Context(), a.redirectURL(r, p.Name()), code, st.Verifier)
	if err != nil {
		// The error names no code or token (see package oauth).
		a.log.InfoContext(r.Context(), "oauth sign-in failed", "provider", p.Name(), "err", err)
		a.auditAs(r, "", "auth.oauth_login", "user", "", false, map[string]any{"provider": p.Name(), "reason": oauthReason(err)})
		a.oauthFail(w, r, oauthError(p, err))
		return
	}
	user, err := a.oauthUser(r, id, st.Invite)
	if errors.Is(err, httpmw.ErrSuspended) {
		a.auditAs(r, user.ID, "auth.oauth_login", "user", user.ID, false, map[string]any{"provider": p.Name(), "reason": "suspended"})
	}
	if errors.Is(err, signup.ErrInviteRequired) || errors.Is(err, signup.ErrSignupClosed) {
		a.auditAs(r, "", "auth.oauth_login", "user", "", false, map[string]any{"provider": p.Name(), "email": id.Email, "reason": "signup policy"})
	}
	if err != nil {
		a.oauthFail(w, r, err)
		return
	}
	_, sess, err := a.startSession(w, r, user)
	if err != nil {
		a.oauthFail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "user logged in", "user", user.ID, "provider", p.Name(), "session", sess.ID)
	a.auditAs(r, user.ID, "auth.oauth_login", "user", user.ID, true, map[string]any{"provider": p.Name(), "email": id.Email, "session_id": sess.ID})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, st.Next, http.StatusFound)
}

func oauthReason(err error) string {
	switch {
	case errors.Is(err, oauth.ErrNoVerifiedEmail):
		return "no verified email"
	case errors.Is(err, oauth.ErrRefused):
		return "code refused"
	}
	return "provider error"
}

func oauthError(p oauth.Provider, err error) *httpapi.Error {
	switch {
	case errors.Is(err, oauth.ErrNoVerifiedEmail):
		return &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeOAuthFailed, Message: p.DisplayName() + " has no verified email for this account",
			Details: "verify your email address with " + p.DisplayName() + " (and make it your primary one), then sign in again"}
	case errors.Is(err, oauth.ErrRefused):
		return &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeOAuthFailed, Message: p.DisplayName() + " refused the sign-in",
			Details: "the authorization code was not accepted (expired, used, or not for this sign-in); start again"}
	}
	return &httpapi.Error{Status: http.StatusBadGateway, Code: httpapi.CodeOAuthFailed, Message: p.DisplayName() + " sign-in failed",
		Details: "the provider's answer could not be used; the error was logged"}
}

// oauthUser finds or makes the user for a verified identity: the user its
// provider account is linked to; else the user with the same (verified)
// email, now linked; else a new user without a password, linked, if the
// signup policy allows it (with invite, an invite's token: see createUser).
// The first user of an installation is its admin, however they sign up. A
// suspended user is returned with httpmw.ErrSuspended, and nothing is
// linked to them.
func (a *API) oauthUser(r *http.Request, id oauth.Identity, invite string) (store.User, error) {
	ctx := r.Context()
	now := a.now()
	acct, user, err := a.store.GetAccount(ctx, id.Provider, id.Subject)
	if err == nil && user.SuspendedAt != nil {
		return user, httpmw.ErrSuspended
	}
	if err == nil {
		if err := a.store.TouchAccount(ctx, acct.ID, now, id.Email); err != nil {
			a.log.WarnContext(ctx, "record account sign-in", "account", acct.ID, "err", err)
		}
		return user, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.User{}, fmt.Errorf("look up account: %w", err)
	}
	if id.Email == "" || validateEmail(id.Email) != nil {
		// Providers are asked for verified emails only; this guards
		// against one that sends something unusable.
		return store.User{}, &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeOAuthFailed, Message: "No usable email", Details: "the provider gave no valid verified email address"}
	}
	user, err = a.store.GetUserByEmail(ctx, id.Email)
	created := false
	if errors.Is(err, store.ErrNotFound) {
		// The provider's profile name is not refused, only cleaned.
		name := httpapi.CleanLabel(id.Name, maxNameLength)
		user, err = a.createUser(r, store.User{Email: id.Email, Name: name}, invite, a.gate.DomainAllowed(id.Email))
		created = err == nil
		if errors.Is(err, store.ErrConflict) {
			// Someone signed up with the address meanwhile.
			user, err = a.store.GetUserByEmail(ctx, id.Email)
		}
	}
	if err != nil {
		return store.User{}, fmt.Errorf("find user for %s sign-in: %w", id.Provider, err)
	}
	if user.SuspendedAt != nil {
		return user, httpmw.ErrSuspended
	}
	acct, err = a.store.CreateAccount(ctx, store.Account{UserID: user.ID, Provider: id.Provider, ProviderAccountID: id.Subject, Email: id.Email, LastLoginAt: &now})
	if errors.Is(err, store.ErrConflict) {
		// The same sign-in finished twice at once: the other linked it.
		_, user, err = a.store.GetAccount(ctx, id.Provider, id.Subject)
		return user, wrapIf("look up account", err)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("link account: %w", err)
	}
	if created {
		a.log.InfoContext(ctx, "user signed up", "user", user.ID, "role", user.Role, "provider", id.Provider)
		a.auditAs(r, user.ID, "auth.signup", "user", user.ID, true, map[string]any{"email": user.Email, "role": string(user.Role), "provider": id.Provider})
	}
	a.auditAs(r, user.ID, "auth.account_link", "account", acct.ID, true, map[string]any{"provider": id.Provider, "email": id.Email})
	return user, nil
}

// oauthFail answers a sign-in that cannot go on: a browser (the sign-in
// is a navigation) gets a page saying why, a program the API's JSON.
func (a *API) oauthFail(w http.ResponseWriter, r *http.Request, err error) {
	if a.pages == nil || !httpmw.WantsPage(r) {
		a.writeError(w, r, err)
		return
	}
	e := httpapi.ToError(err)
	if e.Status >= 500 {
		a.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Cache-Control", "no-store")
	a.pages.Problem(w, r, e.Status, e.Message, e.Details)
}

func wrapIf(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", op, err)
}
