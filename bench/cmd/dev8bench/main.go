// Command dev8bench is Dev8's benchmark suite (issue 8): it starts real
// Dev8 servers in-process (SQLite, and PostgreSQL when -database-url is
// given), drives them over loopback only, and prints a table of figures with
// their targets; the same results are written as JSON.
//
// Run it through `make bench`, which builds bin/dev8 and the small supervisor
// it embeds, runs this with -tags dev8_embed_supervisor so its servers start
// workspaces with that supervisor as dev8 server does, and starts a
// throwaway PostgreSQL when one is installed.
// Every load loop is bounded in both count and time.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to create the benchmark's database
	"golang.org/x/crypto/ssh"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/supervisorbin"
	"dev8.dev/dev8/sdk"
)

type options struct {
	dev8        string
	supervisor  string
	databaseURL string
	out         string
	runs        int
	envs        int
	running     int
	loadDur     time.Duration
	workers     int
	getRate     float64
	actRate     float64
	actAgents   int
	supDur      time.Duration
	lifecycle   bool
	storeFigs   bool
	cpuProfile  string
}

// Figure is one measured quantity: the median of Runs runs with min/max.
type Figure struct {
	Section string    `json:"section"`
	Name    string    `json:"name"`
	Engine  string    `json:"engine,omitempty"`
	Unit    string    `json:"unit"`
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Runs    []float64 `json:"runs"`
	Target  string    `json:"target,omitempty"`
	Met     *bool     `json:"met,omitempty"`
	Note    string    `json:"note,omitempty"`
}

// Machine describes where the figures were taken.
type Machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Engines   string `json:"store_engines"`
	// LoadAvg is /proc/loadavg at the start and the end: other work on
	// the machine skews every figure.
	LoadAvgStart string `json:"loadavg_start"`
	LoadAvgEnd   string `json:"loadavg_end"`
}

// Results is the JSON file.
type Results struct {
	Date    string   `json:"date"`
	Machine Machine  `json:"machine"`
	Figures []Figure `json:"figures"`
	Skipped []string `json:"skipped,omitempty"`
	Notes   []string `json:"notes,omitempty"`
}

var results Results

