package lifecycle

import (
	"context"
	"testing"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/runtime/runtimetest"
)

// TestMemRuntimeContract holds the lifecycle's test runtime to the contract
// the real engines pass, so the lifecycle tests exercise real behaviour.
func TestMemRuntimeContract(t *testing.T) {
	t.Parallel()
	rt := newMemRuntime()
	runtimetest.RunWithOptions(t, func(*testing.T) runtime.Runtime { return rt }, runtimetest.Options{
		WriteFile: func(_ context.Context, _ runtime.Runtime, inst runtime.Instance, name string, data []byte) error {
			return rt.writeFile(inst.EnvironmentID, name, data)
		},
		ReadFile: func(_ context.Context, _ runtime.Runtime, inst runtime.Instance, name string) ([]byte, error) {
			return rt.readFile(inst.EnvironmentID, name)
		},
		LoseStorage: func(_ context.Context, _ runtime.Runtime, inst runtime.Instance) error {
			return rt.loseStorage(inst.EnvironmentID)
		},
	})
}
