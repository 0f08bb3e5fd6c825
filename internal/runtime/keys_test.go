package runtime_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// The kernel's default per-user key quota (200) let a host start only 200
// containers under one mapped root (each gets a session keyring): Open
// raises it, and keeps a higher value.
func TestOpenRaisesKeyQuota(t *testing.T) {
	const path = "/proc/sys/kernel/keys/maxkeys"
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(path, orig, 0o644) })
	read := func() int {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
		return n
	}
	if err := os.WriteFile(path, []byte("200\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	if n := read(); n < 1000000 {
		t.Fatalf("kernel.keys.maxkeys after Open = %d, want at least 1000000", n)
	}
	e.host.Close()
	if err := os.WriteFile(path, []byte("5000000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.open()
	if n := read(); n != 5000000 {
		t.Errorf("Open changed a higher kernel.keys.maxkeys to %d", n)
	}
}
