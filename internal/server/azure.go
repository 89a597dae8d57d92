package server

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"dev8.dev/dev8/internal/runtime/azure"
	"dev8.dev/dev8/internal/store"
)

// AzureConfig configures the azure runtime (see runtime/azure.Config,
// whose fields these are). Credentials are never configured here: the
// runtime uses DefaultAzureCredential (AZURE_* variables, workload or
// managed identity, the Azure CLI's login).
type AzureConfig struct {
	SubscriptionID string
	ResourceGroup  string
	// Regions: the first is the default.
	Regions              []string
	StorageAccount       string
	StorageResourceGroup string
	// Subnets: region → subnet resource id (a virtual network).
	Subnets         map[string]string
	SupervisorImage string
	// AgentURL, if set, is where container groups reach this server
	// instead of Config.AgentURL.
	AgentURL    string
	MaxCPU      float64
	MaxMemoryGB float64
	// Prices are Container Instances' list prices by region, over
	// azure.DefaultPrices (--azure-prices).
	Prices map[string]azure.Price
	// Registry credentials applied to every container group: a password
	// (prefer DEV8_AZURE_REGISTRY_PASSWORD) or a managed identity's
	// resource id.
	RegistryServer, RegistryUsername, RegistryPassword, RegistryIdentity string
}

func newAzureRuntime(ctx context.Context, cfg Config, db *store.DB, imageRefs map[string]string) (*azure.Runtime, error) {
	a := cfg.Azure
	installation, err := db.InstallationSecret(ctx, "installation-id", 8)
	if err != nil {
		return nil, err
	}
	var registries []azure.Registry
	if a.RegistryServer != "" {
		registries = append(registries, azure.Registry{Server: a.RegistryServer, Username: a.RegistryUsername, Password: a.RegistryPassword, Identity: a.RegistryIdentity})
	}
	rt, err := azure.New(azure.Config{
		SubscriptionID:       a.SubscriptionID,
		ResourceGroup:        a.ResourceGroup,
		Regions:              a.Regions,
		StorageAccount:       a.StorageAccount,
		StorageResourceGroup: a.StorageResourceGroup,
		Subnets:              a.Subnets,
		SupervisorImage:      a.SupervisorImage,
		AgentURL:             a.AgentURL,
		ImageRefs:            imageRefs,
		Registries:           registries,
		MaxCPU:               a.MaxCPU,
		MaxMemoryGB:          a.MaxMemoryGB,
		Prices:               a.Prices,
		ExtraEnv:             cfg.SupervisorEnv,
		Installation:         hex.EncodeToString(installation),
		Logger:               cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	// Credentials, resource group, storage account and regions are checked
	// now, so a bad configuration stops the server instead of the first
	// create.
	pingCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := rt.Ping(pingCtx); err != nil {
		return nil, fmt.Errorf("azure runtime: %w", err)
	}
	return rt, nil
}
