package docker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/testutil/wait"
)

// fakeRegistry speaks just enough of the registry API (GET /v2/ and the
// manifests of any repository) for the engine to try a pull from it, and
// fail: the tag says how. A tag starting with
//
//	missing  answers 404 MANIFEST_UNKNOWN: the image does not exist
//	down     answers 503: the registry is failing for now
//	held     waits until release, then answers as missing
//
// It listens on loopback, which dockerd takes for an insecure (plain HTTP)
// registry without being told; nothing leaves the machine.
type fakeRegistry struct {
	srv     *httptest.Server
	release chan struct{}

	mu        sync.Mutex
	manifests map[string]int // requests per "repository:tag"
}

func newFakeRegistry(t *testing.T) *fakeRegistry {
	t.Helper()
	reg := &fakeRegistry{release: make(chan struct{}), manifests: map[string]int{}}
	reg.srv = httptest.NewServer(http.HandlerFunc(reg.serve))
	t.Cleanup(func() {
		reg.releaseHeld()
		reg.srv.Close()
	})
	return reg
}

// ref is the reference of repository:tag in this registry.
func (reg *fakeRegistry) ref(repoTag string) string {
	return strings.TrimPrefix(reg.srv.URL, "http://") + "/" + repoTag
}

func (reg *fakeRegistry) releaseHeld() {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	select {
	case <-reg.release:
	default:
		close(reg.release)
	}
}

// manifestRequests counts the manifest requests for repository:tag so far.
func (reg *fakeRegistry) manifestRequests(repoTag string) int {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	return reg.manifests[repoTag]
}

