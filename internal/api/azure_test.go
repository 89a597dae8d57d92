package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"dev8.dev/dev8/internal/catalog"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/quota"
	"dev8.dev/dev8/internal/runtime/azure"
	"dev8.dev/dev8/internal/runtime/azure/azurefake"
	"dev8.dev/dev8/internal/secretbox"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// TestCreateOnAzure is issue 17's check through the API and a running
// lifecycle: a create with 0.5 vCPU, cloud_region westeurope and a secret
// makes a container group (read back from the in-memory ARM) with CPU
// 0.5 in westeurope, the secret as a secure value, no IP address and no
// ports, and the Azure Files share at /workspace; the environment costs
// westeurope's price. A secret stored with PUT /secrets is not in the
// group at all: the supervisor fetches it over the tunnel (the manifest),
// so ARM never holds it.
func TestCreateOnAzure(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	srv := azurefake.New("dev8-rg", "dev8files", "eastus", "westeurope")
	// Test prices, not Azure's: westeurope is priced here, eastus (the
	// default region) by azure.DefaultPrices.
	westeurope := azure.Price{VCPUSecond: 0.00002, GBSecond: 0.000002}
	rt, err := azure.New(azure.Config{
		SubscriptionID: srv.Subscription, ResourceGroup: srv.ResourceGroup, StorageAccount: srv.StorageAccount,
		Regions:         []string{"eastus", "westeurope"},
		Prices:          map[string]azure.Price{"westeurope": westeurope},
		SupervisorImage: "dev8.azurecr.io/dev8-supervisor:test", DefaultImage: "dev8.azurecr.io/dev8-base:test",
		Installation: "test", PollInterval: 5 * time.Millisecond,
		Retry:      policy.RetryOptions{RetryDelay: time.Millisecond, MaxRetryDelay: time.Second},
		Credential: srv.Credential(), ClientOptions: srv.ClientOptions(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(bytes.Repeat([]byte{5}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	var m *lifecycle.Manager
	f := newHardenedFixture(t, func(cfg *Config) {
		db := cfg.Store.(*store.DB)
		if err := catalog.Seed(ctx, db); err != nil {
			t.Fatal(err)
		}
		cfg.RateLimits = httpmw.RateLimits{PrincipalRate: -1, IPRate: -1, LoginFailures: -1, LoginIPFailures: -1}
		cfg.SecretBox = box
		cfg.Quotas = quota.New(db, quota.Limits{}, cfg.Now)
		m = lifecycle.New(lifecycle.Config{Store: db, Runtime: rt, AgentTokens: cfg.AgentTokens, Quota: cfg.Quotas,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RetryBase: time.Millisecond})
		m.SetURLs(lifecycle.URLs{AccessURL: "https://dev8.example.com", AgentURL: "https://dev8.example.com"})
		cfg.Lifecycle = m
	})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		<-done
	})
	events, unsubscribe := m.Subscribe()
	defer unsubscribe()

	_, tok := f.user("ada@example.com", "password-1")
	wantStatus(t, f.do(http.MethodPut, "/api/v1/secrets/NPM_TOKEN", reqOpts{token: tok, body: `{"value":"npm-stored-s3cret"}`}), http.StatusCreated, "")
	rec := f.do(http.MethodPost, "/api/v1/environments", reqOpts{token: tok, body: `{"name":"half","runtime":"azure","cpu_cores":0.5,"cloud_region":"westeurope",` +
		`"environment_variables":{"GITHUB_TOKEN":"ghp_s3cret"}}`})
	wantStatus(t, rec, http.StatusCreated, "")
	created := decodeBody[struct{ Environment sdk.Environment }](t, rec).Environment
	if !strings.Contains(rec.Body.String(), `"cpu_cores":0.5`) {
		t.Errorf("the answer does not say cpu_cores 0.5: %s", rec.Body)
	}
	hourly := func(p azure.Price) float64 {
		c := 0.5*p.VCPUSecond*3600 + float64(created.MemoryGB)*p.GBSecond*3600 + float64(created.StorageGB)*lifecycle.DefaultPricing.StorageGBHour
		return math.Round(c*10000) / 10000
	}
	if created.CPUCores != 0.5 || created.CloudRegion != "westeurope" || created.Runtime != "azure" || created.EstimatedCostPerHour != hourly(westeurope) {
		t.Errorf("created %v vCPU in %s on %s at %v/h; want 0.5 in westeurope on azure at %v/h (westeurope's price)",
			created.CPUCores, created.CloudRegion, created.Runtime, created.EstimatedCostPerHour, hourly(westeurope))
	}
	if eastus := hourly(azure.DefaultPrices["eastus"]); eastus == hourly(westeurope) {
		t.Fatalf("the test's westeurope price costs what eastus does (%v): it proves nothing", eastus)
	}

	for env := range events {
		if env.ID != created.ID {
			continue
		}
		if env.Status == store.StatusError {
			t.Fatalf("environment failed: %s", env.StatusReason)
		}
		if env.Status == store.StatusRunning {
			break
		}
	}
	g, ok := srv.Sent(azure.ObjectName(created.ID))
	if !ok {
		t.Fatal("no container group was made")
	}
	if *g.Location != "westeurope" {
		t.Errorf("location %q, want westeurope", *g.Location)
	}
	p := g.Properties
	if p.IPAddress != nil {
		t.Errorf("IP address %+v; want none", p.IPAddress)
	}
	if len(p.Containers) != 1 {
		t.Fatalf("%d containers, want the workspace's", len(p.Containers))
	}
	c := p.Containers[0].Properties
	if got := *c.Resources.Requests.CPU; got != 0.5 {
		t.Errorf("CPU %v, want 0.5", got)
	}
	if len(c.Ports) != 0 {
		t.Errorf("ports %+v; want none", c.Ports)
	}
	var secure bool
	for _, e := range c.EnvironmentVariables {
		if *e.Name == "GITHUB_TOKEN" {
			secure = e.Value == nil && e.SecureValue != nil && *e.SecureValue == "ghp_s3cret"
		}
	}
	if !secure {
		t.Errorf("GITHUB_TOKEN is not a secure value only: %s", jsonOf(t, c.EnvironmentVariables))
	}
	var workspace string
	for _, mnt := range c.VolumeMounts {
		if *mnt.MountPath == azure.WorkspaceDir {
			workspace = *mnt.Name
		}
	}
	var share bool
	for _, v := range p.Volumes {
		if *v.Name == workspace && v.AzureFile != nil {
			share = *v.AzureFile.ShareName == azure.ObjectName(created.ID) && *v.AzureFile.StorageAccountName == "dev8files"
		}
	}
	if workspace == "" || !share {
		t.Errorf("/workspace is not the environment's Azure Files share: mounts %s volumes %s", jsonOf(t, c.VolumeMounts), jsonOf(t, p.Volumes))
	}
	if sent := jsonOf(t, g); strings.Contains(sent, "npm-stored-s3cret") {
		t.Error("a stored secret is in the container group sent to ARM; it goes to the supervisor over the tunnel only")
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(js)
}
