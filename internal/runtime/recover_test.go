package runtime_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
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
// and supervises until killed.
func daemonMain() int {
	dataDir := os.Getenv("SKIFF_TEST_DAEMON")
	exe, _ := os.Executable()
	idmap, err := userns.Parse("default")
	if err != nil {
		os.Stderr.WriteString("daemon: " + err.Error() + "\n")
		return 1
	}
	h, err := runtime.Open(context.Background(), runtime.HostOptions{
		DataDir: dataDir, PublicAddress: "127.0.0.1", BridgeName: testBridge, Subnet: testSubnet, NetworkName: testNetwork,
		ShimCommand: []string{exe, "shim"}, Backoff: fastBackoff, StopGrace: 2 * time.Second,
		IDMap: idmap,
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

func startDaemon(t *testing.T, dataDir, specFile string) *exec.Cmd {
	t.Helper()
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "SKIFF_TEST_DAEMON="+dataDir, "SKIFF_TEST_SPEC="+specFile)
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
