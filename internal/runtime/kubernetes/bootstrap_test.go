package kubernetes

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/supervisorbin"
)

// The scripts of SupervisorFromServer run here with this machine's shells
// and tools against a real HTTP server serving a stand-in supervisor (a
// script that says it ran) as the server does (supervisorbin.Served):
// with busybox's applets, with curl, with GNU wget, with no sha256sum,
// and failing as they must. The cluster tests run them in pods.

const testToken = "dev8a_bootstrap-test"

// bootstrapServer serves a stand-in supervisor for environment env at
// SupervisorURLPath to the bearer of testToken; tamper, if set, edits the
// response's headers.
func bootstrapServer(t *testing.T, env string, tamper func(http.Header)) *httptest.Server {
	t.Helper()
	path := filepath.Join(t.TempDir(), "supervisor")
	if err := os.WriteFile(path, []byte("#!/bin/sh\necho \"supervisor ran: $*\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	served, err := supervisorbin.NewServed(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != fmt.Sprintf(SupervisorURLPath, env) || r.Header.Get("Authorization") != "Bearer "+testToken {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		if tamper != nil {
			w = tampered{w, tamper}
		}
		if err := served.Serve(w, r); err != nil {
			t.Error(err)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

type tampered struct {
	http.ResponseWriter
	edit func(http.Header)
}

func (t tampered) WriteHeader(code int) {
	t.edit(t.Header())
	t.ResponseWriter.WriteHeader(code)
}

// toolsDir is a directory of links to the named tools of this machine,
// to be a script's whole PATH.
func toolsDir(t *testing.T, tools ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, tool := range tools {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s is needed: %v", tool, err)
		}
		if err := os.Symlink(p, filepath.Join(dir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runBootstrap runs Bootstrap with shell (argv prefix) and PATH, the
// supervisor going to a directory of its own; it returns the output and
// the exit code.
func runBootstrap(t *testing.T, shell []string, path, agentURL, env, seeded string) (string, int) {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "agent-token")
	if err := os.WriteFile(tokenFile, []byte(testToken), 0o400); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{}, shell[1:]...), "-c", Bootstrap, "dev8-bootstrap", filepath.Join(dir, "dev8"), seeded)
	cmd := exec.CommandContext(t.Context(), shell[0], args...)
	// Two tries: a refused download fails in a second, not two minutes.
	cmd.Env = []string{"PATH=" + path, "DEV8_AGENT_URL=" + agentURL + "/", "DEV8_ENVIRONMENT_ID=" + env, "DEV8_AGENT_TOKEN_FILE=" + tokenFile, "DEV8_BOOTSTRAP_TRIES=2"}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return string(out), 0
}

func needTool(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s is needed: %v", path, err)
	}
}

func TestBootstrapFetches(t *testing.T) {
	t.Parallel()
	const env = "env-1"
	srv := bootstrapServer(t, env, nil)
	for name, run := range map[string]func() (string, int){
		// busybox's shell finds its own wget, sha256sum and chmod.
		"busybox": func() (string, int) {
			needTool(t, "/bin/busybox")
			return runBootstrap(t, []string{"/bin/busybox", "sh"}, "/nonexistent", srv.URL, env, "")
		},
		"curl": func() (string, int) {
			return runBootstrap(t, []string{"/bin/dash"}, toolsDir(t, "curl", "sha256sum", "chmod"), srv.URL, env, "")
		},
		"gnu wget": func() (string, int) {
			return runBootstrap(t, []string{"/bin/dash"}, toolsDir(t, "wget", "sha256sum", "chmod"), srv.URL, env, "")
		},
	} {
		t.Run(name, func(t *testing.T) {
			needTool(t, "/bin/dash")
			out, code := run()
			if code != 0 || !strings.Contains(out, "supervisor ran: supervisor") {
				t.Fatalf("exit %d: %s", code, out)
			}
		})
	}
	t.Run("no sha256sum", func(t *testing.T) {
		needTool(t, "/bin/dash")
		out, code := runBootstrap(t, []string{"/bin/dash"}, toolsDir(t, "curl", "wc", "chmod"), srv.URL, env, "")
		if code != 0 || !strings.Contains(out, "no sha256sum in the workspace image: the supervisor's size is checked") || !strings.Contains(out, "supervisor ran") {
			t.Fatalf("exit %d: %s", code, out)
		}
	})
}

func TestBootstrapRefuses(t *testing.T) {
	t.Parallel()
	needTool(t, "/bin/dash")
	const env = "env-2"
	good := bootstrapServer(t, env, nil)
	for _, tc := range []struct {
		name  string
		url   string
		env   string
		tools []string
		code  int
		want  string
	}{
		{"no curl or wget", good.URL, env, []string{"sha256sum", "chmod"}, exitNoDownloader, "neither curl nor wget"},
		{"another environment", good.URL, "env-3", []string{"curl", "sha256sum", "chmod", "sleep"}, exitDownload, "could not download the supervisor from " + good.URL + "/api/v1/environments/env-3/supervisor: curl: (22)"},
		{"wrong checksum", bootstrapServer(t, env, func(h http.Header) { h.Set(supervisorbin.HeaderSHA256, strings.Repeat("0", 64)) }).URL, env,
			[]string{"curl", "sha256sum", "chmod"}, exitVerify, "does not match its checksum"},
		{"wrong checksum, busybox wget", bootstrapServer(t, env, func(h http.Header) { h.Set(supervisorbin.HeaderSHA256, strings.Repeat("0", 64)) }).URL, env,
			nil, exitVerify, "does not match its checksum"},
		{"no checksum", bootstrapServer(t, env, func(h http.Header) { h.Del(supervisorbin.HeaderSHA256) }).URL, env,
			[]string{"wget", "sha256sum", "chmod"}, exitVerify, "without its X-Dev8-Sha256 checksum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			shell, path := []string{"/bin/dash"}, ""
			if tc.tools == nil {
				needTool(t, "/bin/busybox")
				shell, path = []string{"/bin/busybox", "sh"}, "/nonexistent"
			} else {
				path = toolsDir(t, tc.tools...)
			}
			out, code := runBootstrap(t, shell, path, tc.url, tc.env, "")
			if code != tc.code || !strings.Contains(out, tc.want) || strings.Contains(out, "supervisor ran") || strings.Contains(out, testToken) {
				t.Fatalf("exit %d, want %d with %q: %s", code, tc.code, tc.want, out)
			}
			if reason, ok := bootstrapReason(int32(code), out); !ok || (code == exitNoDownloader) != strings.Contains(reason, "--kubernetes-supervisor-from image") {
				t.Errorf("reason %q, %v", reason, ok)
			}
		})
	}
}

// TestBootstrapWaitsForSeeding: with a FIFO named, Bootstrap runs the
// supervisor only once SeedHome has copied the image's home into the
// (empty) volume; a volume with something in it is left as it is.
func TestBootstrapWaitsForSeeding(t *testing.T) {
	t.Parallel()
	needTool(t, "/bin/busybox")
	const env = "env-4"
	srv := bootstrapServer(t, env, nil)
	for _, full := range []bool{false, true} {
		t.Run(fmt.Sprintf("volume has files %v", full), func(t *testing.T) {
			t.Parallel()
			src, dst, run := t.TempDir(), t.TempDir(), t.TempDir()
			if err := os.MkdirAll(filepath.Join(src, ".config/app"), 0o755); err != nil {
				t.Fatal(err)
			}
			for name, data := range map[string]string{".bashrc": "alias ll='ls -l'\n", ".config/app/settings.json": "{}\n"} {
				if err := os.WriteFile(filepath.Join(src, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink(".bashrc", filepath.Join(src, "link")); err != nil {
				t.Fatal(err)
			}
			if full {
				if err := os.WriteFile(filepath.Join(dst, ".mine"), []byte("mine"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			fifo := filepath.Join(run, "home-seeded")
			seed := exec.CommandContext(t.Context(), "/bin/busybox", "sh", "-c", SeedHome, "dev8-seed-home", src, dst, fifo)
			seed.Env = []string{"PATH=/nonexistent"}
			seedOut := &strings.Builder{}
			seed.Stdout, seed.Stderr = seedOut, seedOut
			if err := seed.Start(); err != nil {
				t.Fatal(err)
			}
			out, code := runBootstrap(t, []string{"/bin/busybox", "sh"}, "/nonexistent", srv.URL, env, fifo)
			if err := seed.Wait(); err != nil {
				t.Fatalf("seed: %v: %s", err, seedOut)
			}
			if code != 0 || !strings.Contains(out, "supervisor ran") || strings.Contains(out, "in part") {
				t.Fatalf("exit %d: %s", code, out)
			}
			got, err := os.ReadFile(filepath.Join(dst, ".config/app/settings.json"))
			link, lerr := os.Readlink(filepath.Join(dst, "link"))
			switch {
			case full && !os.IsNotExist(err):
				t.Fatalf("a volume with files was seeded: %v", err)
			case !full && (err != nil || string(got) != "{}\n" || lerr != nil || link != ".bashrc"):
				t.Fatalf("seeded: %q %v, link %q %v", got, err, link, lerr)
			}
		})
	}
}
