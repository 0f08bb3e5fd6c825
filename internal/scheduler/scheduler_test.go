package scheduler_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/scheduler"
	"github.com/skiff-sh/skiff/internal/store"
)

// readyHost is a Ready, Alive Linux host with cpu cores and mem GB
// allocatable.
func readyHost(name string, cpu, mem float64) store.Host {
	return store.Host{
		Name: name, OSType: "Linux", State: store.HostReady, Alive: true,
		Capacity:    store.Resources{CPU: cpu, MemoryGB: mem},
		Allocatable: store.Resources{CPU: cpu, MemoryGB: mem},
	}
}

func newScheduler(hosts ...store.Host) *scheduler.Scheduler {
	s := scheduler.New()
	for _, h := range hosts {
		s.SetHost(h)
	}
	return s
}

// req is a request of key in resource group sub/rg.
func req(key string, cpu, mem float64) scheduler.Request {
	return scheduler.Request{Key: "sub/rg/" + key, ResourceGroup: "sub/rg", CPU: cpu, MemoryGB: mem}
}

func withPorts(r scheduler.Request, ports ...api.Port) scheduler.Request {
	r.Ports = ports
	return r
}

func mustSchedule(t *testing.T, s *scheduler.Scheduler, r scheduler.Request) string {
	t.Helper()
	h, err := s.Schedule(r)
	if err != nil {
		t.Fatalf("Schedule(%s): %v", r.Key, err)
	}
	return h
}

// refused schedules r, which must fit nowhere and be placed nowhere, and
// returns the message.
func refused(t *testing.T, s *scheduler.Scheduler, r scheduler.Request) string {
	t.Helper()
	msg := refusedKept(t, s, r)
	if _, placed := s.Placement(r.Key); placed {
		t.Fatalf("a refused %s is placed", r.Key)
	}
	return msg
}

// refusedKept schedules r, which must fit nowhere, and returns the message
// (r may be placed already, and stay so).
func refusedKept(t *testing.T, s *scheduler.Scheduler, r scheduler.Request) string {
	t.Helper()
	h, err := s.Schedule(r)
	if err == nil {
		t.Fatalf("Schedule(%s) = %q, want it refused", r.Key, h)
	}
	var u *scheduler.Unschedulable
	if !errors.As(err, &u) {
		t.Fatalf("Schedule(%s) error %T %v, want *Unschedulable", r.Key, err, err)
	}
	if !errdefs.Is(err, errdefs.ErrConflict) || errdefs.CodeOf(err) != scheduler.CodeUnschedulable {
		t.Fatalf("Schedule(%s) error class/code: conflict=%v code=%q", r.Key, errdefs.Is(err, errdefs.ErrConflict), errdefs.CodeOf(err))
	}
	return err.Error()
}

func wantMessage(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("message\n got: %s\nwant: %s", got, want)
	}
}

func TestNoHostHasJoined(t *testing.T) {
	s := scheduler.New()
	wantMessage(t, refused(t, s, req("a", 1, 1)), "0/0 hosts are available: no host has joined.")

	s.SetHost(readyHost("h1", 4, 16))
	s.RemoveHost("h1")
	wantMessage(t, refused(t, s, req("a", 1, 1)), "0/0 hosts are available: no host has joined.")
}

func TestNotReadyOrNotAliveTakesNothing(t *testing.T) {
	notReady := readyHost("h1", 4, 16)
	notReady.State = store.HostNotReady
	dead := readyHost("h2", 4, 16)
	dead.Alive = false
	lost := readyHost("h3", 4, 16)
	lost.State = store.HostLost
	s := newScheduler(notReady, dead, lost)
	wantMessage(t, refused(t, s, req("a", 1, 1)), "0/3 hosts are available: 3 not ready.")

	s.SetHost(readyHost("h2", 4, 16)) // its heartbeat is back
	if h := mustSchedule(t, s, req("a", 1, 1)); h != "h2" {
		t.Fatalf("placed on %s, want the host that became alive, h2", h)
	}
}

func TestNotReadyHostKeepsItsGroupsCounted(t *testing.T) {
	s := newScheduler(readyHost("h1", 4, 16))
	mustSchedule(t, s, req("a", 3, 4))
	down := readyHost("h1", 4, 16)
	down.Alive = false
	s.SetHost(down)
	if used, n := s.Usage("h1"); used.CPU != 3 || used.MemoryGB != 4 || n != 1 {
		t.Fatalf("Usage of the host gone not alive = %+v, %d groups; want 3 cpu, 4 GB, 1 group", used, n)
	}
	s.SetHost(readyHost("h1", 4, 16))
	wantMessage(t, refused(t, s, req("b", 2, 1)), "0/1 hosts are available: 1 Insufficient cpu.")
}

