// Package report sends the workspace's resource samples (see monitor) and
// its activity to the Dev8 server.
package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/supervisor/monitor"
)

// Config configures New. Zero durations and sizes take the
// defaults in brackets.
type Config struct {
	// AgentURL is the Dev8 server's base URL (http://host:port); the
	// reporter posts to {AgentURL}/api/v1/environments/{id}/usage and
	// .../activity.
	AgentURL string
	// AgentToken is sent as "Authorization: Bearer <token>".
	AgentToken    string
	EnvironmentID string
	// WorkspaceDir names the filesystem whose usage is sampled.
	WorkspaceDir string
	// MonitorScope is one of the MonitorScope constants (empty: auto).
	MonitorScope string

	// SampleInterval is how often resources are sampled [30s].
	SampleInterval time.Duration
	// ReportInterval is how often the samples taken meanwhile are sent, in
	// one request [60s].
	ReportInterval time.Duration
	// ActivityInterval is how often Activity is checked; a report is sent
	// when it advanced since the last one that succeeded, so at most one
	// per interval [30s].
	ActivityInterval time.Duration
	// RetryMin and RetryMax bound the backoff between attempts to send
	// usage while the server fails or is unreachable [1s, 2m]; the delay
	// doubles per failure and is jittered.
	RetryMin time.Duration
	RetryMax time.Duration
	// MaxPending bounds the samples kept while the server is unreachable;
	// the oldest go first [100: 50 minutes at the default interval]. It is
	// also the most samples sent in one request.
	MaxPending int
	// RequestTimeout bounds one request [10s].
	RequestTimeout time.Duration
	// FlushTimeout bounds the final report on shutdown: the last samples
	// and any unreported activity [3s]. Keep it below the supervisor's stop
	// timeout so the runtime does not kill the supervisor mid-flush.
	FlushTimeout time.Duration

	// Activity is what components touch when someone uses the workspace
	// (an *activity.Activity); nil disables activity reports.
	Activity ActivitySource
	Logger   *slog.Logger
	// Client sends the requests [a client with no timeout of its own:
	// RequestTimeout applies].
	Client *http.Client

	// sampler replaces the Monitor in tests.
	sampler sampler
}

// ActivitySource says when and how the workspace was last used.
type ActivitySource interface {
	Last() (time.Time, string)
}

type sampler interface {
	Sample(ctx context.Context) (agentapi.UsageSample, error)
}

// Reporter samples the workspace's resources and reports them, and the
// workspace's activity, to the Dev8 server. The server may restart at any
// time (the supervisor outlives it): samples wait, bounded, and are sent
// when it answers again.
type Reporter struct {
	cfg      Config
	log      *slog.Logger
	sampler  sampler
	scope    string
	usageURL string
	actURL   string

	mu          sync.Mutex
	pending     []pendingSample // oldest first
	seq         uint64          // of the newest sample taken
	lastSampled time.Time
	st          agentapi.ReporterStatus
	actSent     time.Time // Activity.Last() at the last accepted report
	actErr      bool      // the last activity report failed
	usageErr    bool      // the last usage report failed

	afterActivityCheck func() // test hook
}

type pendingSample struct {
	seq uint64
	s   agentapi.UsageSample
}

// New checks cfg, applies the defaults and sets up the monitor,
// whose baseline the first sample is measured against.
func New(cfg Config) (*Reporter, error) {
	if cfg.AgentURL == "" {
		return nil, errors.New("supervisor: reporter: no agent URL")
	}
	u, err := url.Parse(cfg.AgentURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("supervisor: reporter: agent URL %q is not an http(s) URL", cfg.AgentURL)
	}
	if cfg.EnvironmentID == "" {
		return nil, errors.New("supervisor: reporter: no environment id")
	}
	if cfg.AgentToken == "" {
		return nil, errors.New("supervisor: reporter: no agent token")
	}
	if cfg.SampleInterval <= 0 {
		cfg.SampleInterval = 30 * time.Second
	}
	if cfg.ReportInterval <= 0 {
		cfg.ReportInterval = 60 * time.Second
	}
	if cfg.ActivityInterval <= 0 {
		cfg.ActivityInterval = 30 * time.Second
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 2 * time.Minute
	}
	cfg.RetryMax = max(cfg.RetryMax, cfg.RetryMin)
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 100
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.FlushTimeout <= 0 {
		cfg.FlushTimeout = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	r := &Reporter{cfg: cfg, log: cfg.Logger.With("component", "reporter")}
	base := strings.TrimSuffix(cfg.AgentURL, "/") + "/api/v1/environments/" + url.PathEscape(cfg.EnvironmentID)
	r.usageURL, r.actURL = base+"/usage", base+"/activity"
	r.sampler = cfg.sampler
	if r.sampler == nil {
		m, err := monitor.New(monitor.Config{WorkspaceDir: cfg.WorkspaceDir, Scope: cfg.MonitorScope})
		if err != nil {
			return nil, err
		}
		r.sampler, r.scope = m, m.Scope()
	}
	r.st.MonitorScope = r.scope
	return r, nil
}

// Status reports how reporting goes, for /status.
func (r *Reporter) Status() agentapi.ReporterStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.st
	st.PendingSamples = len(r.pending)
	if st.LastSample != nil {
		s := *st.LastSample
		st.LastSample = &s
	}
	return st
}

