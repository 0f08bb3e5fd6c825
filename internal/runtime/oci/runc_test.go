package oci

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/runtime/cgroup"
)

// testEnv is one test's rootfs, runc state root and cgroup parent.
type testEnv struct {
	t        *testing.T
	rootfs   string
	runcRoot string
	cgParent string // e.g. /skiff-ocitest-1a2b3c
	n        int
}

func randHex(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// newEnv builds a busybox rootfs (binary + one symlink per applet) with an
// /etc/passwd naming alice (1001:1002, member of staff 50), and registers
// cleanup of the cgroups its containers leave.
func newEnv(t *testing.T) *testEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("these tests run containers with runc and must run as root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatal("runc is not installed (apt-get install runc)")
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("need a static /bin/busybox (apt-get install busybox-static): %v", err)
	}
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "etc", "tmp", "mnt", "proc", "sys", "dev", "root", "data"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nalice:x:1001:1002:Alice:/tmp:/bin/sh\n",
		"etc/group":  "root:x:0:\nalice:x:1002:\nstaff:x:50:bob,alice\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(rootfs, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e := &testEnv{t: t, rootfs: rootfs, runcRoot: filepath.Join(dir, "runc"), cgParent: "/skiff-ocitest-" + randHex(t)}
	t.Cleanup(func() {
		if err := cgroup.RemoveCgroup(e.cgParent); err != nil {
			t.Errorf("remove test cgroups: %v", err)
		}
		if n, err := cgroup.CountCgroups(e.cgParent); err != nil || n != 0 {
			t.Errorf("cgroups left under %s: %d (%v)", e.cgParent, n, err)
		}
	})
	return e
}

// config returns a ContainerConfig for a new container running args.
func (e *testEnv) config(args ...string) ContainerConfig {
	e.n++
	id := fmt.Sprintf("ocitest-%s-%d", randHex(e.t), e.n)
	return ContainerConfig{
		ID:          id,
		Hostname:    "mygroup",
		RootfsPath:  e.rootfs,
		Args:        args,
		CgroupsPath: e.cgParent + "/" + id,
	}
}

func (e *testEnv) runc(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "runc", append([]string{"--root", e.runcRoot}, args...)...)
}

// bundle writes the spec of cfg to a new bundle dir and registers a forced
// delete of the container.
func (e *testEnv) bundle(cfg ContainerConfig) string {
	e.t.Helper()
	s, err := Spec(cfg)
	if err != nil {
		e.t.Fatalf("Spec: %v", err)
	}
	dir := filepath.Join(e.t.TempDir(), "bundle")
	if err := WriteBundle(dir, s); err != nil {
		e.t.Fatalf("WriteBundle: %v", err)
	}
	e.t.Cleanup(func() {
		_ = e.runc(context.Background(), "delete", "--force", cfg.ID).Run()
	})
	return dir
}

// run runs the container in the foreground and returns its output and exit
// code.
func (e *testEnv) run(cfg ContainerConfig) (stdout, stderr string, code int) {
	e.t.Helper()
	dir := e.bundle(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := e.runc(ctx, "run", "--bundle", dir, cfg.ID)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		e.t.Fatalf("runc run: %v", err)
	}
	return out.String(), errb.String(), code
}

// mustRun runs the container and fails the test unless it exits 0.
func (e *testEnv) mustRun(cfg ContainerConfig) string {
	e.t.Helper()
	out, errOut, code := e.run(cfg)
	if code != 0 {
		e.t.Fatalf("%v exited %d\nstdout: %s\nstderr: %s", cfg.Args, code, out, errOut)
	}
	return out
}

// statusFields parses "Key:\tvalue" lines.
func statusFields(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

func TestRuncDefaultUserAndIDs(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		user string
		want []string
	}{
		{"", []string{"uid=0(root)", "gid=0(root)"}},
		{"1000:1000", []string{"uid=1000", "gid=1000"}},
		{"alice", []string{"uid=1001(alice)", "gid=1002(alice)", "50(staff)"}},
		{"alice:staff", []string{"uid=1001(alice)", "gid=50(staff)"}},
	}
	for _, c := range cases {
		cfg := e.config("id")
		cfg.User = c.user
		out := e.mustRun(cfg)
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("user %q: id printed %q, want %q in it", c.user, out, w)
			}
		}
	}
	// runAsUser/runAsGroup override the image user.
	cfg := e.config("id")
	cfg.User = "alice"
	u, g := int64(2000), int64(3000)
	cfg.Security = &api.SecurityContext{RunAsUser: &u, RunAsGroup: &g}
	if out := e.mustRun(cfg); !strings.HasPrefix(out, "uid=2000 gid=3000") {
		t.Errorf("runAsUser 2000 runAsGroup 3000: id printed %q", out)
	}
}

