package image_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/internal/runtime/image"
	"github.com/skiff-sh/skiff/internal/runtime/userns"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// Layers are owned through the host's user namespace mapping: unpacked so
// when pulled or imported, and shifted once when a store of unmapped layers
// is opened with a mapping (an upgrade to user namespaces).
func TestLayersOwnedThroughTheIDMap(t *testing.T) {
	testenv.RequireRoot(t)
	img := testenv.BusyboxImage(t, testenv.ImageOptions{})
	archive := filepath.Join(t.TempDir(), "img.tar")
	tag, _ := name.NewTag("example.com/ids:1")
	if err := tarball.WriteToFile(archive, tag, img); err != nil {
		t.Fatal(err)
	}
	ids := userns.Mapping{UID: 300000, GID: 400000, Size: 65536}
	owner := func(s *image.Store, rel string) (uint32, uint32) {
		t.Helper()
		got, err := s.Get("example.com/ids:1")
		if err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(got.Layers[0], rel), &st); err != nil {
			t.Fatal(err)
		}
		return st.Uid, st.Gid
	}
	importInto := func(root string, opts image.Options) *image.Store {
		t.Helper()
		opts.DockerConfigPath = "/nonexistent"
		s, err := image.NewStore(root, opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Import(context.Background(), archive); err != nil {
			t.Fatal(err)
		}
		return s
	}

	// Unpacked straight into the mapping.
	mapped := importInto(t.TempDir(), image.Options{IDMap: ids})
	for _, rel := range []string{".", "bin/busybox", "bin/sh", "etc/passwd"} {
		if uid, gid := owner(mapped, rel); uid != 300000 || gid != 400000 {
			t.Errorf("%s owned %d:%d, want the mapped root 300000:400000", rel, uid, gid)
		}
	}

	// An unmapped store, opened again with the mapping, is shifted once.
	root := t.TempDir()
	plain := importInto(root, image.Options{})
	if uid, gid := owner(plain, "bin/busybox"); uid != 0 || gid != 0 {
		t.Fatalf("unmapped layer owned %d:%d", uid, gid)
	}
	for range 2 {
		s, err := image.NewStore(root, image.Options{IDMap: ids, DockerConfigPath: "/nonexistent"})
		if err != nil {
			t.Fatal(err)
		}
		for _, rel := range []string{".", "bin/busybox", "bin/sh", "tmp"} {
			if uid, gid := owner(s, rel); uid != 300000 || gid != 400000 {
				t.Errorf("after reopen, %s owned %d:%d, want 300000:400000", rel, uid, gid)
			}
		}
	}
	// And back, when the operator turns user namespaces off.
	s, err := image.NewStore(root, image.Options{DockerConfigPath: "/nonexistent"})
	if err != nil {
		t.Fatal(err)
	}
	if uid, gid := owner(s, "bin/busybox"); uid != 0 || gid != 0 {
		t.Errorf("after --userns-remap none, owned %d:%d, want 0:0", uid, gid)
	}
}
