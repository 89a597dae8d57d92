package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/catalog"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// loadOpenAPI parses and validates the document the server embeds and
// serves.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openAPIDocument)
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// routerForOpenAPI is the real router. Its store and lifecycle are nil: the
// tests only walk it or stop at the authentication middleware.
func routerForOpenAPI(t *testing.T) http.Handler {
	t.Helper()
	return New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Handler()
}

// pathAppsRouterForOpenAPI is routerForOpenAPI with the IDE served on the
// dashboard's origin (--unsafe-path-based-apps), which routes the IDE's
// every method and its activity reports under /w/{id}/: the document
// describes both configurations.
func pathAppsRouterForOpenAPI(t *testing.T) http.Handler {
	t.Helper()
	return New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), PathBasedApps: true}).Handler()
}

// notRouted reports whether rec is the router's own refusal of a path or a
// method it does not serve.
func notRouted(rec *httptest.ResponseRecorder, body sdk.ErrorResponse) bool {
	return body.Code == httpapi.CodeNotFound && body.Error == "No such route" || rec.Code == http.StatusMethodNotAllowed
}

var chiParamRegexp = regexp.MustCompile(`\{([^{}:]+):[^{}]*\}`)

// normaliseRoute turns a chi route as Walk reports it into a document path:
// no trailing slash (chi's Route("/x").Get("/") is "/x/"), no mount
// wildcard, and no regexp in parameters ({id:[0-9]+} → {id}).
func normaliseRoute(route string) string {
	route = strings.TrimSuffix(route, "/*")
	route = chiParamRegexp.ReplaceAllString(route, "{$1}")
	if len(route) > 1 {
		route = strings.TrimSuffix(route, "/")
	}
	return route
}

// catchAllRoutes maps each catch-all route the router serves to the one
// document path that describes it: OpenAPI has no wildcard, so the rest of
// the URL is a path parameter. A catch-all registered with Handle serves
// every method chi knows, and chi.Walk reports it once per method.
var catchAllRoutes = map[string]string{
	"/w/{id}/ide/*":          "/w/{id}/ide/{path}",          // the way to the IDE (openIDE), or the path-based IDE (gateway.IDE)
	"/w/{id}/ports/{port}/*": "/w/{id}/ports/{port}/{path}", // the way to a port's app (openPort)
}

// undescribableMethods are methods chi serves for which an OpenAPI 3.0 path
// item has no operation. Only a catch-all in catchAllRoutes may serve them
// undocumented; any other route with them still fails the comparison.
var undescribableMethods = []string{http.MethodConnect, "QUERY"}

// documentedOperations maps "METHOD /path" to each operation in doc.
func documentedOperations(doc *openapi3.T) map[string]*openapi3.Operation {
	ops := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops[strings.ToUpper(method)+" "+path] = op
		}
	}
	return ops
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	t.Parallel()
	var raw map[string]any
	if err := json.Unmarshal(openAPIDocument, &raw); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if v, _ := raw["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Fatalf("openapi = %q, want an OpenAPI 3 version", v)
	}
	doc := loadOpenAPI(t)
	if doc.Info == nil || doc.Info.Title == "" || doc.Info.Version == "" {
		t.Error("info needs a title and a version")
	}
	if s := doc.Components.SecuritySchemes["bearerAuth"]; s == nil || s.Value == nil || s.Value.Type != "http" || !strings.EqualFold(s.Value.Scheme, "bearer") {
		t.Error("components.securitySchemes.bearerAuth must be an HTTP bearer scheme")
	}
	for _, name := range []string{"Environment", "User", "Template", "InstanceType", "Port", "CreateEnvironmentRequest", "ActionResponse", "Error"} {
		if doc.Components.Schemas[name] == nil {
			t.Errorf("components.schemas.%s is missing", name)
		}
	}
}