func TestRuncCapabilitiesSeccompNoNewPrivs(t *testing.T) {
	e := newEnv(t)
	const defaultMask = "00000000a80425fb"

	out := e.mustRun(e.config("grep", "-E", "^(Cap|NoNewPrivs|Seccomp:)", "/proc/self/status"))
	f := statusFields(out)
	for k, want := range map[string]string{
		"CapInh": "0000000000000000", "CapPrm": defaultMask, "CapEff": defaultMask,
		"CapBnd": defaultMask, "CapAmb": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2",
	} {
		if f[k] != want {
			t.Errorf("%s = %q, want %q\n%s", k, f[k], want, out)
		}
	}

	// A non-root user keeps the bounding set but holds no capability.
	cfg := e.config("grep", "-E", "^(Cap|NoNewPrivs)", "/proc/self/status")
	cfg.User = "1000:1000"
	f = statusFields(e.mustRun(cfg))
	if f["CapEff"] != "0000000000000000" || f["CapBnd"] != defaultMask || f["NoNewPrivs"] != "1" {
		t.Errorf("uid 1000: CapEff %s CapBnd %s NoNewPrivs %s", f["CapEff"], f["CapBnd"], f["NoNewPrivs"])
	}

	// add NET_ADMIN (bit 12), drop NET_RAW (bit 13); escalation allowed.
	cfg = e.config("grep", "-E", "^(CapEff|NoNewPrivs|Seccomp:)", "/proc/self/status")
	yes := true
	cfg.Security = &api.SecurityContext{
		AllowPrivilegeEscalation: &yes,
		Capabilities:             &api.Capabilities{Add: []string{"NET_ADMIN"}, Drop: []string{"net_raw"}},
	}
	cfg.Policy = api.SecurityPolicy{AllowPrivileged: true} // NET_ADMIN is beyond the default set
	f = statusFields(e.mustRun(cfg))
	if want := fmt.Sprintf("%016x", (uint64(0xa80425fb)|1<<12)&^(1<<13)); f["CapEff"] != want {
		t.Errorf("add NET_ADMIN drop NET_RAW: CapEff %s, want %s", f["CapEff"], want)
	}
	if f["NoNewPrivs"] != "0" || f["Seccomp"] != "2" {
		t.Errorf("allowPrivilegeEscalation=true: NoNewPrivs %s Seccomp %s", f["NoNewPrivs"], f["Seccomp"])
	}
}

func TestRuncCustomSeccompProfile(t *testing.T) {
	e := newEnv(t)
	profile := `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`
	cfg := e.config("sh", "-c", "touch /tmp/file && echo touched; mkdir /tmp/dir && echo made-dir; true")
	cfg.Security = &api.SecurityContext{SeccompProfile: base64.StdEncoding.EncodeToString([]byte(profile))}
	cfg.Policy = api.SecurityPolicy{AllowCustomSeccomp: true}
	out, errOut, _ := e.run(cfg)
	if !strings.Contains(out, "touched") || strings.Contains(out, "made-dir") {
		t.Errorf("custom profile denying mkdir: stdout %q stderr %q", out, errOut)
	}
	// Without the profile mkdir works (the check above can fail).
	out = e.mustRun(e.config("sh", "-c", "mkdir /tmp/dir2 && echo made-dir"))
	if !strings.Contains(out, "made-dir") {
		t.Errorf("default profile: mkdir failed: %q", out)
	}
}

