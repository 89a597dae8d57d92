package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/tunnel"
)

// The supervisors one replica holds: N simulated supervisors, each a real
// tunnel (a websocket carrying yamux, as dev8-supervisor dials it) from a
// child process, held by one server; the figure is the server's resident
// memory with them all connected. The child is this program again, told
// so by agentsEnv.

const agentsEnv = "DEV8BENCH_AGENTS" // the file of "id token" lines

// agentsBench measures how many supervisors one replica holds, on
// PostgreSQL when there is one (as replicas run), else SQLite.
func agentsBench(ctx context.Context, o options) error {
	engine, databaseURL := "sqlite", ""
	if o.databaseURL != "" {
		url, drop, err := freshPostgres(ctx, o.databaseURL)
		if err != nil {
			return err
		}
		defer drop()
		engine, databaseURL = "postgres", url
	}
	fmt.Printf("== supervisors one replica holds (%s, %d simulated supervisors)\n", engine, o.agents)
	raiseFileLimit()
	srv, url, cleanup, err := startServer(ctx, o, databaseURL)
	if err != nil {
		return err
	}
	defer cleanup()
	if _, err := userToken(ctx, url, "agents@bench.test"); err != nil {
		return err
	}
	user, err := srv.Store.GetUserByEmail(ctx, "agents@bench.test")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp("", "dev8bench-agents-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	w := bufio.NewWriter(f)
	for i := range o.agents {
		e, err := srv.Store.CreateEnvironment(ctx, store.Environment{
			UserID: user.ID, Name: fmt.Sprintf("agent-%05d", i), Status: store.StatusRunning,
			Runtime: "local", TemplateName: "base", InstanceType: "small", CPUCores: 2, MemoryGB: 4, StorageGB: 20,
			AutoStopMinutes: 60, AgentTokenNonce: srv.AgentTokens.NewNonce(),
		})
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		fmt.Fprintf(w, "%s %s\n", e.ID, srv.AgentTokens.Issue(e.ID, e.AgentTokenNonce))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	f.Close()

	runtime.GC()
	before := rssKB()
	child := exec.CommandContext(ctx, os.Args[0])
	child.Env = append(os.Environ(), agentsEnv+"="+f.Name(), "DEV8BENCH_URL="+url)
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe() // closed: the child exits
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := child.Start(); err != nil {
		return err
	}
	defer func() {
		stdin.Close()
		_ = child.Wait()
	}()
	deadline := time.Now().Add(5 * time.Minute)
	for srv.Tunnels.Sessions() < o.agents {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("only %d of %d supervisors connected in 5 minutes", srv.Tunnels.Sessions(), o.agents)
		}
		time.Sleep(50 * time.Millisecond) // nothing to await: the registry has no event for a count
	}
	took := time.Since(t0)
	// Settled: the connections' first buffers are in use.
	time.Sleep(2 * time.Second)
	runtime.GC()
	after := rssKB()
	mb := float64(after) / 1024
	perAgent := float64(after-before) / float64(o.agents)
	// The target is for 10,000; fewer are projected to 10,000 at the
	// measured cost each.
	projected := float64(before)/1024 + perAgent*10000/1024
	addFigure(Figure{Section: "9 replicas", Name: fmt.Sprintf("server RSS with %d supervisors connected", o.agents), Engine: engine, Unit: "MiB",
		Runs: []float64{mb}, Target: "10,000 per replica within 4 GiB",
		Note: fmt.Sprintf("%.1f KiB per supervisor above the idle server's %.0f MiB (10,000 would be %.0f MiB); all connected %s after the first dial (256 dialing at once); goroutines %d",
			perAgent, float64(before)/1024, projected, took.Round(time.Millisecond), runtime.NumGoroutine())}, []float64{max(mb, projected)}, 4096, true)
	return nil
}

// runAgents is the child: it dials every supervisor's tunnel, at most 256
// at once, and holds them until its stdin closes.
func runAgents(file, url string) {
	raiseFileLimit()
	data, err := os.ReadFile(file)
	if err != nil {
		fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dialing := make(chan struct{}, 256)
	var wg sync.WaitGroup
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		id, token, _ := strings.Cut(line, " ")
		dialing <- struct{}{}
		var once sync.Once
		wg.Go(func() {
			_ = tunnel.Connect(ctx, tunnel.AgentConfig{ServerURL: url, EnvironmentID: id, Token: token, Logger: log, HTTPClient: client,
				Connected: func() { once.Do(func() { <-dialing }) }})
		})
	}
	wg.Wait()
}

// rssKB is this process's resident set (the server's, with the bench's
// own small part), in KiB.
func rssKB() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// raiseFileLimit lifts the open-files limit to its hard maximum: each
// supervisor holds a socket at both ends.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// replicasAPIBench measures the API with 1 and then 3 replicas on one
// PostgreSQL database, the requests spread over them in turn as a load
// balancer would. All run in this process and share its cores: the figure
// shows what replicas cost or give on one machine, not on three.
func replicasAPIBench(ctx context.Context, o options) error {
	if o.databaseURL == "" {
		results.Skipped = append(results.Skipped, "replicas: API with 1 vs 3 replicas: no PostgreSQL server")
		return nil
	}
	for _, n := range []int{1, 3} {
		if err := replicasAPIRun(ctx, o, n); err != nil {
			return err
		}
	}
	return nil
}

func replicasAPIRun(ctx context.Context, o options, n int) error {
	url, drop, err := freshPostgres(ctx, o.databaseURL)
	if err != nil {
		return err
	}
	defer drop()
	fmt.Printf("== API through %d replica(s) on one PostgreSQL database\n", n)
	key := strings.Repeat("5e", 32)
	var (
		urls []string
		srvs []*server.Server
	)
	for range n {
		srv, u, cleanup, err := startServer(ctx, o, url, func(c *server.Config) { c.SecretKey = key })
		if err != nil {
			return err
		}
		defer cleanup()
		srvs, urls = append(srvs, srv), append(urls, u)
	}
	token, err := userToken(ctx, urls[0], "replicas@bench.test")
	if err != nil {
		return err
	}
	user, err := srvs[0].Store.GetUserByEmail(ctx, "replicas@bench.test")
	if err != nil {
		return err
	}
	ids := make([]string, 0, 1000)
	for i := range 1000 {
		e, err := srvs[0].Store.CreateEnvironment(ctx, store.Environment{
			UserID: user.ID, Name: fmt.Sprintf("r-%04d", i), Status: store.StatusStopped,
			Runtime: "local", TemplateName: "base", InstanceType: "small", CPUCores: 2, MemoryGB: 4, StorageGB: 20, AutoStopMinutes: 60,
		})
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		ids = append(ids, e.ID)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}}
	get := func(i int) error {
		req, _ := http.NewRequestWithContext(ctx, "GET", urls[i%n]+"/api/v1/environments/"+ids[i%len(ids)], nil)
		req.Header.Set("Authorization", "Bearer "+token)
		return do(client, req)
	}
	runLoad(ctx, o.workers, 0, time.Second, 2000, get) // warm up
	loadFigures(ctx, o, "postgres", fmt.Sprintf("GET environment, %d replica(s), one process", n), fmt.Sprintf("%d workers, unpaced", o.workers),
		o.workers, 0, o.loadDur, 200000, get, "—", 0)
	return nil
}
