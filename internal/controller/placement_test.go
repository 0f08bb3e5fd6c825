package controller_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/lifecycle"
	"github.com/skiff-sh/skiff/internal/store"
)

// The cluster mode's controller (no fixed host): placement by the
// scheduler and the moves off a lost host, on the real store with hosts
// whose heartbeats the test holds (no agent runs: the groups stay Creating,
// which is all placement needs).

const hostTTL = time.Second

// joinHost registers a Ready host offering cpu cores and keeps its
// heartbeat until the returned function is called.
func (e *env) joinHost(name string, cpu float64) (stop func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	now := time.Now().UTC()
	h := store.Host{Name: name, OSType: "Linux", State: store.HostReady, Capacity: store.Resources{CPU: cpu, MemoryGB: 16},
		Allocatable: store.Resources{CPU: cpu, MemoryGB: 16}, JoinedAt: now, UpdatedAt: now}
	if err := e.st.PutHost(e.t.Context(), h); err != nil {
		e.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.st.Heartbeat(ctx, name, hostTTL)
	}()
	stop = func() {
		cancel()
		<-done
	}
	e.t.Cleanup(stop)
	return stop
}

// putSized is put with one container's cpu request and restart policy.
func (e *env) putSized(name string, cpu float64, restart string) {
	e.t.Helper()
	e.putWith("rg", name, "busybox", func(cg *api.ContainerGroup) {
		cg.Properties.RestartPolicy = restart
		cg.Properties.Containers[0].Properties.Resources.Requests = api.ResourceRequests{CPU: cpu, MemoryInGB: 0.5}
	})
}

func (e *env) startScheduling(ctx context.Context) {
	e.t.Helper()
	if err := controller.New(controller.Config{Store: e.st}).Start(ctx); err != nil {
		e.t.Fatal(err)
	}
}

func events(cg *store.ContainerGroup) string {
	var out []string
	for _, ev := range cg.Events {
		out = append(out, ev.Name+": "+ev.Message)
	}
	return strings.Join(out, " | ")
}

func TestClusterPlacement(t *testing.T) {
	e := newEnv(t)
	e.joinHost("h1", 4)
	e.joinHost("h2", 4)
	e.startScheduling(t.Context())
	for _, n := range []string{"a", "b", "c", "d"} {
		e.putSized(n, 1, api.RestartAlways)
	}
	per := map[string]int{}
	for _, n := range []string{"a", "b", "c", "d"} {
		var cg *store.ContainerGroup
		e.waitFor(func() (bool, string) {
			cg = e.group("rg", n)
			return cg.Host != "" && provisioning(cg) == lifecycle.Creating, n + " placed and Creating"
		})
		per[cg.Host]++
		if !strings.Contains(events(cg), "Scheduled: Placed on host "+cg.Host) {
			t.Errorf("%s: events %q, want a Scheduled event naming %s", n, events(cg), cg.Host)
		}
	}
	if per["h1"] != 2 || per["h2"] != 2 {
		t.Errorf("four groups of one resource group over two equal hosts: %v, want 2 and 2", per)
	}

	// Too big for both: Pending, with the reason; placed once a bigger
	// host joins.
	e.putSized("big", 8, api.RestartAlways)
	e.waitFor(func() (bool, string) {
		cg := e.group("rg", "big")
		return strings.Contains(events(cg), "FailedScheduling: 0/2 hosts are available: 2 Insufficient cpu."), "a FailedScheduling event, got " + events(cg)
	})
	if cg := e.group("rg", "big"); cg.Host != "" || provisioning(cg) != lifecycle.Pending {
		t.Fatalf("a group that fits nowhere: host %q, %s; want unplaced and Pending", cg.Host, provisioning(cg))
	}
	e.joinHost("h3", 16)
	e.waitFor(func() (bool, string) {
		cg := e.group("rg", "big")
		return cg.Host == "h3", "big placed on h3 once it joined, host " + cg.Host
	})
}

func TestClusterHostLost(t *testing.T) {
	e := newEnv(t)
	stop1 := e.joinHost("h1", 4)
	e.joinHost("h2", 4)
	e.startScheduling(t.Context())
	e.putSized("always", 1, api.RestartAlways)
	e.putSized("onfailure", 1, api.RestartOnFailure)
	e.putSized("never", 1, api.RestartNever)
	e.putSized("doomed", 1, api.RestartAlways)
	placed := map[string]string{}
	for _, n := range []string{"always", "onfailure", "never", "doomed"} {
		e.waitFor(func() (bool, string) {
			placed[n] = e.group("rg", n).Host
			return placed[n] != "", n + " placed"
		})
	}
	// Everything onto h1 so that the loss moves all kinds: pin them there
	// as a PUT's Pending would not (the controller owns Host).
	for _, n := range []string{"always", "onfailure", "never", "doomed"} {
		if _, err := e.st.UpdateContainerGroup(t.Context(), sub, "rg", n, func(cg *store.ContainerGroup) error {
			cg.Host = "h1"
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	e.remove("rg", "doomed") // Deleting on h1: no agent will ever remove it

	stop1()
	lost := time.Now()
	e.waitFor(func() (bool, string) {
		h, err := e.st.GetHost(t.Context(), "h1")
		return err == nil && h.State == store.HostLost, "h1 to be Lost"
	})
	if d := time.Since(lost); d > hostTTL+5*time.Second {
		t.Errorf("h1 was marked lost %s after its heartbeat stopped (ttl %s)", d, hostTTL)
	}
	for _, n := range []string{"always", "onfailure"} {
		e.waitFor(func() (bool, string) {
			cg := e.group("rg", n)
			return cg.Host == "h2", n + " moved to h2, on " + cg.Host
		})
		ev := events(e.group("rg", n))
		if !strings.Contains(ev, "HostLost: Host h1 stopped responding.") || !strings.Contains(ev, "Rescheduled: Placed on host h2 after host h1 was lost.") {
			t.Errorf("%s: events %q, want HostLost and Rescheduled", n, ev)
		}
	}
	e.waitGone("rg", "doomed")
	e.waitFor(func() (bool, string) {
		return strings.Contains(events(e.group("rg", "never")), "HostLost"), "a HostLost event on the Never group"
	})
	if cg := e.group("rg", "never"); cg.Host != "h1" {
		t.Errorf("restartPolicy Never: moved to %q, want it left on h1", cg.Host)
	}
}
