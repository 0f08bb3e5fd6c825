// Package userns maps container groups' user IDs to an unprivileged range of
// the host, as Docker's userns-remap does: the host has one subordinate ID
// range (an entry in /etc/subuid and /etc/subgid), every group runs in a user
// namespace of its own that maps container IDs 0..Size-1 onto that range,
// and everything a container sees on disk (image layers, volumes, its root
// filesystem's upper directory) is owned through the mapping. Container root
// is then an unprivileged host user: capabilities it holds count only inside
// its own namespaces.
//
// A group's user namespace is created together with its network namespace,
// which it owns (Create): the kernel lets a process mount sysfs, and runc
// join the network namespace after the user namespace, only when the user
// namespace owns the network namespace.
package userns

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// Defaults of the host range.
const (
	// DefaultUser names Skiff's own entry in /etc/subuid and /etc/subgid.
	DefaultUser = "skiff"
	// DefaultSize is the number of IDs a container sees (0..65535).
	DefaultSize = 65536
	// firstSubID is where new ranges start, as useradd's SUB_UID_MIN.
	firstSubID = 100000
)

// Mapping maps container IDs [0, Size) to host UIDs [UID, UID+Size) and host
// GIDs [GID, GID+Size). The zero Mapping maps nothing: no user namespace.
type Mapping struct {
	UID  uint32 `json:"uid"`
	GID  uint32 `json:"gid"`
	Size uint32 `json:"size"`
}

// Enabled reports whether m maps anything.
func (m Mapping) Enabled() bool { return m.Size > 0 }

// String is "UID:GID:SIZE", or "none".
func (m Mapping) String() string {
	if !m.Enabled() {
		return "none"
	}
	return fmt.Sprintf("%d:%d:%d", m.UID, m.GID, m.Size)
}

// HostUID is the host UID of container UID id. IDs outside the mapping land
// on the mapped nobody (65534), or the last mapped ID for a smaller range,
// so that nothing unpacked for a container is ever owned by a host user
// outside its range.
func (m Mapping) HostUID(id int) int { return int(m.UID) + m.clamp(id) }

// HostGID is HostUID for groups.
func (m Mapping) HostGID(id int) int { return int(m.GID) + m.clamp(id) }

func (m Mapping) clamp(id int) int {
	if id >= 0 && id < int(m.Size) {
		return id
	}
	return min(65534, int(m.Size)-1)
}

// ContainerUID is the container UID of host UID id, and whether it is mapped.
func (m Mapping) ContainerUID(id int) (int, bool) {
	c := id - int(m.UID)
	return c, c >= 0 && c < int(m.Size)
}

// ContainerGID is ContainerUID for groups.
func (m Mapping) ContainerGID(id int) (int, bool) {
	c := id - int(m.GID)
	return c, c >= 0 && c < int(m.Size)
}

// Contains reports whether container ID id is mapped.
func (m Mapping) Contains(id int64) bool { return id >= 0 && id < int64(m.Size) }

// OCI returns the runtime spec's uidMappings and gidMappings.
func (m Mapping) OCI() (uids, gids []specs.LinuxIDMapping) {
	return []specs.LinuxIDMapping{{ContainerID: 0, HostID: m.UID, Size: m.Size}},
		[]specs.LinuxIDMapping{{ContainerID: 0, HostID: m.GID, Size: m.Size}}
}

// Parse reads an operator's --userns-remap value: "none" (no user
// namespaces), "default" (Skiff's own range, allocated on first use), a name
// with entries in /etc/subuid and /etc/subgid, or "UID:GID:SIZE".
func Parse(v string) (Mapping, error) {
	return parse(v, "/etc/subuid", "/etc/subgid")
}

func parse(v, subuid, subgid string) (Mapping, error) {
	switch v {
	case "none", "host", "":
		return Mapping{}, nil
	case "default":
		return ensure(DefaultUser, DefaultSize, subuid, subgid)
	}
	if parts := strings.Split(v, ":"); len(parts) == 3 {
		var n [3]uint64
		for i, p := range parts {
			x, err := strconv.ParseUint(p, 10, 32)
			if err != nil {
				return Mapping{}, fmt.Errorf("userns-remap %q: want UID:GID:SIZE: %w", v, errdefs.ErrInvalidArgument)
			}
			n[i] = x
		}
		m := Mapping{UID: uint32(n[0]), GID: uint32(n[1]), Size: uint32(n[2])}
		return m, m.check()
	}
	uid, err := lookup(subuid, v)
	if err != nil {
		return Mapping{}, err
	}
	gid, err := lookup(subgid, v)
	if err != nil {
		return Mapping{}, err
	}
	m := Mapping{UID: uid.start, GID: gid.start, Size: min(uid.size, gid.size)}
	return m, m.check()
}

