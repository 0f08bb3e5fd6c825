package oci

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// hierarchy is one mounted cgroup hierarchy of the host.
type hierarchy struct {
	mountpoint  string
	v2          bool
	controllers []string // v1: the super options naming controllers (e.g. "memory", "name=systemd")
}

// hierarchies lists the cgroup hierarchies mounted in this mount namespace,
// each once, read at call time so the layout (v1, hybrid, v2) is never cached.
func hierarchies() ([]hierarchy, error) {
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %v: %w", err, errdefs.ErrUnavailable)
	}
	seen := map[[2]int]bool{}
	var out []hierarchy
	for _, m := range mounts {
		if m.Root != "/" || seen[[2]int{m.Major, m.Minor}] {
			continue // a bind mount of a sub-cgroup, or a second mount of a hierarchy
		}
		seen[[2]int{m.Major, m.Minor}] = true
		h := hierarchy{mountpoint: m.Mountpoint, v2: m.FSType == "cgroup2"}
		if !h.v2 {
			for _, o := range strings.Split(m.VFSOptions, ",") {
				if o != "rw" && o != "ro" && o != "" {
					h.controllers = append(h.controllers, o)
				}
			}
		}
		out = append(out, h)
	}
	return out, nil
}

// cgroupDir joins a cgroupfs-style path ("/skiff/g/c") onto a hierarchy's
// mount point, refusing paths that climb out of it.
func cgroupDir(h hierarchy, cgroupsPath string) (string, error) {
	clean := filepath.Clean("/" + cgroupsPath)
	if clean == "/" || strings.Contains(cgroupsPath, "..") {
		return "", fmt.Errorf("cgroups path %q: %w", cgroupsPath, errdefs.ErrInvalidArgument)
	}
	return filepath.Join(h.mountpoint, clean), nil
}

// controllerFile returns the path of file in the hierarchy that carries
// controller (v1) or, on a host whose cgroup2 is the only hierarchy with
// controllers, in cgroup2. It reports whether the hierarchy is v2.
func controllerFile(cgroupsPath, controller, v1File, v2File string) (path string, v2 bool, err error) {
	hs, err := hierarchies()
	if err != nil {
		return "", false, err
	}
	for _, h := range hs {
		if !h.v2 && slices.Contains(h.controllers, controller) {
			d, err := cgroupDir(h, cgroupsPath)
			if err != nil {
				return "", false, err
			}
			return filepath.Join(d, v1File), false, nil
		}
	}
	for _, h := range hs {
		if h.v2 {
			d, err := cgroupDir(h, cgroupsPath)
			if err != nil {
				return "", false, err
			}
			return filepath.Join(d, v2File), true, nil
		}
	}
	return "", false, fmt.Errorf("no cgroup hierarchy has the %s controller: %w", controller, errdefs.ErrNotImplemented)
}

// OOMKilled reports whether the kernel OOM killer killed a process in the
// cgroup at cgroupsPath (cgroupfs form, e.g. "/skiff/group/container"). It
// reads the v1 memory controller's memory.oom_control ("oom_kill N") and the
// cgroup2 memory.events ("oom_kill N"), whichever of them exist: on a pure v2
// host /sys/fs/cgroup, on a hybrid one /sys/fs/cgroup/memory and
// /sys/fs/cgroup/unified. Call it before the cgroup is removed (before
// `runc delete`); a cgroup that exists nowhere is an errdefs.ErrNotFound.
func OOMKilled(cgroupsPath string) (bool, error) {
	hs, err := hierarchies()
	if err != nil {
		return false, err
	}
	found := false
	for _, h := range hs {
		var file string
		switch {
		case h.v2:
			file = "memory.events"
		case slices.Contains(h.controllers, "memory"):
			file = "memory.oom_control"
		default:
			continue
		}
		d, err := cgroupDir(h, cgroupsPath)
		if err != nil {
			return false, err
		}
		n, ok, err := readKey(filepath.Join(d, file), "oom_kill")
		if err != nil {
			return false, err
		}
		if ok {
			found = true
			if n > 0 {
				return true, nil
			}
		}
	}
	if !found {
		return false, fmt.Errorf("memory cgroup %s: %w", cgroupsPath, errdefs.ErrNotFound)
	}
	return false, nil
}

// readKey reads "key N" from a flat-keyed cgroup file. ok is false when the
// file or the key does not exist.
func readKey(path, key string) (n uint64, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, false, nil
		}
		return 0, false, fmt.Errorf("read %s: %v: %w", path, err, errdefs.ErrUnavailable)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		if k != key {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("parse %s in %s: %v: %w", key, path, err, errdefs.ErrUnavailable)
		}
		return n, true, nil
	}
	if err := sc.Err(); err != nil {
		return 0, false, fmt.Errorf("read %s: %v: %w", path, err, errdefs.ErrUnavailable)
	}
	return 0, false, nil
}

// CgroupExists reports whether a cgroup directory for cgroupsPath exists in
// any of the host's cgroup hierarchies.
func CgroupExists(cgroupsPath string) bool {
	hs, err := hierarchies()
	if err != nil {
		return false
	}
	for _, h := range hs {
		d, err := cgroupDir(h, cgroupsPath)
		if err != nil {
			return false
		}
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

// CountCgroups counts the cgroup directories at prefix and below it, summed
// over every cgroup hierarchy of the host (each v1 controller hierarchy,
// name=systemd, and cgroup2). Leak tests compare it before and after.
func CountCgroups(prefix string) (int, error) {
	hs, err := hierarchies()
	if err != nil {
		return 0, err
	}
	total := 0
	for _, h := range hs {
		d, err := cgroupDir(h, prefix)
		if err != nil {
			return 0, err
		}
		err = filepath.WalkDir(d, func(_ string, e fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // gone meanwhile, or never there
				}
				return err
			}
			if e.IsDir() {
				total++
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("walk %s: %v: %w", d, err, errdefs.ErrUnavailable)
		}
	}
	return total, nil
}

// RemoveCgroup removes the cgroup at cgroupsPath and every cgroup below it
// from every hierarchy, deepest first (cgroup directories go with rmdir).
// runc removes a container's own cgroup on delete but not the parents it
// created (such as "/skiff/<group>"); this removes those. A missing cgroup
// is not an error; one that still holds processes is an errdefs.ErrConflict.
func RemoveCgroup(cgroupsPath string) error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hs {
		d, err := cgroupDir(h, cgroupsPath)
		if err != nil {
			return err
		}
		var dirs []string
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for _, p := range slices.Backward(dirs) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %v: %w", p, err, errdefs.ErrConflict))
			}
		}
	}
	return errors.Join(errs...)
}
