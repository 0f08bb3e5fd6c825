package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// UDPEchoBinary builds the static udpecho program and returns its contents,
// ready to be placed in an image layer.
func UDPEchoBinary(t testing.TB) string { return helperBinary(t, "udpecho") }

// BreakoutBinary builds the static breakout program (escape attempts for
// the runtime's breakout table) and returns its contents.
func BreakoutBinary(t testing.TB) string { return helperBinary(t, "breakout") }

// helperBinary builds the static program in the testenv directory dir.
func helperBinary(t testing.TB, dir string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	out := filepath.Join(t.TempDir(), dir)
	cmd := exec.Command("go", "build", "-o", out, "./"+dir)
	cmd.Dir = filepath.Dir(file)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", dir, err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
