package report

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/supervisor/activity"
	"dev8.dev/dev8/internal/supervisor/supervisortest"
	"dev8.dev/dev8/internal/testutil/wait"
)

// seqSampler returns samples numbered 1, 2, 3... in MemoryUsageMB and
// announces each on taken.
type seqSampler struct {
	n     atomic.Int64
	taken chan int64
}

func newSeqSampler() *seqSampler { return &seqSampler{taken: make(chan int64, 10000)} }

func (s *seqSampler) Sample(context.Context) (agentapi.UsageSample, error) {
	n := s.n.Add(1)
	select {
	case s.taken <- n:
	default:
	}
	return agentapi.UsageSample{Timestamp: time.Now().UTC(), MemoryUsageMB: n, DiskUsageMB: 1}, nil
}

// agentRequest is what the fake server saw.
type agentRequest struct {
	path, auth, contentType string
	samples                 []agentapi.UsageSample
	status                  int // what it answered
}

// fakeAgent records every request and answers with status(n), n counting
// requests to that path from 1.
type fakeAgent struct {
	t      *testing.T
	srv    *httptest.Server
	usage  chan agentRequest
	act    chan agentRequest
	status func(path string, n int) int

	mu     sync.Mutex
	counts map[string]int
}

func newFakeAgent(t *testing.T, status func(path string, n int) int) *fakeAgent {
	a := &fakeAgent{t: t, usage: make(chan agentRequest, 1000), act: make(chan agentRequest, 1000), status: status, counts: map[string]int{}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *fakeAgent) serve(w http.ResponseWriter, r *http.Request) {
	req := agentRequest{path: r.URL.Path, auth: r.Header.Get("Authorization"), contentType: r.Header.Get("Content-Type")}
	body, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost {
		a.t.Errorf("%s %s, want POST", r.Method, r.URL.Path)
	}
	a.mu.Lock()
	a.counts[r.URL.Path]++
	n := a.counts[r.URL.Path]
	a.mu.Unlock()
	req.status = http.StatusAccepted
	if a.status != nil {
		req.status = a.status(r.URL.Path, n)
	}
	switch r.URL.Path {
	case "/api/v1/environments/env_1/usage":
		var b agentapi.UsageReport
		if err := json.Unmarshal(body, &b); err != nil {
			a.t.Errorf("usage body %q: %v", body, err)
		}
		req.samples = b.Samples
		w.WriteHeader(req.status)
		a.usage <- req
	case "/api/v1/environments/env_1/activity":
		if len(body) != 0 {
			a.t.Errorf("activity body %q, want empty", body)
		}
		w.WriteHeader(req.status)
		a.act <- req
	default:
		a.t.Errorf("unexpected request to %s", r.URL.Path)
		w.WriteHeader(http.StatusNotFound)
	}
}

func recv[T any](t *testing.T, ctx context.Context, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// startReporter runs a reporter until the test ends. done is closed when
// Run has returned, with its error in *runErr.
func startReporter(t *testing.T, cfg Config) (r *Reporter, cancel context.CancelFunc, done <-chan struct{}, runErr *error) {
	t.Helper()
	if cfg.EnvironmentID == "" {
		cfg.EnvironmentID = "env_1"
	}
	cfg.AgentToken = "agent-secret"
	cfg.Logger = supervisortest.Logger()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	runErr = new(error)
	go func() { *runErr = r.Run(ctx); close(finished) }()
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	return r, cancel, finished, runErr
}

// checkContiguous checks that the samples received so far are exactly
// 1..n, each once, in order.
func checkContiguous(t *testing.T, got []int64) {
	t.Helper()
	for i, n := range got {
		if n != int64(i+1) {
			t.Fatalf("samples received %v: want 1, 2, 3... each once", got)
		}
	}
}

func TestReporterBatchesWithBearerToken(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 30*time.Second)
	agent := newFakeAgent(t, nil)
	sampler := newSeqSampler()
	r, _, _, _ := startReporter(t, Config{
		AgentURL: agent.srv.URL + "/", SampleInterval: 2 * time.Millisecond, ReportInterval: 40 * time.Millisecond,
		sampler: sampler,
	})
	var got []int64
	batched := false
	for len(got) < 20 || !batched {
		req := recv(t, ctx, agent.usage, "a usage report")
		if req.auth != "Bearer agent-secret" || req.contentType != "application/json" {
			t.Fatalf("Authorization %q, Content-Type %q", req.auth, req.contentType)
		}
		if len(req.samples) == 0 {
			t.Fatal("empty usage report")
		}
		batched = batched || len(req.samples) > 1
		for _, s := range req.samples {
			got = append(got, s.MemoryUsageMB)
			if s.Timestamp.IsZero() || s.DiskUsageMB != 1 {
				t.Fatalf("sample %+v", s)
			}
		}
	}
	checkContiguous(t, got)
	// The next request goes out only after the last answer was recorded.
	recv(t, ctx, agent.usage, "one more report")
	st := r.Status()
	if st.LastReportAt == nil || st.LastError != "" || st.DroppedSamples != 0 || st.LastSample == nil {
		t.Errorf("status %+v", st)
	}
}

func TestReporterRetriesUntilServerRecovers(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 30*time.Second)
	const failures = 4
	agent := newFakeAgent(t, func(path string, n int) int {
		if n <= failures {
			return http.StatusServiceUnavailable
		}
		return http.StatusAccepted
	})
	sampler := newSeqSampler()
	r, _, _, _ := startReporter(t, Config{
		AgentURL: agent.srv.URL, SampleInterval: 2 * time.Millisecond, ReportInterval: 20 * time.Millisecond,
		RetryMin: time.Millisecond, RetryMax: 8 * time.Millisecond, sampler: sampler,
	})
	var got []int64
	var prevFailed []int64
	for len(got) < 10 {
		req := recv(t, ctx, agent.usage, "a usage report")
		var nums []int64
		for _, s := range req.samples {
			nums = append(nums, s.MemoryUsageMB)
		}
		if req.status != http.StatusAccepted {
			// A failed batch is sent again, from its first sample.
			if prevFailed != nil && nums[0] != prevFailed[0] {
				t.Fatalf("after a failure the next batch starts at %d, want %d", nums[0], prevFailed[0])
			}
			prevFailed = nums
			continue
		}
		if prevFailed != nil && nums[0] != prevFailed[0] {
			t.Fatalf("the batch after recovery starts at %d, want the failed batch's %d", nums[0], prevFailed[0])
		}
		prevFailed = nil
		got = append(got, nums...)
	}
	checkContiguous(t, got)
	// The next request goes out only after the last answer was recorded.
	recv(t, ctx, agent.usage, "one more report")
	st := r.Status()
	if st.LastReportAt == nil || st.LastError != "" {
		t.Errorf("status after recovery %+v", st)
	}
}

