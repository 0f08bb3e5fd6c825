package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// TestBreakoutTable tries, from inside a real runc container of a group
// with the defaults skiff server gives it (its own user namespace, no
// operator flags), each of the usual ways out of a container. Every row
// must be denied. The network's rows (the host's loopback through the
// bridge with a raw socket, the host's other addresses and so the API,
// spoofing, other tenants, a published port over a host listener) are in
// TestNetworkGuardFromContainers and TestPublishRefusesHostPort; an exec'd
// process outliving its session in TestExecSessionEndKillsItsProcesses.
func TestBreakoutTable(t *testing.T) {
	e := newEnv(t)
	img := testenv.Push(t, e.reg, "breakout:1", testenv.BusyboxImage(t, testenv.ImageOptions{
		Layers: []testenv.LayerSpec{{
			Files: map[string]string{"/bin/breakout": testenv.BreakoutBinary(t)},
			Modes: map[string]int64{"/bin/breakout": 0o755},
		}},
	}))
	spec := group("jail", container("app", img, "sleep", "3600"))
	spec.Properties.Volumes = []api.Volume{
		{Name: "scratch", EmptyDir: &api.EmptyDirVolume{}},
		{Name: "creds", Secret: map[string]string{"key": "c2VjcmV0"}},
	}
	spec.Properties.Containers[0].Properties.VolumeMounts = []api.VolumeMount{
		{Name: "scratch", MountPath: "/scratch"}, {Name: "creds", MountPath: "/creds"},
	}
	e.create("jail", spec)
	st := e.waitState("jail", api.GroupRunning, 60*time.Second)
	idmap := hostIDMap(t)

	denied := func(out string, code int) error {
		if code == 0 {
			return fmt.Errorf("succeeded: %s", out)
		}
		return nil
	}
	rows := []struct {
		name  string
		cmd   []string
		check func(out string, code int) error
	}{
		{"container root is not host root", []string{"cat", "/proc/self/uid_map"}, func(out string, code int) error {
			f := strings.Fields(out)
			if code != 0 || len(f) != 3 || f[0] != "0" || f[1] != strconv.Itoa(int(idmap.UID)) || f[2] != strconv.Itoa(int(idmap.Size)) {
				return fmt.Errorf("uid_map %q (exit %d), want 0 %d %d", out, code, idmap.UID, idmap.Size)
			}
			return nil
		}},
		{"volumes and the root are container root's", []string{"stat", "-c", "%u:%g %n", "/", "/scratch", "/creds", "/creds/key", "/bin/busybox"},
			func(out string, code int) error {
				for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
					if code != 0 || !strings.HasPrefix(l, "0:0 ") {
						return fmt.Errorf("owners %q (exit %d), want 0:0 (the mapped root) everywhere", out, code)
					}
				}
				return nil
			}},
		{"write a secret volume", []string{"sh", "-c", "echo x > /creds/key"}, denied},
		{"host PIDs are invisible", []string{"sh", "-c", "ls -d /proc/[0-9]* | wc -l"}, func(out string, code int) error {
			if n, err := strconv.Atoi(strings.TrimSpace(out)); err != nil || n > 6 {
				return fmt.Errorf("container sees %q processes", out)
			}
			return nil
		}},
		{"mount proc", []string{"mount", "-t", "proc", "proc", "/mnt"}, denied},
		{"mount sysfs", []string{"mount", "-t", "sysfs", "sysfs", "/mnt"}, denied},
		{"mount a block device", []string{"sh", "-c", "mknod /tmp/loop b 7 0 && mount /tmp/loop /mnt"}, denied},
		{"read a block device", []string{"sh", "-c", "mknod /tmp/disk b 8 0 && head -c 512 /tmp/disk | wc -c | grep -qx 512"}, denied},
		{"write core_pattern", []string{"sh", "-c", "echo '|/tmp/x' > /proc/sys/kernel/core_pattern"}, denied},
		{"write a cgroup release_agent", []string{"sh", "-c",
			"for f in /sys/fs/cgroup/*/release_agent /sys/fs/cgroup/release_agent; do [ -e $f ] && echo /tmp/x > $f && exit 0; done; exit 1"}, denied},
		{"mount a cgroup hierarchy", []string{"sh", "-c", "mkdir -p /tmp/cg && mount -t cgroup -o memory cgroup /tmp/cg"}, denied},
		{"open_by_handle_at", []string{"breakout", "handle"}, denied},
		{"nested user namespace", []string{"breakout", "unshare-user"}, denied},
		{"kernel keyring", []string{"breakout", "keyctl"}, denied},
		{"load a kernel module", []string{"sh", "-c", "echo x > /tmp/m.ko && insmod /tmp/m.ko"}, denied},
		{"change the host's clock", []string{"sh", "-c", "date -s 2001-01-01 >/dev/null 2>&1; [ $(date +%Y) = 2001 ]"}, denied},
	}
	for _, r := range rows {
		out, code := e.exec("jail", "app", r.cmd...)
		if err := r.check(out, code); err != nil {
			t.Errorf("%s: %v", r.name, err)
		}
	}

	// A file container root writes is owned on the host by the mapped
	// range, never by host root.
	if out, code := e.exec("jail", "app", "sh", "-c", "echo x > /scratch/mine && touch /tmp/upper-file"); code != 0 {
		t.Fatalf("write as container root: %s", out)
	}
	_, _, volDir, _, rtDir := runtime.HostLayout(e.dataDir)
	for _, glob := range []string{
		filepath.Join(volDir, "jail", "*", "scratch", "mine"),
		filepath.Join(rtDir, "groups", "jail", "containers", "app", "rootfs", "upper", "tmp", "upper-file"),
	} {
		files, _ := filepath.Glob(glob)
		if len(files) != 1 {
			t.Errorf("%s: found %v", glob, files)
			continue
		}
		var fst unix.Stat_t
		if err := unix.Stat(files[0], &fst); err != nil {
			t.Fatal(err)
		}
		if fst.Uid != idmap.UID || fst.Gid != idmap.GID {
			t.Errorf("%s is owned by %d:%d on the host, want the mapped root %d:%d", files[0], fst.Uid, fst.Gid, idmap.UID, idmap.GID)
		}
	}
	// The container's process runs as the mapped root on the host.
	cs := st.Container("app")
	if cs == nil || cs.Pid == 0 {
		t.Fatal("no pid for app")
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cs.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d", idmap.UID, idmap.UID, idmap.UID, idmap.UID); !strings.Contains(string(status), want) {
		t.Errorf("host view of the container's process lacks %q:\n%s", want, status)
	}

	// Asking for more than the defaults, without the operator's flags.
	yes := true
	for name, sc := range map[string]*api.SecurityContext{
		"privileged":                 {Privileged: &yes},
		"capabilities.add":           {Capabilities: &api.Capabilities{Add: []string{"SYS_ADMIN"}}},
		"custom seccomp profile":     {SeccompProfile: "eyJkZWZhdWx0QWN0aW9uIjoiU0NNUF9BQ1RfQUxMT1cifQ=="},
		"capabilities.add NET_ADMIN": {Capabilities: &api.Capabilities{Add: []string{"NET_ADMIN"}}},
	} {
		s := group("greedy", container("app", img, "sleep", "3600"))
		s.Properties.Containers[0].Properties.SecurityContext = sc
		err := e.host.Create(context.Background(), "greedy", s)
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: Create = %v, want an invalid-argument refusal", name, err)
		}
		if _, serr := e.host.Status("greedy"); serr == nil {
			t.Errorf("%s: a refused group was recorded", name)
			_ = e.host.Delete(context.Background(), "greedy", -1)
		}
	}
}
