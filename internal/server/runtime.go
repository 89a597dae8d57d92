package server

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/client"

	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/runtime/docker"
	"dev8.dev/dev8/internal/runtime/local"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/supervisorbin"
)

// Runtime names Config.Runtime accepts.
const (
	RuntimeLocal  = "local"
	RuntimeDocker = "docker"
	// RuntimeAuto picks docker when a Docker engine answers (and this
	// binary can be a container's supervisor), local otherwise: the
	// default of dev8 server.
	RuntimeAuto = "auto"
)

// enginePingTimeout bounds RuntimeAuto's question to the Docker engine, so a
// machine without one (or with a dead socket) starts at once.
const enginePingTimeout = 2 * time.Second

// chooseRuntime resolves Config.Runtime to "local" or "docker" and says why.
// Only RuntimeAuto looks around; an explicit name is taken as given (and
// fails later, in newRuntime, if it cannot work). RuntimeAuto keeps the
// runtime the installation's environments already run on (a server that ran
// local workspaces does not switch to docker, and lose sight of them, because
// an engine appeared); with none, it picks docker when an engine answers
// and this binary can be the containers' supervisor. db may be nil.
func chooseRuntime(ctx context.Context, cfg Config, db *store.DB) (name, why string, err error) {
	switch cfg.Runtime {
	case "", RuntimeLocal:
		return RuntimeLocal, "configured (--runtime/DEV8_RUNTIME)", nil
	case RuntimeDocker:
		return RuntimeDocker, "configured (--runtime/DEV8_RUNTIME)", nil
	case RuntimeAuto:
	default:
		return "", "", fmt.Errorf("unknown runtime %q (available: auto, local, docker)", cfg.Runtime)
	}
	if db != nil {
		envs, _, err := db.ListEnvironments(ctx, store.EnvironmentFilter{})
		if err != nil {
			return "", "", fmt.Errorf("choose runtime: %w", err)
		}
		count := map[string]int{}
		for _, e := range envs {
			count[e.Runtime]++
		}
		switch {
		case count[RuntimeLocal] > 0 && count[RuntimeDocker] == 0:
			return RuntimeLocal, fmt.Sprintf("this installation's %d environment(s) run on local (--runtime docker switches; they would then be lost sight of)", count[RuntimeLocal]), nil
		case count[RuntimeDocker] > 0 && count[RuntimeLocal] == 0:
			return RuntimeDocker, fmt.Sprintf("this installation's %d environment(s) run on docker", count[RuntimeDocker]), nil
		}
	}
	host, err := pingEngine(ctx, cfg.DockerHost)
	if err != nil {
		return RuntimeLocal, fmt.Sprintf("no Docker engine answers (%v); --runtime docker would need one", err), nil
	}
	if err := checkStatic(cfg.SupervisorBinary); err != nil {
		return RuntimeLocal, fmt.Sprintf("a Docker engine answers at %s, but %v", host, err), nil
	}
	return RuntimeDocker, fmt.Sprintf("a Docker engine answers at %s (--runtime local keeps workspaces as local processes)", host), nil
}

