package cli

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/sdk"
)

func TestLogin(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.user("ada@example.com")

	// Wrong password: an error, and nothing is stored.
	_, _, err := h.run("ada@example.com\nwrong password\n", "login", h.url)
	if err == nil || !strings.Contains(err.Error(), "Invalid email or password") {
		t.Fatalf("login with a wrong password: %v", err)
	}
	if _, err := os.Stat(filepath.Join(h.configDir, "config.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("config after a failed login: %v", err)
	}

	// Piped credentials (no terminal): two lines, no trailing newline needed.
	out, _, err := h.run("ada@example.com\ncorrect horse", "login", h.url)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if !strings.Contains(out, "Logged in to "+h.url+" as ada@example.com (Test User).") {
		t.Fatalf("login printed %q", out)
	}
	path := filepath.Join(h.configDir, "config.json")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("config mode %v, want 0600", info.Mode().Perm())
	}
	if dir, _ := os.Stat(h.configDir); dir.Mode().Perm() != 0o700 {
		t.Fatalf("config dir mode %v, want 0700", dir.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	var stored map[string]string
	if err := json.Unmarshal(data, &stored); err != nil || len(stored) != 2 || stored["url"] != h.url || !strings.HasPrefix(stored["token"], "dev8s_") {
		t.Fatalf("config.json = %s (%v), want {url, token}", data, err)
	}
	if _, _, err := h.run("", "ls"); err != nil {
		t.Fatalf("ls with the stored login: %v", err)
	}

	// DEV8_TOKEN wins over the file, and --token over DEV8_TOKEN.
	bad := map[string]string{envToken: "dev8_not-a-token"}
	err = h.runIO(h.ctx, strings.NewReader(""), &syncBuffer{}, &syncBuffer{}, bad, "ls")
	if !sdk.IsUnauthorized(err) || !strings.Contains(err.Error(), "dev8 login") {
		t.Fatalf("ls with a bad DEV8_TOKEN: %v", err)
	}
	if err := h.runIO(h.ctx, strings.NewReader(""), &syncBuffer{}, &syncBuffer{}, bad, "ls", "--token", stored["token"]); err != nil {
		t.Fatalf("ls --token over a bad DEV8_TOKEN: %v", err)
	}
	// The stored token is never sent to another server.
	_, _, err = h.run("", "ls", "--url", "http://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "not logged in to http://127.0.0.1:1") {
		t.Fatalf("ls --url elsewhere: %v", err)
	}

	// --email, then the password alone on stdin.
	if _, _, err := h.run("correct horse\n", "login", h.url, "--email", "ada@example.com"); err != nil {
		t.Fatalf("login --email: %v", err)
	}

	// --token stores an existing token after checking it.
	if _, _, err := h.run("", "login", h.url, "--token", "dev8_bogus"); err == nil || !strings.Contains(err.Error(), "does not accept this token") {
		t.Fatalf("login --token bogus: %v", err)
	}
	if got := h.storedConfig(); got.Token == "dev8_bogus" {
		t.Fatal("a refused token was stored")
	}

	session := h.storedConfig().Token
	if _, err := sdk.New(h.url, session).Me(h.ctx); err != nil {
		t.Fatalf("the stored session before logout: %v", err)
	}
	out, _, err = h.run("", "logout")
	if err != nil || !strings.Contains(out, "Logged out of "+h.url) {
		t.Fatalf("logout = %q, %v", out, err)
	}
	// The session ended on the server too.
	if _, err := sdk.New(h.url, session).Me(h.ctx); !sdk.IsUnauthorized(err) {
		t.Fatalf("the session after logout: %v, want 401", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("config after logout: %v", err)
	}
	if out, _, err := h.run("", "logout"); err != nil || !strings.Contains(out, "Not logged in") {
		t.Fatalf("second logout = %q, %v", out, err)
	}
	_, _, err = h.run("", "ls")
	if err == nil || !strings.Contains(err.Error(), "not logged in") {
		t.Fatalf("ls after logout: %v", err)
	}
	// DEV8_URL and DEV8_TOKEN alone are enough.
	env := map[string]string{envURL: h.url, envToken: stored["token"]}
	if err := h.runIO(h.ctx, strings.NewReader(""), &syncBuffer{}, &syncBuffer{}, env, "ls"); err != nil {
		t.Fatalf("ls with DEV8_URL and DEV8_TOKEN: %v", err)
	}
}

func TestEnvironmentLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	c := h.login("ada@example.com")

	out, _, err := h.run("", "ls")
	if err != nil || !strings.Contains(out, "No environments") {
		t.Fatalf("ls with none = %q, %v", out, err)
	}
	out, _, err = h.run("", "ls", "--json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("ls --json with none = %q, %v", out, err)
	}

	out, _, err = h.run("", "create", "my-env", "--template", "nodejs", "--cpu", "1", "--auto-stop", "2h", "--env", "GREETING=hi there", "--port", "3000")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	for _, want := range []string{`Creating environment "my-env" (env_`, "  CREATING", "  RUNNING", `Environment "my-env" is running.`, "dev8 ssh my-env"} {
		if !strings.Contains(out, want) {
			t.Fatalf("create printed %q; want %q in it", out, want)
		}
	}
	if strings.Index(out, "CREATING") > strings.Index(out, "RUNNING") {
		t.Fatalf("create printed the statuses out of order: %q", out)
	}
	env, err := c.FindEnvironment(h.ctx, "my-env")
	if err != nil {
		t.Fatal(err)
	}
	if env.Status != sdk.StatusRunning || env.TemplateName != "nodejs" || env.CPUCores != 1 || env.AutoStopMinutes != 120 ||
		env.EnvironmentVariables["GREETING"] != "hi there" || len(env.Ports) != 1 || env.Ports[0].Port != 3000 {
		t.Fatalf("created %+v", env)
	}

	out, _, err = h.run("", "ls")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !regexp.MustCompile(`^NAME\s+STATUS\s+TEMPLATE\s+SIZE\s+COST/H\s+TOTAL\s+LAST ACTIVE$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^my-env\s+RUNNING\s+nodejs\s+1 CPU/\d+ GB/\d+ GB\s+\$\d+\.\d{4}\s+\$\d+\.\d{4}\s+just now$`).MatchString(lines[1]) {
		t.Fatalf("ls =\n%s", out)
	}
	out, _, err = h.run("", "ls", "--json")
	var listed []sdk.Environment
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != 1 || listed[0].ID != env.ID {
		t.Fatalf("ls --json = %q, %v", out, err)
	}
	if out, _, err = h.run("", "ls", "--status", "stopped"); err != nil || !strings.Contains(out, "No environments") {
		t.Fatalf("ls --status stopped = %q, %v", out, err)
	}

	// A name that is taken, and a request the server refuses: one line each.
	if _, _, err = h.run("", "create", "my-env"); err == nil || !strings.Contains(err.Error(), `create "my-env": Name already in use`) {
		t.Fatalf("create a taken name: %v", err)
	}
	if _, _, err = h.run("", "create", "big", "--cpu", "99"); err == nil || !strings.Contains(err.Error(), "cpu_cores") {
		t.Fatalf("create --cpu 99: %v", err)
	}

	// By name.
	out, _, err = h.run("", "stop", "my-env")
	if err != nil || !strings.Contains(out, "  STOPPING") || !strings.Contains(out, "  STOPPED") || !strings.Contains(out, `Environment "my-env" is stopped.`) {
		t.Fatalf("stop = %q, %v", out, err)
	}
	if out, _, err = h.run("", "stop", "my-env"); err != nil || !strings.Contains(out, "is stopped") {
		t.Fatalf("stop again = %q, %v", out, err)
	}
	// By id.
	out, _, err = h.run("", "start", env.ID)
	if err != nil || !strings.Contains(out, "  STARTING") || !strings.Contains(out, "  RUNNING") || !strings.Contains(out, "dev8 ssh my-env") {
		t.Fatalf("start by id = %q, %v", out, err)
	}
	if out, _, err = h.run("", "stop", "my-env", "--no-wait"); err != nil || out != "Environment \"my-env\" is STOPPING.\n" {
		t.Fatalf("stop --no-wait = %q, %v", out, err)
	}
	if _, err := c.WaitForStatus(h.ctx, env.ID, sdk.StatusStopped, nil); err != nil {
		t.Fatal(err)
	}

	// Unknown names and ids, and another user's environment, are not found.
	for _, args := range [][]string{{"start", "nope"}, {"stop", "env_doesnotexist"}, {"rm", "nope"}, {"ssh", "nope"}, {"port-forward", "nope", "--tcp", "1:1"}} {
		_, _, err := h.run("", args...)
		if want := `environment "` + args[1] + `" not found`; err == nil || err.Error() != want {
			t.Fatalf("dev8 %s: %v; want %q", strings.Join(args, " "), err, want)
		}
	}
	other := map[string]string{envURL: h.url, envToken: h.user("bob@example.com")}
	err = h.runIO(h.ctx, strings.NewReader(""), &syncBuffer{}, &syncBuffer{}, other, "stop", env.ID)
	if err == nil || err.Error() != `environment "`+env.ID+`" not found` {
		t.Fatalf("another user stops it: %v", err)
	}

	// rm with stdin not a terminal does not ask.
	out, _, err = h.run("", "rm", "my-env")
	if err != nil || !strings.Contains(out, "  DELETING") || !strings.Contains(out, `Environment "my-env" is deleted.`) {
		t.Fatalf("rm = %q, %v", out, err)
	}
	if _, err := c.GetEnvironment(h.ctx, env.ID); !sdk.IsNotFound(err) {
		t.Fatalf("get after rm: %v", err)
	}
	if out, _, err = h.run("", "ls"); err != nil || !strings.Contains(out, "No environments") {
		t.Fatalf("ls after rm = %q, %v", out, err)
	}

	// --no-wait create, then rm --yes --no-wait.
	out, _, err = h.run("", "create", "quick", "--no-wait")
	if err != nil || !regexp.MustCompile(`^Environment "quick" \(env_\w+\) is CREATING\.\n$`).MatchString(out) {
		t.Fatalf("create --no-wait = %q, %v", out, err)
	}
	if out, _, err = h.run("", "rm", "--yes", "--no-wait", "quick"); err != nil || !strings.Contains(out, "is being deleted") {
		t.Fatalf("rm --no-wait = %q, %v", out, err)
	}

	// Half a vCPU: sent as 0.5, listed as "0.5 CPU"; a size between the
	// steps is refused with the rule.
	if out, _, err = h.run("", "create", "half", "--cpu", "0.5", "--no-wait"); err != nil {
		t.Fatalf("create --cpu 0.5 = %q, %v", out, err)
	}
	out, _, err = h.run("", "ls", "--status", "creating,starting,running")
	if err != nil || !regexp.MustCompile(`(?m)^half\s+\w+\s+\w+\s+0\.5 CPU/\d+ GB/\d+ GB\s`).MatchString(out) {
		t.Fatalf("ls after create --cpu 0.5 =\n%s%v", out, err)
	}
	if _, _, err = h.run("", "create", "odd", "--cpu", "0.3"); err == nil || !strings.Contains(err.Error(), "cpu_cores: must be a number of vCPUs from 0.25 to 16 in steps of 0.25") {
		t.Fatalf("create --cpu 0.3: %v", err)
	}
	if _, _, err = h.run("", "rm", "--yes", "--no-wait", "half"); err != nil {
		t.Fatal(err)
	}
}

func TestCreateFailureExitsWithReason(t *testing.T) {
	t.Parallel()
	// A supervisor that cannot be started: the environment lands in ERROR.
	h := newHarness(t, func(c *server.Config) { c.SupervisorCommand = []string{filepath.Join(t.TempDir(), "no-such-dev8")} })
	h.login("ada@example.com")
	out, _, err := h.run("", "create", "broken")
	var envErr *sdk.EnvironmentError
	if !errors.As(err, &envErr) || envErr.Environment.StatusReason == "" ||
		!strings.HasPrefix(err.Error(), `environment "broken" failed: `) || !strings.Contains(err.Error(), "no-such-dev8") {
		t.Fatalf("create with a broken runtime: %v", err)
	}
	if !strings.Contains(out, "  CREATING") || !strings.Contains(out, "  ERROR") {
		t.Fatalf("create printed %q", out)
	}
	_, _, err = h.run("", "ssh", "broken", "--", "true")
	if err == nil || !strings.Contains(err.Error(), `environment "broken" is in ERROR`) {
		t.Fatalf("ssh to an environment in ERROR: %v", err)
	}
}

func TestHelpHasExamples(t *testing.T) {
	t.Parallel()
	for _, c := range NewRoot().Commands() {
		switch c.Name() {
		case "server", "supervisor", "version", "help", "completion":
			continue
		}
		if c.Example == "" || c.Long == "" {
			t.Errorf("dev8 %s: no examples or long help", c.Name())
		}
	}
}

// dev8 templates lists the catalog, and a create naming a template that is
// not in it says which ones are.
func TestTemplates(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.login("ada@example.com")
	out, _, err := h.run("", "templates")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NAME", "RUNS ON", "local (host tools)", "PER HOUR", "nodejs", "python", "fullstack", "base", "CPU/"} {
		if !strings.Contains(out, want) {
			t.Errorf("dev8 templates does not show %q:\n%s", want, out)
		}
	}
	out, _, err = h.run("", "templates", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var tpls []sdk.Template
	if err := json.Unmarshal([]byte(out), &tpls); err != nil || len(tpls) != 4 || tpls[0].Name == "" {
		t.Fatalf("dev8 templates --json = %q (%v)", out, err)
	}
	_, _, err = h.run("", "create", "web", "--template", "cobol")
	if err == nil || !strings.Contains(err.Error(), `unknown template "cobol"`) || !strings.Contains(err.Error(), "base, fullstack, nodejs, python") {
		t.Fatalf("create --template cobol = %v, want the valid templates named", err)
	}
	_, _, err = h.run("", "create", "web", "--template", "nodejs", "--runtime", "docker")
	if err == nil || !strings.Contains(err.Error(), `runtime "docker" is not one new environments can use on this server (configured: local)`) {
		t.Fatalf("create --runtime docker on a local-only server = %v", err)
	}
}
