package rootfs_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/rootfs"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// layer makes a layer directory holding files.
func layer(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mounted(t *testing.T, p string) bool {
	t.Helper()
	m, err := mountinfo.Mounted(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return m
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMountSingleLayer(t *testing.T) {
	testenv.RequireRoot(t)
	tmp := t.TempDir()
	l := layer(t, filepath.Join(tmp, "layer"), map[string]string{"etc/hostname": "img\n"})
	if err := os.Chmod(l, 0o751); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "ctr")
	t.Cleanup(func() { _ = rootfs.Unmount(dir) })

	merged, err := rootfs.Mount([]string{l}, dir)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	if merged != filepath.Join(dir, "merged") || !mounted(t, merged) {
		t.Fatalf("merged %s not mounted", merged)
	}
	if got := read(t, filepath.Join(merged, "etc/hostname")); got != "img\n" {
		t.Errorf("etc/hostname = %q", got)
	}
	if fi, err := os.Stat(merged); err != nil || fi.Mode().Perm() != 0o751 {
		t.Errorf("merged root mode %v (%v), want the layer's 0751", fi.Mode(), err)
	}
	// Writes go to the upper layer, never to the image layer.
	if err := os.WriteFile(filepath.Join(merged, "etc/hostname"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(merged, "new"), []byte("n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(l, "etc/hostname")); got != "img\n" {
		t.Errorf("image layer modified: %q", got)
	}
	if got := read(t, filepath.Join(dir, "upper/new")); got != "n" {
		t.Errorf("upper/new = %q", got)
	}
	if _, err := rootfs.Mount([]string{l}, dir); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("second Mount on the same dir: %v, want ErrConflict", err)
	}

	if err := rootfs.Unmount(dir); err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	if mounted(t, merged) {
		t.Fatal("still mounted")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("dir left behind: %v", err)
	}
	if got := read(t, filepath.Join(l, "etc/hostname")); got != "img\n" {
		t.Errorf("layer changed by Unmount: %q", got)
	}
	if err := rootfs.Unmount(dir); err != nil {
		t.Errorf("second Unmount: %v", err)
	}
}

// TestMountManyLongLayers: more layer paths than fit in a page of mount
// options still mount, in the right order, and the process's working
// directory is untouched.
func TestMountManyLongLayers(t *testing.T) {
	testenv.RequireRoot(t)
	tmp := t.TempDir()
	const n = 60
	var layers []string
	total := 0
	for i := 0; i < n; i++ {
		p := filepath.Join(tmp, "layers", fmt.Sprintf("%03d-%s", i, strings.Repeat("x", 90)))
		layers = append(layers, layer(t, p, map[string]string{
			fmt.Sprintf("f%d", i): fmt.Sprint(i),
			"shared":              fmt.Sprint(i),
		}))
		total += len(p) + 1
	}
	if total < 4096 {
		t.Fatalf("layer paths total %d bytes, the test needs more than a page", total)
	}
	cwd, _ := os.Getwd()
	dir := filepath.Join(tmp, "ctr")
	t.Cleanup(func() { _ = rootfs.Unmount(dir) })
	merged, err := rootfs.Mount(layers, dir)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	for i := 0; i < n; i++ {
		if got := read(t, filepath.Join(merged, fmt.Sprintf("f%d", i))); got != fmt.Sprint(i) {
			t.Errorf("f%d = %q", i, got)
		}
	}
	if got := read(t, filepath.Join(merged, "shared")); got != fmt.Sprint(n-1) {
		t.Errorf("shared = %q, want the top layer's %d", got, n-1)
	}
	if now, _ := os.Getwd(); now != cwd {
		t.Errorf("cwd changed from %s to %s", cwd, now)
	}
	if err := rootfs.Unmount(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("dir left behind: %v", err)
	}
}

// TestUnmountBusy: an open file in the rootfs does not stop Unmount.
func TestUnmountBusy(t *testing.T) {
	testenv.RequireRoot(t)
	tmp := t.TempDir()
	l := layer(t, filepath.Join(tmp, "layer"), map[string]string{"f": "x"})
	dir := filepath.Join(tmp, "ctr")
	t.Cleanup(func() { _ = rootfs.Unmount(dir) })
	merged, err := rootfs.Mount([]string{l}, dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(merged, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := rootfs.Unmount(dir); err != nil {
		t.Fatalf("Unmount of a busy rootfs: %v", err)
	}
	if mounted(t, merged) {
		t.Error("still mounted")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("dir left behind: %v", err)
	}
	if got := read(t, l+"/f"); got != "x" {
		t.Errorf("layer content %q", got)
	}
}

// A mount Skiff did not make, deep in the container's directory (a bind of
// another directory into its upper layer), is found without mountinfo and
// unmounted before anything is removed: the bound directory keeps its files.
func TestUnmountForeignMountBelow(t *testing.T) {
	testenv.RequireRoot(t)
	tmp := t.TempDir()
	l := layer(t, filepath.Join(tmp, "layer"), map[string]string{"f": "x"})
	outside := layer(t, filepath.Join(tmp, "outside"), map[string]string{"keep": "me"})
	dir := filepath.Join(tmp, "ctr")
	t.Cleanup(func() { _ = rootfs.Unmount(dir) })
	if _, err := rootfs.Mount([]string{l}, dir); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(dir, rootfs.UpperDir, "a", "b")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(outside, deep, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	if err := rootfs.Unmount(dir); err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("dir left behind: %v", err)
	}
	if got := read(t, filepath.Join(outside, "keep")); got != "me" {
		t.Errorf("the bound directory lost its file: %q", got)
	}
}

func TestMountErrors(t *testing.T) {
	testenv.RequireRoot(t)
	tmp := t.TempDir()
	if _, err := rootfs.Mount(nil, filepath.Join(tmp, "a")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("no layers: %v", err)
	}
	if _, err := rootfs.Mount([]string{filepath.Join(tmp, "missing")}, filepath.Join(tmp, "b")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing layer: %v", err)
	}
	if _, err := rootfs.Mount([]string{"relative"}, filepath.Join(tmp, "c")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("relative layer: %v", err)
	}
	if err := rootfs.Unmount(filepath.Join(tmp, "never-mounted")); err != nil {
		t.Errorf("Unmount of a missing dir: %v", err)
	}
}
