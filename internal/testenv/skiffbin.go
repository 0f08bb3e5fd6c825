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
	build := exec.Command("go", "build", "-o", bin, "./cmd/skiff")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("build skiff: %w", err)
	}
	return bin, dir, nil
}
