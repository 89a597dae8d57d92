package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// procStat is what we use of /proc/<pid>/stat.
type procStat struct {
	pid, ppid, pgrp, session int
	state                    byte
	// startTime is field 22: clock ticks after boot. With the pid and the
	// boot id it names one process for good, where a pid alone may be reused.
	startTime uint64
}

func (s procStat) dead() bool { return s.state == 'Z' || s.state == 'X' || s.state == 'x' }

func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(pid, data)
}

func parseStat(pid int, data []byte) (procStat, error) {
	// The command name (field 2) is in parentheses and may itself contain
	// spaces and parentheses, so split after its last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f)+2)
	}
	s := procStat{pid: pid, state: f[0][0]}
	var errs [4]error
	s.ppid, errs[0] = strconv.Atoi(f[1])
	s.pgrp, errs[1] = strconv.Atoi(f[2])
	s.session, errs[2] = strconv.Atoi(f[3])
	s.startTime, errs[3] = strconv.ParseUint(f[19], 10, 64)
	if err := errors.Join(errs[:]...); err != nil {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return s, nil
}

// snapshot reads every process's stat. Processes that vanish mid-scan are
// skipped.
func snapshot() (map[int]procStat, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	procs := make(map[int]procStat, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, err := readStat(pid); err == nil {
			procs[pid] = s
		}
	}
	return procs, nil
}

// identity names one incarnation of a process.
type identity struct {
	pid       int
	startTime uint64
	bootID    string
}

var currentBootID = readBootID()

func readBootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}

// alive reports whether the process id names is still running: same pid,
// same start time, same boot, not a zombie.
func (id identity) alive() bool {
	if id.pid <= 0 || id.bootID != currentBootID {
		return false
	}
	if err := unix.Kill(id.pid, 0); errors.Is(err, unix.ESRCH) {
		return false
	}
	s, err := readStat(id.pid)
	return err == nil && !s.dead() && s.startTime == id.startTime
}

// waitNoReap blocks until the child pid has exited but leaves it unreaped,
// so its pid, and with it its session and group ids, cannot be reused while
// we clean up after it.
func waitNoReap(pid int) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// tree tracks the processes of one workspace: the session the supervisor
// leads (it is started with Setsid) and every descendant of the supervisor or
// of a member, which catches processes that moved to sessions of their own
// (code-server's terminals do) as long as their parent is still around.
// Processes that escaped and were orphaned before we looked are out of reach;
// only a cgroup would hold them.
type tree struct {
	leader  identity
	members map[int]uint64 // pid → start time
}

func newTree(leader identity) *tree {
	return &tree{leader: leader, members: map[int]uint64{}}
}

// refresh adds new members and forgets the ones that are gone.
func (t *tree) refresh() error {
	if t.leader.bootID != currentBootID {
		return nil // pids of another boot name nothing of ours
	}
	snap, err := snapshot()
	if err != nil {
		return fmt.Errorf("scan processes: %w", err)
	}
	for pid, start := range t.members {
		if s, ok := snap[pid]; !ok || s.dead() || s.startTime != start {
			delete(t.members, pid)
		}
	}
	leader, exists := snap[t.leader.pid]
	ours := exists && leader.startTime == t.leader.startTime
	// If the leader's pid is in use by another process, our session is
	// empty: the kernel does not reuse a pid while a session or group still
	// carries it. If the pid is free, anything still in that session is
	// ours.
	if exists && !ours {
		return nil
	}
	roots := map[int]bool{}
	if ours {
		roots[t.leader.pid] = true
	}
	for pid := range t.members {
		roots[pid] = true
	}
	for pid, s := range snap {
		if !s.dead() && s.session == t.leader.pid {
			roots[pid] = true
		}
	}
	for pid, s := range snap {
		if !s.dead() && (roots[pid] || descends(snap, s, roots)) {
			t.members[pid] = s.startTime
		}
	}
	return nil
}

func descends(snap map[int]procStat, s procStat, ancestors map[int]bool) bool {
	for range 1024 { // bounded: a ppid loop would be a kernel bug, not a hang
		if ancestors[s.ppid] {
			return true
		}
		if s.ppid <= 1 {
			return false
		}
		var ok bool
		if s, ok = snap[s.ppid]; !ok {
			return false
		}
	}
	return false
}

func (t *tree) signal(sig unix.Signal) {
	for pid, start := range t.members {
		// Re-check just before signalling to narrow the window in which a
		// pid could have been reused since the scan.
		if s, err := readStat(pid); err == nil && s.startTime == start {
			_ = unix.Kill(pid, sig)
		}
	}
}

