package compose_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	gossh "golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/sdk"
)

// ssh runs a command in env over SSH through c, and says what went wrong
// instead of failing the test (the caller may be waiting for it to work).
func ssh(ctx context.Context, c *sdk.Client, envID string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := c.DialSSH(ctx, envID)
	if err != nil {
		return err
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	cc, chans, reqs, err := gossh.NewClientConn(conn, "dev8", &gossh.ClientConfig{
		User:            "dev8",
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), // the tunnel is authenticated by Dev8
	})
	if err != nil {
		return err
	}
	client := gossh.NewClient(cc, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return err
	}
	defer sess.Close()
	out, err := sess.CombinedOutput("echo ok")
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(out)) != "ok" {
		return errors.New("the command said " + string(out))
	}
	return nil
}

// readUntil reads the terminal p until its output matches want, and
// returns the output; a terminal silent for 15 s is closed.
func readUntil(ctx context.Context, p *sdk.PTY, want *regexp.Regexp) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	defer context.AfterFunc(ctx, func() { p.Close() })()
	var out strings.Builder
	buf := make([]byte, 4096)
	for !want.MatchString(out.String()) {
		n, err := p.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			return out.String(), err
		}
	}
	return out.String(), nil
}

// holder is the replica that holds env's tunnel, by the store.
func (d *deployment) holder(envID string) *replica {
	d.t.Helper()
	db, err := sql.Open("pgx", strings.TrimPrefix(d.env[0], "DATABASE_URL="))
	if err != nil {
		d.t.Fatal(err)
	}
	defer db.Close()
	var holder *replica
	// A killed replica's row stays until the supervisor's next tunnel
	// replaces it: its name is none of the running replicas'.
	wait.Succeeds(d.ctx, d.t, "a running replica to hold the tunnel", func() error {
		var id string
		if err := db.QueryRowContext(d.ctx, `SELECT replica_id FROM tunnel_holders WHERE environment_id = $1`, envID).Scan(&id); err != nil {
			return err
		}
		for _, r := range d.replicas {
			if r.id == id {
				holder = r
				return nil
			}
		}
		return fmt.Errorf("the tunnel's holder %s is none of the running replicas", id)
	})
	return holder
}

// events follows the dashboard's event stream on r.
func (d *deployment) events(ctx context.Context, r *replica) <-chan string {
	d.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", r.URL()+"/api/v1/environments/events", nil)
	req.Header.Set("Authorization", "Bearer "+d.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		d.t.Fatalf("event stream on %s: %v %v", r.addr, resp, err)
	}
	out := make(chan string, 64)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				select {
				case out <- data:
				default:
				}
			}
		}
	}()
	return out
}