func TestRuncHardening(t *testing.T) {
	e := newEnv(t)
	script := `
mount -t tmpfs none /mnt && echo MOUNT-OK
echo "kcore=[$(head -c 16 /proc/kcore 2>/dev/null | wc -c)]"
echo evil > /proc/sys/kernel/hostname && echo PROCSYS-WRITE-OK
echo x > /sys/kernel/uevent_helper && echo SYS-WRITE-OK
mknod /dev/kvmx c 10 232 && { cat /dev/kvmx 2>&1; true; } | head -c 200 && echo
mknod /dev/sdx b 8 0 && head -c 1 /dev/sdx > /dev/null && echo BLOCKDEV-READ-OK
echo "dev=[$(ls /dev | tr '\n' ' ')]"
echo "pids=[$(ls /proc | grep -E '^[0-9]+$' | tr '\n' ' ')]"
echo "pid1=[$(head -c 2 /proc/1/cmdline)]"
ulimit -n
`
	out, errOut, _ := e.run(e.config("sh", "-c", script))
	t.Logf("stdout:\n%s\nstderr:\n%s", out, errOut)
	for _, bad := range []string{"MOUNT-OK", "PROCSYS-WRITE-OK", "SYS-WRITE-OK", "BLOCKDEV-READ-OK"} {
		if strings.Contains(out, bad) {
			t.Errorf("container could do %s", bad)
		}
	}
	if !strings.Contains(out, "kcore=[0]") {
		t.Errorf("/proc/kcore is readable (not masked)")
	}
	if !strings.Contains(out, "Operation not permitted") {
		t.Errorf("opening a kvm node made with mknod was not denied by the device cgroup")
	}
	allowed := []string{"console", "core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random",
		"shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero", "kvmx", "sdx"}
	devs := strings.Fields(between(out, "dev=[", "]"))
	for _, d := range devs {
		if !slices.Contains(allowed, d) {
			t.Errorf("unexpected /dev entry %q (all: %v)", d, devs)
		}
	}
	for _, d := range []string{"null", "zero", "urandom", "tty", "pts", "shm"} {
		if !slices.Contains(devs, d) {
			t.Errorf("/dev lacks %s (all: %v)", d, devs)
		}
	}
	// Only sh (pid 1) and the pipeline listing /proc are visible.
	pids := strings.Fields(between(out, "pids=[", "]"))
	if len(pids) == 0 || len(pids) > 6 || pids[0] != "1" {
		t.Errorf("container sees pids %v: not only its own", pids)
	}
	if between(out, "pid1=[", "]") != "sh" {
		t.Errorf("pid 1 is not the container's command: %q", between(out, "pid1=[", "]"))
	}
	if !strings.HasSuffix(strings.TrimSpace(out), "\n1024") {
		t.Errorf("ulimit -n is not 1024")
	}
}

func between(s, start, end string) string {
	_, after, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(after, end)
	return v
}

func TestRuncPrivileged(t *testing.T) {
	e := newEnv(t)
	hostStatus, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	hostBnd := statusFields(string(hostStatus))["CapBnd"]
	cfg := e.config("sh", "-c", `mount -t tmpfs none /mnt && echo MOUNT-OK; grep -E '^(CapEff|NoNewPrivs|Seccomp:)' /proc/self/status; echo "dev=[$(ls /dev | tr '\n' ' ')]"`)
	yes := true
	cfg.Security = &api.SecurityContext{Privileged: &yes}
	cfg.Policy = api.SecurityPolicy{AllowPrivileged: true}
	out := e.mustRun(cfg)
	f := statusFields(out)
	if !strings.Contains(out, "MOUNT-OK") {
		t.Errorf("privileged container cannot mount tmpfs: %s", out)
	}
	if f["CapEff"] != hostBnd || f["Seccomp"] != "0" || f["NoNewPrivs"] != "0" {
		t.Errorf("privileged: CapEff %s (host bounding %s) Seccomp %s NoNewPrivs %s", f["CapEff"], hostBnd, f["Seccomp"], f["NoNewPrivs"])
	}
	for _, d := range strings.Fields(between(out, "dev=[", "]")) {
		if strings.HasPrefix(d, "sd") || strings.HasPrefix(d, "vd") || strings.HasPrefix(d, "nvme") || d == "kvm" || d == "mem" {
			t.Errorf("privileged container sees host device %s", d)
		}
	}
}

// readCgroup reads a controller file of the container's cgroup on the host.
func readCgroup(t *testing.T, cgPath, controller, v1File, v2File string) (string, bool) {
	t.Helper()
	p, v2, err := cgroup.ControllerFile(cgPath, controller, v1File, v2File)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return strings.TrimSpace(string(b)), v2
}

// waitStopped polls runc state until the container's process has exited.
func (e *testEnv) waitStopped(id string) {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		out, err := e.runc(context.Background(), "state", id).Output()
		if err != nil {
			e.t.Fatalf("runc state %s: %v", id, err)
		}
		var st struct{ Status string }
		if err := json.Unmarshal(out, &st); err != nil {
			e.t.Fatal(err)
		}
		if st.Status == "stopped" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("container %s still running after 60s", id)
}

