package runtime_test

import (
	"os"
	"testing"

	"github.com/skiff-sh/skiff/internal/runtime/cgroup"
	"github.com/skiff-sh/skiff/internal/runtime/shim"
)

// The test binary doubles as the shim ("shim" argument) and as a runtime
// daemon for the kill -9 test (SKIFF_TEST_DAEMON set), the way the skiff
// binary does in production.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "shim" {
		os.Exit(shim.Main(os.Args[2:], cgroup.OOMKilled))
	}
	if os.Getenv("SKIFF_TEST_DAEMON") != "" {
		os.Exit(daemonMain())
	}
	os.Exit(m.Run())
}
