package atomicfile_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/skiff-sh/skiff/internal/atomicfile"
)

func TestWriteFileReplacesWithExactMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rec.json")
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)

	if err := atomicfile.WriteFile(path, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	// A rewrite keeps the mode asked for, not the umask's or the old file's.
	if err := atomicfile.WriteFile(path, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil || string(data) != "two" {
		t.Fatalf("content = %q, %v", data, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("directory holds %v, want only rec.json (no temporary left)", names)
	}
}

func TestWriteFileTempBesideTarget(t *testing.T) {
	// With TMPDIR on the same filesystem renameio would stage the file
	// there; the record must never pass through another directory.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dir := t.TempDir()
	if err := atomicfile.WriteFile(filepath.Join(dir, "x"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Fatalf("TMPDIR got %d entries", len(entries))
	}
}

func TestWriteFileMissingDir(t *testing.T) {
	err := atomicfile.WriteFile(filepath.Join(t.TempDir(), "no", "such"), []byte("x"), 0o600)
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("err = %v, want a no-such-file error", err)
	}
}
