package e2e

// Crash tests of "nothing half-done": a PUT racing a DELETE, a kill -9 in
// the middle of a resource group delete and of a group delete, and image
// GC running while groups are created. Each ends by looking at the host
// itself: the runtime's groups dir, `runc list` under the runtime's root
// and the network namespaces.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/store"
	"github.com/skiff-sh/skiff/internal/testenv"
)

func (s *server) cgURL(rg, name string) string {
	return "/subscriptions/" + s.Subscription + "/resourceGroups/" + rg + "/providers/Microsoft.ContainerInstance/containerGroups/" + name
}

// hostGroup is what the host holds for one group's runtime id.
type hostGroup struct {
	dir, netns bool     // runtime/groups/<id>, network/netns/<id>
	containers []string // runc containers <id>_<container>
}

func (h hostGroup) empty() bool { return !h.dir && !h.netns && len(h.containers) == 0 }

func (s *server) hostGroup(t *testing.T, id string) hostGroup {
	t.Helper()
	_, netDir, _, _, rtDir := runtime.HostLayout(s.hostDir())
	var h hostGroup
	_, err := os.Stat(filepath.Join(rtDir, "groups", id))
	h.dir = err == nil
	_, err = os.Stat(filepath.Join(netDir, "netns", id))
	h.netns = err == nil
	for _, c := range runcList(t, s.hostDir()) {
		if strings.HasPrefix(c, id+"_") {
			h.containers = append(h.containers, c)
		}
	}
	return h
}