func TestReporterStatusShowsError(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 30*time.Second)
	block := make(chan struct{})
	retrying := make(chan struct{}, 100)
	agent := newFakeAgent(t, func(path string, n int) int {
		if n > 1 {
			// Hold the retry so the status can be read meanwhile.
			retrying <- struct{}{}
			<-block
		}
		return http.StatusBadGateway
	})
	t.Cleanup(func() { close(block) }) // before the server's Close waits for handlers
	sampler := newSeqSampler()
	r, _, _, _ := startReporter(t, Config{
		AgentURL: agent.srv.URL, SampleInterval: time.Millisecond, ReportInterval: 5 * time.Millisecond,
		RetryMin: time.Millisecond, MaxPending: 5, FlushTimeout: 20 * time.Millisecond, sampler: sampler,
	})
	// A retry starts only after the first failure was recorded.
	recv(t, ctx, retrying, "the retry")
	for start := sampler.n.Load(); sampler.n.Load() < start+10; {
		recv(t, ctx, sampler.taken, "samples")
	}
	st := r.Status()
	if st.LastError == "" || st.LastErrorAt == nil || st.LastReportAt != nil {
		t.Errorf("status while the server fails: %+v", st)
	}
	if st.PendingSamples > 5 || st.DroppedSamples == 0 {
		t.Errorf("pending %d (max 5), dropped %d: want the oldest dropped", st.PendingSamples, st.DroppedSamples)
	}
}

func TestReporterDropsRejectedBatch(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 30*time.Second)
	agent := newFakeAgent(t, func(path string, n int) int {
		if n == 1 {
			return http.StatusBadRequest
		}
		return http.StatusAccepted
	})
	sampler := newSeqSampler()
	r, _, _, _ := startReporter(t, Config{
		AgentURL: agent.srv.URL, SampleInterval: 2 * time.Millisecond, ReportInterval: 20 * time.Millisecond, sampler: sampler,
	})
	first := recv(t, ctx, agent.usage, "the rejected report")
	second := recv(t, ctx, agent.usage, "the next report")
	last := first.samples[len(first.samples)-1].MemoryUsageMB
	if second.samples[0].MemoryUsageMB != last+1 {
		t.Errorf("after a 400 the next batch starts at %d, want %d (the rejected samples are not resent)", second.samples[0].MemoryUsageMB, last+1)
	}
	if st := r.Status(); st.DroppedSamples != int64(len(first.samples)) {
		t.Errorf("dropped %d, want %d", st.DroppedSamples, len(first.samples))
	}
}

