package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

// failoverOutEnv is deploy/compose's FailoverOutEnv: where
// BenchmarkFailover appends its samples.
const failoverOutEnv = "DEV8BENCH_FAILOVER_OUT"

// failoverBench runs BenchmarkFailover in deploy/compose — the harness of
// TestFailover: three real `dev8 server` processes on one PostgreSQL
// database behind Debian's HAProxy, a workspace on the test cluster — with
// o.runs failovers, each the replica holding the workspace's tunnel killed
// (SIGKILL) and timed until a new SSH session through the load balancer
// succeeds.
func failoverBench(ctx context.Context, o options) error {
	skip := func(why string) {
		results.Skipped = append(results.Skipped, "replicas: failover time: "+why)
	}
	if o.databaseURL == "" {
		skip("no PostgreSQL server")
		return nil
	}
	if _, reason := findCluster(ctx); reason != "" {
		skip(reason)
		return nil
	}
	if _, err := exec.LookPath("haproxy"); err != nil && os.Getenv("DEV8_HAPROXY") == "" {
		skip("no HAProxy (apt-get install haproxy, or DEV8_HAPROXY)")
		return nil
	}
	samples, err := os.CreateTemp("", "dev8bench-failover-")
	if err != nil {
		return err
	}
	samples.Close()
	defer os.Remove(samples.Name())
	fmt.Printf("== failover: 3 replicas behind HAProxy, the tunnel's replica killed %d times (go test -bench BenchmarkFailover ./deploy/compose)\n", o.runs)
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^BenchmarkFailover$",
		"-benchtime", fmt.Sprintf("%dx", o.runs), "-timeout", "15m", "./deploy/compose")
	cmd.Env = append(os.Environ(), failoverOutEnv+"="+samples.Name(), "DEV8_TEST_DATABASE_URL="+o.databaseURL)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go test -bench BenchmarkFailover: %w\n%s", err, out.String())
	}
	data, err := os.ReadFile(samples.Name())
	if err != nil {
		return err
	}
	var runs []float64
	for _, line := range strings.Fields(string(data)) {
		var s float64
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			return fmt.Errorf("BenchmarkFailover's sample %q: %w", line, err)
		}
		runs = append(runs, s)
	}
	if len(runs) == 0 {
		if m := regexp.MustCompile(`--- SKIP: BenchmarkFailover\S*\n\s+\S+\.go:\d+: (.*)`).FindStringSubmatch(out.String()); m != nil {
			skip(m[1])
			return nil
		}
		return fmt.Errorf("BenchmarkFailover took no sample:\n%s", out.String())
	}
	addFigure(Figure{Section: "9 replicas", Name: "failover: tunnel's replica killed → new SSH session via the LB", Engine: "postgres", Unit: "s",
		Target: "within 10 s (a few seconds)",
		Note:   "three dev8 processes behind HAProxy (inter 1s fall 1), workspace on the test cluster (kubernetes runtime); SIGKILL, then SSH tried every 100 ms through the load balancer; the killed replica restarted and back in rotation between runs"},
		runs, 10, true)
	return nil
}
