package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"dev8.dev/dev8/internal/runtime"
)

// The tests need a Docker engine (scripts/dockerd.sh starts one) and
// /bin/busybox (busybox-static). Without them they skip, unless CI is set:
// then they fail.
//
// TestMain builds the real dev8 binary (static, as the server ships) to
// inject as the supervisor, and the workspace image testImage: FROM scratch
// with busybox as /bin/busybox and /bin/sh, and /workspace and /home/dev8
// (holding one file) owned by uid 1000.

const testImage = "dev8-test/busybox:latest"

// userImage is testImage's busybox with a dev8 user: see buildTestImage.
const userImage = "dev8-test/busybox-user:latest"

// Environment ids the tests make start with these prefixes (the contract
// suite's own ids start with "rtt-"), so TestMain can remove leftovers.
const idPrefix = "dtt-"

// testInstallation labels what these tests make, so a server under test on
// the same engine (TestEndToEnd) never takes their containers for its own
// orphans, nor they its.
const testInstallation = "dev8-runtime-tests"

var (
	// unavailable says why the tests cannot run; empty when they can.
	unavailable string
	// dev8Bin is the static dev8 binary built for the tests.
	dev8Bin string
	cli     *client.Client
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "dev8-docker-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	if err := setup(tmp); err != nil {
		unavailable = err.Error()
	}
	code := m.Run()
	if cli != nil && unavailable == "" {
		if left := removeLeftovers(); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: the tests left Docker objects behind (now removed): %v\n", left)
			code = 1
		}
	}
	return code
}

func setup(tmp string) error {
	// Building dev8 (client-go and all) from a cold cache on a loaded
	// 2-core machine took more than 3 minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = c.Ping(pctx)
	pcancel()
	if err != nil {
		return fmt.Errorf("no Docker engine answers (run scripts/dockerd.sh): %w", err)
	}
	cli = c
	if _, err := os.Stat("/bin/busybox"); err != nil {
		return fmt.Errorf("busybox-static is needed for the test image (run scripts/dockerd.sh): %w", err)
	}
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	dev8Bin = filepath.Join(tmp, "dev8")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dev8Bin, "./cmd/dev8")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build dev8: %v\n%s", err, out)
	}
	return buildTestImages(ctx, cli)
}

// buildTestImages builds testImage and userImage with engine c's (classic)
// builder.
func buildTestImages(ctx context.Context, c *client.Client) error {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return err
	}
	if err := buildImage(ctx, c, testImage, []buildFile{
		{name: "Dockerfile", mode: 0o644, data: []byte(strings.Join([]string{
			"FROM scratch",
			"COPY busybox /bin/busybox",
			"COPY busybox /bin/sh",
			"COPY --chown=1000:1000 workspace /workspace",
			"COPY --chown=1000:1000 home /home/dev8",
			"ENV PATH=/bin HOME=/home/dev8",
			"",
		}, "\n"))},
		{name: "busybox", mode: 0o755, data: bb},
		{name: "workspace/", mode: 0o755, dir: true},
		{name: "home/", mode: 0o755, dir: true},
		// Shows that a new home volume starts with the image's home.
		{name: "home/seeded-by-image", mode: 0o644, data: []byte("from the image\n")},
	}); err != nil {
		return err
	}
	// userImage has a dev8 user (uid 1000) as Dev8's images do, its home
	// owned by root and no /workspace at all, so the supervisor has to hand
	// both volumes over before it drops to the user.
	return buildImage(ctx, c, userImage, []buildFile{
		{name: "Dockerfile", mode: 0o644, data: []byte(strings.Join([]string{
			"FROM scratch",
			"COPY busybox /bin/busybox",
			"COPY busybox /bin/sh",
			"COPY etc /etc",
			"COPY home /home/dev8",
			"ENV PATH=/bin",
			"",
		}, "\n"))},
		{name: "busybox", mode: 0o755, data: bb},
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\ndev8:x:1000:1000:Dev8:/home/dev8:/bin/sh\n")},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\ndev8:x:1000:\nusers:x:100:dev8\n")},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/.profile", mode: 0o644, data: []byte("# from the image\n")},
	})
}

type buildFile struct {
	name string
	mode int64
	data []byte
	dir  bool
}

func buildImage(ctx context.Context, c *client.Client, tag string, files []buildFile) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Now()}
		if f.dir {
			h.Typeflag = tar.TypeDir
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	resp, err := c.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags:        []string{tag},
		Remove:      true,
		ForceRemove: true,
		Labels:      map[string]string{"dev8.test": "true"},
	})
	if err != nil {
		return fmt.Errorf("build %s: %w", tag, err)
	}
	defer resp.Body.Close()
	var log strings.Builder
	dec := json.NewDecoder(resp.Body)
	for {
		var m struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
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
	if _, err := c.ImageInspect(ctx, tag); err != nil {
		return fmt.Errorf("build %s: %w\n%s", tag, err, log.String())
	}
	return nil
}

// needDocker skips the test when no engine can run it (fails it under CI).
func needDocker(t *testing.T) {
	t.Helper()
	if unavailable == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set but the Docker tests cannot run: %s", unavailable)
	}
	t.Skip(unavailable)
}

func isTestID(id string) bool {
	return strings.HasPrefix(id, idPrefix) || strings.HasPrefix(id, "rtt-")
}

// removeLeftovers removes the containers and volumes of test environments
// and returns their names.
func removeLeftovers() []string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var left []string
	f := filters.NewArgs(filters.Arg("label", runtime.LabelManaged+"=true"))
	if cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f}); err == nil {
		for _, c := range cs {
			if isTestID(c.Labels[runtime.LabelEnvironment]) {
				left = append(left, "container "+strings.Join(c.Names, ","))
				_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
			}
		}
	}
	if vs, err := cli.VolumeList(ctx, volumeListOptions(f)); err == nil {
		for _, v := range vs.Volumes {
			if isTestID(v.Labels[runtime.LabelEnvironment]) {
				left = append(left, "volume "+v.Name)
				_ = cli.VolumeRemove(ctx, v.Name, true)
			}
		}
	}
	return left
}

// For the end-to-end tests in package docker_test, which drive a whole
// server and so cannot live in this package (the server imports it).
var (
	// TestDev8Binary is the static dev8 built for the tests.
	TestDev8Binary = func() string { return dev8Bin }
	// TestImage is the busybox image built for the tests.
	TestImage = testImage
	// TestUserImage is TestImage with a dev8 user (uid 1000).
	TestUserImage = userImage
	// TestUnavailable says why Docker tests cannot run ("" if they can).
	TestUnavailable = func() string { return unavailable }
	// TestBuildImages builds the test images into engine c.
	TestBuildImages = buildTestImages
)
