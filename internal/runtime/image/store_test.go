package image_test

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/image"
	"github.com/skiff-sh/skiff/internal/runtime/rootfs"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// TestWhiteoutsThroughOverlay pulls a three-layer image with a deleted file
// and an opaque directory and checks what a container would see through a
// real overlay mount of the stored layers.
func TestWhiteoutsThroughOverlay(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	src := testenv.BusyboxImage(t, testenv.ImageOptions{Layers: []testenv.LayerSpec{
		{Files: map[string]string{
			"/data/a":        "a",
			"/data/b":        "b",
			"/data/sub/old":  "old",
			"/data/sub/keep": "lower",
			"/etc/motd":      "lower motd",
		}},
		{
			Deletions:  []string{"/data/a", "/etc/motd", "/bin/wget"},
			OpaqueDirs: []string{"/data/sub"},
			Files:      map[string]string{"/data/sub/keep": "upper", "/data/new": "new"},
		},
	}})
	ref := testenv.Push(t, reg, "layers:v1", src)
	s := newStore(t, image.Options{})
	img, err := s.Pull(context.Background(), ref, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Layers) != 3 {
		t.Fatalf("layers %v", img.Layers)
	}

	// The top layer is in overlayfs format.
	top := img.Layers[2]
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(top, "data/a"), &st); err != nil {
		t.Fatalf("whiteout for data/a: %v", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 || st.Uid != 0 || st.Gid != 0 {
		t.Errorf("data/a whiteout: mode %o rdev %d owner %d:%d, want a 0:0 char device owned by root", st.Mode, st.Rdev, st.Uid, st.Gid)
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(top, "data/sub"), "trusted.overlay.opaque", buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Errorf("data/sub opaque xattr = %q, %v", buf[:n], err)
	}
	for _, p := range []string{"data/.wh.a", "data/sub/.wh..wh..opq"} {
		mustNotExist(t, filepath.Join(top, p))
	}

	dir := filepath.Join(t.TempDir(), "ctr")
	merged, err := rootfs.Mount(img.Layers, dir)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	t.Cleanup(func() { _ = rootfs.Unmount(dir) })

	mustNotExist(t, filepath.Join(merged, "data/a"))
	mustNotExist(t, filepath.Join(merged, "etc/motd"))
	mustNotExist(t, filepath.Join(merged, "bin/wget"))
	mustNotExist(t, filepath.Join(merged, "data/sub/old"))
	for p, want := range map[string]string{"data/b": "b", "data/new": "new", "data/sub/keep": "upper", "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"} {
		if got := readFile(t, filepath.Join(merged, p)); !strings.HasPrefix(got, want) {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	entries, err := os.ReadDir(filepath.Join(merged, "data/sub"))
	if err != nil || len(entries) != 1 || entries[0].Name() != "keep" {
		t.Errorf("data/sub lists %v (%v), want only keep", entries, err)
	}
	// busybox runs from the merged tree.
	out, err := exec.Command("chroot", merged, "/bin/sh", "-c", "ls /data; cat /data/sub/keep").CombinedOutput()
	if err != nil || string(out) != "b\nnew\nsub\nupper" {
		t.Errorf("chroot ls: %q %v", out, err)
	}
	if err := rootfs.Unmount(dir); err != nil {
		t.Fatal(err)
	}
	// The layers are untouched by the container.
	if got := readFile(t, filepath.Join(img.Layers[1], "data/a")); got != "a" {
		t.Errorf("lower layer data/a = %q", got)
	}
}

// TestUnpackMetadata checks that ownership, permissions, mtimes, hard
// links, symlinks, fifos and xattrs survive a pull.
func TestUnpackMetadata(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	dirTime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	entries := []testenv.TarEntry{
		{Header: tar.Header{Typeflag: tar.TypeDir, Name: "opt/", Mode: 0o755}},
		{Header: tar.Header{Typeflag: tar.TypeDir, Name: "opt/app/", Mode: 0o750, Uid: 1000, Gid: 1000, ModTime: dirTime}},
		{Header: tar.Header{Typeflag: tar.TypeReg, Name: "opt/app/config", Mode: 0o640, Uid: 1000, Gid: 65534, ModTime: mtime}, Content: []byte("cfg")},
		{Header: tar.Header{Typeflag: tar.TypeReg, Name: "opt/app/suid", Mode: 0o4755, ModTime: mtime}, Content: []byte("#!/bin/sh\n")},
		{Header: tar.Header{Typeflag: tar.TypeLink, Name: "opt/app/config.hard", Linkname: "opt/app/config"}},
		{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: "opt/app/link", Linkname: "config", Uid: 1000, Gid: 1000, ModTime: mtime}},
		{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: "opt/app/abs", Linkname: "/etc/passwd"}},
		{Header: tar.Header{Typeflag: tar.TypeFifo, Name: "opt/app/fifo", Mode: 0o600}},
		{Header: tar.Header{Typeflag: tar.TypeDir, Name: "opt/sticky/", Mode: 0o1777}},
		{Header: tar.Header{Typeflag: tar.TypeReg, Name: "opt/app/xattr", Mode: 0o644,
			PAXRecords: map[string]string{"SCHILY.xattr.user.skiff": "yes", "SCHILY.xattr.trusted.overlay.redirect": "/evil"}}, Content: []byte("x")},
		// An implicit parent directory.
		{Header: tar.Header{Typeflag: tar.TypeReg, Name: "implicit/dir/file", Mode: 0o600}, Content: []byte("deep")},
	}
	base := testenv.BusyboxImage(t, testenv.ImageOptions{})
	src, err := mutate.AppendLayers(base, testenv.TarLayer(t, entries, types.DockerLayer))
	if err != nil {
		t.Fatal(err)
	}
	ref := testenv.Push(t, reg, "meta:v1", src)
	s := newStore(t, image.Options{})
	img, err := s.Pull(context.Background(), ref, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := img.Layers[1]
	stat := func(p string) *unix.Stat_t {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(l, p), &st); err != nil {
			t.Fatalf("lstat %s: %v", p, err)
		}
		return &st
	}
	check := func(p string, mode uint32, uid, gid uint32) *unix.Stat_t {
		t.Helper()
		st := stat(p)
		if st.Mode != mode || st.Uid != uid || st.Gid != gid {
			t.Errorf("%s: mode %o owner %d:%d, want %o %d:%d", p, st.Mode, st.Uid, st.Gid, mode, uid, gid)
		}
		return st
	}
	cfg := check("opt/app/config", unix.S_IFREG|0o640, 1000, 65534)
	if cfg.Mtim.Sec != mtime.Unix() {
		t.Errorf("config mtime %d, want %d", cfg.Mtim.Sec, mtime.Unix())
	}
	check("opt/app/suid", unix.S_IFREG|0o4755, 0, 0)
	if d := check("opt/app", unix.S_IFDIR|0o750, 1000, 1000); d.Mtim.Sec != dirTime.Unix() {
		t.Errorf("dir mtime %d, want %d (set after its entries)", d.Mtim.Sec, dirTime.Unix())
	}
	check("opt/sticky", unix.S_IFDIR|0o1777, 0, 0)
	hard := stat("opt/app/config.hard")
	if hard.Ino != cfg.Ino || hard.Nlink != 2 {
		t.Errorf("hard link: inode %d vs %d, nlink %d", hard.Ino, cfg.Ino, hard.Nlink)
	}
	ln := stat("opt/app/link")
	if ln.Mode&unix.S_IFMT != unix.S_IFLNK || ln.Uid != 1000 || ln.Mtim.Sec != mtime.Unix() {
		t.Errorf("symlink: mode %o uid %d mtime %d", ln.Mode, ln.Uid, ln.Mtim.Sec)
	}
	for p, want := range map[string]string{"opt/app/link": "config", "opt/app/abs": "/etc/passwd"} {
		if got, err := os.Readlink(filepath.Join(l, p)); err != nil || got != want {
			t.Errorf("readlink %s = %q, %v", p, got, err)
		}
	}
	if st := stat("opt/app/fifo"); st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("fifo mode %o", st.Mode)
	}
	buf := make([]byte, 64)
	if n, err := unix.Lgetxattr(filepath.Join(l, "opt/app/xattr"), "user.skiff", buf); err != nil || string(buf[:n]) != "yes" {
		t.Errorf("user.skiff xattr = %q, %v", buf[:n], err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(l, "opt/app/xattr"), "trusted.overlay.redirect", buf); err == nil {
		t.Error("a layer set a trusted.overlay xattr")
	}
	if got := readFile(t, filepath.Join(l, "implicit/dir/file")); got != "deep" {
		t.Errorf("implicit/dir/file = %q", got)
	}
}

// TestUnpackRefusesTraversal: entries that climb out of the layer, directly
// or through a symlink, fail the pull and write nothing outside.
func TestUnpackRefusesTraversal(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	outside := t.TempDir()
	cases := map[string][]testenv.TarEntry{
		"dotdot": {
			{Header: tar.Header{Typeflag: tar.TypeReg, Name: "../../../../../../../../" + outside + "/dotdot", Mode: 0o644}, Content: []byte("x")},
		},
		"symlink": {
			{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: "escape", Linkname: outside}},
			{Header: tar.Header{Typeflag: tar.TypeReg, Name: "escape/viasymlink", Mode: 0o644}, Content: []byte("x")},
		},
		"hardlink": {
			{Header: tar.Header{Typeflag: tar.TypeLink, Name: "hl", Linkname: "../../../../../../../../etc/passwd"}},
		},
	}
	base := testenv.BusyboxImage(t, testenv.ImageOptions{})
	s := newStore(t, image.Options{})
	for name, entries := range cases {
		src, err := mutate.AppendLayers(base, testenv.TarLayer(t, entries, types.DockerLayer))
		if err != nil {
			t.Fatal(err)
		}
		ref := testenv.Push(t, reg, "evil:"+name, src)
		if _, err := s.Pull(context.Background(), ref, nil, nil); err == nil {
			t.Errorf("%s: pull succeeded", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
		if _, err := s.Get(ref); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("%s: image recorded after a failed pull: %v", name, err)
		}
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 0 {
		t.Errorf("files written outside the layer: %v", entries)
	}
}

func TestImportDockerArchive(t *testing.T) {
	testenv.RequireRoot(t)
	a := testenv.BusyboxImage(t, testenv.ImageOptions{Cmd: []string{"echo", "a"}})
	b := testenv.BusyboxImage(t, testenv.ImageOptions{Cmd: []string{"echo", "b"},
		Layers: []testenv.LayerSpec{{Files: map[string]string{"/b.txt": "bee"}}}})
	tagA, _ := name.NewTag("example.com/team/a:v1")
	tagA2, _ := name.NewTag("a:latest")
	tagB, _ := name.NewTag("example.com/team/b:v2")
	archive := filepath.Join(t.TempDir(), "images.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.MultiWrite(map[name.Tag]v1.Image{tagA: a, tagA2: a, tagB: b}, f); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s := newStore(t, image.Options{})
	imgs, err := s.Import(context.Background(), archive)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	var refs []string
	for _, img := range imgs {
		refs = append(refs, img.Ref)
	}
	sort.Strings(refs)
	want := []string{"example.com/team/a:v1", "example.com/team/b:v2", "index.docker.io/library/a:latest"}
	if !reflect.DeepEqual(refs, want) {
		t.Errorf("imported %v, want %v", refs, want)
	}
	got, err := s.Get("a")
	if err != nil || got.ID != mustID(t, a) || !reflect.DeepEqual(got.Config.Cmd, []string{"echo", "a"}) {
		t.Errorf("Get(a) = %+v, %v", got, err)
	}
	gb, err := s.Get("example.com/team/b:v2")
	if err != nil {
		t.Fatal(err)
	}
	if readFile(t, filepath.Join(gb.Layers[1], "b.txt")) != "bee" || gb.Layers[0] != got.Layers[0] {
		t.Errorf("b layers %v", gb.Layers)
	}
	if _, err := s.Import(context.Background(), filepath.Join(t.TempDir(), "missing.tar")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Import of a missing file: %v", err)
	}
	junk := filepath.Join(t.TempDir(), "junk.tar")
	os.WriteFile(junk, []byte("not a tar at all, just some words and more words to fill a block"), 0o600)
	if _, err := s.Import(context.Background(), junk); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Import of junk: %v", err)
	}
}

func TestImportOCILayout(t *testing.T) {
	testenv.RequireRoot(t)
	img := testenv.BusyboxImage(t, testenv.ImageOptions{OCI: true, Cmd: []string{"echo", "oci"}})
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name":          "example.com/skiff/oci:v1",
		"org.opencontainers.image.ref.name": "v1",
	})); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "oci.tar")
	if out, err := exec.Command("tar", "-C", dir, "-cf", archive, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	s := newStore(t, image.Options{})
	imgs, err := s.Import(context.Background(), archive)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if len(imgs) != 1 || imgs[0].Ref != "example.com/skiff/oci:v1" || imgs[0].Digest != mustDigest(t, img) {
		t.Fatalf("imported %+v", imgs)
	}
	got, err := s.Get("example.com/skiff/oci:v1")
	if err != nil || !reflect.DeepEqual(got.Config.Cmd, []string{"echo", "oci"}) {
		t.Fatalf("Get: %+v %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(got.Layers[0], "bin/busybox")); err != nil {
		t.Error(err)
	}
}

func TestGC(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	refA := testenv.Push(t, reg, "a:v1", testenv.BusyboxImage(t, testenv.ImageOptions{Layers: []testenv.LayerSpec{{Files: map[string]string{"a": strings.Repeat("a", 1000)}}}}))
	refB := testenv.Push(t, reg, "b:v1", testenv.BusyboxImage(t, testenv.ImageOptions{Layers: []testenv.LayerSpec{{Files: map[string]string{"b": "b"}}}}))
	ctx := context.Background()
	s := newStore(t, image.Options{})
	a, err := s.Pull(ctx, refA, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Pull(ctx, refB, nil, nil)
	if err != nil {
		t.Fatal(err)
	}

	// Everything referenced: nothing goes.
	res, err := s.GC(ctx, nil)
	if err != nil || res.RemovedLayers != 0 {
		t.Fatalf("GC with all images recorded: %+v %v", res, err)
	}

	if err := s.Remove(refA); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(refA); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("second Remove: %v", err)
	}
	res, err = s.GC(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.RemovedLayers != 1 || res.FreedBytes < 1000 {
		t.Errorf("GC after removing a: %+v, want a's own layer (1000+ bytes) removed", res)
	}
	mustNotExist(t, a.Layers[1])
	for _, l := range b.Layers {
		if _, err := os.Stat(l); err != nil {
			t.Errorf("b's layer %s: %v", l, err)
		}
	}
	if _, err := s.Get(refB); err != nil {
		t.Error(err)
	}

	// An image in use keeps its layers after its record is gone.
	if err := s.Remove(b.Digest); err != nil {
		t.Fatal(err)
	}
	res, err = s.GC(ctx, []string{b.Digest})
	if err != nil || res.RemovedLayers != 0 {
		t.Fatalf("GC with b in use: %+v %v", res, err)
	}
	for _, l := range b.Layers {
		if _, err := os.Stat(l); err != nil {
			t.Errorf("in-use layer %s: %v", l, err)
		}
	}
	res, err = s.GC(ctx, nil)
	if err != nil || res.RemovedLayers != 2 {
		t.Fatalf("final GC: %+v %v, want 2 layers removed", res, err)
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Errorf("List after removing all: %v", list)
	}

	// Pulling again after GC works (and refetches).
	if _, err := s.Pull(ctx, refB, nil, nil); err != nil {
		t.Fatal(err)
	}
}

// TestNewStoreCleansTmp: work left by a crash is removed on open, and
// half-unpacked layers never count as stored.
func TestNewStoreCleansTmp(t *testing.T) {
	testenv.RequireRoot(t)
	root := t.TempDir()
	if _, err := image.NewStore(root, image.Options{}); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(root, "tmp", "layer-123", "fs", "half")
	if err := os.MkdirAll(junk, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := image.NewStore(root, image.Options{}); err != nil {
		t.Fatal(err)
	}
	mustNotExist(t, filepath.Join(root, "tmp", "layer-123"))
}
