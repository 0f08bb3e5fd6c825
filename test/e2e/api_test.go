package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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
	if code, _, body := s.request("PUT", "/subscriptions/"+s.sub+"/resourcegroups/bad", `{"location":"local"}`, nil); code != 201 {
		t.Fatalf("rg: %d %s", code, body)
	}
	cgPath := "/subscriptions/" + s.sub + "/resourceGroups/bad/providers/Microsoft.ContainerInstance/containerGroups/"
	cases := []struct {
		name, method, path string
		body               any
		hdr                map[string]string
		status             int
		code               string
	}{
		{"no token", "GET", "/subscriptions", nil, map[string]string{"Authorization": ""}, 401, "AuthenticationFailed"},
		{"wrong token", "GET", "/subscriptions", nil, map[string]string{"Authorization": "Bearer nope"}, 401, "AuthenticationFailed"},
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
		{"missing resource group", "PUT", "/subscriptions/" + s.sub + "/resourceGroups/nope/providers/Microsoft.ContainerInstance/containerGroups/g9", groupBody(image, nil), nil, 404, "ResourceGroupNotFound"},
		{"missing group", "GET", cgPath + "absent", nil, nil, 404, "ResourceNotFound"},
		{"unknown subscription", "GET", "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups", nil, nil, 404, "SubscriptionNotFound"},
	}
	for _, c := range cases {
		code, hdr, body := s.request(c.method, c.path, c.body, c.hdr)
		var env struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(body, &env); err != nil || env.Error.Code == "" || env.Error.Message == "" {
			t.Errorf("%s: no ARM error envelope: %d %s", c.name, code, body)
			continue
		}
		if code != c.status || (c.code != "" && env.Error.Code != c.code) {
			t.Errorf("%s: got %d %s (%s), want %d %s", c.name, code, env.Error.Code, env.Error.Message, c.status, c.code)
		}
		if hdr.Get("x-ms-error-code") != env.Error.Code {
			t.Errorf("%s: x-ms-error-code %q vs body %q", c.name, hdr.Get("x-ms-error-code"), env.Error.Code)
		}
	}
	var list struct {
		Value []any `json:"value"`
	}
	s.do("GET", "/subscriptions/"+s.sub+"/providers/Microsoft.ContainerInstance/containerGroups", &list)
	if len(list.Value) != 0 {
		t.Errorf("rejected requests left %d container groups", len(list.Value))
	}

	// An update that needs a recreate is refused, and the group is untouched.
	if code, _, body := s.request("PUT", cgPath+"good", groupBody(image, nil), nil); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	code, _, body := s.request("PUT", cgPath+"good", groupBody(image, func(p map[string]any) {
		container0(p)["resources"] = map[string]any{"requests": map[string]any{"cpu": 2, "memoryInGB": 1}}
	}), nil)
	if code != 400 || !strings.Contains(string(body), "InvalidContainerGroupUpdate") {
		t.Errorf("cpu update: %d %s", code, body)
	}
	var got struct {
		Properties struct {
			Containers []struct {
				Properties struct {
					Resources struct{ Requests struct{ CPU float64 } }
				}
			}
		}
	}
	s.do("GET", cgPath+"good", &got)
	if got.Properties.Containers[0].Properties.Resources.Requests.CPU != 1 {
		t.Errorf("refused update changed the group: %+v", got)
	}
	// A port another group publishes is refused up front.
	withPort := func(p map[string]any) {
		p["ipAddress"] = map[string]any{"type": "Public", "ports": []map[string]any{{"port": 80}}}
	}
	if code, _, body := s.request("PUT", cgPath+"web1", groupBody(image, withPort), nil); code != 201 {
		t.Fatalf("web1: %d %s", code, body)
	}
	if code, _, body := s.request("PUT", cgPath+"web2", groupBody(image, withPort), nil); code != 409 || !strings.Contains(string(body), "PortAlreadyInUse") {
		t.Errorf("second group on port 80: %d %s", code, body)
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
	s.request("PUT", "/subscriptions/"+s.sub+"/resourcegroups/burst", `{"location":"local"}`, nil)
	path := "/subscriptions/" + s.sub + "/resourceGroups/burst/providers/Microsoft.ContainerInstance/containerGroups/"
	var mu sync.Mutex
	accepted := map[string]bool{}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 6; i++ {
				name := fmt.Sprintf("b%d-%d", w, i)
				code, _, _, err := tryRequest(s, "PUT", path+name, groupBody(image, func(p map[string]any) { delete(container0(p), "ports") }))
				if err == nil && code == 201 {
					mu.Lock()
					accepted[name] = true
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	s.stop(syscall.SIGKILL)
	wg.Wait()
	if len(accepted) == 0 {
		t.Fatalf("no create was accepted before the kill")
	}
	s.start()
	deadline := time.Now().Add(120 * time.Second)
	for name := range accepted {
		for {
			var cg struct {
				Properties struct {
					ProvisioningState string
					InstanceView      *struct{ State string }
				}
			}
			code := s.do("GET", path+name, &cg)
			if code == 200 && (cg.Properties.ProvisioningState == "Succeeded" || cg.Properties.ProvisioningState == "Failed") {
				if cg.Properties.InstanceView == nil || cg.Properties.InstanceView.State != "Running" {
					t.Errorf("%s: provisioning %s, state %+v", name, cg.Properties.ProvisioningState, cg.Properties.InstanceView)
				}
				break
			}
			if code == 404 {
				t.Errorf("accepted group %s is gone after the restart", name)
				break
			}
			if time.Now().After(deadline) {
				_, _, raw := s.request("GET", path+name, nil, nil)
				s.cmd.Process.Signal(syscall.SIGQUIT)
				time.Sleep(time.Second)
				var shimLogs strings.Builder
				files, _ := filepath.Glob(filepath.Join(s.dataDir, "runtime/groups/*/containers/*/*.log"))
				more, _ := filepath.Glob(filepath.Join(s.dataDir, "runtime/groups/*/containers/*/bundle/runtime.log"))
				for _, f := range append(files, more...) {
					if data, _ := os.ReadFile(f); len(data) > 0 && !strings.Contains(f, "current.log") {
						fmt.Fprintf(&shimLogs, "%s: %s\n", f, data)
					}
				}
				out, _ := exec.Command("sh", "-c", "ps -eo pid,ppid,etime,args | grep -E 'runc|shim' | grep -v grep").Output()
				t.Fatalf("%s never settled: %d %s\nshim logs:\n%s\nprocesses:\n%s\nserver log:\n%s", name, code, raw, shimLogs.String(), out, s.goroutines())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Exactly one runc container per group: none twice.
	out := runcList(t, s.dataDir)
	seen := map[string]int{}
	for _, id := range out {
		seen[id]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("container %s runs %d times", id, n)
		}
	}
	var list struct{ Value []any }
	s.do("GET", path[:len(path)-1], &list)
	if len(list.Value) < len(accepted) || len(out) != len(list.Value) {
		t.Errorf("%d accepted, %d listed, %d runc containers", len(accepted), len(list.Value), len(out))
		for name := range accepted {
			_, _, raw := s.request("GET", path+name, nil, nil)
			var cg struct {
				Properties struct {
					Containers []struct {
						Properties struct{ InstanceView any } `json:"properties"`
					} `json:"containers"`
				} `json:"properties"`
			}
			json.Unmarshal(raw, &cg)
			iv, _ := json.Marshal(cg.Properties.Containers[0].Properties.InstanceView)
			t.Logf("%s: %s", name, iv)
		}
		t.Logf("runc: %v\nserver log:\n%s", out, s.logTail())
	}
}
