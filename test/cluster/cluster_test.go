package cluster

import (
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// suite is the cluster TestCluster shares between its cases, and what the
// cases learned that the later ones need.
type suite struct {
	*cluster
	// spread are the 30 groups of resource group "spread", as last read.
	spread map[string]*api.ContainerGroup
	// victim is the host that the restartPolicy Never group "keep/stay"
	// runs on; it is the one killed.
	victim string
	// moved are the spread groups that moved off the victim.
	moved []string
}

// spreadCount is the number of groups spread over the three hosts.
const spreadCount = 30

// spreadPort is the port that spread group i (1…30) publishes.
func spreadPort(i int) int32 { return int32(18000 + i) }

// One cluster (etcd, `skiff server --agent=false`, three agents, later a
// fourth, bigger one) taken through what its users meet, in order: groups
// spread over the hosts, streams to each host, a group that waits for a
// bigger host, an agent killed and restarted, etcd killed and restarted.
func TestCluster(t *testing.T) {
	s := &suite{cluster: newCluster(t), spread: map[string]*api.ContainerGroup{}}
	for _, n := range []hostNet{host1, host2, host3} {
		s.addAgent(n, 4, 8)
	}
	if !t.Run("SpreadOverThreeHosts", s.testSpread) {
		return
	}
	t.Run("LogsExecAttachOnEachHost", s.testStreams)
	t.Run("GroupsCannotReachTheirHost", s.testGuard)
	t.Run("HostListenersSteerPlacement", s.testHostListeners)
	t.Run("TooBigWaitsForABiggerHost", s.testTooBig)
	if !t.Run("KilledAgentsGroupsMove", s.testKillAgent) {
		return
	}
	t.Run("RestartedAgentHoldsNothingTwice", s.testRestartAgent)
	t.Run("EtcdRestart", s.testEtcdRestart)
}

// Three agents show as three Ready hosts at their own addresses; 30
// groups of one resource group spread 10/10/10 over them, each reports its
// host and answers on that host's address, and `skiff host list` counts
// them.
func (s *suite) testSpread(t *testing.T) {
	rows := hostTable(t, s.srv)
	if len(rows) != 3 {
		t.Errorf("skiff host list shows %d hosts, want 3: %+v", len(rows), rows)
	}
	for _, n := range []hostNet{host1, host2, host3} {
		if r := rows[n.name]; r.State != "Ready" || r.PublicAddress != n.addr || r.Groups != 0 || r.CPU != "0/4" || r.MemoryGB != "0/8" {
			t.Errorf("skiff host list: %s is %+v, want Ready at %s with 0 groups, cpu 0/4, memory 0/8", n.name, r, n.addr)
		}
	}

	groups := map[string]*api.ContainerGroup{}
	var names []string
	for i := 1; i <= spreadCount; i++ {
		name := fmt.Sprintf("web-%02d", i)
		groups[name], names = webGroup(s.image, spreadPort(i), api.RestartAlways, 0.1), append(names, name)
	}
	start := time.Now()
	createGroups(t, s.srv.Client, "spread", groups)
	s.spread = waitGroups(t, s.srv, "spread", names, 3*time.Minute, running)
	t.Logf("%d groups created and Running in %.1fs", spreadCount, time.Since(start).Seconds())

	per := map[string]int{}
	for name, g := range s.spread {
		_, host := stateOf(g)
		per[host]++
		n, ok := s.nets[host]
		if !ok {
			t.Errorf("%s runs on %q, not one of the agents", name, host)
			continue
		}
		// Running is the container's start: httpd binds a moment later.
		waitServes(t, n.addr, portOf(g), name, 10*time.Second)
	}
	rows = hostTable(t, s.srv)
	for _, n := range []hostNet{host1, host2, host3} {
		if per[n.name] != spreadCount/3 {
			t.Errorf("the scheduler spread one resource group over three equal hosts as %v, want 10 each", per)
		}
		if r := rows[n.name]; r.Groups != per[n.name] || r.State != "Ready" {
			t.Errorf("skiff host list: %s is %+v, want Ready with %d groups", n.name, r, per[n.name])
		}
		h, err := s.srv.Client.GetHost(t.Context(), n.name)
		if err != nil {
			t.Fatal(err)
		}
		want := 0.1 * float64(per[n.name])
		if a := h.Properties.Allocated; math.Abs(a.CPU-want) > 1e-6 || math.Abs(a.MemoryInGB-want) > 1e-6 {
			t.Errorf("host %s: allocated %+v, want cpu and memory %.1f", n.name, a, want)
		}
	}

	// One group that is never started elsewhere: its host is the one the
	// later cases kill.
	createGroups(t, s.srv.Client, "keep", map[string]*api.ContainerGroup{"stay": webGroup(s.image, 18100, api.RestartNever, 0.1)})
	stay := waitGroups(t, s.srv, "keep", []string{"stay"}, time.Minute, running)["stay"]
	_, s.victim = stateOf(stay)
	if r := hostTable(t, s.srv)[s.victim]; r.Groups != per[s.victim]+1 {
		t.Errorf("skiff host list: %s has %d groups, want %d", s.victim, r.Groups, per[s.victim]+1)
	}
}

// Logs (--follow too), exec and attach reach a group on each host
// through the server, with the CLI.
func (s *suite) testStreams(t *testing.T) {
	for _, n := range []hostNet{host1, host2, host3} {
		name := s.firstOn(n.name)
		t.Run(n.name, func(t *testing.T) {
			t.Parallel()
			if name == "" {
				t.Fatalf("no group runs on %s", n.name)
			}
			logs := mustSkiff(t, s.srv, "container", "logs", "-g", "spread", "-n", name)
			before := lastTick(logs)
			if !strings.Contains(logs, "started ") || before == 0 {
				t.Errorf("skiff container logs %s (on %s): %q, want its started and tick lines", name, n.name, logs)
			}
			f := skiff(t, s.srv, 3500*time.Millisecond, "container", "logs", "-g", "spread", "-n", name, "--follow")
			if after := lastTick(f.stdout); f.code != -1 || after < before+2 {
				t.Errorf("skiff container logs --follow %s (on %s) for 3.5 s: exit %d, last tick %d after %d before: %q %s",
					name, n.name, f.code, after, before, f.stdout, f.stderr)
			}
			ex := skiff(t, s.srv, time.Minute, "container", "exec", "-g", "spread", "-n", name, "--exec-command", `["sh","-c","cat /www/index.html; exit 3"]`)
			if ex.code != 3 || !strings.Contains(ex.stdout, name) {
				t.Errorf("skiff container exec in %s (on %s): exit %d, stdout %q, stderr %q; want exit 3 and its name", name, n.name, ex.code, ex.stdout, ex.stderr)
			}
			at := skiff(t, s.srv, 3*time.Second, "container", "attach", "-g", "spread", "-n", name)
			if lastTick(at.stdout) <= before {
				t.Errorf("skiff container attach %s (on %s) for 3 s printed %q %s, want new ticks", name, n.name, at.stdout, at.stderr)
			}
		})
	}
}

// A group on each host cannot open a connection to a host service on its
// bridge's address (no --allow-host-access): every agent's network guard
// holds, not only the last started one's.
func (s *suite) testGuard(t *testing.T) {
	for _, n := range []hostNet{host1, host2, host3} {
		name := s.firstOn(n.name)
		if name == "" {
			t.Errorf("no group runs on %s", n.name)
			continue
		}
		gw := gatewayOf(t, n.subnet)
		port := testenv.HostListener(t, net.JoinHostPort(gw, "0"))
		script := fmt.Sprintf("echo hello | nc -w 2 %s %d; echo done", gw, port)
		ex := skiff(t, s.srv, time.Minute, "container", "exec", "-g", "spread", "-n", name, "--exec-command", `["sh","-c","`+script+`"]`)
		if strings.Contains(ex.stdout, "host") || !strings.Contains(ex.stdout, "done") {
			t.Errorf("a group on %s reached the host service at %s:%d (exit %d): %q %s", n.name, gw, port, ex.code, ex.stdout, ex.stderr)
		}
	}
}

// A port that a host process listens on, on one host's address, keeps a
// group publishing it off that host (the server asked each agent); on
// every host's address, the PUT is refused as the embedded server refuses
// it, with PortAlreadyInUse and nothing stored.
func (s *suite) testHostListeners(t *testing.T) {
	port := testenv.HostListener(t, host1.addr+":0")
	g := webGroup(s.image, int32(port), api.RestartAlways, 0.1)
	createGroups(t, s.srv.Client, "listen", map[string]*api.ContainerGroup{"steered": g})
	got := waitGroups(t, s.srv, "listen", []string{"steered"}, time.Minute, running)["steered"]
	if h := hostOf(got); h == host1.name {
		t.Errorf("a group publishing %s's listener's port %d was placed on %s", host1.addr, port, h)
	} else {
		waitServes(t, s.nets[h].addr, int32(port), "steered", 10*time.Second)
	}
	if del, err := s.srv.Client.DeleteContainerGroup(t.Context(), "listen", "steered", client.DeleteOptions{}); err != nil {
		t.Fatal(err)
	} else if err := del.Wait(t.Context(), nil); err != nil {
		t.Fatalf("delete steered: %v", err)
	}

	for _, n := range []hostNet{host2, host3} {
		testenv.HostListener(t, net.JoinHostPort(n.addr, strconv.Itoa(port)))
	}
	_, _, err := s.srv.Client.CreateOrUpdateContainerGroup(t.Context(), "listen", "nowhere", webGroup(s.image, int32(port), api.RestartAlways, 0.1))
	if err == nil || !strings.Contains(err.Error(), "PortAlreadyInUse") || !strings.Contains(err.Error(), "already in use on the host address") {
		t.Errorf("a group publishing a port every host listens on: %v, want PortAlreadyInUse", err)
	}
	if _, err := s.srv.Client.GetContainerGroup(t.Context(), "listen", "nowhere"); err == nil {
		t.Errorf("the refused group was stored")
	}
}

// firstOn is the first spread group (by name) that runs on host.
func (s *suite) firstOn(host string) string {
	for _, name := range sortedNames(s.spread) {
		if hostOf(s.spread[name]) == host {
			return name
		}
	}
	return ""
}

// A group that no host can hold (cpu 8 where each offers 4: two
// containers of 4, ACI's most per container) stays Pending with a
// FailedScheduling event that names the reason, and runs on a bigger host
// (cpu 16) once that one joins.
func (s *suite) testTooBig(t *testing.T) {
	huge := webGroup(s.image, 18200, api.RestartAlways, 4)
	huge.Properties.Containers = append(huge.Properties.Containers, api.Container{Name: "side", Properties: api.ContainerProperties{
		Image: s.image, Command: []string{"sleep", "86400"},
		Resources: api.ResourceRequirements{Requests: api.ResourceRequests{CPU: 4, MemoryInGB: 0.1}},
	}})
	createGroups(t, s.srv.Client, "big", map[string]*api.ContainerGroup{"huge": huge})
	failed := func(g *api.ContainerGroup) bool { _, ok := event(g, "FailedScheduling"); return ok }
	g := waitGroups(t, s.srv, "big", []string{"huge"}, 30*time.Second, failed)["huge"]
	ev, _ := event(g, "FailedScheduling")
	if want := "0/3 hosts are available: 3 Insufficient cpu."; ev.Message != want || ev.Type != api.EventWarning {
		t.Errorf("FailedScheduling event %+v, want a Warning %q", ev, want)
	}
	time.Sleep(time.Second)
	g = getGroup(t, s.srv, "big", "huge")
	if state, host := stateOf(g); state != api.GroupPending || host != "" {
		t.Errorf("the group no host fits is %s on %q, want Pending and unplaced", state, host)
	}

	joined := time.Now()
	s.addAgent(hostBig, 16, 16)
	g = waitGroups(t, s.srv, "big", []string{"huge"}, time.Minute, running)["huge"]
	t.Logf("the big host joined; the waiting group Running on it %.1fs later", time.Since(joined).Seconds())
	if _, host := stateOf(g); host != hostBig.name {
		t.Errorf("the big group runs on %q, want %s", host, hostBig.name)
	}
	waitServes(t, hostBig.addr, 18200, "huge", 10*time.Second)
}

// kill -9 of an agent: within 10 s its restartPolicy Always groups run on
// other hosts, say why in their events and answer at their new hosts'
// addresses; its Never group stays; the host shows Lost.
func (s *suite) testKillAgent(t *testing.T) {
	var others []string
	for _, name := range sortedNames(s.spread) {
		if _, host := stateOf(s.spread[name]); host == s.victim {
			s.moved = append(s.moved, name)
		} else {
			others = append(others, name)
		}
	}
	if len(s.moved) == 0 {
		t.Fatalf("no spread group runs on %s", s.victim)
	}
	killed := time.Now()
	s.agents[s.victim].Stop(syscall.SIGKILL)
	elsewhere := func(g *api.ContainerGroup) bool {
		state, host := stateOf(g)
		return state == api.GroupRunning && host != "" && host != s.victim
	}
	moved := waitGroups(t, s.srv, "spread", s.moved, 30*time.Second, elsewhere)
	took := time.Since(killed)
	t.Logf("kill -9 of %s: its %d Always groups Running on other hosts %.1fs later", s.victim, len(s.moved), took.Seconds())
	if took > 10*time.Second {
		t.Errorf("the groups of the killed host ran elsewhere after %.1fs, want at most 10s", took.Seconds())
	}
	for _, name := range s.moved {
		g := moved[name]
		_, host := stateOf(g)
		lost, okL := event(g, "HostLost")
		re, okR := event(g, "Rescheduled")
		if !okL || !okR || !strings.Contains(lost.Message, s.victim) || !strings.Contains(re.Message, host) {
			t.Errorf("%s moved to %s with the events %+v; want HostLost naming %s and Rescheduled naming %s", name, host, g.Properties.InstanceView.Events, s.victim, host)
		}
		waitServes(t, s.nets[host].addr, portOf(g), name, 10*time.Second)
		s.spread[name] = g
	}
	for _, name := range others {
		g := getGroup(t, s.srv, "spread", name)
		if _, host := stateOf(g); host != hostOf(s.spread[name]) {
			t.Errorf("%s was on %s and is now on %s, though its host lives", name, hostOf(s.spread[name]), host)
		}
	}
	stay := getGroup(t, s.srv, "keep", "stay")
	lost, ok := event(stay, "HostLost")
	if _, host := stateOf(stay); host != s.victim || !ok || !strings.Contains(lost.Message, "Never") {
		t.Errorf("the Never group is on %q with the events %+v; want it kept on %s with a HostLost event about its restart policy",
			host, stay.Properties.InstanceView.Events, s.victim)
	}
	if r := hostTable(t, s.srv)[s.victim]; r.State != "Lost" {
		t.Errorf("skiff host list shows the killed host as %+v, want Lost", r)
	}
}

// The killed agent, started again, removes the groups that moved away
// before it reports Ready: none of them runs on it or answers at its
// address any more, its Never group runs there again, the moved groups
// are left alone on their new hosts (not restarted, still answering),
// and every group runs on exactly one host.
func (s *suite) testRestartAgent(t *testing.T) {
	a := s.agents[s.victim]
	restarted := time.Now()
	a.Start()
	s.waitHost(s.victim, "Ready", time.Minute)
	t.Logf("the killed agent %s Ready again %.1fs after its restart", s.victim, time.Since(restarted).Seconds())
	held := runtimeGroups(t, a.DataDir)
	for _, name := range s.moved {
		if pids, ok := held[runtimeID(s.srv, "spread", name)]; ok {
			t.Errorf("%s moved away but its containers (pids %v) still run on %s", name, pids, s.victim)
		}
		if body, err := get(s.nets[s.victim].addr, portOf(s.spread[name])); err == nil {
			t.Errorf("%s moved away but its port still answers %q at %s", name, body, s.nets[s.victim].addr)
		}
	}
	if _, ok := held[runtimeID(s.srv, "keep", "stay")]; !ok {
		t.Errorf("the Never group's containers are gone from %s: %v", s.victim, held)
	}
	here := func(g *api.ContainerGroup) bool { _, host := stateOf(g); return running(g) && host == s.victim }
	waitGroups(t, s.srv, "keep", []string{"stay"}, 30*time.Second, here)
	waitServes(t, s.nets[s.victim].addr, 18100, "stay", 10*time.Second)
	if r := hostTable(t, s.srv)[s.victim]; r.State != "Ready" || r.Groups != 1 {
		t.Errorf("skiff host list shows the restarted host as %+v, want Ready with its one Never group", r)
	}
	// The old host's comeback leaves the moved groups alone on their new
	// hosts: not moved, not restarted, still answering there.
	for _, name := range s.moved {
		g := getGroup(t, s.srv, "spread", name)
		host := hostOf(g)
		if host != hostOf(s.spread[name]) {
			t.Errorf("%s moved again, to %s, when its old host came back", name, host)
		}
		if rc := containerView(g).RestartCount; rc != 0 {
			t.Errorf("%s on %s restarted %d times when its old host came back (events %v)", name, host, rc, containerEvents(g))
		}
		if body, err := get(s.nets[host].addr, portOf(g)); err != nil || body != name {
			t.Errorf("%s no longer answers on its new host %s after its old host came back: %q, %v", name, host, body, err)
		}
	}
	s.eachRunsOnce(t, s.all())
}

// etcd killed and started again: the API answers, the hosts are Ready,
// no group moved or runs twice, and a group created afterwards runs. The
// agents' leases (and the leader's) are kept by etcd across its restart,
// so a short outage loses no host.
func (s *suite) testEtcdRestart(t *testing.T) {
	before := map[groupRef]string{}
	for _, g := range s.all() {
		_, before[g] = stateOf(getGroup(t, s.srv, g.rg, g.name))
	}
	// A group that never moved: its port answers throughout.
	var probe string
	for _, name := range sortedNames(s.spread) {
		if !slices.Contains(s.moved, name) {
			probe = name
			break
		}
	}
	probeHost := hostOf(s.spread[probe])

	s.etcd.Kill()
	down := time.Now()
	// The groups keep serving while etcd is down.
	if body, err := get(s.nets[probeHost].addr, portOf(s.spread[probe])); err != nil || body != probe {
		t.Errorf("while etcd was down %s answered %q, %v", probe, body, err)
	}
	time.Sleep(3*time.Second - time.Since(down))
	s.etcd.Restart(t)
	t.Logf("etcd was down for %.1fs", time.Since(down).Seconds())

	for name := range s.agents {
		s.waitHost(name, "Ready", 30*time.Second)
	}
	for name, r := range hostTable(t, s.srv) {
		if r.State != "Ready" {
			t.Errorf("after etcd's restart skiff host list shows %s as %+v, want Ready", name, r)
		}
	}
	createGroups(t, s.srv.Client, "after", map[string]*api.ContainerGroup{"fresh": webGroup(s.image, 18300, api.RestartAlways, 0.1)})
	fresh := waitGroups(t, s.srv, "after", []string{"fresh"}, time.Minute, running)["fresh"]
	_, host := stateOf(fresh)
	waitServes(t, s.nets[host].addr, 18300, "fresh", 10*time.Second)

	// Every group is Running on the host it was on (none moved).
	byRG := map[string][]string{}
	for g := range before {
		byRG[g.rg] = append(byRG[g.rg], g.name)
	}
	for rg, names := range byRG {
		waitGroups(t, s.srv, rg, names, 30*time.Second, func(g *api.ContainerGroup) bool {
			return running(g) && hostOf(g) == before[groupRef{rg, g.Name}]
		})
	}
	s.eachRunsOnce(t, append(s.all(), groupRef{"after", "fresh"}))
}

// all are the groups the suite has created before its etcd case.
func (s *suite) all() []groupRef {
	refs := []groupRef{{"keep", "stay"}, {"big", "huge"}}
	for _, name := range sortedNames(s.spread) {
		refs = append(refs, groupRef{"spread", name})
	}
	return refs
}
