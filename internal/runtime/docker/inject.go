package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
)

// copySupervisor copies the supervisor binary into the (created, not
// necessarily running) container at SupervisorPath.
func (r *Runtime) copySupervisor(ctx context.Context, containerID string) error {
	f, err := os.Open(r.cfg.SupervisorBinary)
	if err != nil {
		return fmt.Errorf("supervisor binary: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("supervisor binary: %w", err)
	}
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		now := time.Now()
		err := func() error {
			for _, d := range []string{".dev8/", ".dev8/bin/"} {
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: now}); err != nil {
					return err
				}
			}
			if err := tw.WriteHeader(&tar.Header{
				Typeflag: tar.TypeReg, Name: strings.TrimPrefix(SupervisorPath, "/"),
				Mode: 0o755, Size: fi.Size(), ModTime: now,
			}); err != nil {
				return err
			}
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
			return tw.Close()
		}()
		pw.CloseWithError(err)
	}()
	if err := r.cli.CopyToContainer(ctx, containerID, "/", pr, container.CopyToContainerOptions{}); err != nil {
		pr.CloseWithError(err)
		return fmt.Errorf("copy supervisor into container: %w", err)
	}
	return nil
}

// ensureSupervisor copies the supervisor in unless a file of the same size
// is there already (a Create interrupted before its copy, or a server
// upgraded since).
func (r *Runtime) ensureSupervisor(ctx context.Context, containerID string) error {
	st, err := r.cli.ContainerStatPath(ctx, containerID, SupervisorPath)
	if err == nil && st.Size == r.binSize && st.Mode.IsRegular() {
		return nil
	}
	return r.copySupervisor(ctx, containerID)
}

// copyAgentToken puts token at AgentTokenPath in the (stopped) container,
// readable by the user the container starts as only (root, unless
// Config.User says otherwise): the supervisor reads and removes it before
// it becomes the workspace user. An empty token copies nothing.
func (r *Runtime) copyAgentToken(ctx context.Context, containerID, token string) error {
	if token == "" {
		return nil
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeDir, Name: ".dev8/", Mode: 0o755, ModTime: now},
		tokenHeader(r.cfg.User, len(token), now),
	} {
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	if _, err := tw.Write([]byte(token)); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := r.cli.CopyToContainer(ctx, containerID, "/", &buf, container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("copy agent token into container: %w", err)
	}
	return nil
}

// tokenHeader is the token file's tar header for a container that starts
// as user ("" or root: root's, 0400; "uid[:gid]": theirs, 0400; a name
// only the image knows: 0444, as nobody else runs in such a container).
func tokenHeader(user string, size int, now time.Time) *tar.Header {
	h := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(AgentTokenPath, "/"), Mode: 0o400, Size: int64(size), ModTime: now}
	if isRoot(user) {
		return h
	}
	u, g, hasGID := strings.Cut(user, ":")
	uid, err := strconv.Atoi(u)
	if err != nil {
		h.Mode = 0o444
		return h
	}
	h.Uid, h.Gid = uid, uid
	if gid, err := strconv.Atoi(g); hasGID && err == nil {
		h.Gid = gid
	}
	return h
}
