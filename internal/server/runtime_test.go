package server

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"dev8.dev/dev8/internal/store"
)

// TestChooseRuntime: "auto" picks docker only when an engine answers and the
// supervisor binary can run in a container; explicit names are taken as
// given; each choice comes with its reason.
func TestChooseRuntime(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"", "local", "docker"} {
		got, why, err := chooseRuntime(ctx, Config{Runtime: name}, nil)
		want := name
		if want == "" {
			want = "local"
		}
		if err != nil || got != want || !strings.Contains(why, "configured") {
			t.Errorf("chooseRuntime(%q) = %q, %q, %v; want %q, configured", name, got, why, err, want)
		}
	}
	if _, _, err := chooseRuntime(ctx, Config{Runtime: "kubernetes"}, nil); err == nil || !strings.Contains(err.Error(), "available: auto, local, docker") {
		t.Errorf("unknown runtime: %v", err)
	}

	t.Run("no engine", func(t *testing.T) {
		t.Setenv("DOCKER_HOST", "unix://"+t.TempDir()+"/docker.sock")
		got, why, err := chooseRuntime(ctx, Config{Runtime: "auto"}, nil)
		if err != nil || got != "local" || !strings.Contains(why, "no Docker engine answers") {
			t.Fatalf("= %q, %q, %v", got, why, err)
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
		got, why, err := chooseRuntime(ctx, Config{Runtime: "auto"}, nil)
		if took := time.Since(start); took > enginePingTimeout+2*time.Second {
			t.Errorf("took %s", took)
		}
		if err != nil || got != "local" || !strings.Contains(why, "did not answer within") {
			t.Fatalf("= %q, %q, %v", got, why, err)
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
		got, why, err := chooseRuntime(ctx, Config{Runtime: "auto", SupervisorBinary: "/bin/busybox"}, nil)
		if err != nil || got != "docker" || !strings.Contains(why, "Docker engine answers") {
			t.Fatalf("static binary: %q, %q, %v", got, why, err)
		}
		got, why, err = chooseRuntime(ctx, Config{Runtime: "auto", SupervisorBinary: "/bin/sh"}, nil)
		if err != nil || got != "local" || !strings.Contains(why, "dynamically linked") {
			t.Fatalf("dynamic binary: %q, %q, %v", got, why, err)
		}
		// An installation whose environments run on local stays local
		// when an engine appears (and one on docker stays docker).
		db, err := store.Open(ctx, "", filepath.Join(t.TempDir(), "dev8.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		u, err := db.CreateUser(ctx, store.User{Email: "ada@example.com", Name: "Ada", PasswordHash: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateEnvironment(ctx, store.Environment{UserID: u.ID, Name: "old", Runtime: "local", Status: store.StatusStopped}); err != nil {
			t.Fatal(err)
		}
		got, why, err = chooseRuntime(ctx, Config{Runtime: "auto", SupervisorBinary: "/bin/busybox"}, db)
		if err != nil || got != "local" || !strings.Contains(why, "1 environment(s) run on local") {
			t.Fatalf("installation with a local environment: %q, %q, %v", got, why, err)
		}
		// Asked for explicitly, docker with a binary that cannot be a
		// container's supervisor fails at start instead.
		if _, err := New(ctx, Config{DataDir: t.TempDir(), Runtime: "docker", SupervisorBinary: "/bin/sh"}); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
			t.Fatalf("New with --runtime docker and a dynamic binary: %v", err)
		}
	})
}
