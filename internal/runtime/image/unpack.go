package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/userns"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
	// overlayOpaqueXattr marks a directory whose lower-layer contents
	// overlayfs must hide.
	overlayOpaqueXattr = "trusted.overlay.opaque"
)

// unpack extracts the layer tar read from r into dir, in overlayfs format:
// a whiteout ".wh.NAME" becomes a 0:0 character device NAME and an opaque
// marker ".wh..wh..opq" becomes the xattr trusted.overlay.opaque=y on its
// directory. It restores ownership, permissions, mtimes, hard links,
// symlinks, device nodes and user./security. xattrs, and refuses entries
// that would land outside dir (".." components, or paths through symlinks
// pointing out). Owners are those of the tar shifted by ids (container IDs
// to host IDs; the zero Mapping keeps them as they are), so a layer is
// prepared for the host's user namespace mapping while it is unpacked.
// It returns the bytes of regular files written. A layer beyond
// maxLayerBytes or maxLayerEntries is refused (errdefs.ErrTooLarge) before
// the entry that crosses them is written; the caller removes what was
// unpacked.
func unpack(ctx context.Context, r io.Reader, dir string, ids userns.Mapping) (int64, error) {
	return unpackWithin(ctx, r, dir, ids, layerLimits{bytes: maxLayerBytes, entries: maxLayerEntries})
}

// layerLimits bound what one layer may put on disk, so that a hostile layer
// (a compression bomb, millions of empty files) cannot fill the disk or its
// inode table.
type layerLimits struct {
	bytes   int64 // content of regular files
	entries int   // tar entries
}

// The limits of unpack, far beyond real layers: the largest base layers
// (CUDA, TeX) hold a few GiB in a few hundred thousand files.
const (
	maxLayerBytes   = 32 << 30
	maxLayerEntries = 4 << 20
)

func unpackWithin(ctx context.Context, r io.Reader, dir string, ids userns.Mapping, lim layerLimits) (int64, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	u := &unpacker{root: root, buf: make([]byte, 256<<10), ids: ids, lim: lim}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("read layer tar: %w", err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return 0, fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
	// Directory times last: creating their entries changed them.
	for _, d := range u.dirTimes {
		if err := u.setTimes(d.parent, d.base, d.hdr); err != nil {
			return 0, fmt.Errorf("%s: %w", d.hdr.Name, err)
		}
	}
	return u.size, nil
}

type dirTime struct {
	parent, base string
	hdr          *tar.Header
}

type unpacker struct {
	ids      userns.Mapping
	root     *os.Root
	buf      []byte
	size     int64
	dirTimes []dirTime
	lim      layerLimits
	entries  int
}

// cleanPath turns a tar entry name into a path relative to the layer root
// ("." for the root itself), refusing any that climbs out of it.
func cleanPath(name string) (string, error) {
	n := strings.TrimLeft(name, "/")
	if n == "" {
		return ".", nil
	}
	c := path.Clean(n)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("path %q escapes the layer: %w", name, errdefs.ErrInvalidArgument)
	}
	return c, nil
}

// openDir opens directory rel of the layer (creating it, and its parents,
// with mode 0755 if missing).
func (u *unpacker) openDir(rel string, create bool) (*os.File, error) {
	if create && rel != "." {
		if err := u.root.MkdirAll(rel, 0o755); err != nil {
			return nil, err
		}
	}
	return u.root.Open(rel)
}

func (u *unpacker) entry(hdr *tar.Header, tr io.Reader) error {
	if u.entries++; u.entries > u.lim.entries {
		return fmt.Errorf("the layer has more than %d entries: %w", u.lim.entries, errdefs.ErrTooLarge)
	}
	if hdr.Size < 0 || hdr.Size > u.lim.bytes-u.size {
		return fmt.Errorf("the layer unpacks to more than %d bytes (entry of %d bytes after %d): %w",
			u.lim.bytes, hdr.Size, u.size, errdefs.ErrTooLarge)
	}
	rel, err := cleanPath(hdr.Name)
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		return nil
	}
	if rel == "." {
		return u.rootEntry(hdr)
	}
	parent, base := path.Split(rel)
	parent = strings.TrimSuffix(parent, "/")
	if parent == "" {
		parent = "."
	}
	pf, err := u.openDir(parent, true)
	if err != nil {
		return err
	}
	defer pf.Close()
	pfd := int(pf.Fd())

	if strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(pfd, parent, base)
	}

	var st unix.Stat_t
	exists := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
	keepDir := exists && hdr.Typeflag == tar.TypeDir && st.Mode&unix.S_IFMT == unix.S_IFDIR
	if exists && !keepDir {
		// A later entry replaces an earlier one.
		if err := u.root.RemoveAll(rel); err != nil {
			return err
		}
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if !keepDir {
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return err
			}
		}
		if err := u.xattrsAt(pfd, base, hdr, unix.O_DIRECTORY); err != nil {
			return err
		}
	case tar.TypeReg, tar.TypeRegA:
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), rel)
		n, err := io.CopyBuffer(f, io.LimitReader(tr, hdr.Size), u.buf)
		if err == nil && n != hdr.Size {
			err = io.ErrUnexpectedEOF
		}
		if err == nil {
			err = setXattrs(fd, hdr)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		u.size += n
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return err
		}
	case tar.TypeLink:
		target, err := cleanPath(hdr.Linkname)
		if err != nil {
			return err
		}
		tparent, tbase := path.Split(target)
		tparent = strings.TrimSuffix(tparent, "/")
		if tparent == "" {
			tparent = "."
		}
		tf, err := u.openDir(tparent, false)
		if err != nil {
			return fmt.Errorf("hard link target %s: %w", hdr.Linkname, err)
		}
		defer tf.Close()
		if err := unix.Linkat(int(tf.Fd()), tbase, pfd, base, 0); err != nil {
			return fmt.Errorf("hard link to %s: %w", hdr.Linkname, err)
		}
		return nil // a hard link shares its target's metadata
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode = unix.S_IFCHR
		case tar.TypeBlock:
			mode = unix.S_IFBLK
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(pfd, base, mode|0o600, int(dev)); err != nil {
			return err
		}
	default:
		return nil // unknown entry types are skipped, as docker does
	}

	uid, gid := u.owner(hdr)
	if err := unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("lchown: %w", err)
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// After chown, which clears set-id bits.
		if err := unix.Fchmodat(pfd, base, uint32(hdr.Mode)&0o7777, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if hdr.Typeflag == tar.TypeDir {
		u.dirTimes = append(u.dirTimes, dirTime{parent: parent, base: base, hdr: hdr})
		return nil
	}
	return u.setTimesAt(pfd, base, hdr)
}

