package volume

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/internal/runtime/userns"
)

const (
	pageSize = 4096
	// secretFileMode: readable by any container user, writable by none.
	secretFileMode = 0o444
	// secretDirMode is the mode of the tmpfs root. It is world-readable so
	// that containers running as a non-root user can read their secrets; the
	// host side is closed by Root/<groupID> being 0700.
	secretDirMode = "0755"
	secretFSName  = "skiff-secret"
)

// mountSecret mounts a small tmpfs at dir, writes one file per key and
// remounts it read-only. Values are written only to the tmpfs, never to disk.
// The directory and files belong to container root through ids (host root
// when ids maps nothing).
func mountSecret(dir string, files []secretFile, ids userns.Mapping) error {
	if err := mkdirMode(dir, 0o700); err != nil {
		return err
	}
	size := pageSize * (len(files) + 4)
	for _, f := range files {
		size += (len(f.data) + pageSize - 1) / pageSize * pageSize
	}
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	opts := fmt.Sprintf("size=%d,nr_inodes=%d,mode=%s", size, len(files)+16, secretDirMode)
	if ids.Enabled() {
		opts += fmt.Sprintf(",uid=%d,gid=%d", ids.UID, ids.GID)
	}
	if err := unix.Mount(secretFSName, dir, "tmpfs", flags, opts); err != nil {
		return fmt.Errorf("mount tmpfs at %s: %w", dir, err)
	}
	for _, f := range files {
		if err := writeSecretFile(filepath.Join(dir, f.key), f.data, ids); err != nil {
			// The key names the file; the error never carries the value.
			return fmt.Errorf("secret key %q: %w", f.key, err)
		}
	}
	if err := remountReadOnly(dir, flags); err != nil {
		return fmt.Errorf("remount %s read-only: %w", dir, err)
	}
	return nil
}

// remountReadOnly remounts dir read-only. The kernel refuses (EBUSY) while
// any file on it is open for writing, and a process forked elsewhere in
// this program (runc, CNI plugins, shims) holds a copy of the fd it was
// written through until it execs; so EBUSY is retried for a little while.
func remountReadOnly(dir string, flags uintptr) error {
	deadline := time.Now().Add(5 * time.Second)
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		err := unix.Mount("", dir, "", flags|unix.MS_REMOUNT|unix.MS_RDONLY, "")
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(delay)
	}
}

func writeSecretFile(path string, data []byte, ids userns.Mapping) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, secretFileMode)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	_, werr := f.Write(data)
	var oerr error
	if ids.Enabled() {
		oerr = f.Chown(int(ids.UID), int(ids.GID))
	}
	cerr := f.Chmod(secretFileMode)
	if err := errors.Join(werr, oerr, cerr, f.Close()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
