package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/store"
	"github.com/skiff-sh/skiff/internal/testenv"
	etcdenv "github.com/skiff-sh/skiff/internal/testenv/etcd"
)

// hostNet is where one test host lives: its name, the loopback address
// that stands for its public address (its API listens there too), and its
// container network.
type hostNet struct{ name, addr, bridge, subnet string }

// The package's hosts. Each has a bridge and subnet of its own; a test
// that runs one agent takes one of them.
var (
	host1   = hostNet{"agent-1", "127.0.0.2", "skcl1", "10.221.0.0/16"}
	host2   = hostNet{"agent-2", "127.0.0.3", "skcl2", "10.222.0.0/16"}
	host3   = hostNet{"agent-3", "127.0.0.4", "skcl3", "10.223.0.0/16"}
	hostBig = hostNet{"agent-big", "127.0.0.5", "skcl4", "10.224.0.0/16"}
)

// stopGrace is every agent's --stop-grace: deletes are fast.
const stopGrace = time.Second

// cluster is an etcd, one `skiff server --agent=false` on it, the agents
// that joined through it, and an image its groups run.
type cluster struct {
	// t owns the processes: agents started in a subtest still outlive it.
	t      *testing.T
	etcd   *etcdenv.Etcd
	srv    *testenv.SkiffServer
	agents map[string]*testenv.SkiffAgent
	nets   map[string]hostNet
	image  string
	// logsShown is set once logsOnFailure has shown the logs.
	logsShown bool
}

// newCluster starts etcd, a registry holding the web image, and a server
// with serverFlags; agents are added with addAgent.
func newCluster(t *testing.T, serverFlags ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, agents: map[string]*testenv.SkiffAgent{}, nets: map[string]hostNet{}}
	c.image = webImage(t)
	c.etcd = etcdenv.Start(t)
	c.srv = testenv.StartSkiffServer(t, testenv.SkiffServerOptions{Binary: skiffBin, Etcd: c.etcd.Endpoints, NoAgent: true,
		LogLevel: "info", Flags: serverFlags})
	return c
}

// logsOnFailure shows the processes' log tails when the test failed,
// once, before the cleanups delete the groups and stop the processes.
func (c *cluster) logsOnFailure() {
	if !c.t.Failed() || c.logsShown {
		return
	}
	c.logsShown = true
	c.t.Logf("server log tail:\n%s", c.srv.LogTail(30))
	for _, name := range sortedNames(c.agents) {
		c.t.Logf("agent %s log tail:\n%s", name, c.agents[name].LogTail(30))
	}
}

// addAgent starts `skiff agent` on n offering cpu and memoryGB, waits until
// its host is Ready and (again) makes the test's groups be deleted, and
// the logs shown if the test failed, before any agent stops.
func (c *cluster) addAgent(n hostNet, cpu, memoryGB float64) *testenv.SkiffAgent {
	c.t.Helper()
	a := startAgent(c.t, c.srv, []string{c.srv.Endpoint}, n, cpu, memoryGB)
	c.agents[n.name], c.nets[n.name] = a, n
	c.waitHost(n.name, "Ready", time.Minute)
	c.srv.DeleteAtCleanup()
	c.t.Cleanup(c.logsOnFailure)
	return a
}

// startAgent starts an agent on n that joins through servers with s's
// join token; its bridge is removed when t ends.
func startAgent(t *testing.T, s *testenv.SkiffServer, servers []string, n hostNet, cpu, memoryGB float64) *testenv.SkiffAgent {
	t.Helper()
	return testenv.StartSkiffAgent(t, testenv.SkiffAgentOptions{Binary: skiffBin, Servers: servers, JoinTokenFile: s.JoinTokenFile(),
		Name: n.name, PublicAddress: n.addr, Bridge: n.bridge, Subnet: n.subnet, RemoveBridge: true,
		CPU: cpu, MemoryGB: memoryGB, StopGrace: stopGrace, LogLevel: "info"})
}

// waitHost waits until the API reports host name in state.
func (c *cluster) waitHost(name, state string, timeout time.Duration) {
	c.t.Helper()
	waitHostState(c.t, c.srv, name, state, timeout)
}

