package docker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/docker/docker/api/types/image"
)

// imagePuller is what a pullCoordinator needs of the engine.
type imagePuller interface {
	ImagePull(ctx context.Context, ref string, options image.PullOptions) (io.ReadCloser, error)
}

// errPullsClosed is what a pull gets once the Runtime is closed.
var errPullsClosed = errors.New("docker: runtime closed")

// pullCoordinator runs at most one pull per image reference at a time: when
// N environments are created at once from one missing image, the first
// Create starts the pull and the others wait for that same pull and share
// its outcome.
//
// A shared pull belongs to the coordinator, not to the Create that started
// it: a caller whose context ends stops waiting, while the pull goes on for
// the others, and it is cancelled only when every caller waiting for it has
// gone (or the Runtime closes). close cancels what is running and waits for
// it.
type pullCoordinator struct {
	engine imagePuller
	log    *slog.Logger

	ctx    context.Context // parent of every pull; cancelled by close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the pulls' goroutines

	mu       sync.Mutex
	inflight map[string]*sharedPull // by reference
	failed   map[string]pullFailure // the last pull of a reference, if it failed
	closed   bool
}

// sharedPull is one pull and the callers waiting for it.
type sharedPull struct {
	done    chan struct{} // closed when the pull ended, after err is set
	err     error
	waiters int // guarded by pullCoordinator.mu
	cancel  context.CancelFunc
}

func newPullCoordinator(engine imagePuller, log *slog.Logger) *pullCoordinator {
	ctx, cancel := context.WithCancel(context.Background())
	return &pullCoordinator{
		engine:   engine,
		log:      log,
		ctx:      ctx,
		cancel:   cancel,
		inflight: map[string]*sharedPull{},
		failed:   map[string]pullFailure{},
	}
}

// prefetch pulls ref in the background, as a caller of its own, so that a
// Create arriving meanwhile joins the same pull; close ends it.
func (c *pullCoordinator) prefetch(ref string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := c.pull(c.ctx, ref); err != nil && c.ctx.Err() == nil {
			c.log.Warn("pulling a template image in the background failed; a create from it tries again", "image", ref, "err", err)
		}
	}()
}

// pullFailure is how a pull ended badly, and when.
type pullFailure struct {
	err error
	at  time.Time
}

// lastFailure is the error of the last pull of ref if it failed within
// the last d (nil once one succeeds).
func (c *pullCoordinator) lastFailure(ref string, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.failed[ref]; ok && time.Since(f.at) < d {
		return f.err
	}
	return nil
}

// pull pulls ref, or waits for the pull of ref already running, and returns
// its outcome; or ctx's error when ctx ends first.
func (c *pullCoordinator) pull(ctx context.Context, ref string) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errPullsClosed
	}
	p := c.inflight[ref]
	if p == nil {
		pctx, cancel := context.WithCancel(c.ctx)
		p = &sharedPull{done: make(chan struct{}), cancel: cancel}
		c.inflight[ref] = p
		c.wg.Add(1)
		go c.run(pctx, ref, p)
	} else {
		c.log.Info("waiting for the pull of the image already running", "image", ref)
	}
	p.waiters++
	c.mu.Unlock()

	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		c.leave(ref, p)
		return ctx.Err()
	}
}

// pulling says whether a pull of ref is running.
func (c *pullCoordinator) pulling(ref string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inflight[ref] != nil
}

// leave records that a caller stopped waiting for p, and cancels p when it
// was the last one.
func (c *pullCoordinator) leave(ref string, p *sharedPull) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p.waiters--
	if p.waiters > 0 {
		return
	}
	p.cancel()
	// A caller arriving from now on starts a pull of its own instead of
	// joining this cancelled one.
	if c.inflight[ref] == p {
		delete(c.inflight, ref)
	}
}

// run is one pull's goroutine.
func (c *pullCoordinator) run(ctx context.Context, ref string, p *sharedPull) {
	defer c.wg.Done()
	defer p.cancel()
	c.log.Info("pulling image", "image", ref)
	err := c.pullFromEngine(ctx, ref)
	c.mu.Lock()
	if c.inflight[ref] == p {
		delete(c.inflight, ref)
	}
	if err != nil && ctx.Err() == nil {
		c.failed[ref] = pullFailure{err: err, at: time.Now()}
	} else if err == nil {
		delete(c.failed, ref)
	}
	c.mu.Unlock()
	p.err = err
	close(p.done)
}

// pullFromEngine pulls ref through the engine, logging progress per layer
// status change; an error the engine reports in the progress stream is
// returned as the pull's error.
func (c *pullCoordinator) pullFromEngine(ctx context.Context, ref string) error {
	rc, err := c.engine.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	dec := json.NewDecoder(bufio.NewReader(rc))
	last := ""
	for {
		var m struct {
			Status string `json:"status"`
			ID     string `json:"id"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
		if s := m.ID + " " + m.Status; s != last {
			last = s
			c.log.Debug("pull", "image", ref, "layer", m.ID, "status", m.Status)
		}
	}
}

// close cancels the pulls running and waits for their goroutines; pulls
// asked for afterwards fail with errPullsClosed.
func (c *pullCoordinator) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}
