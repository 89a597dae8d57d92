package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// benchImage is the workspace image of the docker figures: FROM scratch with
// busybox-static, built here (no registry is needed), so the figures measure
// Dev8 and the engine, not an image pull.
const benchImage = "dev8-bench/busybox:latest"

var dockerFigures bool

func init() {
	flag.BoolVar(&dockerFigures, "docker", true, "measure create/resume → SSH-ready on the docker runtime too, when a Docker engine answers and /bin/busybox (busybox-static) exists")
}

// dockerBench: create → SSH-ready and resume → SSH-ready on the docker
// runtime with a present image (SQLite).
func dockerBench(ctx context.Context, o options) error {
	if reason, off := sectionOff("docker", dockerFigures); off {
		results.Skipped = append(results.Skipped, "docker lifecycle figures: "+reason)
		return nil
	}
	dc, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer dc.Close()
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err = dc.Ping(pctx)
	cancel()
	if err != nil {
		results.Skipped = append(results.Skipped, "docker lifecycle figures: no Docker engine answers (scripts/dockerd.sh starts one)")
		return nil
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		results.Skipped = append(results.Skipped, "docker lifecycle figures: no /bin/busybox (apt-get install busybox-static)")
		return nil
	}
	fmt.Println("== lifecycle (docker runtime, sqlite)")
	if err := buildBenchImage(ctx, dc, bb); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "dev8bench-docker-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := server.New(ctx, server.Config{
		DataDir:          dir,
		Runtime:          "docker",
		SupervisorBinary: o.supervisorBinary(),
		ReaperInterval:   time.Hour,
		ResyncInterval:   time.Hour,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		BcryptCost:       auth.MinBcryptCost,
		RateLimits:       httpmw.RateLimits{PrincipalRate: -1, IPRate: -1},
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return err
	}
	serveCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(serveCtx, ln) }()
	defer func() {
		// Containers and volumes outlive a server by design: remove them.
		envs, _, _ := srv.Store.ListEnvironments(context.Background(), store.EnvironmentFilter{})
		for _, e := range envs {
			_ = srv.RemoveInstance(context.Background(), e)
		}
		stop()
		<-done
		srv.Close()
	}()
	url := "http://" + ln.Addr().String()
	token, err := userToken(ctx, url, "docker@bench.test")
	if err != nil {
		return err
	}
	c := sdk.New(url, token)
	create, resume, _, err := createResumeRuns(ctx, c, o.runs, 2*time.Minute, "docker ", false,
		func(i int) sdk.CreateEnvironmentRequest {
			return sdk.CreateEnvironmentRequest{Name: fmt.Sprintf("bench-docker-%d", i), BaseImage: benchImage, InstanceType: "lightweight"}
		})
	if err != nil {
		return err
	}
	addFigure(Figure{Section: "1 lifecycle", Name: "create → SSH-ready (docker, image present)", Engine: "sqlite", Unit: "s", Runs: create, Target: "< 1 s"}, create, 1.0, true)
	addFigure(Figure{Section: "1 lifecycle", Name: "stopped → SSH-ready, resume (docker)", Engine: "sqlite", Unit: "s", Runs: resume, Target: "≤ 1.0 s"}, resume, 1.0, true)
	return nil
}

// buildBenchImage builds benchImage: FROM scratch, busybox as /bin/sh.
func buildBenchImage(ctx context.Context, dc *client.Client, busybox []byte) error {
	return buildImage(ctx, dc, benchImage, []buildFile{
		{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY busybox /bin/busybox\nCOPY busybox /bin/sh\nENV PATH=/bin\n")},
		{"busybox", 0o755, busybox},
	})
}

// buildFile is a file of a build context.
type buildFile struct {
	name string
	mode int64
	data []byte
}

// buildImage builds tag from a context of files (a Dockerfile among them),
// labelled dev8.bench.
func buildImage(ctx context.Context, dc *client.Client, tag string, files []buildFile) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	resp, err := dc.ImageBuild(ctx, &buf, build.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true, Labels: map[string]string{"dev8.bench": "true"}})
	if err != nil {
		return fmt.Errorf("build %s: %w", tag, err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	var log strings.Builder
	for {
		var m struct{ Stream, Error string }
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return fmt.Errorf("build %s: %w", tag, err)
		}
		log.WriteString(m.Stream)
		if m.Error != "" {
			return fmt.Errorf("build %s: %s\n%s", tag, m.Error, log.String())
		}
	}
	return nil
}
