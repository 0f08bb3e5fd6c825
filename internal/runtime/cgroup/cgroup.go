// Package cgroup reads and changes the host's cgroups (v1, hybrid and v2)
// for the runtime: a leaf package, so that the per-container supervisor
// (cmd/skiff-shim), which needs OOMKilled, carries nothing else.
package cgroup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// hierarchy is one mounted cgroup hierarchy of the host.
type hierarchy struct {
	mountpoint  string
	v2          bool
	controllers []string // v1: the super options naming controllers (e.g. "memory", "name=systemd")
}

// cached holds the hierarchies last read from mountinfo. Reading mountinfo
// costs time in proportion to the host's whole mount table (thousands of
// lines with a thousand groups), and it was read several times per group
// start, so the list is kept and only re-read when one of its mount points
// no longer carries a cgroup file system (a layout that changed under us).
var cached struct {
	sync.Mutex
	hs []hierarchy
}

// hierarchies lists the cgroup hierarchies mounted in this mount namespace,
// each once. The layout (v1, hybrid, v2) is what mountinfo said; the cached
// list is checked with one statfs per hierarchy.
func hierarchies() ([]hierarchy, error) {
	cached.Lock()
	defer cached.Unlock()
	if len(cached.hs) > 0 && stillMounted(cached.hs) {
		return cached.hs, nil
	}
	hs, err := readHierarchies()
	if err != nil {
		return nil, err
	}
	cached.hs = hs
	return hs, nil
}

// stillMounted reports whether every hierarchy's mount point still carries
// the cgroup file system of its version.
func stillMounted(hs []hierarchy) bool {
	for _, h := range hs {
		var st unix.Statfs_t
		if err := unix.Statfs(h.mountpoint, &st); err != nil {
			return false
		}
		want := int64(unix.CGROUP_SUPER_MAGIC)
		if h.v2 {
			want = unix.CGROUP2_SUPER_MAGIC
		}
		if int64(st.Type) != want {
			return false
		}
	}
	return true
}

// readHierarchies reads the cgroup hierarchies from /proc/self/mountinfo.
func readHierarchies() ([]hierarchy, error) {
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

// ControllerFile returns the path of file in the hierarchy that carries
// controller (v1) or, on a host whose cgroup2 is the only hierarchy with
// controllers, in cgroup2. It reports whether the hierarchy is v2.
func ControllerFile(cgroupsPath, controller, v1File, v2File string) (path string, v2 bool, err error) {
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

// CreateSubCgroup creates the cgroup at cgroupsPath in every hierarchy where
// its parent exists (the parent is a container's cgroup), so that a process
// can be put there with `runc exec --cgroup <name>`. In the v1 cpuset
// hierarchy the new cgroup gets its parent's cpus and mems (a cpuset cgroup
// starts empty, and a task cannot join an empty one). Limits stay the
// parent's: cgroups are hierarchical, so what runs in the sub-cgroup counts
// against the container's pids, memory and CPU. A parent that exists nowhere
// is an errdefs.ErrNotFound.
func CreateSubCgroup(cgroupsPath string) error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	created := 0
	for _, h := range hs {
		d, err := cgroupDir(h, cgroupsPath)
		if err != nil {
			return err
		}
		if fi, err := os.Stat(filepath.Dir(d)); err != nil || !fi.IsDir() {
			continue
		}
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create cgroup %s: %v: %w", d, err, errdefs.ErrUnavailable)
		}
		created++
		if h.v2 || !slices.Contains(h.controllers, "cpuset") {
			continue
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			v, err := os.ReadFile(filepath.Join(filepath.Dir(d), f))
			if err == nil {
				err = os.WriteFile(filepath.Join(d, f), v, 0o644)
			}
			if err != nil {
				return fmt.Errorf("cgroup %s: copy %s: %v: %w", d, f, err, errdefs.ErrUnavailable)
			}
		}
	}
	if created == 0 {
		return fmt.Errorf("cgroup %s: its parent exists in no hierarchy: %w", filepath.Dir(cgroupsPath), errdefs.ErrNotFound)
	}
	return nil
}