// settle polls a group until it is gone (false) or its provisioning state
// is final (true, with the group).
func (s *server) settle(t *testing.T, rg, name string, timeout time.Duration) (bool, *api.ContainerGroup) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		g, err := s.Client.GetContainerGroup(t.Context(), rg, name)
		if errors.Is(err, client.ErrNotFound) {
			return false, &api.ContainerGroup{}
		}
		if err == nil {
			switch g.Properties.ProvisioningState {
			case "Succeeded", "Failed":
				return true, g
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s never settled: %v %+v\nserver log:\n%s", rg, name, err, g, s.LogTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitOperation polls an Azure-AsyncOperation URL until the operation
// ends and returns its status and error code.
func (s *server) waitOperation(t *testing.T, url string, timeout time.Duration) (status, code string) {
	t.Helper()
	h := http.Header{}
	h.Set("Azure-AsyncOperation", url)
	p := s.Client.Poller(h)
	deadline := time.Now().Add(timeout)
	for {
		op, err := p.Operation(t.Context())
		if err == nil && op.Status != "InProgress" {
			if op.Error != nil {
				code = op.Error.Code
			}
			return op.Status, code
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation %s never ended: %v %+v\nserver log:\n%s", url, err, op, s.LogTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func armCode(raw []byte) string {
	var env struct{ Error struct{ Code string } }
	_ = json.Unmarshal(raw, &env)
	return env.Error.Code
}

// A PUT racing a DELETE of the same group, 24 rounds, the last four with a
// kill -9 of the server right after the requests were answered: in the
// end the group is either gone with nothing left on the host, or it has a
// record and runs, in exactly one container; every operation ends.
func TestCrashPutRacingDelete(t *testing.T) {
	s := startServer(t)
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})
	if r := s.send("PUT", "/subscriptions/"+s.Subscription+"/resourcegroups/race", `{"location":"local"}`); r.Status != 201 {
		t.Fatalf("rg: %d %s", r.Status, r)
	}
	const name = "g"
	path := s.cgURL("race", name)
	id := store.RuntimeID(s.Subscription, "race", name)
	spec := func(v string) map[string]any {
		return groupBody(image, func(p map[string]any) {
			delete(container0(p), "ports")
			container0(p)["environmentVariables"] = []map[string]any{{"name": "V", "value": v}}
		})
	}
	outcomes := map[string]int{}
	for round := range 24 {
		variant := round % 4
		// Start: absent (variant 0) or running.
		if variant == 0 {
			s.send("DELETE", path+"?gracePeriodSeconds=0", nil)
		} else if r := s.send("PUT", path, spec("base")); r.Status != 200 && r.Status != 201 {
			t.Fatalf("round %d: setup PUT: %d %s", round, r.Status, r)
		}
		if present, _ := s.settle(t, "race", name, 60*time.Second); present != (variant != 0) {
			t.Fatalf("round %d: setup left the group present=%v", round, present)
		}

		// The race: PUTs (a new spec, the same spec, or two new specs) and
		// a DELETE, each after a random few milliseconds.
		var puts []map[string]any
		switch variant {
		case 0, 1:
			puts = []map[string]any{spec(fmt.Sprint("new", round))}
		case 2:
			puts = []map[string]any{spec("base")}
		case 3:
			puts = []map[string]any{spec(fmt.Sprint("a", round)), spec(fmt.Sprint("b", round))}
		}
		var mu sync.Mutex
		var ops []string
		var wg sync.WaitGroup
		// Every other block of four rounds the DELETE comes later, so
		// that each side wins some.
		deleteDelay := 5 * time.Millisecond
		if (round/4)%2 == 1 {
			deleteDelay = 40 * time.Millisecond
		}
		send := func(method, p string, body any, retries int, want ...int) {
			defer wg.Done()
			if method == "DELETE" {
				time.Sleep(rand.N(deleteDelay))
			} else {
				time.Sleep(rand.N(10 * time.Millisecond))
			}
			r := s.send(method, p, body)
			// In the fourth variant one PUT is a client that tries again
			// while the group is being deleted: it creates the group anew,
			// under the same runtime id, once the delete is done.
			for retry := retries; r.Status == 409 && retry > 0; retry-- {
				time.Sleep(50 * time.Millisecond)
				r = s.send(method, p, body)
			}
			switch {
			case slices.Contains(want, r.Status):
			case r.Status == 409 && method == "PUT" && armCode(r.Body) == "ContainerGroupTransitioning":
				mu.Lock()
				outcomes["PUT refused"]++
				mu.Unlock()
				return // refused: the group is being deleted
			default:
				t.Errorf("round %d: %s: %d %s", round, method, r.Status, r)
				return
			}
			if u := r.Header.Get("Azure-AsyncOperation"); u != "" {
				mu.Lock()
				ops = append(ops, method+" "+u)
				mu.Unlock()
			}
		}
		for i, b := range puts {
			retries := 0
			if i == 1 {
				retries = 100
			}
			wg.Add(1)
			go send("PUT", path, b, retries, 200, 201)
		}
		wg.Add(1)
		go send("DELETE", path+"?gracePeriodSeconds=0", nil, 0, 202, 204)
		wg.Wait()
		if round >= 20 {
			s.Stop(syscall.SIGKILL)
			s.Start()
		}

		for _, op := range ops {
			method, u, _ := strings.Cut(op, " ")
			status, code := s.waitOperation(t, u, 60*time.Second)
			outcomes[method+" "+status]++
			switch {
			case status == "Succeeded":
			case method == "PUT" && status == "Canceled":
			default:
				t.Errorf("round %d: %s operation ended %s (%s)", round, method, status, code)
			}
		}
		present, g := s.settle(t, "race", name, 60*time.Second)
		h := s.hostGroup(t, id)
		if present {
			outcomes["present"]++
			if g.Properties.ProvisioningState != "Succeeded" || g.Properties.InstanceView == nil || g.Properties.InstanceView.State != "Running" {
				t.Errorf("round %d: the group has a record but is not running: %+v", round, g.Properties)
			}
			if !h.dir || !h.netns || len(h.containers) != 1 {
				t.Errorf("round %d: the group has a record, the host holds %+v (want its dir, netns and one container)", round, h)
			}
		} else {
			outcomes["absent"]++
			if !h.empty() {
				t.Errorf("round %d: the group is gone, the host still holds %+v", round, h)
			}
		}
		if t.Failed() {
			t.Fatalf("stopping after round %d; server log:\n%s", round, s.LogTail(20))
		}
	}
	t.Logf("outcomes: %v", outcomes)
	// Nothing but this one group, if any, ever ran.
	if n := len(runcList(t, s.hostDir())); n > 1 {
		t.Errorf("%d runc containers for one group", n)
	}
}

// kill -9 of the server right after it accepted the delete of a resource
// group with three running groups: after a restart the delete finishes,
// its operation ends Succeeded and nothing is left on the host.
func TestCrashResourceGroupDeleteResumes(t *testing.T) {
	s := startServer(t)
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})
	if r := s.send("PUT", "/subscriptions/"+s.Subscription+"/resourcegroups/doomed", `{"location":"local"}`); r.Status != 201 {
		t.Fatalf("rg: %d %s", r.Status, r)
	}
	noPorts := func(p map[string]any) { delete(container0(p), "ports") }
	var ids []string
	for i := range 3 {
		name := fmt.Sprint("d", i)
		if r := s.send("PUT", s.cgURL("doomed", name), groupBody(image, noPorts)); r.Status != 201 {
			t.Fatalf("%s: %d %s", name, r.Status, r)
		}
		ids = append(ids, store.RuntimeID(s.Subscription, "doomed", name))
	}
	for i := range 3 {
		if _, g := s.settle(t, "doomed", fmt.Sprint("d", i), 60*time.Second); g.Properties.InstanceView == nil || g.Properties.InstanceView.State != "Running" {
			t.Fatalf("d%d: %+v", i, g.Properties)
		}
	}

	r := s.send("DELETE", "/subscriptions/"+s.Subscription+"/resourcegroups/doomed", nil)
	opURL := r.Header.Get("Azure-AsyncOperation")
	if r.Status != 202 || opURL == "" {
		t.Fatalf("delete: %d %s (operation %q)", r.Status, r, opURL)
	}
	// While it is deleted, the resource group takes no new group, as ARM.
	r = s.send("PUT", s.cgURL("doomed", "late"), groupBody(image, noPorts))
	if r.Status != 409 || armCode(r.Body) != "ResourceGroupBeingDeleted" {
		t.Errorf("PUT into a resource group being deleted: %d %s, want 409 ResourceGroupBeingDeleted", r.Status, r)
	}
	if rg, err := s.Client.GetResourceGroup(t.Context(), "doomed"); err != nil || rg.Properties.ProvisioningState != "Deleting" {
		t.Errorf("resource group being deleted shows provisioningState %+v (%v)", rg, err)
	}
	s.Stop(syscall.SIGKILL)
	left := 0
	for _, id := range ids {
		if h := s.hostGroup(t, id); h.dir {
			left++
		}
	}
	if left == 0 {
		t.Fatalf("every group was gone before the kill: the test did not kill a delete in flight")
	}
	t.Logf("%d of 3 groups still on the host at the kill", left)

	s.Start()
	if status, code := s.waitOperation(t, opURL, 90*time.Second); status != "Succeeded" {
		t.Errorf("resource group delete ended %s (%s) after the restart", status, code)
	}
	if r := s.send("GET", "/subscriptions/"+s.Subscription+"/resourcegroups/doomed", nil); r.Status != 404 {
		t.Errorf("resource group after its delete: %d %s", r.Status, r)
	}
	for _, id := range ids {
		if h := s.hostGroup(t, id); !h.empty() {
			t.Errorf("group %s left on the host: %+v", id, h)
		}
	}
	if out := runcList(t, s.hostDir()); len(out) != 0 {
		t.Errorf("runc containers left: %v", out)
	}
	// The name is free again.
	if r := s.send("PUT", "/subscriptions/"+s.Subscription+"/resourcegroups/doomed", `{"location":"local"}`); r.Status != 201 {
		t.Errorf("recreate the resource group: %d %s", r.Status, r)
	}
}