func TestInsufficientResources(t *testing.T) {
	s := newScheduler(readyHost("h1", 2, 4), readyHost("h2", 1, 8), readyHost("h3", 8, 32))
	mustSchedule(t, s, req("big", 7, 30)) // fills h3 but 1 cpu and 2 GB

	wantMessage(t, refused(t, s, req("a", 1.5, 6)),
		"0/3 hosts are available: 2 Insufficient cpu, 2 Insufficient memory.")

	// Requests that fit exactly are placed.
	if h := mustSchedule(t, s, req("exact", 2, 4)); h != "h1" {
		t.Fatalf("2 cpu, 4 GB placed on %s, want h1 (the only host with both free)", h)
	}
	if h := mustSchedule(t, s, req("tenths", 0.1, 0.3)); h != "h2" {
		t.Fatalf("0.1 cpu, 0.3 GB placed on %s, want h2 (most free)", h)
	}
}

func TestPublicPortInUse(t *testing.T) {
	s := newScheduler(readyHost("h1", 8, 32))
	mustSchedule(t, s, withPorts(req("web", 1, 1), api.Port{Protocol: "TCP", Port: 80}))

	for _, p := range []api.Port{{Protocol: "TCP", Port: 80}, {Protocol: "", Port: 80}, {Protocol: "tcp", Port: 80}} {
		wantMessage(t, refused(t, s, withPorts(req("web2", 1, 1), api.Port{Protocol: "TCP", Port: 443}, p)),
			"0/1 hosts are available: 1 port TCP/80 is in use.")
	}
	// Another protocol or port is free.
	mustSchedule(t, s, withPorts(req("dns", 1, 1), api.Port{Protocol: "UDP", Port: 80}))
	wantMessage(t, refused(t, s, withPorts(req("dns2", 1, 1), api.Port{Protocol: "udp", Port: 80})),
		"0/1 hosts are available: 1 port UDP/80 is in use.")
	mustSchedule(t, s, withPorts(req("web3", 1, 1), api.Port{Port: 8080}))

	// A second host takes the port.
	s.SetHost(readyHost("h2", 2, 2))
	if h := mustSchedule(t, s, withPorts(req("web2", 1, 1), api.Port{Port: 80})); h != "h2" {
		t.Fatalf("a second TCP/80 placed on %s, want h2", h)
	}
}

// A host that refused a group's ports when it was accepted (a host process
// listens on one) is passed over, whatever its free capacity.
func TestHostThatRefusedThePortsIsPassedOver(t *testing.T) {
	s := newScheduler(readyHost("big", 8, 32), readyHost("small", 2, 4))
	r := withPorts(req("web", 1, 1), api.Port{Protocol: "TCP", Port: 8080})
	r.RefusedBy = []string{"BIG"}
	if h := mustSchedule(t, s, r); h != "small" {
		t.Fatalf("placed on %s, want small (big refused the port)", h)
	}
	r = withPorts(req("web2", 1, 1), api.Port{Protocol: "TCP", Port: 9090})
	r.RefusedBy = []string{"big", "small"}
	wantMessage(t, refused(t, s, r), "0/2 hosts are available: 2 refused the ports.")
}

func TestOSType(t *testing.T) {
	s := newScheduler(readyHost("h1", 8, 32), readyHost("h2", 8, 32))
	win := req("win", 1, 1)
	win.OSType = "windows"
	wantMessage(t, refused(t, s, win), "0/2 hosts are available: 2 osType Windows not offered.")

	w := readyHost("w1", 2, 4)
	w.OSType = "Windows"
	s.SetHost(w)
	if h := mustSchedule(t, s, win); h != "w1" {
		t.Fatalf("a Windows group placed on %s, want w1", h)
	}
	// "" is Linux, never on the Windows host even when it is freer.
	for i := range 3 {
		lin := req(fmt.Sprint("lin", i), 7, 30)
		if i == 0 {
			lin.OSType = "Linux"
		}
		if i == 2 {
			wantMessage(t, refused(t, s, lin),
				"0/3 hosts are available: 2 Insufficient cpu, 2 Insufficient memory, 1 osType Linux not offered.")
			break
		}
		if h := mustSchedule(t, s, lin); h == "w1" {
			t.Fatalf("Linux group %d placed on the Windows host", i)
		}
	}
}

