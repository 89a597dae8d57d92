package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/signup"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// withSignup configures the fixture's signup policy over its own store and
// clock.
func withSignup(p signup.Policy, domains ...string) func(*Config) {
	return func(c *Config) {
		c.Signup = signup.New(signup.Config{Policy: p, AllowedDomains: domains, Store: c.Store, Now: c.Now})
	}
}

func signupBody(email, invite string) string {
	b, _ := json.Marshal(map[string]string{"email": email, "password": "correct horse", "name": "N", "invite": invite})
	return string(b)
}

// signup posts a signup and returns the answer.
func (f *hardenedFixture) signup(email, invite string) (int, sdk.ErrorResponse, sdk.User) {
	f.t.Helper()
	rec := f.do(http.MethodPost, "/api/v1/auth/signup", reqOpts{body: signupBody(email, invite)})
	var out struct {
		sdk.ErrorResponse
		User sdk.User `json:"user"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		f.t.Fatalf("signup %s: %d %q", email, rec.Code, rec.Body)
	}
	return rec.Code, out.ErrorResponse, out.User
}

func (f *hardenedFixture) signupInfo() sdk.SignupInfo {
	f.t.Helper()
	rec := f.do(http.MethodGet, "/api/v1/auth/providers", reqOpts{})
	if rec.Code != http.StatusOK {
		f.t.Fatalf("GET /auth/providers = %d %s", rec.Code, rec.Body)
	}
	return decodeBody[sdk.SignupInfo](f.t, rec)
}

func (f *hardenedFixture) noUser(email string) {
	f.t.Helper()
	if _, err := f.db.GetUserByEmail(f.t.Context(), email); !errors.Is(err, store.ErrNotFound) {
		f.t.Errorf("a refused signup made %s an account (%v)", email, err)
	}
}

// TestSignupPolicy: under every policy the first user signs up by
// themself and is the admin; after that, open lets anyone in, invite and
// closed refuse a signup without an invite with their own code, before
// anything else is looked at (a registered email is not revealed).
func TestSignupPolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		policy signup.Policy
		status int
		code   string
	}{
		{signup.Open, http.StatusCreated, ""},
		{signup.Invite, http.StatusForbidden, httpapi.CodeInviteRequired},
		{signup.Closed, http.StatusForbidden, httpapi.CodeSignupClosed},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			t.Parallel()
			f := newHardenedFixture(t, withSignup(tc.policy))
			if info := f.signupInfo(); info.SignupPolicy != string(tc.policy) || !info.SignupOpen || !info.Password {
				t.Errorf("before the first user: %+v, want policy %s and signup open", info, tc.policy)
			}
			code, e, first := f.signup("Ada@Example.com", "")
			if code != http.StatusCreated || first.Role != "admin" || first.Email != "ada@example.com" {
				t.Fatalf("first signup = %d %+v %+v, want 201 admin", code, e, first)
			}
			if info := f.signupInfo(); info.SignupOpen != (tc.policy == signup.Open) {
				t.Errorf("after the first user: signup_open = %v", info.SignupOpen)
			}
			code, e, second := f.signup("bob@example.com", "")
			if code != tc.status || e.Code != tc.code {
				t.Fatalf("second signup = %d %+v, want %d %s", code, e, tc.status, tc.code)
			}
			if tc.policy == signup.Open {
				if second.Role != "member" {
					t.Errorf("second user %+v, want a member", second)
				}
				return
			}
			if e.Error == "" || !strings.Contains(e.Details, "invite") {
				t.Errorf("refusal %+v should say an invite is the way in", e)
			}
			f.noUser("bob@example.com")
			// A registered email is refused the same way: no 409 tells an
			// uninvited visitor who has an account.
			if code, e, _ := f.signup("ada@example.com", ""); code != tc.status || e.Code != tc.code {
				t.Errorf("signup as ada again = %d %+v, want %d %s", code, e, tc.status, tc.code)
			}
			// Validation still answers first.
			rec := f.do(http.MethodPost, "/api/v1/auth/signup", reqOpts{body: `{"email":"bob@example.com","password":"short"}`})
			wantStatus(t, rec, http.StatusBadRequest, httpapi.CodeValidation)
		})
	}
}

// TestFirstSignupRace: on an empty installation under invite, of many
// signups at once exactly one becomes the admin; the others are refused.
func TestFirstSignupRace(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, withSignup(signup.Invite))
	const n = 6
	codes := make(chan int, n)
	for i := range n {
		go func() {
			rec := f.do(http.MethodPost, "/api/v1/auth/signup", reqOpts{body: signupBody(fmt.Sprintf("racer%d@example.com", i), "")})
			codes <- rec.Code
		}()
	}
	created := 0
	for range n {
		switch c := <-codes; c {
		case http.StatusCreated:
			created++
		case http.StatusForbidden:
		default:
			t.Errorf("a racing first signup answered %d", c)
		}
	}
	if _, total, _ := f.db.ListUsers(t.Context(), store.UserFilter{}); created != 1 || total != 1 {
		t.Errorf("%d signups succeeded, %d users; want 1 and 1", created, total)
	}
}

// createInvite makes an invite as the admin whose token is given.
func (f *hardenedFixture) createInvite(token, body string) sdk.CreatedInvite {
	f.t.Helper()
	rec := f.do(http.MethodPost, "/api/v1/invites", reqOpts{token: token, body: body})
	if rec.Code != http.StatusCreated {
		f.t.Fatalf("POST /invites %s = %d %s", body, rec.Code, rec.Body)
	}
	return decodeBody[sdk.CreatedInvite](f.t, rec)
}

func wantInviteInvalid(t *testing.T, code int, e sdk.ErrorResponse, why string) {
	t.Helper()
	if code != http.StatusForbidden || e.Code != httpapi.CodeInviteInvalid || !strings.Contains(e.Details, why) {
		t.Errorf("signup = %d %+v, want 403 %s saying %q", code, e, httpapi.CodeInviteInvalid, why)
	}
}

func TestInvites(t *testing.T) {
	t.Parallel()
	for _, policy := range []signup.Policy{signup.Invite, signup.Closed} {
		t.Run(string(policy), func(t *testing.T) {
			t.Parallel()
			f := newHardenedFixture(t, withSignup(policy))
			f.api.SetPublicURL("https://dev8.example.com")
			adminUser, admin := f.user("admin@example.com", "correct horse")

			// An invite for bob, as a member.
			bob := f.createInvite(admin, `{"email":" Bob@Example.com "}`)
			if bob.Invite.Email != "bob@example.com" || bob.Invite.Role != "member" || bob.Invite.State != "pending" ||
				!bob.Invite.ExpiresAt.Equal(f.clock.Now().Add(DefaultInviteDays*24*time.Hour)) || !strings.HasPrefix(bob.Token, signup.InviteTokenPrefix) {
				t.Fatalf("created %+v", bob)
			}
			if want := "https://dev8.example.com/signup?invite=" + url.QueryEscape(bob.Token); bob.URL != want {
				t.Errorf("url = %q, want %q", bob.URL, want)
			}
			stored, err := f.db.GetInvite(t.Context(), bob.Invite.ID)
			if err != nil || string(stored.Hash) == bob.Token || strings.Contains(string(stored.Hash), bob.Token) {
				t.Fatalf("stored invite %+v, %v: only a hash of the token may be kept", stored, err)
			}

			// For bob only.
			code, e, _ := f.signup("eve@example.com", bob.Token)
			wantInviteInvalid(t, code, e, "another email")
			f.noUser("eve@example.com")
			code, e, u := f.signup("BOB@example.com", bob.Token)
			if code != http.StatusCreated || u.Role != "member" || u.Email != "bob@example.com" {
				t.Fatalf("bob's signup = %d %+v %+v", code, e, u)
			}
			// Once.
			code, e, _ = f.signup("bob2@example.com", bob.Token)
			wantInviteInvalid(t, code, e, "used already")

			// An admin invite for anyone makes an admin.
			anyAdmin := f.createInvite(admin, `{"role":"admin","expires_in_days":1}`)
			if code, e, u := f.signup("carol@example.com", anyAdmin.Token); code != http.StatusCreated || u.Role != "admin" {
				t.Fatalf("admin invite signup = %d %+v %+v", code, e, u)
			}

			// Revoked, expired and unknown invites are refused; nothing is made.
			revoked := f.createInvite(admin, `{}`)
			rec := f.do(http.MethodDelete, "/api/v1/invites/"+revoked.Invite.ID, reqOpts{token: admin})
			if rec.Code != http.StatusOK || decodeBody[struct{ Invite sdk.Invite }](t, rec).Invite.State != "revoked" {
				t.Fatalf("revoke = %d %s", rec.Code, rec.Body)
			}
			code, e, _ = f.signup("dan@example.com", revoked.Token)
			wantInviteInvalid(t, code, e, "revoked")
			wantStatus(t, f.do(http.MethodDelete, "/api/v1/invites/"+revoked.Invite.ID, reqOpts{token: admin}), http.StatusConflict, httpapi.CodeInvalidState)
			wantStatus(t, f.do(http.MethodDelete, "/api/v1/invites/inv_missing", reqOpts{token: admin}), http.StatusNotFound, httpapi.CodeNotFound)
			wantStatus(t, f.do(http.MethodDelete, "/api/v1/invites/"+bob.Invite.ID, reqOpts{token: admin}), http.StatusConflict, httpapi.CodeInvalidState)

			expiring := f.createInvite(admin, `{"expires_in_days":2}`)
			f.clock.Advance(2 * 24 * time.Hour)
			admin = f.newToken(adminUser) // the old one lasted an hour
			code, e, _ = f.signup("dan@example.com", expiring.Token)
			wantInviteInvalid(t, code, e, "expired")
			unknown, _, _ := signup.NewInviteToken()
			for _, token := range []string{unknown, "dev8inv_short", strings.Repeat("x", 5000)} {
				code, e, _ = f.signup("dan@example.com", token)
				wantInviteInvalid(t, code, e, "no such invite")
			}
			f.noUser("dan@example.com")

			// A registered email with a good invite: a conflict, and the
			// invite is still there to use.
			spare := f.createInvite(admin, `{}`)
			if code, e, _ := f.signup("carol@example.com", spare.Token); code != http.StatusConflict || e.Code != httpapi.CodeConflict {
				t.Errorf("signup of a registered email with an invite = %d %+v, want 409", code, e)
			}
			if code, _, _ := f.signup("dan@example.com", spare.Token); code != http.StatusCreated {
				t.Errorf("the spare invite after the conflict = %d, want 201", code)
			}

			// The list: the pending ones by default, every one on asking.
			pending := f.createInvite(admin, `{"email":"erin@example.com"}`)
			rec = f.do(http.MethodGet, "/api/v1/invites", reqOpts{token: admin})
			list := decodeBody[sdk.InviteList](t, rec)
			if rec.Code != http.StatusOK || list.Total != 1 || len(list.Invites) != 1 || list.Invites[0].ID != pending.Invite.ID {
				t.Fatalf("GET /invites = %d %+v", rec.Code, list)
			}
			rec = f.do(http.MethodGet, "/api/v1/invites?all=true&limit=100", reqOpts{token: admin})
			all := decodeBody[sdk.InviteList](t, rec)
			states := map[string]int{}
			for _, inv := range all.Invites {
				states[inv.State]++
			}
			if all.Total != 6 || states["used"] != 3 || states["revoked"] != 1 || states["expired"] != 1 || states["pending"] != 1 {
				t.Errorf("GET /invites?all=true: %d invites, states %v", all.Total, states)
			}
			if strings.Contains(rec.Body.String(), signup.InviteTokenPrefix) {
				t.Error("the invite list shows a token")
			}
			wantStatus(t, f.do(http.MethodGet, "/api/v1/invites?all=maybe", reqOpts{token: admin}), http.StatusBadRequest, httpapi.CodeValidation)

			// Audit: made, revoked, used, and refused uses of real invites;
			// never a token.
			events, _, err := f.db.ListAuditEvents(t.Context(), store.AuditFilter{Limit: 500})
			if err != nil {
				t.Fatal(err)
			}
			count := map[string]int{}
			for _, ev := range events {
				if strings.HasPrefix(ev.Action, "invite.") {
					count[fmt.Sprintf("%s/%v", ev.Action, ev.Success)]++
				}
				raw, _ := json.Marshal(ev)
				if strings.Contains(string(raw), signup.InviteTokenPrefix) {
					t.Errorf("audit event %s holds an invite token", raw)
				}
			}
			want := map[string]int{"invite.create/true": 6, "invite.revoke/true": 1, "invite.use/true": 3,
				"invite.use/false": 4} // eve's wrong email, bob2's used, dan's revoked, dan's expired
			for k, n := range want {
				if count[k] != n {
					t.Errorf("%d %s audit events, want %d (all: %v)", count[k], k, n, count)
				}
			}
		})
	}
}

func TestCreateInviteValidation(t *testing.T) {
	t.Parallel()
	f := newHardenedFixture(t, nil)
	_, admin := f.user("admin@example.com", "correct horse")
	_, member := f.user("member@example.com", "correct horse")
	for body, want := range map[string]string{
		`{"role":"owner"}`:               httpapi.CodeValidation,
		`{"expires_in_days":0}`:          httpapi.CodeValidation,
		`{"expires_in_days":91}`:         httpapi.CodeValidation,
		`{"email":"not an email"}`:       httpapi.CodeValidation,
		`{"email":"a@b.c","extra":1}`:    httpapi.CodeValidation,
		`not json`:                       httpapi.CodeInvalidJSON,
		`{"email":"member@example.com"}`: httpapi.CodeConflict,
	} {
		rec := f.do(http.MethodPost, "/api/v1/invites", reqOpts{token: admin, body: body})
		if e := decodeError(t, rec); e.Code != want {
			t.Errorf("POST /invites %s = %d %+v, want %s", body, rec.Code, e, want)
		}
	}
	if rec := f.do(http.MethodPost, "/api/v1/invites", reqOpts{token: admin, body: `{"expires_in_days":90,"role":"admin"}`}); rec.Code != http.StatusCreated {
		t.Errorf("a 90-day admin invite = %d %s", rec.Code, rec.Body)
	}
	// Members may not make, list or revoke invites.
	for _, r := range []struct{ method, path, body string }{
		{http.MethodPost, "/api/v1/invites", `{}`}, {http.MethodGet, "/api/v1/invites", ""}, {http.MethodDelete, "/api/v1/invites/inv_x", ""},
	} {
		wantStatus(t, f.do(r.method, r.path, reqOpts{token: member, body: r.body}), http.StatusForbidden, httpapi.CodeForbidden)
	}
	if _, total, _ := f.db.ListInvites(t.Context(), store.InviteFilter{}); total != 1 {
		t.Errorf("%d invites stored, want the one good one", total)
	}
}

// TestOAuthSignupPolicy: an OAuth sign-in that would make a new account
// follows the policy: under invite a verified email in an allowed domain
// may, others need an invite (carried through the provider); under closed
// only an invite does.
func TestOAuthSignupPolicy(t *testing.T) {
	t.Parallel()
	f := newOAuthFixtureWith(t, withSignup(signup.Invite, "example.com"))
	ctx := t.Context()
	_, adminToken := f.user("admin@example.com", "correct horse")

	// An allowed domain: a member is made.
	f.provider.signInAs(fakePerson{sub: "5001", name: "Carol", email: "carol@example.com", verified: true})
	if resp := f.signIn(f.browser(), "github", "/dashboard"); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/dashboard" {
		t.Fatalf("allowed domain sign-in = %d", resp.StatusCode)
	}
	if u, err := f.db.GetUserByEmail(ctx, "carol@example.com"); err != nil || u.Role != store.RoleMember {
		t.Fatalf("carol = %+v, %v", u, err)
	}
	// Another domain (a subdomain or a look-alike too): refused, nothing made.
	for i, email := range []string{"dave@other.test", "dave@dev.example.com", "dave@example.com.evil.test"} {
		f.provider.signInAs(fakePerson{sub: fmt.Sprintf("600%d", i), name: "Dave", email: email, verified: true})
		b := f.browser()
		resp := f.signIn(b, "github", "")
		var e sdk.ErrorResponse
		json.NewDecoder(resp.Body).Decode(&e)
		if resp.StatusCode != http.StatusForbidden || e.Code != httpapi.CodeInviteRequired {
			t.Fatalf("%s sign-in = %d %+v, want 403 %s", email, resp.StatusCode, e, httpapi.CodeInviteRequired)
		}
		f.noUser(email)
		if code, _ := f.me(b); code != http.StatusUnauthorized {
			t.Errorf("the refused browser has a session (%d)", code)
		}
		if _, _, err := f.db.GetAccount(ctx, "github", fmt.Sprintf("600%d", i)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("an account was linked for %s: %v", email, err)
		}
	}

	// With an invite, started from the invite's page: made, with its role,
	// and the invite is used.
	inv := f.createInvite(adminToken, `{"role":"admin"}`)
	f.provider.signInAs(fakePerson{sub: "7001", name: "Dave", email: "dave@other.test", verified: true})
	resp := f.signInWith(f.browser(), "google", url.Values{"next": {"/x"}, "invite": {inv.Token}})
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("invited sign-in = %d", resp.StatusCode)
	}
	dave, err := f.db.GetUserByEmail(ctx, "dave@other.test")
	if err != nil || dave.Role != store.RoleAdmin {
		t.Fatalf("dave = %+v, %v", dave, err)
	}
	if stored, _ := f.db.GetInvite(ctx, inv.Invite.ID); stored.UsedBy != dave.ID {
		t.Errorf("the invite is %+v, want used by dave", stored)
	}
	// The used invite is refused at the start, before the provider.
	b := f.browser()
	b.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r, err := b.Get(f.url + "/api/v1/auth/oauth/github?invite=" + url.QueryEscape(inv.Token))
	if err != nil {
		t.Fatal(err)
	}
	var e sdk.ErrorResponse
	json.NewDecoder(r.Body).Decode(&e)
	r.Body.Close()
	if r.StatusCode != http.StatusForbidden || e.Code != httpapi.CodeInviteInvalid {
		t.Errorf("start with a used invite = %d %+v", r.StatusCode, e)
	}
	// An invite for another address: checked again at the callback,
	// against the provider's verified email.
	bound := f.createInvite(adminToken, `{"email":"erin@example.org"}`)
	f.provider.signInAs(fakePerson{sub: "8001", name: "Mallory", email: "mallory@other.test", verified: true})
	resp = f.signInWith(f.browser(), "github", url.Values{"invite": {bound.Token}})
	json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != http.StatusForbidden || e.Code != httpapi.CodeInviteInvalid {
		t.Errorf("sign-in with another's invite = %d %+v", resp.StatusCode, e)
	}
	f.noUser("mallory@other.test")

	// Closed: the domain does not count.
	c := newOAuthFixtureWith(t, withSignup(signup.Closed, "example.com"))
	c.user("admin@example.com", "correct horse")
	c.provider.signInAs(fakePerson{sub: "9001", name: "Carol", email: "carol@example.com", verified: true})
	resp = c.signIn(c.browser(), "github", "")
	json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != http.StatusForbidden || e.Code != httpapi.CodeSignupClosed {
		t.Errorf("closed, allowed domain = %d %+v, want 403 %s", resp.StatusCode, e, httpapi.CodeSignupClosed)
	}
	c.noUser("carol@example.com")
	// The first user of an empty installation signs in under any policy.
	first := newOAuthFixtureWith(t, withSignup(signup.Closed))
	first.provider.signInAs(fakePerson{sub: "1", name: "Root", email: "root@elsewhere.test", verified: true})
	if resp := first.signIn(first.browser(), "github", ""); resp.StatusCode != http.StatusFound {
		t.Errorf("first user, closed = %d", resp.StatusCode)
	}
	if u, err := first.db.GetUserByEmail(ctx, "root@elsewhere.test"); err != nil || u.Role != store.RoleAdmin {
		t.Errorf("first OAuth user = %+v, %v", u, err)
	}
}

// newToken is a fresh API token of u's, valid for an hour from the
// fixture's clock.
func (f *hardenedFixture) newToken(u store.User) string {
	f.t.Helper()
	secret, hash, err := auth.NewToken()
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.db.CreateAPIToken(f.t.Context(), store.APIToken{UserID: u.ID, Name: "t" + randomString(), Hash: hash, ExpiresAt: f.clock.Now().Add(time.Hour)}); err != nil {
		f.t.Fatal(err)
	}
	return secret
}

// signInWith is signIn with the start's query parameters given whole.
func (f *oauthFixture) signInWith(browser *http.Client, provider string, q url.Values) *http.Response {
	f.t.Helper()
	resp, err := browser.Get(f.url + "/api/v1/auth/oauth/" + provider + "?" + q.Encode())
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestOpenAPISignupBounds keeps the document's invite bounds and policy
// names in step with the code.
func TestOpenAPISignupBounds(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	req := doc.Components.Schemas["CreateInviteRequest"].Value
	days := req.Properties["expires_in_days"].Value
	if *days.Min != 1 || *days.Max != MaxInviteDays || days.Default != float64(DefaultInviteDays) {
		t.Errorf("CreateInviteRequest.expires_in_days %v..%v default %v, want 1..%d default %d", *days.Min, *days.Max, days.Default, MaxInviteDays, DefaultInviteDays)
	}
	if got := fmt.Sprint(req.Properties["role"].Value.Enum); got != "[member admin]" {
		t.Errorf("CreateInviteRequest.role enum %s", got)
	}
	var policies []any
	for _, p := range signup.Policies {
		policies = append(policies, string(p))
	}
	if got := doc.Components.Schemas["ProviderList"].Value.Properties["signup_policy"].Value.Enum; fmt.Sprint(got) != fmt.Sprint(policies) {
		t.Errorf("ProviderList.signup_policy enum %v, want %v", got, policies)
	}
	var states []any
	for _, s := range []store.InviteState{store.InvitePending, store.InviteUsed, store.InviteRevoked, store.InviteExpired} {
		states = append(states, string(s))
	}
	if got := doc.Components.Schemas["Invite"].Value.Properties["state"].Value.Enum; fmt.Sprint(got) != fmt.Sprint(states) {
		t.Errorf("Invite.state enum %v, want %v", got, states)
	}
	if _, ok := doc.Components.Schemas["SignupRequest"].Value.Properties["invite"]; !ok {
		t.Error("SignupRequest has no invite")
	}
}
