package e2e

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/testenv"
)

// withSecurity sets the first container's securityContext.
func withSecurity(sc map[string]any) func(map[string]any) {
	return func(p map[string]any) { container0(p)["securityContext"] = sc }
}

// TestSecurityContextPolicy: without the operator's flags, a privileged
// container, an added capability beyond the default set and a custom
// seccomp profile are refused with a 400 and an ARM code, before anything
// is stored: no group appears, and a refused update leaves the stored group
// as it was. Dropping capabilities stays allowed.
func TestSecurityContextPolicy(t *testing.T) {
	s := startServer(t)
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})
	if r := s.send("PUT", "/subscriptions/"+s.Subscription+"/resourcegroups/sec", `{"location":"local"}`); r.Status != 201 {
		t.Fatalf("rg: %d %s", r.Status, r)
	}
	cgPath := "/subscriptions/" + s.Subscription + "/resourceGroups/sec/providers/Microsoft.ContainerInstance/containerGroups/"
	profile := base64.StdEncoding.EncodeToString([]byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`))
	initPrivileged := func(p map[string]any) {
		p["initContainers"] = []any{map[string]any{"name": "setup", "properties": map[string]any{
			"image": image, "command": []string{"true"}, "securityContext": map[string]any{"privileged": true}}}}
	}
	for _, tc := range []struct {
		name, group, code, field string
		mutate                   func(map[string]any)
	}{
		{"privileged", "p1", "PrivilegedContainerNotAllowed", "securityContext.privileged", withSecurity(map[string]any{"privileged": true})},
		{"privileged init container", "p2", "PrivilegedContainerNotAllowed", "securityContext.privileged", initPrivileged},
		{"capabilities.add SYS_ADMIN", "p3", "CapabilityNotAllowed", "capabilities.add",
			withSecurity(map[string]any{"capabilities": map[string]any{"add": []string{"SYS_ADMIN"}}})},
		{"capabilities.add ALL", "p4", "CapabilityNotAllowed", "capabilities.add",
			withSecurity(map[string]any{"capabilities": map[string]any{"add": []string{"ALL"}}})},
		{"custom seccomp", "p5", "CustomSeccompProfileNotAllowed", "securityContext.seccompProfile", withSecurity(map[string]any{"seccompProfile": profile})},
	} {
		r := s.send("PUT", cgPath+tc.group, groupBody(image, tc.mutate))
		var env struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(r.Body, &env)
		if r.Status != 400 || env.Error.Code != tc.code || !strings.Contains(env.Error.Message, tc.field) {
			t.Errorf("%s: %d %s, want 400 %s naming %s", tc.name, r.Status, r, tc.code, tc.field)
		}
		if _, err := s.Client.GetContainerGroup(t.Context(), "sec", tc.group); testenv.StatusOf(err) != 404 {
			t.Errorf("%s: the refused group is there (GET %d)", tc.name, testenv.StatusOf(err))
		}
	}

	// A refused update changes nothing: the stored group keeps its spec and
	// keeps running.
	if r := s.send("PUT", cgPath+"keep", groupBody(image, nil)); r.Status != 201 {
		t.Fatalf("create keep: %d %s", r.Status, r)
	}
	s.waitRunning("sec", "keep")
	if r := s.send("PUT", cgPath+"keep", groupBody(image, withSecurity(map[string]any{"privileged": true}))); r.Status != 400 {
		t.Errorf("privileged update: %d %s, want 400", r.Status, r)
	}
	if got, err := s.Client.GetContainerGroup(t.Context(), "sec", "keep"); err != nil || got.Properties.Containers[0].Properties.SecurityContext != nil ||
		got.Properties.ProvisioningState != "Succeeded" {
		t.Errorf("after the refused update: %v %+v", err, got)
	}
	if state, _, body := s.groupState("sec", "keep"); state != "Running" {
		t.Errorf("the group stopped running after a refused update: %s", body)
	}

	// Dropping capabilities (and adding a default one back) is allowed.
	drop := withSecurity(map[string]any{"capabilities": map[string]any{"drop": []string{"ALL"}, "add": []string{"NET_BIND_SERVICE"}}})
	if r := s.send("PUT", cgPath+"dropper", groupBody(image, drop)); r.Status != 201 {
		t.Errorf("drop ALL add NET_BIND_SERVICE: %d %s, want 201", r.Status, r)
	}
}

// TestSecurityContextAllowPrivileged: with --allow-privileged a privileged
// group runs and can do what only privilege allows (mount a tmpfs), while a
// custom seccomp profile still needs its own flag.
func TestSecurityContextAllowPrivileged(t *testing.T) {
	s := startServer(t, "--allow-privileged")
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})
	s.mustSkiff("group", "create", "-n", "priv", "-l", "local")
	cgPath := "/subscriptions/" + s.Subscription + "/resourceGroups/priv/providers/Microsoft.ContainerInstance/containerGroups/"
	body := groupBody(image, func(p map[string]any) {
		c := container0(p)
		c["command"] = []string{"sh", "-c", "mkdir -p /tmp/m; if mount -t tmpfs none /tmp/m; then echo MOUNT-OK; else echo MOUNT-DENIED; fi; exec sleep 3600"}
		c["securityContext"] = map[string]any{"privileged": true}
	})
	if r := s.send("PUT", cgPath+"root", body); r.Status != 201 {
		t.Fatalf("privileged group with --allow-privileged: %d %s", r.Status, r)
	}
	s.waitRunning("priv", "root")
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, _ := s.skiff("container", "logs", "-g", "priv", "-n", "root")
		if strings.Contains(out, "MOUNT-OK") {
			break
		}
		if strings.Contains(out, "MOUNT-DENIED") || time.Now().After(deadline) {
			t.Fatalf("privileged container log: %q", out)
		}
		time.Sleep(300 * time.Millisecond)
	}
	profile := base64.StdEncoding.EncodeToString([]byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`))
	if r := s.send("PUT", cgPath+"seccomp", groupBody(image, withSecurity(map[string]any{"seccompProfile": profile}))); r.Status != 400 ||
		!strings.Contains(r.String(), "CustomSeccompProfileNotAllowed") {
		t.Errorf("custom seccomp with only --allow-privileged: %d %s", r.Status, r)
	}
}
