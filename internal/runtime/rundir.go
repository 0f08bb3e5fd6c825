package runtime

// What must never reach a disk, and the sealing of what does.
//
// A container's OCI bundle (config.json holds its environment, secure values
// included) and runc's state live on a tmpfs, in the runtime's run dir:
//
//	/run/skiff/<12 hex digits of sha256(runtime root)>/   (mode 0700)
//	├── oci/<runc id>/state.json        runc --root
//	└── bundles/<runc id>/
//	    ├── config.json                 only while runc starts the container
//	    ├── config.json.sealed          the same, sealed, for exec
//	    ├── init.pid, runtime.log
//
// Debian's /run is a tmpfs; where it is not, the runtime mounts one at
// /run/skiff. After a host reboot the run dir is empty, as are the
// containers: every container is started again from group.json, which
// holds the spec with its secrets sealed (package seal).

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/atomicfile"
)

// runBase holds the run dirs of every runtime on the host.
const runBase = "/run/skiff"

// recordSealed is groupRecord.Sealed of a group.json whose secrets are
// sealed; 0 is a record of an older Skiff, with its secrets in clear.
const recordSealed = 1

// RunDir is the tmpfs directory of the runtime rooted at root. Runtimes
// with different roots (tests) have different run dirs.
func RunDir(root string) string {
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	sum := sha256.Sum256([]byte(filepath.Clean(root)))
	return filepath.Join(runBase, hex.EncodeToString(sum[:6]))
}

// OCIRoot is runc's --root for the runtime rooted at root.
func OCIRoot(root string) string { return filepath.Join(RunDir(root), "oci") }

// BundlesDir holds the OCI bundles of the runtime rooted at root.
func BundlesDir(root string) string { return filepath.Join(RunDir(root), "bundles") }

// prepareRunDir makes sure runBase is a tmpfs (mounting one if it is on a
// disk) and creates the runtime's run dir in it, mode 0700.
func prepareRunDir(root string, log *slog.Logger) error {
	if err := os.MkdirAll(runBase, 0o700); err != nil {
		return fmt.Errorf("run dir: %w", err)
	}
	// Two runtimes starting at once must not both mount (the second mount
	// would hide the first one's bundles).
	lock, err := os.OpenFile(runBase+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("run dir: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("run dir: lock: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(runBase, &st); err != nil {
		return fmt.Errorf("run dir: %w", err)
	}
	if st.Type != unix.TMPFS_MAGIC {
		const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
		if err := unix.Mount("skiff-run", runBase, "tmpfs", flags, "mode=0700,size=256m"); err != nil {
			return fmt.Errorf("run dir: %s is not on a tmpfs, and mounting one failed: %w", runBase, err)
		}
		log.Info("mounted a tmpfs for bundles and OCI state", "path", runBase)
	}
	if err := os.Chmod(runBase, 0o700); err != nil {
		return fmt.Errorf("run dir: %w", err)
	}
	for _, d := range []string{RunDir(root), OCIRoot(root), BundlesDir(root)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("run dir: %w", err)
		}
	}
	return nil
}

// removeRunDir removes the runtime's run dir if nothing is left in it.
func removeRunDir(root string) {
	_ = os.Remove(BundlesDir(root))
	_ = os.Remove(OCIRoot(root))
	_ = os.Remove(RunDir(root))
}

// moveLegacyOCIState moves the runc state an older Skiff kept on disk, in
// root/oci, to the run dir, so that containers it started are still found.
func moveLegacyOCIState(root string, log *slog.Logger) error {
	old := filepath.Join(root, "oci")
	entries, err := os.ReadDir(old)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		src, dst := filepath.Join(old, e.Name()), filepath.Join(OCIRoot(root), e.Name())
		if err := copyRegularFiles(src, dst); err != nil {
			return fmt.Errorf("move OCI state of %s: %w", e.Name(), err)
		}
		log.Info("moved OCI state to the run dir", "container", e.Name())
	}
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	return atomicfile.SyncDir(root)
}

func copyRegularFiles(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(dst, e.Name()), data, info.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

// sealSpec returns a copy of spec with its secrets sealed, for group.json.
func (r *Runtime) sealSpec(spec GroupSpec) (GroupSpec, error) {
	spec.Properties = api.Clone(&api.ContainerGroup{Properties: spec.Properties}).Properties
	err := api.WalkSecrets(&spec.Properties, func(where, v string) (string, error) {
		s, err := r.cfg.Sealer.Seal(v)
		if err != nil {
			return "", fmt.Errorf("group %q: %s: %w", spec.Name, where, err)
		}
		return s, nil
	})
	return spec, err
}

// readGroupRecord reads a group.json and opens its secrets. legacy reports
// a record of an older Skiff, whose secrets were in clear: the caller
// writes it again, sealed.
func (r *Runtime) readGroupRecord(path string, rec *groupRecord) (legacy bool, err error) {
	if err := readJSON(path, rec); err != nil {
		return false, err
	}
	if rec.Sealed == 0 {
		return true, nil
	}
	if rec.Sealed != recordSealed {
		return false, fmt.Errorf("%s: sealed in format %d, which this skiff does not know", path, rec.Sealed)
	}
	err = api.WalkSecrets(&rec.Spec.Properties, func(where, v string) (string, error) {
		plain, err := r.cfg.Sealer.Open(v)
		if err != nil {
			return "", fmt.Errorf("%s: %s: %w", path, where, err)
		}
		return plain, nil
	})
	return false, err
}

// bundleDir is the container's OCI bundle, on the run dir's tmpfs.
func (c *container) bundleDir() string { return filepath.Join(BundlesDir(c.g.r.cfg.Root), c.runcID) }

// sealBundle replaces the bundle's config.json, once runc has read it, by a
// sealed copy (config.json.sealed), so that the environment's secure
// values are not kept in clear even on the tmpfs. Exec reads the copy.
func (c *container) sealBundle() error {
	plain := filepath.Join(c.bundleDir(), "config.json")
	data, err := os.ReadFile(plain)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	sealed, err := c.g.r.cfg.Sealer.Seal(string(data))
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(plain+".sealed", []byte(sealed), 0o600); err != nil {
		return err
	}
	return os.Remove(plain)
}

func (c *container) sealBundleLogged() {
	if err := c.sealBundle(); err != nil {
		c.g.r.log.Error("seal bundle", "container", c.runcID, "err", err)
	}
}

// bundleSpec reads the spec the container's current run was started with.
func (c *container) bundleSpec() (*specs.Spec, error) {
	path := filepath.Join(c.bundleDir(), "config.json")
	var data []byte
	sealed, err := os.ReadFile(path + ".sealed")
	switch {
	case err == nil:
		plain, err := c.g.r.cfg.Sealer.Open(string(sealed))
		if err != nil {
			return nil, err
		}
		data = []byte(plain)
	case errors.Is(err, fs.ErrNotExist): // not sealed yet
		if data, err = os.ReadFile(path); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, err
	}
	return &spec, nil
}

// removeBundle removes the container's bundle from the tmpfs, and the
// bundle dir an older Skiff kept on disk beside the container's rootfs.
func (c *container) removeBundle() error {
	legacy := c.path("bundle")
	return errors.Join(os.RemoveAll(c.bundleDir()), os.RemoveAll(legacy))
}
