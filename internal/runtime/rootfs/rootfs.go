// Package rootfs mounts a container's root filesystem: an overlayfs of an
// image's unpacked layers (read-only lower directories) and a per-container
// writable upper directory.
package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/mounts"
)

// Names of the directories Mount creates inside dir.
const (
	UpperDir  = "upper"
	WorkDir   = "work"
	MergedDir = "merged"
	linksDir  = "l"
)

// maxLowerLayers is overlayfs's limit on lower directories.
const maxLowerLayers = 500

// Mount mounts an overlayfs of layers (bottom layer first, as image.Image
// lists them) at dir/merged, with its writable upper layer in dir/upper and
// overlayfs's work directory in dir/work, and returns dir/merged. dir is
// created if needed. A single layer works like any other (the upper layer
// is there anyway).
//
// When the absolute layer paths do not fit in one page of mount options,
// Mount links the layers as dir/l/N and mounts with relative paths from a
// thread whose working directory is dir (as containerd and docker do).
func Mount(layers []string, dir string) (string, error) {
	if len(layers) == 0 {
		return "", fmt.Errorf("rootfs: no layers: %w", errdefs.ErrInvalidArgument)
	}
	if len(layers) > maxLowerLayers {
		return "", fmt.Errorf("rootfs: %d layers, overlayfs allows %d: %w", len(layers), maxLowerLayers, errdefs.ErrInvalidArgument)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("rootfs: %w", err)
	}
	for _, l := range layers {
		if !filepath.IsAbs(l) {
			return "", fmt.Errorf("rootfs: layer path %q is not absolute: %w", l, errdefs.ErrInvalidArgument)
		}
		if strings.ContainsAny(l, ",:\\") {
			return "", fmt.Errorf("rootfs: layer path %q has a character overlayfs options cannot hold: %w", l, errdefs.ErrInvalidArgument)
		}
		if fi, err := os.Stat(l); err != nil {
			return "", fmt.Errorf("rootfs: layer %s: %w: %w", l, errdefs.ErrNotFound, err)
		} else if !fi.IsDir() {
			return "", fmt.Errorf("rootfs: layer %s is not a directory: %w", l, errdefs.ErrInvalidArgument)
		}
	}
	if strings.ContainsAny(dir, ",:\\") {
		return "", fmt.Errorf("rootfs: directory %q has a character overlayfs options cannot hold: %w", dir, errdefs.ErrInvalidArgument)
	}
	merged := filepath.Join(dir, MergedDir)
	if mounted, _ := mountinfo.Mounted(merged); mounted {
		return "", fmt.Errorf("rootfs: %s is mounted already: %w", merged, errdefs.ErrConflict)
	}
	upper := filepath.Join(dir, UpperDir)
	work := filepath.Join(dir, WorkDir)
	for _, d := range []string{dir, upper, work, merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("rootfs: %w", err)
		}
	}
	// The merged root takes the upper directory's attributes: give it the
	// top layer's.
	if err := copyDirAttrs(layers[len(layers)-1], upper); err != nil {
		return "", fmt.Errorf("rootfs: %w", err)
	}

	lower := make([]string, len(layers))
	for i, l := range layers {
		lower[len(layers)-1-i] = l // overlayfs wants the top layer first
	}
	data := options(lower, upper, work)
	if len(data) < unix.Getpagesize() {
		if err := unix.Mount("overlay", merged, "overlay", 0, data); err != nil {
			return "", fmt.Errorf("rootfs: mount overlay at %s: %w", merged, err)
		}
		return merged, nil
	}

	// Too long: short relative paths from dir.
	links := filepath.Join(dir, linksDir)
	if err := os.RemoveAll(links); err != nil {
		return "", fmt.Errorf("rootfs: %w", err)
	}
	if err := os.Mkdir(links, 0o700); err != nil {
		return "", fmt.Errorf("rootfs: %w", err)
	}
	rel := make([]string, len(lower))
	for i, l := range lower {
		name := strconv.Itoa(i)
		if err := os.Symlink(l, filepath.Join(links, name)); err != nil {
			return "", fmt.Errorf("rootfs: %w", err)
		}
		rel[i] = linksDir + "/" + name
	}
	data = options(rel, UpperDir, WorkDir)
	if len(data) >= unix.Getpagesize() {
		return "", fmt.Errorf("rootfs: %d layers do not fit in overlayfs mount options: %w", len(layers), errdefs.ErrInvalidArgument)
	}
	if err := mountFrom(dir, merged, data); err != nil {
		return "", fmt.Errorf("rootfs: mount overlay at %s (from %s): %w", merged, dir, err)
	}
	return merged, nil
}

func options(lower []string, upper, work string) string {
	return "lowerdir=" + strings.Join(lower, ":") + ",upperdir=" + upper + ",workdir=" + work + ",index=off"
}

// mountFrom mounts the overlay with cwd set to dir on a dedicated OS thread
// that has its own filesystem context (unshare CLONE_FS), so the rest of the
// process keeps its working directory. The thread is never returned to the
// Go scheduler: it exits with the goroutine.
func mountFrom(dir, target, data string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // deliberately not unlocked
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare CLONE_FS: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- fmt.Errorf("chdir: %w", err)
			return
		}
		errc <- unix.Mount("overlay", target, "overlay", 0, data)
	}()
	return <-errc
}

// copyDirAttrs gives dst the owner and permission bits of src.
func copyDirAttrs(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Stat(src, &st); err != nil {
		return err
	}
	if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return unix.Chmod(dst, st.Mode&0o7777)
}

// Unmount unmounts dir/merged, and anything else mounted under dir
// (deepest first, detaching lazily what is busy), then removes dir. It is
// idempotent: a dir that is not mounted, or no longer exists, is fine. It
// never removes dir while something is still mounted under it.
func Unmount(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	// The usual case, without reading mountinfo (which costs in proportion
	// to the host's whole mount table): only merged is ever mounted here.
	if done, err := unmountKnown(dir); err != nil || done {
		return err
	}
	for attempt := 0; ; attempt++ {
		found, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
		if err != nil {
			return fmt.Errorf("rootfs: read mounts: %w", err)
		}
		if len(found) == 0 {
			break
		}
		if attempt >= 10 {
			return fmt.Errorf("rootfs: %s stays mounted: %w", found[0].Mountpoint, errdefs.ErrConflict)
		}
		sort.Slice(found, func(i, j int) bool { return len(found[i].Mountpoint) > len(found[j].Mountpoint) })
		for _, m := range found {
			if err := mounts.Unmount(m.Mountpoint); err != nil {
				return fmt.Errorf("rootfs: %w", err)
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("rootfs: remove %s: %w", dir, err)
	}
	return nil
}

// unmountKnown unmounts dir/merged and, when nothing else is mounted at
// or below dir after that (mounts.Free), removes dir and reports done.
// When something is, it leaves dir alone for the caller's mountinfo walk.
func unmountKnown(dir string) (done bool, err error) {
	if err := mounts.Unmount(filepath.Join(dir, MergedDir)); err != nil {
		return false, fmt.Errorf("rootfs: %w", err)
	}
	if !mounts.Free(dir) {
		return false, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return false, fmt.Errorf("rootfs: remove %s: %w", dir, err)
	}
	return true, nil
}