func waitHostState(t *testing.T, s *testenv.SkiffServer, name, state string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "host "+name+" "+state, func() string {
		h, err := s.Client.GetHost(t.Context(), name)
		if err != nil {
			return err.Error()
		}
		if h.Properties.State != state {
			return fmt.Sprintf("state %s (%s)", h.Properties.State, h.Properties.Message)
		}
		return ""
	}, s)
}

// webImage starts a registry and pushes the busybox image the web groups
// run (with an empty /www for httpd) to it.
func webImage(t *testing.T) string {
	t.Helper()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	return testenv.Push(t, reg, "web:1", testenv.BusyboxImage(t, testenv.ImageOptions{
		Layers: []testenv.LayerSpec{{Dirs: []string{"/www"}}},
	}))
}

// webScript is the web container: it prints "started" and a token of its
// own once, serves its hostname (the group's name) with httpd on $PORT,
// and prints "tick N" each second.
const webScript = `echo "started $(cat /proc/sys/kernel/random/uuid)"; hostname > /www/index.html; httpd -p "$PORT" -h /www; ` +
	`i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 1; done`

// webGroup is a group of one web container that requests cpu (and
// 0.1 GB) and publishes port on its host's public address.
func webGroup(image string, port int32, restartPolicy string, cpu float64) *api.ContainerGroup {
	return &api.ContainerGroup{Location: "local", Properties: api.ContainerGroupProperties{
		OSType: "Linux", RestartPolicy: restartPolicy,
		Containers: []api.Container{{Name: "web", Properties: api.ContainerProperties{
			Image: image, Command: []string{"sh", "-c", webScript},
			Ports:                []api.ContainerPort{{Protocol: api.ProtocolTCP, Port: port}},
			EnvironmentVariables: []api.EnvironmentVariable{{Name: "PORT", Value: strconv.Itoa(int(port))}},
			Resources:            api.ResourceRequirements{Requests: api.ResourceRequests{CPU: cpu, MemoryInGB: 0.1}},
		}}},
		IPAddress: &api.IPAddress{Type: api.IPAddressPublic, Ports: []api.Port{{Protocol: api.ProtocolTCP, Port: port}}},
	}}
}

// portOf is the port a web group publishes.
func portOf(g *api.ContainerGroup) int32 { return g.Properties.IPAddress.Ports[0].Port }

