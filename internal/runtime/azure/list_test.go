package azure

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/runtime"
)

// TestListsAtOnce: listings made at the same time each see every
// workspace, across pages (the fake's pages hold two groups), and running
// ones as running. The generated fakes keep one pager per collection, so
// azurefake answers listings one at a time (it once let two share pages,
// and the contract suite's List saw a running workspace as stopped).
func TestListsAtOnce(t *testing.T) {
	t.Parallel()
	srv := newFake()
	rt := newFakeRuntime(t, srv)
	// Without the fix a listing that lost a page to another waited for
	// it for ever: fail instead.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const n = 5
	for i := range n {
		id := fmt.Sprintf("env-l%d", i)
		if _, err := rt.Create(ctx, runtime.Spec{EnvironmentID: id, CPUCores: 1, MemoryGB: 1, StorageGB: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := rt.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			list, err := rt.List(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			running := 0
			for _, inst := range list {
				if inst.State == runtime.StateRunning {
					running++
				}
			}
			if len(list) != n || running != n {
				t.Errorf("a listing saw %d workspaces, %d running; want %d running", len(list), running, n)
			}
		}()
	}
	wg.Wait()
}
