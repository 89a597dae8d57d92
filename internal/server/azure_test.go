package server

import (
	"path/filepath"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/store"
)

// TestAzureRuntimeConfigChecked: an azure runtime configured without what
// it needs, or with a region name Azure does not spell, stops the server
// at start with the flags to set, before any call to Azure.
func TestAzureRuntimeConfigChecked(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, err := store.Open(ctx, "", filepath.Join(t.TempDir(), "dev8.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = newRuntime(ctx, Config{}, RuntimeAzure, runtimeDeps{db: db})
	for _, want := range []string{"--azure-subscription", "--azure-resource-group", "--azure-storage-account", "--azure-regions", "--azure-supervisor-image"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("azure runtime without configuration: %v; want it to name %s", err, want)
		}
	}
	cfg := Config{Azure: AzureConfig{SubscriptionID: "s", ResourceGroup: "rg", StorageAccount: "acct1", SupervisorImage: "img", Regions: []string{"West Europe"}}}
	if _, err := newRuntime(ctx, cfg, RuntimeAzure, runtimeDeps{db: db}); err == nil || !strings.Contains(err.Error(), `region "West Europe"`) {
		t.Errorf("azure runtime with a bad region: %v", err)
	}
}
