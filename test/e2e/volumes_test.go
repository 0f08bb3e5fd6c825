package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// A gitRepo volume from a local path or file:// URL, and an emptyDir with a
// bad sizeLimit, are refused with a 400 at PUT, and nothing is stored.
func TestBadVolumesAreRefusedAtPut(t *testing.T) {
	s := startServer(t)
	if r := s.send("PUT", "/subscriptions/"+s.Subscription+"/resourcegroups/vol", `{"location":"local"}`); r.Status != 201 {
		t.Fatalf("rg: %d %s", r.Status, r)
	}
	for _, c := range []struct {
		name, code string
		vol        map[string]any
	}{
		{"file", "InvalidGitRepoVolume", map[string]any{"name": "src", "gitRepo": map[string]any{"repository": "file:///etc"}}},
		{"path", "InvalidGitRepoVolume", map[string]any{"name": "src", "gitRepo": map[string]any{"repository": "/var/lib/skiff"}}},
		{"ssh", "InvalidGitRepoVolume", map[string]any{"name": "src", "gitRepo": map[string]any{"repository": "git@127.0.0.1:r.git"}}},
		{"size", "InvalidEmptyDirVolume", map[string]any{"name": "src", "emptyDir": map[string]any{"sizeLimit": "lots"}}},
	} {
		path := "/subscriptions/" + s.Subscription + "/resourcegroups/vol/providers/Microsoft.ContainerInstance/containerGroups/" + c.name
		body := groupBody("busybox", func(p map[string]any) {
			p["volumes"] = []any{c.vol}
			container0(p)["volumeMounts"] = []any{map[string]any{"name": "src", "mountPath": "/src"}}
		})
		r := s.send("PUT", path, body)
		var env struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		json.Unmarshal(r.Body, &env)
		if r.Status != 400 || env.Error.Code != c.code || !strings.Contains(env.Error.Message, "'src'") {
			t.Errorf("%s: %d %s, want 400 %s naming the volume", c.name, r.Status, r, c.code)
		}
		if r := s.send("GET", path, nil); r.Status != 404 {
			t.Errorf("%s: GET after a refused PUT: %d, want 404", c.name, r.Status)
		}
	}
}
