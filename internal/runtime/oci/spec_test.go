package oci

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/cgroup"
)

func writeRootfs(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestResolveUser(t *testing.T) {
	rootfs := writeRootfs(t, map[string]string{
		"etc/passwd": "# comment\nroot:x:0:0:root:/root:/bin/sh\nbroken line\nalice:x:1001:1002::/home/alice:/bin/sh\nbob:x:1003:1003::/:/bin/sh\n",
		"etc/group":  "root:x:0:alice\nalice:x:1002:\nstaff:x:50:bob,alice\nvideo:x:44:alice\n",
	})
	cases := []struct {
		user     string
		uid, gid uint32
		add      []uint32
	}{
		{"", 0, 0, nil},
		{"0", 0, 0, nil},
		{"1001", 1001, 1002, []uint32{0, 50, 44}},
		{"alice", 1001, 1002, []uint32{0, 50, 44}},
		{"alice:staff", 1001, 50, nil},
		{"alice:7", 1001, 7, nil},
		{"1000:1000", 1000, 1000, nil},
		{"4242", 4242, 0, nil},
		{"bob", 1003, 1003, []uint32{50}},
	}
	for _, c := range cases {
		uid, gid, add, err := ResolveUser(rootfs, c.user)
		if err != nil || uid != c.uid || gid != c.gid || !slices.Equal(add, c.add) {
			t.Errorf("ResolveUser(%q) = %d, %d, %v, %v; want %d, %d, %v", c.user, uid, gid, add, err, c.uid, c.gid, c.add)
		}
	}
	for _, bad := range []string{"mallory", "alice:nogroup", "1:2:3", "alice:", "99999999999"} {
		if _, _, _, err := ResolveUser(rootfs, bad); !errdefs.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ResolveUser(%q) error = %v, want ErrInvalidArgument", bad, err)
		}
	}

	// Numeric ids work without /etc/passwd and /etc/group.
	empty := t.TempDir()
	if uid, gid, add, err := ResolveUser(empty, "1000:1000"); err != nil || uid != 1000 || gid != 1000 || add != nil {
		t.Errorf("numeric user without passwd: %d %d %v %v", uid, gid, add, err)
	}
	if _, _, _, err := ResolveUser(empty, "alice"); !errdefs.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("named user without passwd: %v", err)
	}

	// An image cannot make Skiff read the host's files through a symlink.
	host := writeRootfs(t, map[string]string{"passwd": "hostonly:x:77:77::/:/bin/sh\n"})
	evil := t.TempDir()
	if err := os.MkdirAll(filepath.Join(evil, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(host, "passwd"), filepath.Join(evil, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	if uid, _, _, err := ResolveUser(evil, "hostonly"); err == nil {
		t.Errorf("resolved user through a symlink out of the rootfs: uid %d", uid)
	}
}

func baseConfig(t *testing.T) ContainerConfig {
	return ContainerConfig{
		ID: "c1", Hostname: "grp", RootfsPath: writeRootfs(t, nil), Args: []string{"sh"},
		CgroupsPath: "/skiff/grp/c1",
	}
}

func TestSpecValidation(t *testing.T) {
	bad := map[string]func(*ContainerConfig){
		"no id":           func(c *ContainerConfig) { c.ID = "" },
		"relative rootfs": func(c *ContainerConfig) { c.RootfsPath = "rootfs" },
		"no args":         func(c *ContainerConfig) { c.Args = nil },
		"relative cwd":    func(c *ContainerConfig) { c.Cwd = "app" },
		"bad env":         func(c *ContainerConfig) { c.Env = []string{"NOVALUE"} },
		"negative memory": func(c *ContainerConfig) { c.MemoryLimitBytes = -1 },
		"negative cpu":    func(c *ContainerConfig) { c.CPULimit = -0.5 },
		"tiny cpu":        func(c *ContainerConfig) { c.CPULimit = 0.001 },
		"negative pids":   func(c *ContainerConfig) { c.PidsLimit = -5 },
		"cgroup escape":   func(c *ContainerConfig) { c.CgroupsPath = "/skiff/../../etc" },
		"mount on /":      func(c *ContainerConfig) { c.Mounts = []Mount{{Source: "/tmp", Destination: "/"}} },
		"relative source": func(c *ContainerConfig) { c.Mounts = []Mount{{Source: "tmp", Destination: "/data"}} },
		"unknown user":    func(c *ContainerConfig) { c.User = "nobody-here" },
		"unknown cap": func(c *ContainerConfig) {
			c.Security = &api.SecurityContext{Capabilities: &api.Capabilities{Add: []string{"CAP_FLY"}}}
			c.Policy = allowAll
		},
		"bad runAsUser": func(c *ContainerConfig) { v := int64(-1); c.Security = &api.SecurityContext{RunAsUser: &v} },
		"seccomp not b64": func(c *ContainerConfig) {
			c.Security, c.Policy = &api.SecurityContext{SeccompProfile: "{not base64"}, allowAll
		},
		"seccomp not json": func(c *ContainerConfig) {
			c.Security = &api.SecurityContext{SeccompProfile: base64.StdEncoding.EncodeToString([]byte("nope"))}
			c.Policy = allowAll
		},
		"oom score": func(c *ContainerConfig) { v := 5000; c.OOMScoreAdj = &v },
	}
	for name, mutate := range bad {
		cfg := baseConfig(t)
		mutate(&cfg)
		if _, err := Spec(cfg); !errdefs.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: error = %v, want ErrInvalidArgument", name, err)
		}
	}
	if _, err := Spec(baseConfig(t)); err != nil {
		t.Fatalf("valid config: %v", err)
	}
}

func mountDests(s *specs.Spec) []string {
	var out []string
	for _, m := range s.Mounts {
		out = append(out, m.Destination)
	}
	return out
}

func TestSpecDefaults(t *testing.T) {
	cfg := baseConfig(t)
	cfg.Env = []string{"FOO=bar"}
	cfg.CPUShares = 0.001
	cfg.CPULimit = 1.5
	cfg.MemoryLimitBytes = 64 << 20
	cfg.HostsFile, cfg.ResolvConfFile, cfg.HostnameFile = "/h/hosts", "/h/resolv.conf", "/h/hostname"
	cfg.Mounts = []Mount{
		{Source: "/v/c", Destination: "/a/b/c"},
		{Source: "/v/etc", Destination: "/etc/hosts"}, // a volume replaces the generated file
		{Source: "/v/a", Destination: "/a/", ReadOnly: true},
		{Source: "/v/b", Destination: "/a/b"},
	}
	s, err := Spec(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Process
	if p.Cwd != "/" || !p.NoNewPrivileges || p.Terminal || s.Hostname != "grp" || s.Root.Path != cfg.RootfsPath || s.Root.Readonly {
		t.Errorf("process/root defaults wrong: %+v %+v", p, s.Root)
	}
	if !slices.Equal(p.Env, []string{"PATH=" + DefaultPath, "FOO=bar", "HOSTNAME=grp"}) {
		t.Errorf("env = %v", p.Env)
	}
	if p.Capabilities.Inheritable != nil || p.Capabilities.Ambient != nil || len(p.Capabilities.Bounding) != 14 ||
		!slices.Equal(p.Capabilities.Bounding, p.Capabilities.Effective) || !slices.Equal(p.Capabilities.Bounding, p.Capabilities.Permitted) {
		t.Errorf("capabilities = %+v", p.Capabilities)
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if len(p.Rlimits) != 1 || p.Rlimits[0].Hard > rl.Max || p.Rlimits[0].Hard > 1024 || p.Rlimits[0].Soft != p.Rlimits[0].Hard {
		t.Errorf("rlimits = %+v (host hard %d)", p.Rlimits, rl.Max)
	}

	want := []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup",
		"/a", "/etc/resolv.conf", "/etc/hostname", "/etc/hosts", "/a/b", "/a/b/c"}
	if got := mountDests(s); !slices.Equal(got, want) {
		t.Errorf("mount order = %v\nwant %v", got, want)
	}
	for _, m := range s.Mounts {
		if m.Destination == "/etc/hosts" && m.Source != "/v/etc" {
			t.Errorf("/etc/hosts comes from %s, want the volume", m.Source)
		}
		if m.Destination == "/a" && !slices.Contains(m.Options, "ro") {
			t.Errorf("read-only volume options %v", m.Options)
		}
		if m.Destination == "/a/b" && (slices.Contains(m.Options, "ro") || !slices.Contains(m.Options, "rbind") || !slices.Contains(m.Options, "rprivate")) {
			t.Errorf("rw volume options %v", m.Options)
		}
	}

	r := s.Linux.Resources
	if *r.CPU.Shares != 2 || *r.CPU.Quota != 150000 || *r.CPU.Period != 100000 {
		t.Errorf("cpu = shares %d quota %d period %d", *r.CPU.Shares, *r.CPU.Quota, *r.CPU.Period)
	}
	if *r.Memory.Limit != 64<<20 || r.Memory.Kernel != nil || r.Memory.Swappiness != nil {
		t.Errorf("memory = %+v", r.Memory)
	}
	if r.Pids.Limit != DefaultPidsLimit {
		t.Errorf("pids = %d", r.Pids.Limit)
	}
	if r.Devices[0].Allow || r.Devices[0].Access != "rwm" || r.Devices[0].Type != "" {
		t.Errorf("first device rule is not deny-all: %+v", r.Devices[0])
	}
	if len(s.Linux.Devices) != 0 {
		t.Errorf("spec passes host devices: %+v", s.Linux.Devices)
	}
	nsTypes := map[specs.LinuxNamespaceType]string{}
	for _, n := range s.Linux.Namespaces {
		nsTypes[n.Type] = n.Path
	}
	for _, typ := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace, specs.NetworkNamespace} {
		if p, ok := nsTypes[typ]; !ok || p != "" {
			t.Errorf("namespace %s missing or joined (%q)", typ, p)
		}
	}
	if len(s.Linux.MaskedPaths) != 11 || len(s.Linux.ReadonlyPaths) != 5 || s.Linux.Seccomp == nil {
		t.Errorf("masked %v readonly %v seccomp nil=%v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths, s.Linux.Seccomp == nil)
	}
}

// hasSyscall reports whether an allow rule in the profile names syscall.
func hasSyscall(s *specs.Spec, name string) bool {
	for _, sc := range s.Linux.Seccomp.Syscalls {
		if sc.Action == specs.ActAllow && slices.Contains(sc.Names, name) {
			return true
		}
	}
	return false
}

// allowAll is the operator policy of --allow-privileged --allow-custom-seccomp.
var allowAll = api.SecurityPolicy{AllowPrivileged: true, AllowCustomSeccomp: true}

func TestSpecSecurityContext(t *testing.T) {
	// The default seccomp profile follows the capability set.
	cfg := baseConfig(t)
	cfg.Policy = allowAll
	s, err := Spec(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if hasSyscall(s, "mount") {
		t.Errorf("default profile allows mount without CAP_SYS_ADMIN")
	}
	cfg.Security = &api.SecurityContext{Capabilities: &api.Capabilities{Add: []string{"sys_admin"}, Drop: []string{"CAP_MKNOD"}}}
	s, err = Spec(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !hasSyscall(s, "mount") {
		t.Errorf("profile with CAP_SYS_ADMIN does not allow mount")
	}
	caps := s.Process.Capabilities.Bounding
	if !slices.Contains(caps, "CAP_SYS_ADMIN") || slices.Contains(caps, "CAP_MKNOD") || len(caps) != 14 {
		t.Errorf("add SYS_ADMIN drop MKNOD: %v", caps)
	}

	// drop ALL, add one.
	cfg.Security = &api.SecurityContext{Capabilities: &api.Capabilities{Add: []string{"NET_BIND_SERVICE"}, Drop: []string{"ALL"}}}
	if s, err = Spec(cfg); err != nil || !slices.Equal(s.Process.Capabilities.Effective, []string{"CAP_NET_BIND_SERVICE"}) {
		t.Errorf("drop ALL add NET_BIND_SERVICE: %v %v", s.Process.Capabilities, err)
	}

	// A capability the host cannot grant is refused, not passed to runc.
	host := hostCapabilities()
	cfg.Security = &api.SecurityContext{Capabilities: &api.Capabilities{Add: []string{"SYS_RESOURCE"}}}
	_, err = Spec(cfg)
	if slices.Contains(host, "CAP_SYS_RESOURCE") != (err == nil) {
		t.Errorf("add SYS_RESOURCE (host has it: %v): %v", slices.Contains(host, "CAP_SYS_RESOURCE"), err)
	}

	// Privileged: every host capability, no seccomp, no masking, rw /sys,
	// but still no host devices and the device cgroup.
	yes, no := true, false
	cfg.Security = &api.SecurityContext{Privileged: &yes}
	s, err = Spec(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Process.Capabilities.Bounding, host) || s.Linux.Seccomp != nil || s.Linux.MaskedPaths != nil ||
		s.Linux.ReadonlyPaths != nil || s.Process.NoNewPrivileges || len(s.Linux.Devices) != 0 || s.Linux.Resources.Devices[0].Allow {
		t.Errorf("privileged spec: caps %v seccomp %v masked %v nnp %v", s.Process.Capabilities.Bounding, s.Linux.Seccomp != nil, s.Linux.MaskedPaths, s.Process.NoNewPrivileges)
	}
	cfg.Security = &api.SecurityContext{Privileged: &yes, AllowPrivilegeEscalation: &no}
	if s, _ = Spec(cfg); !s.Process.NoNewPrivileges {
		t.Errorf("privileged with allowPrivilegeEscalation=false lost no-new-privileges")
	}

	// A custom profile replaces the default one.
	prof := `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}`
	cfg.Security = &api.SecurityContext{SeccompProfile: base64.StdEncoding.EncodeToString([]byte(prof))}
	if s, err = Spec(cfg); err != nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno || len(s.Linux.Seccomp.Syscalls) != 1 {
		t.Errorf("custom profile: %+v %v", s.Linux.Seccomp, err)
	}
}

func TestWriteBundle(t *testing.T) {
	s, err := Spec(baseConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "b")
	if err := WriteBundle(dir, s); err != nil {
		t.Fatal(err)
	}
	if err := WriteBundle(dir, s); err != nil { // overwrite
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "config.json" {
		t.Fatalf("bundle dir holds %v", entries)
	}
	fi, _ := os.Stat(filepath.Join(dir, "config.json"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config.json mode %v, want 0600 (env may hold secrets)", fi.Mode())
	}
	b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	var back specs.Spec
	if err := json.Unmarshal(b, &back); err != nil || back.Process.Args[0] != "sh" {
		t.Errorf("config.json does not round-trip: %v", err)
	}
}

func TestCgroupHelpersOnMissingCgroup(t *testing.T) {
	p := "/skiff-ocitest-absent/x"
	if cgroup.CgroupExists(p) {
		t.Errorf("CgroupExists of a missing cgroup")
	}
	if n, err := cgroup.CountCgroups(p); n != 0 || err != nil {
		t.Errorf("CountCgroups of a missing cgroup = %d, %v", n, err)
	}
	if _, err := cgroup.OOMKilled(p); !errdefs.Is(err, errdefs.ErrNotFound) {
		t.Errorf("OOMKilled of a missing cgroup: %v", err)
	}
	if err := cgroup.RemoveCgroup(p); err != nil {
		t.Errorf("RemoveCgroup of a missing cgroup: %v", err)
	}
	if _, err := cgroup.OOMKilled("/../etc"); !errdefs.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("OOMKilled of an escaping path: %v", err)
	}
}

// TestSpecPolicyRefuses: without the operator's policy, Spec refuses
// privileged containers, capabilities beyond the default set and custom
// seccomp profiles (defence in depth behind the API), and still allows
// dropping capabilities and adding default ones.
func TestSpecPolicyRefuses(t *testing.T) {
	yes := true
	prof := base64.StdEncoding.EncodeToString([]byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`))
	for _, tc := range []struct {
		name string
		sc   *api.SecurityContext
		code string
	}{
		{"privileged", &api.SecurityContext{Privileged: &yes}, api.CodePrivilegedNotAllowed},
		{"add SYS_ADMIN", &api.SecurityContext{Capabilities: &api.Capabilities{Add: []string{"SYS_ADMIN"}}}, api.CodeCapabilityNotAllowed},
		{"add ALL", &api.SecurityContext{Capabilities: &api.Capabilities{Add: []string{"ALL"}}}, api.CodeCapabilityNotAllowed},
		{"custom seccomp", &api.SecurityContext{SeccompProfile: prof}, api.CodeSeccompProfileNotAllowed},
	} {
		cfg := baseConfig(t)
		cfg.Security = tc.sc
		_, err := Spec(cfg)
		if !errdefs.Is(err, errdefs.ErrInvalidArgument) || errdefs.CodeOf(err) != tc.code {
			t.Errorf("%s without policy: %v (code %q), want %s", tc.name, err, errdefs.CodeOf(err), tc.code)
		}
	}
	no := false
	cfg := baseConfig(t)
	cfg.Security = &api.SecurityContext{Privileged: &no, Capabilities: &api.Capabilities{Add: []string{"net_bind_service"}, Drop: []string{"ALL"}}}
	s, err := Spec(cfg)
	if err != nil || !slices.Equal(s.Process.Capabilities.Bounding, []string{"CAP_NET_BIND_SERVICE"}) {
		t.Errorf("drop ALL, add a default capability, privileged false: %v %v", err, s)
	}
}