func main() {
	var o options
	flag.StringVar(&o.dev8, "dev8", "bin/dev8", "built dev8 binary (dev8 ssh --stdio; and each workspace's supervisor when this bench embeds none, see -supervisor)")
	flag.StringVar(&o.supervisor, "supervisor", "", "binary run as each workspace's supervisor (with the argument \"supervisor\"); default: the small supervisor the server writes from its embedded copy, as dev8 server does, when this bench is built with -tags dev8_embed_supervisor (make bench does), else -dev8")
	flag.StringVar(&o.databaseURL, "database-url", os.Getenv("DEV8_TEST_DATABASE_URL"), "PostgreSQL server for the PostgreSQL runs (empty: skip them); a fresh database is created on it")
	flag.StringVar(&o.out, "out", "bench/results.json", "where to write the JSON results")
	flag.IntVar(&o.runs, "runs", 5, "runs per figure (the median, min and max are reported)")
	flag.IntVar(&o.envs, "envs", 10000, "environments seeded into the store for the API, reaper and activity figures")
	flag.IntVar(&o.running, "running", 1000, "how many of the seeded environments are RUNNING")
	flag.DurationVar(&o.loadDur, "load-duration", 2*time.Second, "length of each load run")
	flag.IntVar(&o.workers, "workers", 16, "concurrent API clients")
	flag.Float64Var(&o.getRate, "get-rate", 2000, "fixed request rate for the GET latency figure (req/s)")
	flag.Float64Var(&o.actRate, "activity-rate", 5000, "fixed offered rate of activity reports (reports/s)")
	flag.IntVar(&o.actAgents, "activity-agents", 64, "concurrent simulated supervisors reporting activity")
	flag.DurationVar(&o.supDur, "supervisor-duration", 5*time.Minute, "how long to sample the idle supervisor from /proc (issue 8 asks for 5 minutes)")
	flag.BoolVar(&o.lifecycle, "lifecycle", true, "measure create/resume → SSH-ready and the idle supervisor (false: only the store-backed figures)")
	flag.BoolVar(&o.storeFigs, "store", true, "measure the store-backed figures: API latency, reaper sweep, activity ingestion (false: skip them)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (server and load generator together) to this file")
	flag.Parse()

	dev8, err := filepath.Abs(o.dev8)
	if err == nil {
		_, err = os.Stat(dev8)
	}
	if err != nil {
		fatal(fmt.Errorf("dev8 binary: %w (run `make build` first)", err))
	}
	o.dev8 = dev8
	if o.supervisor != "" {
		if o.supervisor, err = filepath.Abs(o.supervisor); err != nil {
			fatal(err)
		}
	}
	fmt.Println("workspace supervisor:", o.supervisorSource())

	results.Date = time.Now().UTC().Format(time.RFC3339)
	results.Machine = machine()
	results.Machine.LoadAvgStart = loadAvg()
	results.Notes = append(results.Notes,
		"rate limits are disabled on the benchmark servers (httpmw.RateLimits PrincipalRate/IPRate = -1, i.e. --rate-limit-user/--rate-limit-ip off); the defaults would throttle the load runs",
		"the load generator runs in the same process as the server and shares its cores; latencies are client-side, measured from the moment a worker sends the request",
	)
	if o.supDur < 5*time.Minute {
		results.Notes = append(results.Notes, fmt.Sprintf("supervisor idle footprint is sampled for %s, not the 5 minutes issue 8 asks for (-supervisor-duration)", o.supDur))
	}
	engines := "sqlite"
	if o.databaseURL != "" {
		engines += ", postgres"
	}
	results.Machine.Engines = engines
	fmt.Printf("dev8bench  %s\nmachine: %s, %d cores, %s, %s; stores: %s; load average at start: %s\n\n", results.Date, results.Machine.CPU, results.Machine.Cores, results.Machine.GoVersion, results.Machine.OS, engines, results.Machine.LoadAvgStart)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if o.lifecycle {
		if err := lifecycleBench(ctx, o); err != nil {
			fatal(fmt.Errorf("lifecycle: %w", err))
		}
		if err := dockerBench(ctx, o); err != nil {
			fatal(fmt.Errorf("docker lifecycle: %w", err))
		}
		if err := ideBench(ctx, o); err != nil {
			fatal(fmt.Errorf("create → IDE-ready: %w", err))
		}
	} else {
		results.Skipped = append(results.Skipped, "lifecycle, IDE, supervisor, tunnel and PTY figures: -lifecycle=false")
	}
	if err := snapshotBench(ctx); err != nil {
		fatal(fmt.Errorf("snapshots: %w", err))
	}
	if o.storeFigs {
		storeBenches(ctx, o)
	} else {
		results.Skipped = append(results.Skipped, "API, reaper and activity figures: -store=false")
	}
	results.Skipped = append(results.Skipped,
		"docker runtime figures other than create/resume → SSH-ready and create → IDE-ready, create latency under load, tunnel figures on docker: not measured yet")
	results.Machine.LoadAvgEnd = loadAvg()
	printTable()
	if err := writeJSON(o.out); err != nil {
		fatal(err)
	}
	fmt.Printf("\nJSON written to %s\n", o.out)
}

