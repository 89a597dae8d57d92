package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/supervisorbin"
	"dev8.dev/dev8/sdk"
)

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
		r, err := createResumeOnce(ctx, c, timeout, label, req(i))
		if err != nil {
			return nil, nil, "", err
		}
		create = append(create, r.created.Sub(r.create).Seconds())
		resume = append(resume, r.resumed.Sub(r.resume).Seconds())
		fmt.Printf("   create → ssh-ready run %d: %s\n", i+1, r.created.Sub(r.create).Round(time.Millisecond))
		fmt.Printf("   resume → ssh-ready run %d: %s\n", i+1, r.resumed.Sub(r.resume).Round(time.Millisecond))
		if i == 0 && keepFirst {
			keep = r.id
			continue
		}
		deleteEnvironment(ctx, c, r.id, 30*time.Second)
	}
	return create, resume, keep, nil
}

// lifecycleRun is when one createResumeOnce began and ended each part.
type lifecycleRun struct {
	id string
	// create: POST /environments sent; created: the first SSH exec
	// through the tunnel succeeded. resume, resumed: the same for
	// POST /start after the environment was STOPPED.
	create, created, resume, resumed time.Time
}

// createResumeOnce creates an environment, waits until an SSH exec runs in
// it, stops it, waits for STOPPED, starts it and waits for SSH again,
// within timeout. The environment is left running.
func createResumeOnce(ctx context.Context, c *sdk.Client, timeout time.Duration, label string, req sdk.CreateEnvironmentRequest) (lifecycleRun, error) {
	var r lifecycleRun
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r.create = time.Now()
	env, err := c.CreateEnvironment(rctx, req)
	if err == nil {
		r.id = env.ID
		err = sshReady(rctx, c, env.ID)
	}
	r.created = time.Now()
	if err != nil {
		return r, fmt.Errorf("%screate → ssh-ready: %w", label, err)
	}
	if _, err := c.Stop(rctx, env.ID); err != nil {
		return r, err
	}
	if _, err := c.WaitForStatus(rctx, env.ID, sdk.StatusStopped, nil); err != nil {
		return r, err
	}
	r.resume = time.Now()
	_, err = c.Start(rctx, env.ID)
	if err == nil {
		err = sshReady(rctx, c, env.ID)
	}
	r.resumed = time.Now()
	if err != nil {
		return r, fmt.Errorf("%sresume → ssh-ready: %w", label, err)
	}
	return r, nil
}

// deleteEnvironment deletes an environment and waits, at most timeout, for
// it to be gone; failures are only printed (the runtime's cleanup at the
// end removes what is left).
func deleteEnvironment(ctx context.Context, c *sdk.Client, id string, timeout time.Duration) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := c.Delete(dctx, id)
	if err == nil {
		err = c.WaitForDeleted(dctx, id, nil)
	}
	if err != nil {
		fmt.Printf("   delete %s: %v\n", id, err)
	}
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