// Run samples and reports until ctx is cancelled, then takes a last sample
// and sends what is pending, activity included, within FlushTimeout. Failing
// requests are retried, never fatal: Run returns ctx.Err() and nothing else.
func (r *Reporter) Run(ctx context.Context) error {
	r.log.Info("reporting usage", "url", r.usageURL, "sampleInterval", r.cfg.SampleInterval,
		"reportInterval", r.cfg.ReportInterval, "scope", r.scope)
	var wg sync.WaitGroup
	wg.Go(func() { r.sampleLoop(ctx) })
	wg.Go(func() { r.usageLoop(ctx) })
	if r.cfg.Activity != nil {
		wg.Go(func() { r.activityLoop(ctx) })
	}
	wg.Wait()

	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.FlushTimeout)
	defer cancel()
	// The partial interval since the last sample counts too, unless it is
	// too short to say anything.
	r.mu.Lock()
	recent := time.Since(r.lastSampled) < time.Second
	r.mu.Unlock()
	if !recent {
		r.takeSample(fctx)
	}
	var fw sync.WaitGroup
	fw.Go(func() {
		if err := r.sendPending(fctx); err != nil {
			r.log.Warn("final usage report failed", "err", err, "lost", r.Status().PendingSamples)
		}
	})
	if r.cfg.Activity != nil {
		fw.Go(func() {
			if err := r.reportActivity(fctx); err != nil {
				r.log.Warn("final activity report failed", "err", err)
			}
		})
	}
	fw.Wait()
	return ctx.Err()
}

func (r *Reporter) sampleLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.SampleInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.takeSample(ctx)
		}
	}
}

