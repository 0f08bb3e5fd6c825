package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// TestContainerGroupProfiles: a profile is a container group spec with
// immutable revisions. Its PUT makes revision 1 (201); a PUT of the same
// spec adds none and one with another spec adds the next (200); each
// revision stays readable, and the list of revisions is newest first.
// Reads never show its secrets, nor does any file hold them plain. A group
// created with containerGroupProfile {id, revision} runs that revision's
// spec (its secret included), and without a revision the latest. A PATCH
// changes tags only; a delete leaves the groups made from it running.
func TestContainerGroupProfiles(t *testing.T) {
	s := startServer(t)
	s.mustSkiff("image", "import", busyboxTar(t))
	s.mustSkiff("group", "create", "-n", "prof", "-l", "local")
	const secret = "pr0file-s3cret-value"
	rgPath := "/subscriptions/" + s.Subscription + "/resourceGroups/prof"
	profPath := rgPath + "/providers/Microsoft.ContainerInstance/containerGroupProfiles/web"
	const v = "?api-version=2026-07-01"
	spec := func(word string, extra map[string]any) map[string]any {
		res := map[string]any{"requests": map[string]any{"cpu": 0.1, "memoryInGB": 0.1}}
		for k, val := range extra {
			res[k] = val
		}
		return map[string]any{"location": "local", "properties": map[string]any{
			"osType": "Linux", "restartPolicy": "Never",
			"containers": []map[string]any{{"name": "app", "properties": map[string]any{
				"image": "busybox:local", "command": []string{"sh", "-c", "echo " + word + "; exec sleep 3600"},
				"environmentVariables": []map[string]any{{"name": "TOKEN", "secureValue": secret}},
				"resources":            res,
			}}},
		}}
	}
	type profile struct {
		ID         string            `json:"id"`
		Name       string            `json:"name"`
		Type       string            `json:"type"`
		Tags       map[string]string `json:"tags"`
		Properties struct {
			Revision   int `json:"revision"`
			Containers []struct {
				Properties struct {
					Command []string `json:"command"`
				} `json:"properties"`
			} `json:"containers"`
		} `json:"properties"`
	}
	read := func(what string, r reply) profile {
		t.Helper()
		if strings.Contains(string(r.Body), secret) {
			t.Fatalf("%s shows the secret: %s", what, r.Body)
		}
		var p profile
		if err := json.Unmarshal(r.Body, &p); err != nil {
			t.Fatalf("%s: %v: %s", what, err, r.Body)
		}
		return p
	}
	command := func(p profile) string {
		if len(p.Properties.Containers) == 0 {
			return ""
		}
		return strings.Join(p.Properties.Containers[0].Properties.Command, " ")
	}

	r := s.send("PUT", profPath+v, spec("v1", nil))
	if p := read("create", r); r.Status != 201 || p.Properties.Revision != 1 || p.Type != "Microsoft.ContainerInstance/containerGroupProfiles" || !strings.HasSuffix(p.ID, "/containerGroupProfiles/web") {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	if r := s.send("PUT", profPath+v, spec("v1", nil)); r.Status != 200 || read("same PUT", r).Properties.Revision != 1 {
		t.Errorf("a PUT of the same spec: %d %s; want 200 at revision 1", r.Status, r.Body)
	}
	if r := s.send("PUT", profPath+v, spec("v2", nil)); r.Status != 200 || read("changed PUT", r).Properties.Revision != 2 {
		t.Errorf("a PUT of another spec: %d %s; want 200 at revision 2", r.Status, r.Body)
	}
	if p := read("GET", s.send("GET", profPath+v, nil)); p.Properties.Revision != 2 || !strings.Contains(command(p), "echo v2") {
		t.Errorf("GET: revision %d, command %q", p.Properties.Revision, command(p))
	}
	if p := read("revision 1", s.send("GET", profPath+"/revisions/1"+v, nil)); p.Properties.Revision != 1 || !strings.Contains(command(p), "echo v1") {
		t.Errorf("revision 1: revision %d, command %q", p.Properties.Revision, command(p))
	}
	if r := s.send("GET", profPath+"/revisions/3"+v, nil); r.Status != 404 {
		t.Errorf("revision 3: %d %s; want 404", r.Status, r.Body)
	}
	var revs struct{ Value []profile }
	if r := s.send("GET", profPath+"/revisions"+v, nil); json.Unmarshal(r.Body, &revs) != nil || len(revs.Value) != 2 ||
		revs.Value[0].Properties.Revision != 2 || revs.Value[1].Properties.Revision != 1 || strings.Contains(string(r.Body), secret) {
		t.Errorf("revisions: %d %s", r.Status, r.Body)
	}
	for _, list := range []string{rgPath, "/subscriptions/" + s.Subscription} {
		var l struct{ Value []profile }
		r := s.send("GET", list+"/providers/Microsoft.ContainerInstance/containerGroupProfiles"+v, nil)
		if json.Unmarshal(r.Body, &l) != nil || len(l.Value) != 1 || l.Value[0].Name != "web" || strings.Contains(string(r.Body), secret) {
			t.Errorf("list under %s: %d %s", list, r.Status, r.Body)
		}
	}
	// Refused as a group's PUT would be.
	if r := s.send("PUT", rgPath+"/providers/Microsoft.ContainerInstance/containerGroupProfiles/gpu"+v,
		spec("x", map[string]any{"limits": map[string]any{"gpu": map[string]any{"count": 1, "sku": "K80"}}})); r.Status != 400 || !strings.Contains(string(r.Body), "GpuNotSupported") {
		t.Errorf("a profile asking for a GPU: %d %s", r.Status, r.Body)
	}

	// Groups from the profile.
	profID := read("GET", s.send("GET", profPath+v, nil)).ID
	fromProfile := func(name string, ref map[string]any) reply {
		return s.send("PUT", rgPath+"/providers/Microsoft.ContainerInstance/containerGroups/"+name+v,
			map[string]any{"location": "local", "properties": map[string]any{"containerGroupProfile": ref}})
	}
	for _, tc := range []struct {
		name string
		ref  map[string]any
		want string
		rev  int
	}{
		{"g1", map[string]any{"id": profID, "revision": 1}, "v1", 1},
		{"g2", map[string]any{"id": strings.ToLower(profID)}, "v2", 2},
	} {
		if r := fromProfile(tc.name, tc.ref); r.Status != 200 && r.Status != 201 {
			t.Fatalf("%s from the profile: %d %s", tc.name, r.Status, r.Body)
		}
		s.waitRunning("prof", tc.name)
		if logs := s.mustSkiff("container", "logs", "-g", "prof", "-n", tc.name); strings.TrimSpace(logs) != tc.want {
			t.Errorf("%s logs %q, want %s", tc.name, logs, tc.want)
		}
		if out, stderr, code := s.skiff("container", "exec", "-g", "prof", "-n", tc.name, "--exec-command", `["sh","-c","echo $TOKEN"]`); code != 0 || strings.TrimSpace(out) != secret {
			t.Errorf("%s: the profile's secret in the container: exit %d, %q %s", tc.name, code, out, stderr)
		}
		var g struct {
			Properties struct {
				ContainerGroupProfile struct {
					ID       string `json:"id"`
					Revision int    `json:"revision"`
				} `json:"containerGroupProfile"`
			} `json:"properties"`
		}
		r := s.send("GET", rgPath+"/providers/Microsoft.ContainerInstance/containerGroups/"+tc.name+v, nil)
		if json.Unmarshal(r.Body, &g) != nil || g.Properties.ContainerGroupProfile.Revision != tc.rev || !strings.EqualFold(g.Properties.ContainerGroupProfile.ID, profID) || strings.Contains(string(r.Body), secret) {
			t.Errorf("GET %s: %s; want containerGroupProfile revision %d and no secret", tc.name, r.Body, tc.rev)
		}
	}
	for _, tc := range []struct {
		name string
		body map[string]any
		code string
	}{
		{"unknown profile", map[string]any{"location": "local", "properties": map[string]any{"containerGroupProfile": map[string]any{"id": rgPath + "/providers/Microsoft.ContainerInstance/containerGroupProfiles/nope"}}}, "ContainerGroupProfileNotFound"},
		{"unknown revision", map[string]any{"location": "local", "properties": map[string]any{"containerGroupProfile": map[string]any{"id": profID, "revision": 9}}}, "ContainerGroupProfileNotFound"},
		{"not a profile id", map[string]any{"location": "local", "properties": map[string]any{"containerGroupProfile": map[string]any{"id": rgPath}}}, "InvalidContainerGroupProfileReference"},
		{"containers too", func() map[string]any {
			b := spec("x", nil)
			b["properties"].(map[string]any)["containerGroupProfile"] = map[string]any{"id": profID}
			return b
		}(), "InvalidContainerGroupProfileReference"},
	} {
		r := s.send("PUT", rgPath+"/providers/Microsoft.ContainerInstance/containerGroups/bad"+v, tc.body)
		if r.Status != 400 || !strings.Contains(string(r.Body), tc.code) {
			t.Errorf("%s: %d %s; want 400 %s", tc.name, r.Status, r.Body, tc.code)
		}
	}

	_, _, _, _, rtDir := runtime.HostLayout(s.hostDir())
	if found := testenv.FindPlain(t, []string{secret}, append(s.stateDirs(), runtime.RunDir(rtDir))...); len(found) > 0 {
		t.Errorf("the profile's secret is plain in files:\n%s", strings.Join(found, "\n"))
	}

	// PATCH: tags, no revision.
	if r := s.send("PATCH", profPath+v, map[string]any{"tags": map[string]string{"team": "web"}}); r.Status != 200 {
		t.Errorf("PATCH: %d %s", r.Status, r.Body)
	} else if p := read("PATCH", r); p.Properties.Revision != 2 || p.Tags["team"] != "web" {
		t.Errorf("PATCH: revision %d, tags %v", p.Properties.Revision, p.Tags)
	}
	// DELETE: 200, then 204; the groups stay.
	if r := s.send("DELETE", profPath+v, nil); r.Status != 200 {
		t.Errorf("DELETE: %d %s", r.Status, r.Body)
	}
	if r := s.send("GET", profPath+v, nil); r.Status != 404 || !strings.Contains(string(r.Body), "ResourceNotFound") {
		t.Errorf("GET after DELETE: %d %s", r.Status, r.Body)
	}
	if r := s.send("DELETE", profPath+v, nil); r.Status != 204 {
		t.Errorf("DELETE again: %d, want 204", r.Status)
	}
	s.waitRunning("prof", "g1")
}