// check refuses a mapping that would map container IDs onto host root or
// that is too small for images' usual IDs (nobody is 65534).
func (m Mapping) check() error {
	switch {
	case m.UID == 0 || m.GID == 0:
		return fmt.Errorf("userns-remap %s maps onto host root: %w", m, errdefs.ErrInvalidArgument)
	case m.Size < DefaultSize:
		return fmt.Errorf("userns-remap %s has %d IDs, at least %d are needed: %w", m, m.Size, DefaultSize, errdefs.ErrInvalidArgument)
	case uint64(m.UID)+uint64(m.Size) > 1<<32-1 || uint64(m.GID)+uint64(m.Size) > 1<<32-1:
		return fmt.Errorf("userns-remap %s runs past the last ID: %w", m, errdefs.ErrInvalidArgument)
	}
	return nil
}

type subRange struct {
	name        string
	start, size uint32
}

func readSubIDs(path string) ([]subRange, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []subRange
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := strings.Split(line, ":")
		if len(p) != 3 {
			continue
		}
		start, err1 := strconv.ParseUint(p[1], 10, 32)
		size, err2 := strconv.ParseUint(p[2], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, subRange{name: p[0], start: uint32(start), size: uint32(size)})
	}
	return out, sc.Err()
}

func lookup(path, name string) (subRange, error) {
	rs, err := readSubIDs(path)
	if err != nil {
		return subRange{}, fmt.Errorf("userns-remap: %w", err)
	}
	for _, r := range rs {
		if r.name == name {
			return r, nil
		}
	}
	return subRange{}, fmt.Errorf("userns-remap: %q has no entry in %s: %w", name, path, errdefs.ErrNotFound)
}

// ensure returns name's ranges, adding a fresh one of size IDs to both files
// (the first start from 100000 on, in steps of size, that overlaps no entry
// of either file) when either lacks an entry.
func ensure(name string, size uint32, subuid, subgid string) (Mapping, error) {
	uid, uerr := lookup(subuid, name)
	gid, gerr := lookup(subgid, name)
	if uerr == nil && gerr == nil {
		m := Mapping{UID: uid.start, GID: gid.start, Size: min(uid.size, gid.size)}
		return m, m.check()
	}
	var taken []subRange
	for _, p := range []string{subuid, subgid} {
		rs, err := readSubIDs(p)
		if err != nil {
			return Mapping{}, fmt.Errorf("userns-remap: %w", err)
		}
		taken = append(taken, rs...)
	}
	start := uint64(firstSubID)
	for ; start+uint64(size) < 1<<32; start += uint64(size) {
		free := true
		for _, r := range taken {
			if start < uint64(r.start)+uint64(r.size) && uint64(r.start) < start+uint64(size) {
				free = false
				break
			}
		}
		if free {
			break
		}
	}
	entry := fmt.Sprintf("%s:%d:%d\n", name, start, size)
	for _, p := range []string{subuid, subgid} {
		if _, err := lookup(p, name); err == nil {
			continue
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return Mapping{}, fmt.Errorf("userns-remap: %w", err)
		}
		_, werr := f.WriteString(entry)
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return Mapping{}, fmt.Errorf("userns-remap: write %s: %w", p, err)
		}
	}
	return ensure(name, size, subuid, subgid)
}

