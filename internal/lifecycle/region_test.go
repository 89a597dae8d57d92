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
