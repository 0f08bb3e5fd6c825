package volume_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// fill writes n MiB to path and reports how many whole MiB it could write.
func fill(t *testing.T, path string, n int) (int, error) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	for i := 0; i < n; i++ {
		if _, err := f.Write(buf); err != nil {
			return i, err
		}
	}
	return n, f.Sync()
}

// loopsBackedBy lists the loop devices whose backing file is under dir.
func loopsBackedBy(t *testing.T, dir string) []string {
	t.Helper()
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var out []string
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), dir) {
			out = append(out, f)
		}
	}
	return out
}

// An emptyDir's sizeLimit is a hard limit: on disk (a loop-mounted ext4 of
// its own) and in memory (a tmpfs), what fits within it is written, and a
// write past it fails with ENOSPC. Without a sizeLimit nothing is mounted.
// Release leaves no mount and no loop device.
func TestEmptyDirSizeLimit(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	srcs, err := e.m.Prepare(ctx, "g1", []api.Volume{
		{Name: "disk", EmptyDir: &api.EmptyDirVolume{SizeLimit: "16Mi"}},
		{Name: "mem", EmptyDir: &api.EmptyDirVolume{Medium: "Memory", SizeLimit: "8Mi"}},
		{Name: "plain", EmptyDir: &api.EmptyDirVolume{}},
	})
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	for name, limit := range map[string]int{"disk": 16, "mem": 8} {
		dir := srcs[name].Path
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm() != 0o777 {
			t.Errorf("%s: mode %v (%v), want 0777", name, fi.Mode(), err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%s: a new emptyDir holds %d entries (%s...)", name, len(entries), entries[0].Name())
		}
		if n, err := fill(t, filepath.Join(dir, "within"), limit-2); err != nil {
			t.Errorf("%s: writing %d MiB into %d MiB failed after %d MiB: %v", name, limit-2, limit, n, err)
		}
		n, err := fill(t, filepath.Join(dir, "past"), 8)
		if !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("%s: writing past %d MiB: %d MiB more written, err %v; want ENOSPC", name, limit, n, err)
		}
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		used := int64(st.Blocks-st.Bfree) * st.Bsize
		t.Logf("%s: %d bytes used, limit %d", name, used, int64(limit)<<20)
		if used > int64(limit)<<20+int64(limit)<<20/100 {
			t.Errorf("%s: holds %d bytes, more than its limit of %d MiB (+1%%)", name, used, limit)
		}
	}
	if n, err := fill(t, filepath.Join(srcs["plain"].Path, "f"), 24); err != nil {
		t.Errorf("an emptyDir without sizeLimit took %d MiB: %v", n, err)
	}
	if loops := loopsBackedBy(t, e.root); len(loops) != 1 {
		t.Errorf("loop devices on the group's images: %v, want 1", loops)
	}
	if err := e.m.Release(ctx, "g1"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	assertGone(t, filepath.Join(e.root, "g1"))
	assertNoMounts(t, e.root)
	if loops := loopsBackedBy(t, e.root); len(loops) != 0 {
		t.Errorf("loop devices left after Release: %v", loops)
	}
}

// A bad sizeLimit or medium is refused before anything is made.
func TestEmptyDirBadSpec(t *testing.T) {
	e := setup(t)
	for _, c := range []struct {
		ed   api.EmptyDirVolume
		want string
	}{
		{api.EmptyDirVolume{SizeLimit: "lots"}, "not a quantity"},
		{api.EmptyDirVolume{SizeLimit: "-1Gi"}, "not a positive"},
		{api.EmptyDirVolume{SizeLimit: "0"}, "not a positive"},
		{api.EmptyDirVolume{SizeLimit: "100Ki"}, "below the minimum"},
		{api.EmptyDirVolume{Medium: "HugePages"}, "not a medium"},
	} {
		_, err := e.m.Prepare(context.Background(), "g1", []api.Volume{{Name: "v", EmptyDir: &c.ed}})
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `volume "v"`) {
			t.Errorf("%+v: err = %v, want ErrInvalidArgument with %q", c.ed, err, c.want)
		}
		assertGone(t, filepath.Join(e.root, "g1"))
	}
}