func TestZones(t *testing.T) {
	z := func(name, zone string) store.Host {
		h := readyHost(name, 8, 32)
		h.Zone = zone
		return h
	}
	s := newScheduler(z("h1", "1"), z("h2", "2"), z("h3", ""))
	r := req("a", 1, 1)
	r.Zones = []string{"3"}
	wantMessage(t, refused(t, s, r), "0/3 hosts are available: 3 not in zone(s) 3.")
	r.Zones = []string{"3", "4"}
	wantMessage(t, refused(t, s, r), "0/3 hosts are available: 3 not in zone(s) 3, 4.")

	r.Zones = []string{"2", "3"}
	for i := range 3 {
		r.Key = fmt.Sprint("sub/rg/z", i)
		if h := mustSchedule(t, s, r); h != "h2" {
			t.Fatalf("a zone 2/3 group placed on %s, want h2", h)
		}
	}
	// Without zones any host will do: the emptier ones first.
	if h := mustSchedule(t, s, req("any", 1, 1)); h == "h2" {
		t.Fatalf("a group without zones placed on the busiest host")
	}
}

func shareReq(key, share string) scheduler.Request {
	r := req(key, 1, 1)
	r.ResourceGroup = "sub/" + key // no spread between them
	r.Shares = []string{share}
	return r
}

func TestShareOnALocalHostPinsItsGroups(t *testing.T) {
	s := newScheduler(readyHost("h1", 4, 16), readyHost("h2", 4, 16))
	first := mustSchedule(t, s, shareReq("a", "acct/data"))
	if first != "h1" {
		t.Fatalf("first placed on %s, want h1 (tie: the lower name)", first)
	}
	// h2 is emptier, yet the share is on h1.
	for _, k := range []string{"b", "c", "d"} {
		if h := mustSchedule(t, s, shareReq(k, "acct/data")); h != "h1" {
			t.Fatalf("%s (share acct/data) placed on %s, want h1 where the share is", k, h)
		}
	}
	wantMessage(t, refused(t, s, shareReq("e", "acct/data")),
		"0/2 hosts are available: 1 Insufficient cpu, 1 share acct/data is on host h1.")

	// Another share (or the same name in another account, or another case:
	// another directory) is free.
	for _, sh := range []string{"acct/other", "acct2/data", "acct/Data"} {
		if h := mustSchedule(t, s, shareReq("x-"+sh, sh)); h != "h2" {
			t.Fatalf("share %s placed on %s, want h2", sh, h)
		}
	}

	// Once the groups using it are gone, the share goes anywhere.
	for _, k := range []string{"a", "b", "c", "d"} {
		s.Unassign("sub/rg/" + k)
	}
	s.Unassign("sub/rg/x-acct/other")
	s.Unassign("sub/rg/x-acct2/data")
	s.Unassign("sub/rg/x-acct/Data")
	mustSchedule(t, s, req("fill-h1", 3.5, 1)) // h1 busier
	if h := mustSchedule(t, s, shareReq("e", "acct/data")); h != "h2" {
		t.Fatalf("the released share placed on %s, want h2", h)
	}
}

func TestShareOnSharedSharesHosts(t *testing.T) {
	nfs := func(name string, cpu float64) store.Host {
		h := readyHost(name, cpu, 16)
		h.SharedShares = true
		return h
	}
	s := newScheduler(nfs("n1", 4), nfs("n2", 4), readyHost("local", 64, 256))
	if h := mustSchedule(t, s, shareReq("a", "acct/data")); h != "local" {
		t.Fatalf("first placed on %s, want the emptiest host, local", h)
	}
	s.Unassign("sub/rg/a")
	s.Assign(shareReq("a", "acct/data"), "n1")
	// Held on a shared host: any shared host, never the local one.
	got := map[string]int{}
	for i := range 7 { // n1 and n2 have room for 7 more
		got[mustSchedule(t, s, shareReq(fmt.Sprint("s", i), "acct/data"))]++
	}
	if got["local"] != 0 || got["n1"] != 3 || got["n2"] != 4 {
		t.Fatalf("placements %v: want n1 full (3 more) and n2 full (4)", got)
	}
	wantMessage(t, refused(t, s, shareReq("s7", "acct/data")),
		"0/3 hosts are available: 2 Insufficient cpu, 1 share acct/data is on the hosts with shared shares.")

	// A group of the share on a local host pins it there.
	s.Assign(shareReq("pin", "acct/data"), "local")
	s.Unassign("sub/rg/s0")
	s.Unassign("sub/rg/s1")
	if h := mustSchedule(t, s, shareReq("s8", "acct/data")); h != "local" {
		t.Fatalf("placed on %s, want local where a copy of the share is", h)
	}
}