func (reg *fakeRegistry) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.URL.Path == "/v2/" {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, "{}")
		return
	}
	repo, tag, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/manifests/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	reg.mu.Lock()
	reg.manifests[repo+":"+tag]++
	reg.mu.Unlock()
	switch {
	case strings.HasPrefix(tag, "down"):
		http.Error(w, "registry down for maintenance", http.StatusServiceUnavailable)
		return
	case strings.HasPrefix(tag, "held"):
		select {
		case <-reg.release:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	fmt.Fprintf(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":%q}}]}`, tag)
}

func TestMissingImage(t *testing.T) {
	t.Parallel()
	needDocker(t)
	reg := newFakeRegistry(t)
	for _, noPull := range []bool{true, false} {
		t.Run(fmt.Sprintf("NoPull=%v", noPull), func(t *testing.T) {
			t.Parallel()
			ctx := wait.Context(t, 2*time.Minute)
			rt := newRuntime(t, func(c *Config) { c.NoPull = noPull })
			spec := testSpec()
			spec.EnvironmentID = newID(t)
			// A registry on loopback that has no such image: a pull is
			// really tried, and answered "manifest unknown".
			spec.Image = reg.ref("dev8-test/does-not-exist:missing-" + spec.EnvironmentID)
			cleanupObjects(t, spec.EnvironmentID)
			_, err := rt.Create(ctx, spec)
			if err == nil {
				t.Fatal("Create with a missing image succeeded")
			}
			if !runtime.IsPermanent(err) || !strings.Contains(err.Error(), spec.Image) {
				t.Fatalf("Create with a missing image: %v (permanent %v); want a permanent error naming the image", err, runtime.IsPermanent(err))
			}
			t.Logf("error: %v", err)
			if n := reg.manifestRequests("dev8-test/does-not-exist:missing-" + spec.EnvironmentID); (n > 0) == noPull {
				t.Errorf("the registry saw %d manifest requests with NoPull=%v", n, noPull)
			}
			expectObjects(t, ctx, spec.EnvironmentID, nil, nil)
			if _, err := rt.Inspect(ctx, spec.EnvironmentID); !errors.Is(err, runtime.ErrNotFound) {
				t.Fatalf("Inspect after a failed Create: %v; want ErrNotFound", err)
			}
		})
	}
}

// TestPullTransientFailure: a registry that answers 503, or none at all,
// fails the Create with an error the lifecycle retries (not permanent), that
// still names the image; nothing is left behind.
func TestPullTransientFailure(t *testing.T) {
	t.Parallel()
	needDocker(t)
	reg := newFakeRegistry(t)
	// A loopback port nothing listens on: connection refused.
	closed := httptest.NewServer(http.NotFoundHandler())
	gone := strings.TrimPrefix(closed.URL, "http://")
	closed.Close()
	for _, tc := range []struct {
		name, image string
		asked       func() int // how often the registry was asked for the manifest
	}{
		{"registry answers 503", reg.ref("dev8-test/flaky:down"), func() int { return reg.manifestRequests("dev8-test/flaky:down") }},
		{"registry unreachable", gone + "/dev8-test/flaky:1", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := wait.Context(t, 2*time.Minute)
			rt := newRuntime(t, nil)
			spec := testSpec()
			spec.EnvironmentID = newID(t)
			spec.Image = tc.image
			cleanupObjects(t, spec.EnvironmentID)
			_, err := rt.Create(ctx, spec)
			if err == nil {
				t.Fatal("Create succeeded")
			}
			if runtime.IsPermanent(err) || !strings.Contains(err.Error(), spec.Image) {
				t.Fatalf("Create: %v (permanent %v); want a transient error naming the image", err, runtime.IsPermanent(err))
			}
			t.Logf("error: %v", err)
			if tc.asked != nil && tc.asked() == 0 {
				t.Error("the engine never asked the registry for the manifest: the case tested nothing")
			}
			expectObjects(t, ctx, spec.EnvironmentID, nil, nil)
		})
	}
}

// TestConcurrentCreatesPullOnce: five environments created at once from one
// missing image make one pull: the registry sees as many manifest requests
// as for a single Create, and every Create gets the pull's outcome.
func TestConcurrentCreatesPullOnce(t *testing.T) {
	t.Parallel()
	needDocker(t)
	ctx := wait.Context(t, 2*time.Minute)
	reg := newFakeRegistry(t)
	rt := newRuntime(t, nil)
	t.Cleanup(func() { _ = rt.Close() })

	// What one pull costs at the registry (the engine may ask more than once).
	single := testSpec()
	single.EnvironmentID = newID(t)
	single.Image = reg.ref("dev8-test/shared:missing-" + single.EnvironmentID)
	cleanupObjects(t, single.EnvironmentID)
	if _, err := rt.Create(ctx, single); !runtime.IsPermanent(err) {
		t.Fatalf("Create of a missing image: %v; want a permanent error", err)
	}
	perPull := reg.manifestRequests("dev8-test/shared:missing-" + single.EnvironmentID)
	if perPull == 0 {
		t.Fatal("the engine never asked the registry for the manifest")
	}

	const n = 5
	img := reg.ref("dev8-test/shared:held")
	errs := make(chan error, n)
	for range n {
		spec := testSpec()
		spec.EnvironmentID = newID(t)
		spec.Image = img
		cleanupObjects(t, spec.EnvironmentID)
		go func() {
			_, err := rt.Create(ctx, spec)
			errs <- err
		}()
	}
	// The registry holds the manifest until all five wait for the pull.
	waitPullWaiters(t, ctx, rt.pulls, img, n)
	reg.releaseHeld()
	for range n {
		err := <-errs
		if !runtime.IsPermanent(err) || !strings.Contains(err.Error(), img) {
			t.Errorf("Create: %v; want a permanent error naming %s", err, img)
		}
	}
	if got := reg.manifestRequests("dev8-test/shared:held"); got != perPull {
		t.Errorf("%d concurrent Creates made %d manifest requests; one pull makes %d", n, got, perPull)
	}
}

// waitPullWaiters waits until n callers wait for the pull of ref.
func waitPullWaiters(t *testing.T, ctx context.Context, c *pullCoordinator, ref string, n int) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		c.mu.Lock()
		got := 0
		if p := c.inflight[ref]; p != nil {
			got = p.waiters
		}
		c.mu.Unlock()
		if got == n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d callers wait for the pull of %s, want %d", got, ref, n)
		case <-tick.C:
		}
	}
}
