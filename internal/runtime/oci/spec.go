// Package oci builds the OCI runtime spec (config.json) for one container of
// a container group, hardened by default the way containerd and Docker
// harden theirs, and inspects the container's cgroups afterwards.
//
// An unprivileged container gets: its own pid, ipc, uts, mount and (where the
// kernel has it) cgroup namespaces, and the group's network namespace;
// containerd's default capabilities; no-new-privileges; moby's default
// seccomp profile; masked and read-only /proc paths; read-only /sys and
// /sys/fs/cgroup; no host devices (runc creates the standard nodes) and a
// device cgroup that denies everything else; RLIMIT_NOFILE 1024 (or the
// host's hard limit if lower); a pids limit of 4096 unless told otherwise.
//
// Privileged containers, capabilities beyond the default set and custom
// seccomp profiles are refused unless ContainerConfig.Policy allows them.
//
// A privileged container (securityContext.privileged) gets every capability
// the host can grant, no seccomp filter, no masked or read-only /proc paths,
// writable /sys and /sys/fs/cgroup, and privilege escalation unless
// allowPrivilegeEscalation is false. It still gets no host devices and the
// same device cgroup: Skiff runs untrusted images on a shared host and has no
// use for its disks or other devices, so "privileged" means full power over
// the container's own namespaces, not access to the host's hardware.
package oci

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/atomicfile"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/cgroup"
	"github.com/skiff-sh/skiff/internal/runtime/userns"
)

// Defaults applied by Spec.
const (
	// DefaultPath is the PATH a container gets when its env has none.
	DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// DefaultPidsLimit is the pids limit when ContainerConfig.PidsLimit is 0.
	DefaultPidsLimit = 4096
	// DefaultNofile is the RLIMIT_NOFILE soft and hard limit; Spec lowers it
	// to the host's hard limit when that is smaller (root here lacks
	// CAP_SYS_RESOURCE, so the spec may never ask for more).
	DefaultNofile = 1024
	// cpuPeriod is the CFS period used for CPU limits, in microseconds.
	cpuPeriod = 100000
)

// Mount is a host path bind-mounted into the container.
type Mount struct {
	// Source is the absolute host path.
	Source string
	// Destination is the absolute path inside the container.
	Destination string
	// ReadOnly mounts it read-only.
	ReadOnly bool
}

// ContainerConfig is everything Spec needs to know about one container.
type ContainerConfig struct {
	// ID is the container's runtime id.
	ID string
	// Hostname is the group name; it becomes the UTS hostname and $HOSTNAME.
	Hostname string
	// RootfsPath is the absolute path of the unpacked root filesystem.
	RootfsPath string
	// Args is the command line (entrypoint + command).
	Args []string
	// Env holds "KEY=value" entries.
	Env []string
	// Cwd is the working directory; "/" when empty.
	Cwd string
	// User is the image-config user: "", "uid", "uid:gid", "name" or "name:group".
	User string
	// NetNSPath is the group's network namespace to join (e.g.
	// /var/run/netns/x); empty gives the container a fresh empty one.
	NetNSPath string
	// CgroupsPath is the cgroupfs-form path, e.g. "/skiff/<group>/<container>".
	CgroupsPath string
	// CPULimit caps CPU in cores (CFS quota); 0 means no cap.
	CPULimit float64
	// CPUShares is the CPU request in cores (1024 shares per core); 0 leaves
	// the runtime's default.
	CPUShares float64
	// MemoryLimitBytes caps memory; swap is disabled for the container. 0
	// means no cap.
	MemoryLimitBytes int64
	// PidsLimit caps the number of tasks; 0 means DefaultPidsLimit.
	PidsLimit int64
	// Mounts are the volume bind mounts.
	Mounts []Mount
	// HostsFile, ResolvConfFile and HostnameFile are host files bind-mounted
	// (read-write, like Docker's) to /etc/hosts, /etc/resolv.conf and
	// /etc/hostname; empty ones are skipped. A volume on the same
	// destination takes precedence.
	HostsFile, ResolvConfFile, HostnameFile string
	// Terminal allocates a pseudo-terminal for the process.
	Terminal bool
	// OOMScoreAdj optionally sets the process's oom_score_adj (-1000..1000).
	// Lowering it below the runtime's own value needs CAP_SYS_RESOURCE.
	OOMScoreAdj *int
	// Security is the container's securityContext, if any.
	Security *api.SecurityContext
	// UserNSPath is the group's user namespace (package userns) to join
	// before NetNSPath, which it owns; IDMap is its mapping. Empty: the
	// container runs in the host's user namespace.
	UserNSPath string
	IDMap      userns.Mapping
	// Policy is what the operator allows beyond the defaults; Spec refuses
	// a Security that asks for more (privileged, added capabilities, a
	// custom seccomp profile), whatever the API let through.
	Policy api.SecurityPolicy
}