func TestMessageCountsEveryReasonSorted(t *testing.T) {
	s := newScheduler(readyHost("h1", 1, 16), readyHost("h2", 1, 16), readyHost("h3", 8, 32))
	mustSchedule(t, s, withPorts(req("web", 1, 1), api.Port{Protocol: "TCP", Port: 80}))
	if h, _ := s.Placement("sub/rg/web"); h != "h3" {
		t.Fatalf("web on %s, want h3", h)
	}
	wantMessage(t, refused(t, s, withPorts(req("web2", 2, 1), api.Port{Protocol: "TCP", Port: 80})),
		"0/3 hosts are available: 2 Insufficient cpu, 1 port TCP/80 is in use.")
}

func TestLeastAllocatedWins(t *testing.T) {
	s := newScheduler(readyHost("a", 8, 32), readyHost("b", 8, 32), readyHost("c", 16, 16))
	s.Assign(scheduler.Request{Key: "x/y/busy", ResourceGroup: "x/y", CPU: 4, MemoryGB: 4}, "a")
	// Memory-heavy: b (after: 7/8 cpu, 24/32 GB free: 0.81) beats c, which
	// has more cpu free (15/16, 8/16: 0.72), and a (3/8, 20/32: 0.5).
	r := scheduler.Request{Key: "sub/mem/m", ResourceGroup: "sub/mem", CPU: 1, MemoryGB: 8}
	if h := mustSchedule(t, s, r); h != "b" {
		t.Fatalf("a memory-heavy group placed on %s, want b, the least allocated after placement", h)
	}
	// Cpu-heavy: c (12/16, 15/16: 0.84) beats b (3/8, 23/32: 0.55) and a.
	r = scheduler.Request{Key: "sub/cpu/c", ResourceGroup: "sub/cpu", CPU: 4, MemoryGB: 1}
	if h := mustSchedule(t, s, r); h != "c" {
		t.Fatalf("a cpu-heavy group placed on %s, want c", h)
	}
}

func TestTieBreakByName(t *testing.T) {
	for _, order := range [][]string{{"b", "a", "c"}, {"c", "b", "a"}, {"a", "c", "b"}} {
		s := scheduler.New()
		for _, n := range order {
			s.SetHost(readyHost(n, 4, 4))
		}
		r := scheduler.Request{Key: "s/r/g", ResourceGroup: "s/r", CPU: 1, MemoryGB: 1}
		if h := mustSchedule(t, s, r); h != "a" {
			t.Fatalf("hosts set in order %v: placed on %s, want a", order, h)
		}
	}
}

func placements(s *scheduler.Scheduler, keys []string) map[string]int {
	got := map[string]int{}
	for _, k := range keys {
		h, _ := s.Placement(k)
		got[h]++
	}
	return got
}

func TestSpreadOverEqualHosts(t *testing.T) {
	s := newScheduler(readyHost("h1", 64, 256), readyHost("h2", 64, 256), readyHost("h3", 64, 256))
	for _, rg := range []string{"one", "two"} {
		var keys []string
		for i := range 30 {
			r := scheduler.Request{Key: fmt.Sprintf("sub/%s/g%d", rg, i), ResourceGroup: "sub/" + rg, CPU: 1, MemoryGB: 2}
			mustSchedule(t, s, r)
			keys = append(keys, r.Key)
		}
		if got := placements(s, keys); got["h1"] != 10 || got["h2"] != 10 || got["h3"] != 10 {
			t.Fatalf("resource group %s: %v, want 10 per host", rg, got)
		}
	}
	for _, h := range []string{"h1", "h2", "h3"} {
		if used, n := s.Usage(h); used.CPU != 20 || used.MemoryGB != 40 || n != 20 {
			t.Fatalf("Usage(%s) = %+v, %d; want 20 cpu, 40 GB, 20 groups", h, used, n)
		}
	}
}

