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
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
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
	agents      int
}

func main() {
	if file := os.Getenv(agentsEnv); file != "" {
		runAgents(file, os.Getenv("DEV8BENCH_URL"))
		return
	}
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
	flag.IntVar(&o.agents, "agents", 10000, "simulated supervisors connected to one replica for the replicas figure")
	flag.BoolVar(&o.storeFigs, "store", true, "measure the store-backed figures: API latency, reaper sweep, activity ingestion (false: skip them)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (server and load generator together) to this file")
	flag.StringVar(&only, "only", "", "comma-separated sections to run, the others skipped: "+strings.Join(sections, ", ")+" (local: create/resume on the local runtime, the idle supervisor, tunnel and PTY figures); empty: all")
	flag.Parse()
	if only != "" {
		onlySet = map[string]bool{}
		for _, s := range strings.Split(only, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(sections, s) {
				fatal(fmt.Errorf("-only: no section %q (sections: %s)", s, strings.Join(sections, ", ")))
			}
			onlySet[s] = true
		}
	}

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

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
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
		if reason, off := sectionOff("local", true); off {
			results.Skipped = append(results.Skipped, "local lifecycle, supervisor, tunnel and PTY figures: "+reason)
		} else if err := lifecycleBench(ctx, o); err != nil {
			fatal(fmt.Errorf("lifecycle: %w", err))
		}
		if err := dockerBench(ctx, o); err != nil {
			fatal(fmt.Errorf("docker lifecycle: %w", err))
		}
		if err := ideBench(ctx, o); err != nil {
			fatal(fmt.Errorf("create → IDE-ready: %w", err))
		}
		if err := kubernetesBench(ctx, o); err != nil {
			fatal(fmt.Errorf("kubernetes lifecycle: %w", err))
		}
	} else {
		results.Skipped = append(results.Skipped, "lifecycle (local, docker, kubernetes), IDE, supervisor, tunnel and PTY figures: -lifecycle=false")
	}
	if err := snapshotBench(ctx); err != nil {
		fatal(fmt.Errorf("snapshots: %w", err))
	}
	if reason, off := sectionOff("store", o.storeFigs); off {
		results.Skipped = append(results.Skipped, "API, reaper and activity figures: "+reason)
	} else {
		storeBenches(ctx, o)
	}
	if reason, off := sectionOff("replicas", true); off {
		results.Skipped = append(results.Skipped, "replicas figures: "+reason)
	} else {
		if err := agentsBench(ctx, o); err != nil {
			fatal(fmt.Errorf("supervisors per replica: %w", err))
		}
		if err := replicasAPIBench(ctx, o); err != nil {
			fatal(fmt.Errorf("API with replicas: %w", err))
		}
		if err := failoverBench(ctx, o); err != nil {
			fatal(fmt.Errorf("failover: %w", err))
		}
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

// sections are what -only chooses from.
var sections = []string{"local", "docker", "ide", "kubernetes", "snapshots", "store", "replicas"}

var (
	only    string
	onlySet map[string]bool // nil: every section
)

// sectionOff says why the section name does not run: its own flag (-name,
// whose value on is) is false, or -only leaves it out.
func sectionOff(name string, on bool) (string, bool) {
	if !on {
		return "-" + name + "=false", true
	}
	if onlySet != nil && !onlySet[name] {
		return "-only " + only, true
	}
	return "", false
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