// TestFailover: three replicas behind HAProxy. A workspace made through
// one is reached over SSH through each; the replica holding its tunnel is
// killed (SIGKILL) while another operation is in flight on it: SSH through
// the others works again within 10 s, the operation completes, a stop
// issued through a third replica completes while the killed one is down,
// and an event stream on one replica sees a create made on another.
func TestFailover(t *testing.T) {
	d := deploy(t, 3)
	ctx := d.ctx
	lb := d.viaLB()
	env, err := d.via(d.replicas[0]).CreateEnvironment(ctx, sdk.CreateEnvironmentRequest{Name: "survivor", InstanceType: "lightweight"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lb.WaitForStatus(ctx, env.ID, sdk.StatusRunning, nil); err != nil {
		t.Fatal(err)
	}
	for i, r := range d.replicas {
		if err := ssh(ctx, d.via(r), env.ID); err != nil {
			t.Fatalf("SSH through replica %d: %v", i+1, err)
		}
	}

	dead := d.holder(env.ID)
	var alive []*replica
	for _, r := range d.replicas {
		if r != dead {
			alive = append(alive, r)
		}
	}
	// A terminal, opened through a replica that relays it to the holder:
	// it reattaches through another after the kill, to the same shell
	// with its scrollback.
	term, err := d.via(alive[0]).DialPTY(ctx, env.ID, sdk.PTYOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := term.Write([]byte("echo before-$((6*7))-$$\n")); err != nil {
		t.Fatal(err)
	}
	out, err := readUntil(ctx, term, regexp.MustCompile(`before-42-(\d+)`))
	if err != nil {
		t.Fatalf("the terminal before the kill: %v (it said %q)", err, out)
	}
	shell := regexp.MustCompile(`before-42-(\d+)`).FindStringSubmatch(out)[1]

	// An operation in flight on the replica about to die: a create it
	// was asked for and has begun.
	inflight, err := d.via(dead).CreateEnvironment(ctx, sdk.CreateEnvironmentRequest{Name: "inflight", InstanceType: "lightweight"})
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	dead.proc.Kill()

	for _, r := range alive {
		c := d.via(r)
		var last error
		wait.Eventually(ctx, t, "SSH through a surviving replica", func() bool {
			last = ssh(ctx, c, env.ID)
			return last == nil
		}, wait.Every(200*time.Millisecond))
		if took := time.Since(killed); took > 10*time.Second {
			t.Errorf("SSH through %s worked again %s after the kill, want within 10 s (last error: %v)", r.addr, took, last)
		}
	}
	term.Close()
	var again *sdk.PTY
	wait.Succeeds(ctx, t, "the terminal to reattach through another replica", func() error {
		again, err = d.via(alive[1]).DialPTY(ctx, env.ID, sdk.PTYOptions{Reconnect: term.ID()})
		return err
	}, wait.Every(200*time.Millisecond))
	defer again.Close()
	if out, err := readUntil(ctx, again, regexp.MustCompile(`before-42-`+shell)); err != nil {
		t.Fatalf("the reattached terminal did not replay its scrollback: %v (it said %q)", err, out)
	}
	if _, err := again.Write([]byte("echo after-$((6*7))-$$\n")); err != nil {
		t.Fatal(err)
	}
	if out, err := readUntil(ctx, again, regexp.MustCompile(`after-42-\d+`)); err != nil || !strings.Contains(out, "after-42-"+shell) {
		t.Fatalf("the reattached terminal is not the same shell (pid %s): %v (it said %q)", shell, err, out)
	}
	t.Logf("the terminal reattached to its shell through another replica %s after the kill", time.Since(killed))

	if _, err := lb.WaitForStatus(ctx, inflight.ID, sdk.StatusRunning, nil); err != nil {
		t.Fatalf("the create in flight on the killed replica: %v", err)
	}
	t.Logf("the create in flight on the killed replica was RUNNING %s after the kill", time.Since(killed))

	// A stop through another replica while the killed one is down.
	if _, err := d.via(alive[1]).Stop(ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := lb.WaitForStatus(ctx, env.ID, sdk.StatusStopped, nil); err != nil {
		t.Fatal(err)
	}

	// Events: a create on one replica shows on another's stream.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream := d.events(sctx, alive[0])
	made, err := d.via(alive[1]).CreateEnvironment(ctx, sdk.CreateEnvironmentRequest{Name: "seen", InstanceType: "lightweight"})
	if err != nil {
		t.Fatal(err)
	}
	for seen := false; !seen; {
		select {
		case data := <-stream:
			seen = strings.Contains(data, `"id":"`+made.ID+`"`)
		case <-ctx.Done():
			t.Fatal("the create on one replica never showed on another's event stream")
		}
	}
	for _, id := range []string{env.ID, inflight.ID, made.ID} {
		if _, err := lb.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := lb.WaitForDeleted(ctx, id, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRollingRestart: each of three replicas in turn is stopped (SIGTERM)
// and started again, as an upgrade does, while clients read the API, open
// SSH sessions and create workspaces through the load balancer: no API
// request fails, every workspace ends RUNNING, each created once.
func TestRollingRestart(t *testing.T) {
	d := deploy(t, 3)
	ctx := d.ctx
	lb := d.viaLB()
	ssher, err := lb.CreateEnvironment(ctx, sdk.CreateEnvironmentRequest{Name: "steady", InstanceType: "lightweight"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lb.WaitForStatus(ctx, ssher.ID, sdk.StatusRunning, nil); err != nil {
		t.Fatal(err)
	}

	var (
		reads, failures atomic.Int64
		sshOK, sshFail  atomic.Int64
		mu              sync.Mutex
		failed          []string
		created         []string
	)
	fail := func(what string, err error) {
		failures.Add(1)
		mu.Lock()
		failed = append(failed, what+": "+err.Error())
		mu.Unlock()
	}
	load, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// every runs fn every d until the load stops: a steady load, well
	// inside the per-user and per-address rate limits (a dashboard, a
	// CLI and a few terminals' worth).
	every := func(d time.Duration, fn func(i int)) {
		wg.Go(func() {
			tick := time.NewTicker(d)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-load.Done():
					return
				case <-tick.C:
				}
				fn(i)
			}
		})
	}
	// Readers: 2 × 5 lists a second.
	for range 2 {
		every(200*time.Millisecond, func(int) {
			if _, err := lb.ListEnvironments(load, sdk.EnvironmentFilter{}); err != nil && load.Err() == nil {
				fail("list", err)
			}
			reads.Add(1)
		})
	}
	// SSH sessions, two a second: a session cut by its replica's stop is
	// counted, not failed (an SSH client reconnects).
	every(500*time.Millisecond, func(int) {
		if err := ssh(load, lb, ssher.ID); err != nil {
			sshFail.Add(1)
		} else {
			sshOK.Add(1)
		}
	})
	// Creates, one every 4 s, three in all (within the default quota of
	// five running).
	every(4*time.Second, func(i int) {
		if i >= 3 {
			return
		}
		env, err := lb.CreateEnvironment(load, sdk.CreateEnvironmentRequest{Name: "rolling-" + string(rune('a'+i)), InstanceType: "lightweight"})
		if err != nil {
			if load.Err() == nil {
				fail("create", err)
			}
			return
		}
		mu.Lock()
		created = append(created, env.ID)
		mu.Unlock()
	})

	for i, r := range d.replicas {
		if err := r.proc.Terminate(); err != nil {
			t.Errorf("replica %d exited with %v on SIGTERM", i+1, err)
		}
		d.start(r)
		// Back in HAProxy's rotation (two good checks) before the next
		// one goes, as an orchestrator's readiness gate does.
		d.awaitInRotation(r)
	}
	stopLoad()
	wg.Wait()

	t.Logf("during the restarts: %d API reads, %d SSH sessions (%d cut), %d creates", reads.Load(), sshOK.Load()+sshFail.Load(), sshFail.Load(), len(created))
	if n := failures.Load(); n > 0 {
		t.Errorf("%d API requests failed during the rolling restart; the first: %q", n, failed[:min(len(failed), 5)])
	}
	if sshOK.Load() == 0 {
		t.Error("no SSH session worked during the restarts")
	}
	for _, id := range append(created, ssher.ID) {
		if _, err := lb.WaitForStatus(ctx, id, sdk.StatusRunning, nil); err != nil {
			t.Errorf("workspace %s after the restarts: %v", id, err)
			continue
		}
		// Created once: one pod, made once (never restarted or replaced
		// by a second create).
		pods, err := d.cluster.Client.CoreV1().Pods(d.ns).List(ctx, metav1.ListOptions{LabelSelector: runtime.LabelEnvironment + "=" + id})
		if err != nil || len(pods.Items) != 1 {
			t.Errorf("workspace %s has pods %v (%v), want one", id, podNames(pods), err)
		}
	}
}

func podNames(pods *corev1.PodList) []string {
	if pods == nil {
		return nil
	}
	var out []string
	for _, p := range pods.Items {
		out = append(out, p.Name)
	}
	return out
}