// Spec builds the hardened OCI runtime spec for cfg. Invalid input is an
// errdefs.ErrInvalidArgument.
func Spec(cfg ContainerConfig) (*specs.Spec, error) {
	if err := validate(cfg); err != nil {
		return nil, err
	}
	if err := api.CheckSecurityContext(fmt.Sprintf("container '%s'", cfg.ID), cfg.Security, cfg.Policy); err != nil {
		return nil, err
	}
	sc := cfg.Security
	if sc == nil {
		sc = &api.SecurityContext{}
	}
	privileged := sc.Privileged != nil && *sc.Privileged

	// User.
	user := cfg.User
	if sc.RunAsUser != nil {
		id, err := checkID("runAsUser", *sc.RunAsUser)
		if err != nil {
			return nil, err
		}
		user = strconv.FormatUint(uint64(id), 10)
	}
	uid, gid, addGids, err := ResolveUser(cfg.RootfsPath, user)
	if err != nil {
		return nil, err
	}
	if sc.RunAsGroup != nil {
		id, err := checkID("runAsGroup", *sc.RunAsGroup)
		if err != nil {
			return nil, err
		}
		gid = id
	}
	if cfg.UserNSPath != "" {
		for _, id := range append([]uint32{uid, gid}, addGids...) {
			if !cfg.IDMap.Contains(int64(id)) {
				return nil, fmt.Errorf("container %s: user or group id %d is outside the container's user namespace (0-%d): %w",
					cfg.ID, id, cfg.IDMap.Size-1, errdefs.ErrInvalidArgument)
			}
		}
	}

	// Capabilities.
	host := hostCapabilities()
	base := slices.DeleteFunc(DefaultCapabilities(), func(c string) bool { return !slices.Contains(host, c) })
	if privileged {
		base = host
	}
	var caps []string
	if sc.Capabilities != nil {
		caps, err = adjustCapabilities(base, host, sc.Capabilities.Add, sc.Capabilities.Drop)
		if err != nil {
			return nil, err
		}
	} else {
		caps = slices.Clone(base)
	}
	if caps == nil {
		caps = []string{}
	}

	noNewPrivs := !privileged
	if sc.AllowPrivilegeEscalation != nil {
		noNewPrivs = !*sc.AllowPrivilegeEscalation
	}

	nofile, err := nofileLimit()
	if err != nil {
		return nil, err
	}

	cwd := cfg.Cwd
	if cwd == "" {
		cwd = "/"
	}

	s := &specs.Spec{
		Version:  specs.Version,
		Hostname: cfg.Hostname,
		Root:     &specs.Root{Path: cfg.RootfsPath, Readonly: false},
		Process: &specs.Process{
			Terminal: cfg.Terminal,
			User:     specs.User{UID: uid, GID: gid, AdditionalGids: addGids},
			Args:     slices.Clone(cfg.Args),
			Env:      buildEnv(cfg.Env, cfg.Hostname),
			Cwd:      cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: slices.Clone(caps),
				Permitted: slices.Clone(caps),
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: nofile, Soft: nofile}},
			NoNewPrivileges: noNewPrivs,
			OOMScoreAdj:     cfg.OOMScoreAdj,
		},
		Mounts: systemMounts(privileged),
		Linux: &specs.Linux{
			CgroupsPath: cfg.CgroupsPath,
			Namespaces:  namespaces(cfg.NetNSPath, cfg.UserNSPath),
			Resources:   resources(cfg),
		},
	}
	if cfg.UserNSPath != "" {
		s.Linux.UIDMappings, s.Linux.GIDMappings = cfg.IDMap.OCI()
	}
	if !privileged {
		s.Linux.MaskedPaths = []string{
			"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
			"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
			"/sys/firmware", "/sys/devices/virtual/powercap",
		}
		s.Linux.ReadonlyPaths = []string{
			"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
		}
	}
	s.Mounts = append(s.Mounts, bindMounts(cfg)...)

	// Seccomp last: the moby profile adapts to the capability set.
	if !privileged {
		if sc.SeccompProfile != "" {
			body, err := decodeProfile(sc.SeccompProfile)
			if err != nil {
				return nil, err
			}
			s.Linux.Seccomp, err = seccomp.LoadProfile(string(body), s)
			if err != nil {
				return nil, fmt.Errorf("seccompProfile: %v: %w", err, errdefs.ErrInvalidArgument)
			}
		} else {
			s.Linux.Seccomp, err = seccomp.GetDefaultProfile(s)
			if err != nil {
				return nil, fmt.Errorf("default seccomp profile: %v: %w", err, errdefs.ErrNotImplemented)
			}
		}
	}
	return s, nil
}

