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
	// starts it for each container (runtime.DefaultShimCommand).
	build := exec.Command("go", "build", "-o", dir+"/", "./cmd/skiff", "./cmd/skiff-shim")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("build skiff: %w", err)
	}
	return bin, dir, nil
}
