package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/testutil/devserver"
	"dev8.dev/dev8/sdk"
)

// The test binary doubles as the workspace supervisor (devserver)
// and as the dev8 command line (DEV8_TEST_CLI: what OpenSSH runs as
// ProxyCommand, since config-ssh writes this executable's path).
func TestMain(m *testing.M) {
	devserver.RunSupervisorIfAsked()
	if os.Getenv("DEV8_TEST_CLI") == "1" {
		os.Exit(Execute(context.Background()))
	}
	os.Exit(m.Run())
}

// harness is a real server on a loopback port, and a config dir for the
// command line.
type harness struct {
	t         *testing.T
	dev       *devserver.Server
	ctx       context.Context
	srv       *server.Server
	url       string
	dataDir   string
	configDir string
	// env is the whole environment commands see (not the process's).
	env map[string]string
}

func newHarness(t *testing.T, mutate func(*server.Config)) *harness {
	t.Helper()
	srv := devserver.Start(t, devserver.Options{Config: mutate})
	h := &harness{
		t: t, dev: srv, ctx: srv.Ctx, srv: srv.Server, url: srv.URL, dataDir: srv.DataDir,
		configDir: filepath.Join(t.TempDir(), "dev8"),
	}
	h.env = map[string]string{envConfigDir: h.configDir}
	return h
}

// user signs up (the first user by themself, the others with an invite)
// and logs in through the SDK, returning the token.
func (h *harness) user(email string) string {
	h.t.Helper()
	c := sdk.New(h.url, "")
	if _, err := h.dev.Signup(h.t, c, email, "correct horse", "Test User"); err != nil {
		h.t.Fatalf("signup %s: %v", email, err)
	}
	token, _, err := c.Login(h.ctx, email, "correct horse")
	if err != nil {
		h.t.Fatalf("login %s: %v", email, err)
	}
	return token
}

// login makes the command line logged in as a new user, through dev8 login.
func (h *harness) login(email string) *sdk.Client {
	h.t.Helper()
	token := h.user(email)
	if out, errOut, err := h.run("", "login", h.url, "--token", token); err != nil {
		h.t.Fatalf("dev8 login --token: %v\n%s%s", err, out, errOut)
	}
	return sdk.New(h.url, token)
}

// run runs dev8 with args in-process, with stdin as standard input.
func (h *harness) run(stdin string, args ...string) (stdout, stderr string, err error) {
	h.t.Helper()
	var out, errOut bytes.Buffer
	err = h.runIO(h.ctx, strings.NewReader(stdin), &out, &errOut, nil, args...)
	return out.String(), errOut.String(), err
}

// runIO runs dev8 with args in-process on the given streams; extraEnv adds
// to the harness's environment.
func (h *harness) runIO(ctx context.Context, in io.Reader, out, errOut io.Writer, extraEnv map[string]string, args ...string) error {
	env := map[string]string{}
	for k, v := range h.env {
		env[k] = v
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	root := NewRoot()
	root.SetArgs(args)
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errOut)
	return root.ExecuteContext(withEnviron(ctx, env))
}

// createRunning creates an environment through the CLI and waits for it.
func (h *harness) createRunning(name string, args ...string) *sdk.Environment {
	h.t.Helper()
	out, errOut, err := h.run("", append([]string{"create", name}, args...)...)
	if err != nil {
		h.t.Fatalf("dev8 create %s: %v\n%s%s", name, err, out, errOut)
	}
	token := h.storedConfig().Token
	env, err := sdk.New(h.url, token).FindEnvironment(h.ctx, name)
	if err != nil {
		h.t.Fatal(err)
	}
	if env.Status != sdk.StatusRunning {
		h.t.Fatalf("after dev8 create, %s is %s", name, env.Status)
	}
	return env
}

func (h *harness) storedConfig() userConfig {
	h.t.Helper()
	cfg, err := loadConfig(withEnviron(h.ctx, h.env))
	if err != nil {
		h.t.Fatal(err)
	}
	return cfg
}

// syncBuffer is a bytes.Buffer safe for a command writing while the test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
