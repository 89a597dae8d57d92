// Package monitor samples the workspace's resources (CPU, memory, disk,
// network) in the usage API's units.
package monitor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/net"

	"dev8.dev/dev8/internal/agentapi"
)

// Monitor scopes: what the CPU and memory figures of a Sample cover.
//
// The disk and network figures do not depend on the scope: disk is the space
// the files under the workspace directory take (du-like, see du.go; not the
// used space of the file system holding it, which is the host's for the
// local runtime and for a docker volume), and network is the sum over every interface except loopback in the
// supervisor's network namespace (a container's own interfaces; the whole
// machine's for the local runtime, where it is machine-wide by necessity:
// Linux keeps no per-process byte counters).
const (
	// ScopeAuto picks ScopeCgroup when the supervisor is its
	// container's init (pid 1) and cgroup v2 accounting is readable, and
	// ScopeProcess otherwise.
	ScopeAuto = "auto"
	// ScopeProcess measures the supervisor's process tree: itself,
	// every descendant, and the other members of its session when it leads
	// one (the local runtime starts it with setsid, so a build that
	// daemonises without a new session still counts). As pid 1 it measures
	// every process it can see, which is then its whole PID namespace. Cheap:
	// one read of /proc/<pid>/stat per process per sample. Memory is the sum
	// of resident set sizes, which counts pages shared between processes
	// (libraries, node's shared heaps) once per process, so it errs high.
	ScopeProcess = "process"
	// ScopeCgroup measures the supervisor's cgroup v2 (in a
	// container, the whole container): CPU from cpu.stat, memory as
	// memory.current minus inactive file cache (what `docker stats` shows).
	// Three small file reads per sample.
	ScopeCgroup = "cgroup"
)

// mib is what the usage API calls a megabyte.
const mib = 1 << 20

// userHZ is the unit of the CPU times in /proc/<pid>/stat. The kernel
// exposes them in USER_HZ, which is 100 on every architecture Go runs Linux
// on (sysconf(_SC_CLK_TCK) says the same).
const userHZ = 100

// Config configures New.
type Config struct {
	// WorkspaceDir is the directory whose files' disk use is reported.
	WorkspaceDir string
	// Scope is one of the MonitorScope constants; empty means auto.
	Scope string

	// Test hooks: the roots of /proc and /sys/fs/cgroup, and the pid taken
	// as the supervisor's.
	procRoot   string
	cgroupRoot string
	pid        int
}

// Monitor takes Samples. Each Sample reports rates and deltas since the
// previous one (the first since New). It does nothing between calls:
// no goroutine, no open files.
type Monitor struct {
	dir       string
	scope     string
	procRoot  string
	cgroupDir string // ScopeCgroup only
	pid       int
	pageSize  int64

	mu     sync.Mutex
	prevAt time.Time
	procs  map[int]procStat // ScopeProcess: last tree
	cgCPU  uint64           // ScopeCgroup: cpu.stat usage_usec
	nics   map[string]nicCounters
	disk   *diskUsage
}

type nicCounters struct{ rx, tx uint64 }

// procStat is what the monitor reads from /proc/<pid>/stat.
type procStat struct {
	ppid    int
	session int
	start   uint64 // start time in ticks since boot: tells a reused pid apart
	own     uint64 // utime + stime, ticks
	kids    uint64 // cutime + cstime: waited-for children, ticks
	rss     int64  // pages
}

// New resolves the scope and takes the baseline the first Sample is
// measured against. It fails when the scope is unknown, or is cgroup and no
// cgroup v2 accounting is readable.
func New(cfg Config) (*Monitor, error) {
	m := &Monitor{
		dir:      cfg.WorkspaceDir,
		procRoot: cfg.procRoot,
		pid:      cfg.pid,
		pageSize: int64(os.Getpagesize()),
	}
	if m.dir == "" {
		m.dir = "."
	}
	m.disk = newDiskUsage(m.dir)
	if m.procRoot == "" {
		m.procRoot = "/proc"
	}
	if m.pid == 0 {
		m.pid = os.Getpid()
	}
	cgroupRoot := cfg.cgroupRoot
	if cgroupRoot == "" {
		cgroupRoot = "/sys/fs/cgroup"
	}
	scope := cfg.Scope
	switch scope {
	case "", ScopeAuto:
		scope = ScopeProcess
		if m.pid == 1 {
			if dir, err := m.findCgroup(cgroupRoot); err == nil {
				scope, m.cgroupDir = ScopeCgroup, dir
			}
		}
	case ScopeCgroup:
		dir, err := m.findCgroup(cgroupRoot)
		if err != nil {
			return nil, fmt.Errorf("supervisor: monitor: %w", err)
		}
		m.cgroupDir = dir
	case ScopeProcess:
	default:
		return nil, fmt.Errorf("supervisor: monitor: unknown scope %q (want %s, %s or %s)", cfg.Scope, ScopeAuto, ScopeProcess, ScopeCgroup)
	}
	m.scope = scope
	// The baseline: errors here show up again, with context, in Sample.
	m.nics, _ = readNICs(context.Background())
	switch scope {
	case ScopeProcess:
		m.procs, _, _ = m.readTree()
	case ScopeCgroup:
		m.cgCPU, _ = m.readCgroupCPU()
	}
	m.prevAt = time.Now()
	return m, nil
}

