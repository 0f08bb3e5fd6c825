package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/runtime/network"
	"github.com/skiff-sh/skiff/internal/runtime/volume"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// Soak parameters: 1000 create/delete cycles by 10 concurrent clients
// (150 in the cluster mode, which runs this suite a second time: the
// agent's leaks show within those, and the CI budget holds).
const (
	soakClients       = 10
	soakCycles        = 1000
	soakClusterCycles = 150
	// soakRSSGrowth bounds the server's RSS growth (a cluster's server's and
	// agent's together) between the end of the
	// warm-up (the first tenth of the cycles) and the end.
	soakRSSGrowth = 64 << 20
)

// hostCounts is what a deleted group could leave on the host.
type hostCounts struct {
	Mounts, NetNS, Veths, IPs, Rules, Cgroups, GroupDirs, VolumeDirs, NamespaceFiles, Bundles, OCIState int
}

func countHost(t *testing.T, dataDir string) hostCounts {
	t.Helper()
	var c hostCounts
	var err error
	if c.Mounts, err = volume.CountMounts(dataDir); err != nil {
		t.Fatal(err)
	}
	_, netDir, volDir, _, rtDir := runtime.HostLayout(dataDir)
	nl, err := network.CountLeaks(network.Config{StateDir: netDir, BridgeName: "ske2e0", Subnet: e2eSubnet})
	if err != nil {
		t.Fatal(err)
	}
	c.NetNS, c.Veths, c.IPs, c.Rules = nl.NetNS, nl.Veths, nl.IPAllocations, nl.IPTablesRules+nl.GuardEntries
	count := func(glob string) int {
		m, _ := filepath.Glob(glob)
		n := 0
		for _, f := range m {
			// The network's pool of prepared attachments (network.LeakCount.Pool)
			// is not the groups'.
			if !strings.HasPrefix(filepath.Base(f), "pool-") {
				n++
			}
		}
		return n
	}
	c.Cgroups = count("/sys/fs/cgroup/*/skiff/soak-*") + count("/sys/fs/cgroup/skiff/soak-*")
	c.GroupDirs = count(filepath.Join(rtDir, "groups", "*"))
	c.VolumeDirs = count(filepath.Join(volDir, "*"))
	c.NamespaceFiles = count(filepath.Join(netDir, "netns", "*")) + count(filepath.Join(netDir, "userns", "*"))
	c.Bundles = count(filepath.Join(runtime.BundlesDir(rtDir), "*"))
	c.OCIState = len(runcList(t, dataDir))
	return c
}

// serverRSS is the resident memory of the processes pids, together.
func serverRSS(t *testing.T, pids ...int) int64 {
	var sum int64
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		kb := int64(-1)
		for _, l := range strings.Split(string(data), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
		if kb < 0 {
			t.Fatalf("no VmRSS for %d", pid)
		}
		sum += kb << 10
	}
	return sum
}

// TestSoakCreateDeleteCycles runs 1000 create/delete cycles of a group with
// a published port, an emptyDir and a secure value through the API with 10
// concurrent clients (deletes without a grace period: sleep as PID 1
// ignores SIGTERM, and waiting it out would only measure the grace), then counts what is left on the host (mounts,
// namespaces, veths, IPs, iptables rules, cgroups, files, OCI state: all
// must be as before) and the server's RSS growth.
func TestSoakCreateDeleteCycles(t *testing.T) {
	s := startServer(t)
	cycles := soakCycles
	if s.cluster() {
		cycles = soakClusterCycles
	}
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})
	s.send("PUT", "/subscriptions/"+s.Subscription+"/resourcegroups/soak", `{"location":"local"}`)
	path := "/subscriptions/" + s.Subscription + "/resourceGroups/soak/providers/Microsoft.ContainerInstance/containerGroups/"
	before := countHost(t, s.hostDir())
	// A cluster's runtime is the agent's: its memory counts too.
	pids := []int{s.Process().Pid}
	if s.cluster() {
		pids = append(pids, s.Agent.Process().Pid)
	}

	var done, failed atomic.Int64
	var rssWarm atomic.Int64
	var mu sync.Mutex
	var errs []string
	fail := func(format string, a ...any) {
		failed.Add(1)
		mu.Lock()
		defer mu.Unlock()
		if len(errs) < 10 {
			errs = append(errs, fmt.Sprintf(format, a...))
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range soakClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range cycles / soakClients {
				name := fmt.Sprintf("soak-%d-%d", w, i)
				body := groupBody(image, func(p map[string]any) {
					p["ipAddress"] = map[string]any{"type": "Public", "ports": []map[string]any{{"port": 21000 + w}}}
					c := container0(p)
					c["ports"] = []map[string]any{{"port": 21000 + w}}
					c["environmentVariables"] = []map[string]any{{"name": "TOKEN", "secureValue": "soak-secret"}}
					c["volumeMounts"] = []map[string]any{{"name": "scratch", "mountPath": "/scratch"}}
					p["volumes"] = []map[string]any{{"name": "scratch", "emptyDir": map[string]any{}}}
				})
				if r := s.send("PUT", path+name, body); r.Status != 201 {
					fail("PUT %s: %d %s", name, r.Status, r)
					continue
				}
				if state := waitProvisioned(s, name, 60*time.Second); state != "Succeeded" {
					fail("%s: provisioning %s", name, state)
				}
				if r := s.send("DELETE", path+name+"?gracePeriodSeconds=0", nil); r.Status != 200 && r.Status != 202 && r.Status != 204 {
					fail("DELETE %s: %d %s", name, r.Status, r)
					continue
				}
				if !waitGone(s, name, 60*time.Second) {
					fail("%s: still there 60 s after DELETE", name)
				}
				if n := done.Add(1); n == int64(cycles/10) {
					rssWarm.Store(serverRSS(t, pids...))
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	rssEnd := serverRSS(t, pids...)
	after := countHost(t, s.hostDir())
	growth := rssEnd - rssWarm.Load()
	t.Logf("soak: %d cycles by %d clients in %s (%.1f cycles/s), %d failed; server RSS %d MiB after warm-up, %d MiB at the end (growth %+d KiB)",
		done.Load(), soakClients, took.Round(time.Millisecond), float64(done.Load())/took.Seconds(), failed.Load(),
		rssWarm.Load()>>20, rssEnd>>20, growth>>10)
	t.Logf("host before %+v", before)
	t.Logf("host after  %+v", after)
	for _, e := range errs {
		t.Error(e)
	}
	if done.Load() != int64(cycles) {
		t.Errorf("%d of %d cycles completed", done.Load(), cycles)
	}
	if after != before {
		t.Errorf("leaks after %d cycles: before %+v, after %+v", cycles, before, after)
	}
	if growth > soakRSSGrowth {
		t.Errorf("server RSS grew by %d MiB, bound %d MiB", growth>>20, soakRSSGrowth>>20)
	}
}

// waitProvisioned polls a group of the soak until its provisioning state
// is final and returns it ("" on timeout).
func waitProvisioned(s *server, name string, timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cg, err := s.Client.GetContainerGroup(s.t.Context(), "soak", name); err == nil {
			switch cg.Properties.ProvisioningState {
			case "Succeeded", "Failed":
				return cg.Properties.ProvisioningState
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return ""
}

// waitGone polls until a GET of a group of the soak answers 404.
func waitGone(s *server, name string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := s.Client.GetContainerGroup(s.t.Context(), "soak", name); errors.Is(err, client.ErrNotFound) {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}
