package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/docker/docker/client"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/testutil/loopback"
	"dev8.dev/dev8/sdk"
)

// ideImage is the docker figure's workspace image: what
// scripts/code-server-test-image.sh builds from this machine's code-server.
const ideImage = "dev8-bench/code-server:latest"

var (
	ideFigures bool
	codeServer string
)

func init() {
	flag.BoolVar(&ideFigures, "ide", true, "measure create → IDE-ready (code-server through the server's IDE proxy) on local, and on docker when an engine answers")
	flag.StringVar(&codeServer, "code-server", os.Getenv("DEV8_CODE_SERVER"), "code-server executable for the IDE figures (scripts/install-code-server.sh prints it; empty: skip them)")
}

// ideBench: create → IDE-ready on the local runtime, then on docker with the
// code-server test image.
func ideBench(ctx context.Context, o options) error {
	if reason, off := sectionOff("ide", ideFigures); off {
		results.Skipped = append(results.Skipped, "create → IDE-ready: "+reason)
		return nil
	}
	if codeServer == "" {
		results.Skipped = append(results.Skipped, "create → IDE-ready: no code-server (set DEV8_CODE_SERVER or -code-server; scripts/install-code-server.sh installs it)")
		return nil
	}
	fmt.Println("== create → IDE-ready (local runtime, sqlite)")
	_, url, cleanup, err := startServer(ctx, o, "", func(c *server.Config) { c.CodeServer = codeServer })
	if err != nil {
		return err
	}
	local, localUp, err := ideRuns(ctx, o, url, "ide-local@bench.test", sdk.CreateEnvironmentRequest{}, "local")
	cleanup()
	if err != nil {
		return fmt.Errorf("local: %w", err)
	}
	addFigure(Figure{Section: "1 lifecycle", Name: "create → IDE-ready (local)", Engine: "sqlite", Unit: "s", Runs: local, Target: "≤ 1.5 s", Note: "POST /environments until GET vs_code_url through the IDE proxy returns code-server's workbench page"}, local, 1.5, true)
	addFigure(Figure{Section: "1 lifecycle", Name: "  of which create → RUNNING with vs_code_url (local)", Engine: "sqlite", Unit: "s", Runs: localUp, Note: "the rest is code-server starting until it serves the workbench"}, localUp, 0, true)

	// Docker, with the image scripts/code-server-test-image.sh builds.
	if !dockerFigures {
		results.Skipped = append(results.Skipped, "create → IDE-ready (docker): -docker=false")
		return nil
	}
	dc, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err = dc.Ping(pctx)
	cancel()
	dc.Close()
	if err != nil {
		results.Skipped = append(results.Skipped, "create → IDE-ready (docker): no Docker engine answers")
		return nil
	}
	script := "scripts/code-server-test-image.sh"
	if _, err := os.Stat(script); err != nil {
		results.Skipped = append(results.Skipped, "create → IDE-ready (docker): run from the repository root (needs "+script+")")
		return nil
	}
	fmt.Printf("   building %s with %s (skipped when up to date)\n", ideImage, script)
	bctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	out, err := exec.CommandContext(bctx, "bash", script, codeServer, ideImage).CombinedOutput()
	cancel()
	if err != nil {
		results.Skipped = append(results.Skipped, fmt.Sprintf("create → IDE-ready (docker): %s failed: %v: %s", script, err, strings.TrimSpace(string(out))))
		return nil
	}
	fmt.Println("== create → IDE-ready (docker runtime, sqlite)")
	_, url, cleanup, err = startServer(ctx, o, "", func(c *server.Config) {
		c.Runtime = "docker"
		c.SupervisorBinary = o.supervisorBinary()
		c.SupervisorCommand = nil
	})
	if err != nil {
		return err
	}
	dock, dockUp, err := ideRuns(ctx, o, url, "ide-docker@bench.test", sdk.CreateEnvironmentRequest{BaseImage: ideImage, InstanceType: "lightweight"}, "docker")
	cleanup()
	if err != nil {
		return fmt.Errorf("docker: %w", err)
	}
	addFigure(Figure{Section: "1 lifecycle", Name: "create → IDE-ready (docker, image present)", Engine: "sqlite", Unit: "s", Runs: dock, Target: "≤ 2.5 s", Note: "image " + ideImage + " (scripts/code-server-test-image.sh)"}, dock, 2.5, true)
	addFigure(Figure{Section: "1 lifecycle", Name: "  of which create → RUNNING with vs_code_url (docker)", Engine: "sqlite", Unit: "s", Runs: dockUp, Note: "the rest is code-server starting until it serves the workbench"}, dockUp, 0, true)
	return nil
}