// storeBenches runs storeBench on SQLite, then on PostgreSQL when there
// is a server.
func storeBenches(ctx context.Context, o options) {
	if err := storeBench(ctx, o, "sqlite", ""); err != nil {
		fatal(fmt.Errorf("sqlite: %w", err))
	}
	if o.databaseURL == "" {
		results.Skipped = append(results.Skipped, "PostgreSQL figures: no PostgreSQL server (install postgresql; `make bench` starts a throwaway one via scripts/test-postgres.sh)")
		return
	}
	url, drop, err := freshPostgres(ctx, o.databaseURL)
	if err != nil {
		fatal(fmt.Errorf("postgres: %w", err))
	}
	err = storeBench(ctx, o, "postgres", url)
	drop()
	if err != nil {
		fatal(fmt.Errorf("postgres: %w", err))
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "dev8bench:", err)
	os.Exit(1)
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func machine() Machine {
	m := Machine{Cores: goruntime.NumCPU(), GoVersion: goruntime.Version(), OS: goruntime.GOOS + "/" + goruntime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	return m
}

// startServer runs a dev8 server in this process on a loopback port.
var dataDirs = map[*server.Server]string{}

func startServer(ctx context.Context, o options, databaseURL string, mods ...func(*server.Config)) (*server.Server, string, func(), error) {
	dir, err := os.MkdirTemp("", "dev8bench-")
	if err != nil {
		return nil, "", nil, err
	}
	cfg := server.Config{
		DataDir:           dir,
		DatabaseURL:       databaseURL,
		Runtime:           "local",
		SupervisorCommand: o.supervisorCommand(),
		// The sweeps and resyncs are driven by the benchmark itself;
		// seeded RUNNING rows have no process, and a resync would
		// mark them ERROR.
		ReaperInterval: time.Hour,
		ResyncInterval: time.Hour,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		BcryptCost:     auth.MinBcryptCost,
		RateLimits:     httpmw.RateLimits{PrincipalRate: -1, IPRate: -1},
	}
	for _, m := range mods {
		m(&cfg)
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		os.RemoveAll(dir)
		return nil, "", nil, err
	}
	dataDirs[srv] = dir
	serveCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(serveCtx, ln) }()
	cleanup := func() {
		envs, _, _ := srv.Store.ListEnvironments(context.Background(), store.EnvironmentFilter{})
		for _, e := range envs {
			if e.Status != store.StatusStopped {
				_ = srv.Runtime.Delete(context.Background(), e.ID)
			}
		}
		stop()
		<-done
		srv.Close()
		os.RemoveAll(dir)
	}
	return srv, "http://" + ln.Addr().String(), cleanup, nil
}

func userToken(ctx context.Context, url, email string) (string, error) {
	c := sdk.New(url, "")
	if _, err := c.Signup(ctx, email, "benchmark-password-1", "Bench"); err != nil {
		return "", err
	}
	token, _, err := c.Login(ctx, email, "benchmark-password-1")
	return token, err
}

// sshReady returns once `true` runs over SSH through the server's tunnel.
func sshReady(ctx context.Context, c *sdk.Client, id string) error {
	var last error
	for ctx.Err() == nil {
		if last = sshTrue(ctx, c, id); last == nil {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
}

func sshTrue(ctx context.Context, c *sdk.Client, id string) error {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := c.DialSSH(dctx, id)
	if err != nil {
		return err
	}
	defer conn.Close()
	cc, chans, reqs, err := ssh.NewClientConn(conn, "dev8", &ssh.ClientConfig{
		User:            "dev8",
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // the tunnel is authenticated by the server
		Timeout:         5 * time.Second,
	})
	if err != nil {
		return err
	}
	client := ssh.NewClient(cc, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return err
	}
	defer sess.Close()
	return sess.Run("true")
}

// lifecycleBench: create → SSH-ready, stopped → running (resume), and the
// idle supervisor's footprint, on the local runtime with SQLite.
func lifecycleBench(ctx context.Context, o options) error {
	fmt.Println("== lifecycle (local runtime, sqlite)")
	srv, url, cleanup, err := startServer(ctx, o, "")
	if err != nil {
		return err
	}
	defer cleanup()
	token, err := userToken(ctx, url, "lifecycle@bench.test")
	if err != nil {
		return err
	}
	c := sdk.New(url, token)
	create, resume, keep, err := createResumeRuns(ctx, c, o.runs, time.Minute, "", true,
		func(i int) sdk.CreateEnvironmentRequest {
			return sdk.CreateEnvironmentRequest{Name: fmt.Sprintf("bench-%d", i)}
		})
	if err != nil {
		return err
	}
	addFigure(Figure{Section: "1 lifecycle", Name: "create → SSH-ready (local)", Engine: "sqlite", Unit: "s", Runs: create, Target: "≤ 0.3 s"}, create, 0.3, true)
	addFigure(Figure{Section: "1 lifecycle", Name: "stopped → SSH-ready, resume (local)", Engine: "sqlite", Unit: "s", Runs: resume, Target: "— (≤ 1.0 s is the docker target)"}, resume, 0, true)

	// Supervisor footprint: the workspace kept from run 1, idle; then the
	// tunnel figures on the same workspace.
	if err := supervisorFootprint(ctx, o, srv, keep); err != nil {
		return err
	}
	return tunnelBench(ctx, o, url, token, keep)
}

// createResumeRuns times, runs times: create → SSH-ready, then stop and
// stopped → SSH-ready (resume). Each environment is deleted after its run,
// except with keepFirst the first, whose id is returned, still running, for
// later figures. label prefixes the errors ("docker ", say).
func createResumeRuns(ctx context.Context, c *sdk.Client, runs int, timeout time.Duration, label string, keepFirst bool, req func(i int) sdk.CreateEnvironmentRequest) (create, resume []float64, keep string, err error) {
	for i := range runs {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		t0 := time.Now()
		env, err := c.CreateEnvironment(rctx, req(i))
		if err == nil {
			err = sshReady(rctx, c, env.ID)
		}
		d := time.Since(t0)
		if err != nil {
			cancel()
			return nil, nil, "", fmt.Errorf("%screate → ssh-ready: %w", label, err)
		}
		create = append(create, d.Seconds())
		fmt.Printf("   create → ssh-ready run %d: %s\n", i+1, d.Round(time.Millisecond))

		if _, err := c.Stop(rctx, env.ID); err != nil {
			cancel()
			return nil, nil, "", err
		}
		if _, err := c.WaitForStatus(rctx, env.ID, sdk.StatusStopped, nil); err != nil {
			cancel()
			return nil, nil, "", err
		}
		t0 = time.Now()
		_, err = c.Start(rctx, env.ID)
		if err == nil {
			err = sshReady(rctx, c, env.ID)
		}
		d = time.Since(t0)
		cancel()
		if err != nil {
			return nil, nil, "", fmt.Errorf("%sresume → ssh-ready: %w", label, err)
		}
		resume = append(resume, d.Seconds())
		fmt.Printf("   resume → ssh-ready run %d: %s\n", i+1, d.Round(time.Millisecond))
		if i == 0 && keepFirst {
			keep = env.ID
			continue
		}
		dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
		if _, err := c.Delete(dctx, env.ID); err == nil {
			_ = c.WaitForDeleted(dctx, env.ID, nil)
		}
		dcancel()
	}
	return create, resume, keep, nil
}

// supervisorCommand is the servers' Config.SupervisorCommand: nil (the
// server's own choice, the embedded supervisor) unless -supervisor names one
// or nothing is embedded.
func (o options) supervisorCommand() []string {
	if b := o.supervisorBinary(); b != "" {
		return []string{b, "supervisor"}
	}
	return nil
}

// supervisorBinary is the docker servers' Config.SupervisorBinary, chosen
// as supervisorCommand is.
func (o options) supervisorBinary() string {
	switch {
	case o.supervisor != "":
		return o.supervisor
	case supervisorbin.Binary() != nil:
		return ""
	}
	return o.dev8
}

func (o options) supervisorSource() string {
	switch {
	case o.supervisor != "":
		return o.supervisor + " (-supervisor)"
	case supervisorbin.Binary() != nil:
		return fmt.Sprintf("the embedded small supervisor (%.1f MB), written by each server to <data-dir>/bin as dev8 server does", float64(len(supervisorbin.Binary()))/1e6)
	}
	return o.dev8 + " supervisor (this bench embeds no supervisor: build it with -tags dev8_embed_supervisor after make build, as make bench does)"
}

func supervisorFootprint(ctx context.Context, o options, srv *server.Server, id string) error {
	data, err := os.ReadFile(filepath.Join(dataDirs[srv], "workspaces", id, "state.json"))
	if err != nil {
		return fmt.Errorf("supervisor state: %w", err)
	}
	var st struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(data, &st); err != nil || st.PID == 0 {
		return fmt.Errorf("supervisor pid from state.json: %v", err)
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", st.PID))
	if err != nil {
		return fmt.Errorf("supervisor executable: %w", err)
	}
	var exeSize float64
	if fi, err := os.Stat(exe); err == nil {
		exeSize = float64(fi.Size()) / 1e6
	}
	exeNote := fmt.Sprintf("supervisor executable %s (%.1f MB)", exe, exeSize)
	results.Notes = append(results.Notes, exeNote)
	fmt.Printf("   sampling idle supervisor pid %d (%s) for %s\n", st.PID, exeNote, o.supDur)
	// Let it settle after the SSH session of the resume run.
	time.Sleep(2 * time.Second)
	const tick = 100 // USER_HZ on Linux
	var rss, anon, file []float64
	var cpuWindows []float64
	window := o.supDur / time.Duration(max(o.runs, 1))
	start := time.Now()
	lastT, lastJ := time.Now(), procJiffies(st.PID)
	winStart, winJ := lastT, lastJ
	totalJ0, totalT0 := lastJ, lastT
	for time.Since(start) < o.supDur && ctx.Err() == nil {
		time.Sleep(time.Second)
		r := procRSS(st.PID)
		if r < 0 {
			return fmt.Errorf("supervisor pid %d is gone", st.PID)
		}
		rss = append(rss, r)
		a, f := procRSSSplit(st.PID)
		anon, file = append(anon, a), append(file, f)
		now, j := time.Now(), procJiffies(st.PID)
		if now.Sub(winStart) >= window {
			cpuWindows = append(cpuWindows, 100*float64(j-winJ)/tick/now.Sub(winStart).Seconds())
			winStart, winJ = now, j
		}
		lastT, lastJ = now, j
	}
	total := 100 * float64(lastJ-totalJ0) / tick / lastT.Sub(totalT0).Seconds()
	addFigure(Figure{Section: "5 supervisor", Name: "idle supervisor RSS (1 s samples)", Unit: "MB", Runs: rss, Target: "≤ 20 MB", Note: fmt.Sprintf("%d samples over %s; %s", len(rss), o.supDur, exeNote)}, rss, 20, true)
	addFigure(Figure{Section: "5 supervisor", Name: "  of which anonymous (RssAnon: heap, stacks)", Unit: "MB", Runs: anon, Note: "private memory the supervisor allocated"}, anon, 0, true)
	addFigure(Figure{Section: "5 supervisor", Name: "  of which file-backed (RssFile: the mapped supervisor binary)", Unit: "MB", Runs: file, Note: "clean pages of the executable, shared by every process running the same file and reclaimable"}, file, 0, true)
	addFigure(Figure{Section: "5 supervisor", Name: fmt.Sprintf("idle supervisor CPU (%s windows)", window.Round(time.Second)), Unit: "%", Runs: cpuWindows, Target: "≤ 0.5 %", Note: fmt.Sprintf("%.3f %% over the whole %s; the supervisor process only (not children)", total, o.supDur)}, cpuWindows, 0.5, true)
	return nil
}

func procRSS(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			kb, _ := strconv.ParseFloat(f[0], 64)
			return kb / 1024
		}
	}
	return -1
}

// procRSSSplit returns RssAnon and RssFile+RssShmem from
// /proc/<pid>/status, in MB.
func procRSSSplit(pid int) (anon, file float64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		f := strings.Fields(v)
		if !ok || len(f) == 0 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[0], 64)
		switch k {
		case "RssAnon":
			anon = kb / 1024
		case "RssFile", "RssShmem":
			file += kb / 1024
		}
	}
	return anon, file
}

