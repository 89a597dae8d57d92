package compose_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"dev8.dev/dev8/internal/cli"
)

// composeFile is what the test reads of compose.yaml.
type composeFile struct {
	Services map[string]struct {
		Image       string            `json:"image"`
		NetworkMode string            `json:"network_mode"`
		Environment map[string]string `json:"environment"`
		Volumes     []string          `json:"volumes"`
		CapAdd      []string          `json:"cap_add"`
		CapDrop     []string          `json:"cap_drop"`
		StopGrace   string            `json:"stop_grace_period"`
	} `json:"services"`
}

// TestComposeFile checks compose.yaml, which cannot run here (its images
// come from a registry this machine does not reach), against what the
// replicas need: one database, secret key and access URL for all, an
// address and data directory of each one's own (mounted at the same path
// inside and out, for the workspaces' agent sockets), only settings dev8
// server has, and a drain delay longer than two of HAProxy's health checks
// within the stop grace period.
func TestComposeFile(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{"DATABASE_URL": true, "DEV8_SECRET_KEY": true, "HOME": true}
	for _, o := range cli.ServerOptions() {
		known[o.Env] = true
	}
	interval := haproxyInterval(t)

	var replicas []string
	for name := range f.Services {
		if strings.HasPrefix(name, "dev8-") {
			replicas = append(replicas, name)
		}
	}
	slices.Sort(replicas)
	if len(replicas) < 2 {
		t.Fatalf("replicas %v, want at least two", replicas)
	}
	shared := []string{"DATABASE_URL", "DEV8_SECRET_KEY", "DEV8_ACCESS_URL", "DEV8_RUNTIME", "DEV8_DRAIN_DELAY"}
	own := map[string]map[string]string{"DEV8_ADDR": {}, "DEV8_DATA_DIR": {}}
	first := f.Services[replicas[0]].Environment
	for _, name := range replicas {
		s := f.Services[name]
		for k := range s.Environment {
			if !known[k] {
				t.Errorf("%s sets %s, which dev8 server does not read", name, k)
			}
		}
		for _, k := range shared {
			if s.Environment[k] == "" || s.Environment[k] != first[k] {
				t.Errorf("%s: %s = %q, want the same as %s's (%q)", name, k, s.Environment[k], replicas[0], first[k])
			}
		}
		for k, seen := range own {
			v := s.Environment[k]
			if v == "" || seen[v] != "" {
				t.Errorf("%s: %s = %q, want one of its own (also %s's)", name, k, v, seen[v])
			}
			seen[v] = name
		}
		dir := s.Environment["DEV8_DATA_DIR"]
		if !slices.Contains(s.Volumes, dir+":"+dir) {
			t.Errorf("%s: its data directory %s is not mounted at the same path inside and out: %v", name, dir, s.Volumes)
		}
		drain, err := time.ParseDuration(s.Environment["DEV8_DRAIN_DELAY"])
		if err != nil || drain <= 2*interval {
			t.Errorf("%s: DEV8_DRAIN_DELAY %q, want more than two of HAProxy's checks (%s)", name, s.Environment["DEV8_DRAIN_DELAY"], 2*interval)
		}
		grace, err := time.ParseDuration(s.StopGrace)
		if err != nil || grace < drain+30*time.Second {
			t.Errorf("%s: stop_grace_period %q, want at least the drain delay and 30 s for requests in flight", name, s.StopGrace)
		}
		if !slices.Equal(s.CapDrop, []string{"ALL"}) || !slices.Equal(s.CapAdd, []string{"NET_ADMIN"}) {
			t.Errorf("%s: capabilities drop %v add %v, want all dropped but NET_ADMIN (the workspaces' firewall)", name, s.CapDrop, s.CapAdd)
		}
	}
	if !strings.HasPrefix(first["DEV8_ACCESS_URL"], "https://") {
		t.Errorf("DEV8_ACCESS_URL %q: people reach the replicas through HAProxy's TLS", first["DEV8_ACCESS_URL"])
	}
}

// haproxyInterval is the health-check interval haproxy.cfg gives servers.
func haproxyInterval(t *testing.T) time.Duration {
	t.Helper()
	cfg, err := os.ReadFile("haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*default-server .*\binter (\S+)`).FindSubmatch(cfg)
	if m == nil {
		t.Fatal("haproxy.cfg sets no default-server inter")
	}
	d, err := time.ParseDuration(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s*option httpchk GET /ready$`).Match(cfg) {
		t.Error("haproxy.cfg does not check /ready")
	}
	return d
}