// useEmbeddedSupervisor points the runtimes at bin, the small supervisor dev8
// carries (supervisorbin.Binary, embedded by make build): it is written
// once to <DataDir>/bin/dev8-supervisor-<sha256 prefix> and becomes the local
// runtime's command and the file the docker runtime copies into containers,
// where Config does not name them already. Without an embedded supervisor,
// or when the file cannot be written, workspaces run `dev8 supervisor` from
// this executable, as before. Either way it logs which supervisor runs.
func useEmbeddedSupervisor(cfg *Config, bin []byte) {
	if len(cfg.SupervisorCommand) > 0 && cfg.SupervisorBinary != "" {
		cfg.Logger.Info("workspace supervisor: as configured", "command", cfg.SupervisorCommand, "docker_binary", cfg.SupervisorBinary)
		return
	}
	if bin == nil {
		cfg.Logger.Info("workspace supervisor: this executable (`dev8 supervisor`); this dev8 was built without the small supervisor (make build embeds it)")
		return
	}
	path, written, err := supervisorbin.Extract(filepath.Join(cfg.DataDir, "bin"), bin)
	if rerr := supervisorbin.Release(); rerr != nil {
		cfg.Logger.Debug("workspace supervisor", "err", rerr)
	}
	if err != nil {
		cfg.Logger.Warn("workspace supervisor: this executable (`dev8 supervisor`), because the embedded one cannot be written", "err", err)
		return
	}
	if cfg.SupervisorBinary == "" {
		cfg.SupervisorBinary = path
	}
	if len(cfg.SupervisorCommand) == 0 {
		// A data directory on a noexec mount holds the file but cannot run
		// it; the local runtime then keeps this executable (containers
		// get the file all the same).
		if err := runsHere(path); err != nil {
			cfg.Logger.Warn("workspace supervisor: local workspaces run this executable (`dev8 supervisor`), because the embedded one cannot run here", "path", path, "err", err)
			return
		}
		cfg.SupervisorCommand = []string{path, "supervisor"}
	}
	cfg.Logger.Info("workspace supervisor: the embedded one", "path", path, "bytes", len(bin), "written_now", written)
}

// runsHere runs the supervisor at path with --help: it fails when the file
// cannot be executed on this host.
func runsHere(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for try := 1; ; try++ {
		out, err := exec.CommandContext(ctx, path, "supervisor", "--help").CombinedOutput()
		// ETXTBSY: a process forked elsewhere in this one while the file
		// was open for writing still holds it until that child execs.
		if errors.Is(err, syscall.ETXTBSY) && try < 5 {
			time.Sleep(time.Duration(try) * 20 * time.Millisecond)
			continue
		}
		if err != nil {
			return fmt.Errorf("%s supervisor --help: %w: %s", path, err, bytes.TrimSpace(out))
		}
		return nil
	}
}

// engineClient is a client of the engine at host, or DOCKER_HOST (or the
// default socket) when host is empty.
func engineClient(host string, opts ...client.Opt) (*client.Client, error) {
	opts = append([]client.Opt{client.FromEnv}, opts...)
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	return client.NewClientWithOpts(opts...)
}

// pingEngine asks the engine at host (see engineClient) whether it is
// there, within enginePingTimeout, and returns its address.
func pingEngine(ctx context.Context, host string) (string, error) {
	c, err := engineClient(host)
	if err != nil {
		return "", err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, enginePingTimeout)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return "", fmt.Errorf("%s did not answer within %s", c.DaemonHost(), enginePingTimeout)
		}
		return "", err
	}
	return c.DaemonHost(), nil
}

// checkStatic reports why the binary the docker runtime copies into
// containers (Config.SupervisorBinary: the embedded supervisor once
// useEmbeddedSupervisor wrote it; empty: this executable) cannot run
// there: it must be a statically linked linux/amd64 ELF file, as `make
// build` (CGO_ENABLED=0) makes it.
func checkStatic(path string) error {
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("this executable cannot be found (%v) to run as the containers' supervisor", err)
		}
		path = exe
	}
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s is not an ELF executable (%v) that can run as the containers' supervisor", path, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("%s is built for %s, not linux/amd64, so it cannot run as the containers' supervisor", path, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked, so it cannot run as the containers' supervisor (build it with make build, CGO_ENABLED=0)", path)
		}
	}
	return nil
}

// templateImageRefs maps each template's image name (store.Template's
// BaseImage, e.g. dev8/nodejs) to the reference the docker runtime runs for
// it: Config.TemplateImages[template name] when set, else the name with
// :latest. A TemplateImages key that names no template is an error.
func templateImageRefs(ctx context.Context, db *store.DB, overrides map[string]string) (map[string]string, error) {
	templates, err := db.ListTemplates(ctx)
	if err != nil {
		return nil, fmt.Errorf("load templates: %w", err)
	}
	refs := map[string]string{}
	known := map[string]bool{}
	for _, t := range templates {
		known[t.Name] = true
		ref := overrides[t.Name]
		if ref == "" {
			ref = t.BaseImage
			if !hasTag(ref) {
				ref += ":latest"
			}
		}
		refs[t.BaseImage] = ref
	}
	for name := range overrides {
		if !known[name] {
			return nil, fmt.Errorf("--template-image %s=…: there is no template %q", name, name)
		}
	}
	return refs, nil
}

