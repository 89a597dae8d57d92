package server

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/client"

	"dev8.dev/dev8/internal/catalog"
	"dev8.dev/dev8/internal/runtime"
	"dev8.dev/dev8/internal/runtime/docker"
	"dev8.dev/dev8/internal/runtime/local"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/internal/supervisorbin"
	"dev8.dev/dev8/internal/tunnel"
)

// Runtime names Config.Runtime and Config.Runtimes accept.
const (
	RuntimeLocal      = "local"
	RuntimeDocker     = "docker"
	RuntimeKubernetes = "kubernetes"
	RuntimeAzure      = "azure"
	// RuntimeAuto, as Config.Runtime (dev8 server's default), offers every
	// runtime that works here — docker when a Docker engine answers and
	// this binary can be a container's supervisor, and local — and gives
	// each new environment the first of them on which its template can
	// run now.
	RuntimeAuto = "auto"
)

// knownRuntimes are the runtime names this build has.
var knownRuntimes = []string{RuntimeLocal, RuntimeDocker, RuntimeKubernetes, RuntimeAzure}

// enginePingTimeout bounds RuntimeAuto's question to the Docker engine, so a
// machine without one (or with a dead socket) starts at once.
const enginePingTimeout = 2 * time.Second

// runtimePlan is which runtimes a server builds and offers.
type runtimePlan struct {
	// Offered are the runtimes new environments may use, in order of
	// preference.
	Offered []string
	// Default is what a create that names no runtime gets; empty: the
	// first offered one on which its template can run now.
	Default string
	// Kept are runtimes that existing environments use and that are not
	// offered: they are built too, when they can be, so those environments
	// go on as before (nothing is lost when the configuration changes).
	Kept []string
	// Why says, per offered runtime, why it is there.
	Why map[string]string
}

// planRuntimes decides which runtimes to offer from Config.Runtime and
// Config.Runtimes, and which existing environments need besides. Only
// RuntimeAuto with no Runtimes looks around; names given are taken as given
// (and fail later, in newRuntime, if they cannot work). db may be nil.
func planRuntimes(ctx context.Context, cfg Config, db *store.DB) (runtimePlan, error) {
	plan := runtimePlan{Why: map[string]string{}}
	def := cfg.Runtime
	if def == "" {
		def = RuntimeLocal
	}
	if def != RuntimeAuto && !slices.Contains(knownRuntimes, def) {
		return plan, fmt.Errorf("unknown runtime %q (available: auto, %s)", def, strings.Join(knownRuntimes, ", "))
	}
	for _, name := range cfg.Runtimes {
		if !slices.Contains(knownRuntimes, name) {
			return plan, fmt.Errorf("--runtimes: unknown runtime %q (available: %s)", name, strings.Join(knownRuntimes, ", "))
		}
		if !slices.Contains(plan.Offered, name) {
			plan.Offered = append(plan.Offered, name)
			plan.Why[name] = "configured (--runtimes/DEV8_RUNTIMES)"
		}
	}
	switch {
	case def != RuntimeAuto:
		plan.Default = def
		if len(plan.Offered) == 0 {
			plan.Offered = []string{def}
			plan.Why[def] = "configured (--runtime/DEV8_RUNTIME)"
		} else if !slices.Contains(plan.Offered, def) {
			return plan, fmt.Errorf("--runtime %s is not one of --runtimes %s", def, strings.Join(plan.Offered, ","))
		}
	case len(plan.Offered) == 0:
		host, err := pingEngine(ctx, cfg.DockerHost)
		switch {
		case err != nil:
			plan.Why[RuntimeLocal] = fmt.Sprintf("no Docker engine answers (%v), so workspaces are processes of this machine; --runtime docker would need one", err)
		case checkStatic(cfg.SupervisorBinary) != nil:
			plan.Why[RuntimeLocal] = fmt.Sprintf("a Docker engine answers at %s, but %v", host, checkStatic(cfg.SupervisorBinary))
		case geteuid() == 0:
			// Local workspaces would be root on this machine: with an
			// engine there, nobody gets that unless it is asked for.
			plan.Offered = append(plan.Offered, RuntimeDocker)
			plan.Why[RuntimeDocker] = fmt.Sprintf("a Docker engine answers at %s; a template can be created once its image is built (make images). "+
				"Local workspaces are not offered, since this server runs as root and they would too (--runtimes docker,local offers them anyway)", host)
			return plan, plan.keep(ctx, db)
		default:
			plan.Offered = append(plan.Offered, RuntimeDocker)
			plan.Why[RuntimeDocker] = fmt.Sprintf("a Docker engine answers at %s; a template goes there once its image is built (make images)", host)
			plan.Why[RuntimeLocal] = "the templates whose images the Docker engine does not have run here, with this machine's tools (--runtime docker refuses them instead)"
		}
		plan.Offered = append(plan.Offered, RuntimeLocal)
	}
	return plan, plan.keep(ctx, db)
}

