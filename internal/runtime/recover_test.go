package runtime_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/runtime/userns"
)

// daemonMain runs a runtime in its own process, as skiff server does: it
// opens the data dir, creates the group in SKIFF_TEST_SPEC unless it exists,
// and supervises until killed. Its shims are `<test binary> shim` (the
// supervisor inside the whole binary, as before cmd/skiff-shim), or the
// binary SKIFF_TEST_SHIM names; SKIFF_TEST_POOL sizes its network pool.
func daemonMain() int {
	dataDir := os.Getenv("SKIFF_TEST_DAEMON")
	exe, _ := os.Executable()
	shimCmd := []string{exe, "shim"}
	if bin := os.Getenv("SKIFF_TEST_SHIM"); bin != "" {
		shimCmd = []string{bin}
	}
	pool, _ := strconv.Atoi(os.Getenv("SKIFF_TEST_POOL"))
	idmap, err := userns.Parse("default")
	if err != nil {
		os.Stderr.WriteString("daemon: " + err.Error() + "\n")
		return 1
	}
	h, err := runtime.Open(context.Background(), runtime.HostOptions{
		DataDir: dataDir, PublicAddress: "127.0.0.1", BridgeName: testBridge, Subnet: testSubnet, NetworkName: testNetwork,
		ShimCommand: shimCmd, Backoff: fastBackoff, StopGrace: 2 * time.Second,
		IDMap: idmap, NetworkPool: pool,
	})
	if err != nil {
		os.Stderr.WriteString("daemon: " + err.Error() + "\n")
		return 1
	}
	if specFile := os.Getenv("SKIFF_TEST_SPEC"); specFile != "" {
		var spec runtime.GroupSpec
		data, _ := os.ReadFile(specFile)
		if err := json.Unmarshal(data, &spec); err != nil {
			return 1
		}
		if _, err := h.Status(spec.Name); err != nil {
			if err := h.Create(context.Background(), spec.Name, spec); err != nil {
				os.Stderr.WriteString("daemon: " + err.Error() + "\n")
				return 1
			}
		}
	}
	select {}
}