// createGroups creates the groups of rg (it creates rg too), four
// requests at a time, and fails the test unless each is accepted.
func createGroups(t *testing.T, cl *client.Client, rg string, groups map[string]*api.ContainerGroup) {
	t.Helper()
	if _, err := cl.CreateResourceGroup(t.Context(), rg, api.ResourceGroup{Location: "local"}); err != nil {
		t.Fatalf("create resource group %s: %v", rg, err)
	}
	var mu sync.Mutex
	var errs []string
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for name, g := range groups {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, _, err := cl.CreateOrUpdateContainerGroup(t.Context(), rg, name, g); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("%s: %v", name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("creates refused: %s", strings.Join(errs, "; "))
	}
}

// stateOf is a group's instance view state and host.
func stateOf(g *api.ContainerGroup) (state, host string) {
	if iv := g.Properties.InstanceView; iv != nil {
		return iv.State, iv.Host
	}
	return "", ""
}

// hostOf is the host of g.
func hostOf(g *api.ContainerGroup) string {
	_, host := stateOf(g)
	return host
}

// running reports whether g runs (instance view Running, on a host).
func running(g *api.ContainerGroup) bool {
	state, host := stateOf(g)
	return state == api.GroupRunning && host != ""
}

// eventNames are the names of the control plane's events of a group.
func eventNames(g *api.ContainerGroup) []string {
	var names []string
	if iv := g.Properties.InstanceView; iv != nil {
		for _, e := range iv.Events {
			names = append(names, e.Name)
		}
	}
	return names
}

// event is the last event of g named name.
func event(g *api.ContainerGroup, name string) (api.Event, bool) {
	if iv := g.Properties.InstanceView; iv != nil {
		for i := len(iv.Events) - 1; i >= 0; i-- {
			if iv.Events[i].Name == name {
				return iv.Events[i], true
			}
		}
	}
	return api.Event{}, false
}

// waitGroups polls the groups of rg until ok holds for each, and returns
// them as last read.
func waitGroups(t *testing.T, s *testenv.SkiffServer, rg string, names []string, timeout time.Duration, ok func(*api.ContainerGroup) bool) map[string]*api.ContainerGroup {
	t.Helper()
	got := map[string]*api.ContainerGroup{}
	eventually(t, timeout, fmt.Sprintf("%d groups of %s", len(names), rg), func() string {
		var bad []string
		for _, name := range names {
			if g := got[name]; g != nil && ok(g) {
				continue
			}
			g, err := s.Client.GetContainerGroup(t.Context(), rg, name)
			switch {
			case err != nil:
				bad = append(bad, name+": "+err.Error())
			case !ok(g):
				state, host := stateOf(g)
				bad = append(bad, fmt.Sprintf("%s: %s/%s on %q %v", name, g.Properties.ProvisioningState, state, host, eventNames(g)))
			default:
				got[name] = g
			}
		}
		if len(bad) > 0 {
			return fmt.Sprintf("%d not yet, e.g. %s", len(bad), bad[0])
		}
		return ""
	}, s)
	return got
}

// getGroup reads a group and fails the test on an error.
func getGroup(t *testing.T, s *testenv.SkiffServer, rg, name string) *api.ContainerGroup {
	t.Helper()
	g, err := s.Client.GetContainerGroup(t.Context(), rg, name)
	if err != nil {
		t.Fatalf("get %s/%s: %v", rg, name, err)
	}
	return g
}

// logTailer is a process whose log tail a failure shows.
type logTailer interface{ LogTail(n int) string }

// eventually polls cond every 100 ms until it returns "" and fails the
// test with its last answer (and the log tails of procs) after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() string, procs ...logTailer) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			var tails []string
			for _, p := range procs {
				tails = append(tails, p.LogTail(30))
			}
			t.Fatalf("%s: not after %s: %s\n%s", what, timeout, msg, strings.Join(tails, "\n"))
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("%s: %v", what, t.Context().Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cliRun is what one run of the CLI printed and its exit code (-1: it was
// killed at its deadline).
type cliRun struct {
	stdout, stderr string
	code           int
}

// skiff runs the CLI against s for at most d (then kills it, for --follow
// and attach) and returns what it printed.
func skiff(t *testing.T, s *testenv.SkiffServer, d time.Duration, args ...string) cliRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, skiffBin, args...)
	cmd.Env = append(os.Environ(), "SKIFF_ENDPOINT="+s.Endpoint, "SKIFF_TOKEN="+s.Token, "SKIFF_DATA_DIR="+s.DataDir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := cliRun{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("skiff %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// mustSkiff runs the CLI and fails the test unless it exits 0.
func mustSkiff(t *testing.T, s *testenv.SkiffServer, args ...string) string {
	t.Helper()
	r := skiff(t, s, time.Minute, args...)
	if r.code != 0 {
		t.Fatalf("skiff %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// hostRow is a row of `skiff host list -o table`.
type hostRow struct {
	State, PublicAddress, CPU, MemoryGB string
	Groups                              int
}

// hostTable runs `skiff host list -o table` and reads its rows by host
// name, cutting the columns where the table's dashed rule does.
func hostTable(t *testing.T, s *testenv.SkiffServer) map[string]hostRow {
	t.Helper()
	out := mustSkiff(t, s, "host", "list", "-o", "table")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	want := []string{"Name", "State", "PublicAddress", "Zone", "CPU", "MemoryGB", "Groups"}
	if len(lines) < 2 || !slices.Equal(strings.Fields(lines[0]), want) {
		t.Fatalf("skiff host list -o table: want the columns %v:\n%s", want, out)
	}
	var starts, ends []int
	for i := 0; i < len(lines[1]); {
		j := i
		for j < len(lines[1]) && lines[1][j] == '-' {
			j++
		}
		starts, ends = append(starts, i), append(ends, j)
		i = j + 2
	}
	rows := map[string]hostRow{}
	for _, l := range lines[2:] {
		cell := func(i int) string {
			if starts[i] >= len(l) {
				return ""
			}
			return strings.TrimSpace(l[starts[i]:min(ends[i], len(l))])
		}
		n, err := strconv.Atoi(cell(6))
		if err != nil {
			t.Fatalf("skiff host list: the Groups of %q are %q:\n%s", l, cell(6), out)
		}
		rows[cell(0)] = hostRow{State: cell(1), PublicAddress: cell(2), CPU: cell(4), MemoryGB: cell(5), Groups: n}
	}
	return rows
}

// get sends GET http://addr:port/ and returns the body of a 200.
func get(addr string, port int32) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(addr, strconv.Itoa(int(port))) + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	return strings.TrimSpace(string(b)), nil
}

// waitServes waits until GET http://addr:port/ answers want.
func waitServes(t *testing.T, addr string, port int32, want string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("%s:%d serving %s", addr, port, want), func() string {
		body, err := get(addr, port)
		switch {
		case err != nil:
			return err.Error()
		case body != want:
			return fmt.Sprintf("it answered %q", body)
		}
		return ""
	})
}

// runtimeGroups are the runtime ids of the groups whose containers an
// agent's data dir holds, as `runc list` under its runtime's root shows
// them, with the containers' pids.
func runtimeGroups(t *testing.T, dataDir string) map[string][]int {
	t.Helper()
	_, _, _, _, rtDir := runtime.HostLayout(dataDir)
	out, err := exec.Command("runc", "--root", runtime.OCIRoot(rtDir), "list", "-f", "json").Output()
	if err != nil {
		t.Fatalf("runc list in %s: %v", dataDir, err)
	}
	var list []struct {
		ID     string `json:"id"`
		PID    int    `json:"pid"`
		Status string `json:"status"`
	}
	if s := bytes.TrimSpace(out); len(s) > 0 && string(s) != "null" {
		if err := json.Unmarshal(s, &list); err != nil {
			t.Fatalf("runc list: %v: %s", err, out)
		}
	}
	ids := map[string][]int{}
	for _, c := range list {
		if c.Status != "running" {
			continue
		}
		id, _, _ := strings.Cut(c.ID, "_")
		ids[id] = append(ids[id], c.PID)
	}
	return ids
}

// runtimeID is the runtime's id of group rg/name of s's subscription.
func runtimeID(s *testenv.SkiffServer, rg, name string) string {
	return store.RuntimeID(s.Subscription, rg, name)
}

// groupRef names a group of the test.
type groupRef struct{ rg, name string }

// eachRunsOnce checks, on every host's runtime, that each of the groups
// runs on exactly one host, the one its instance view names.
func (c *cluster) eachRunsOnce(t *testing.T, groups []groupRef) {
	t.Helper()
	held := map[string][]string{}
	for name, a := range c.agents {
		for id := range runtimeGroups(t, a.DataDir) {
			held[id] = append(held[id], name)
		}
	}
	for _, g := range groups {
		cg := getGroup(t, c.srv, g.rg, g.name)
		_, host := stateOf(cg)
		if on := held[runtimeID(c.srv, g.rg, g.name)]; !slices.Equal(on, []string{host}) {
			t.Errorf("%s/%s runs on the hosts %v; its instance view says %q", g.rg, g.name, on, host)
		}
	}
}

// logOf reads a container's log file-wide through the client.
func logOf(t *testing.T, s *testenv.SkiffServer, rg, name string) string {
	t.Helper()
	r, err := s.Client.Logs(t.Context(), rg, name, "web", client.LogOptions{})
	if err != nil {
		t.Fatalf("logs of %s/%s: %v", rg, name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("logs of %s/%s: %v", rg, name, err)
	}
	return string(b)
}

// lastTick is the highest "tick N" of a web container's output.
func lastTick(out string) int {
	n := 0
	for _, f := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(f), "tick "); ok {
			if i, err := strconv.Atoi(v); err == nil {
				n = max(n, i)
			}
		}
	}
	return n
}

// logHas reports whether a process's log has a line holding every one of
// parts.
func logHas(log string, parts ...string) bool {
	for _, l := range strings.Split(log, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return true
		}
	}
	return false
}

// sortedNames are the keys of m in order.
func sortedNames[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// gatewayOf is the bridge's address of a host's subnet (its first).
func gatewayOf(t *testing.T, subnet string) string {
	t.Helper()
	p, err := netip.ParsePrefix(subnet)
	if err != nil {
		t.Fatal(err)
	}
	return p.Addr().Next().String()
}
