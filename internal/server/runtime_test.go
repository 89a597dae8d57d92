package server

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"dev8.dev/dev8/internal/store"
)

// TestPlanRuntimes: "auto" offers docker only when an engine answers and the
// supervisor binary can run in a container, local always; explicit names
// are taken as given; each choice comes with its reason; runtimes that
// existing environments use are kept whatever is configured.
func TestPlanRuntimes(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"", "local", "docker", "kubernetes", "azure"} {
		plan, err := planRuntimes(ctx, Config{Runtime: name}, nil)
		want := name
		if want == "" {
			want = "local"
		}
		if err != nil || !slices.Equal(plan.Offered, []string{want}) || plan.Default != want || !strings.Contains(plan.Why[want], "configured") {
			t.Errorf("planRuntimes(%q) = %+v, %v; want %q, configured", name, plan, err, want)
		}
	}
	if _, err := planRuntimes(ctx, Config{Runtime: "nomad"}, nil); err == nil || !strings.Contains(err.Error(), "available: auto, local, docker, kubernetes, azure") {
		t.Errorf("unknown runtime: %v", err)
	}
	if _, err := planRuntimes(ctx, Config{Runtime: "auto", Runtimes: []string{"local", "nomad"}}, nil); err == nil || !strings.Contains(err.Error(), `unknown runtime "nomad"`) {
		t.Errorf("unknown runtime in --runtimes: %v", err)
	}
	if _, err := planRuntimes(ctx, Config{Runtime: "docker", Runtimes: []string{"local"}}, nil); err == nil || !strings.Contains(err.Error(), "is not one of --runtimes") {
		t.Errorf("default not offered: %v", err)
	}
	plan, err := planRuntimes(ctx, Config{Runtime: "docker", Runtimes: []string{"local", "docker", "local"}}, nil)
	if err != nil || !slices.Equal(plan.Offered, []string{"local", "docker"}) || plan.Default != "docker" {
		t.Errorf("--runtimes local,docker --runtime docker: %+v, %v", plan, err)
	}
	plan, err = planRuntimes(ctx, Config{Runtime: "auto", Runtimes: []string{"docker", "local"}}, nil)
	if err != nil || !slices.Equal(plan.Offered, []string{"docker", "local"}) || plan.Default != "" {
		t.Errorf("--runtimes docker,local --runtime auto: %+v, %v", plan, err)
	}

	t.Run("no engine", func(t *testing.T) {
		t.Setenv("DOCKER_HOST", "unix://"+t.TempDir()+"/docker.sock")
		plan, err := planRuntimes(ctx, Config{Runtime: "auto"}, nil)
		if err != nil || !slices.Equal(plan.Offered, []string{"local"}) || !strings.Contains(plan.Why["local"], "no Docker engine answers") {
			t.Fatalf("= %+v, %v", plan, err)
		}
	})

	t.Run("engine does not answer", func(t *testing.T) {
		// Accepts connections and never answers: the ping must give up
		// after enginePingTimeout, not hang the server's start.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		t.Setenv("DOCKER_HOST", "tcp://"+ln.Addr().String())
		start := time.Now()
		plan, err := planRuntimes(ctx, Config{Runtime: "auto"}, nil)
		if took := time.Since(start); took > enginePingTimeout+2*time.Second {
			t.Errorf("took %s", took)
		}
		if err != nil || !slices.Equal(plan.Offered, []string{"local"}) || !strings.Contains(plan.Why["local"], "did not answer within") {
			t.Fatalf("= %+v, %v", plan, err)
		}
	})

	t.Run("engine answers", func(t *testing.T) {
		c, err := client.NewClientWithOpts(client.FromEnv)
		if err != nil {
			t.Fatal(err)
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = c.Ping(pctx)
		cancel()
		c.Close()
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("CI is set but no Docker engine answers: %v", err)
			}
			t.Skipf("no Docker engine answers (scripts/dockerd.sh starts one): %v", err)
		}
		// busybox-static is a static linux/amd64 executable, as
		// `make build` makes dev8; /bin/sh (dash) is not.
		if _, err := os.Stat("/bin/busybox"); err != nil {
			t.Skipf("no /bin/busybox: %v", err)
		}
		// Not root: local is offered after docker. Root: local workspaces
		// would be root, so only docker is (this test is not parallel).
		defer func(orig func() int) { geteuid = orig }(geteuid)
		geteuid = func() int { return 1000 }
		plan, err := planRuntimes(ctx, Config{Runtime: "auto", SupervisorBinary: "/bin/busybox"}, nil)
		if err != nil || !slices.Equal(plan.Offered, []string{"docker", "local"}) || plan.Default != "" || !strings.Contains(plan.Why["docker"], "Docker engine answers") {
			t.Fatalf("static binary: %+v, %v", plan, err)
		}
		geteuid = func() int { return 0 }
		plan, err = planRuntimes(ctx, Config{Runtime: "auto", SupervisorBinary: "/bin/busybox"}, nil)
		if err != nil || !slices.Equal(plan.Offered, []string{"docker"}) || !strings.Contains(plan.Why["docker"], "runs as root") {
			t.Fatalf("static binary, as root: %+v, %v", plan, err)
		}
		plan, err = planRuntimes(ctx, Config{Runtime: "auto", Runtimes: []string{"docker", "local"}}, nil)
		if err != nil || !slices.Equal(plan.Offered, []string{"docker", "local"}) {
			t.Fatalf("as root, local asked for: %+v, %v", plan, err)
		}
		plan, err = planRuntimes(ctx, Config{Runtime: "auto", SupervisorBinary: "/bin/sh"}, nil)
		if err != nil || !slices.Equal(plan.Offered, []string{"local"}) || !strings.Contains(plan.Why["local"], "dynamically linked") {
			t.Fatalf("dynamic binary: %+v, %v", plan, err)
		}
		// An installation whose environments run on a runtime that is no
		// longer configured keeps driving them there.
		db, err := store.Open(ctx, "", filepath.Join(t.TempDir(), "dev8.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		u, err := db.CreateUser(ctx, store.User{Email: "ada@example.com", Name: "Ada", PasswordHash: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateEnvironment(ctx, store.Environment{UserID: u.ID, Name: "old", Runtime: "docker", Status: store.StatusStopped}); err != nil {
			t.Fatal(err)
		}
		plan, err = planRuntimes(ctx, Config{Runtime: "local"}, db)
		if err != nil || !slices.Equal(plan.Offered, []string{"local"}) || !slices.Equal(plan.Kept, []string{"docker"}) {
			t.Fatalf("installation with a docker environment, --runtime local: %+v, %v", plan, err)
		}
		// Asked for explicitly, docker with a binary that cannot be a
		// container's supervisor fails at start instead.
		if _, err := New(ctx, Config{DataDir: t.TempDir(), Runtime: "docker", SupervisorBinary: "/bin/sh"}); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
			t.Fatalf("New with --runtime docker and a dynamic binary: %v", err)
		}
	})
}