// KillCgroup kills every process in the cgroup at cgroupsPath and below it,
// and waits until none is left (or ctx ends). Where a cgroup2 hierarchy has
// the cgroup (a pure v2 host, or the unified hierarchy of a hybrid one) its
// cgroup.kill does it in one step that no fork can race; on a v1-only host
// the v1 freezer holds the cgroup still while its processes get SIGKILL. A
// cgroup that exists nowhere has nothing to kill.
func KillCgroup(ctx context.Context, cgroupsPath string) error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	var procDirs []string // where to read what is left
	var kill, freezer string
	for _, h := range hs {
		d, err := cgroupDir(h, cgroupsPath)
		if err != nil {
			return err
		}
		if _, err := os.Stat(d); err != nil {
			continue
		}
		procDirs = append(procDirs, d)
		switch {
		case h.v2:
			if _, err := os.Stat(filepath.Join(d, "cgroup.kill")); err == nil {
				kill = filepath.Join(d, "cgroup.kill")
			}
		case slices.Contains(h.controllers, "freezer"):
			freezer = d
		}
	}
	for {
		pids, err := cgroupPids(procDirs)
		if err != nil || len(pids) == 0 {
			return err
		}
		if kill == "" || os.WriteFile(kill, []byte("1"), 0o644) != nil {
			killPids(freezer, pids)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cgroup %s: %d processes left after SIGKILL: %w", cgroupsPath, len(pids), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// killPids sends SIGKILL to pids, with the v1 freezer cgroup (if any)
// frozen meanwhile so that none of them can fork a process not in the list.
func killPids(freezer string, pids []int) {
	state := func(s string) { _ = os.WriteFile(filepath.Join(freezer, "freezer.state"), []byte(s), 0o644) }
	if freezer != "" {
		state("FROZEN")
		defer state("THAWED")
	}
	for _, pid := range pids {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

// cgroupPids lists the processes in dirs and the cgroups below them.
func cgroupPids(dirs []string) ([]int, error) {
	seen := map[int]bool{}
	var out []int
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if !e.IsDir() {
				return nil
			}
			data, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 0 && !seen[pid] {
					seen[pid] = true
					out = append(out, pid)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list processes of %s: %v: %w", d, err, errdefs.ErrUnavailable)
		}
	}
	return out, nil
}

// SubCgroups lists the names of the cgroups directly below cgroupsPath
// whose names start with prefix, over every hierarchy.
func SubCgroups(cgroupsPath, prefix string) ([]string, error) {
	hs, err := hierarchies()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, h := range hs {
		d, err := cgroupDir(h, cgroupsPath)
		if err != nil {
			return nil, err
		}
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.IsDir() && strings.HasPrefix(e.Name(), prefix) && !slices.Contains(out, e.Name()) {
				out = append(out, e.Name())
			}
		}
	}
	return out, nil
}

// SetPidsLimit creates the cgroup at cgroupsPath (a group's cgroup, the
// parent of its containers' cgroups) in the hierarchy of the pids
// controller and sets its pids.max, so that all the processes of all the
// containers below it together stay within limit. On cgroup v1 (and the
// hybrid layout) that is the v1 pids hierarchy; on a pure cgroup2 host the
// pids controller is enabled on the way down from the root. Calling it again
// is harmless.
func SetPidsLimit(cgroupsPath string, limit int64) error {
	if limit <= 0 {
		return fmt.Errorf("pids limit %d: must be positive: %w", limit, errdefs.ErrInvalidArgument)
	}
	file, v2, err := ControllerFile(cgroupsPath, "pids", "pids.max", "pids.max")
	if err != nil {
		return err
	}
	dir := filepath.Dir(file)
	if v2 {
		// Enable pids in each ancestor's subtree_control, top down.
		hs, err := hierarchies()
		if err != nil {
			return err
		}
		var root string
		for _, h := range hs {
			if h.v2 && strings.HasPrefix(dir, h.mountpoint+"/") {
				root = h.mountpoint
			}
		}
		rel, _ := filepath.Rel(root, dir)
		cur := root
		for _, el := range strings.Split(rel, "/") {
			if err := os.WriteFile(filepath.Join(cur, "cgroup.subtree_control"), []byte("+pids"), 0o644); err != nil {
				return fmt.Errorf("enable pids controller in %s: %v: %w", cur, err, errdefs.ErrUnavailable)
			}
			cur = filepath.Join(cur, el)
			if err := os.Mkdir(cur, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("create cgroup %s: %v: %w", cur, err, errdefs.ErrUnavailable)
			}
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create cgroup %s: %v: %w", dir, err, errdefs.ErrUnavailable)
	}
	if err := os.WriteFile(file, []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		return fmt.Errorf("set %s: %v: %w", file, err, errdefs.ErrUnavailable)
	}
	return nil
}

// Pids reads the number of processes (pids.current) and the limit
// (pids.max; -1 for "max") of the cgroup at cgroupsPath.
func Pids(cgroupsPath string) (current, limit int64, err error) {
	file, _, err := ControllerFile(cgroupsPath, "pids", "pids.current", "pids.current")
	if err != nil {
		return 0, 0, err
	}
	read := func(path string) (int64, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return 0, fmt.Errorf("pids cgroup %s: %w", cgroupsPath, errdefs.ErrNotFound)
			}
			return 0, fmt.Errorf("read %s: %v: %w", path, err, errdefs.ErrUnavailable)
		}
		s := strings.TrimSpace(string(data))
		if s == "max" {
			return -1, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s: %v: %w", path, err, errdefs.ErrUnavailable)
		}
		return n, nil
	}
	if current, err = read(file); err != nil {
		return 0, 0, err
	}
	if limit, err = read(filepath.Join(filepath.Dir(file), "pids.max")); err != nil {
		return 0, 0, err
	}
	return current, limit, nil
}

// PidsMaxEvents is how often a fork in the cgroup at cgroupsPath (or below
// it) failed because this cgroup's own pids.max was reached ("max" in
// pids.events).
func PidsMaxEvents(cgroupsPath string) (uint64, error) {
	file, _, err := ControllerFile(cgroupsPath, "pids", "pids.events", "pids.events")
	if err != nil {
		return 0, err
	}
	n, ok, err := readKey(file, "max")
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("pids cgroup %s: no pids.events: %w", cgroupsPath, errdefs.ErrNotFound)
	}
	return n, nil
}

// SwapLimitSupported reports whether the runtime can be given a swap limit:
// always on cgroup2 (runc ignores a missing memory.swap.max), and on v1 only
// when swap accounting is on (memory.memsw.* exists), since runc fails writing
// a missing memsw file.
func SwapLimitSupported() bool {
	hs, err := hierarchies()
	if err != nil {
		return false
	}
	for _, h := range hs {
		if !h.v2 && slices.Contains(h.controllers, "memory") {
			_, err := os.Stat(filepath.Join(h.mountpoint, "memory.memsw.limit_in_bytes"))
			return err == nil
		}
	}
	return true
}