// geteuid is os.Geteuid; tests replace it.
var geteuid = os.Geteuid

// keep adds to plan.Kept the runtimes existing environments use that are
// not offered. db may be nil.
func (plan *runtimePlan) keep(ctx context.Context, db *store.DB) error {
	if db == nil {
		return nil
	}
	used, err := db.EnvironmentRuntimes(ctx)
	if err != nil {
		return fmt.Errorf("plan runtimes: %w", err)
	}
	for _, name := range used {
		if !slices.Contains(plan.Offered, name) {
			plan.Kept = append(plan.Kept, name)
		}
	}
	return nil
}

// DefaultDockerNetwork is the docker runtime's isolated network.
const DefaultDockerNetwork = docker.IsolatedNetwork

// buildRuntimes builds the plan's runtimes. An offered runtime that cannot
// be built fails the start; a kept one is logged and left out, and its
// environments say that their runtime is not configured until it is.
func buildRuntimes(ctx context.Context, cfg Config, plan runtimePlan, deps runtimeDeps) ([]runtime.Runtime, error) {
	var rts []runtime.Runtime
	closeAll := func() {
		for _, rt := range rts {
			if c, ok := rt.(io.Closer); ok {
				c.Close()
			}
		}
	}
	for _, name := range plan.Offered {
		rt, err := newRuntime(ctx, cfg, name, deps)
		if err != nil {
			closeAll()
			return nil, err
		}
		rts = append(rts, rt)
	}
	for _, name := range plan.Kept {
		if !slices.Contains(knownRuntimes, name) {
			cfg.Logger.Warn("environments run on a runtime this build does not have; they are left as they are", "runtime", name)
			continue
		}
		rt, err := newRuntime(ctx, cfg, name, deps)
		if err != nil {
			cfg.Logger.Warn("environments run on a runtime that cannot be used now; they are left as they are until it can", "runtime", name, "err", err)
			continue
		}
		cfg.Logger.Info("runtime kept for the environments that run on it (new environments do not get it)", "runtime", name)
		rts = append(rts, rt)
	}
	return rts, nil
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

// servedSupervisor is the file GET /environments/{id}/supervisor serves to
// workspaces that fetch their supervisor at start (the kubernetes
// runtime's --kubernetes-supervisor-from server): the one the docker
// runtime copies (Config.SupervisorBinary, the embedded supervisor once
// useEmbeddedSupervisor wrote it), else this executable, which is a
// supervisor too (`dev8 supervisor`). It must be a static linux/amd64
// executable (checkStatic); there is no other platform's to serve. The
// error says why there is none.
func servedSupervisor(cfg Config) (string, error) {
	path := cfg.SupervisorBinary
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("this executable cannot be found: %w", err)
		}
		path = exe
	}
	if err := checkStatic(path); err != nil {
		return "", err
	}
	return path, nil
}