func (r *Reporter) takeSample(ctx context.Context) {
	s, err := r.sampler.Sample(ctx)
	if err != nil {
		// The figures that could be read are still worth keeping: the
		// server bills by samples.
		r.log.Warn("resource sample incomplete", "err", err)
	}
	// JSON has no NaN or infinity; one would make every report fail.
	for _, f := range []*float64{&s.CPUUsagePercent, &s.NetworkInMB, &s.NetworkOutMB} {
		if math.IsNaN(*f) || math.IsInf(*f, 0) {
			*f = 0
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	r.pending = append(r.pending, pendingSample{seq: r.seq, s: s})
	if over := len(r.pending) - r.cfg.MaxPending; over > 0 {
		r.pending = append(r.pending[:0], r.pending[over:]...)
		r.st.DroppedSamples += int64(over)
		if r.st.DroppedSamples == int64(over) || r.st.DroppedSamples%100 == 0 {
			r.log.Warn("dropping the oldest unsent samples", "dropped", r.st.DroppedSamples, "kept", r.cfg.MaxPending)
		}
	}
	r.lastSampled = time.Now()
	r.st.LastSample = &s
}

func (r *Reporter) usageLoop(ctx context.Context) {
	var backoff time.Duration
	t := time.NewTimer(r.cfg.ReportInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := r.cfg.ReportInterval
		if err := r.sendPending(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			if backoff == 0 {
				backoff = r.cfg.RetryMin
			} else {
				backoff = min(backoff*2, r.cfg.RetryMax)
			}
			// Jitter over [backoff/2, backoff] so supervisors that lost the
			// same server do not come back in lockstep.
			next = backoff/2 + rand.N(backoff/2+1)
		} else {
			backoff = 0
		}
		t.Reset(next)
	}
}

// errRejected marks a batch the server refused as invalid: sending it again
// cannot succeed.
var errRejected = errors.New("rejected")

// sendPending posts every pending sample, oldest first, MaxPending per
// request, and stops at the first failure (the samples stay pending).
func (r *Reporter) sendPending(ctx context.Context) error {
	for {
		r.mu.Lock()
		n := min(len(r.pending), r.cfg.MaxPending)
		batch := make([]agentapi.UsageSample, n)
		var lastSeq uint64
		for i, p := range r.pending[:n] {
			batch[i] = p.s
			lastSeq = p.seq
		}
		r.mu.Unlock()
		if n == 0 {
			return nil
		}
		body, err := json.Marshal(agentapi.UsageReport{Samples: batch})
		if err != nil {
			return err
		}
		err = r.post(ctx, r.usageURL, body)
		if err != nil && ctx.Err() != nil {
			// Our own deadline or shutdown, not the server's failure: the
			// samples stay pending and the caller reports it.
			return err
		}
		r.mu.Lock()
		if err == nil || errors.Is(err, errRejected) {
			// Samples taken meanwhile, or dropped from the front to make
			// room, do not shift what was sent: sequence numbers say.
			i := 0
			for i < len(r.pending) && r.pending[i].seq <= lastSeq {
				i++
			}
			r.pending = append(r.pending[:0], r.pending[i:]...)
		}
		now := time.Now().UTC()
		switch {
		case err == nil:
			r.st.LastReportAt = &now
			if r.usageErr {
				r.log.Info("usage reports are accepted again")
				r.usageErr = false
				r.clearErrorLocked()
			}
		case errors.Is(err, errRejected):
			r.st.DroppedSamples += int64(n)
			r.setErrorLocked(now, err)
			r.log.Error("server rejected a usage report; its samples are dropped", "samples", n, "err", err)
		default:
			r.setErrorLocked(now, err)
			if !r.usageErr {
				r.log.Warn("usage report failed; retrying with backoff", "err", err, "pending", len(r.pending))
			} else {
				r.log.Debug("usage report failed again", "err", err, "pending", len(r.pending))
			}
			r.usageErr = true
		}
		r.mu.Unlock()
		if err != nil && !errors.Is(err, errRejected) {
			return err
		}
	}
}

func (r *Reporter) setErrorLocked(at time.Time, err error) {
	r.st.LastError = err.Error()
	r.st.LastErrorAt = &at
}

func (r *Reporter) clearErrorLocked() {
	if !r.usageErr && !r.actErr {
		r.st.LastError = ""
		r.st.LastErrorAt = nil
	}
}

func (r *Reporter) activityLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.ActivityInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = r.reportActivity(ctx) // failures are logged and retried
			if r.afterActivityCheck != nil {
				r.afterActivityCheck()
			}
		}
	}
}

// reportActivity posts activity if Activity.Last advanced since the last
// report the server accepted.
func (r *Reporter) reportActivity(ctx context.Context) error {
	last, kind := r.cfg.Activity.Last()
	r.mu.Lock()
	due := last.After(r.actSent)
	r.mu.Unlock()
	if !due {
		return nil
	}
	err := r.post(ctx, r.actURL, nil)
	if err != nil && ctx.Err() != nil {
		return err // our deadline or shutdown: the final report retries
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now().UTC()
	if err != nil {
		r.setErrorLocked(now, err)
		if !r.actErr {
			r.log.Warn("activity report failed; retrying next interval", "err", err)
		}
		r.actErr = true
		return err
	}
	// What happened while the request was in flight is reported next time.
	r.actSent = last
	r.st.LastActivityReportAt = &now
	r.log.Debug("reported activity", "at", last, "kind", kind)
	if r.actErr {
		r.actErr = false
		r.clearErrorLocked()
	}
	return nil
}

// post sends body (nil: empty) and succeeds on any 2xx. Answers that
// retrying cannot fix (400, 413, 422) wrap errRejected.
func (r *Reporter) post(ctx context.Context, target string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.cfg.AgentToken)
	req.Header.Set("User-Agent", "dev8-supervisor")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("POST %s: %s: %s", req.URL.Path, resp.Status, bytes.TrimSpace(msg))
	switch resp.StatusCode {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return fmt.Errorf("%w: %w", errRejected, err)
	}
	return err
}
