package lifecycle

import (
	"errors"
	"fmt"
	"testing"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/store"
)

// regionRuntime has regions (runtime.Regioner), as azure does.
type regionRuntime struct{ *memRuntime }

func (regionRuntime) Name() string { return "azure" }

func (regionRuntime) Region(name string) (string, error) {
	switch name {
	case "", "azure":
		return "westeurope", nil
	case "westeurope", "eastus":
		return name, nil
	}
	return "", fmt.Errorf("region %q is not configured (westeurope, eastus)", name)
}

// TestCreateRegion: on a runtime with regions, a create records the region
// it asked for, or the runtime's default, and hands it to the runtime; an
// unknown one is refused on cloud_region before anything is recorded.
func TestCreateRegion(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	db, user := seededStore(t, ctx)
	rt := regionRuntime{newMemRuntime()}
	m, _ := runManager(t, ctx, Config{Store: db, Runtimes: []runtime.Runtime{rt}})

	_, err := m.Create(ctx, CreateParams{UserID: user.ID, Name: "mars", CloudRegion: "marsnorth"})
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Field != "cloud_region" || ve.Message != `region "marsnorth" is not configured (westeurope, eastus)` {
		t.Fatalf("create in an unknown region = %v; want a ValidationError on cloud_region with the runtime's reason", err)
	}
	if _, total, err := db.ListEnvironments(ctx, store.EnvironmentFilter{}); err != nil || total != 0 {
		t.Fatalf("the refused create left %d environments (%v)", total, err)
	}
	for asked, want := range map[string]string{"": "westeurope", "eastus": "eastus"} {
		env, err := m.Create(ctx, CreateParams{UserID: user.ID, Name: "r-" + want, CloudRegion: asked})
		if err != nil {
			t.Fatalf("create in %q: %v", asked, err)
		}
		if env.CloudRegion != want {
			t.Errorf("create in %q recorded region %q, want %q", asked, env.CloudRegion, want)
		}
		if spec := m.specFor(env); spec.Region != want {
			t.Errorf("spec of %q has region %q, want %q", asked, spec.Region, want)
		}
	}
}

// pricedRuntime prices its own regions (runtime.RegionPricer), as azure
// does: westeurope only.
type pricedRuntime struct{ regionRuntime }

func (pricedRuntime) ComputePrices(region string) (cpuHour, memoryGBHour float64, ok bool) {
	if region == "westeurope" {
		return 0.1, 0.01, true
	}
	return 0, 0, false
}

// TestCostByRegion: an environment on a runtime that prices its regions
// costs its region's compute prices (storage at the installation's); a
// region the runtime has no price for costs the installation's prices;
// listings are priced in the default runtime's default region.
func TestCostByRegion(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	db, user := seededStore(t, ctx)
	install := Pricing{CPUHour: 1, MemoryGBHour: 0.5, StorageGBHour: 0.001}
	m, _ := runManager(t, ctx, Config{Store: db, Runtimes: []runtime.Runtime{pricedRuntime{regionRuntime{newMemRuntime()}}}, Pricing: install})
	for region, want := range map[string]float64{
		// 0.5 vCPU, 2 GB, 20 GB: the region's compute, the installation's storage.
		"westeurope": 0.5*0.1 + 2*0.01 + 20*0.001,
		"eastus":     0.5*1 + 2*0.5 + 20*0.001,
	} {
		env, err := m.Create(ctx, CreateParams{UserID: user.ID, Name: "cost-" + region, CloudRegion: region, CPUCores: 0.5, MemoryGB: 2, StorageGB: 20})
		if err != nil {
			t.Fatal(err)
		}
		if env.CPUCores != 0.5 || env.EstimatedCostPerHour != want {
			t.Errorf("%s: %v vCPU at %v/h, want 0.5 at %v/h", region, env.CPUCores, env.EstimatedCostPerHour, want)
		}
	}
	if got := m.ListPricing(); got != (Pricing{CPUHour: 0.1, MemoryGBHour: 0.01, StorageGBHour: 0.001}) {
		t.Errorf("listings priced %+v; want westeurope's compute (the default region) and the installation's storage", got)
	}
}
