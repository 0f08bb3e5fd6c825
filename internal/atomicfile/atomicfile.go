// Package atomicfile writes files so that a crash leaves either the old
// content or the new, never a torn or empty file, and so that the new
// content is on disk when WriteFile returns.
//
// The temporary file, its fsync and the rename are google/renameio's. This
// package adds the two things renameio leaves to its caller: the temporary
// file always lives beside the target (renameio would otherwise try
// os.TempDir(), which can put a record holding secrets in /tmp for a
// moment), and the directory is fsynced after the rename so that the
// rename itself survives a power cut.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
)

// WriteFile replaces path with data: temporary file in path's directory,
// fsync, rename over path, fsync of the directory. The file gets exactly
// perm (not masked by the umask, and not inherited from an old file).
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := renameio.NewPendingFile(path, renameio.WithTempDir(dir), renameio.WithStaticPermissions(perm))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer f.Cleanup()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.CloseAtomicallyReplace(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// SyncDir fsyncs a directory, making the creation, rename or removal of
// its entries durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil {
		return fmt.Errorf("sync directory %s: %w", dir, serr)
	}
	return cerr
}
