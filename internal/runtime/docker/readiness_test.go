package docker

import (
	"strings"
	"testing"
	"time"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/testutil/wait"
)

// TestImageStatus: an image on the engine is ready; one being pulled is
// preparing; one built on this machine (make images) that is missing is
// unavailable with the command that builds it, and Create refuses it
// without ever asking a registry; any other missing image is ready, since
// Create pulls it.
func TestImageStatus(t *testing.T) {
	t.Parallel()
	needDocker(t)
	ctx := wait.Context(t, 2*time.Minute)
	reg := newFakeRegistry(t)
	id := newID(t)
	builtHere := reg.ref("dev8-test/built-here:" + id)
	rt := newRuntime(t, func(c *Config) {
		c.ImageRefs = map[string]string{"dev8/thing": builtHere}
		c.BuiltHere = map[string]bool{builtHere: true}
	})
	t.Cleanup(func() { _ = rt.Close() })

	if st := rt.ImageStatus(ctx, testImage); st.State != runtime.Ready || st.Reason != "" {
		t.Errorf("ImageStatus(present) = %+v", st)
	}
	st := rt.ImageStatus(ctx, "dev8/thing")
	if st.State != runtime.Unavailable || !strings.Contains(st.Reason, builtHere) || !strings.Contains(st.Reason, "make images") {
		t.Errorf("ImageStatus(built here, missing) = %+v", st)
	}
	spec := testSpec()
	spec.EnvironmentID = id
	spec.Image = "dev8/thing"
	cleanupObjects(t, id)
	if _, err := rt.Create(ctx, spec); !runtime.IsPermanent(err) || !strings.Contains(err.Error(), "make images") {
		t.Fatalf("Create of a missing image built here: %v; want a permanent error saying make images", err)
	}
	if n := reg.manifestRequests("dev8-test/built-here:" + id); n != 0 {
		t.Errorf("an image built here was pulled: %d manifest requests", n)
	}
	expectObjects(t, ctx, id, nil, nil)

	pullable := reg.ref("dev8-test/pullable:missing-" + id)
	if st := rt.ImageStatus(ctx, pullable); st.State != runtime.Ready || !strings.Contains(st.Reason, "pulled at the first create") {
		t.Errorf("ImageStatus(pullable, missing) = %+v", st)
	}

	held := reg.ref("dev8-test/pullable:held-" + id)
	spec = testSpec()
	spec.EnvironmentID = newID(t)
	spec.Image = held
	cleanupObjects(t, spec.EnvironmentID)
	errs := make(chan error, 1)
	go func() {
		_, err := rt.Create(ctx, spec)
		errs <- err
	}()
	waitPullWaiters(t, ctx, rt.pulls, held, 1)
	if st := rt.ImageStatus(ctx, held); st.State != runtime.Preparing || !strings.Contains(st.Reason, "pulling image "+held) {
		t.Errorf("ImageStatus(being pulled) = %+v", st)
	}
	reg.releaseHeld()
	if err := <-errs; !runtime.IsPermanent(err) {
		t.Errorf("Create of a held, then missing, image: %v", err)
	}
}

// TestPrefetch: template images that can be pulled are pulled in the
// background at start — preparing while it runs — and one the registry does
// not have is then unavailable with the registry's answer, so creates are
// refused before anything is made; images built here are never asked for.
func TestPrefetch(t *testing.T) {
	t.Parallel()
	needDocker(t)
	ctx := wait.Context(t, 2*time.Minute)
	reg := newFakeRegistry(t)
	id := newID(t)
	held := reg.ref("dev8-test/prefetch:held-" + id)
	builtHere := reg.ref("dev8-test/prefetch-built-here:" + id)
	rt := newRuntime(t, func(c *Config) { c.BuiltHere = map[string]bool{builtHere: true} })
	t.Cleanup(func() { _ = rt.Close() })

	rt.Prefetch(ctx, []string{testImage, held, builtHere})
	waitPullWaiters(t, ctx, rt.pulls, held, 1)
	if st := rt.ImageStatus(ctx, held); st.State != runtime.Preparing {
		t.Errorf("ImageStatus while prefetched = %+v", st)
	}
	reg.releaseHeld()
	wait.Eventually(ctx, t, "the prefetch to end", func() bool { return rt.ImageStatus(ctx, held).State != runtime.Preparing })
	if st := rt.ImageStatus(ctx, held); st.State != runtime.Unavailable || !strings.Contains(st.Reason, "could not be pulled") || !strings.Contains(st.Reason, "manifest unknown") {
		t.Errorf("ImageStatus after a prefetch the registry did not have = %+v", st)
	}
	if n := reg.manifestRequests("dev8-test/prefetch-built-here:" + id); n != 0 {
		t.Errorf("an image built here was prefetched: %d manifest requests", n)
	}
}