func (t *tree) pids() []int {
	pids := make([]int, 0, len(t.members))
	for pid := range t.members {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids
}

// terminate ends the workspace whose supervisor is leader, within grace:
// SIGTERM to the supervisor's process group, so it shuts its own children
// down in order; once it has exited, SIGTERM to whatever of the tree is left
// (processes that left its group or session); when grace is over (or ctx
// ends), SIGKILL to all of it. It returns once every process of the tree is
// gone and, for our own child, reaped (reaped closes then; nil for processes
// we did not start).
func terminate(ctx context.Context, leader identity, grace time.Duration, reaped <-chan struct{}) error {
	t := newTree(leader)
	if err := t.refresh(); err != nil {
		return err
	}
	gone := func() bool {
		if len(t.members) > 0 {
			return false
		}
		if reaped == nil {
			return true
		}
		select {
		case <-reaped:
			return true
		default:
			return false
		}
	}
	if gone() {
		return nil
	}
	deadline := time.Now().Add(grace)
	if leader.alive() {
		// The group id is the leader's pid (Setsid makes it a group leader).
		_ = unix.Kill(-leader.pid, unix.SIGTERM)
		leaderGone := func() bool { return gone() || !leader.alive() }
		if _, err := poll(ctx, deadline, t, leaderGone); err != nil {
			return err
		}
	}
	if !gone() && ctx.Err() == nil && time.Now().Before(deadline) {
		t.signal(unix.SIGTERM)
		if done, err := poll(ctx, deadline, t, gone); done || err != nil {
			return err
		}
	}
	if gone() {
		return nil
	}

	// SIGKILL cannot be ignored; only processes stuck in the kernel (D
	// state) survive it for a while. Bounded independently of ctx so an
	// expired ctx still gets the tree killed rather than abandoned.
	t.signal(unix.SIGKILL)
	kill := func() bool { t.signal(unix.SIGKILL); return gone() }
	if done, err := poll(context.WithoutCancel(ctx), time.Now().Add(5*time.Second), t, kill); done || err != nil {
		return err
	}
	return fmt.Errorf("processes %v survived SIGKILL", t.pids())
}

// poll refreshes t until check passes (true), deadline passes or ctx ends
// (false).
func poll(ctx context.Context, deadline time.Time, t *tree, check func() bool) (bool, error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	timeout := time.NewTimer(time.Until(deadline))
	defer timeout.Stop()
	for {
		if err := t.refresh(); err != nil {
			return false, err
		}
		if check() {
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, nil
		case <-timeout.C:
			return false, nil
		case <-tick.C:
		}
	}
}

// killLeftovers SIGKILLs what remains of a workspace whose supervisor has
// exited (helpers it left behind). It does not wait.
func killLeftovers(leader identity) {
	t := newTree(leader)
	if t.refresh() == nil {
		t.signal(unix.SIGKILL)
	}
}

// describeExit renders how a child ended, for Instance.ExitReason.
func describeExit(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "workspace process exited: exit status 0"
	case errors.As(err, &ee):
		return "workspace process exited: " + ee.Error()
	default:
		return "workspace process exited: " + err.Error()
	}
}

// sweepStrays kills every process of environment id that no state file
// records. A server killed between starting a supervisor and recording its
// pid leaves one behind, and nothing else would ever stop it. Workspace
// processes are recognised by what they all inherit from the supervisor:
// the environment id and the workspace dir under this runtime. It returns
// once they are gone (zombies count as gone) or ctx ends.
func sweepStrays(ctx context.Context, id, workspace string) error {
	marks := [][]byte{
		[]byte("DEV8_ENVIRONMENT_ID=" + id + "\x00"),
		[]byte("DEV8_WORKSPACE_DIR=" + workspace + "\x00"),
	}
	find := func() []identity {
		snap, err := snapshot()
		if err != nil {
			return nil
		}
		var found []identity
		for pid, s := range snap {
			if s.dead() || pid == os.Getpid() {
				continue
			}
			environ, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
			if err != nil {
				continue
			}
			environ = append(environ, 0)
			if bytes.Contains(environ, marks[0]) && bytes.Contains(environ, marks[1]) {
				found = append(found, identity{pid: pid, startTime: s.startTime, bootID: currentBootID})
			}
		}
		return found
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		found := find()
		if len(found) == 0 {
			return nil
		}
		for _, p := range found {
			if p.alive() {
				_ = unix.Kill(p.pid, unix.SIGKILL)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stray processes of %s still running: %w", id, ctx.Err())
		case <-tick.C:
		}
	}
}
