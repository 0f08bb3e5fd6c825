package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/internal/runtime"
)

// runcList lists the ids of the OCI containers of a data dir.
func runcList(t *testing.T, dataDir string) []string {
	_, _, _, _, rtDir := runtime.HostLayout(dataDir)
	out, err := exec.Command("runc", "--root", runtime.OCIRoot(rtDir), "list", "-q").Output()
	if err != nil {
		t.Fatalf("runc list: %v", err)
	}
	return strings.Fields(string(out))
}

// goroutines returns the skiff frames of a SIGQUIT dump in the server log.
func (s *server) goroutines() string {
	var keep []string
	for _, l := range strings.Split(s.Log(), "\n") {
		if strings.Contains(l, "skiff/internal") || strings.HasPrefix(l, "goroutine ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// busyboxTar builds busybox:local as an image tarball (hack/busybox-image.sh,
// as `make run` does) in a temporary dir and returns its path.
func busyboxTar(t *testing.T) string {
	t.Helper()
	tar := filepath.Join(t.TempDir(), "busybox.tar")
	if out, err := exec.Command("../../hack/busybox-image.sh", tar, "busybox:local").CombinedOutput(); err != nil {
		t.Fatalf("build image tarball: %v %s", err, out)
	}
	return tar
}
