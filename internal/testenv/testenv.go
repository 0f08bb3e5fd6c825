// Package testenv holds helpers shared by Skiff's integration tests: a root
// check, the one harness that starts a real `skiff server` and hands back
// the typed client (StartSkiffServer), a real registry server (Debian's
// docker-registry) on loopback, and tiny busybox-based images built and
// pushed with go-containerregistry. Its apiserver package starts the API
// server in-process on the fake host agent, for the control plane's and
// the CLI's tests.
//
// It is a normal (non-test) package so that tests across the repository can
// import it; nothing outside tests should.
package testenv

import (
	"os"
	"testing"
)

// RequireRoot fails the test (it does not skip it) unless the effective user
// is root: Skiff's integration tests mount filesystems, create namespaces and
// run containers, which needs root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if euid := os.Geteuid(); euid != 0 {
		t.Fatalf("this test needs root (it uses real mounts, namespaces and runc); running as euid %d: run `go test` as root", euid)
	}
}
