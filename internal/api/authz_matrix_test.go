package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/gateway"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/oauth"
	"dev8.dev/dev8/internal/quota"
	"dev8.dev/dev8/internal/secretbox"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// The authorization matrix: every route the router serves, asked by every
// kind of caller, must answer as this table says. A route without an entry
// fails the test, so a new route cannot ship without a decision on who may
// call it.

// caller is who sends a request.
type caller int

const (
	anonymous  caller = iota
	owner             // a member who owns the environment (and the other objects) in the path
	member            // another member
	admin             // an admin who owns nothing in the path
	agentOther        // the supervisor of an environment of another user
	agentSelf         // the supervisor of the environment in the path
	numCallers
)

var callerNames = [numCallers]string{"anonymous", "owner", "member", "admin", "agent-other", "agent-self"}

// outcome is the class of an answer.
type outcome string

const (
	allowed outcome = "ok"  // authorization let it through (any other status, 400 included)
	refused outcome = "401" // not authenticated
	denied  outcome = "403" // FORBIDDEN: authenticated, but not this kind of caller
	hidden  outcome = "404" // NOT_FOUND: the object is not visible to the caller
)

type matrixRow [numCallers]outcome

// Rows for the common shapes of route.
var (
	// Anyone, signed in or not.
	public = matrixRow{allowed, allowed, allowed, allowed, allowed, allowed}
	// Any user; agent tokens are refused.
	anyUser = matrixRow{refused, allowed, allowed, allowed, denied, denied}
	// Admins only.
	adminOnly = matrixRow{refused, denied, denied, allowed, denied, denied}
	// A user's own object (token, key, secret, session): the caller's own
	// only, admins included.
	ownObject = matrixRow{refused, allowed, hidden, hidden, denied, denied}
	// An environment, for its owner and admins; its own agent is refused
	// (requireUser), other agents and members do not see it.
	envForUser = matrixRow{refused, allowed, hidden, allowed, hidden, denied}
	// An environment's supervisor routes.
	envForAgent = matrixRow{refused, denied, hidden, denied, hidden, allowed}
	// Both the owner (and admins) and the environment's own supervisor.
	envForBoth = matrixRow{refused, allowed, hidden, allowed, hidden, allowed}
	// The IDE under /w/{id}: requireUser comes before the environment is
	// loaded, so every agent token is refused outright.
	ideRoute = matrixRow{refused, allowed, hidden, allowed, denied, denied}
)

