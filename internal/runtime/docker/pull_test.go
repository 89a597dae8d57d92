package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
)

// fakeEngine stands in for the engine's ImagePull: each pull blocks until
// release is closed (or its context ends), then streams progress ending
// with stream.
type fakeEngine struct {
	release chan struct{}
	stream  string

	mu    sync.Mutex
	calls map[string]int
	ctxs  []context.Context // of every pull, in order
}

func newFakeEngine(stream string) *fakeEngine {
	return &fakeEngine{release: make(chan struct{}), stream: stream, calls: map[string]int{}}
}

func (e *fakeEngine) ImagePull(ctx context.Context, ref string, _ image.PullOptions) (io.ReadCloser, error) {
	e.mu.Lock()
	e.calls[ref]++
	e.ctxs = append(e.ctxs, ctx)
	e.mu.Unlock()
	select {
	case <-e.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return io.NopCloser(strings.NewReader(`{"status":"Pulling fs layer","id":"abc"}` + "\n" + e.stream)), nil
}

func (e *fakeEngine) pulls(ref string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls[ref]
}

func (e *fakeEngine) pullCtx(i int) context.Context {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ctxs[i]
}

func newTestCoordinator(t *testing.T, e *fakeEngine) *pullCoordinator {
	c := newPullCoordinator(e, slog.New(slog.DiscardHandler))
	t.Cleanup(c.close)
	return c
}

func unitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pullAsync starts c.pull and returns where its outcome arrives.
func pullAsync(ctx context.Context, c *pullCoordinator, ref string) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- c.pull(ctx, ref) }()
	return ch
}

func TestPullDeduplicates(t *testing.T) {
	for _, tc := range []struct {
		name, stream, wantErr string
	}{
		{"success", `{"status":"Download complete","id":"abc"}`, ""},
		{"failure in the stream", `{"error":"manifest for r/x:1 not found: manifest unknown"}`, "manifest unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := unitCtx(t)
			e := newFakeEngine(tc.stream)
			c := newTestCoordinator(t, e)
			const n = 5
			var outcomes []<-chan error
			for range n {
				outcomes = append(outcomes, pullAsync(ctx, c, "r/x:1"))
			}
			other := pullAsync(ctx, c, "r/y:1")
			waitPullWaiters(t, ctx, c, "r/x:1", n)
			close(e.release)
			for _, ch := range outcomes {
				err := <-ch
				if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
					t.Errorf("pull: %v; want error %q", err, tc.wantErr)
				}
			}
			<-other
			if got := e.pulls("r/x:1"); got != 1 {
				t.Errorf("%d concurrent pulls of one reference reached the engine %d times; want 1", n, got)
			}
			if got := e.pulls("r/y:1"); got != 1 {
				t.Errorf("another reference was pulled %d times; want 1", got)
			}
			// A pull once the first has ended is a new one: nothing is cached.
			if err := c.pull(ctx, "r/x:1"); (err == nil) != (tc.wantErr == "") {
				t.Errorf("second pull: %v", err)
			}
			if got := e.pulls("r/x:1"); got != 2 {
				t.Errorf("a pull after the first ended reached the engine %d times in all; want 2", got)
			}
		})
	}
}

// TestPullCallerGoes: a caller whose context ends stops waiting at once; the
// pull goes on for the others, and is cancelled only when all have gone.
func TestPullCallerGoes(t *testing.T) {
	ctx := unitCtx(t)
	e := newFakeEngine(`{"status":"Download complete"}`)
	c := newTestCoordinator(t, e)

	impatient, cancel := context.WithCancel(ctx)
	first := pullAsync(impatient, c, "r/x:1")
	second := pullAsync(ctx, c, "r/x:1")
	waitPullWaiters(t, ctx, c, "r/x:1", 2)
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("pull of a caller that went: %v; want context.Canceled", err)
	}
	if err := e.pullCtx(0).Err(); err != nil {
		t.Fatalf("the shared pull was cancelled with a caller still waiting: %v", err)
	}
	close(e.release)
	if err := <-second; err != nil {
		t.Fatalf("the caller that stayed: %v", err)
	}

	// Everyone goes: the pull is cancelled, and the next caller starts anew.
	e2 := newFakeEngine(`{"status":"Download complete"}`)
	c2 := newTestCoordinator(t, e2)
	var cancels []context.CancelFunc
	var outcomes []<-chan error
	for range 3 {
		cctx, cancel := context.WithCancel(ctx)
		cancels = append(cancels, cancel)
		outcomes = append(outcomes, pullAsync(cctx, c2, "r/x:1"))
	}
	waitPullWaiters(t, ctx, c2, "r/x:1", 3)
	for i, cancel := range cancels {
		cancel()
		if err := <-outcomes[i]; !errors.Is(err, context.Canceled) {
			t.Fatalf("caller %d: %v; want context.Canceled", i, err)
		}
	}
	select {
	case <-e2.pullCtx(0).Done():
	case <-ctx.Done():
		t.Fatal("the shared pull went on after every caller had gone")
	}
	close(e2.release)
	if err := c2.pull(ctx, "r/x:1"); err != nil {
		t.Fatalf("pull after the cancelled one: %v", err)
	}
	if got := e2.pulls("r/x:1"); got != 2 {
		t.Errorf("engine pulls %d; want 2 (the cancelled one and a new one)", got)
	}
}

