package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// reclaimed records the bridges this test process has reclaimed.
var reclaimed sync.Map

// ReclaimBridge frees bridge for the first server or agent this test
// process starts on it, once per process and bridge. A `go test` that was
// killed mid-run (its timeout, a cut-off session) leaves its skiff
// processes running, adopted by init, and their groups' namespaces
// mounted, their veths on the bridge that the next run's servers use
// again: a server refuses such a bridge (network.New's check), since its
// fresh data dir would lease the same addresses. So the skiff processes
// started with --bridge BRIDGE whose test binary is gone (orphaned) are
// killed, the veths on the bridge deleted, and the nftables tables of
// an agent on it (skiff_BRIDGE) deleted; each is logged.
func ReclaimBridge(t testing.TB, bridge string) {
	t.Helper()
	if bridge == "" {
		return
	}
	if _, done := reclaimed.LoadOrStore(bridge, true); done {
		return
	}
	orphans, live := skiffsOn(bridge)
	if len(live) > 0 {
		// Another test run's: its veths are its own. The server started
		// next refuses the bridge, naming them.
		t.Logf("reclaim %s: left alone, skiff processes %v of another test run use it", bridge, live)
		return
	}
	for _, pid := range orphans {
		t.Logf("reclaim %s: killing skiff process %d, left by an earlier run: %s", bridge, pid, cmdline(pid))
		_ = syscall.Kill(pid, syscall.SIGKILL)
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
				break
			}
		}
	}
	if br, err := netlink.LinkByName(bridge); err == nil {
		links, _ := netlink.LinkList()
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index && l.Type() == "veth" {
				t.Logf("reclaim %s: deleting %s, left by an earlier run", bridge, l.Attrs().Name)
				if err := netlink.LinkDel(l); err != nil {
					t.Logf("reclaim %s: delete %s: %v", bridge, l.Attrs().Name, err)
				}
			}
		}
	}
	for _, family := range []string{"bridge", "inet"} {
		if exec.Command("nft", "list", "table", family, "skiff_"+bridge).Run() == nil {
			t.Logf("reclaim %s: deleting nftables table %s skiff_%s, left by an earlier run", bridge, family, bridge)
			_ = exec.Command("nft", "delete", "table", family, "skiff_"+bridge).Run()
		}
	}
}

// skiffsOn lists the skiff processes given --bridge bridge: those whose
// test binary is gone, and the others.
func skiffsOn(bridge string) (orphans, live []int) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == os.Getpid() {
			continue
		}
		args := procArgs(pid)
		if len(args) == 0 || filepath.Base(args[0]) != "skiff" || !hasBridgeFlag(args[1:], bridge) {
			continue
		}
		if orphaned(pid) {
			orphans = append(orphans, pid)
		} else {
			live = append(live, pid)
		}
	}
	return orphans, live
}

func hasBridgeFlag(args []string, bridge string) bool {
	for i, a := range args {
		if a == "--bridge="+bridge || (a == "--bridge" && i+1 < len(args) && args[i+1] == bridge) {
			return true
		}
	}
	return false
}

// orphaned reports whether pid has lost the test binary that started it:
// its parent is not a test binary (NAME.test) any more, but init or a
// subreaper that adopted it. A server of a test run going on (another
// `go test` on this machine) keeps its parent, and is left alone.
func orphaned(pid int) bool {
	ppid := parentOf(pid)
	if ppid <= 1 {
		return ppid == 1
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", ppid))
	return err == nil && !strings.HasSuffix(filepath.Base(exe), ".test")
}

// parentOf returns pid's parent from /proc/PID/stat, or 0.
func parentOf(pid int) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// "pid (comm) state ppid …": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(raw[i+1:]))
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// procArgs returns pid's command line, or nil once it is gone.
func procArgs(pid int) []string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(raw) == 0 {
		return nil
	}
	return strings.Split(string(bytes.TrimRight(raw, "\x00")), "\x00")
}

func cmdline(pid int) string { return strings.Join(procArgs(pid), " ") }
