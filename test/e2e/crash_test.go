package e2e

// Crash tests of "nothing half-done": a PUT racing a DELETE, a kill -9 in
// the middle of a resource group delete and of a group delete, and image
// GC running while groups are created. Each ends by looking at the host
// itself: the runtime's groups dir, `runc list` under the runtime's root
// and the network namespaces.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/store"
	"github.com/skiff-sh/skiff/internal/testenv"
)

func (s *server) cgURL(rg, name string) string {
	return "/subscriptions/" + s.sub + "/resourceGroups/" + rg + "/providers/Microsoft.ContainerInstance/containerGroups/" + name
}

// hostGroup is what the host holds for one group's runtime id.
type hostGroup struct {
	dir, netns bool     // runtime/groups/<id>, network/netns/<id>
	containers []string // runc containers <id>_<container>
}

func (h hostGroup) empty() bool { return !h.dir && !h.netns && len(h.containers) == 0 }

func (s *server) hostGroup(t *testing.T, id string) hostGroup {
	t.Helper()
	_, netDir, _, _, rtDir := runtime.HostLayout(s.dataDir)
	var h hostGroup
	_, err := os.Stat(filepath.Join(rtDir, "groups", id))
	h.dir = err == nil
	_, err = os.Stat(filepath.Join(netDir, "netns", id))
	h.netns = err == nil
	for _, c := range runcList(t, s.dataDir) {
		if strings.HasPrefix(c, id+"_") {
			h.containers = append(h.containers, c)
		}
	}
	return h
}

// groupView is the part of a GET the crash tests read.
type groupView struct {
	Properties struct {
		ProvisioningState string `json:"provisioningState"`
		Containers        []struct {
			Properties struct {
				InstanceView *struct {
					RestartCount int `json:"restartCount"`
				} `json:"instanceView"`
			} `json:"properties"`
		} `json:"containers"`
		InstanceView *struct {
			State  string       `json:"state"`
			Events []groupEvent `json:"events"`
		} `json:"instanceView"`
	} `json:"properties"`
}

