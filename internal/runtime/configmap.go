package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// Config maps.
//
// A container with a config map gets GROUP-DIR/configmap/<container>, one
// file per key, bind-mounted read-only at /mnt/configmap/<container> (as
// ACI mounts it). The directory is what is mounted, so a file replaced in
// it (written beside, then renamed over) shows inside the running
// container at once: UpdateConfigMaps changes the files without a
// restart. Config maps are configuration, not secrets: the files are
// plain, world-readable (0644), like the spec that holds them.

// configMapDir is where container name's config map files are.
func (g *group) configMapDir(name string) string { return filepath.Join(g.dir, "configmap", name) }

// writeConfigMaps writes the files of the config maps of containers (the
// group's, or those UpdateConfigMaps is giving it), and removes the files
// of keys no longer in them.
func (g *group) writeConfigMaps(containers []api.Container) error {
	for _, c := range containers {
		if c.Properties.ConfigMap == nil {
			continue
		}
		if err := writeConfigMap(g.configMapDir(c.Name), c.Properties.ConfigMap.KeyValuePairs); err != nil {
			return fmt.Errorf("config map of container %q: %w", c.Name, err)
		}
	}
	return nil
}

func writeConfigMap(dir string, kv map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	for k, v := range kv {
		// Keys are file names without '~' (api.checkConfigMap); check
		// again, as a record on disk is input too. The temporary files'
		// names hold a '~', so they never clash with a key.
		if k == "" || k == "." || k == ".." || strings.ContainsAny(k, "/~\x00") {
			return fmt.Errorf("key %q is not a file name: %w", k, errdefs.ErrInvalidArgument)
		}
		if err := replaceFile(dir, k, []byte(v)); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if _, keep := kv[e.Name()]; !keep { // and a crash's temporary files
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// replaceFile writes data to dir/name by a rename over it, so that a reader
// sees the old content or the new, never a part.
func replaceFile(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, ".~")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// UpdateConfigMaps gives group id's containers the config maps of props
// in place: the files change under the running containers, which are not
// restarted. It fails with ErrConflict when props differ in anything else,
// or give a config map to a container that had none (it has no mount for
// one): the group has to be created again for that.
func (r *Runtime) UpdateConfigMaps(id string, props *api.ContainerGroupProperties) error {
	g, err := r.get(id)
	if err != nil {
		return err
	}
	g.op.Lock()
	defer g.op.Unlock()
	g.mu.Lock()
	cur := g.spec.Properties
	g.mu.Unlock()
	if !api.SameContainersButConfigMaps(&cur, props) {
		return fmt.Errorf("group %s: more than its config maps changed: %w", id, errdefs.ErrConflict)
	}
	next := slices.Clone(cur.Containers)
	for i := range next {
		had, want := next[i].Properties.ConfigMap, props.Containers[i].Properties.ConfigMap
		switch {
		case had == nil && want != nil:
			return fmt.Errorf("group %s: container %q had no config map: %w", id, next[i].Name, errdefs.ErrConflict)
		case had == nil:
			continue
		case want == nil:
			want = &api.ConfigMap{} // its mount stays, empty
		}
		next[i].Properties.ConfigMap = want
	}
	if err := g.writeConfigMaps(next); err != nil {
		return err
	}
	g.mu.Lock()
	g.spec.Properties.Containers = next
	err = g.saveSpecLocked()
	g.mu.Unlock()
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("group %s: %w", id, errdefs.ErrNotFound)
	}
	return err
}