// createStart creates the container (so its cgroup exists), calls inspect,
// starts it and waits for it to stop. Output goes to a file, returned.
func (e *testEnv) createStart(cfg ContainerConfig, inspect func()) string {
	e.t.Helper()
	dir := e.bundle(cfg)
	logPath := filepath.Join(e.t.TempDir(), "out")
	logf, err := os.Create(logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := e.runc(ctx, "create", "--bundle", dir, cfg.ID)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(logPath)
		e.t.Fatalf("runc create: %v: %s", err, b)
	}
	inspect()
	if out, err := e.runc(ctx, "start", cfg.ID).CombinedOutput(); err != nil {
		e.t.Fatalf("runc start: %v: %s", err, out)
	}
	e.waitStopped(cfg.ID)
	b, _ := os.ReadFile(logPath)
	return string(b)
}

func TestRuncResourcesAndOOM(t *testing.T) {
	e := newEnv(t)
	const limit = 32 << 20

	// A container within its limits: the limits are in its cgroup, and it
	// is not OOM-killed.
	cfg := e.config("sh", "-c", "echo fine")
	cfg.MemoryLimitBytes, cfg.CPULimit, cfg.CPUShares, cfg.PidsLimit = limit, 0.5, 0.25, 100
	out := e.createStart(cfg, func() {
		if !cgroup.CgroupExists(cfg.CgroupsPath) {
			t.Errorf("cgroup.CgroupExists(%s) = false for a created container", cfg.CgroupsPath)
		}
		// The container's cgroup and its parent, in each of several hierarchies.
		if n, err := cgroup.CountCgroups(e.cgParent); err != nil || n < 2 {
			t.Errorf("cgroup.CountCgroups(%s) = %d, %v for a created container", e.cgParent, n, err)
		}
		if v, v2 := readCgroup(t, cfg.CgroupsPath, "memory", "memory.limit_in_bytes", "memory.max"); v != strconv.Itoa(limit) {
			t.Errorf("memory limit (v2=%v) = %s, want %d", v2, v, limit)
		}
		if v, v2 := readCgroup(t, cfg.CgroupsPath, "memory", "memory.memsw.limit_in_bytes", "memory.swap.max"); (!v2 && v != strconv.Itoa(limit)) || (v2 && v != "0") {
			t.Errorf("swap limit (v2=%v) = %s: swap is not disabled", v2, v)
		}
		if v, v2 := readCgroup(t, cfg.CgroupsPath, "cpu", "cpu.cfs_quota_us", "cpu.max"); (!v2 && v != "50000") || (v2 && v != "50000 100000") {
			t.Errorf("cpu quota (v2=%v) = %s, want 50000 per 100000", v2, v)
		}
		if v, v2 := readCgroup(t, cfg.CgroupsPath, "cpu", "cpu.shares", "cpu.weight"); !v2 && v != "256" {
			t.Errorf("cpu.shares = %s, want 256", v)
		}
		if v, _ := readCgroup(t, cfg.CgroupsPath, "pids", "pids.max", "pids.max"); v != "100" {
			t.Errorf("pids.max = %s, want 100", v)
		}
	})
	if !strings.Contains(out, "fine") {
		t.Errorf("output %q", out)
	}
	if oom, err := cgroup.OOMKilled(cfg.CgroupsPath); err != nil || oom {
		t.Errorf("OOMKilled for a container within its limit = %v, %v", oom, err)
	}

	// tail buffers the endless "line" of /dev/zero until the kernel kills it.
	cfg = e.config("sh", "-c", "tail /dev/zero; echo tail-exit=$?")
	cfg.MemoryLimitBytes = limit
	out = e.createStart(cfg, func() {})
	if !strings.Contains(out, "tail-exit=137") {
		t.Errorf("memory hog was not SIGKILLed: %q", out)
	}
	if oom, err := cgroup.OOMKilled(cfg.CgroupsPath); err != nil || !oom {
		t.Errorf("OOMKilled after exceeding the memory limit = %v, %v", oom, err)
	}
	if err := e.runc(context.Background(), "delete", "--force", cfg.ID).Run(); err != nil {
		t.Fatal(err)
	}
	if cgroup.CgroupExists(cfg.CgroupsPath) {
		t.Errorf("cgroup %s still exists after runc delete", cfg.CgroupsPath)
	}
	if _, err := cgroup.OOMKilled(cfg.CgroupsPath); err == nil {
		t.Errorf("OOMKilled of a deleted cgroup did not fail")
	}
}

