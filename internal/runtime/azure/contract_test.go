package azure

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/runtime/azure/azurefake"
	"dev8.dev/dev8/internal/runtime/runtimetest"
)

const (
	testRG      = "dev8-test"
	testAccount = "dev8testfiles"
)

// newFake is a fake ARM with westeurope and eastus.
func newFake() *azurefake.Server { return azurefake.New(testRG, testAccount, "westeurope", "eastus") }

// newFakeRuntime is a Runtime on srv, with quick polls and retries.
func newFakeRuntime(t *testing.T, srv *azurefake.Server, edit ...func(*Config)) *Runtime {
	t.Helper()
	cfg := Config{
		SubscriptionID:  srv.Subscription,
		ResourceGroup:   srv.ResourceGroup,
		StorageAccount:  srv.StorageAccount,
		Regions:         []string{"westeurope", "eastus"},
		SupervisorImage: "dev8.azurecr.io/dev8-supervisor:test",
		DefaultImage:    "dev8.azurecr.io/dev8-base:test",
		Installation:    "test",
		PollInterval:    5 * time.Millisecond,
		Retry:           policy.RetryOptions{RetryDelay: time.Millisecond, MaxRetryDelay: time.Second},
		Credential:      srv.Credential(),
		ClientOptions:   srv.ClientOptions(),
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	for _, e := range edit {
		e(&cfg)
	}
	rt, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// fakeContractOptions reach a running group's /workspace through the fake
// (which runs no container: files live in the share it mounts there).
func fakeContractOptions(srv *azurefake.Server) runtimetest.Options {
	return runtimetest.Options{
		Timeout: time.Minute,
		WriteFile: func(_ context.Context, _ runtime.Runtime, inst runtime.Instance, name string, data []byte) error {
			return srv.WriteFile(ObjectName(inst.EnvironmentID), WorkspaceDir, name, data)
		},
		ReadFile: func(_ context.Context, _ runtime.Runtime, inst runtime.Instance, name string) ([]byte, error) {
			return srv.ReadFile(ObjectName(inst.EnvironmentID), WorkspaceDir, name)
		},
		LoseStorage: func(_ context.Context, _ runtime.Runtime, inst runtime.Instance) error {
			srv.LoseShare(ObjectName(inst.EnvironmentID))
			return nil
		},
	}
}

// TestContractFake runs the runtime contract on the in-memory ARM.
func TestContractFake(t *testing.T) {
	srv := newFake()
	runtimetest.RunWithOptions(t, func(t *testing.T) runtime.Runtime { return newFakeRuntime(t, srv) }, fakeContractOptions(srv))
}

// TestContractFakeThrottledAndSlow runs the contract on an ARM that
// throttles (429 with Retry-After, then 503) all along and whose groups
// take a few reads to run: the SDK's retry policy and the runtime's
// waiting carry every operation through.
func TestContractFakeThrottledAndSlow(t *testing.T) {
	srv := newFake()
	srv.StartDelay(2)
	srv.InjectEvery(3, 429, 2*time.Millisecond)
	srv.InjectEvery(7, 503, 0)
	t.Cleanup(func() {
		// After the subtests: the throttling was met, not dodged.
		n := 0
		for _, c := range srv.Calls() {
			if strings.HasPrefix(c, "injected ") {
				n++
			}
		}
		if n == 0 {
			t.Errorf("no request met an injected 429 or 503")
		}
	})
	runtimetest.RunWithOptions(t, func(t *testing.T) runtime.Runtime {
		return newFakeRuntime(t, srv, func(c *Config) { c.Retry.MaxRetries = 10 })
	}, fakeContractOptions(srv))
}
