package runtime_test

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime"
)

// TestSecurityPolicyRefusesWithoutOperatorFlag: a runtime opened without a
// policy (as `skiff run` and `skiff server` are by default) refuses a
// privileged container, an added capability beyond the default set and a
// custom seccomp profile at Create, and records nothing.
func TestSecurityPolicyRefusesWithoutOperatorFlag(t *testing.T) {
	e := newEnv(t)
	yes := true
	prof := base64.StdEncoding.EncodeToString([]byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`))
	for _, tc := range []struct {
		id   string
		sc   *api.SecurityContext
		init bool
		code string
	}{
		{"privileged", &api.SecurityContext{Privileged: &yes}, false, api.CodePrivilegedNotAllowed},
		{"privileged-init", &api.SecurityContext{Privileged: &yes}, true, api.CodePrivilegedNotAllowed},
		{"sys-admin", &api.SecurityContext{Capabilities: &api.Capabilities{Add: []string{"SYS_ADMIN"}}}, false, api.CodeCapabilityNotAllowed},
		{"seccomp", &api.SecurityContext{SeccompProfile: prof}, false, api.CodeSeccompProfileNotAllowed},
	} {
		spec := group(tc.id, container("c", e.image, "true"))
		if tc.init {
			spec.Properties.InitContainers = []api.InitContainer{{Name: "i", Properties: api.InitContainerProperties{
				Image: e.image, Command: []string{"true"}, SecurityContext: tc.sc}}}
		} else {
			spec.Properties.Containers[0].Properties.SecurityContext = tc.sc
		}
		err := e.host.Create(context.Background(), tc.id, spec)
		if !errdefs.Is(err, errdefs.ErrInvalidArgument) || errdefs.CodeOf(err) != tc.code {
			t.Errorf("%s: Create = %v (code %q), want %s", tc.id, err, errdefs.CodeOf(err), tc.code)
		}
		if slices.Contains(e.host.List(), tc.id) {
			t.Errorf("%s: the refused group was recorded", tc.id)
		}
	}
	_, _, _, _, rtDir := runtime.HostLayout(e.dataDir)
	if groups, _ := os.ReadDir(filepath.Join(rtDir, "groups")); len(groups) != 0 {
		t.Errorf("refused groups left %d group dirs", len(groups))
	}

	// Dropping capabilities and re-adding default ones stays allowed, and
	// the container holds no more than asked for.
	spec := group("dropper", container("c", e.image, "sh", "-c", "grep CapEff /proc/self/status; sleep 30"))
	spec.Properties.Containers[0].Properties.SecurityContext = &api.SecurityContext{
		Capabilities: &api.Capabilities{Drop: []string{"ALL"}, Add: []string{"NET_BIND_SERVICE"}}}
	e.create("dropper", spec)
	if out := e.waitLog("dropper", "c", "CapEff", 60*time.Second); !strings.Contains(out, "0000000000000400") {
		t.Errorf("drop ALL add NET_BIND_SERVICE: %q, want CapEff 0000000000000400", out)
	}
}

// TestSecurityPolicyAllowsPrivileged: with the operator's AllowPrivileged
// (skiff server --allow-privileged) a privileged group runs and can do
// what only privilege allows (mount a tmpfs); without it the same command
// in a default container is denied.
func TestSecurityPolicyAllowsPrivileged(t *testing.T) {
	e := newEnv(t)
	e.host.Close()
	opts := hostOptions(t, e.dataDir)
	opts.Security = api.SecurityPolicy{AllowPrivileged: true}
	h, err := runtime.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	e.host = h
	yes := true
	cmd := []string{"sh", "-c", "mkdir -p /tmp/m; if mount -t tmpfs none /tmp/m; then echo MOUNT-OK; else echo MOUNT-DENIED; fi; sleep 30"}
	spec := group("priv", container("c", e.image, cmd...))
	spec.Properties.Containers[0].Properties.SecurityContext = &api.SecurityContext{Privileged: &yes}
	e.create("priv", spec)
	if out := e.waitLog("priv", "c", "MOUNT-", 60*time.Second); !strings.Contains(out, "MOUNT-OK") {
		t.Errorf("privileged container with --allow-privileged: %q", out)
	}
	e.create("plain", group("plain", container("c", e.image, cmd...)))
	if out := e.waitLog("plain", "c", "MOUNT-", 60*time.Second); !strings.Contains(out, "MOUNT-DENIED") {
		t.Errorf("default container: %q, want the mount denied", out)
	}
}