func TestRuncPidsLimit(t *testing.T) {
	e := newEnv(t)
	// With 8 tasks allowed, starting 20 sleeps in the background must fail.
	cfg := e.config("sh", "-c", `i=0; while [ $i -lt 20 ]; do sleep 5 & i=$((i+1)); done; echo started-all`)
	cfg.PidsLimit = 8
	out, errOut, _ := e.run(cfg)
	if strings.Contains(out, "started-all") || !strings.Contains(errOut, "can't fork") {
		t.Errorf("20 processes under a pids limit of 8 did not fail to fork: %q %q", out, errOut)
	}
	// The same loop runs with the default limit (the check above can fail).
	cfg = e.config("sh", "-c", `i=0; while [ $i -lt 20 ]; do sleep 5 & i=$((i+1)); done; echo started-all`)
	if out := e.mustRun(cfg); !strings.Contains(out, "started-all") {
		t.Errorf("20 processes under the default pids limit: %q", out)
	}
}

func TestRuncMountsAndEtcFiles(t *testing.T) {
	e := newEnv(t)
	host := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(host, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hosts := write("hosts", "127.0.0.1 localhost\n10.1.2.3 mygroup-marker\n")
	resolv := write("resolv.conf", "nameserver 127.0.0.53\nsearch marker.example\n")
	hostname := write("hostname", "mygroup\n")
	write("ro/file", "read-only-content\n")
	write("rw/.keep", "")
	write("outer/x", "")
	write("inner/marker", "inner-content\n")

	cfg := e.config("sh", "-c", `
cat /etc/hosts /etc/resolv.conf /etc/hostname
echo "hostname=$(hostname) HOSTNAME=$HOSTNAME PATH=$PATH"
cat /data/ro/file
echo nope > /data/ro/new && echo RO-WRITE-OK
echo hello > /data/rw/new && echo RW-WRITE-OK
cat /data/outer/inner/marker
`)
	cfg.HostsFile, cfg.ResolvConfFile, cfg.HostnameFile = hosts, resolv, hostname
	// The inner volume is listed first; Spec must mount it after the outer one.
	cfg.Mounts = []Mount{
		{Source: filepath.Join(host, "inner"), Destination: "/data/outer/inner"},
		{Source: filepath.Join(host, "ro"), Destination: "/data/ro", ReadOnly: true},
		{Source: filepath.Join(host, "rw"), Destination: "/data/rw"},
		{Source: filepath.Join(host, "outer"), Destination: "/data/outer"},
	}
	out, errOut, _ := e.run(cfg)
	for _, want := range []string{"mygroup-marker", "search marker.example", "hostname=mygroup HOSTNAME=mygroup PATH=" + DefaultPath,
		"read-only-content", "RW-WRITE-OK", "inner-content"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q\nstdout: %s\nstderr: %s", want, out, errOut)
		}
	}
	if strings.Contains(out, "RO-WRITE-OK") {
		t.Errorf("wrote to a read-only volume")
	}
	if b, err := os.ReadFile(filepath.Join(host, "rw/new")); err != nil || string(b) != "hello\n" {
		t.Errorf("write to the rw volume not visible on the host: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(host, "ro/new")); err == nil {
		t.Errorf("file appeared in the read-only volume")
	}
}

func TestRuncJoinsNetworkNamespace(t *testing.T) {
	e := newEnv(t)
	name := "skiff-ocitest-" + randHex(t)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete: %v: %s", err, out)
		}
	})
	if out, err := exec.Command("ip", "-n", name, "link", "add", "skd0", "type", "veth", "peer", "name", "skd1").CombinedOutput(); err != nil {
		t.Fatalf("add veth pair: %v: %s", err, out)
	}
	cfg := e.config("cat", "/proc/net/dev")
	cfg.NetNSPath = "/var/run/netns/" + name
	if out := e.mustRun(cfg); !strings.Contains(out, "skd0") {
		t.Errorf("container is not in the given netns: /proc/net/dev = %s", out)
	}
	// Without a path the container gets a fresh netns with only lo.
	out := e.mustRun(e.config("cat", "/proc/net/dev"))
	if strings.Contains(out, "skd0") || strings.Count(out, ":") != 1 {
		t.Errorf("fresh netns has more than lo: %s", out)
	}
}