// Scope reports the scope in use (never auto).
func (m *Monitor) Scope() string { return m.scope }

// findCgroup returns the directory of the supervisor's cgroup v2 if its CPU
// and memory accounting can be read.
func (m *Monitor) findCgroup(root string) (string, error) {
	data, err := os.ReadFile(filepath.Join(m.procRoot, strconv.Itoa(m.pid), "cgroup"))
	if err != nil {
		return "", fmt.Errorf("cgroup: %w", err)
	}
	var rel string
	found := false
	for line := range strings.SplitSeq(string(data), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			rel, found = p, true
			break
		}
	}
	if !found {
		return "", errors.New("cgroup: not in a cgroup v2 hierarchy")
	}
	dir := filepath.Join(root, filepath.FromSlash(rel))
	for _, f := range []string{"cpu.stat", "memory.current", "memory.stat"} {
		if _, err := os.ReadFile(filepath.Join(dir, f)); err != nil {
			return "", fmt.Errorf("cgroup v2 accounting is not readable: %w", err)
		}
	}
	return dir, nil
}

// Sample measures now. Each figure is taken independently: one that cannot
// be read is left zero and its error is returned, joined with the others,
// next to a sample that is still worth keeping.
func (m *Monitor) Sample(ctx context.Context) (agentapi.UsageSample, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var (
		s    agentapi.UsageSample
		errs []error
		now  time.Time
	)
	// The CPU counters are read first and the clock right after, as in
	// New, so CPU time and wall time cover the same window.
	switch m.scope {
	case ScopeProcess:
		procs, alive, err := m.readTree()
		now = time.Now()
		if err != nil {
			errs = append(errs, fmt.Errorf("processes: %w", err))
			break
		}
		ticks := cpuTicksSince(m.procs, procs, alive)
		m.procs = procs
		s.CPUUsagePercent = percent(float64(ticks)/userHZ, now.Sub(m.prevAt))
		var pages int64
		for _, p := range procs {
			pages += p.rss
		}
		s.MemoryUsageMB = pages * m.pageSize / mib
	case ScopeCgroup:
		usec, err := m.readCgroupCPU()
		now = time.Now()
		if err != nil {
			errs = append(errs, fmt.Errorf("cgroup cpu: %w", err))
		} else {
			if usec >= m.cgCPU && m.cgCPU != 0 {
				s.CPUUsagePercent = percent(float64(usec-m.cgCPU)/1e6, now.Sub(m.prevAt))
			}
			m.cgCPU = usec
		}
		mem, err := m.readCgroupMemory()
		if err != nil {
			errs = append(errs, fmt.Errorf("cgroup memory: %w", err))
		}
		s.MemoryUsageMB = int64(mem / mib)
	}

	if used, _, err := m.disk.usage(ctx, now); err != nil {
		errs = append(errs, fmt.Errorf("disk: %w", err))
	} else {
		s.DiskUsageMB = used / mib
	}

	m.prevAt = now
	s.Timestamp = now.UTC().Round(time.Millisecond)

	nics, err := readNICs(ctx)
	if err != nil {
		errs = append(errs, fmt.Errorf("network: %w", err))
	} else {
		var rx, tx uint64
		for name, c := range nics {
			prev, ok := m.nics[name]
			if !ok {
				// An interface that appeared since the last sample: its
				// counters started at zero when it did.
				prev = nicCounters{}
			}
			rx += counterDelta(prev.rx, c.rx)
			tx += counterDelta(prev.tx, c.tx)
		}
		if m.nics != nil {
			s.NetworkInMB = float64(rx) / mib
			s.NetworkOutMB = float64(tx) / mib
		}
		m.nics = nics
	}
	return s, errors.Join(errs...)
}

// percent turns busy seconds over elapsed wall time into percent of a core.
func percent(busy float64, elapsed time.Duration) float64 {
	if elapsed <= 0 || busy <= 0 {
		return 0
	}
	return busy / elapsed.Seconds() * 100
}

// counterDelta is cur-prev for a monotonic counter; a counter that went back
// was reset (interface recreated), so everything it shows is new.
func counterDelta(prev, cur uint64) uint64 {
	if cur >= prev {
		return cur - prev
	}
	return cur
}

func readNICs(ctx context.Context) (map[string]nicCounters, error) {
	stats, err := net.IOCountersWithContext(ctx, true)
	if err != nil {
		return nil, err
	}
	out := make(map[string]nicCounters, len(stats))
	for _, st := range stats {
		// Loopback traffic is neither in nor out: it never leaves the
		// namespace (the supervisor's own polls of code-server, for one).
		if st.Name == "lo" {
			continue
		}
		out[st.Name] = nicCounters{rx: st.BytesRecv, tx: st.BytesSent}
	}
	return out, nil
}

