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
	if code, _, body := s.request("PUT", "/subscriptions/"+s.sub+"/resourcegroups/vol", `{"location":"local"}`, nil); code != 201 {
		t.Fatalf("rg: %d %s", code, body)
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
		path := "/subscriptions/" + s.sub + "/resourcegroups/vol/providers/Microsoft.ContainerInstance/containerGroups/" + c.name
		body := groupBody("busybox", func(p map[string]any) {
			p["volumes"] = []any{c.vol}
			container0(p)["volumeMounts"] = []any{map[string]any{"name": "src", "mountPath": "/src"}}
		})
		code, _, out := s.request("PUT", path, body, nil)
		var env struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		json.Unmarshal(out, &env)
		if code != 400 || env.Error.Code != c.code || !strings.Contains(env.Error.Message, "'src'") {
			t.Errorf("%s: %d %s, want 400 %s naming the volume", c.name, code, out, c.code)
		}
		if code, _, _ := s.request("GET", path, nil, nil); code != 404 {
			t.Errorf("%s: GET after a refused PUT: %d, want 404", c.name, code)
		}
	}
}
