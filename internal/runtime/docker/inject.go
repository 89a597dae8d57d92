package docker

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
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
