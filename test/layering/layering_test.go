// Package layering holds the test that keeps Skiff's layers apart:
//
//	api ← server → controller → store ← agent → runtime
//	CLI, virtual node → client → api
//
// The control plane (server, controller) reaches a host only through the
// store and internal/hostapi, so the next step can put hosts elsewhere;
// the CLI and the virtual node speak only the public HTTP API.
package layering

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/skiff-sh/skiff/"

// deps lists the packages pkgs import, transitively (tests excluded).
func deps(t *testing.T, pkgs ...string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, p := range pkgs {
		cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", p)
		cmd.Dir = "../.."
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", p, err, b)
		}
		out[p] = strings.Fields(string(b))
	}
	return out
}

func forbid(t *testing.T, pkgs []string, forbidden []string) {
	t.Helper()
	for pkg, ds := range deps(t, pkgs...) {
		for _, d := range ds {
			for _, f := range forbidden {
				if d == module+f || strings.HasPrefix(d, module+f+"/") {
					t.Errorf("%s imports %s (transitively): it may not import %s", pkg, d, f)
				}
			}
		}
	}
}

// TestControlPlaneDoesNotImportTheHost: the server, the controller, the
// scheduler and the cluster's plumbing reach hosts through the store and
// internal/hostapi only (over the network, internal/agentapi, which
// imports no agent either).
func TestControlPlaneDoesNotImportTheHost(t *testing.T) {
	forbid(t, []string{"./internal/server/...", "./internal/controller/...", "./internal/hostapi/...", "./internal/lifecycle/...",
		"./internal/scheduler/...", "./internal/cluster/...", "./internal/agentapi/...", "./internal/identity/...", "./internal/authz/...",
		"./internal/pki/..."},
		[]string{"internal/runtime", "internal/agent"})
}

// TestStoreImportsNoLayerAbove: both stores are below everything.
func TestStoreImportsNoLayerAbove(t *testing.T) {
	forbid(t, []string{"./internal/store/...", "./internal/scheduler/..."},
		[]string{"internal/server", "internal/controller", "internal/agent", "internal/agentapi", "internal/cluster", "internal/runtime", "internal/cli", "client"})
}

// TestStorageIsBelowTheServerAndTheAgent: the storage accounts and shares
// (internal/storage) are records on the store, read by the server and by
// the agents alike, and know neither.
func TestStorageIsBelowTheServerAndTheAgent(t *testing.T) {
	forbid(t, []string{"./internal/storage/..."},
		[]string{"internal/server", "internal/controller", "internal/agent", "internal/agentapi", "internal/cluster", "internal/runtime",
			"internal/identity", "internal/authz", "internal/cli", "client"})
}

// TestClientsUseOnlyTheAPI: the CLI, the virtual node and the public client
// import none of the server's insides.
func TestClientsUseOnlyTheAPI(t *testing.T) {
	forbid(t, []string{"./client/...", "./internal/cli/...", "./internal/virtualnode/...", "./internal/cmd/virtualnode/..."},
		[]string{"internal/server", "internal/store", "internal/controller", "internal/runtime", "internal/agent",
			"internal/identity", "internal/authz", "internal/storage"})
}

// TestIdentityAndRolesAreBelowTheServer: who a caller is and what it may
// do are decided on the store alone, without the API server or the
// controller, and neither knows the other (the server joins them).
func TestIdentityAndRolesAreBelowTheServer(t *testing.T) {
	forbid(t, []string{"./internal/identity/...", "./internal/authz/...", "./internal/pki/..."},
		[]string{"internal/server", "internal/controller", "internal/cluster", "internal/cli", "client"})
	forbid(t, []string{"./internal/identity/..."}, []string{"internal/authz"})
	forbid(t, []string{"./internal/authz/..."}, []string{"internal/identity"})
}

// TestRuntimeDoesNotImportTheControlPlane: the runtime knows nothing of
// the store or the API server.
func TestRuntimeDoesNotImportTheControlPlane(t *testing.T) {
	forbid(t, []string{"./internal/runtime/...", "./internal/agent/..."},
		[]string{"internal/server", "internal/controller", "internal/cli", "client"})
}

// TestDeploymentsAreBelowTheServer: the deployment engine acts on
// resources only through the API (its Resources, which the server
// implements), as the principal that deployed: it imports neither the
// server nor what stands behind the API (controller, host, identity,
// authorization), nor a client; the template language is pure.
func TestDeploymentsAreBelowTheServer(t *testing.T) {
	forbid(t, []string{"./internal/deployment/..."},
		[]string{"internal/server", "internal/controller", "internal/runtime", "internal/agent", "internal/agentapi", "internal/hostapi",
			"internal/identity", "internal/authz", "internal/cluster", "internal/cli", "client"})
	forbid(t, []string{"./internal/template/..."},
		[]string{"internal/store", "internal/server", "internal/deployment", "internal/controller", "internal/runtime", "internal/agent",
			"internal/identity", "internal/authz", "internal/cli", "client"})
}