func TestSpreadBeatsASlightlyEmptierHost(t *testing.T) {
	hosts := []store.Host{readyHost("big", 64, 256), readyHost("small1", 16, 64), readyHost("small2", 16, 64)}

	// Groups of different resource groups all go to the emptiest host.
	s := newScheduler(hosts...)
	var keys []string
	for i := range 3 {
		r := scheduler.Request{Key: fmt.Sprintf("sub/rg%d/g", i), ResourceGroup: fmt.Sprint("sub/rg", i), CPU: 1, MemoryGB: 2}
		mustSchedule(t, s, r)
		keys = append(keys, r.Key)
	}
	if got := placements(s, keys); got["big"] != 3 {
		t.Fatalf("groups of three resource groups: %v, want all on big", got)
	}

	// Groups of one resource group spread over the hosts.
	s = newScheduler(hosts...)
	keys = nil
	for i := range 3 {
		r := scheduler.Request{Key: fmt.Sprintf("sub/rg/g%d", i), ResourceGroup: "sub/rg", CPU: 1, MemoryGB: 2}
		mustSchedule(t, s, r)
		keys = append(keys, r.Key)
	}
	if got := placements(s, keys); got["big"] != 1 || got["small1"] != 1 || got["small2"] != 1 {
		t.Fatalf("groups of one resource group: %v, want one per host", got)
	}
}

func TestUnassignFreesCapacityAndPorts(t *testing.T) {
	s := newScheduler(readyHost("h1", 2, 4))
	mustSchedule(t, s, withPorts(req("a", 1, 2), api.Port{Port: 80}))
	mustSchedule(t, s, req("b", 1, 2))
	wantMessage(t, refused(t, s, req("c", 1, 1)), "0/1 hosts are available: 1 Insufficient cpu, 1 Insufficient memory.")

	s.Unassign("SUB/RG/A") // keys fold case
	if used, n := s.Usage("H1"); used.CPU != 1 || used.MemoryGB != 2 || n != 1 {
		t.Fatalf("Usage after Unassign = %+v, %d; want 1 cpu, 2 GB, 1 group", used, n)
	}
	if h := mustSchedule(t, s, withPorts(req("c", 1, 2), api.Port{Port: 80})); h != "h1" {
		t.Fatalf("placed on %s, want h1 with a's cpu, memory and port freed", h)
	}
	s.Unassign("sub/rg/never-placed") // a no-op
	if _, n := s.Usage("h1"); n != 2 {
		t.Fatalf("groups = %d after unassigning an unknown key, want 2", n)
	}
}

func TestABiggerHostMakesAGroupPlaceable(t *testing.T) {
	s := newScheduler(readyHost("small", 2, 4))
	huge := req("huge", 4, 16)
	wantMessage(t, refused(t, s, huge), "0/1 hosts are available: 1 Insufficient cpu, 1 Insufficient memory.")
	s.SetHost(readyHost("big", 8, 32))
	if h := mustSchedule(t, s, huge); h != "big" {
		t.Fatalf("placed on %s, want big", h)
	}
	// So does a host whose allocatable grows.
	s.SetHost(readyHost("small", 8, 32))
	if h := mustSchedule(t, s, req("huge2", 4, 16)); h != "small" {
		t.Fatalf("placed on %s, want small, now the emptier", h)
	}
}

func TestAssignLoadsAndMovesPlacements(t *testing.T) {
	s := scheduler.New()
	// Placements load before the hosts join.
	s.Assign(req("a", 3, 3), "h1")
	s.Assign(withPorts(req("b", 1, 1), api.Port{Port: 80}), "h1")
	wantMessage(t, refused(t, s, req("c", 1, 1)), "0/0 hosts are available: no host has joined.")
	s.SetHost(readyHost("h1", 4, 4))
	s.SetHost(readyHost("h2", 4, 4))
	if used, n := s.Usage("h1"); used.CPU != 4 || n != 2 {
		t.Fatalf("Usage(h1) = %+v, %d; want the 4 cpu and 2 groups loaded", used, n)
	}
	if h := mustSchedule(t, s, withPorts(req("c", 1, 1), api.Port{Port: 80})); h != "h2" {
		t.Fatalf("placed on %s, want h2", h)
	}

	// Assigning a key again moves it.
	s.Assign(req("a", 3, 3), "h2")
	if used, n := s.Usage("h1"); used.CPU != 1 || n != 1 {
		t.Fatalf("Usage(h1) after the move = %+v, %d; want 1 cpu, 1 group", used, n)
	}
	if h, _ := s.Placement("sub/rg/a"); h != "h2" {
		t.Fatalf("a is on %q, want h2", h)
	}
	s.Assign(req("a", 3, 3), "")
	if _, ok := s.Placement("sub/rg/a"); ok {
		t.Fatalf("a still placed after Assign to no host")
	}
}

