package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"time"

	"dev8.dev/dev8/internal/store"
)

// storeBench seeds the store and measures the API, the reaper and activity
// ingestion on one engine.
func storeBench(ctx context.Context, o options, engine, databaseURL string) error {
	fmt.Printf("== API, reaper and activity (%s, %d environments, %d RUNNING)\n", engine, o.envs, o.running)
	srv, url, cleanup, err := startServer(ctx, o, databaseURL)
	if err != nil {
		return err
	}
	defer cleanup()
	token, err := userToken(ctx, url, "api@bench.test")
	if err != nil {
		return err
	}
	user, err := srv.Store.GetUserByEmail(ctx, "api@bench.test")
	if err != nil {
		return err
	}
	// Seed: RUNNING rows last used 10 minutes ago with a 60-minute
	// auto-stop, so they are all idle candidates for the reaper's query
	// but none is stopped (the steady-state sweep).
	t0 := time.Now()
	ids := make([]string, 0, o.envs)
	running := make([]string, 0, o.running)
	agentTok := make([]string, 0, o.running)
	past := time.Now().Add(-10 * time.Minute)
	for i := range o.envs {
		e := store.Environment{
			UserID: user.ID, Name: fmt.Sprintf("seed-%05d", i), Status: store.StatusStopped,
			Runtime: "local", TemplateName: "base", InstanceType: "small", CPUCores: 2, MemoryGB: 4, StorageGB: 20,
			AutoStopMinutes: 60, LastAccessedAt: past,
		}
		if i < o.running {
			e.Status = store.StatusRunning
			rs := past
			e.RunningSince = &rs
			// The run's agent token, as a start issues one.
			e.AgentTokenNonce = srv.AgentTokens.NewNonce()
		}
		e, err := srv.Store.CreateEnvironment(ctx, e)
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		ids = append(ids, e.ID)
		if i < o.running {
			running = append(running, e.ID)
			agentTok = append(agentTok, srv.AgentTokens.Issue(e.ID, e.AgentTokenNonce))
		}
	}
	fmt.Printf("   seeded %d environments in %s\n", o.envs, time.Since(t0).Round(time.Millisecond))

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}}
	get := func(path, tok string) func(i int) error {
		return func(i int) error {
			req, _ := http.NewRequestWithContext(ctx, "GET", url+fmt.Sprintf(path, ids[i%len(ids)]), nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			return do(client, req)
		}
	}
	getEnv := get("/api/v1/environments/%s", token)
	listEnv := func(i int) error {
		req, _ := http.NewRequestWithContext(ctx, "GET", url+"/api/v1/environments", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		return do(client, req)
	}
	// Warm up connections and caches.
	runLoad(ctx, o.workers, 0, time.Second, 2000, getEnv)

	maxN := func(d time.Duration, rate float64) int { return int(d.Seconds()*rate) + 1 }
	loadFigures(ctx, o, engine, "GET environment", fmt.Sprintf("%d workers, unpaced", o.workers), o.workers, 0, o.loadDur, 200000, getEnv, "p99 ≤ 5 ms at 2,000 req/s", 0)
	loadFigures(ctx, o, engine, "GET environment", fmt.Sprintf("%d workers, paced at %.0f req/s", o.workers, o.getRate), o.workers, o.getRate, o.loadDur, maxN(o.loadDur, o.getRate), getEnv, "p99 ≤ 5 ms at 2,000 req/s", 5)
	loadFigures(ctx, o, engine, "GET list (default page of 50)", fmt.Sprintf("%d workers, unpaced", o.workers), o.workers, 0, o.loadDur, 200000, listEnv, "—", 0)

	// Reaper sweeps.
	var sweeps []float64
	for range o.runs {
		t0 := time.Now()
		n, err := srv.Manager.Reap(ctx)
		d := time.Since(t0)
		if err != nil {
			return fmt.Errorf("reap: %w", err)
		}
		if n != 0 {
			return fmt.Errorf("reap stopped %d environments; the seed meant none", n)
		}
		sweeps = append(sweeps, float64(d.Microseconds())/1000)
	}
	addFigure(Figure{Section: "3 reaper", Name: "idle reaper sweep", Engine: engine, Unit: "ms", Runs: sweeps, Target: "≤ 50 ms", Note: fmt.Sprintf("%d environments, %d RUNNING idle candidates, none due", o.envs, o.running)}, sweeps, 50, true)

	// Activity reports from simulated supervisors.
	activity := func(i int) error {
		k := i % len(running)
		req, _ := http.NewRequestWithContext(ctx, "POST", url+"/api/v1/environments/"+running[k]+"/activity", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Bearer "+agentTok[k])
		req.Header.Set("Content-Type", "application/json")
		return do(client, req)
	}
	loadFigures(ctx, o, engine, "activity reports", fmt.Sprintf("%d agents, paced at %.0f/s", o.actAgents, o.actRate), o.actAgents, o.actRate, o.loadDur, maxN(o.loadDur, o.actRate), activity, "≥ 5,000/s with p99 < 100 ms", -1)
	loadFigures(ctx, o, engine, "activity reports", fmt.Sprintf("%d agents, unpaced", o.actAgents), o.actAgents, 0, o.loadDur, 200000, activity, "≥ 5,000/s with p99 < 100 ms", -1)

	// Resource-usage reports: what a supervisor sends every interval (one
	// sample per report here), through the same agent authentication.
	usage := func(i int) error {
		k := i % len(running)
		body := fmt.Sprintf(`{"samples":[{"timestamp":%q,"cpu_usage_percent":12.5,"memory_usage_mb":512,"disk_usage_mb":2048,"network_in_mb":0.1,"network_out_mb":0.2}]}`,
			time.Now().UTC().Format(time.RFC3339Nano))
		req, _ := http.NewRequestWithContext(ctx, "POST", url+"/api/v1/environments/"+running[k]+"/usage", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+agentTok[k])
		req.Header.Set("Content-Type", "application/json")
		return do(client, req)
	}
	loadFigures(ctx, o, engine, "usage reports", fmt.Sprintf("%d agents, unpaced", o.actAgents), o.actAgents, 0, o.loadDur, 200000, usage, "—", -2)
	return nil
}

// processCPU is the CPU time (user + system) this process has used: the
// server and the load generator together, as they share the process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func do(c *http.Client, req *http.Request) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	return nil
}