func TestReporterFlushesOnShutdown(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 30*time.Second)
	agent := newFakeAgent(t, nil)
	sampler := newSeqSampler()
	act := activity.NewActivity(nil)
	_, cancel, done, runErr := startReporter(t, Config{
		AgentURL: agent.srv.URL, SampleInterval: time.Millisecond,
		// Nothing is sent before shutdown.
		ReportInterval: time.Hour, ActivityInterval: time.Hour,
		Activity: act, sampler: sampler,
	})
	for sampler.n.Load() < 5 {
		recv(t, ctx, sampler.taken, "samples")
	}
	act.Touch(activity.ActivitySSH)
	cancel()
	select {
	case <-done:
		if *runErr != context.Canceled {
			t.Errorf("Run = %v, want context.Canceled", *runErr)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return after cancel")
	}
	req := recv(t, ctx, agent.usage, "the final usage report")
	var got []int64
	for _, s := range req.samples {
		got = append(got, s.MemoryUsageMB)
	}
	checkContiguous(t, got)
	if n := sampler.n.Load(); int64(len(got)) != n {
		t.Errorf("final report has %d samples, %d were taken", len(got), n)
	}
	recv(t, ctx, agent.act, "the final activity report")
	if len(agent.usage) != 0 || len(agent.act) != 0 {
		t.Errorf("more than one final report: %d usage, %d activity", len(agent.usage), len(agent.act))
	}
}

func TestReporterFinalFlushIsBounded(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 30*time.Second)
	hang := make(chan struct{})
	agent := newFakeAgent(t, func(string, int) int { <-hang; return http.StatusAccepted })
	t.Cleanup(func() { close(hang) }) // before the server's Close waits for handlers
	sampler := newSeqSampler()
	_, cancel, done, _ := startReporter(t, Config{
		AgentURL: agent.srv.URL, SampleInterval: time.Millisecond, ReportInterval: time.Hour,
		FlushTimeout: 50 * time.Millisecond, sampler: sampler,
	})
	recv(t, ctx, sampler.taken, "a sample")
	cancel()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("Run hung on a server that never answers")
	}
}

func TestReporterActivityOnlyWhenItAdvanced(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 30*time.Second)
	agent := newFakeAgent(t, nil)
	act := activity.NewActivity(nil)
	checks := make(chan struct{}, 1000)
	r, err := New(Config{
		AgentURL: agent.srv.URL, EnvironmentID: "env_1", AgentToken: "agent-secret", Logger: supervisortest.Logger(),
		SampleInterval: time.Hour, ReportInterval: time.Hour, ActivityInterval: 2 * time.Millisecond,
		Activity: act, sampler: newSeqSampler(),
	})
	if err != nil {
		t.Fatal(err)
	}
	r.afterActivityCheck = func() { checks <- struct{}{} }
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	defer func() { cancel(); <-done }()

	waitChecks := func(n int) {
		for range n {
			recv(t, ctx, checks, "an activity check")
		}
	}
	// Nothing happened: several intervals pass without a report.
	waitChecks(5)
	if len(agent.act) != 0 {
		t.Fatalf("%d activity reports before any activity", len(agent.act))
	}
	act.Touch(activity.ActivityPTY)
	req := recv(t, ctx, agent.act, "the activity report")
	if req.auth != "Bearer agent-secret" {
		t.Errorf("Authorization %q", req.auth)
	}
	// Reported once: the next checks see nothing new.
	waitChecks(6)
	if len(agent.act) != 0 {
		t.Fatalf("activity reported again without new activity")
	}
	if st := r.Status(); st.LastActivityReportAt == nil {
		t.Errorf("status %+v: no lastActivityReportAt", st)
	}
	act.Touch(activity.ActivitySSH)
	recv(t, ctx, agent.act, "the second activity report")
}

func TestReporterActivityRetriedAfterFailure(t *testing.T) {
	t.Parallel()
	ctx := wait.Context(t, 30*time.Second)
	agent := newFakeAgent(t, func(path string, n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	act := activity.NewActivity(nil)
	act.Touch(activity.ActivitySSH)
	startReporter(t, Config{
		AgentURL: agent.srv.URL, SampleInterval: time.Hour, ReportInterval: time.Hour,
		ActivityInterval: 2 * time.Millisecond, Activity: act, sampler: newSeqSampler(),
	})
	if req := recv(t, ctx, agent.act, "the failing activity report"); req.status != http.StatusServiceUnavailable {
		t.Fatalf("first answer %d", req.status)
	}
	if req := recv(t, ctx, agent.act, "the retried activity report"); req.status != http.StatusOK {
		t.Fatalf("second answer %d", req.status)
	}
}

func TestNewReporterValidates(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{EnvironmentID: "env_1", AgentToken: "t"},
		{AgentURL: "ftp://x", EnvironmentID: "env_1", AgentToken: "t"},
		{AgentURL: "http://127.0.0.1:1", AgentToken: "t"},
		{AgentURL: "http://127.0.0.1:1", EnvironmentID: "env_1"},
		{AgentURL: "http://127.0.0.1:1", EnvironmentID: "env_1", AgentToken: "t", MonitorScope: "vm"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}