// kill -9 of the server right after it accepted the delete of a group:
// after a restart the delete finishes and its operation ends Succeeded.
func TestCrashGroupDeleteResumes(t *testing.T) {
	s := startServer(t)
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})
	if r := s.send("PUT", "/subscriptions/"+s.Subscription+"/resourcegroups/one", `{"location":"local"}`); r.Status != 201 {
		t.Fatalf("rg: %d %s", r.Status, r)
	}
	body := groupBody(image, func(p map[string]any) { delete(container0(p), "ports") })
	if r := s.send("PUT", s.cgURL("one", "victim"), body); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r)
	}
	s.settle(t, "one", "victim", 60*time.Second)
	id := store.RuntimeID(s.Subscription, "one", "victim")

	r := s.send("DELETE", s.cgURL("one", "victim"), nil)
	opURL := r.Header.Get("Azure-AsyncOperation")
	if r.Status != 202 || opURL == "" {
		t.Fatalf("delete: %d %s (operation %q)", r.Status, r, opURL)
	}
	if r := s.send("PUT", s.cgURL("one", "victim"), body); r.Status != 409 || armCode(r.Body) != "ContainerGroupTransitioning" {
		t.Errorf("PUT of a group being deleted: %d %s, want 409 ContainerGroupTransitioning", r.Status, r)
	}
	s.Stop(syscall.SIGKILL)
	if h := s.hostGroup(t, id); !h.dir || len(h.containers) == 0 {
		t.Fatalf("the group was gone before the kill (%+v): the test did not kill a delete in flight", h)
	}

	s.Start()
	if status, code := s.waitOperation(t, opURL, 60*time.Second); status != "Succeeded" {
		t.Errorf("group delete ended %s (%s) after the restart", status, code)
	}
	if r := s.send("GET", s.cgURL("one", "victim"), nil); r.Status != 404 {
		t.Errorf("group after its delete: %d %s", r.Status, r)
	}
	if h := s.hostGroup(t, id); !h.empty() {
		t.Errorf("group left on the host: %+v", h)
	}
}

