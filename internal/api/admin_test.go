package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/catalog"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/quota"
	"dev8.dev/dev8/internal/runtime/local"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// newLifecycleFixture is the hardened fixture with a real lifecycle manager
// (a local runtime, never run: environments stay as the API records them),
// the catalog seeded, throttling off and no quotas unless mutate sets
// cfg.Quotas (withQuotas).
func newLifecycleFixture(t *testing.T, mutate func(*Config)) *hardenedFixture {
	t.Helper()
	return newHardenedFixture(t, func(cfg *Config) {
		rt, err := local.New(local.Config{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		db := cfg.Store.(*store.DB)
		if err := catalog.Seed(t.Context(), db); err != nil {
			t.Fatal(err)
		}
		cfg.RateLimits = httpmw.RateLimits{PrincipalRate: -1, IPRate: -1, LoginFailures: -1, LoginIPFailures: -1}
		if mutate != nil {
			mutate(cfg)
		}
		// One policy reports the quotas (the API) and enforces them (the
		// manager), as in the server.
		if cfg.Quotas == nil {
			cfg.Quotas = quota.New(db, quota.Limits{}, cfg.Now)
		}
		cfg.Lifecycle = lifecycle.New(lifecycle.Config{Store: db, Runtime: rt, Now: cfg.Now, AgentTokens: cfg.AgentTokens, Quota: cfg.Quotas})
	})
}

// withQuotas gives every user of the fixture l.
func withQuotas(l quota.Limits) func(*Config) {
	return func(cfg *Config) { cfg.Quotas = quota.New(cfg.Store, l, cfg.Now) }
}

func decodeBody[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	return v
}

func wantStatus(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d: %s", rec.Code, status, rec.Body.String())
	}
	if code != "" {
		if got := decodeError(t, rec).Code; got != code {
			t.Fatalf("code %q, want %q: %s", got, code, rec.Body.String())
		}
	}
}

type managedUserResponse struct {
	User  sdk.ManagedUser `json:"user"`
	Quota sdk.Quota       `json:"quota"`
}

func TestAdminManagesUsers(t *testing.T) {
	t.Parallel()
	f := newLifecycleFixture(t, withQuotas(quota.Limits{MaxEnvironments: 10, MaxRunningEnvironments: 5}))
	admin, adminTok := f.user("root@example.com", "password-1")
	ada, adaTok := f.user("ada@example.com", "password-1")
	bob, bobTok := f.user("bob@example.com", "password-1")
	if admin.Role != store.RoleAdmin || ada.Role != store.RoleMember {
		t.Fatalf("roles: %s %s", admin.Role, ada.Role)
	}
	patch := func(tok, id, body string) *httptest.ResponseRecorder {
		return f.do(http.MethodPatch, "/api/v1/users/"+id, reqOpts{token: tok, body: body})
	}

	// Listing is for admins.
	wantStatus(t, f.do(http.MethodGet, "/api/v1/users", reqOpts{token: adaTok}), http.StatusForbidden, httpapi.CodeForbidden)
	rec := f.do(http.MethodGet, "/api/v1/users?role=member&limit=1&offset=1", reqOpts{token: adminTok})
	wantStatus(t, rec, http.StatusOK, "")
	list := decodeBody[struct {
		Users []sdk.ManagedUser `json:"users"`
		Total int               `json:"total"`
		Limit int               `json:"limit"`
	}](t, rec)
	if list.Total != 2 || len(list.Users) != 1 || list.Users[0].ID != bob.ID || list.Limit != 1 {
		t.Errorf("members page: %+v", list)
	}
	for _, q := range []string{"role=owner", "suspended=yes", "limit=0", "limit=101", "offset=-1", "email=" + strings.Repeat("a", 255)} {
		wantStatus(t, f.do(http.MethodGet, "/api/v1/users?"+q, reqOpts{token: adminTok}), http.StatusBadRequest, httpapi.CodeValidation)
	}

	// A member reads only themself; anyone else looks missing.
	rec = f.do(http.MethodGet, "/api/v1/users/"+ada.ID, reqOpts{token: adaTok})
	wantStatus(t, rec, http.StatusOK, "")
	self := decodeBody[managedUserResponse](t, rec)
	if self.User.Email != ada.Email || self.Quota.MaxEnvironments != 10 || self.Quota.MaxRunningEnvironments != 5 || self.Quota.Overrides.MaxEnvironments != nil {
		t.Errorf("self: %+v", self)
	}
	wantStatus(t, f.do(http.MethodGet, "/api/v1/users/"+ada.ID, reqOpts{token: bobTok}), http.StatusNotFound, httpapi.CodeNotFound)
	wantStatus(t, f.do(http.MethodGet, "/api/v1/users/usr_nobody", reqOpts{token: adminTok}), http.StatusNotFound, httpapi.CodeNotFound)
	wantStatus(t, f.do(http.MethodGet, "/api/v1/users/"+ada.ID, reqOpts{token: adminTok}), http.StatusOK, "")

	// Changing is for admins, even on oneself.
	wantStatus(t, patch(adaTok, ada.ID, `{"role":"admin"}`), http.StatusForbidden, httpapi.CodeForbidden)
	for _, body := range []string{`{}`, `{"role":"owner"}`, `{"quota":{"max_environments":-1}}`, `{"quota":{"max_running_environments":10001}}`,
		`{"quota":{"monthly_budget_usd":-0.5}}`, `{"quota":{"max_environments":"ten"}}`, `{"quota":{"cpu":1}}`, `{"suspended":"yes"}`} {
		wantStatus(t, patch(adminTok, ada.ID, body), http.StatusBadRequest, "")
	}
	wantStatus(t, patch(adminTok, "usr_nobody", `{"role":"admin"}`), http.StatusNotFound, httpapi.CodeNotFound)

	// The last active admin can neither step down nor be suspended.
	wantStatus(t, patch(adminTok, admin.ID, `{"role":"member"}`), http.StatusConflict, httpapi.CodeConflict)
	wantStatus(t, patch(adminTok, admin.ID, `{"suspended":true}`), http.StatusConflict, httpapi.CodeConflict)

	// Promote Ada; then the first admin may step down.
	rec = patch(adminTok, ada.ID, `{"role":"admin","quota":{"max_environments":20,"monthly_budget_usd":12.5}}`)
	wantStatus(t, rec, http.StatusOK, "")
	got := decodeBody[managedUserResponse](t, rec)
	if got.User.Role != "admin" || got.Quota.MaxEnvironments != 20 || got.Quota.MaxRunningEnvironments != 5 || got.Quota.MonthlyBudgetUSD != 12.5 ||
		*got.User.QuotaOverrides.MaxEnvironments != 20 || got.User.QuotaOverrides.MaxRunningEnvironments != nil {
		t.Errorf("after promote: %+v", got)
	}
	// null returns a field to the default and leaves the others alone.
	rec = patch(adminTok, ada.ID, `{"quota":{"max_environments":null}}`)
	wantStatus(t, rec, http.StatusOK, "")
	if got := decodeBody[managedUserResponse](t, rec); got.Quota.MaxEnvironments != 10 || got.User.QuotaOverrides.MaxEnvironments != nil || got.Quota.MonthlyBudgetUSD != 12.5 {
		t.Errorf("after reset: %+v", got)
	}
	wantStatus(t, patch(adminTok, admin.ID, `{"role":"member"}`), http.StatusOK, "")

	// Suspension takes effect on the very next request, for API tokens and
	// sessions alike, and is undone.
	bobSession := auth.SessionTokenPrefix + "matrix-session-of-bob"
	if _, err := f.db.CreateSession(t.Context(), store.Session{UserID: bob.ID, Hash: auth.HashToken(bobSession), ExpiresAt: f.clock.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{bobTok, bobSession} {
		wantStatus(t, f.do(http.MethodGet, "/api/v1/auth/me", reqOpts{token: tok}), http.StatusOK, "")
	}
	rec = patch(adaTok, bob.ID, `{"suspended":true}`)
	wantStatus(t, rec, http.StatusOK, "")
	if got := decodeBody[managedUserResponse](t, rec); !got.User.Suspended || got.User.SuspendedAt == nil {
		t.Errorf("suspended user: %+v", got.User)
	}
	for _, tok := range []string{bobTok, bobSession} {
		rec = f.do(http.MethodGet, "/api/v1/auth/me", reqOpts{token: tok})
		wantStatus(t, rec, http.StatusUnauthorized, httpapi.CodeUnauthorized)
		if msg := decodeError(t, rec).Error; msg != "Account suspended" {
			t.Errorf("suspended answer %q", msg)
		}
	}
	rec = f.do(http.MethodGet, "/api/v1/users?suspended=true", reqOpts{token: adaTok})
	if l := decodeBody[struct {
		Users []sdk.ManagedUser `json:"users"`
	}](t, rec); len(l.Users) != 1 || l.Users[0].ID != bob.ID {
		t.Errorf("suspended filter: %+v", l)
	}
	wantStatus(t, patch(adaTok, bob.ID, `{"suspended":false}`), http.StatusOK, "")
	for _, tok := range []string{bobTok, bobSession} {
		wantStatus(t, f.do(http.MethodGet, "/api/v1/auth/me", reqOpts{token: tok}), http.StatusOK, "")
	}

	// Every change is in the audit log, with who did it.
	events, _, err := f.db.ListAuditEvents(t.Context(), store.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, e := range events {
		if !strings.HasPrefix(e.Action, "user.") {
			continue
		}
		seen = append(seen, fmt.Sprintf("%s %s %v %v->%v", e.Action, e.ObjectID, e.Success, e.Detail["from"], e.Detail["to"]))
	}
	for _, want := range []string{
		fmt.Sprintf("user.role_change %s false <nil>->member", admin.ID),
		fmt.Sprintf("user.suspend %s false <nil>-><nil>", admin.ID),
		fmt.Sprintf("user.role_change %s true member->admin", ada.ID),
		fmt.Sprintf("user.role_change %s true admin->member", admin.ID),
		fmt.Sprintf("user.suspend %s true <nil>-><nil>", bob.ID),
		fmt.Sprintf("user.unsuspend %s true <nil>-><nil>", bob.ID),
	} {
		if !strings.Contains(strings.Join(seen, "\n"), want) {
			t.Errorf("audit log lacks %q; has:\n%s", want, strings.Join(seen, "\n"))
		}
	}
	quotaChanges := 0
	for _, e := range events {
		if e.Action == "user.quota_change" && e.ObjectID == ada.ID && e.Success && e.ActorUserID == admin.ID {
			quotaChanges++
		}
	}
	if quotaChanges != 2 {
		t.Errorf("%d quota changes audited, want 2", quotaChanges)
	}
}

func TestQuotasOnCreateAndStart(t *testing.T) {
	t.Parallel()
	f := newLifecycleFixture(t, withQuotas(quota.Limits{MaxEnvironments: 3, MaxRunningEnvironments: 2}))
	f.clock.Set(time.Now().UTC())
	_, adminTok := f.user("root@example.com", "password-1")
	ada, adaTok := f.user("ada@example.com", "password-1")
	create := func(tok, name, extra string) *httptest.ResponseRecorder {
		return f.do(http.MethodPost, "/api/v1/environments", reqOpts{token: tok, body: `{"name":"` + name + `"` + extra + `}`})
	}
	wantQuota := func(rec *httptest.ResponseRecorder, details string) {
		t.Helper()
		wantStatus(t, rec, http.StatusForbidden, httpapi.CodeQuotaExceeded)
		if got := decodeError(t, rec).Details; !strings.Contains(got, details) {
			t.Errorf("details %q, want it to say %q", got, details)
		}
	}
	envID := func(rec *httptest.ResponseRecorder) string {
		t.Helper()
		wantStatus(t, rec, http.StatusCreated, "")
		return decodeBody[struct {
			Environment sdk.Environment `json:"environment"`
		}](t, rec).Environment.ID
	}

	first := envID(create(adaTok, "one", ""))
	envID(create(adaTok, "two", ""))
	// Both are CREATING, which counts as running.
	wantQuota(create(adaTok, "three", ""), "the limit is 2 running environments and 2 are in use")
	if _, err := f.db.UpdateEnvironment(t.Context(), first, func(e *store.Environment) error { e.Status = store.StatusStopped; return nil }); err != nil {
		t.Fatal(err)
	}
	envID(create(adaTok, "three", ""))
	wantQuota(create(adaTok, "four", ""), "the limit is 3 environments and 3 are in use")
	// Starting the stopped one would make three running.
	wantQuota(f.do(http.MethodPost, "/api/v1/environments/"+first+"/start", reqOpts{token: adaTok}), "2 running environments")
	// An admin acting for Ada is bound by Ada's quota, not their own.
	wantQuota(create(adminTok, "for-ada", `,"user_id":"`+ada.ID+`"`), "3 environments")
	wantQuota(f.do(http.MethodPost, "/api/v1/environments/"+first+"/start", reqOpts{token: adminTok}), "2 running environments")
	envID(create(adminTok, "admins-own", ""))

	rec := f.do(http.MethodGet, "/api/v1/auth/me", reqOpts{token: adaTok})
	wantStatus(t, rec, http.StatusOK, "")
	me := decodeBody[struct {
		Quota sdk.Quota `json:"quota"`
	}](t, rec)
	if me.Quota.Environments != 3 || me.Quota.RunningEnvironments != 2 || me.Quota.MaxEnvironments != 3 || me.Quota.MaxRunningEnvironments != 2 {
		t.Errorf("me quota: %+v", me.Quota)
	}

	// An override lifts the running limit (0: unlimited).
	wantStatus(t, f.do(http.MethodPatch, "/api/v1/users/"+ada.ID, reqOpts{token: adminTok, body: `{"quota":{"max_running_environments":0}}`}), http.StatusOK, "")
	wantStatus(t, f.do(http.MethodPost, "/api/v1/environments/"+first+"/start", reqOpts{token: adaTok}), http.StatusOK, "")

	// The monthly budget: Ada's environments have cost $3 this month.
	if _, err := f.db.UpdateEnvironment(t.Context(), first, func(e *store.Environment) error { e.TotalCost = 3; return nil }); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, f.do(http.MethodPatch, "/api/v1/users/"+ada.ID, reqOpts{token: adminTok, body: `{"quota":{"max_environments":0,"monthly_budget_usd":3}}`}), http.StatusOK, "")
	wantQuota(create(adaTok, "five", ""), "the monthly budget is $3.00 and $3.00 has been spent")
	wantStatus(t, f.do(http.MethodPatch, "/api/v1/users/"+ada.ID, reqOpts{token: adminTok, body: `{"quota":{"monthly_budget_usd":3.5}}`}), http.StatusOK, "")
	envID(create(adaTok, "five", ""))
}

// Concurrent creates through the API by a user with room for one more:
// exactly one gets through.
func TestQuotaHoldsUnderConcurrentCreates(t *testing.T) {
	t.Parallel()
	f := newLifecycleFixture(t, withQuotas(quota.Limits{MaxEnvironments: 1}))
	_, tok := f.user("ada@example.com", "password-1")
	const n = 10
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		codes = make([]int, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			codes[i] = f.do(http.MethodPost, "/api/v1/environments", reqOpts{token: tok, body: fmt.Sprintf(`{"name":"e%d"}`, i)}).Code
		})
	}
	close(start)
	wg.Wait()
	created := 0
	for _, c := range codes {
		switch c {
		case http.StatusCreated:
			created++
		case http.StatusForbidden:
		default:
			t.Errorf("unexpected status %d", c)
		}
	}
	if created != 1 {
		t.Errorf("%d of %d creates succeeded (%v), want 1", created, n, codes)
	}
}

// TestOpenAPIUserBounds keeps the document's limits for the user routes in
// step with the code.
func TestOpenAPIUserBounds(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	quota := doc.Components.Schemas["UpdateUserRequest"].Value.Properties["quota"].Value
	for name, max := range map[string]float64{
		"max_environments":         maxQuotaEnvironments,
		"max_running_environments": maxQuotaEnvironments,
		"monthly_budget_usd":       maxQuotaBudgetUSD,
	} {
		p := quota.Properties[name]
		if p == nil || p.Value.Min == nil || *p.Value.Min != 0 || p.Value.Max == nil || *p.Value.Max != max || !p.Value.Nullable {
			t.Errorf("UpdateUserRequest.quota.%s: want a nullable 0..%v", name, max)
		}
	}
	if ap := quota.AdditionalProperties.Has; ap == nil || *ap {
		t.Error("UpdateUserRequest.quota: the server rejects unknown fields, so it needs additionalProperties: false")
	}
	list := documentedOperations(doc)["GET /api/v1/users"]
	if list == nil {
		t.Fatal("GET /api/v1/users is not documented")
	}
	limit := list.Parameters.GetByInAndName("query", "limit").Schema.Value
	if *limit.Min != 1 || *limit.Max != maxListLimit || limit.Default != float64(defaultListLimit) {
		t.Errorf("users limit %v..%v default %v, want 1..%d default %d", *limit.Min, *limit.Max, limit.Default, maxListLimit, defaultListLimit)
	}
	if email := list.Parameters.GetByInAndName("query", "email").Schema.Value; email.MaxLength == nil || *email.MaxLength != maxUserFilterEmail {
		t.Errorf("users email maxLength %v, want %d", deref(email.MaxLength), maxUserFilterEmail)
	}
}
