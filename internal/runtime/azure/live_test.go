package azure

import (
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/runtime/runtimetest"
)

// TestContractLive runs the runtime contract against real Azure when
// DEV8_TEST_AZURE_SUBSCRIPTION and DEV8_TEST_AZURE_RESOURCE_GROUP are set
// (with DEV8_TEST_AZURE_STORAGE_ACCOUNT, DEV8_TEST_AZURE_SUPERVISOR_IMAGE,
// DEV8_TEST_AZURE_IMAGE, and DEV8_TEST_AZURE_REGIONS, default westeurope);
// credentials come from the environment as for the server
// (DefaultAzureCredential). It makes and deletes container groups and
// shares named dev8-rtt-*, tagged with installation dev8-runtime-tests.
// Files in the workspace are not reached (ACI's exec is a websocket
// console), so the persistence and lost-storage tests are skipped.
func TestContractLive(t *testing.T) {
	sub, rg := os.Getenv("DEV8_TEST_AZURE_SUBSCRIPTION"), os.Getenv("DEV8_TEST_AZURE_RESOURCE_GROUP")
	if sub == "" || rg == "" {
		t.Skip("DEV8_TEST_AZURE_SUBSCRIPTION and DEV8_TEST_AZURE_RESOURCE_GROUP are not set")
	}
	if fi, err := os.Stat(WorkspaceDir); err == nil && fi.IsDir() {
		// The suite's default file access would use this machine's.
		t.Skipf("%s is a directory on this machine", WorkspaceDir)
	}
	regions := strings.Split(os.Getenv("DEV8_TEST_AZURE_REGIONS"), ",")
	if regions[0] == "" {
		regions = []string{"westeurope"}
	}
	cfg := Config{
		SubscriptionID:  sub,
		ResourceGroup:   rg,
		StorageAccount:  os.Getenv("DEV8_TEST_AZURE_STORAGE_ACCOUNT"),
		Regions:         regions,
		SupervisorImage: os.Getenv("DEV8_TEST_AZURE_SUPERVISOR_IMAGE"),
		DefaultImage:    os.Getenv("DEV8_TEST_AZURE_IMAGE"),
		CodeServer:      "none",
		Installation:    "dev8-runtime-tests",
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	first, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	runtimetest.RunWithOptions(t, func(t *testing.T) runtime.Runtime {
		rt, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}, runtimetest.Options{
		Timeout: 20 * time.Minute,
		Spec: func() runtime.Spec {
			// The smallest size ACI gives, with the supervisor pointed at
			// nowhere: the contract is about compute and storage, not the
			// tunnel.
			return runtime.Spec{Name: "contract", Template: "base", CPUCores: 0.5, MemoryGB: 1, StorageGB: 1, AgentURL: "https://dev8.invalid"}
		},
	})
}