func validate(cfg ContainerConfig) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf(format+": %w", append(a, errdefs.ErrInvalidArgument)...)
	}
	switch {
	case cfg.ID == "":
		return bad("container id is empty")
	case !filepath.IsAbs(cfg.RootfsPath):
		return bad("rootfs path %q is not absolute", cfg.RootfsPath)
	case len(cfg.Args) == 0 || cfg.Args[0] == "":
		return bad("container %s has no command", cfg.ID)
	case cfg.Cwd != "" && !filepath.IsAbs(cfg.Cwd):
		return bad("working directory %q is not absolute", cfg.Cwd)
	case cfg.NetNSPath != "" && !filepath.IsAbs(cfg.NetNSPath):
		return bad("network namespace path %q is not absolute", cfg.NetNSPath)
	case cfg.CgroupsPath != "" && (!strings.HasPrefix(cfg.CgroupsPath, "/") || strings.Contains(cfg.CgroupsPath, "..")):
		return bad("cgroups path %q must be absolute, cgroupfs form", cfg.CgroupsPath)
	case !finiteNonNeg(cfg.CPULimit) || !finiteNonNeg(cfg.CPUShares):
		return bad("cpu values must be finite and not negative")
	case cfg.CPULimit > 0 && cfg.CPULimit*cpuPeriod < 1000:
		return bad("cpu limit %g is below the 0.01 core minimum", cfg.CPULimit)
	case cfg.MemoryLimitBytes < 0:
		return bad("memory limit %d is negative", cfg.MemoryLimitBytes)
	case cfg.PidsLimit < 0:
		return bad("pids limit %d is negative", cfg.PidsLimit)
	case cfg.UserNSPath != "" && (!filepath.IsAbs(cfg.UserNSPath) || !cfg.IDMap.Enabled()):
		return bad("user namespace %q needs an absolute path and a mapping", cfg.UserNSPath)
	case cfg.OOMScoreAdj != nil && (*cfg.OOMScoreAdj < -1000 || *cfg.OOMScoreAdj > 1000):
		return bad("oom_score_adj %d out of range -1000..1000", *cfg.OOMScoreAdj)
	}
	for _, e := range cfg.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return bad("environment entry %q is not KEY=value", e)
		}
	}
	for _, m := range cfg.Mounts {
		if !filepath.IsAbs(m.Source) {
			return bad("mount source %q is not absolute", m.Source)
		}
		if !filepath.IsAbs(m.Destination) || filepath.Clean(m.Destination) == "/" || slices.Contains(strings.Split(m.Destination, "/"), "..") {
			return bad("mount destination %q must be an absolute path below /", m.Destination)
		}
	}
	return nil
}