// authzMatrix is keyed "METHOD /route" as chi.Walk reports it after
// normaliseRoute; the IDE's catch-all is "* /w/{id}/ide/{path}" (every
// method).
var authzMatrix = map[string]matrixRow{
	"GET /health":                                public,
	"GET /live":                                  public,
	"GET /ready":                                 public,
	"HEAD /health":                               public,
	"HEAD /live":                                 public,
	"HEAD /ready":                                public,
	"GET /api/v1/openapi.json":                   public,
	"POST /api/v1/auth/signup":                   public, // {} is a 400 for everyone
	"POST /api/v1/auth/login":                    public,
	"GET /api/v1/auth/providers":                 public,
	"GET /api/v1/auth/oauth/{provider}":          public,
	"GET /api/v1/auth/oauth/{provider}/callback": public,
	"GET /api/v1/auth/me":                        anyUser,
	"PATCH /api/v1/auth/me":                      anyUser,
	"POST /api/v1/auth/password":                 anyUser, // {} is a 400; a wrong current password a FORBIDDEN, never hidden
	"POST /api/v1/auth/logout":                   anyUser, // with a bearer token: 400 "not a session"
	"GET /api/v1/auth/sessions":                  anyUser,
	"DELETE /api/v1/auth/sessions/{id}":          ownObject,
	"GET /api/v1/templates":                      anyUser,
	"GET /api/v1/instance-types":                 anyUser,   // all=true is for admins (TestAdminManagesInstanceTypes)
	"POST /api/v1/instance-types":                adminOnly, // {} is a 400 for an admin
	"PATCH /api/v1/instance-types/{name}":        adminOnly, // {} is a 400 for an admin
	"GET /api/v1/environments":                   anyUser,
	"GET /api/v1/environments/events":            anyUser, // a stream: only its status is read
	"POST /api/v1/environments":                  anyUser,
	"GET /api/v1/tokens":                         anyUser,
	"POST /api/v1/tokens":                        anyUser,
	"DELETE /api/v1/tokens/{id}":                 ownObject,
	"GET /api/v1/audit":                          adminOnly,
	"POST /api/v1/snapshots/verify":              adminOnly,
	"GET /api/v1/ssh-keys":                       anyUser,
	"POST /api/v1/ssh-keys":                      anyUser,
	"DELETE /api/v1/ssh-keys/{id}":               ownObject,
	"GET /api/v1/secrets":                        anyUser,
	"PUT /api/v1/secrets/{name}":                 anyUser, // creates the caller's own secret of that name
	"DELETE /api/v1/secrets/{name}":              ownObject,
	"GET /api/v1/git":                            anyUser,
	"PUT /api/v1/git":                            anyUser,
	"DELETE /api/v1/git/github-token":            anyUser,
	"GET /api/v1/users":                          adminOnly,
	// A member reads themself (owner is the user in the path); anyone
	// else but an admin is told there is no such user.
	"GET /api/v1/users/{id}":   {refused, allowed, hidden, allowed, denied, denied},
	"PATCH /api/v1/users/{id}": adminOnly,
	// Invites are the installation's: admins only, every admin any
	// invite; a member is refused, not told whether one exists.
	"GET /api/v1/invites":                        adminOnly,
	"POST /api/v1/invites":                       adminOnly, // {} is a 201 for an admin: an invite for anyone
	"DELETE /api/v1/invites/{id}":                adminOnly,
	"POST /api/v1/environments/{id}/activity":    envForBoth,
	"GET /api/v1/environments/{id}":              envForUser,
	"DELETE /api/v1/environments/{id}":           envForUser,
	"POST /api/v1/environments/{id}/start":       envForUser,
	"POST /api/v1/environments/{id}/stop":        envForUser,
	"GET /api/v1/environments/{id}/ssh":          envForUser,
	"GET /api/v1/environments/{id}/port-forward": envForUser,
	"GET /api/v1/environments/{id}/pty":          envForUser,
	"GET /api/v1/environments/{id}/usage":        envForUser,
	"GET /api/v1/environments/{id}/snapshots":    envForUser,
	"POST /api/v1/environments/{id}/snapshots":   envForUser,
	"GET /api/v1/environments/{id}/tunnel":       envForAgent,
	"GET /api/v1/environments/{id}/manifest":     envForAgent,
	"GET /api/v1/environments/{id}/supervisor":   envForAgent,
	"POST /api/v1/environments/{id}/usage":       envForAgent,
	"GET /api/v1/environments/{id}/ide/health":   envForUser,
	"POST /api/v1/environments/{id}/app-tickets": envForUser,
	"GET /w/{id}/ide":                            ideRoute,
	"* /w/{id}/ide/{path}":                       ideRoute,
	"GET /w/{id}/ports/{port}":                   ideRoute,
	"* /w/{id}/ports/{port}/{path}":              ideRoute,
	// Only with --unsafe-path-based-apps (the IDE on the dashboard's
	// origin): the test walks the router in both configurations.
	"GET /w/{id}/activity.js": ideRoute,
	"POST /w/{id}/activity":   ideRoute,

	// Snapshots: {sid} is filled with the environment's id, so there is
	// no such snapshot, but authorization answers first.
	"GET /api/v1/environments/{id}/snapshots/{sid}":          envForUser,
	"POST /api/v1/environments/{id}/snapshots/{sid}/restore": envForUser,
}

// matrixWorld is what one cell's request is made against: fresh users,
// environments and objects, so that a cell that deletes or revokes
// something cannot change another cell's answer.
type matrixWorld struct {
	tokens     [numCallers]string
	owner      store.User
	env        store.Environment
	tokenID    string // one of owner's API tokens, not the one it calls with
	sshKeyID   string
	secretName string
	sessionID  string
	inviteID   string
}