// ideRuns creates o.runs environments like req, one at a time, and times
// each from POST /environments until its workbench page comes back through
// the proxy, and until the environment was RUNNING with its vs_code_url.
// Each is deleted before the next.
func ideRuns(ctx context.Context, o options, url, email string, req sdk.CreateEnvironmentRequest, label string) (ready, running []float64, err error) {
	token, err := userToken(ctx, url, email)
	if err != nil {
		return nil, nil, err
	}
	c := sdk.New(url, token)
	// As a browser: a jar for the IDE origin's own session cookie, and
	// *.localhost (the IDE's origin) on loopback.
	hc := loopback.Client()
	hc.Timeout = 10 * time.Second
	for i := range o.runs {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		r := req
		r.Name = fmt.Sprintf("ide-%s-%d", label, i)
		t0 := time.Now()
		var up time.Time
		env, err := c.CreateEnvironment(rctx, r)
		if err == nil {
			up, err = ideReady(rctx, c, hc, token, env.ID)
		}
		d := time.Since(t0)
		if err != nil {
			cancel()
			return nil, nil, fmt.Errorf("create → ide-ready: %w", err)
		}
		ready, running = append(ready, d.Seconds()), append(running, up.Sub(t0).Seconds())
		fmt.Printf("   create → ide-ready run %d: %s (RUNNING after %s)\n", i+1, d.Round(time.Millisecond), up.Sub(t0).Round(time.Millisecond))
		if _, err := c.Delete(rctx, env.ID); err == nil {
			_ = c.WaitForDeleted(rctx, env.ID, nil)
		}
		cancel()
	}
	return ready, running, nil
}

// ideReady returns once GET vs_code_url answers 200 with the workbench
// page, and when it first saw the environment with its vs_code_url (set
// when it turns RUNNING). vs_code_url leads to the IDE's own origin with a
// one-time ticket; once a GET has landed there (its session cookie in hc's
// jar), the next ones ask that address, as a browser reloading would.
func ideReady(ctx context.Context, c *sdk.Client, hc *http.Client, token, id string) (time.Time, error) {
	var last error
	var up time.Time
	vsURL := ""
	for ctx.Err() == nil {
		if vsURL == "" {
			env, err := c.GetEnvironment(ctx, id)
			switch {
			case err != nil:
				last = err
			case env.Status == sdk.StatusError:
				return up, fmt.Errorf("environment %s is ERROR: %s", id, env.StatusReason)
			case env.VSCodeURL == "":
				last = errors.New("no vs_code_url yet")
			default:
				vsURL, up = env.VSCodeURL, time.Now()
			}
		}
		if vsURL != "" {
			var at string
			at, last = getWorkbench(ctx, hc, token, vsURL)
			if last == nil {
				return up, nil
			}
			if at != "" && !strings.HasPrefix(at, c.BaseURL()) {
				vsURL = at
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return up, fmt.Errorf("%w (last: %v)", ctx.Err(), last)
}

// getWorkbench GETs url (following redirects) and says where it landed.
func getWorkbench(ctx context.Context, hc *http.Client, token, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	at := resp.Request.URL.String()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("workbench")) {
		return at, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return at, nil
}