func finiteNonNeg(f float64) bool { return f >= 0 && !math.IsInf(f, 0) && !math.IsNaN(f) }

func checkID(field string, v int64) (uint32, error) {
	if v < 0 || v >= math.MaxUint32 {
		return 0, fmt.Errorf("%s %d out of range: %w", field, v, errdefs.ErrInvalidArgument)
	}
	return uint32(v), nil
}

// buildEnv returns env plus PATH and HOSTNAME when env lacks them.
func buildEnv(env []string, hostname string) []string {
	out := slices.Clone(env)
	has := func(key string) bool {
		return slices.ContainsFunc(out, func(e string) bool { return strings.HasPrefix(e, key+"=") })
	}
	if !has("PATH") {
		out = append([]string{"PATH=" + DefaultPath}, out...)
	}
	if hostname != "" && !has("HOSTNAME") {
		out = append(out, "HOSTNAME="+hostname)
	}
	return out
}

// nofileLimit is DefaultNofile, or the host's hard limit when lower.
func nofileLimit() (uint64, error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("getrlimit: %v: %w", err, errdefs.ErrUnavailable)
	}
	return min(uint64(DefaultNofile), rl.Max), nil
}

func namespaces(netns, userNS string) []specs.LinuxNamespace {
	var ns []specs.LinuxNamespace
	if userNS != "" {
		ns = append(ns, specs.LinuxNamespace{Type: specs.UserNamespace, Path: userNS})
	}
	ns = append(ns, []specs.LinuxNamespace{
		{Type: specs.PIDNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.MountNamespace},
		{Type: specs.NetworkNamespace, Path: netns},
	}...)
	if _, err := os.Stat("/proc/self/ns/cgroup"); err == nil {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return ns
}

func systemMounts(privileged bool) []specs.Mount {
	ro := "ro"
	if privileged {
		ro = "rw"
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", ro}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", ro}},
	}
}