// TestOpenAPIMatchesRouter checks that the document and the router describe
// the same routes: every method and path the router serves is documented, and
// everything documented is served.
func TestOpenAPIMatchesRouter(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)

	served := map[string]bool{}
	catchAllsSeen := map[string]bool{}
	// Served in either configuration of workspace apps.
	for _, h := range []http.Handler{routerForOpenAPI(t), pathAppsRouterForOpenAPI(t)} {
		routes, ok := h.(chi.Routes)
		if !ok {
			t.Fatal("Handler() does not return a chi.Routes; cannot walk it")
		}
		err := chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
			if path, ok := catchAllRoutes[chiParamRegexp.ReplaceAllString(route, "{$1}")]; ok {
				catchAllsSeen[path] = true
				if !slices.Contains(undescribableMethods, method) {
					served[method+" "+path] = true
				}
				return nil
			}
			served[method+" "+normaliseRoute(route)] = true
			return nil
		})
		if err != nil {
			t.Fatalf("walk routes: %v", err)
		}
	}
	if len(served) == 0 {
		t.Fatal("the router serves no routes")
	}
	for route, path := range catchAllRoutes {
		if !catchAllsSeen[path] {
			t.Errorf("catchAllRoutes names %s (documented as %s), but the router does not serve it", route, path)
		}
	}
	documented := documentedOperations(doc)

	var undocumented, unserved []string
	for _, k := range sortedKeys(served) {
		if documented[k] == nil {
			undocumented = append(undocumented, k)
		}
	}
	for _, k := range sortedKeys(documented) {
		if !served[k] {
			unserved = append(unserved, k)
		}
	}
	if len(undocumented) > 0 {
		t.Errorf("served by the router but missing from openapi.json:\n\t%s", strings.Join(undocumented, "\n\t"))
	}
	if len(unserved) > 0 {
		t.Errorf("in openapi.json but not served by the router:\n\t%s", strings.Join(unserved, "\n\t"))
	}
}

// examplePath fills a document path's parameters in.
func examplePath(path string) string {
	return regexp.MustCompile(`\{[^{}]+\}`).ReplaceAllString(path, "env_openapitest")
}

// TestOpenAPISecurityMatchesRouter sends every documented operation without
// a token: exactly the operations the document marks bearerAuth must answer
// 401 UNAUTHORIZED. Each documented path must also reach its route (not the
// router's 404 or 405), with the trailing-slash form chi uses for
// /environments/{id} answering the same way.
func TestOpenAPISecurityMatchesRouter(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	h, pathApps := routerForOpenAPI(t), pathAppsRouterForOpenAPI(t)

	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			security := doc.Security
			if op.Security != nil {
				security = *op.Security
			}
			wantAuth := false
			for _, req := range security {
				if _, ok := req["bearerAuth"]; ok {
					wantAuth = true
				}
			}
			if len(security) > 0 && !wantAuth {
				t.Errorf("%s %s: security names a scheme other than bearerAuth", method, path)
			}

			url := examplePath(path)
			// Public handlers run for real with a nil store: signup and login
			// must answer 400 before they touch it, others may panic (500).
			router := h
			req := httptest.NewRequest(method, url, strings.NewReader(""))
			rec := httptest.NewRecorder()
			router.ServeHTTP(rec, req)
			var body sdk.ErrorResponse
			_ = json.Unmarshal(rec.Body.Bytes(), &body)
			if notRouted(rec, body) {
				// Routed only when the IDE is served on the dashboard's
				// origin (the IDE's other methods, its activity reports).
				router, rec, body = pathApps, httptest.NewRecorder(), sdk.ErrorResponse{}
				router.ServeHTTP(rec, httptest.NewRequest(method, url, strings.NewReader("")))
				_ = json.Unmarshal(rec.Body.Bytes(), &body)
			}
			gotAuth := rec.Code == http.StatusUnauthorized && body.Code == httpapi.CodeUnauthorized
			switch {
			case notRouted(rec, body):
				t.Errorf("%s %s (as %s): the router answers %d %s: the path is not routed", method, path, url, rec.Code, body.Code)
			case wantAuth && !gotAuth:
				t.Errorf("%s %s: documented as needing bearerAuth, but without a token it answers %d %s", method, path, rec.Code, body.Code)
			case !wantAuth && gotAuth:
				t.Errorf("%s %s: answers 401 without a token, but the document marks it public (security: [])", method, path)
			}
			if wantAuth && op.Responses.Value("401") == nil {
				t.Errorf("%s %s: needs a token but documents no 401 response", method, path)
			}
			if wantAuth && strings.HasSuffix(path, "}") {
				slash := httptest.NewRecorder()
				router.ServeHTTP(slash, httptest.NewRequest(method, url+"/", nil))
				if slash.Code != http.StatusUnauthorized {
					t.Errorf("%s %s/: chi's sub-router root should serve the trailing-slash form too, got %d", method, url, slash.Code)
				}
			}
		}
	}
}