// hasTag says whether an image reference names a tag or a digest (a ':'
// after the last '/', or an '@').
func hasTag(ref string) bool {
	return strings.Contains(ref, "@") || strings.Contains(ref[strings.LastIndex(ref, "/")+1:], ":")
}

// ParseTemplateImages parses template=reference pairs (from repeated
// --template-image flags or the comma-separated DEV8_TEMPLATE_IMAGES).
func ParseTemplateImages(pairs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range pairs {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		name, ref, ok := strings.Cut(p, "=")
		name, ref = strings.TrimSpace(name), strings.TrimSpace(ref)
		if !ok || name == "" || ref == "" {
			return nil, fmt.Errorf("template image %q: want template=image, e.g. nodejs=registry.example/dev8/nodejs:1", p)
		}
		if !imageRef.MatchString(ref) {
			return nil, fmt.Errorf("template image %q: %q is not an image reference", p, ref)
		}
		out[name] = ref
	}
	return out, nil
}

// imageRef is a loose image reference: lower-case registry (with an
// optional port) and path, optional tag and digest.
var imageRef = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*(:[0-9]+)?(/[a-z0-9][a-z0-9._-]*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)

func newRuntime(ctx context.Context, cfg Config, name string, db *store.DB, imageRefs map[string]string) (runtime.Runtime, error) {
	switch name {
	case RuntimeLocal:
		return local.New(local.Config{
			Dir:        filepath.Join(cfg.DataDir, "workspaces"),
			Command:    cfg.SupervisorCommand,
			ExtraEnv:   cfg.SupervisorEnv,
			CodeServer: cfg.CodeServer,
			Logger:     cfg.Logger,
		})
	case RuntimeDocker:
		if err := checkStatic(cfg.SupervisorBinary); err != nil {
			return nil, fmt.Errorf("docker runtime: %w", err)
		}
		installation, err := db.InstallationSecret(ctx, "installation-id", 8)
		if err != nil {
			return nil, err
		}
		cli, err := engineClient(cfg.DockerHost, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, fmt.Errorf("docker runtime: %w", err)
		}
		rt, err := docker.New(docker.Config{
			Client:           cli,
			Installation:     hex.EncodeToString(installation),
			SupervisorBinary: cfg.SupervisorBinary,
			ExtraEnv:         cfg.SupervisorEnv,
			ImageRefs:        imageRefs,
			Logger:           cfg.Logger,
		})
		if err != nil {
			return nil, err
		}
		// The engine must answer now, and the API version is settled before
		// anything runs concurrently: the client negotiates it lazily, and
		// that first negotiation races with concurrent calls.
		pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		rt.Client().NegotiateAPIVersion(pingCtx)
		if err := rt.Ping(pingCtx); err != nil {
			return nil, err
		}
		// Say now which templates cannot start yet, not at the first create.
		for _, ref := range slices.Sorted(maps.Values(imageRefs)) {
			if _, err := rt.Client().ImageInspect(pingCtx, ref); err != nil {
				cfg.Logger.Warn("template image not present: creates from it will try to pull it (make images builds Dev8's images)", "image", ref, "err", err)
			}
		}
		return rt, nil
	}
	return nil, fmt.Errorf("unknown runtime %q (available: auto, local, docker)", name)
}

// logRuntime says which runtime runs the workspaces and why: the first thing
// dev8 server logs.
func logRuntime(log *slog.Logger, name, why string) {
	log.Info("workspace runtime: "+name, "runtime", name, "why", why)
}

// allowedImages is the API's allow-list: the operator's patterns plus the
// references the templates run (which then pass when named directly). No
// patterns: no list, any image may be named.
func allowedImages(patterns []string, imageRefs map[string]string) []string {
	if len(patterns) == 0 {
		return nil
	}
	return append(slices.Clone(patterns), slices.Sorted(maps.Values(imageRefs))...)
}
