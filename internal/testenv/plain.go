package testenv

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/sys/mountinfo"
)

// FindPlain walks the trees under roots and returns "file: value" for every
// needle a regular file contains. Secret volumes (their own tmpfs, where
// the container reads the files) and container root filesystems (overlay
// mounts of the image) are not walked; it fails the test if a secret volume
// is not a tmpfs.
func FindPlain(t *testing.T, needles []string, roots ...string) []string {
	t.Helper()
	skip := map[string]bool{}
	for _, root := range roots {
		mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(root))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mounts {
			if m.Mountpoint == root {
				continue
			}
			switch {
			case m.Source == "skiff-secret":
				if m.FSType != "tmpfs" {
					t.Errorf("secret volume %s is on %s, not a tmpfs", m.Mountpoint, m.FSType)
				}
				skip[m.Mountpoint] = true
			case m.FSType == "overlay", m.FSType == "nsfs": // root filesystems, network namespaces
				skip[m.Mountpoint] = true
			}
		}
	}
	var found []string
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil // removed meanwhile
				}
				return err
			}
			if skip[path] {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			for _, n := range needles {
				if bytes.Contains(data, []byte(n)) {
					found = append(found, path+": "+n)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return found
}
