package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
)

// TestNGroups: an NGroup holds desiredCount container groups made from a
// profile revision, named <prefix><guid> and tagged with its name. It
// scales up and down with a PATCH; with maintainDesiredCount, a member
// deleted or killed is replaced. A rolling update to a revision whose
// image cannot be pulled stops once more of its members are unhealthy
// than maxUnhealthyPercent allows: the members of the old revision it did
// not reach keep running, and the NGroup is Failed. A DELETE removes the
// members, then the NGroup.
func TestNGroups(t *testing.T) {
	s := startServer(t)
	s.mustSkiff("image", "import", busyboxTar(t))
	s.mustSkiff("group", "create", "-n", "ng", "-l", "local")
	rgPath := "/subscriptions/" + s.Subscription + "/resourceGroups/ng/providers/Microsoft.ContainerInstance"
	const v = "?api-version=2026-07-01"
	putProfile := func(image string) int {
		t.Helper()
		r := s.send("PUT", rgPath+"/containerGroupProfiles/app"+v, map[string]any{"location": "local", "properties": map[string]any{
			"osType": "Linux", "restartPolicy": "Never",
			"containers": []map[string]any{{"name": "app", "properties": map[string]any{
				"image":     image,
				"command":   []string{"sh", "-c", `trap "exit 3" TERM; while true; do sleep 1; done`},
				"resources": map[string]any{"requests": map[string]any{"cpu": 0.1, "memoryInGB": 0.1}},
			}}},
		}})
		var p struct{ Properties struct{ Revision int } }
		if r.Status >= 300 || json.Unmarshal(r.Body, &p) != nil {
			t.Fatalf("PUT profile: %d %s", r.Status, r.Body)
		}
		return p.Properties.Revision
	}
	rev1 := putProfile("busybox:local")
	profID := "/subscriptions/" + s.Subscription + "/resourceGroups/ng/providers/Microsoft.ContainerInstance/containerGroupProfiles/app"
	ngPath := rgPath + "/ngroups/web" + v
	r := s.send("PUT", ngPath, map[string]any{"location": "local", "properties": map[string]any{
		"elasticProfile": map[string]any{"desiredCount": 3, "maintainDesiredCount": true,
			"containerGroupNamingPolicy": map[string]any{"guidNamingPolicy": map[string]any{"prefix": "web-"}}},
		"containerGroupProfiles": []map[string]any{{"resource": map[string]any{"id": profID}}},
		"updateProfile": map[string]any{"updateMode": "Rolling",
			"rollingUpdateProfile": map[string]any{"maxBatchPercent": 34, "maxUnhealthyPercent": 20, "inPlaceUpdate": false}},
	}})
	if r.Status != 201 || !strings.Contains(string(r.Body), `"provisioningState":"Creating"`) {
		t.Fatalf("PUT ngroup: %d %s", r.Status, r.Body)
	}

	type member struct {
		name, state, provisioning string
		revision                  int
	}
	members := func() []member {
		t.Helper()
		var l struct {
			Value []struct {
				Name       string            `json:"name"`
				Tags       map[string]string `json:"tags"`
				Properties struct {
					ProvisioningState     string `json:"provisioningState"`
					ContainerGroupProfile *struct {
						Revision int `json:"revision"`
					} `json:"containerGroupProfile"`
				} `json:"properties"`
			}
		}
		r := s.send("GET", rgPath+"/containerGroups"+v, nil)
		if err := json.Unmarshal(r.Body, &l); err != nil {
			t.Fatalf("list: %v %s", err, r.Body)
		}
		var out []member
		for _, g := range l.Value {
			if g.Tags[api.NGroupTag] != "web" || g.Properties.ProvisioningState == "Deleting" {
				continue
			}
			m := member{name: g.Name, provisioning: g.Properties.ProvisioningState}
			if ref := g.Properties.ContainerGroupProfile; ref != nil {
				m.revision = ref.Revision
			}
			st, _, _ := s.groupState("ng", g.Name)
			m.state = st
			out = append(out, m)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
		return out
	}
	ngState := func() string {
		var ng struct {
			Properties struct{ ProvisioningState string }
		}
		json.Unmarshal(s.send("GET", ngPath, nil).Body, &ng)
		return ng.Properties.ProvisioningState
	}
	// waitFor polls until ok holds of the members, and returns them.
	waitFor := func(what string, ok func([]member) bool) []member {
		t.Helper()
		deadline := time.Now().Add(120 * time.Second)
		for {
			ms := members()
			if ok(ms) {
				return ms
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: members %+v, NGroup %s", what, ms, ngState())
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	running := func(n, rev int) func([]member) bool {
		return func(ms []member) bool {
			if len(ms) != n {
				return false
			}
			for _, m := range ms {
				if m.state != "Running" || m.revision != rev {
					return false
				}
			}
			return ngState() == "Succeeded"
		}
	}
	ms := waitFor("3 members running", running(3, rev1))
	for _, m := range ms {
		if !strings.HasPrefix(m.name, "web-") || len(m.name) != len("web-")+36 {
			t.Errorf("member name %q is not web-<guid>", m.name)
		}
	}
	scale := func(n int) {
		t.Helper()
		r := s.send("PATCH", ngPath, map[string]any{"properties": map[string]any{"elasticProfile": map[string]any{"desiredCount": n}}})
		if r.Status != 200 {
			t.Fatalf("PATCH desiredCount %d: %d %s", n, r.Status, r.Body)
		}
	}
	scale(5)
	waitFor("scaled to 5", running(5, rev1))
	scale(2)
	ms = waitFor("scaled to 2", running(2, rev1))

	// A deleted member is replaced; so is a killed one.
	s.mustSkiff("container", "delete", "-g", "ng", "-n", ms[0].name, "--yes")
	ms = waitFor("the deleted member replaced", func(now []member) bool {
		return running(2, rev1)(now) && now[0].name != ms[0].name && now[1].name != ms[0].name
	})
	killed := ms[1].name
	if _, stderr, code := s.skiff("container", "exec", "-g", "ng", "-n", killed, "--exec-command", "kill 1"); code != 0 {
		t.Fatalf("kill: exit %d %s", code, stderr)
	}
	ms = waitFor("the killed member replaced", func(now []member) bool {
		return running(2, rev1)(now) && now[0].name != killed && now[1].name != killed
	})

	// A rolling update to an image that cannot be pulled stops after its
	// first batch (one member of two: 50% unhealthy > 20%).
	rev2 := putProfile("127.0.0.1:9/nothing/here:1")
	if r := s.send("PATCH", ngPath, map[string]any{"properties": map[string]any{
		"containerGroupProfiles": []map[string]any{{"resource": map[string]any{"id": profID}, "revision": rev2}}}}); r.Status != 200 {
		t.Fatalf("PATCH revision: %d %s", r.Status, r.Body)
	}
	deadline := time.Now().Add(120 * time.Second)
	for ngState() != "Failed" {
		if time.Now().After(deadline) {
			t.Fatalf("the rolling update did not stop: NGroup %s, members %+v", ngState(), members())
		}
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // long enough for a rollout that did not stop to take its next batch
	ms = members()
	old, bad := 0, 0
	for _, m := range ms {
		switch {
		case m.revision == rev1 && m.state == "Running":
			old++
		case m.revision == rev2:
			bad++
		}
	}
	if old != 1 || bad != 1 || len(ms) != 2 {
		t.Errorf("after the stopped update: %d running at revision %d, %d at revision %d (%+v); want 1 and 1", old, rev1, bad, rev2, ms)
	}
	var got struct{ Properties json.RawMessage }
	json.Unmarshal(s.send("GET", ngPath, nil).Body, &got)
	if !strings.Contains(string(got.Properties), fmt.Sprintf(`"revision":%d`, rev2)) {
		t.Errorf("NGroup properties %s: want revision %d", got.Properties, rev2)
	}

	// DELETE: 202, the members go, then the NGroup.
	if r := s.send("DELETE", ngPath, nil); r.Status != 202 {
		t.Fatalf("DELETE: %d %s", r.Status, r.Body)
	}
	deadline = time.Now().Add(120 * time.Second)
	for {
		r := s.send("GET", ngPath, nil)
		if r.Status == 404 && len(members()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after DELETE: GET %d, members %+v", r.Status, members())
		}
		time.Sleep(300 * time.Millisecond)
	}
}
