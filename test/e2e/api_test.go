package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/testenv"
)

func groupBody(image string, mutate func(props map[string]any)) map[string]any {
	c := map[string]any{"name": "app", "properties": map[string]any{
		"image": image, "command": []string{"sleep", "3600"},
		"resources": map[string]any{"requests": map[string]any{"cpu": 1, "memoryInGB": 1}},
		"ports":     []map[string]any{{"port": 80}},
	}}
	props := map[string]any{"osType": "Linux", "containers": []any{c}}
	if mutate != nil {
		mutate(props)
	}
	return map[string]any{"location": "local", "properties": props}
}

func container0(p map[string]any) map[string]any {
	return p["containers"].([]any)[0].(map[string]any)["properties"].(map[string]any)
}

// Bad requests get the right status and ARM code, and change nothing.
func TestBadInputsAreRejectedWithoutStateChange(t *testing.T) {
	s := startServer(t)
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})
	if r := s.send("PUT", "/subscriptions/"+s.Subscription+"/resourcegroups/bad", `{"location":"local"}`); r.Status != 201 {
		t.Fatalf("rg: %d %s", r.Status, r)
	}
	cgPath := "/subscriptions/" + s.Subscription + "/resourceGroups/bad/providers/Microsoft.ContainerInstance/containerGroups/"
	cases := []struct {
		name, method, path string
		body               any
		token              *string // nil: the admin token
		status             int
		code               string
	}{
		{"no token", "GET", "/subscriptions", nil, new(""), 401, "AuthenticationFailed"},
		{"wrong token", "GET", "/subscriptions", nil, new("nope"), 401, "AuthenticationFailed"},
		{"wrong api-version", "GET", "/subscriptions?api-version=2017-01-01", nil, nil, 400, "InvalidApiVersionParameter"},
		{"malformed JSON", "PUT", cgPath + "g1", `{"location": "local", "properties": {`, nil, 400, "InvalidRequestContent"},
		{"bad name", "PUT", cgPath + "Bad_Name", groupBody(image, nil), nil, 400, ""},
		{"no containers", "PUT", cgPath + "g2", groupBody(image, func(p map[string]any) { p["containers"] = []any{} }), nil, 400, ""},
		{"cpu too large", "PUT", cgPath + "g3", groupBody(image, func(p map[string]any) {
			container0(p)["resources"] = map[string]any{"requests": map[string]any{"cpu": 64, "memoryInGB": 1}}
		}), nil, 400, ""},
		{"limit above group request", "PUT", cgPath + "g4", groupBody(image, func(p map[string]any) {
			container0(p)["resources"] = map[string]any{"requests": map[string]any{"cpu": 1, "memoryInGB": 1}, "limits": map[string]any{"cpu": 2}}
		}), nil, 400, "ContainerLimitGreaterThanContainerGroupTotalRequest"},
		{"port not exposed", "PUT", cgPath + "g5", groupBody(image, func(p map[string]any) {
			p["ipAddress"] = map[string]any{"type": "Public", "ports": []map[string]any{{"port": 81}}}
		}), nil, 400, ""},
		{"six ports", "PUT", cgPath + "g6", groupBody(image, func(p map[string]any) {
			var ports []map[string]any
			for i := 1; i <= 6; i++ {
				ports = append(ports, map[string]any{"port": 8000 + i})
			}
			container0(p)["ports"] = ports
			p["ipAddress"] = map[string]any{"type": "Public", "ports": ports}
		}), nil, 400, ""},
		{"memory too large", "PUT", cgPath + "g10", groupBody(image, func(p map[string]any) {
			container0(p)["resources"] = map[string]any{"requests": map[string]any{"cpu": 1, "memoryInGB": 100}}
		}), nil, 400, ""},
		{"61 containers", "PUT", cgPath + "g11", groupBody(image, func(p map[string]any) {
			var cs []any
			for i := 0; i < 61; i++ {
				cs = append(cs, map[string]any{"name": fmt.Sprintf("c%d", i), "properties": map[string]any{"image": image,
					"resources": map[string]any{"requests": map[string]any{"cpu": 0.1, "memoryInGB": 0.1}}}})
			}
			p["containers"] = cs
		}), nil, 400, "TooManyContainers"},
		{"21 volumes", "PUT", cgPath + "g12", groupBody(image, func(p map[string]any) {
			var vs []any
			for i := 0; i < 21; i++ {
				vs = append(vs, map[string]any{"name": fmt.Sprintf("v%d", i), "emptyDir": map[string]any{}})
			}
			p["volumes"] = vs
		}), nil, 400, "TooManyVolumes"},
		{"undefined volume", "PUT", cgPath + "g7", groupBody(image, func(p map[string]any) {
			container0(p)["volumeMounts"] = []map[string]any{{"name": "nope", "mountPath": "/x"}}
		}), nil, 400, ""},
		{"windows", "PUT", cgPath + "g8", groupBody(image, func(p map[string]any) { p["osType"] = "Windows" }), nil, 400, ""},
		{"missing resource group", "PUT", "/subscriptions/" + s.Subscription + "/resourceGroups/nope/providers/Microsoft.ContainerInstance/containerGroups/g9", groupBody(image, nil), nil, 404, "ResourceGroupNotFound"},
		{"missing group", "GET", cgPath + "absent", nil, nil, 404, "ResourceNotFound"},
		{"unknown subscription", "GET", "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups", nil, nil, 404, "SubscriptionNotFound"},
	}
	for _, c := range cases {
		token := s.Token
		if c.token != nil {
			token = *c.token
		}
		r := s.sendAs(token, c.method, c.path, c.body)
		var env struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(r.Body, &env); err != nil || env.Error.Code == "" || env.Error.Message == "" {
			t.Errorf("%s: no ARM error envelope: %d %s", c.name, r.Status, r)
			continue
		}
		if r.Status != c.status || (c.code != "" && env.Error.Code != c.code) {
			t.Errorf("%s: got %d %s (%s), want %d %s", c.name, r.Status, env.Error.Code, env.Error.Message, c.status, c.code)
		}
		if r.Header.Get("x-ms-error-code") != env.Error.Code {
			t.Errorf("%s: x-ms-error-code %q vs body %q", c.name, r.Header.Get("x-ms-error-code"), env.Error.Code)
		}
	}
	if list, err := s.Client.ListContainerGroups(t.Context(), ""); err != nil || len(list) != 0 {
		t.Errorf("rejected requests left %d container groups (%v)", len(list), err)
	}

	// An update that needs a recreate is refused, and the group is untouched.
	if r := s.send("PUT", cgPath+"good", groupBody(image, nil)); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r)
	}
	r := s.send("PUT", cgPath+"good", groupBody(image, func(p map[string]any) {
		container0(p)["resources"] = map[string]any{"requests": map[string]any{"cpu": 2, "memoryInGB": 1}}
	}))
	if r.Status != 400 || !strings.Contains(r.String(), "InvalidContainerGroupUpdate") {
		t.Errorf("cpu update: %d %s", r.Status, r)
	}
	got, err := s.Client.GetContainerGroup(t.Context(), "bad", "good")
	if err != nil {
		t.Fatal(err)
	}
	if got.Properties.Containers[0].Properties.Resources.Requests.CPU != 1 {
		t.Errorf("refused update changed the group: %+v", got)
	}
	// A port another group publishes is refused up front. A cluster
	// places a group on a host where its ports are free, and its one host
	// has none: the group waits, Pending, and says why.
	withPort := func(p map[string]any) {
		p["ipAddress"] = map[string]any{"type": "Public", "ports": []map[string]any{{"port": 80}}}
	}
	if r := s.send("PUT", cgPath+"web1", groupBody(image, withPort)); r.Status != 201 {
		t.Fatalf("web1: %d %s", r.Status, r)
	}
	r = s.send("PUT", cgPath+"web2", groupBody(image, withPort))
	switch {
	case s.cluster() && r.Status != 201:
		t.Errorf("second group on port 80 of a cluster: %d %s, want 201 and Pending", r.Status, r)
	case s.cluster():
		if iv := s.waitGroupEvent("bad", "web2", "FailedScheduling", "port TCP/80 is in use", 30*time.Second); iv.State != "Pending" || iv.Host != "" {
			t.Errorf("second group on port 80 of a cluster: %+v, want Pending on no host", iv)
		}
	case r.Status != 409 || !strings.Contains(r.String(), "PortAlreadyInUse"):
		t.Errorf("second group on port 80: %d %s", r.Status, r)
	}
	// The CLI: one line, non-zero exit.
	_, errOut, exit := s.skiff("container", "show", "-g", "bad", "-n", "absent")
	if exit == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "ResourceNotFound") {
		t.Errorf("CLI on a missing group: exit %d, %q", exit, errOut)
	}
}

