// Package mounts answers whether a directory tree holds mount points
// without reading /proc/self/mountinfo, whose cost grows with the host's
// whole mount table (three mounts per group: a thousand groups make it
// thousands of lines, read on every call).
package mounts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Unmount unmounts target (not following a symlink there), detaching it
// lazily when it is busy. A target that is not (or no longer) a mount
// point, or does not exist, is fine.
func Unmount(target string) error {
	err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
	switch {
	case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EBUSY):
		if err := unix.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("lazy unmount %s: %w", target, err)
		}
		return nil
	default:
		return fmt.Errorf("unmount %s: %w", target, err)
	}
}

// Free reports whether nothing is mounted at dir or at any directory below
// it. It walks the tree and asks of each directory whether it is a mount
// point (mountinfo.Mounted: one openat2 with RESOLVE_NO_XDEV, so bind mounts
// of the same file system count too). A dir that does not exist is free.
// Any error reading the tree makes the answer false: callers then fall back
// to mountinfo, never to deleting through a mount.
func Free(dir string) bool {
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return true
	}
	free := true
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if mounted, err := mountinfo.Mounted(path); err != nil || mounted {
			free = false
			return filepath.SkipAll
		}
		return nil
	})
	return err == nil && free
}