// bindMounts returns the /etc files and the volumes, ordered so that a
// mount below another comes after it.
func bindMounts(cfg ContainerConfig) []specs.Mount {
	var out []specs.Mount
	volumeAt := func(dst string) bool {
		return slices.ContainsFunc(cfg.Mounts, func(m Mount) bool { return filepath.Clean(m.Destination) == dst })
	}
	for _, f := range []struct{ src, dst string }{
		{cfg.HostsFile, "/etc/hosts"},
		{cfg.ResolvConfFile, "/etc/resolv.conf"},
		{cfg.HostnameFile, "/etc/hostname"},
	} {
		if f.src == "" || volumeAt(f.dst) {
			continue
		}
		out = append(out, specs.Mount{Destination: f.dst, Type: "bind", Source: f.src,
			Options: withSourceFlags(f.src, []string{"rbind", "rprivate", "nosuid", "nodev", "noexec"})})
	}
	for _, m := range cfg.Mounts {
		opts := []string{"rbind", "rprivate"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		out = append(out, specs.Mount{Destination: filepath.Clean(m.Destination), Type: "bind", Source: m.Source,
			Options: withSourceFlags(m.Source, opts)})
	}
	slices.SortStableFunc(out, func(a, b specs.Mount) int { return depth(a.Destination) - depth(b.Destination) })
	return out
}

// withSourceFlags adds to a bind mount's options the flags of the mount its
// source is on (nosuid, nodev, noexec, ro, the atime mode). runc remounts a
// bind mount to apply its options, and inside a user namespace the kernel
// refuses a remount that would clear a flag of the source mount (they are
// locked): a read-only bind of a secret tmpfs (nosuid,nodev,noexec) failed
// with EPERM. Outside one, keeping them is what a bind mount does anyway.
func withSourceFlags(src string, opts []string) []string {
	var st unix.Statfs_t
	if err := unix.Statfs(src, &st); err != nil {
		return opts
	}
	for _, f := range []struct {
		flag int64
		opt  string
	}{
		{unix.ST_NOSUID, "nosuid"}, {unix.ST_NODEV, "nodev"}, {unix.ST_NOEXEC, "noexec"}, {unix.ST_RDONLY, "ro"},
		{unix.ST_NOATIME, "noatime"}, {unix.ST_NODIRATIME, "nodiratime"},
	} {
		if st.Flags&f.flag != 0 && !slices.Contains(opts, f.opt) {
			opts = append(opts, f.opt)
		}
	}
	if st.Flags&(unix.ST_NOATIME|unix.ST_RELATIME) == 0 && !slices.Contains(opts, "strictatime") {
		opts = append(opts, "strictatime")
	}
	return opts
}

func depth(p string) int { return strings.Count(filepath.Clean(p), "/") }

func resources(cfg ContainerConfig) *specs.LinuxResources {
	r := &specs.LinuxResources{Devices: deviceRules()}
	if cfg.CPUShares > 0 || cfg.CPULimit > 0 {
		r.CPU = &specs.LinuxCPU{}
	}
	if cfg.CPUShares > 0 {
		shares := uint64(math.Round(cfg.CPUShares * 1024))
		shares = min(max(shares, 2), 262144)
		r.CPU.Shares = &shares
	}
	if cfg.CPULimit > 0 {
		quota := int64(math.Round(cfg.CPULimit * cpuPeriod))
		period := uint64(cpuPeriod)
		r.CPU.Quota, r.CPU.Period = &quota, &period
	}
	if cfg.MemoryLimitBytes > 0 {
		limit := cfg.MemoryLimitBytes
		r.Memory = &specs.LinuxMemory{Limit: &limit}
		if cgroup.SwapLimitSupported() {
			swap := limit // memory+swap == memory: no swap
			r.Memory.Swap = &swap
		}
	}
	pids := cfg.PidsLimit
	if pids == 0 {
		pids = DefaultPidsLimit
	}
	r.Pids = &specs.LinuxPids{Limit: pids}
	return r
}

// deviceRules denies every device, then allows runc's default set: mknod of
// any device (the node is useless without access), null, zero, full,
// random, urandom, tty, console, ptmx and the pty slaves.
func deviceRules() []specs.LinuxDeviceCgroup {
	i := func(v int64) *int64 { return &v }
	rule := func(typ string, major, minor *int64, access string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: major, Minor: minor, Access: access}
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		rule("c", nil, nil, "m"),
		rule("b", nil, nil, "m"),
		rule("c", i(1), i(3), "rwm"),  // /dev/null
		rule("c", i(1), i(5), "rwm"),  // /dev/zero
		rule("c", i(1), i(7), "rwm"),  // /dev/full
		rule("c", i(1), i(8), "rwm"),  // /dev/random
		rule("c", i(1), i(9), "rwm"),  // /dev/urandom
		rule("c", i(5), i(0), "rwm"),  // /dev/tty
		rule("c", i(5), i(1), "rwm"),  // /dev/console
		rule("c", i(5), i(2), "rwm"),  // /dev/ptmx
		rule("c", i(136), nil, "rwm"), // /dev/pts/*
	}
}

// decodeProfile decodes a base64 seccomp profile (standard or raw encoding).
func decodeProfile(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, fmt.Errorf("seccompProfile is not base64: %w", errdefs.ErrInvalidArgument)
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("seccompProfile is not JSON: %w", errdefs.ErrInvalidArgument)
	}
	return b, nil
}

// WriteBundle writes spec as dir/config.json, atomically (temp file, fsync,
// rename, directory fsync) and readable by root only, since the env may
// hold secrets. dir is created if needed.
func WriteBundle(dir string, spec *specs.Spec) error {
	if spec == nil {
		return fmt.Errorf("nil spec: %w", errdefs.ErrInvalidArgument)
	}
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return fmt.Errorf("encode spec: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create bundle dir: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	return nil
}
