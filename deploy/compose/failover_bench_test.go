package compose_test

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/sdk"
)

// FailoverOutEnv names a file BenchmarkFailover appends its samples to
// (one JSON number of seconds a line): make bench's figure (bench/cmd/dev8bench).
const FailoverOutEnv = "DEV8BENCH_FAILOVER_OUT"

// BenchmarkFailover measures failover as a user sees it: three replicas
// behind HAProxy, a workspace on the test cluster; each iteration kills
// (SIGKILL) the replica holding the workspace's tunnel and times how long
// until a new SSH session through the load balancer succeeds (its
// supervisor has redialed and another replica relays), then starts the
// killed replica again and waits for it to be back in HAProxy's rotation.
// -benchtime Nx: N failovers on one deployment.
func BenchmarkFailover(b *testing.B) {
	d := deploy(b, 3)
	ctx := d.ctx
	lb := d.viaLB()
	env, err := lb.CreateEnvironment(ctx, sdk.CreateEnvironmentRequest{Name: "failover", InstanceType: "lightweight"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := lb.WaitForStatus(ctx, env.ID, sdk.StatusRunning, nil); err != nil {
		b.Fatal(err)
	}
	wait.Succeeds(ctx, b, "SSH through the load balancer", func() error { return ssh(ctx, lb, env.ID) })
	var out *os.File
	if path := os.Getenv(FailoverOutEnv); path != "" {
		if out, err = os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err != nil {
			b.Fatal(err)
		}
		defer out.Close()
	}
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		dead := d.holder(env.ID)
		b.StartTimer()
		killed := time.Now()
		dead.proc.Kill()
		wait.Succeeds(ctx, b, "a new SSH session after the kill", func() error { return ssh(ctx, lb, env.ID) }, wait.Every(100*time.Millisecond))
		took := time.Since(killed)
		b.StopTimer()
		total += took
		b.Logf("replica %s killed: a new SSH session through the load balancer %s later", dead.addr, took.Round(time.Millisecond))
		if out != nil {
			line, _ := json.Marshal(took.Seconds())
			if _, err := out.Write(append(line, '\n')); err != nil {
				b.Fatal(err)
			}
		}
		// Whole again before the next failover.
		d.start(dead)
		d.awaitInRotation(dead)
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/failover")
}