func newMatrixWorld(t *testing.T, f *hardenedFixture, adminUser store.User, n int) matrixWorld {
	t.Helper()
	ctx := t.Context()
	newUser := func(email string) store.User {
		u, err := f.db.CreateUser(ctx, store.User{Email: email, Name: email, PasswordHash: "not-a-bcrypt-hash"})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	newToken := func(u store.User, name string) (string, string) {
		secret, hash, err := auth.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		tok, err := f.db.CreateAPIToken(ctx, store.APIToken{UserID: u.ID, Name: name, Hash: hash, ExpiresAt: f.clock.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return secret, tok.ID
	}
	newEnv := func(u store.User) store.Environment {
		e, err := f.db.CreateEnvironment(ctx, store.Environment{UserID: u.ID, Name: "matrix", Status: store.StatusStopped,
			TemplateName: "nodejs", CPUCores: 2, MemoryGB: 4, StorageGB: 20, EstimatedCostPerHour: 0.1})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	w := matrixWorld{secretName: "MATRIX_SECRET"}
	w.owner = newUser(fmt.Sprintf("owner%d@example.com", n))
	other := newUser(fmt.Sprintf("member%d@example.com", n))
	w.env = newEnv(w.owner)
	otherEnv := newEnv(other)
	w.tokens[owner], _ = newToken(w.owner, "matrix")
	w.tokens[member], _ = newToken(other, "matrix")
	w.tokens[admin], _ = newToken(adminUser, fmt.Sprintf("matrix%d", n))
	w.tokens[agentSelf] = f.agentToken(w.env.ID)
	w.tokens[agentOther] = f.agentToken(otherEnv.ID)
	_, w.tokenID = newToken(w.owner, "victim")

	key, err := f.db.CreateSSHKey(ctx, store.SSHKey{UserID: w.owner.ID, Name: "laptop",
		PublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMatrix matrix", Fingerprint: fmt.Sprintf("SHA256:matrix%d", n)})
	if err != nil {
		t.Fatal(err)
	}
	w.sshKeyID = key.ID
	if _, _, err := f.db.PutUserSecret(ctx, w.owner.ID, w.secretName, []byte("ciphertext")); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("matrix-session-%d", n)))
	sess, err := f.db.CreateSession(ctx, store.Session{UserID: w.owner.ID, Hash: sum[:], ExpiresAt: f.clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	w.sessionID = sess.ID
	inv, err := f.db.CreateInvite(ctx, store.Invite{Hash: sum[:], Role: store.RoleMember, CreatedBy: adminUser.ID, ExpiresAt: f.clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	w.inviteID = inv.ID
	// DELETE /git/github-token acts on the caller's own token: every
	// user has one to delete.
	for _, u := range []store.User{w.owner, other, adminUser} {
		if _, err := f.db.UpdateGitSettings(ctx, u.ID, func(g *store.GitSettings) error { g.GitHubToken = []byte("ciphertext"); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

var routeParam = regexp.MustCompile(`\{([^{}]+)\}`)

// path fills route's parameters in from w; a parameter it does not know
// fails the test, so a new kind of path needs a decision here too.
func (w matrixWorld) path(t *testing.T, route string) string {
	t.Helper()
	return routeParam.ReplaceAllStringFunc(route, func(p string) string {
		prefix := route[:strings.Index(route, p)]
		switch {
		case strings.HasPrefix(prefix, "/api/v1/environments/"), strings.HasPrefix(prefix, "/w/") && p == "{id}":
			return w.env.ID
		case p == "{path}":
			return "index.html"
		case p == "{port}":
			return "3000"
		case prefix == "/api/v1/tokens/":
			return w.tokenID
		case prefix == "/api/v1/users/":
			return w.owner.ID
		case prefix == "/api/v1/ssh-keys/":
			return w.sshKeyID
		case prefix == "/api/v1/secrets/":
			return w.secretName
		case prefix == "/api/v1/auth/sessions/":
			return w.sessionID
		case prefix == "/api/v1/invites/":
			return w.inviteID
		case prefix == "/api/v1/instance-types/":
			return "balanced"
		case prefix == "/api/v1/auth/oauth/":
			return "github"
		}
		t.Errorf("%s: the matrix test does not know what to put in %s; teach matrixWorld.path", route, p)
		return "unknown"
	})
}

// classify reads an answer as an outcome. 403 counts as a refusal only
// with code FORBIDDEN (QUOTA_EXCEEDED is not about who is asking) and 404
// only with NOT_FOUND from a handler (the router's "No such route" is a
// failure of its own).
func classify(rec *httptest.ResponseRecorder) (outcome, sdk.ErrorResponse) {
	var body sdk.ErrorResponse
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	switch {
	case rec.Code == http.StatusUnauthorized:
		return refused, body
	case rec.Code == http.StatusForbidden && body.Code == httpapi.CodeForbidden:
		return denied, body
	case rec.Code == http.StatusNotFound && body.Code == httpapi.CodeNotFound:
		return hidden, body
	}
	return allowed, body
}

// answerWriter records an answer and says when it has begun.
type answerWriter struct {
	*httptest.ResponseRecorder
	once  sync.Once
	began chan struct{}
}

func (w *answerWriter) WriteHeader(code int) {
	w.ResponseRecorder.WriteHeader(code)
	w.once.Do(func() { close(w.began) })
}

func (w *answerWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseRecorder.Write(b)
	w.once.Do(func() { close(w.began) })
	return n, err
}

// serveUntilAnswered serves req and returns once the handler has returned,
// cancelling the request as soon as the answer has begun: a stream (Server-
// Sent Events) would otherwise never end. The status is decided by then.
func serveUntilAnswered(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	w := &answerWriter{ResponseRecorder: httptest.NewRecorder(), began: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(w, req.WithContext(ctx))
	}()
	select {
	case <-done:
	case <-w.began:
		cancel()
		<-done
	}
	return w.ResponseRecorder
}

func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	box, err := secretbox.New(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	// A provider, so that the OAuth routes get past "no such provider";
	// they redirect, or refuse a missing state, without calling it.
	gh, err := oauth.NewGitHub(oauth.GitHubConfig{ClientID: "matrix", ClientSecret: "matrix", URL: "https://github.invalid"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	// Workspace apps on their own origins (the default), and the IDE on the
	// dashboard's origin (--unsafe-path-based-apps), which routes /w/{id}/
	// differently; the second run asks only those routes.
	for _, mode := range []struct {
		name      string
		pathBased bool
	}{{"apps on their own origins", false}, {"path-based apps", true}} {
		t.Run(mode.name, func(t *testing.T) {
			authorizationMatrix(t, box, gh, mode.pathBased, seen)
		})
	}
	for key := range authzMatrix {
		if !seen[key] {
			t.Errorf("authzMatrix has %q, which the router does not serve", key)
		}
	}
}

// authorizationMatrix asks every route of one configuration of the router
// as every caller; seen collects the matrix keys it served.
func authorizationMatrix(t *testing.T, box *secretbox.Box, gh oauth.Provider, pathBased bool, seen map[string]bool) {
	f := newLifecycleFixture(t, func(cfg *Config) {
		cfg.SecretBox = box
		cfg.PathBasedApps = pathBased
		cfg.OAuthProviders = []oauth.Provider{gh}
		cfg.Quotas = quota.New(cfg.Store, quota.Limits{}, cfg.Now) // unlimited: quotas are not what this test is about
	})
	adminUser, err := f.db.CreateUser(t.Context(), store.User{Email: "admin@example.com", Name: "admin", PasswordHash: "x"})
	if err != nil || adminUser.Role != store.RoleAdmin {
		t.Fatalf("first user: %+v, %v", adminUser, err)
	}

	routes, ok := f.handler.(chi.Routes)
	if !ok {
		t.Fatal("Handler() does not return a chi.Routes; cannot walk it")
	}
	type served struct{ method, route, key string }
	var all []served
	err = chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if pathBased && !strings.HasPrefix(route, "/w/") {
			return nil // asked in the other configuration
		}
		if path, ok := catchAllRoutes[chiParamRegexp.ReplaceAllString(route, "{$1}")]; ok {
			all = append(all, served{method, path, "* " + path})
			seen["* "+path] = true
			return nil
		}
		key := method + " " + normaliseRoute(route)
		all = append(all, served{method, normaliseRoute(route), key})
		seen[key] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, s := range all {
		if _, ok := authzMatrix[s.key]; !ok && !slices.Contains(missing, s.key) {
			missing = append(missing, s.key)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("routes without an entry in authzMatrix (decide who may call them):\n\t%s", strings.Join(missing, "\n\t"))
	}
	n := 0
	for _, s := range all {
		row, ok := authzMatrix[s.key]
		if !ok {
			continue
		}
		for c := range numCallers {
			n++
			w := newMatrixWorld(t, f, adminUser, n)
			t.Run(fmt.Sprintf("%s %s/%s", s.method, s.route, callerNames[c]), func(t *testing.T) {
				path := w.path(t, s.route)
				var body []byte
				if s.method == http.MethodPost || s.method == http.MethodPut || s.method == http.MethodPatch {
					body = []byte("{}")
				}
				req := httptest.NewRequestWithContext(t.Context(), s.method, path, bytes.NewReader(body))
				req.RemoteAddr = "192.0.2.1:1234"
				if body != nil {
					req.Header.Set("Content-Type", "application/json")
				}
				// The IDE's activity reports must say they come from the
				// IDE page (ideActivity); the header changes nothing else.
				req.Header.Set(gateway.ActivityHeader, "1")
				if c != anonymous {
					req.Header.Set("Authorization", "Bearer "+w.tokens[c])
				}
				rec := serveUntilAnswered(f.handler, req)
				got, eb := classify(rec)
				if rec.Code == http.StatusNotFound && eb.Error == "No such route" || rec.Code == http.StatusMethodNotAllowed {
					t.Fatalf("%s %s: the router does not serve it (%d %s)", s.method, path, rec.Code, eb.Code)
				}
				if got != row[c] {
					t.Errorf("as %s: got %s (%d %s %q), want %s", callerNames[c], got, rec.Code, eb.Code, eb.Details, row[c])
				}
			})
		}
	}
}
