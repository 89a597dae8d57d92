package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/docker/docker/client"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/testutil/wait"
	"dev8.dev/dev8/sdk"
)

// needEngine skips (fails under CI) when no Docker engine answers.
func needEngine(t *testing.T) {
	t.Helper()
	c, err := client.NewClientWithOpts(client.FromEnv)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = c.Ping(ctx)
		cancel()
		c.Close()
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but no Docker engine answers: %v", err)
		}
		t.Skipf("no Docker engine answers (scripts/dockerd.sh starts one): %v", err)
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skipf("no /bin/busybox (a static binary the docker runtime accepts as its supervisor): %v", err)
	}
}

// emptyRegistry is a registry on loopback that has no image at all, as a
// registry answers for a repository or tag it does not have.
func emptyRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/v2/" {
			fmt.Fprint(w, "{}")
			return
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestCreatePageSaysWhereTemplatesRun: with docker and local offered and
// the nodejs template's image one its registry does not have, the API and
// the create page say nodejs runs on this machine (host tools) and why not
// on docker; creating it on docker is refused before anything is made.
func TestCreatePageSaysWhereTemplatesRun(t *testing.T) {
	needEngine(t)
	t.Parallel()
	missing := emptyRegistry(t) + "/dev8-test/nodejs:missing"
	ts := startServer(t, "", func(c *server.Config) {
		c.Runtime = server.RuntimeAuto
		c.Runtimes = []string{server.RuntimeDocker, server.RuntimeLocal}
		// No workspace is created on docker here: any static binary does.
		c.SupervisorBinary = "/bin/busybox"
		c.TemplateImages = map[string]string{"nodejs": missing}
	})
	token, _ := ts.user("ada@example.com")
	c := ts.client(token)

	// The server pulls nodejs's image in the background at start; the
	// registry's answer makes it unavailable there.
	var nodejs sdk.Template
	wait.Succeeds(ts.ctx, t, "nodejs to be unavailable on docker", func() error {
		tpls, err := c.Templates(ts.ctx)
		if err != nil {
			return err
		}
		for _, tp := range tpls {
			if tp.Name == "nodejs" {
				nodejs = tp
			}
		}
		if len(nodejs.Runtimes) != 2 || nodejs.Runtimes[0].State != sdk.TemplateUnavailable {
			return fmt.Errorf("nodejs: %+v", nodejs)
		}
		return nil
	})
	if nodejs.State != sdk.TemplateReady || nodejs.Runtime != "local" || !nodejs.Runtimes[1].HostTools ||
		nodejs.Runtimes[0].Runtime != "docker" || !strings.Contains(nodejs.Runtimes[0].Reason, "manifest unknown") {
		t.Fatalf("nodejs: %+v", nodejs)
	}
	_, err := c.CreateEnvironment(ts.ctx, sdk.CreateEnvironmentRequest{Name: "web", TemplateName: "nodejs", Runtime: "docker"})
	if !isAPIError(err, http.StatusConflict, sdk.CodeRuntimeUnavailable) || !strings.Contains(err.Error(), "template nodejs cannot run on the docker runtime yet: image "+missing+" could not be pulled") {
		t.Fatalf("create nodejs on docker: %v", err)
	}
	if list, err := c.ListEnvironments(ts.ctx, sdk.EnvironmentFilter{}); err != nil || list.Total != 0 {
		t.Fatalf("the refused create left environments: %+v, %v", list, err)
	}

	p := newPageTest(t, 2*time.Minute)
	p.step("viewport", chromedp.EmulateViewport(1280, 900))
	p.signIn(ts.url, "ada@example.com", "correct horse")
	p.step("create page",
		chromedp.Navigate(ts.url+"/new"),
		chromedp.WaitVisible(chromedp.CSS(`#templates .choice[data-value="nodejs"]`)),
		chromedp.Click(chromedp.CSS(`#templates .choice[data-value="nodejs"]`)),
		waitFor(`document.querySelector("#runtime-hint").textContent.includes("manifest unknown")`),
	)
	if got := p.eval(`document.querySelector('#templates .choice[data-value="nodejs"] .runs').textContent`); got != "Runs on this machine, with its installed tools" {
		t.Errorf("nodejs card says %q", got)
	}
	if got := p.eval(`[...document.querySelectorAll("#runtime option")].map((o) => o.value + (o.disabled ? " disabled" : "") + ": " + o.textContent).join("\n")`); got != ": Automatic: this machine (local processes)\ndocker disabled: Docker (a container per workspace) (not available yet)\nlocal: this machine (local processes)" {
		t.Errorf("runtime choices:\n%s", got)
	}
	p.check("create-runtimes")
}