func TestScheduleOfAPlacedGroupDiscountsItself(t *testing.T) {
	s := newScheduler(readyHost("h1", 4, 4))
	r := withPorts(req("a", 4, 4), api.Port{Port: 80})
	mustSchedule(t, s, r)
	// Its own cpu and port do not keep it from its host.
	if h := mustSchedule(t, s, r); h != "h1" {
		t.Fatalf("rescheduled to %s, want h1", h)
	}
	if used, n := s.Usage("h1"); used.CPU != 4 || n != 1 {
		t.Fatalf("Usage = %+v, %d; want it counted once", used, n)
	}

	// Moved when its host is no longer ready; kept when nothing takes it.
	down := readyHost("h1", 4, 4)
	down.State = store.HostLost
	s.SetHost(down)
	bigger := r
	bigger.CPU = 5
	wantMessage(t, refusedKept(t, s, bigger), "0/1 hosts are available: 1 not ready.")
	if h, ok := s.Placement(r.Key); !ok || h != "h1" {
		t.Fatalf("after a refused reschedule a is on %q (%v), want still h1", h, ok)
	}
	s.SetHost(readyHost("h2", 4, 4))
	if h := mustSchedule(t, s, r); h != "h2" {
		t.Fatalf("rescheduled to %s, want h2", h)
	}
	if _, n := s.Usage("h1"); n != 0 {
		t.Fatalf("h1 still counts %d groups after the move", n)
	}
}

func TestRemoveHostForgetsItsGroups(t *testing.T) {
	s := newScheduler(readyHost("h1", 4, 4), readyHost("h2", 1, 1))
	mustSchedule(t, s, shareReq("a", "acct/data"))
	s.RemoveHost("H1")
	if _, ok := s.Placement("sub/rg/a"); ok {
		t.Fatalf("a group of a removed host is still placed")
	}
	// The share is no longer pinned to h1; h2 takes it.
	if h := mustSchedule(t, s, shareReq("a", "acct/data")); h != "h2" {
		t.Fatalf("placed on %s, want h2", h)
	}
	wantMessage(t, refused(t, s, req("b", 1, 1)), "0/1 hosts are available: 1 Insufficient cpu, 1 Insufficient memory.")
	// A host that joins again starts empty.
	s.SetHost(readyHost("h1", 4, 4))
	if used, n := s.Usage("h1"); used.CPU != 0 || n != 0 {
		t.Fatalf("Usage of the host joined again = %+v, %d; want empty", used, n)
	}
}

func TestRequestWithoutKey(t *testing.T) {
	s := newScheduler(readyHost("h1", 4, 4))
	_, err := s.Schedule(scheduler.Request{CPU: 1})
	if !errdefs.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Schedule without a key: %v, want an invalid argument", err)
	}
	if _, n := s.Usage("h1"); n != 0 {
		t.Fatalf("a request without a key was counted")
	}
}

