package azure

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	azruntime "github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"dev8.dev/dev8/internal/runtime"
)

// ops are the calls that change something, in order.
func ops(calls []string) []string {
	var out []string
	for _, c := range calls {
		if !strings.Contains(c, ".Get ") && !strings.Contains(c, ".List") && !strings.HasPrefix(c, "StorageAccounts.") {
			out = append(out, c)
		}
	}
	return out
}

// TestStopStartDelete: each operation calls what it should: a start makes
// the group, a stop stops it (keeping group and share), a start with the
// same spec is BeginStart, a spec with a new token replaces the group, a
// delete removes the group and leaves no share (the workspace's nor the
// home's).
func TestStopStartDelete(t *testing.T) {
	t.Parallel()
	srv := newFake()
	rt := newFakeRuntime(t, srv)
	ctx := t.Context()
	spec := runtime.Spec{EnvironmentID: "env-ops", CPUCores: 1, MemoryGB: 2, StorageGB: 1, AgentToken: "first"}
	step := func(what string, f func() error, want ...string) {
		t.Helper()
		before := len(srv.Calls())
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := ops(srv.Calls()[before:]); !slices.Equal(got, want) {
			t.Fatalf("%s called %q, want %q", what, got, want)
		}
	}
	create := func() error { _, err := rt.Create(ctx, spec); return err }
	start := func() error { _, err := rt.Start(ctx, spec.EnvironmentID); return err }
	stop := func() error { return rt.Stop(ctx, spec.EnvironmentID) }
	step("create", create, "FileShares.Create dev8-env-ops-home", "FileShares.Create dev8-env-ops")
	step("start", start, "ContainerGroups.BeginCreateOrUpdate dev8-env-ops")
	step("stop", stop, "ContainerGroups.Stop dev8-env-ops")
	if !srv.HasGroup("dev8-env-ops") || !srv.HasShare("dev8-env-ops") || !srv.HasShare("dev8-env-ops-home") {
		t.Fatal("stop removed the group or a share")
	}
	step("stop again", stop)
	step("create, same spec", create)
	step("start, same spec", start, "ContainerGroups.BeginStart dev8-env-ops")
	step("stop", stop, "ContainerGroups.Stop dev8-env-ops")
	spec.AgentToken = "second"
	step("create, new token", create)
	step("start, new token", start, "ContainerGroups.BeginDelete dev8-env-ops", "ContainerGroups.BeginCreateOrUpdate dev8-env-ops")
	g, _ := srv.Sent("dev8-env-ops")
	var token *string
	for _, v := range g.Properties.Volumes {
		if *v.Name == volumeAgent {
			token = v.Secret[agentTokenFile]
		}
	}
	if token == nil || *token != "c2Vjb25k" {
		t.Fatalf("agent token volume %v, want base64 of the new token", token)
	}
	step("delete", func() error { return rt.Delete(ctx, spec.EnvironmentID) }, "ContainerGroups.BeginDelete dev8-env-ops", "FileShares.Delete dev8-env-ops-home", "FileShares.Delete dev8-env-ops")
	if srv.HasGroup("dev8-env-ops") || srv.HasShare("dev8-env-ops") || srv.HasShare("dev8-env-ops-home") {
		t.Fatal("delete left the group or a share")
	}
	step("delete again", func() error { return rt.Delete(ctx, spec.EnvironmentID) })
}

// TestFailedProvisioning: a group whose provisioning fails is an error
// with the reason (permanent or not as the code says), Inspect tells why,
// and the next start replaces the failed group.
func TestFailedProvisioning(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code      string
		status    int
		permanent bool
		reason    string
	}{
		{"ContainerGroupQuotaReached", http.StatusConflict, true, "quota in westeurope is used up"},
		{"ServiceUnavailable", http.StatusConflict, false, "no capacity for this size in westeurope"},
		{"InaccessibleImage", http.StatusBadRequest, true, "cannot pull the image"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			t.Parallel()
			srv := newFake()
			rt := newFakeRuntime(t, srv)
			ctx := t.Context()
			if _, err := rt.Create(ctx, runtime.Spec{EnvironmentID: "env-f"}); err != nil {
				t.Fatal(err)
			}
			srv.FailNextProvisioning("dev8-env-f", tc.status, tc.code, "said by ARM")
			_, err := rt.Start(ctx, "env-f")
			if err == nil || !strings.Contains(err.Error(), tc.reason) || runtime.IsPermanent(err) != tc.permanent {
				t.Fatalf("Start = %v (permanent %v); want %q, permanent %v", err, runtime.IsPermanent(err), tc.reason, tc.permanent)
			}
			inst, err := rt.Inspect(ctx, "env-f")
			if err != nil || inst.State != runtime.StateStopped || !strings.Contains(inst.ExitReason, "said by ARM") {
				t.Fatalf("Inspect = %+v, %v; want stopped with ARM's reason", inst, err)
			}
			if inst, err := rt.Start(ctx, "env-f"); err != nil || inst.State != runtime.StateRunning {
				t.Fatalf("Start after a failed provisioning = %+v, %v", inst, err)
			}
		})
	}
}

