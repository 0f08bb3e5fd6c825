package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// fakeSkiff starts a process whose command line is a skiff's on bridge
// (argv[0] "skiff", then --bridge BRIDGE): orphaned, adopted by init as a
// killed test run's servers are, or else this test's child. It returns
// its pid.
func fakeSkiff(t *testing.T, bridge string, orphan bool) int {
	t.Helper()
	cmd := exec.Command("bash", "-c", `exec -a skiff sh -c 'sleep 60; :' --bridge `+bridge)
	if orphan {
		// The middle shell exits at once, so the fake skiff's parent
		// is init (or a subreaper): no test binary any more.
		cmd = exec.Command("bash", "-c", `(exec -a skiff sh -c 'sleep 60; :' --bridge `+bridge+` >/dev/null 2>&1 & echo $!)`)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
		return waitSkiff(t, pid)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return waitSkiff(t, cmd.Process.Pid)
}

// waitSkiff waits until pid's command line is the fake skiff's (bash has
// exec'd it).
func waitSkiff(t *testing.T, pid int) int {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !strings.HasPrefix(cmdline(pid), "skiff "); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d is %q, not a fake skiff", pid, cmdline(pid))
		}
	}
	return pid
}

var reclaimRuns atomic.Int32

func alive(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(raw), ')')
	return i > 0 && !strings.HasPrefix(strings.TrimSpace(string(raw[i+1:])), "Z")
}

// A killed run's skiff and the veth it left on the bridge are removed; a
// skiff of a run still going on (its parent a test binary) is left alone,
// with its veth.
func TestReclaimBridge(t *testing.T) {
	RequireRoot(t)
	// Names of this run's own: ReclaimBridge works a bridge once per process.
	n := os.Getpid()%1000*10 + int(reclaimRuns.Add(1))%10
	orphanBr, liveBr := fmt.Sprintf("skro%d", n), fmt.Sprintf("skrl%d", n)
	veths := map[string]string{}
	for _, br := range []string{orphanBr, liveBr} {
		b := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: br}}
		if err := netlink.LinkAdd(b); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = netlink.LinkDel(b) })
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: br + "a", MasterIndex: b.Index}, PeerName: br + "b"}
		if err := netlink.LinkAdd(v); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = netlink.LinkDel(v) })
		veths[br] = v.Name
	}
	orphan, live := fakeSkiff(t, orphanBr, true), fakeSkiff(t, liveBr, false)
	if !orphaned(orphan) || orphaned(live) {
		t.Fatalf("orphaned(%d) = %v, orphaned(%d) = %v: want true, false", orphan, orphaned(orphan), live, orphaned(live))
	}

	ReclaimBridge(t, orphanBr)
	ReclaimBridge(t, liveBr)
	if alive(orphan) {
		t.Errorf("the orphaned skiff %d on %s is still running", orphan, orphanBr)
	}
	if _, err := netlink.LinkByName(veths[orphanBr]); !errors.As(err, new(netlink.LinkNotFoundError)) {
		t.Errorf("the veth left on %s is still there: %v", orphanBr, err)
	}
	if !alive(live) {
		t.Errorf("the skiff %d of a run going on was killed", live)
	}
	if _, err := netlink.LinkByName(veths[liveBr]); err != nil {
		t.Errorf("the veth of a run going on was deleted: %v", err)
	}
}
