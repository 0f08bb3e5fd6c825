package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/runtime/network"
	"github.com/skiff-sh/skiff/internal/runtime/userns"
	"github.com/skiff-sh/skiff/internal/runtime/volume"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// Test networks: a bridge and subnet of their own, so tests never touch a
// real Skiff's skiff0.
const (
	testBridge = "skrt0"
	testSubnet = "10.213.0.0/16"
	// testNetwork names the CNI network, so leak counts see only ours.
	testNetwork = "skiff-rt-test"
)

type env struct {
	t       *testing.T
	dataDir string
	host    *runtime.Host
	reg     *testenv.Registry
	image   string // busybox image in reg, entrypoint sh
	ids     map[string]bool
	tune    func(*runtime.HostOptions) // adjusts hostOptions (newEnvWith)
}

var fastBackoff = runtime.Backoff{Initial: 300 * time.Millisecond, Max: 2 * time.Second, ResetAfter: 10 * time.Minute}

func shimCommand(t testing.TB) []string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{exe, "shim"}
}

func hostOptions(t testing.TB, dataDir string) runtime.HostOptions {
	return runtime.HostOptions{
		DataDir: dataDir, PublicAddress: "127.0.0.1", BridgeName: testBridge, Subnet: testSubnet, NetworkName: testNetwork,
		ShimCommand: shimCommand(t), Backoff: fastBackoff, StopGrace: 2 * time.Second,
		IDMap: hostIDMap(t),
	}
}

// hostIDMap is the mapping skiff server uses by default (--userns-remap
// default), so the runtime's tests run every group in a user namespace.
func hostIDMap(t testing.TB) userns.Mapping {
	m, err := userns.Parse("default")
	if err != nil {
		t.Fatalf("userns: %v", err)
	}
	return m
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with host options adjusted by tune (if not nil).
func newEnvWith(t *testing.T, tune func(*runtime.HostOptions)) *env {
	t.Helper()
	testenv.RequireRoot(t)
	e := &env{t: t, dataDir: t.TempDir(), ids: map[string]bool{}, tune: tune}
	e.reg = testenv.StartRegistry(t, testenv.RegistryOptions{})
	e.image = testenv.Push(t, e.reg, "busybox:test", testenv.BusyboxImage(t, testenv.ImageOptions{}))
	e.open()
	t.Cleanup(func() {
		ctx := context.Background()
		for _, id := range e.host.List() {
			if err := e.host.Delete(ctx, id, -1); err != nil {
				t.Errorf("cleanup: delete %s: %v", id, err)
			}
		}
		e.host.Close()
		e.assertNoLeaks()
		_ = e.host.Network.Destroy(ctx)
	})
	return e
}

func (e *env) open() {
	e.t.Helper()
	opts := hostOptions(e.t, e.dataDir)
	if e.tune != nil {
		e.tune(&opts)
	}
	h, err := runtime.Open(context.Background(), opts)
	if err != nil {
		e.t.Fatalf("open runtime: %v", err)
	}
	e.host = h
}

// leaks counts what a deleted group could leave behind.
type leaks struct {
	Mounts, NetNS, Veths, IPs, Rules, Cgroups, GroupDirs, OCIState, Bundles int
}

func (e *env) leaks() leaks {
	e.t.Helper()
	var l leaks
	var err error
	if l.Mounts, err = volume.CountMounts(e.dataDir); err != nil {
		e.t.Fatal(err)
	}
	_, netDir, _, _, rtDir := runtime.HostLayout(e.dataDir)
	nl, err := network.CountLeaks(network.Config{StateDir: netDir, BridgeName: testBridge, Subnet: testSubnet, NetworkName: testNetwork})
	if err != nil {
		e.t.Fatal(err)
	}
	// Rules counts iptables rules and the nftables guard's per-group entries.
	l.NetNS, l.Veths, l.IPs, l.Rules = nl.NetNS, nl.Veths, nl.IPAllocations, nl.IPTablesRules+nl.GuardEntries
	// A group's cgroups live under /skiff/<id> in every hierarchy.
	for id := range e.ids {
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/skiff/" + id)
		more, _ := filepath.Glob("/sys/fs/cgroup/skiff/" + id)
		l.Cgroups += len(dirs) + len(more)
	}
	groups, _ := os.ReadDir(filepath.Join(rtDir, "groups"))
	l.GroupDirs = len(groups)
	state, _ := os.ReadDir(runtime.OCIRoot(rtDir))
	l.OCIState = len(state)
	bundles, _ := os.ReadDir(runtime.BundlesDir(rtDir))
	l.Bundles = len(bundles)
	return l
}

func (e *env) assertNoLeaks() {
	e.t.Helper()
	if l := e.leaks(); l != (leaks{}) {
		e.t.Errorf("leaked after delete: %+v", l)
	}
}

func container(name, image string, command ...string) api.Container {
	return api.Container{Name: name, Properties: api.ContainerProperties{
		Image: image, Command: command,
		Resources: api.ResourceRequirements{Requests: api.ResourceRequests{CPU: 0.5, MemoryInGB: 0.25}},
	}}
}

func group(name string, ctrs ...api.Container) runtime.GroupSpec {
	return runtime.GroupSpec{Name: name, Properties: api.ContainerGroupProperties{Containers: ctrs, OSType: "Linux"}}
}

func (e *env) create(id string, spec runtime.GroupSpec) {
	e.t.Helper()
	e.ids[id] = true
	if err := e.host.Create(context.Background(), id, spec); err != nil {
		e.t.Fatalf("create %s: %v", id, err)
	}
}

// waitFor polls cond until it holds or the timeout passes.
func (e *env) waitFor(id string, timeout time.Duration, what string, cond func(*runtime.GroupStatus) bool) *runtime.GroupStatus {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var st *runtime.GroupStatus
	for {
		var err error
		st, err = e.host.Status(id)
		if err != nil {
			e.t.Fatalf("status %s: %v", id, err)
		}
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %s waiting for %s; status:\n%s", timeout, what, dump(st))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) waitState(id, state string, timeout time.Duration) *runtime.GroupStatus {
	e.t.Helper()
	return e.waitFor(id, timeout, "group state "+state, func(s *runtime.GroupStatus) bool { return s.State == state })
}

func dump(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

func (e *env) logs(id, name string, o runtime.LogOptions) string {
	e.t.Helper()
	var b bytes.Buffer
	if err := e.host.Logs(context.Background(), id, name, o, &b); err != nil {
		e.t.Fatalf("logs %s/%s: %v", id, name, err)
	}
	return b.String()
}

func (e *env) exec(id, name string, cmd ...string) (string, int) {
	e.t.Helper()
	var out bytes.Buffer
	code, err := e.host.Exec(context.Background(), id, name, runtime.ExecOptions{Command: cmd, Stdout: &out, Stderr: &out})
	if err != nil {
		e.t.Fatalf("exec %v in %s/%s: %v", cmd, id, name, err)
	}
	return out.String(), code
}

func (e *env) waitLog(id, name, want string, timeout time.Duration) string {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := e.logs(id, name, runtime.LogOptions{Tail: -1})
		if strings.Contains(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			st, _ := e.host.Status(id)
			e.t.Fatalf("log of %s/%s never showed %q; log:\n%s\nstatus:\n%s", id, name, want, got, dump(st))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func exitCode(cs *runtime.ContainerStatus) string {
	if cs.CurrentState.ExitCode == nil {
		return "none"
	}
	return fmt.Sprint(*cs.CurrentState.ExitCode)
}
