package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/mounts"
)

// emptyDir sizeLimit is a hard limit, enforced by the kernel rather than
// measured afterwards (the kubelet's way is to evict the pod once a periodic
// du sees the volume over its limit; a write past the limit here fails with
// ENOSPC instead, and there is no window in which the host disk fills):
//
//   - medium Memory: a tmpfs with size=sizeLimit;
//   - on disk: an ext4 filesystem in a sparse image file of its own
//     (Root/<group>/emptydir-img/<name>.img), loop-mounted on the volume's
//     directory. The image takes on disk only what is written to it; its
//     loop device is set to detach itself when the filesystem is unmounted
//     (Release), so nothing is left once the group is gone.
//
// An emptyDir without sizeLimit is a plain directory, as before.

// emptyDirImagesDir holds the filesystem images of size-limited emptyDirs.
const emptyDirImagesDir = "emptydir-img"

// mountEmptyDir makes dir (created, 0777) the emptyDir described by e.
func mountEmptyDir(ctx context.Context, groupDir, dir, name string, e api.EmptyDirVolume) error {
	limit, err := e.SizeLimitBytes()
	if err != nil {
		return fmt.Errorf("sizeLimit %w: %w", err, errdefs.ErrInvalidArgument)
	}
	const flags = unix.MS_NOSUID | unix.MS_NODEV
	switch {
	case e.Medium == api.EmptyDirMediumMemory:
		opts := "mode=0777"
		if limit > 0 {
			opts += fmt.Sprintf(",size=%d", limit)
		}
		if err := unix.Mount("skiff-emptydir", dir, "tmpfs", flags, opts); err != nil {
			return fmt.Errorf("mount tmpfs at %s: %w", dir, err)
		}
		return nil
	case limit > 0:
		img := filepath.Join(groupDir, emptyDirImagesDir, name+".img")
		return mountImage(ctx, img, dir, limit)
	}
	return nil
}

// imageSize is the size of a filesystem image whose free space is about
// limit: ext4 as made by makeFS keeps about 3.5 % for inode tables and
// bitmaps, plus a few blocks.
func imageSize(limit int64) int64 {
	size := limit + limit/25 + 256<<10
	return (size + 4095) &^ 4095
}

// mountImage makes a sparse image of imageSize(limit) at img, an ext4
// filesystem on it, and mounts it on dir through a loop device that
// detaches itself on unmount.
func mountImage(ctx context.Context, img, dir string, limit int64) (retErr error) {
	if err := os.MkdirAll(filepath.Dir(img), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(img, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", img, err)
	}
	err = f.Truncate(imageSize(limit))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("size %s: %w", img, err)
	}
	if err := makeFS(ctx, img); err != nil {
		return err
	}
	loop, err := attachLoop(img)
	if err != nil {
		return err
	}
	// Until the filesystem is mounted, this descriptor is all that keeps
	// the loop device attached.
	defer loop.Close()
	if err := unix.Mount(loop.Name(), dir, "ext4", unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("mount %s (%s) at %s: %w", loop.Name(), img, dir, err)
	}
	defer func() {
		if retErr != nil {
			_ = mounts.Unmount(dir)
		}
	}()
	if err := os.Chmod(dir, 0o777); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	if err := os.Remove(filepath.Join(dir, "lost+found")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove lost+found: %w", err)
	}
	return nil
}

// makeFS writes an ext4 filesystem to img: the usual block and inode sizes
// at any size (-T default), no reserved blocks, no journal (scratch space
// that does not outlive a host crash), and, the image being a fresh sparse
// file, nothing zeroed (assume_storage_prezeroed: no lazy init writes).
// mke2fs is run as a program: there is no maintained Go library that
// writes ext4.
func makeFS(ctx context.Context, img string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-T", "default", "-m", "0",
		"-O", "^has_journal,^resize_inode", "-E", "nodiscard,assume_storage_prezeroed=1,root_owner=0:0", "--", img)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("an emptyDir sizeLimit on disk needs mkfs.ext4 (Debian package e2fsprogs), which is not installed: %w", errdefs.ErrNotImplemented)
	}
	if err != nil {
		return fmt.Errorf("mkfs.ext4 %s: %v: %s", img, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// attachLoop binds a free loop device to img, set to detach itself when
// its last user (the mount) is gone, and returns it open. The ioctls are
// few and stable (LOOP_CTL_GET_FREE, LOOP_CONFIGURE); a library for them
// would bring more than it saves.
func attachLoop(img string) (*os.File, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("an emptyDir sizeLimit on disk needs loop devices: %v: %w", err, errdefs.ErrNotImplemented)
	}
	defer ctl.Close()
	back, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer back.Close()
	for attempt := 0; ; attempt++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("find a free loop device: %w", err)
		}
		dev, err := os.OpenFile(fmt.Sprintf("/dev/loop%d", n), os.O_RDWR, 0)
		if err == nil {
			cfg := unix.LoopConfig{Fd: uint32(back.Fd())}
			cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
			copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], img)
			if err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg); err == nil {
				return dev, nil
			}
			dev.Close()
		}
		// EBUSY: another attach took it first; ENOENT: its node is not
		// made yet.
		if attempt >= 20 || !(errors.Is(err, unix.EBUSY) || errors.Is(err, os.ErrNotExist)) {
			return nil, fmt.Errorf("attach %s to /dev/loop%d: %w", img, n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