func procJiffies(pid int) uint64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+2:])
	// fields after the command: state(0) ... utime(11) stime(12)
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st
}

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
		}
		e, err := srv.Store.CreateEnvironment(ctx, e)
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		ids = append(ids, e.ID)
		if i < o.running {
			running = append(running, e.ID)
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
	agentTok := make([]string, len(running))
	for i, id := range running {
		agentTok[i] = srv.AgentTokens.Issue(id)
	}
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

type loadResult struct {
	n, errs  int
	rate     float64 // completed requests/s
	p50, p99 float64 // ms
	// cpuPer1000: ms of this process's CPU (server and load generator)
	// per 1,000 completed requests.
	cpuPer1000 float64
	firstErr   error
}

// runLoad sends up to maxN requests from workers goroutines for at most
// dur, paced at rate req/s when rate > 0.
func runLoad(ctx context.Context, workers int, rate float64, dur time.Duration, maxN int, fn func(i int) error) loadResult {
	var next atomic.Int64
	var mu sync.Mutex
	var lat []float64
	var errs int
	var firstErr error
	start, cpu0 := time.Now(), processCPU()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]float64, 0, 1024)
			var lerrs int
			var lerr error
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= maxN {
					break
				}
				if rate > 0 {
					// Request i is due at start + i/rate.
					due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
					if due.After(deadline) {
						break
					}
					if w := time.Until(due); w > 0 {
						time.Sleep(w)
					}
				} else if time.Now().After(deadline) {
					break
				}
				t0 := time.Now()
				err := fn(i)
				local = append(local, float64(time.Since(t0).Microseconds())/1000)
				if err != nil {
					lerrs++
					if lerr == nil {
						lerr = err
					}
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			errs += lerrs
			if firstErr == nil {
				firstErr = lerr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	el, cpu := time.Since(start), processCPU()-cpu0
	slices.Sort(lat)
	r := loadResult{n: len(lat), errs: errs, firstErr: firstErr, rate: float64(len(lat)) / el.Seconds()}
	if len(lat) > 0 {
		r.cpuPer1000 = float64(cpu.Microseconds()) / 1000 / float64(len(lat)) * 1000
	}
	if len(lat) > 0 {
		r.p50 = lat[len(lat)*50/100]
		r.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return r
}

// loadFigures runs one load o.runs times and records throughput, p50 and
// p99. p99Target > 0 checks p99 ≤ it (ms); -1 is the activity rule, which
// also records CPU per 1,000 reports; -2 records the same figures as -1
// without a target.
func loadFigures(ctx context.Context, o options, engine, what, how string, workers int, rate float64, dur time.Duration, maxN int, fn func(int) error, target string, p99Target float64) {
	var thr, p50, p99, cpu []float64
	errs := 0
	var firstErr error
	for range o.runs {
		r := runLoad(ctx, workers, rate, dur, maxN, fn)
		thr, p50, p99, cpu = append(thr, r.rate), append(p50, r.p50), append(p99, r.p99), append(cpu, r.cpuPer1000)
		errs += r.errs
		if firstErr == nil {
			firstErr = r.firstErr
		}
	}
	note := fmt.Sprintf("%s, %d runs of ≤ %s", how, o.runs, dur)
	if errs > 0 {
		note += fmt.Sprintf("; %d errors, first: %v", errs, firstErr)
	}
	name := what + " — " + how
	switch {
	case p99Target > 0:
		addFigure(Figure{Section: "2 API", Name: name + " — throughput", Engine: engine, Unit: "req/s", Runs: thr, Note: note}, thr, 0, false)
		addFigure(Figure{Section: "2 API", Name: name + " — p50", Engine: engine, Unit: "ms", Runs: p50}, p50, 0, true)
		f := Figure{Section: "2 API", Name: name + " — p99", Engine: engine, Unit: "ms", Runs: p99, Target: target}
		met := median(p99) <= p99Target && median(thr) >= 0.95*rate && errs == 0
		f.Met = &met
		addFigure(f, p99, 0, true)
	case p99Target < 0:
		f := Figure{Section: "4 activity", Name: name + " — sustained", Engine: engine, Unit: "reports/s", Runs: thr, Target: target, Note: note}
		if p99Target == -1 {
			// Paced runs count as sustained when they complete 98 % of
			// the offered rate (the last requests' tail is inside the
			// window).
			need := 5000.0
			if rate > 0 {
				need = 0.98 * max(rate, 5000)
			}
			met := median(thr) >= need && median(p99) < 100 && errs == 0
			f.Met = &met
		}
		addFigure(f, thr, 0, false)
		addFigure(Figure{Section: "4 activity", Name: name + " — p50", Engine: engine, Unit: "ms", Runs: p50}, p50, 0, true)
		addFigure(Figure{Section: "4 activity", Name: name + " — p99", Engine: engine, Unit: "ms", Runs: p99, Target: "< 100 ms"}, p99, 100, true)
		addFigure(Figure{Section: "4 activity", Name: name + " — CPU per 1,000 reports (server and load generator, one process)", Engine: engine, Unit: "ms", Runs: cpu}, cpu, 0, true)
	default:
		addFigure(Figure{Section: "2 API", Name: name + " — throughput", Engine: engine, Unit: "req/s", Runs: thr, Note: note}, thr, 0, false)
		addFigure(Figure{Section: "2 API", Name: name + " — p50", Engine: engine, Unit: "ms", Runs: p50}, p50, 0, true)
		addFigure(Figure{Section: "2 API", Name: name + " — p99", Engine: engine, Unit: "ms", Runs: p99, Target: target}, p99, 0, true)
	}
	fmt.Printf("   %s (%s): %.0f req/s, p50 %.2f ms, p99 %.2f ms (medians), %d errors\n", what, how, median(thr), median(p50), median(p99), errs)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// addFigure fills median/min/max; limit > 0 sets Met (≤ limit when
// lowerBetter) unless the caller already did.
func addFigure(f Figure, v []float64, limit float64, lowerBetter bool) {
	f.Runs = v
	if len(v) > 0 {
		f.Median, f.Min, f.Max = median(v), slices.Min(v), slices.Max(v)
	}
	if f.Met == nil && limit > 0 {
		met := f.Median <= limit
		if !lowerBetter {
			met = f.Median >= limit
		}
		f.Met = &met
	}
	results.Figures = append(results.Figures, f)
}

func printTable() {
	fmt.Printf("\n%-78s %-9s %12s %12s %12s %-10s  %-30s %s\n", "figure", "store", "median", "min", "max", "unit", "target", "")
	for _, f := range results.Figures {
		verdict := ""
		if f.Met != nil {
			verdict = "MISSED"
			if *f.Met {
				verdict = "met"
			}
		}
		fmt.Printf("%-78s %-9s %12s %12s %12s %-10s  %-30s %s\n", f.Name, f.Engine, num(f.Median), num(f.Min), num(f.Max), f.Unit, f.Target, verdict)
	}
	fmt.Printf("\nload average (1/5/15 min) at start: %s, at end: %s (above the core count, other work shared the CPU and the figures are pessimistic)\n", results.Machine.LoadAvgStart, results.Machine.LoadAvgEnd)
	for _, n := range results.Notes {
		fmt.Println("note:", n)
	}
	for _, s := range results.Skipped {
		fmt.Println("not measured:", s)
	}
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func writeJSON(path string) error {
	data, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// freshPostgres creates a new database on the server at base and returns
// its URL and a function that drops it.
func freshPostgres(ctx context.Context, base string) (string, func(), error) {
	db, err := sql.Open("pgx", base)
	if err != nil {
		return "", nil, err
	}
	name := fmt.Sprintf("dev8bench_%d", time.Now().UnixNano())
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u, err := neturl.Parse(base)
	if err != nil {
		db.Close()
		return "", nil, err
	}
	u.Path = "/" + name
	return u.String(), func() {
		if _, err := db.Exec("DROP DATABASE " + name + " WITH (FORCE)"); err != nil && !errors.Is(err, sql.ErrConnDone) {
			fmt.Fprintln(os.Stderr, "drop database:", err)
		}
		db.Close()
	}, nil
}
