package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// BuildSkiff builds the skiff binary into a temporary directory, for test
// packages that run it as users do (server, CLI, virtual node). It is meant
// for TestMain; remove the returned directory when done.
func BuildSkiff() (bin, dir string, err error) {
	dir, err = os.MkdirTemp("", "skiff-test-bin")
	if err != nil {
		return "", "", err
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin = filepath.Join(dir, "skiff")
	// The shim binary beside it, as `make build` puts it: the server
	// starts it for each container (runtime.DefaultShimCommand). It is
	// static (no cgo: no libc arenas per thread), as make build makes it.
	for _, b := range []struct{ pkg, cgo string }{{"./cmd/skiff", "CGO_ENABLED=1"}, {"./cmd/skiff-shim", "CGO_ENABLED=0"}} {
		build := exec.Command("go", "build", "-o", dir+"/", b.pkg)
		build.Dir = root
		build.Env = append(os.Environ(), b.cgo)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			os.RemoveAll(dir)
			return "", "", fmt.Errorf("build %s: %w", b.pkg, err)
		}
	}
	return bin, dir, nil
}
