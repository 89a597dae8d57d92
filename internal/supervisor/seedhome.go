package supervisor

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// SeedHome copies the image's home directory src into dst, the home's new
// (empty) volume, as Docker fills a new volume from the image: dotfiles,
// and the VS Code extensions and settings an image put there, are in the
// workspace from its first start. A dst with anything in it is left alone
// (seeded before, or the user's); a missing src copies nothing. Regular
// files, directories and symbolic links are copied with their permission
// bits; entries that cannot be read are skipped and named on warn, as a
// home that is partly there beats a workspace that does not start. A
// Kubernetes workspace's init container runs it (runtime/kubernetes).
func SeedHome(src, dst string, warn io.Writer) error {
	entries, err := os.ReadDir(dst)
	if err != nil {
		return fmt.Errorf("seed home: %w", err)
	}
	if len(entries) > 0 {
		return nil
	}
	if _, err := os.Lstat(src); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			fmt.Fprintf(warn, "seed home: skipped %s: %v\n", path, err)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			fmt.Fprintf(warn, "seed home: skipped %s: %v\n", path, err)
			return nil
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()|0o700); err != nil {
				return fmt.Errorf("seed home: %w", err)
			}
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err == nil {
				err = os.Symlink(link, target)
			}
			if err != nil {
				fmt.Fprintf(warn, "seed home: skipped %s: %v\n", path, err)
			}
		case d.Type().IsRegular():
			if err := copyFile(path, target, info.Mode().Perm()); err != nil {
				fmt.Fprintf(warn, "seed home: skipped %s: %v\n", path, err)
			}
		}
		return nil
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	return out.Close()
}
