package mounts_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/internal/runtime/mounts"
	"github.com/skiff-sh/skiff/internal/testenv"
)

func TestFree(t *testing.T) {
	testenv.RequireRoot(t)
	tmp := t.TempDir()
	tree := filepath.Join(tmp, "tree")
	deep := filepath.Join(tree, "a", "b", "c")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "a", "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !mounts.Free(tree) {
		t.Fatal("a tree without mounts is not free")
	}
	if !mounts.Free(filepath.Join(tmp, "missing")) {
		t.Error("a missing directory is not free")
	}
	for _, tc := range []struct {
		name  string
		mount func(target string) error
	}{
		{"tmpfs", func(target string) error { return unix.Mount("t", target, "tmpfs", 0, "") }},
		{"bind of the same file system", func(target string) error {
			src := filepath.Join(tmp, "src")
			if err := os.MkdirAll(src, 0o755); err != nil {
				return err
			}
			return unix.Mount(src, target, "", unix.MS_BIND, "")
		}},
	} {
		for _, at := range []string{tree, deep} {
			if err := tc.mount(at); err != nil {
				t.Fatal(err)
			}
			free := mounts.Free(tree)
			if err := unix.Unmount(at, 0); err != nil {
				t.Fatal(err)
			}
			if free {
				t.Errorf("%s at %s: reported free", tc.name, at)
			}
		}
	}
	if !mounts.Free(tree) {
		t.Error("not free after the mounts are gone")
	}
}