// Create makes a user namespace with mapping m and a network namespace it
// owns, and bind-mounts them on userPath and netPath (files it creates; an
// existing one is an os.ErrExist error).
//
// A short-lived child holds the namespaces while they are mounted (a
// multithreaded process cannot unshare a user namespace itself):
// util-linux's `unshare --user --net cat`. It is started with vfork, as any
// command is, and makes the namespaces itself, so its start does not copy
// this process's page tables the way a fork into a new user namespace
// would (that costs 8 ms at 100 MiB of heap, 25 ms at 400 MiB). Its cat
// echoes a line once the namespaces exist; then the maps are written and
// the namespace files mounted, and closing its stdin ends it.
func (m Mapping) Create(userPath, netPath string) (retErr error) {
	if !m.Enabled() {
		return fmt.Errorf("userns: no mapping: %w", errdefs.ErrInvalidArgument)
	}
	var made []string
	defer func() {
		if retErr != nil {
			for _, p := range made {
				_ = Remove(p)
			}
		}
	}()
	for _, p := range []string{userPath, netPath} {
		f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if err != nil {
			return err
		}
		f.Close()
		made = append(made, p)
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return fmt.Errorf("userns: %w (util-linux)", err)
	}
	cmd := exec.Command(unshare, "--user", "--net", "--", "cat")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: unix.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("userns: start namespace holder: %w", err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil && retErr == nil {
			retErr = fmt.Errorf("userns: namespace holder: %w", err)
		}
	}()
	// cat runs only after unshare(2) made the namespaces.
	line := make([]byte, 6)
	if _, err := stdin.Write([]byte("ready\n")); err != nil {
		return fmt.Errorf("userns: namespace holder: %w", err)
	}
	if _, err := io.ReadFull(stdout, line); err != nil {
		return fmt.Errorf("userns: namespace holder did not start: %w", err)
	}
	proc := fmt.Sprintf("/proc/%d/", cmd.Process.Pid)
	if err := os.WriteFile(proc+"uid_map", fmt.Appendf(nil, "0 %d %d\n", m.UID, m.Size), 0); err != nil {
		return fmt.Errorf("userns: write uid_map: %w", err)
	}
	if err := os.WriteFile(proc+"gid_map", fmt.Appendf(nil, "0 %d %d\n", m.GID, m.Size), 0); err != nil {
		return fmt.Errorf("userns: write gid_map: %w", err)
	}
	return errors.Join(bind(proc+"ns/user", userPath), bind(proc+"ns/net", netPath))
}

func bind(src, dst string) error {
	if err := unix.Mount(src, dst, "none", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount %s on %s: %w", src, dst, err)
	}
	return nil
}

// Remove unmounts and removes a namespace file; a missing or unmounted one
// is not an error.
func Remove(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// AllowTraverse lets the mapped root group search every directory from dir
// up to /: runc sets up a container's mounts from inside its user
// namespace, as the mapped root, which must be able to reach the root
// filesystem and every bind-mount source. A directory others cannot search
// gets group m.GID and g+x, as Docker's userns-remap does with its data
// root (0710 root:remapped-root); it must be owned by host root with group
// root or m.GID. Nothing is made readable or writable.
func (m Mapping) AllowTraverse(dir string) error {
	if !m.Enabled() {
		return nil
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := dir; ; d = filepath.Dir(d) {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			return fmt.Errorf("userns: %s: %w", d, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Mode&0o001 == 0 &&
			!(st.Gid == m.GID && st.Mode&0o010 != 0) {
			if st.Uid != 0 || (st.Gid != 0 && st.Gid != m.GID) {
				return fmt.Errorf("userns: %s (owner %d:%d, mode %o) cannot be opened to the container's root: %w",
					d, st.Uid, st.Gid, st.Mode&0o7777, errdefs.ErrUnavailable)
			}
			if err := os.Lchown(d, 0, int(m.GID)); err != nil {
				return fmt.Errorf("userns: %w", err)
			}
			if err := os.Chmod(d, fs.FileMode(st.Mode&0o777|0o010)); err != nil {
				return fmt.Errorf("userns: %w", err)
			}
		}
		if d == "/" {
			return nil
		}
	}
}

// Chown gives path (not following a symlink) to container root.
func (m Mapping) Chown(path string) error {
	if !m.Enabled() {
		return nil
	}
	return os.Lchown(path, int(m.UID), int(m.GID))
}

func inRange(id, start, size uint32) bool {
	return id >= start && uint64(id) < uint64(start)+uint64(size)
}

// Shift moves the ownership of every file under root from mapping from to
// mapping m (container IDs stay the same; from may be the zero Mapping, for
// files owned by host IDs as unpacked without a user namespace). It
// restores set-id bits that chown clears. It is how a layer unpacked for
// another mapping is prepared for this one, once. Files owned inside m's
// range already are left alone, so a shift cut short can be run again.
func (m Mapping) Shift(root string, from Mapping) error {
	toContainer := func(id int, base uint32) int {
		if from.Enabled() {
			return id - int(base)
		}
		return id
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if m.Enabled() && inRange(st.Uid, m.UID, m.Size) && inRange(st.Gid, m.GID, m.Size) {
			return nil // shifted already, by a run that did not finish
		}
		uid := toContainer(int(st.Uid), from.UID)
		gid := toContainer(int(st.Gid), from.GID)
		nu, ng := uid, gid
		if m.Enabled() {
			nu, ng = m.HostUID(uid), m.HostGID(gid)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			nu, ng = 0, 0 // an overlay whiteout
		}
		if nu == int(st.Uid) && ng == int(st.Gid) {
			return nil
		}
		if err := os.Lchown(p, nu, ng); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK && st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
			return unix.Chmod(p, st.Mode&0o7777)
		}
		return nil
	})
}