// TestOpenAPIOperationsAreDocumented checks each operation is described and
// documents the answers its middleware and body decoding can give.
func TestOpenAPIOperationsAreDocumented(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	errorRef := "#/components/schemas/Error"
	opIDs := map[string]string{}

	for key, op := range documentedOperations(doc) {
		if op.Summary == "" || op.Description == "" {
			t.Errorf("%s: needs a summary and a description", key)
		}
		if op.OperationID == "" {
			t.Errorf("%s: needs an operationId", key)
		} else if other, dup := opIDs[op.OperationID]; dup {
			t.Errorf("%s: operationId %q is also used by %s", key, op.OperationID, other)
		} else {
			opIDs[op.OperationID] = key
		}
		if op.Responses == nil || op.Responses.Len() == 0 {
			t.Errorf("%s: documents no responses", key)
			continue
		}
		hasSuccess := false
		for status, resp := range op.Responses.Map() {
			code, err := strconv.Atoi(status)
			if err != nil {
				t.Errorf("%s: response %q: use explicit status codes", key, status)
				continue
			}
			if code < 400 {
				hasSuccess = true
				continue
			}
			mt := resp.Value.Content.Get("application/json")
			if mt == nil || mt.Schema == nil || mt.Schema.Ref != errorRef {
				t.Errorf("%s: response %d must be application/json with schema %s", key, code, errorRef)
			}
		}
		if !hasSuccess {
			t.Errorf("%s: documents no success response", key)
		}
		if strings.Contains(key, "{id}") && op.Responses.Value("404") == nil {
			t.Errorf("%s: loads an environment but documents no 404", key)
		}
		if op.RequestBody != nil {
			for _, status := range []string{"400", "413", "415"} {
				if op.Responses.Value(status) == nil {
					t.Errorf("%s: reads a JSON body but documents no %s", key, status)
				}
			}
			mt := op.RequestBody.Value.Content.Get("application/json")
			if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
				t.Errorf("%s: request body needs an application/json schema", key)
			} else if ap := mt.Schema.Value.AdditionalProperties.Has; ap == nil || *ap {
				// decodeJSON uses DisallowUnknownFields.
				t.Errorf("%s: the server rejects unknown fields, so the body schema needs additionalProperties: false", key)
			}
		}
	}
	if r := documentedOperations(doc)["GET /ready"]; r == nil || r.Responses.Value("503") == nil {
		t.Error("GET /ready must document its 503")
	}
}

// TestOpenAPIServed checks the route serves the embedded document as is.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	routerForOpenAPI(t).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.json = %d, want 200", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if rec.Body.String() != string(openAPIDocument) {
		t.Error("the served document differs from openapi.json")
	}
}