func startDaemon(t *testing.T, dataDir, specFile string, env ...string) *exec.Cmd {
	t.Helper()
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.Env = append(append(os.Environ(), "SKIFF_TEST_DAEMON="+dataDir, "SKIFF_TEST_SPEC="+specFile), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func readStatus(t *testing.T, dataDir, id string, timeout time.Duration, cond func(*runtime.GroupStatus) bool) *runtime.GroupStatus {
	t.Helper()
	_, _, _, _, rtDir := runtime.HostLayout(dataDir)
	deadline := time.Now().Add(timeout)
	for {
		st, err := runtime.ReadStatus(rtDir, id)
		if err == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out; last status: %v %s", err, dump(st))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill -9 of the process running the runtime: containers keep running with
// the same PIDs and no restarts, logs keep flowing, and an exit that happened
// while the runtime was down is recorded with its exit code.
func TestSurvivesKill9OfRuntimeProcess(t *testing.T) {
	e := newEnv(t)
	e.host.Close() // the daemon owns the data dir until the test takes it back

	spec := group("survivor",
		container("ticker", e.image, "sh", "-c", "i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.2; done"),
		container("short", e.image, "sh", "-c", "sleep 3; exit 3"))
	spec.Properties.RestartPolicy = api.RestartNever
	e.ids["survivor"] = true
	specFile := t.TempDir() + "/spec.json"
	data, _ := json.Marshal(spec)
	os.WriteFile(specFile, data, 0o600)

	d := startDaemon(t, e.dataDir, specFile)
	st := readStatus(t, e.dataDir, "survivor", 60*time.Second, func(s *runtime.GroupStatus) bool {
		return s.State == api.GroupRunning && s.Container("ticker").Pid > 0 && s.Container("short").Pid > 0
	})
	pid := st.Container("ticker").Pid
	d.Process.Signal(syscall.SIGKILL)
	d.Wait()

	// While the runtime is down, "short" exits 3 and "ticker" keeps logging.
	time.Sleep(4 * time.Second)
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("container process %d died with the runtime: %v", pid, err)
	}

	d = startDaemon(t, e.dataDir, "")
	st = readStatus(t, e.dataDir, "survivor", 30*time.Second, func(s *runtime.GroupStatus) bool {
		return s.Container("short").CurrentState.State == api.ContainerTerminated
	})
	if c := exitCode(st.Container("short")); c != "3" {
		t.Errorf("exit while the runtime was down recorded as %s, want 3", c)
	}
	tk := st.Container("ticker")
	if tk.Pid != pid || tk.RestartCount != 0 || tk.CurrentState.State != api.ContainerRunning {
		t.Errorf("ticker after recovery: pid %d (was %d), restarts %d, state %s", tk.Pid, pid, tk.RestartCount, tk.CurrentState.State)
	}
	d.Process.Signal(syscall.SIGKILL)
	d.Wait()

	// Take the data dir back in-process: logs flowed all along and still do.
	e.open()
	before := e.logs("survivor", "ticker", runtime.LogOptions{Tail: -1})
	time.Sleep(time.Second)
	after := e.logs("survivor", "ticker", runtime.LogOptions{Tail: -1})
	if len(after) <= len(before) || strings.Count(before, "tick") < 15 {
		t.Errorf("log did not keep flowing: %d lines before, %d after", strings.Count(before, "\n"), strings.Count(after, "\n"))
	}
	for i := 1; i < strings.Count(before, "\n"); i++ {
		if !strings.Contains(before, "tick"+itoa(i)+"\n") {
			t.Errorf("log lost line tick%d across the restarts", i)
			break
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// Fifty create/delete cycles leave no mount, namespace, veth, IP, iptables
// rule, cgroup or file behind.
func TestNoLeaksAfter50Cycles(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 50; i++ {
		// Both exit on SIGTERM, so each delete is quick.
		loop := "trap 'exit 0' TERM; while true; do sleep 0.1; done"
		spec := group("cycle", container("app", e.image, "sh", "-c", loop), container("side", e.image, "sh", "-c", loop))
		spec.Properties.Volumes = []api.Volume{{Name: "s", Secret: map[string]string{"k": "dmFsdWU="}}, {Name: "e", EmptyDir: &api.EmptyDirVolume{}}}
		spec.Properties.Containers[0].Properties.VolumeMounts = []api.VolumeMount{{Name: "s", MountPath: "/s"}, {Name: "e", MountPath: "/e"}}
		spec.Properties.IPAddress = &api.IPAddress{Type: "Public", Ports: []api.Port{{Protocol: "TCP", Port: 18100}}}
		e.create("cycle", spec)
		e.waitState("cycle", api.GroupRunning, 60*time.Second)
		if err := e.host.Delete(context.Background(), "cycle", -1); err != nil {
			t.Fatalf("cycle %d: delete: %v", i, err)
		}
	}
	if l := e.leaks(); l != (leaks{}) {
		t.Fatalf("after 50 cycles: %+v", l)
	}
}

// An upgrade from the supervisor inside the skiff binary (`skiff shim`) to
// cmd/skiff-shim: the new runtime adopts the containers the old shims keep
// (same PIDs, no restarts, logs flowing, stop works), and starts new ones
// under skiff-shim. Both runtimes take their group's network from a pool,
// left behind by the kill and adopted.
func TestUpgradeAdoptsContainersOfTheOldShim(t *testing.T) {
	e := newEnv(t)
	e.host.Close()
	shimDir := t.TempDir()
	build := exec.Command("go", "build", "-o", shimDir+"/", "github.com/skiff-sh/skiff/cmd/skiff-shim")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build skiff-shim: %v %s", err, out)
	}
	newShim := filepath.Join(shimDir, "skiff-shim")

	tick := container("ticker", e.image, "sh", "-c", "i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.2; done")
	spec := group("upgraded", tick)
	e.ids["upgraded"] = true
	specFile := filepath.Join(t.TempDir(), "spec.json")
	data, _ := json.Marshal(spec)
	os.WriteFile(specFile, data, 0o600)
	d := startDaemon(t, e.dataDir, specFile, "SKIFF_TEST_POOL=2")
	st := readStatus(t, e.dataDir, "upgraded", 60*time.Second, func(s *runtime.GroupStatus) bool {
		return s.State == api.GroupRunning && s.Container("ticker").Pid > 0
	})
	pid := st.Container("ticker").Pid
	oldShims := shimsOf(t, "upgraded_ticker")
	if len(oldShims) != 1 || !strings.HasSuffix(oldShims[0][1], "shim") || strings.HasSuffix(oldShims[0][0], "skiff-shim") {
		t.Fatalf("the old runtime's shim: %v, want `<binary> shim`", oldShims)
	}
	d.Process.Signal(syscall.SIGKILL)
	d.Wait()

	second := group("fresh", container("app", e.image, "sleep", "3600"))
	e.ids["fresh"] = true
	data, _ = json.Marshal(second)
	spec2 := filepath.Join(t.TempDir(), "spec2.json")
	os.WriteFile(spec2, data, 0o600)
	d = startDaemon(t, e.dataDir, spec2, "SKIFF_TEST_SHIM="+newShim, "SKIFF_TEST_POOL=2")
	readStatus(t, e.dataDir, "fresh", 60*time.Second, func(s *runtime.GroupStatus) bool {
		return s.State == api.GroupRunning && s.Container("app").Pid > 0
	})
	st = readStatus(t, e.dataDir, "upgraded", 10*time.Second, func(s *runtime.GroupStatus) bool { return true })
	if tk := st.Container("ticker"); tk.Pid != pid || tk.RestartCount != 0 || tk.CurrentState.State != api.ContainerRunning {
		t.Errorf("ticker after the upgrade: pid %d (was %d), restarts %d, state %s", tk.Pid, pid, tk.RestartCount, tk.CurrentState.State)
	}
	if got := shimsOf(t, "fresh_app"); len(got) != 1 || got[0][0] != newShim {
		t.Errorf("the new runtime's shim: %v, want %s", got, newShim)
	}
	d.Process.Signal(syscall.SIGKILL)
	d.Wait()

	// In process again (the old shim still keeps ticker): logs flow, and
	// a stop ends the container and its old shim.
	e.open()
	before := e.logs("upgraded", "ticker", runtime.LogOptions{Tail: -1})
	time.Sleep(time.Second)
	if after := e.logs("upgraded", "ticker", runtime.LogOptions{Tail: -1}); len(after) <= len(before) {
		t.Errorf("log did not keep flowing after the upgrade")
	}
	if err := e.host.Stop(context.Background(), "upgraded"); err != nil {
		t.Fatalf("stop after the upgrade: %v", err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("container %d still runs after stop", pid)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(shimsOf(t, "upgraded_ticker")) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("old shim still there 10 s after stop: %v", shimsOf(t, "upgraded_ticker"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// shimsOf lists the argv[0] and argv[1] of the shims supervising the runc
// container id.
func shimsOf(t *testing.T, id string) [][2]string {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	var out [][2]string
	for _, ent := range entries {
		if _, err := strconv.Atoi(ent.Name()); err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "--id" && strings.HasSuffix(args[i+1], id) && len(args) > 1 {
				out = append(out, [2]string{args[0], args[1]})
			}
		}
	}
	return out
}