// Image GC forced on every 100 ms tick while groups are created (each
// pull racing GC, since GC removed the image when the previous groups
// went), run and are stopped: no group fails, no container loses a file of
// its image, and the images of running and stopped groups stay listed.
func TestCrashImageGCWhileGroupsStart(t *testing.T) {
	s := startServer(t, "--image-gc-high-threshold", "0", "--image-gc-low-threshold", "0", "--image-gc-interval", "100ms")
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})
	if r := s.send("PUT", "/subscriptions/"+s.Subscription+"/resourcegroups/gc", `{"location":"local"}`); r.Status != 201 {
		t.Fatalf("rg: %d %s", r.Status, r)
	}
	// The container reads a file of its image's top layer ten times a
	// second, and exits 3 if it is gone.
	body := groupBody(image, func(p map[string]any) {
		delete(container0(p), "ports")
		container0(p)["command"] = []string{"sh", "-c", "while cat /www/index.html >/dev/null; do sleep 0.1; done; exit 3"}
	})
	listed := func() bool {
		for _, img := range s.cachedImages() {
			if img.Image == image || img.Reference == image {
				return true
			}
		}
		return false
	}
	waitUnlisted := func(phase int) {
		deadline := time.Now().Add(30 * time.Second)
		for listed() {
			if time.Now().After(deadline) {
				t.Fatalf("phase %d: GC never removed the unused image", phase)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	running := func(phase int, name string) {
		_, g := s.settle(t, "gc", name, 90*time.Second)
		if g.Properties.ProvisioningState != "Succeeded" || g.Properties.InstanceView == nil || g.Properties.InstanceView.State != "Running" {
			t.Fatalf("phase %d: %s: %+v\nserver log:\n%s", phase, name, g.Properties, s.LogTail(20))
		}
	}
	// intact checks that a group still runs and never restarted: its
	// container would have exited had a file of its image gone.
	intact := func(phase int, name string) {
		g, err := s.Client.GetContainerGroup(t.Context(), "gc", name)
		if err != nil {
			t.Errorf("phase %d: %s is not running any more: %v", phase, name, err)
			return
		}
		if g.Properties.InstanceView == nil || g.Properties.InstanceView.State != "Running" {
			t.Errorf("phase %d: %s is not running any more: %+v", phase, name, g.Properties)
		}
		for _, c := range g.Properties.Containers {
			if iv := c.Properties.InstanceView; iv != nil && iv.RestartCount > 0 {
				t.Errorf("phase %d: %s restarted %d times: a file of its image went missing", phase, name, iv.RestartCount)
			}
		}
	}
	const workers = 3
	for phase := range 3 {
		// Nobody uses the image: GC removes it, and every create pulls it
		// again while GC keeps running.
		waitUnlisted(phase)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("p%d-w%d", phase, w)
				if r := s.send("PUT", s.cgURL("gc", name), body); r.Status != 201 {
					t.Errorf("%s: %d %s", name, r.Status, r)
				}
			}()
		}
		wg.Wait()
		for w := range workers {
			running(phase, fmt.Sprintf("p%d-w%d", phase, w))
		}
		// Running for twenty GC ticks: the image stays, and no container
		// lost a file (it would have exited and been restarted).
		time.Sleep(2 * time.Second)
		if !listed() {
			t.Errorf("phase %d: the image of running groups is not listed any more", phase)
		}
		for w := range workers {
			intact(phase, fmt.Sprintf("p%d-w%d", phase, w))
		}
		if phase < 2 {
			for w := range workers {
				name := fmt.Sprintf("p%d-w%d", phase, w)
				if r := s.send("DELETE", s.cgURL("gc", name)+"?gracePeriodSeconds=0", nil); r.Status != 202 {
					t.Fatalf("delete %s: %d %s", name, r.Status, r)
				}
				if present, _ := s.settle(t, "gc", name, 60*time.Second); present {
					t.Fatalf("%s not deleted", name)
				}
			}
		}
	}
	// A stopped group keeps its image too, and starts again from it.
	stopped := "p2-w0"
	if r := s.send("POST", s.cgURL("gc", stopped)+"/stop", nil); r.Status != 204 {
		t.Fatalf("stop: %d %s", r.Status, r)
	}
	for _, name := range []string{"p2-w1", "p2-w2"} {
		if r := s.send("DELETE", s.cgURL("gc", name)+"?gracePeriodSeconds=0", nil); r.Status != 202 {
			t.Fatalf("delete %s: %d %s", name, r.Status, r)
		}
		s.settle(t, "gc", name, 60*time.Second)
	}
	time.Sleep(2 * time.Second)
	if !listed() {
		t.Errorf("the image of a stopped group was removed")
	}
	r := s.send("POST", s.cgURL("gc", stopped)+"/start", nil)
	if r.Status != 202 {
		t.Fatalf("start: %d %s", r.Status, r)
	}
	if status, code := s.waitOperation(t, r.Header.Get("Azure-AsyncOperation"), 60*time.Second); status != "Succeeded" {
		t.Errorf("start of the stopped group ended %s (%s)", status, code)
	}
	running(3, stopped)
	intact(3, stopped)
}
