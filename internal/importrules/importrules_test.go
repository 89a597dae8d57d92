package importrules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "dev8.dev/dev8"

// A rule says that no package matching From may depend, directly or
// through others, on a package matching any of Never. Patterns are import
// paths; a trailing "/..." matches the path and everything below it.
type rule struct {
	From  string
	Never []string
	Why   string
}

// rules are the house's import rules (README "Layout").
var rules = []rule{
	{From: module + "/internal/runtime/...", Never: []string{module + "/internal/supervisor/..."},
		Why: "runtimes start the supervisor; they speak to it through internal/agentapi, never by linking it"},
	{From: module + "/internal/lifecycle/...", Never: []string{"net/http", module + "/internal/api/..."},
		Why: "the lifecycle is driven by the API, never the other way; it knows no HTTP"},
	// The dashboard itself; its doc generators (web/gencli, genconfig)
	// read the CLI's command tree, which reaches the whole server.
	{From: module + "/internal/web", Never: []string{module + "/internal/api/...", module + "/internal/gateway/..."},
		Why: "the dashboard calls the JSON API from the browser; it shares middleware (httpmw), not handlers"},
	{From: module + "/sdk/...", Never: []string{module + "/internal/..."},
		Why: "the SDK is public: it owns the wire types and cannot depend on internals"},
	{From: module + "/internal/store/...", Never: []string{module + "/internal/..."},
		Why: "persistence is the bottom layer; nothing of Dev8's sits below it"},
	{From: module + "/internal/httpapi/...", Never: []string{module + "/internal/api/...", module + "/internal/httpmw/...", module + "/internal/gateway/..."},
		Why: "the error writer is shared by api, gateway and middleware"},
	{From: module + "/internal/httpmw/...", Never: []string{module + "/internal/api/...", module + "/internal/gateway/..."},
		Why: "middleware serves the API, the gateway and the dashboard alike"},
	{From: module + "/internal/gateway/...", Never: []string{module + "/internal/api/..."},
		Why: "the gateway (the part replicas route between) stands beside the API, not on it"},
	{From: module + "/internal/tunnel/...", Never: []string{module + "/internal/store/...", "database/sql"},
		Why: "the tunnel knows other replicas only through its Holders interface (internal/replicas keeps them in the store)"},
	{From: module + "/internal/appurl/...", Never: []string{module + "/internal/...", "net/http"},
		Why: "workspace apps' names are plain rules that the server, its middleware and tests share"},
	{From: module + "/internal/appauth/...", Never: []string{module + "/internal/store/...", module + "/internal/httpmw/...", module + "/internal/api/...", module + "/internal/gateway/...", "net/http"},
		Why: "apps' tickets and session cookies are minted and checked by the API and the middleware, which own HTTP and the store"},
	{From: module + "/internal/agentapi/...", Never: []string{module + "/internal/...", "net/http"},
		Why: "the supervisor<->server contract is plain types and names, linked by both sides"},
	{From: module + "/internal/backup/...", Never: []string{module + "/internal/api/...", module + "/internal/httpapi/...", module + "/internal/gateway/..."},
		Why: "backups are a service the API calls, not HTTP handlers"},
	{From: module + "/internal/quota/...", Never: []string{"net/http", module + "/internal/api/..."},
		Why: "quota policy is asked by the lifecycle and the API; it knows no HTTP"},
	{From: module + "/internal/audit/...", Never: []string{"net/http", module + "/internal/lifecycle/...", module + "/internal/api/..."},
		Why: "the audit recorder sits just above the store, so every layer can use it"},
	{From: module + "/cmd/dev8-supervisor/...", Never: []string{module + "/internal/store/...", module + "/internal/api/...", module + "/internal/lifecycle/...", "github.com/minio/minio-go/v7", "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob", "github.com/docker/docker/client"},
		Why: "the supervisor runs in every workspace: small, and without the server's parts or credentials' SDKs"},
}

type pkg struct {
	ImportPath string
	Imports    []string
}

// TestImportRules loads the real import graph (go list) and checks every
// rule against it.
func TestImportRules(t *testing.T) {
	t.Parallel()
	graph := loadGraph(t)
	for _, r := range rules {
		if !slices.ContainsFunc(keys(graph), func(p string) bool { return match(r.From, p) }) {
			t.Errorf("rule for %s matches no package: the package moved, update the rule", r.From)
		}
	}
	for _, v := range check(graph, rules) {
		t.Error(v)
	}
}

// TestCheckFindsViolations makes sure the checker itself can fail: a
// graph that breaks a rule through an intermediate package is reported
// with the whole chain.
func TestCheckFindsViolations(t *testing.T) {
	t.Parallel()
	graph := map[string][]string{
		module + "/internal/lifecycle": {module + "/internal/store", module + "/internal/helper"},
		module + "/internal/helper":    {"net/http"},
		module + "/internal/store":     {"database/sql"},
		"net/http":                     nil,
		"database/sql":                 nil,
	}
	got := check(graph, []rule{{From: module + "/internal/lifecycle/...", Never: []string{"net/http"}, Why: "test"}})
	if len(got) != 1 {
		t.Fatalf("violations = %q, want one", got)
	}
	for _, want := range []string{"internal/lifecycle", "internal/helper", "net/http"} {
		if !strings.Contains(got[0], want) {
			t.Errorf("violation %q does not name %s", got[0], want)
		}
	}
	if got := check(graph, []rule{{From: module + "/internal/store/...", Never: []string{"net/http"}}}); len(got) != 0 {
		t.Errorf("store does not reach net/http, got %q", got)
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"a/b/...", "a/b", true},
		{"a/b/...", "a/b/c", true},
		{"a/b/...", "a/bc", false},
		{"a/b", "a/b", true},
		{"a/b", "a/b/c", false},
	} {
		if got := match(tc.pattern, tc.path); got != tc.want {
			t.Errorf("match(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}

// check returns one message per (package, forbidden dependency), naming the
// shortest chain of imports that leads there.
func check(graph map[string][]string, rules []rule) []string {
	var out []string
	for _, r := range rules {
		for _, from := range keys(graph) {
			if !match(r.From, from) {
				continue
			}
			for _, chain := range forbiddenChains(graph, from, r) {
				out = append(out, fmt.Sprintf("%s must not depend on %s (%s): %s", from, chain[len(chain)-1], r.Why, strings.Join(chain, " → ")))
			}
		}
	}
	return out
}

// forbiddenChains walks from breadth first, so each chain found is a
// shortest one, and reports each forbidden package once.
func forbiddenChains(graph map[string][]string, from string, r rule) [][]string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	var chains [][]string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, dep := range graph[p] {
			if _, seen := prev[dep]; seen {
				continue
			}
			prev[dep] = p
			if slices.ContainsFunc(r.Never, func(n string) bool { return match(n, dep) }) {
				chain := []string{dep}
				for q := p; q != ""; q = prev[q] {
					chain = append([]string{q}, chain...)
				}
				chains = append(chains, chain)
				continue
			}
			queue = append(queue, dep)
		}
	}
	return chains
}

func match(pattern, path string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == base || strings.HasPrefix(path, base+"/")
	}
	return path == pattern
}

// loadGraph is every package the module's packages depend on, with its
// direct imports (not its tests': test files may import freely).
func loadGraph(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	graph := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		graph[p.ImportPath] = p.Imports
	}
	return graph
}

func keys(m map[string][]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
