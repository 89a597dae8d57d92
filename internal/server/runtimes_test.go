package server_test

import (
	"net/http"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/sdk"
)

// TestTemplatesSayWhereTheyRun: GET /templates says, per template, where a
// create that names no runtime goes and whether it can go ahead, and the
// same per runtime (local: the host's tools); a create naming a runtime
// this server does not offer is a 400 that creates nothing; the seed's
// cloud_provider names the runtime too.
func TestTemplatesSayWhereTheyRun(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", nil)
	token, _ := ts.user("ada@example.com")
	c := ts.client(token)

	tpls, err := c.Templates(ts.ctx)
	if err != nil || len(tpls) == 0 {
		t.Fatalf("templates: %d, %v", len(tpls), err)
	}
	for _, tp := range tpls {
		if tp.State != sdk.TemplateReady || tp.Runtime != "local" || tp.StateReason != "" ||
			len(tp.Runtimes) != 1 || tp.Runtimes[0] != (sdk.TemplateRuntime{Runtime: "local", State: sdk.TemplateReady, HostTools: true}) {
			t.Errorf("template %s: state %q %q on %q, runtimes %+v", tp.Name, tp.State, tp.StateReason, tp.Runtime, tp.Runtimes)
		}
	}

	_, err = c.CreateEnvironment(ts.ctx, sdk.CreateEnvironmentRequest{Name: "boxed", Runtime: "docker"})
	if !isAPIError(err, http.StatusBadRequest, sdk.CodeValidation) || !strings.Contains(err.Error(), `runtime "docker" is not one new environments can use on this server (configured: local)`) {
		t.Fatalf("create on docker: %v", err)
	}
	_, err = c.CreateEnvironment(ts.ctx, sdk.CreateEnvironmentRequest{Name: "boxed", Runtime: "local", CloudProvider: "DOCKER"})
	if !isAPIError(err, http.StatusBadRequest, sdk.CodeValidation) || !strings.Contains(err.Error(), "runtime and cloud_provider name different runtimes") {
		t.Fatalf("create with runtime and cloud_provider disagreeing: %v", err)
	}
	if list, err := c.ListEnvironments(ts.ctx, sdk.EnvironmentFilter{}); err != nil || list.Total != 0 {
		t.Fatalf("refused creates left environments: %+v, %v", list, err)
	}
	env := ts.create(token, sdk.CreateEnvironmentRequest{Name: "web", CloudProvider: "LOCAL"})
	if env.Runtime != "local" || env.CloudProvider != "LOCAL" {
		t.Fatalf("create with cloud_provider LOCAL: runtime %q, cloud_provider %q", env.Runtime, env.CloudProvider)
	}
}

// TestLocalRuntimeAdminOnly: the local runtime isolates nothing, so by
// default only admins run workspaces on it. A member sees it unavailable,
// with the reason, in GET /templates, and their create on it is a 403
// RUNTIME_ADMIN_ONLY that creates nothing; the admin's goes ahead.
func TestLocalRuntimeAdminOnly(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *server.Config) { c.LocalForMembers = false })
	adminToken, _ := ts.user("ada@example.com") // the first user: an admin
	memberToken, _ := ts.user("grace@example.com")
	member := ts.client(memberToken)

	tpls, err := member.Templates(ts.ctx)
	if err != nil || len(tpls) == 0 {
		t.Fatalf("templates: %d, %v", len(tpls), err)
	}
	for _, tp := range tpls {
		if tp.State != sdk.TemplateUnavailable || tp.Runtime != "local" || !strings.Contains(tp.StateReason, "only admins may run workspaces on it") {
			t.Errorf("template %s for a member: state %q %q on %q", tp.Name, tp.State, tp.StateReason, tp.Runtime)
		}
	}
	for _, req := range []sdk.CreateEnvironmentRequest{{Name: "mine"}, {Name: "mine", Runtime: "local"}} {
		_, err = member.CreateEnvironment(ts.ctx, req)
		if !isAPIError(err, http.StatusForbidden, sdk.CodeRuntimeAdminOnly) || !strings.Contains(err.Error(), "isolated from neither the server nor each other") {
			t.Fatalf("member's create %+v: %v", req, err)
		}
	}
	if list, err := member.ListEnvironments(ts.ctx, sdk.EnvironmentFilter{}); err != nil || list.Total != 0 {
		t.Fatalf("refused creates left environments: %+v, %v", list, err)
	}

	admin := ts.client(adminToken)
	if tpls, err = admin.Templates(ts.ctx); err != nil || tpls[0].State != sdk.TemplateReady {
		t.Fatalf("templates for the admin: %+v, %v", tpls, err)
	}
	if env := ts.create(adminToken, sdk.CreateEnvironmentRequest{Name: "mine"}); env.Runtime != "local" {
		t.Fatalf("admin's create: runtime %q", env.Runtime)
	}
}