func TestConcurrentScheduleNeverOvercommits(t *testing.T) {
	const hosts, cpu, workers, each = 4, 8, 16, 20
	s := scheduler.New()
	for i := range hosts {
		s.SetHost(readyHost(fmt.Sprint("h", i), cpu, 64))
	}
	var mu sync.Mutex
	perHost := map[string]float64{}
	port80 := map[string]int{}
	placed, refusedN := 0, 0
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r := scheduler.Request{Key: fmt.Sprintf("sub/rg%d/g%d", w, i), ResourceGroup: fmt.Sprint("sub/rg", w), CPU: 1, MemoryGB: 1}
				if i%5 == 0 {
					r.Ports = []api.Port{{Port: 80}}
				}
				h, err := s.Schedule(r)
				mu.Lock()
				if err != nil {
					refusedN++
				} else {
					placed++
					perHost[h] += r.CPU
					if len(r.Ports) > 0 {
						port80[h]++
					}
				}
				mu.Unlock()
				if i%7 == 6 && err == nil { // some leave again
					s.Unassign(r.Key)
					mu.Lock()
					perHost[h] -= r.CPU
					if len(r.Ports) > 0 {
						port80[h]--
					}
					placed--
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	// What the unassigns freed late is still free: fill it.
	for i := 0; ; i++ {
		r := scheduler.Request{Key: fmt.Sprint("sub/fill/g", i), ResourceGroup: "sub/fill", CPU: 1, MemoryGB: 1}
		h, err := s.Schedule(r)
		if err != nil {
			break
		}
		perHost[h] += r.CPU
		placed++
	}
	total := 0
	for i := range hosts {
		name := fmt.Sprint("h", i)
		used, n := s.Usage(name)
		if used.CPU > cpu || perHost[name] > cpu {
			t.Fatalf("%s overcommitted: %v cpu assigned (callers saw %v) of %d", name, used.CPU, perHost[name], cpu)
		}
		if used.CPU != perHost[name] {
			t.Fatalf("%s: Usage %v cpu, callers placed %v", name, used.CPU, perHost[name])
		}
		if port80[name] > 1 {
			t.Fatalf("%s publishes TCP/80 for %d groups", name, port80[name])
		}
		total += n
	}
	if total != placed || placed != hosts*cpu {
		t.Fatalf("%d groups assigned, %d placed and kept (%d refused); want the fleet full: %d", total, placed, refusedN, hosts*cpu)
	}
}

func TestRequestOf(t *testing.T) {
	cg := &store.ContainerGroup{
		Subscription: "Sub-1", ResourceGroup: "My-RG",
		Resource: api.ContainerGroup{
			Name:  "Web",
			Zones: []string{"2"},
			Properties: api.ContainerGroupProperties{
				OSType: "Linux",
				Containers: []api.Container{
					{Name: "app", Properties: api.ContainerProperties{Resources: api.ResourceRequirements{
						Requests: api.ResourceRequests{CPU: 1, MemoryInGB: 1.5},
						Limits:   &api.ResourceLimits{CPU: 2, MemoryInGB: 3},
					}}},
					{Name: "side", Properties: api.ContainerProperties{Resources: api.ResourceRequirements{
						Requests: api.ResourceRequests{CPU: 0.5, MemoryInGB: 0.5},
					}}},
				},
				InitContainers: []api.InitContainer{{Name: "init"}},
				IPAddress: &api.IPAddress{Type: "Public", Ports: []api.Port{
					{Port: 80}, {Protocol: "udp", Port: 53},
				}},
				Volumes: []api.Volume{
					{Name: "scratch", EmptyDir: &api.EmptyDirVolume{}},
					{Name: "data", AzureFile: &api.AzureFileVolume{StorageAccountName: "acct", ShareName: "Data", StorageAccountKey: "k"}},
				},
			},
		},
	}
	r := scheduler.RequestOf(cg)
	want := scheduler.Request{
		Key: "sub-1/my-rg/web", ResourceGroup: "sub-1/my-rg", CPU: 1.5, MemoryGB: 2, OSType: "Linux",
		Zones:  []string{"2"},
		Ports:  []api.Port{{Protocol: "TCP", Port: 80}, {Protocol: "UDP", Port: 53}},
		Shares: []string{"acct/data"},
	}
	if r.Key != want.Key || r.ResourceGroup != want.ResourceGroup || r.CPU != want.CPU || r.MemoryGB != want.MemoryGB ||
		r.OSType != want.OSType || !slices.Equal(r.Zones, want.Zones) || !slices.Equal(r.Ports, want.Ports) || !slices.Equal(r.Shares, want.Shares) {
		t.Fatalf("RequestOf\n got: %+v\nwant: %+v", r, want)
	}
	if k := scheduler.KeyOf("Sub-1", "My-RG", "Web"); k != r.Key {
		t.Fatalf("KeyOf = %q, want %q", k, r.Key)
	}

	// A Private group publishes nothing on its host.
	cg.Resource.Properties.IPAddress.Type = "Private"
	if r := scheduler.RequestOf(cg); len(r.Ports) != 0 {
		t.Fatalf("a Private group asks for ports %v", r.Ports)
	}
	cg.Resource.Properties.IPAddress = nil
	if r := scheduler.RequestOf(cg); len(r.Ports) != 0 {
		t.Fatalf("a group without an address asks for ports %v", r.Ports)
	}
}
