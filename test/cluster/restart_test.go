package cluster

import (
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
)

// An agent killed with SIGKILL and started again before --host-lost-after
// (15 s here) keeps its containers: the same processes (pids, start time,
// one "started" line in the log), restartCount 0, the port answering
// throughout, no HostLost; and its host is still Ready once the killed
// process's heartbeat would have run out.
func TestAgentRestartedWithinHostLostAfterKeepsItsContainers(t *testing.T) {
	const lostAfter = 15 * time.Second
	c := newCluster(t, "--host-lost-after", lostAfter.String())
	a := c.addAgent(host3, 4, 8)
	createGroups(t, c.srv.Client, "steady", map[string]*api.ContainerGroup{"steady": webGroup(c.image, 18601, api.RestartAlways, 0.1)})
	g := waitGroups(t, c.srv, "steady", []string{"steady"}, time.Minute, running)["steady"]
	waitServes(t, host3.addr, 18601, "steady", 10*time.Second)
	id := runtimeID(c.srv, "steady", "steady")
	pids := runtimeGroups(t, a.DataDir)[id]
	startTime := containerView(g).CurrentState.StartTime
	if len(pids) == 0 || startTime == "" {
		t.Fatalf("the group runs no container on %s (%v) or has no start time (%+v)", host3.name, pids, containerView(g))
	}

	killed := time.Now()
	a.Stop(syscall.SIGKILL)
	if body, err := get(host3.addr, 18601); err != nil || body != "steady" {
		t.Errorf("with its agent killed the group answered %q, %v", body, err)
	}
	a.Start()
	if d := time.Since(killed); d >= lostAfter {
		t.Fatalf("the agent took %.1fs to start again, beyond --host-lost-after %s", d.Seconds(), lostAfter)
	}
	c.waitHost(host3.name, "Ready", lostAfter)
	t.Logf("the killed agent Ready again %.1fs after the kill", time.Since(killed).Seconds())

	check := func(when string) {
		t.Helper()
		g := getGroup(t, c.srv, "steady", "steady")
		cv := containerView(g)
		if state, host := stateOf(g); state != api.GroupRunning || host != host3.name {
			t.Errorf("%s: the group is %s on %q, want Running on %s", when, state, host, host3.name)
		}
		if cv.RestartCount != 0 || cv.CurrentState == nil || cv.CurrentState.StartTime != startTime {
			t.Errorf("%s: the container shows restartCount %d and %+v, want 0 and the start time %s", when, cv.RestartCount, cv.CurrentState, startTime)
		}
		if now := runtimeGroups(t, a.DataDir)[id]; !slices.Equal(now, pids) {
			t.Errorf("%s: the group's container pids are %v, were %v", when, now, pids)
		}
		if logs := logOf(t, c.srv, "steady", "steady"); strings.Count(logs, "started ") != 1 {
			t.Errorf("%s: the container's log holds %d started lines, want 1:\n%s", when, strings.Count(logs, "started "), logs)
		}
		if names := eventNames(g); slices.Contains(names, "HostLost") {
			t.Errorf("%s: the group's events %v hold HostLost", when, names)
		}
		if body, err := get(host3.addr, 18601); err != nil || body != "steady" {
			t.Errorf("%s: the group answered %q, %v", when, body, err)
		}
	}
	check("just after the restart")

	// The killed process's heartbeat would have run out by now.
	time.Sleep(time.Until(killed.Add(lostAfter + 3*time.Second)))
	check("after --host-lost-after")
	if r := hostTable(t, c.srv)[host3.name]; r.State != "Ready" || r.Groups != 1 {
		t.Errorf("skiff host list shows %+v, want Ready with 1 group", r)
	}
	if logHas(c.srv.Log(), "host lost") {
		t.Errorf("the server lost the host:\n%s", c.srv.LogTail(20))
	}
}

// containerView is the instance view of a group's first container.
func containerView(g *api.ContainerGroup) api.ContainerInstanceView {
	if cs := g.Properties.Containers; len(cs) > 0 && cs[0].Properties.InstanceView != nil {
		return *cs[0].Properties.InstanceView
	}
	return api.ContainerInstanceView{}
}

// containerEvents are the names of the events of a group's first
// container.
func containerEvents(g *api.ContainerGroup) []string {
	var names []string
	for _, e := range containerView(g).Events {
		names = append(names, e.Name)
	}
	return names
}
