package cluster

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/testenv"
	etcdenv "github.com/skiff-sh/skiff/internal/testenv/etcd"
)

// leadingLine is what a server logs when it wins the election.
const leadingLine = "leading the cluster"

// Two servers on one etcd (the second opens the first one's secrets with
// its seal key) share the admin token and serve the same state. kill -9 of
// the leading one: within 10 s the other leads (a group created through
// it is placed and runs), and every request the dead server accepted just
// before it died is carried out: its creates run, its delete completes,
// and their operations, polled on the survivor, succeed.
func TestLeaderFailover(t *testing.T) {
	image := webImage(t)
	etcd := etcdenv.Start(t)
	first := testenv.StartSkiffServer(t, testenv.SkiffServerOptions{Binary: skiffBin, Etcd: etcd.Endpoints, NoAgent: true, LogLevel: "info"})
	second := testenv.StartSkiffServer(t, testenv.SkiffServerOptions{Binary: skiffBin, Etcd: etcd.Endpoints, NoAgent: true, LogLevel: "info",
		SealKeyFile: first.SealKeyFile()})
	if second.Token != first.Token || second.Subscription != first.Subscription {
		t.Fatalf("the second server's admin token and subscription differ from the first one's")
	}
	ag := startAgent(t, first, []string{first.Endpoint, second.Endpoint}, host2, 4, 8)
	first.DeleteAtCleanup()
	second.DeleteAtCleanup()
	waitHostState(t, second, host2.name, "Ready", time.Minute)

	var leader, survivor *testenv.SkiffServer
	eventually(t, 30*time.Second, "one server leading", func() string {
		a, b := logHas(first.Log(), leadingLine), logHas(second.Log(), leadingLine)
		switch {
		case a && b:
			t.Fatalf("both servers lead:\n%s\n%s", first.LogTail(10), second.LogTail(10))
		case a:
			leader, survivor = first, second
		case b:
			leader, survivor = second, first
		default:
			return "neither server has logged " + leadingLine
		}
		return ""
	})

	// The follower's API serves the shared state: a group created through
	// it runs (the leader places it).
	createGroups(t, survivor.Client, "ha", map[string]*api.ContainerGroup{"doomed": webGroup(image, 18501, api.RestartAlways, 0.1)})
	waitGroups(t, survivor, "ha", []string{"doomed"}, time.Minute, running)

	// What the leader accepts just before it dies.
	var accepted []*client.Poller
	var created []string
	for i := 1; i <= 5; i++ {
		name := fmt.Sprintf("late-%d", i)
		_, p, err := leader.Client.CreateOrUpdateContainerGroup(t.Context(), "ha", name, webGroup(image, int32(18510+i), api.RestartAlways, 0.1))
		if err != nil {
			t.Fatalf("the leader refused %s: %v", name, err)
		}
		accepted, created = append(accepted, p), append(created, name)
	}
	del, err := leader.Client.DeleteContainerGroup(t.Context(), "ha", "doomed", client.DeleteOptions{})
	if err != nil {
		t.Fatalf("the leader refused the delete: %v", err)
	}
	accepted = append(accepted, del)

	killed := time.Now()
	leader.Stop(syscall.SIGKILL)
	createGroups(t, survivor.Client, "ha", map[string]*api.ContainerGroup{"after": webGroup(image, 18502, api.RestartAlways, 0.1)})
	waitGroups(t, survivor, "ha", []string{"after"}, 30*time.Second, running)
	took := time.Since(killed)
	t.Logf("kill -9 of the leader: a group created through the other server Running %.1fs later", took.Seconds())
	if took > 10*time.Second {
		t.Errorf("the other server took over after %.1fs, want at most 10s", took.Seconds())
	}
	if !logHas(survivor.Log(), leadingLine) {
		t.Errorf("the surviving server never logged %q:\n%s", leadingLine, survivor.LogTail(20))
	}

	waitGroups(t, survivor, "ha", created, 30*time.Second, running)
	for i, name := range created {
		waitServes(t, host2.addr, int32(18511+i), name, 10*time.Second)
	}
	eventually(t, 30*time.Second, "the delete the dead leader accepted", func() string {
		_, err := survivor.Client.GetContainerGroup(t.Context(), "ha", "doomed")
		if errors.Is(err, client.ErrNotFound) {
			return ""
		}
		return fmt.Sprintf("the group is still there (%v)", err)
	})
	if _, ok := runtimeGroups(t, ag.DataDir)[runtimeID(survivor, "ha", "doomed")]; ok {
		t.Errorf("the deleted group's containers still run on %s", host2.name)
	}
	// Its operations, polled where the user can still reach the API.
	for _, p := range accepted {
		sp, err := survivor.Client.ResumePoller(p.ResumeToken())
		if err != nil {
			t.Fatal(err)
		}
		if err := sp.Wait(t.Context(), nil); err != nil {
			t.Errorf("the operation %s, accepted by the dead leader, polled on the survivor: %v", p.URL(), err)
		}
	}
}