// TestPullClose: close cancels the pulls running and waits for them; later
// pulls fail.
func TestPullClose(t *testing.T) {
	ctx := unitCtx(t)
	e := newFakeEngine("")
	c := newPullCoordinator(e, slog.New(slog.DiscardHandler))
	waiting := pullAsync(ctx, c, "r/x:1")
	waitPullWaiters(t, ctx, c, "r/x:1", 1)
	c.close()
	if err := e.pullCtx(0).Err(); err == nil {
		t.Fatal("close left the engine's pull running")
	}
	if err := <-waiting; !errors.Is(err, context.Canceled) {
		t.Fatalf("pull cut by close: %v; want context.Canceled", err)
	}
	if err := c.pull(ctx, "r/x:1"); !errors.Is(err, errPullsClosed) {
		t.Fatalf("pull after close: %v; want errPullsClosed", err)
	}
}

func TestPullFailurePermanent(t *testing.T) {
	const img = "registry.example/dev8/not-found-tool:1"
	for _, tc := range []struct {
		err       error
		permanent bool
	}{
		// What the engine says when the registry has no such image.
		{errors.New("Error response from daemon: manifest for " + img + " not found: manifest unknown: manifest unknown"), true},
		{fmt.Errorf("pull: %w", cerrdefs.ErrNotFound.WithMessage("manifest for "+img+" not found")), true},
		{errors.New("pull access denied for dev8/nodejs, repository does not exist or may require 'docker login': denied: requested access to the resource is denied"), true},
		{errors.New("Error response from daemon: unauthorized: authentication required"), true},
		{errors.New("no matching manifest for linux/amd64 in the manifest list entries"), true},
		{errors.New("invalid reference format"), true},
		{errors.New("name unknown: repository name not known to registry"), true},
		// The registry, or the way to it, failing: worth another try.
		{errors.New(`Get "https://registry.example/v2/": dial tcp: lookup registry.example on 127.0.0.53:53: no such host`), false},
		{errors.New(`Get "http://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused`), false},
		{errors.New("received unexpected HTTP status: 503 Service Unavailable"), false},
		{errors.New("received unexpected HTTP status: 502 Bad Gateway"), false},
		{errors.New(`Get "https://registry.example/v2/": net/http: request canceled while waiting for connection (Client.Timeout exceeded while awaiting headers)`), false},
		{errors.New("net/http: TLS handshake timeout"), false},
		{errors.New("toomanyrequests: You have reached your pull rate limit."), false},
		{errors.New("read tcp 10.0.0.2:4242->10.0.0.1:443: read: connection reset by peer"), false},
		{errors.New("unexpected EOF"), false},
		{fmt.Errorf("pull: %w", context.DeadlineExceeded), false},
		{fmt.Errorf("pull: %w", context.Canceled), false},
		{fmt.Errorf("pull: %w", cerrdefs.ErrUnavailable), false},
		// Unknown: retried (the lifecycle gives up after its attempts).
		{errors.New("something odd happened"), false},
		// Words in the image's own name do not count.
		{errors.New("error pulling " + img + ": something odd happened"), false},
	} {
		if got := pullFailurePermanent(img, tc.err); got != tc.permanent {
			t.Errorf("pullFailurePermanent(%q) = %v, want %v", tc.err, got, tc.permanent)
		}
	}
}