// serveSupervisor is the API's Config.Supervisor and SupervisorMissing.
func serveSupervisor(cfg Config) (*supervisorbin.Served, string) {
	path, err := servedSupervisor(cfg)
	var served *supervisorbin.Served
	if err == nil {
		served, err = supervisorbin.NewServed(path)
	}
	if err != nil {
		why := fmt.Sprintf("this server has no %s supervisor for workspaces to fetch: %v", supervisorbin.Platform, err)
		cfg.Logger.Debug("workspace supervisor: none to serve", "why", why)
		return nil, why
	}
	return served, ""
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
//
// builtHere holds the references of Dev8's own images under their default
// names (dev8/…), which make images builds on the engine's machine: they
// are never pulled, since a registry's image of that name is somebody
// else's.
func templateImageRefs(ctx context.Context, db *store.DB, overrides map[string]string) (refs map[string]string, builtHere map[string]bool, err error) {
	templates, err := db.ListTemplates(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("load templates: %w", err)
	}
	refs, builtHere = map[string]string{}, map[string]bool{}
	known := map[string]bool{}
	for _, t := range templates {
		known[t.Name] = true
		ref := overrides[t.Name]
		if ref == "" {
			ref = t.BaseImage
			if !hasTag(ref) {
				ref += ":latest"
			}
			if strings.HasPrefix(ref, "dev8/") {
				builtHere[ref] = true
			}
		}
		refs[t.BaseImage] = ref
	}
	for name := range overrides {
		if !known[name] {
			return nil, nil, fmt.Errorf("--template-image %s=…: there is no template %q", name, name)
		}
	}
	return refs, builtHere, nil
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
		if err := catalog.CheckImageRef(ref); err != nil {
			return nil, fmt.Errorf("template image %q: %q is not an image reference: %w", p, ref, err)
		}
		out[name] = ref
	}
	return out, nil
}

// runtimeDeps is what the runtimes are built with besides Config.
type runtimeDeps struct {
	db *store.DB
	// imageRefs maps the templates' images to the references to run;
	// builtHere are those this machine's Docker engine built.
	imageRefs map[string]string
	builtHere map[string]bool
	// tunnels are the supervisors' tunnels to this server.
	tunnels *tunnel.Registry
}

func newRuntime(ctx context.Context, cfg Config, name string, deps runtimeDeps) (runtime.Runtime, error) {
	db, imageRefs, builtHere := deps.db, deps.imageRefs, deps.builtHere
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
			BuiltHere:        builtHere,
			NetworkMode:      cfg.DockerNetwork,
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
		// Say now which templates cannot start yet, not at the first create,
		// and pull those that can be pulled before anybody waits for them.
		rt.Prefetch(pingCtx, slices.Sorted(maps.Values(imageRefs)))
		return rt, nil
	case RuntimeKubernetes:
		return newKubernetesRuntime(ctx, cfg, deps)
	case RuntimeAzure:
		return newAzureRuntime(ctx, cfg, deps.db, imageRefs)
	}
	return nil, fmt.Errorf("unknown runtime %q (available: %s)", name, strings.Join(knownRuntimes, ", "))
}

// logRuntimes says which runtimes run workspaces and why: the first thing
// dev8 server logs.
func logRuntimes(log *slog.Logger, plan runtimePlan, localForMembers bool) {
	def := plan.Default
	if def == "" {
		def = "the first where the template can run"
	}
	for _, name := range plan.Offered {
		log.Info("workspace runtime: "+name, "runtime", name, "default", def, "why", plan.Why[name])
		switch {
		case name == "local" && localForMembers:
			log.Warn("workspace runtime: local runs workspaces as this server's own user with no isolation, and --local-for-members lets every member run them: each member can read the data directory, the others' workspaces and secrets, and reach this server's listeners",
				"runtime", name)
		case name == "local":
			log.Warn("workspace runtime: local runs workspaces as this server's own user with no isolation (they can read its data directory and reach its listeners): only admins may create or start workspaces on it; members need the docker runtime",
				"runtime", name)
		}
	}
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
