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

// TestControlPlaneDoesNotImportTheHost: the server and the controller reach
// hosts through the store and internal/hostapi only.
func TestControlPlaneDoesNotImportTheHost(t *testing.T) {
	forbid(t, []string{"./internal/server/...", "./internal/controller/...", "./internal/hostapi/...", "./internal/lifecycle/..."},
		[]string{"internal/runtime", "internal/agent"})
}

// TestClientsUseOnlyTheAPI: the CLI, the virtual node and the public client
// import none of the server's insides.
func TestClientsUseOnlyTheAPI(t *testing.T) {
	forbid(t, []string{"./client/...", "./internal/cli/...", "./internal/virtualnode/...", "./internal/cmd/virtualnode/..."},
		[]string{"internal/server", "internal/store", "internal/controller", "internal/runtime", "internal/agent"})
}

// TestRuntimeDoesNotImportTheControlPlane: the runtime knows nothing of
// the store or the API server.
func TestRuntimeDoesNotImportTheControlPlane(t *testing.T) {
	forbid(t, []string{"./internal/runtime/...", "./internal/agent/..."},
		[]string{"internal/server", "internal/controller", "internal/cli", "client"})
}