// kill -9 of the server during a burst of creates: after a restart every
// accepted group exists, reaches a final state, and runs exactly once.
func TestServerKill9DuringCreateBurst(t *testing.T) {
	s := startServer(t)
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})
	s.send("PUT", "/subscriptions/"+s.Subscription+"/resourcegroups/burst", `{"location":"local"}`)
	path := "/subscriptions/" + s.Subscription + "/resourceGroups/burst/providers/Microsoft.ContainerInstance/containerGroups/"
	var mu sync.Mutex
	accepted := map[string]bool{}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 6; i++ {
				name := fmt.Sprintf("b%d-%d", w, i)
				if r := s.send("PUT", path+name, groupBody(image, func(p map[string]any) { delete(container0(p), "ports") })); r.Status == 201 {
					mu.Lock()
					accepted[name] = true
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	s.Stop(syscall.SIGKILL)
	wg.Wait()
	if len(accepted) == 0 {
		t.Fatalf("no create was accepted before the kill")
	}
	s.Start()
	// A PUT whose answer the kill cut off may have been stored all the
	// same (a PUT waits a moment for its group to run before it answers):
	// such a group must settle too.
	settle := maps.Clone(accepted)
	if stored, err := s.Client.ListContainerGroups(t.Context(), "burst"); err == nil {
		for _, cg := range stored {
			settle[cg.Name] = true
		}
	}
	deadline := time.Now().Add(120 * time.Second)
	for name := range settle {
		for {
			cg, err := s.Client.GetContainerGroup(t.Context(), "burst", name)
			if err == nil && (cg.Properties.ProvisioningState == "Succeeded" || cg.Properties.ProvisioningState == "Failed") {
				if cg.Properties.InstanceView == nil || cg.Properties.InstanceView.State != "Running" {
					t.Errorf("%s: provisioning %s, state %+v", name, cg.Properties.ProvisioningState, cg.Properties.InstanceView)
				}
				break
			}
			if errors.Is(err, client.ErrNotFound) {
				t.Errorf("accepted group %s is gone after the restart", name)
				break
			}
			if time.Now().After(deadline) {
				raw := s.send("GET", path+name, nil)
				s.Process().Signal(syscall.SIGQUIT)
				time.Sleep(time.Second)
				var shimLogs strings.Builder
				files, _ := filepath.Glob(filepath.Join(s.hostDir(), "runtime/groups/*/containers/*/*.log"))
				more, _ := filepath.Glob(filepath.Join(s.hostDir(), "runtime/groups/*/containers/*/bundle/runtime.log"))
				for _, f := range append(files, more...) {
					if data, _ := os.ReadFile(f); len(data) > 0 && !strings.Contains(f, "current.log") {
						fmt.Fprintf(&shimLogs, "%s: %s\n", f, data)
					}
				}
				out, _ := exec.Command("sh", "-c", "ps -eo pid,ppid,etime,args | grep -E 'runc|shim' | grep -v grep").Output()
				t.Fatalf("%s never settled: %d %s\nshim logs:\n%s\nprocesses:\n%s\nserver log:\n%s", name, testenv.StatusOf(err), raw, shimLogs.String(), out, s.goroutines())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Exactly one runc container per group: none twice.
	out := runcList(t, s.hostDir())
	seen := map[string]int{}
	for _, id := range out {
		seen[id]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("container %s runs %d times", id, n)
		}
	}
	list, _ := s.Client.ListContainerGroups(t.Context(), "burst")
	if len(list) < len(accepted) || len(out) != len(list) {
		t.Errorf("%d accepted, %d listed, %d runc containers", len(accepted), len(list), len(out))
		for name := range accepted {
			cg, err := s.Client.GetContainerGroup(t.Context(), "burst", name)
			if err != nil {
				t.Logf("%s: %v", name, err)
				continue
			}
			iv, _ := json.Marshal(cg.Properties.Containers[0].Properties.InstanceView)
			t.Logf("%s: %s", name, iv)
		}
		t.Logf("runc: %v\nserver log:\n%s", out, s.LogTail(20))
	}
}