// cpuTicksSince is the CPU time the tree used between two snapshots. A
// process's own time plus the time of the children it reaped is conserved
// when a child exits and its parent reaps it (the child's time moves into
// the parent's cutime), so summing both over the tree and subtracting the
// previous sum counts every tick once — including those of processes that
// lived and died between samples, as long as a tree member reaped them. A
// process that left the tree alive, or was reaped outside it (re-parented
// away), is taken out of the previous sum: only its time since then is lost.
// alive maps every pid that exists now, in the tree or not, to its start
// time.
func cpuTicksSince(prev, cur map[int]procStat, alive map[int]uint64) uint64 {
	if prev == nil {
		return 0
	}
	var now, before uint64
	for _, p := range cur {
		now += p.own + p.kids
	}
	var reapedInTree func(pid int, depth int) bool
	reapedInTree = func(pid int, depth int) bool {
		p := prev[pid]
		parent, ok := prev[p.ppid]
		if !ok || depth > 64 {
			return false
		}
		if c, alive := cur[p.ppid]; alive && c.start == parent.start {
			return true
		}
		// The parent went too; if it was reaped in the tree, so was the
		// time it had collected from this one.
		return reapedInTree(p.ppid, depth+1)
	}
	for pid, p := range prev {
		if c, ok := cur[pid]; ok && c.start == p.start {
			before += p.own + p.kids
			continue
		}
		if start, ok := alive[pid]; ok && start == p.start {
			continue // left the tree alive: its time is no longer ours
		}
		if reapedInTree(pid, 0) {
			before += p.own + p.kids
		}
	}
	if now < before {
		return 0
	}
	return now - before
}

// readTree snapshots the supervisor's process tree (see ScopeProcess)
// and returns the start time of every process it saw, in the tree or not.
func (m *Monitor) readTree() (tree map[int]procStat, alive map[int]uint64, err error) {
	entries, err := os.ReadDir(m.procRoot)
	if err != nil {
		return nil, nil, err
	}
	all := make(map[int]procStat, len(entries))
	alive = make(map[int]uint64, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		st, err := readProcStat(filepath.Join(m.procRoot, e.Name(), "stat"))
		if err != nil {
			continue // exited while we looked
		}
		all[pid] = st
		alive[pid] = st.start
	}
	self, ok := all[m.pid]
	if !ok {
		return nil, nil, fmt.Errorf("own process %d is not in %s", m.pid, m.procRoot)
	}
	if m.pid == 1 {
		// Init sees exactly its PID namespace, which is the workspace.
		return all, alive, nil
	}
	tree = make(map[int]procStat, 16)
	leadsSession := self.session == m.pid
	member := make(map[int]bool, len(all))
	var inTree func(pid, depth int) bool
	inTree = func(pid, depth int) bool {
		if pid == m.pid {
			return true
		}
		if v, ok := member[pid]; ok {
			return v
		}
		st, ok := all[pid]
		v := ok && depth < 256 && ((leadsSession && st.session == m.pid) || (st.ppid > 1 && inTree(st.ppid, depth+1)))
		member[pid] = v
		return v
	}
	for pid, st := range all {
		if inTree(pid, 0) {
			tree[pid] = st
		}
	}
	return tree, alive, nil
}

// readProcStat parses /proc/<pid>/stat. The command name, in parentheses,
// may itself hold spaces and parentheses, so fields are counted from the
// last ')'.
func readProcStat(path string) (procStat, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("%s: malformed", path)
	}
	// f[0] is field 3 (state) of proc(5).
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 22 {
		return procStat{}, fmt.Errorf("%s: %d fields", path, len(f)+2)
	}
	num := func(field int) uint64 {
		v, _ := strconv.ParseUint(f[field-3], 10, 64)
		return v
	}
	ppid, _ := strconv.Atoi(f[4-3])
	session, _ := strconv.Atoi(f[6-3])
	rss, _ := strconv.ParseInt(f[24-3], 10, 64)
	return procStat{
		ppid:    ppid,
		session: session,
		own:     num(14) + num(15),
		kids:    num(16) + num(17),
		start:   num(22),
		rss:     max(rss, 0),
	}, nil
}

func (m *Monitor) readCgroupCPU() (uint64, error) {
	v, err := statField(filepath.Join(m.cgroupDir, "cpu.stat"), "usage_usec")
	if err != nil {
		return 0, err
	}
	return v, nil
}

func (m *Monitor) readCgroupMemory() (uint64, error) {
	data, err := os.ReadFile(filepath.Join(m.cgroupDir, "memory.current"))
	if err != nil {
		return 0, err
	}
	cur, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("memory.current: %w", err)
	}
	// Inactive page cache is reclaimable at once; counting it would show
	// a workspace that once read a big file as using that memory forever.
	inactive, err := statField(filepath.Join(m.cgroupDir, "memory.stat"), "inactive_file")
	if err != nil {
		return cur, nil
	}
	if inactive > cur {
		return 0, nil
	}
	return cur - inactive, nil
}

// statField reads one "key value" line of a cgroup stat file.
func statField(path, key string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no %s", filepath.Base(path), key)
}