// TestOpenAPIBoundsMatchCode keeps the document's limits and enums in step
// with the constants the server enforces.
func TestOpenAPIBoundsMatchCode(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	schema := func(name string) *openapi3.Schema {
		t.Helper()
		ref := doc.Components.Schemas[name]
		if ref == nil || ref.Value == nil {
			t.Fatalf("components.schemas.%s is missing", name)
		}
		return ref.Value
	}
	prop := func(s *openapi3.Schema, schemaName, name string) *openapi3.Schema {
		t.Helper()
		p := s.Properties[name]
		if p == nil || p.Value == nil {
			t.Fatalf("%s.%s is missing", schemaName, name)
		}
		return p.Value
	}
	checkRange := func(what string, s *openapi3.Schema, lo, hi float64) {
		t.Helper()
		if s.Min == nil || *s.Min != lo || s.Max == nil || *s.Max != hi {
			t.Errorf("%s: minimum/maximum = %v/%v, want %v/%v", what, deref(s.Min), deref(s.Max), lo, hi)
		}
	}
	checkMax := func(what string, got *uint64, want int) {
		t.Helper()
		if got == nil || *got != uint64(want) {
			t.Errorf("%s = %v, want %d", what, deref(got), want)
		}
	}
	checkEnum := func(what string, got []any, want []string) {
		t.Helper()
		var gs []string
		for _, v := range got {
			s, _ := v.(string)
			gs = append(gs, s)
		}
		if !slices.Equal(gs, want) {
			t.Errorf("%s enum = %v, want %v", what, gs, want)
		}
	}

	create := schema("CreateEnvironmentRequest")
	const c = "CreateEnvironmentRequest"
	if !slices.Equal(create.Required, []string{"name"}) {
		t.Errorf("%s.required = %v, want [name]", c, create.Required)
	}
	cpu := prop(create, c, "cpu_cores")
	checkRange(c+".cpu_cores", cpu, catalog.MinCPUCores, catalog.MaxCPUCores)
	if cpu.Type.Is("integer") || cpu.MultipleOf == nil || *cpu.MultipleOf != catalog.CPUStep {
		t.Errorf("%s.cpu_cores: type %v multipleOf %v, want a number in steps of %v", c, cpu.Type, deref(cpu.MultipleOf), catalog.CPUStep)
	}
	checkRange(c+".memory_gb", prop(create, c, "memory_gb"), catalog.MinMemoryGB, catalog.MaxMemoryGB)
	checkRange(c+".storage_gb", prop(create, c, "storage_gb"), catalog.MinStorageGB, catalog.MaxStorageGB)
	autoStop := prop(create, c, "auto_stop_minutes")
	checkRange(c+".auto_stop_minutes", autoStop, 0, lifecycle.MaxAutoStopMinutes)
	if autoStop.Default != float64(lifecycle.DefaultAutoStopMinutes) {
		t.Errorf("%s.auto_stop_minutes default = %v, want %d", c, autoStop.Default, lifecycle.DefaultAutoStopMinutes)
	}
	envVars := prop(create, c, "environment_variables")
	checkMax(c+".environment_variables maxProperties", envVars.MaxProps, lifecycle.MaxEnvVars)
	if envVars.AdditionalProperties.Schema == nil || envVars.AdditionalProperties.Schema.Value == nil {
		t.Errorf("%s.environment_variables needs a schema for its values", c)
	} else {
		checkMax(c+".environment_variables values maxLength", envVars.AdditionalProperties.Schema.Value.MaxLength, lifecycle.MaxEnvValueBytes)
	}
	checkMax(c+".ports maxItems", prop(create, c, "ports").MaxItems, lifecycle.MaxPorts)
	name := prop(create, c, "name")
	checkMax(c+".name maxLength", name.MaxLength, 63)
	for _, n := range []string{"a", "my-dev-env", "x1", strings.Repeat("a", 63)} {
		if lifecycle.ValidateName(n) != nil || !regexp.MustCompile(name.Pattern).MatchString(n) {
			t.Errorf("name %q: the server and the document's pattern should both accept it", n)
		}
	}
	for _, n := range []string{"-a", "a-", "My-Env", "a_b", "a.b"} {
		if lifecycle.ValidateName(n) == nil || regexp.MustCompile(name.Pattern).MatchString(n) {
			t.Errorf("name %q: the server and the document's pattern should both reject it", n)
		}
	}

	port := schema("Port")
	checkRange("Port.port", prop(port, "Port", "port"), 1, 65535)
	checkEnum("Port.protocol", prop(port, "Port", "protocol").Enum, []string{"http", "https", "tcp", "udp"})

	var statuses []string
	for _, s := range store.Statuses {
		statuses = append(statuses, string(s))
	}
	checkEnum("EnvironmentStatus", schema("EnvironmentStatus").Enum, statuses)
	env := schema("Environment")
	if st := env.Properties["status"]; st == nil || st.Ref != "#/components/schemas/EnvironmentStatus" {
		t.Error("Environment.status must be the EnvironmentStatus enum")
	}
	checkEnum("User.role", prop(schema("User"), "User", "role").Enum, []string{string(store.RoleAdmin), string(store.RoleMember)})

	checkEnum("Error.code", prop(schema("Error"), "Error", "code").Enum, []string{
		httpapi.CodeInvalidJSON, httpapi.CodeValidation, httpapi.CodeUnauthorized, httpapi.CodeForbidden, httpapi.CodeNotFound, httpapi.CodeMethodNotAllowed,
		httpapi.CodeConflict, httpapi.CodeInvalidState, httpapi.CodeTooLarge, httpapi.CodeUnsupportedMedia, httpapi.CodeInternal, httpapi.CodeNotReady,
		httpapi.CodeUnavailable, httpapi.CodeRateLimited, httpapi.CodeTooManyStreams, httpapi.CodeQuotaExceeded, httpapi.CodeCSRFFailed, httpapi.CodeOAuthFailed, httpapi.CodeRuntimeAdminOnly, httpapi.CodeRuntimeUnavailable,
		httpapi.CodeSignupClosed, httpapi.CodeInviteRequired, httpapi.CodeInviteInvalid,
	})
	if !slices.Equal(schema("Error").Required, []string{"error", "details", "code"}) {
		t.Errorf("Error.required = %v, want [error details code]", schema("Error").Required)
	}

	signup := schema("SignupRequest")
	pw := prop(signup, "SignupRequest", "password")
	if pw.MinLength != auth.MinPasswordLength {
		t.Errorf("SignupRequest.password minLength = %d, want %d", pw.MinLength, auth.MinPasswordLength)
	}
	checkMax("SignupRequest.password maxLength", pw.MaxLength, auth.MaxPasswordLength)
	checkMax("SignupRequest.email maxLength", prop(signup, "SignupRequest", "email").MaxLength, maxEmailLength)
	checkMax("SignupRequest.name maxLength", prop(signup, "SignupRequest", "name").MaxLength, maxNameLength)

	// Every field the API sends for an environment is in Environment, and
	// required, and exactly the fields the API sends as null when they have
	// no value are nullable. The API renders sdk.Environment, so an empty
	// one, as the renderer fills it (lists and maps never null), shows
	// which fields are null on the wire.
	fields := map[string]bool{} // JSON name → nullable
	empty, err := json.Marshal(sdk.Environment{EnvironmentVariables: map[string]string{}, Ports: []sdk.Port{},
		Resources: map[string]string{}, NodeSelector: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	var wire map[string]json.RawMessage
	if err := json.Unmarshal(empty, &wire); err != nil {
		t.Fatal(err)
	}
	for name, v := range wire {
		fields[name] = string(v) == "null"
	}
	if n := reflect.TypeFor[sdk.Environment]().NumField(); len(fields) != n {
		t.Errorf("sdk.Environment has %d fields but renders %d", n, len(fields))
	}
	for _, field := range sortedKeys(fields) {
		p := env.Properties[field]
		if p == nil || p.Value == nil {
			t.Errorf("Environment.%s is missing", field)
			continue
		}
		if !slices.Contains(env.Required, field) {
			t.Errorf("Environment.%s is always sent, so it should be required", field)
		}
		if p.Value.Nullable != fields[field] {
			t.Errorf("Environment.%s: nullable = %v, want %v (nullable exactly when the API sends null for an empty value)", field, p.Value.Nullable, fields[field])
		}
	}
	for _, field := range sortedKeys(env.Properties) {
		if _, ok := fields[field]; !ok {
			t.Errorf("Environment.%s is documented but sdk.Environment has no such field", field)
		}
	}

	list := documentedOperations(doc)["GET /api/v1/environments"]
	if list == nil {
		t.Fatal("GET /api/v1/environments is not documented")
	}
	limit := list.Parameters.GetByInAndName("query", "limit")
	if limit == nil {
		t.Fatal("GET /api/v1/environments: no limit parameter")
	}
	checkRange("limit", limit.Schema.Value, 1, maxListLimit)
	if limit.Schema.Value.Default != float64(defaultListLimit) {
		t.Errorf("limit default = %v, want %d", limit.Schema.Value.Default, defaultListLimit)
	}
	for _, name := range []string{"status", "offset", "all", "user_id"} {
		if list.Parameters.GetByInAndName("query", name) == nil {
			t.Errorf("GET /api/v1/environments: no %s parameter", name)
		}
	}

	checkMax("UsageReport.samples maxItems", prop(schema("UsageReport"), "UsageReport", "samples").MaxItems, maxUsageSamples)
	listUsage := documentedOperations(doc)["GET /api/v1/environments/{id}/usage"]
	if listUsage == nil {
		t.Fatal("GET /api/v1/environments/{id}/usage is not documented")
	}
	usageLimit := listUsage.Parameters.GetByInAndName("query", "limit")
	if usageLimit == nil {
		t.Fatal("GET /api/v1/environments/{id}/usage: no limit parameter")
	}
	checkRange("usage limit", usageLimit.Schema.Value, 1, maxUsageLimit)
	if usageLimit.Schema.Value.Default != float64(defaultUsageLimit) {
		t.Errorf("usage limit default = %v, want %d", usageLimit.Schema.Value.Default, defaultUsageLimit)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