// settle polls a group until it is gone (false) or its provisioning state
// is final (true, with the group).
func (s *server) settle(t *testing.T, rg, name string, timeout time.Duration) (bool, groupView) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var g groupView
		code, _, raw := s.request("GET", s.cgURL(rg, name), nil, nil)
		if code == 404 {
			return false, g
		}
		if code == 200 && json.Unmarshal(raw, &g) == nil {
			switch g.Properties.ProvisioningState {
			case "Succeeded", "Failed":
				return true, g
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s never settled: %d %s\nserver log:\n%s", rg, name, code, raw, s.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitOperation polls an Azure-AsyncOperation URL until the operation
// ends and returns its status and error code.
func (s *server) waitOperation(t *testing.T, url string, timeout time.Duration) (status, code string) {
	t.Helper()
	path := strings.TrimPrefix(url, s.endpoint)
	deadline := time.Now().Add(timeout)
	for {
		var op struct {
			Status string
			Error  *struct{ Code string }
		}
		c, _, raw := s.request("GET", path, nil, nil)
		if c == 200 && json.Unmarshal(raw, &op) == nil && op.Status != "InProgress" {
			if op.Error != nil {
				code = op.Error.Code
			}
			return op.Status, code
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation %s never ended: %d %s\nserver log:\n%s", path, c, raw, s.logTail())
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
	if code, _, raw := s.request("PUT", "/subscriptions/"+s.sub+"/resourcegroups/race", `{"location":"local"}`, nil); code != 201 {
		t.Fatalf("rg: %d %s", code, raw)
	}
	const name = "g"
	path := s.cgURL("race", name)
	id := store.RuntimeID(s.sub, "race", name)
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
			s.request("DELETE", path+"?gracePeriodSeconds=0", nil, nil)
		} else if code, _, raw := s.request("PUT", path, spec("base"), nil); code != 200 && code != 201 {
			t.Fatalf("round %d: setup PUT: %d %s", round, code, raw)
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
			code, hdr, raw := s.request(method, p, body, nil)
			// In the fourth variant one PUT is a client that tries again
			// while the group is being deleted: it creates the group anew,
			// under the same runtime id, once the delete is done.
			for retry := retries; code == 409 && retry > 0; retry-- {
				time.Sleep(50 * time.Millisecond)
				code, hdr, raw = s.request(method, p, body, nil)
			}
			switch {
			case slices.Contains(want, code):
			case code == 409 && method == "PUT" && armCode(raw) == "ContainerGroupTransitioning":
				mu.Lock()
				outcomes["PUT refused"]++
				mu.Unlock()
				return // refused: the group is being deleted
			default:
				t.Errorf("round %d: %s: %d %s", round, method, code, raw)
				return
			}
			if u := hdr.Get("Azure-AsyncOperation"); u != "" {
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
			s.stop(syscall.SIGKILL)
			s.start()
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
			t.Fatalf("stopping after round %d; server log:\n%s", round, s.logTail())
		}
	}
	t.Logf("outcomes: %v", outcomes)
	// Nothing but this one group, if any, ever ran.
	if n := len(runcList(t, s.dataDir)); n > 1 {
		t.Errorf("%d runc containers for one group", n)
	}
}

// kill -9 of the server right after it accepted the delete of a resource
// group with three running groups: after a restart the delete finishes,
// its operation ends Succeeded and nothing is left on the host.
func TestCrashResourceGroupDeleteResumes(t *testing.T) {
	s := startServer(t)
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})
	if code, _, raw := s.request("PUT", "/subscriptions/"+s.sub+"/resourcegroups/doomed", `{"location":"local"}`, nil); code != 201 {
		t.Fatalf("rg: %d %s", code, raw)
	}
	noPorts := func(p map[string]any) { delete(container0(p), "ports") }
	var ids []string
	for i := range 3 {
		name := fmt.Sprint("d", i)
		if code, _, raw := s.request("PUT", s.cgURL("doomed", name), groupBody(image, noPorts), nil); code != 201 {
			t.Fatalf("%s: %d %s", name, code, raw)
		}
		ids = append(ids, store.RuntimeID(s.sub, "doomed", name))
	}
	for i := range 3 {
		if _, g := s.settle(t, "doomed", fmt.Sprint("d", i), 60*time.Second); g.Properties.InstanceView == nil || g.Properties.InstanceView.State != "Running" {
			t.Fatalf("d%d: %+v", i, g.Properties)
		}
	}

	code, hdr, raw := s.request("DELETE", "/subscriptions/"+s.sub+"/resourcegroups/doomed", nil, nil)
	opURL := hdr.Get("Azure-AsyncOperation")
	if code != 202 || opURL == "" {
		t.Fatalf("delete: %d %s (operation %q)", code, raw, opURL)
	}
	// While it is deleted, the resource group takes no new group, as ARM.
	code, _, raw = s.request("PUT", s.cgURL("doomed", "late"), groupBody(image, noPorts), nil)
	if code != 409 || armCode(raw) != "ResourceGroupBeingDeleted" {
		t.Errorf("PUT into a resource group being deleted: %d %s, want 409 ResourceGroupBeingDeleted", code, raw)
	}
	var rg struct {
		Properties struct{ ProvisioningState string }
	}
	if s.do("GET", "/subscriptions/"+s.sub+"/resourcegroups/doomed", &rg); rg.Properties.ProvisioningState != "Deleting" {
		t.Errorf("resource group being deleted shows provisioningState %q", rg.Properties.ProvisioningState)
	}
	s.stop(syscall.SIGKILL)
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

	s.start()
	if status, code := s.waitOperation(t, opURL, 90*time.Second); status != "Succeeded" {
		t.Errorf("resource group delete ended %s (%s) after the restart", status, code)
	}
	if code, _, raw := s.request("GET", "/subscriptions/"+s.sub+"/resourcegroups/doomed", nil, nil); code != 404 {
		t.Errorf("resource group after its delete: %d %s", code, raw)
	}
	for _, id := range ids {
		if h := s.hostGroup(t, id); !h.empty() {
			t.Errorf("group %s left on the host: %+v", id, h)
		}
	}
	if out := runcList(t, s.dataDir); len(out) != 0 {
		t.Errorf("runc containers left: %v", out)
	}
	// The name is free again.
	if code, _, raw := s.request("PUT", "/subscriptions/"+s.sub+"/resourcegroups/doomed", `{"location":"local"}`, nil); code != 201 {
		t.Errorf("recreate the resource group: %d %s", code, raw)
	}
}

// kill -9 of the server right after it accepted the delete of a group:
// after a restart the delete finishes and its operation ends Succeeded.
func TestCrashGroupDeleteResumes(t *testing.T) {
	s := startServer(t)
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})
	if code, _, raw := s.request("PUT", "/subscriptions/"+s.sub+"/resourcegroups/one", `{"location":"local"}`, nil); code != 201 {
		t.Fatalf("rg: %d %s", code, raw)
	}
	body := groupBody(image, func(p map[string]any) { delete(container0(p), "ports") })
	if code, _, raw := s.request("PUT", s.cgURL("one", "victim"), body, nil); code != 201 {
		t.Fatalf("create: %d %s", code, raw)
	}
	s.settle(t, "one", "victim", 60*time.Second)
	id := store.RuntimeID(s.sub, "one", "victim")

	code, hdr, raw := s.request("DELETE", s.cgURL("one", "victim"), nil, nil)
	opURL := hdr.Get("Azure-AsyncOperation")
	if code != 202 || opURL == "" {
		t.Fatalf("delete: %d %s (operation %q)", code, raw, opURL)
	}
	if code, _, raw := s.request("PUT", s.cgURL("one", "victim"), body, nil); code != 409 || armCode(raw) != "ContainerGroupTransitioning" {
		t.Errorf("PUT of a group being deleted: %d %s, want 409 ContainerGroupTransitioning", code, raw)
	}
	s.stop(syscall.SIGKILL)
	if h := s.hostGroup(t, id); !h.dir || len(h.containers) == 0 {
		t.Fatalf("the group was gone before the kill (%+v): the test did not kill a delete in flight", h)
	}

	s.start()
	if status, code := s.waitOperation(t, opURL, 60*time.Second); status != "Succeeded" {
		t.Errorf("group delete ended %s (%s) after the restart", status, code)
	}
	if code, _, raw := s.request("GET", s.cgURL("one", "victim"), nil, nil); code != 404 {
		t.Errorf("group after its delete: %d %s", code, raw)
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
	s := startServerWith(t, "--image-gc-high-threshold", "0", "--image-gc-low-threshold", "0", "--image-gc-interval", "100ms")
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})
	if code, _, raw := s.request("PUT", "/subscriptions/"+s.sub+"/resourcegroups/gc", `{"location":"local"}`, nil); code != 201 {
		t.Fatalf("rg: %d %s", code, raw)
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
			t.Fatalf("phase %d: %s: %+v\nserver log:\n%s", phase, name, g.Properties, s.logTail())
		}
	}
	// intact checks that a group still runs and never restarted: its
	// container would have exited had a file of its image gone.
	intact := func(phase int, name string) {
		var g groupView
		s.do("GET", s.cgURL("gc", name), &g)
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
				if code, _, raw := s.request("PUT", s.cgURL("gc", name), body, nil); code != 201 {
					t.Errorf("%s: %d %s", name, code, raw)
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
				if code, _, raw := s.request("DELETE", s.cgURL("gc", name)+"?gracePeriodSeconds=0", nil, nil); code != 202 {
					t.Fatalf("delete %s: %d %s", name, code, raw)
				}
				if present, _ := s.settle(t, "gc", name, 60*time.Second); present {
					t.Fatalf("%s not deleted", name)
				}
			}
		}
	}
	// A stopped group keeps its image too, and starts again from it.
	stopped := "p2-w0"
	if code, _, raw := s.request("POST", s.cgURL("gc", stopped)+"/stop", nil, nil); code != 204 {
		t.Fatalf("stop: %d %s", code, raw)
	}
	for _, name := range []string{"p2-w1", "p2-w2"} {
		if code, _, raw := s.request("DELETE", s.cgURL("gc", name)+"?gracePeriodSeconds=0", nil, nil); code != 202 {
			t.Fatalf("delete %s: %d %s", name, code, raw)
		}
		s.settle(t, "gc", name, 60*time.Second)
	}
	time.Sleep(2 * time.Second)
	if !listed() {
		t.Errorf("the image of a stopped group was removed")
	}
	code, hdr, raw := s.request("POST", s.cgURL("gc", stopped)+"/start", nil, nil)
	if code != 202 {
		t.Fatalf("start: %d %s", code, raw)
	}
	if status, code := s.waitOperation(t, hdr.Get("Azure-AsyncOperation"), 60*time.Second); status != "Succeeded" {
		t.Errorf("start of the stopped group ended %s (%s)", status, code)
	}
	running(3, stopped)
	intact(3, stopped)
}