// TestThrottling: 429s with Retry-After are waited out as long as they
// say; more than the retries allow is an error worth retrying later.
func TestThrottling(t *testing.T) {
	t.Parallel()
	srv := newFake()
	rt := newFakeRuntime(t, srv)
	ctx := t.Context()
	if _, err := rt.Create(ctx, runtime.Spec{EnvironmentID: "env-t"}); err != nil {
		t.Fatal(err)
	}
	srv.Inject(3, http.StatusTooManyRequests, 100*time.Millisecond)
	began := time.Now()
	if _, err := rt.Inspect(ctx, "env-t"); err != nil {
		t.Fatalf("Inspect through 3 throttled answers: %v", err)
	}
	if d := time.Since(began); d < 300*time.Millisecond {
		t.Fatalf("Inspect took %v: Retry-After (3 × 100ms) was not honoured", d)
	}
	srv.Inject(10, http.StatusServiceUnavailable, 0)
	_, err := rt.Inspect(ctx, "env-t")
	if err == nil || runtime.IsPermanent(err) || errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("Inspect through more 503s than retries = %v; want a transient error", err)
	}
	n := 0
	for _, c := range srv.Calls() {
		if strings.HasPrefix(c, "injected ") {
			n++
		}
	}
	if n != 3+7 { // 6 retries: 7 tries
		t.Fatalf("%d injected answers met, want 10", n)
	}
}

// TestExitReported: a workspace that ends on its own is stopped with the
// exit code as its reason; a requested stop has none; a group deleted
// behind Dev8's back while running is said so.
func TestExitReported(t *testing.T) {
	t.Parallel()
	srv := newFake()
	rt := newFakeRuntime(t, srv)
	ctx := t.Context()
	if _, err := rt.Create(ctx, runtime.Spec{EnvironmentID: "env-x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Start(ctx, "env-x"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Exit("dev8-env-x", 137); err != nil {
		t.Fatal(err)
	}
	inst, err := rt.Inspect(ctx, "env-x")
	if err != nil || inst.State != runtime.StateStopped || !strings.Contains(inst.ExitReason, "exited with code 137") {
		t.Fatalf("Inspect after an exit = %+v, %v", inst, err)
	}
	if err := rt.Stop(ctx, "env-x"); err != nil {
		t.Fatal(err)
	}
	if inst, _ := rt.Inspect(ctx, "env-x"); inst.ExitReason != "" {
		t.Fatalf("ExitReason after Stop = %q", inst.ExitReason)
	}
	if _, err := rt.Start(ctx, "env-x"); err != nil {
		t.Fatal(err)
	}
	rt2 := newFakeRuntime(t, srv)
	if err := rt2.Delete(ctx, "env-x"); err != nil {
		t.Fatal(err)
	}
	// The share is gone too: nothing is left, so not found.
	if _, err := rt.Inspect(ctx, "env-x"); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("Inspect after Delete = %v", err)
	}
}

// TestClassify maps ARM's answers to reasons and retryability.
func TestClassify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status    int
		code      string
		permanent bool
		want      string
	}{
		{403, "AuthorizationFailed", true, "may not do this"},
		{404, "ResourceGroupNotFound", true, "resource group does not exist"},
		{400, "NoRegisteredProviderFound", true, "not available in eastus"},
		{400, "InvalidRequestContent", true, "Azure refused the request"},
		{409, "Conflict", false, "Conflict, HTTP 409"},
		{429, "TooManyRequests", false, "TooManyRequests"},
		{500, "InternalServerError", false, "InternalServerError"},
		{409, "ContainerGroupQuotaReached", true, "quota in eastus"},
		{409, "ServiceUnavailable", false, "capacity"},
	} {
		body := `{"error":{"code":"` + tc.code + `","message":"the message"}}`
		req, _ := http.NewRequest(http.MethodPut, "https://management.azure.com/x", nil)
		resp := &http.Response{StatusCode: tc.status, Header: http.Header{"X-Ms-Error-Code": {tc.code}}, Body: io.NopCloser(strings.NewReader(body)), Request: req}
		err := classify(azruntime.NewResponseError(resp), "eastus")
		if runtime.IsPermanent(err) != tc.permanent || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "the message") {
			t.Errorf("%d %s: %v (permanent %v); want %q, permanent %v", tc.status, tc.code, err, runtime.IsPermanent(err), tc.want, tc.permanent)
		}
	}
}

// TestPing: the start-up check passes on a good configuration and names
// what is wrong otherwise.
func TestPing(t *testing.T) {
	t.Parallel()
	srv := newFake()
	if err := newFakeRuntime(t, srv).Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	badCred := &azfake.TokenCredential{}
	badCred.SetError(errors.New("no login"))
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"credential":      {func(c *Config) { c.Credential = badCred }, "no credential"},
		"resource group":  {func(c *Config) { c.ResourceGroup = "other" }, "resource group does not exist"},
		"storage account": {func(c *Config) { c.StorageAccount = "nosuchaccount" }, "storage account nosuchaccount not found"},
		"region":          {func(c *Config) { c.Regions = []string{"westeurope", "marsnorth"} }, "region marsnorth"},
	} {
		err := newFakeRuntime(t, srv, tc.edit).Ping(t.Context())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Ping = %v; want %q", name, err, tc.want)
		}
	}
}