// owner is the host owner of hdr's file.
func (u *unpacker) owner(hdr *tar.Header) (uid, gid int) {
	if !u.ids.Enabled() {
		return hdr.Uid, hdr.Gid
	}
	return u.ids.HostUID(hdr.Uid), u.ids.HostGID(hdr.Gid)
}

// rootEntry applies a "./" entry's metadata to the layer root.
func (u *unpacker) rootEntry(hdr *tar.Header) error {
	if hdr.Typeflag != tar.TypeDir {
		return fmt.Errorf("layer root is not a directory: %w", errdefs.ErrInvalidArgument)
	}
	f, err := u.root.Open(".")
	if err != nil {
		return err
	}
	defer f.Close()
	fd := int(f.Fd())
	uid, gid := u.owner(hdr)
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode)&0o7777); err != nil {
		return err
	}
	if err := setXattrs(fd, hdr); err != nil {
		return err
	}
	u.dirTimes = append(u.dirTimes, dirTime{parent: ".", base: ".", hdr: hdr})
	return nil
}

// whiteout turns an AUFS-style whiteout entry into overlayfs form.
func (u *unpacker) whiteout(pfd int, parent, base string) error {
	switch {
	case base == whiteoutOpaque:
		if err := unix.Fsetxattr(pfd, overlayOpaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("mark %s opaque: %w", parent, err)
		}
		return nil
	case strings.HasPrefix(base, whiteoutMeta):
		return nil // AUFS bookkeeping (.wh..wh.plnk and the like)
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return fmt.Errorf("bad whiteout %q: %w", base, errdefs.ErrInvalidArgument)
	}
	if err := u.root.RemoveAll(path.Join(parent, name)); err != nil {
		return err
	}
	if err := unix.Mknodat(pfd, name, unix.S_IFCHR, int(unix.Mkdev(0, 0))); err != nil {
		return fmt.Errorf("whiteout %s: %w", name, err)
	}
	return unix.Fchownat(pfd, name, 0, 0, unix.AT_SYMLINK_NOFOLLOW)
}

// setTimes sets the times of parent/base (a directory, or the root).
func (u *unpacker) setTimes(parent, base string, hdr *tar.Header) error {
	if base == "." {
		f, err := u.root.Open(".")
		if err != nil {
			return err
		}
		defer f.Close()
		return u.setTimesAt(int(f.Fd()), "", hdr)
	}
	pf, err := u.openDir(parent, false)
	if err != nil {
		return err
	}
	defer pf.Close()
	return u.setTimesAt(int(pf.Fd()), base, hdr)
}

// setTimesAt sets atime and mtime of base relative to dirfd without
// following symlinks; base "" means dirfd itself.
func (u *unpacker) setTimesAt(dirfd int, base string, hdr *tar.Header) error {
	if hdr.ModTime.IsZero() {
		return nil
	}
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	ts := []unix.Timespec{timespec(atime), timespec(hdr.ModTime)}
	if base == "" {
		return unix.UtimesNanoAt(dirfd, "", ts, unix.AT_EMPTY_PATH)
	}
	if err := unix.UtimesNanoAt(dirfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// xattrsAt applies hdr's xattrs to base (opened with extra flags).
func (u *unpacker) xattrsAt(pfd int, base string, hdr *tar.Header, flags int) error {
	if !hasXattrs(hdr) {
		return nil
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|flags, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return setXattrs(fd, hdr)
}

const paxXattr = "SCHILY.xattr."

func hasXattrs(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, paxXattr) {
			return true
		}
	}
	return false
}

// setXattrs applies the user.* and security.* xattrs recorded in hdr's PAX
// records to fd. Others (trusted.*, notably trusted.overlay.*, and system.*)
// are ignored: a layer must not steer overlayfs.
func setXattrs(fd int, hdr *tar.Header) error {
	for k, v := range hdr.PAXRecords {
		if !strings.HasPrefix(k, paxXattr) {
			continue
		}
		name := strings.TrimPrefix(k, paxXattr)
		if !strings.HasPrefix(name, "user.") && !strings.HasPrefix(name, "security.") {
			continue
		}
		if err := unix.Fsetxattr(fd, name, []byte(v), 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) {
				continue
			}
			return fmt.Errorf("setxattr %s: %w", name, err)
		}
	}
	return nil
}
