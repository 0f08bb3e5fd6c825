// Package volume prepares the volumes of a container group on the host:
// emptyDir scratch directories, secret volumes on read-only tmpfs mounts,
// gitRepo clones and persistent file shares (azureFile). Prepare returns, for
// each volume, the host path a runtime bind-mounts into the group's
// containers; Release removes everything a group had except its file shares.
//
// Nothing is kept in memory between calls: Release finds a group's mounts in
// /proc/self/mountinfo and its files under Root, so it works after a restart.
package volume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/mounts"
	"github.com/skiff-sh/skiff/internal/runtime/userns"
)

// Sub-directories of a group's directory, one per volume kind.
const (
	emptyDirDir = "emptydir"
	secretDir   = "secret"
	gitRepoDir  = "gitrepo"
)

// DefaultGitTimeout bounds one gitRepo clone (clone plus checkout) when
// Config.GitTimeout is zero.
const DefaultGitTimeout = 5 * time.Minute

// Config configures a Manager.
type Config struct {
	// Root holds per-group volume data: Root/<groupID>/... It is created
	// (mode 0700) if missing.
	Root string
	// SharesRoot holds the persistent file shares:
	// SharesRoot/<storageAccountName>/<shareName>, where the agent names
	// the share's directory after its record (storage.Share.Dir:
	// "<share>.<id>"), so that a share created again is a new one. It is
	// created (mode 0700) if missing. It must not overlap Root.
	SharesRoot string
	// GitTimeout bounds each gitRepo clone; zero means DefaultGitTimeout.
	GitTimeout time.Duration
	// GitMaxBytes bounds the disk each gitRepo clone takes, .git included;
	// zero means DefaultGitMaxBytes.
	GitMaxBytes int64
	// IDMap is the host's user namespace mapping (package userns): emptyDir
	// and gitRepo volumes and new file shares are owned by the container's
	// root through it.
	IDMap userns.Mapping
	// Logger receives debug and info records; nil discards them. Secret
	// values and storage account keys are never logged.
	Logger *slog.Logger
}

// Source is where a prepared volume lives on the host.
type Source struct {
	// Path is the host path to bind-mount into containers.
	Path string
	// ReadOnly is set when the volume type forces a read-only mount: secret
	// volumes, and azureFile volumes with readOnly set.
	ReadOnly bool
}

// Manager prepares and releases group volumes. It is safe for concurrent use;
// calls for the same group are serialised.
type Manager struct {
	root       string
	sharesRoot string
	gitTimeout time.Duration
	gitMax     int64
	ids        userns.Mapping
	log        *slog.Logger

	mu    sync.Mutex
	locks map[string]*groupLock
}

type groupLock struct {
	mu   sync.Mutex
	refs int
}

// New returns a Manager after creating Root and SharesRoot.
func New(cfg Config) (*Manager, error) {
	if cfg.Root == "" || cfg.SharesRoot == "" {
		return nil, fmt.Errorf("volume: Root and SharesRoot are required: %w", errdefs.ErrInvalidArgument)
	}
	root, err := prepareDir(cfg.Root)
	if err != nil {
		return nil, err
	}
	shares, err := prepareDir(cfg.SharesRoot)
	if err != nil {
		return nil, err
	}
	if within(root, shares) || within(shares, root) {
		return nil, fmt.Errorf("volume: Root %q and SharesRoot %q must not overlap: %w", root, shares, errdefs.ErrInvalidArgument)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := cfg.GitTimeout
	if timeout <= 0 {
		timeout = DefaultGitTimeout
	}
	gitMax := cfg.GitMaxBytes
	if gitMax <= 0 {
		gitMax = DefaultGitMaxBytes
	}
	return &Manager{
		root:       root,
		sharesRoot: shares,
		gitTimeout: timeout,
		gitMax:     gitMax,
		ids:        cfg.IDMap,
		log:        log,
		locks:      map[string]*groupLock{},
	}, nil
}

// prepareDir creates dir (0700) if missing and returns its absolute path with
// symlinks resolved, as mountinfo reports mount points that way.
func prepareDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("volume: %q: %w", dir, errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", fmt.Errorf("volume: create %s: %w", abs, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("volume: resolve %s: %w", abs, err)
	}
	return real, nil
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+string(filepath.Separator))
}

func (m *Manager) lock(groupID string) func() {
	m.mu.Lock()
	l := m.locks[groupID]
	if l == nil {
		l = &groupLock{}
		m.locks[groupID] = l
	}
	l.refs++
	m.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		m.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(m.locks, groupID)
		}
		m.mu.Unlock()
	}
}

// Prepare creates the volumes of group groupID and returns their host
// sources keyed by volume name. Every volume must name exactly one source
// (emptyDir, secret, gitRepo or azureFile) and volume names must be unique;
// otherwise, as for any malformed field, the error wraps
// errdefs.ErrInvalidArgument and nothing is created. A group that is already
// prepared gives errdefs.ErrAlreadyExists: Release it first. If creating a
// volume fails, everything made for the group is removed again before the
// error is returned (file share directories, which are persistent, stay).
func (m *Manager) Prepare(ctx context.Context, groupID string, vols []api.Volume) (map[string]Source, error) {
	if err := checkName("group ID", groupID); err != nil {
		return nil, err
	}
	plans, err := plan(vols)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, p := range plans {
			p.wipe()
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("volume: prepare group %s: %w", groupID, err)
	}

	unlock := m.lock(groupID)
	defer unlock()

	groupDir := filepath.Join(m.root, groupID)
	if err := os.Mkdir(groupDir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("volume: group %s is already prepared: %w", groupID, errdefs.ErrAlreadyExists)
		}
		return nil, fmt.Errorf("volume: create %s: %w", groupDir, err)
	}

	out := make(map[string]Source, len(plans))
	for _, p := range plans {
		src, err := m.prepareOne(ctx, groupDir, p)
		if err == nil {
			err = m.own(p.kind, src.Path)
		}
		if err != nil {
			if rerr := m.release(groupDir); rerr != nil {
				m.log.Warn("volume: rollback failed", "group", groupID, "err", rerr)
				err = errors.Join(err, fmt.Errorf("volume: rollback: %w", rerr))
			}
			return nil, err
		}
		out[p.name] = src
		m.log.Debug("volume prepared", "group", groupID, "volume", p.name, "kind", p.kind, "path", src.Path, "readOnly", src.ReadOnly)
	}
	m.log.Info("volumes prepared", "group", groupID, "count", len(out))
	return out, nil
}

func (m *Manager) prepareOne(ctx context.Context, groupDir string, p *volumePlan) (Source, error) {
	switch p.kind {
	case kindEmptyDir:
		dir := filepath.Join(groupDir, emptyDirDir, p.name)
		if err := mkdirMode(dir, 0o777); err != nil {
			return Source{}, fmt.Errorf("volume %q: %w", p.name, err)
		}
		// A sizeLimit (or medium Memory) makes it a filesystem of its own
		// (emptydir.go).
		if err := mountEmptyDir(ctx, groupDir, dir, p.name, p.empty); err != nil {
			return Source{}, fmt.Errorf("volume %q: emptyDir: %w", p.name, err)
		}
		return Source{Path: dir}, nil
	case kindSecret:
		dir := filepath.Join(groupDir, secretDir, p.name)
		if err := mountSecret(dir, p.secret, m.ids); err != nil {
			return Source{}, fmt.Errorf("volume %q: %w", p.name, err)
		}
		return Source{Path: dir, ReadOnly: true}, nil
	case kindGitRepo:
		dir := filepath.Join(groupDir, gitRepoDir, p.name)
		if err := mkdirMode(dir, 0o755); err != nil {
			return Source{}, fmt.Errorf("volume %q: %w", p.name, err)
		}
		if err := m.cloneRepo(ctx, dir, p.name, p.git); err != nil {
			return Source{}, err
		}
		return Source{Path: dir}, nil
	case kindAzureFile:
		dir := filepath.Join(m.sharesRoot, p.share.StorageAccountName, p.share.ShareName)
		if err := m.ensureShare(dir); err != nil {
			return Source{}, fmt.Errorf("volume %q: %w", p.name, err)
		}
		return Source{Path: dir, ReadOnly: p.share.ReadOnly}, nil
	}
	return Source{}, fmt.Errorf("volume %q: unknown kind: %w", p.name, errdefs.ErrInvalidArgument)
}

// own gives a prepared volume to the container's root when the host maps
// IDs: the directory of an emptyDir, a gitRepo's whole clone (made by host
// root). Secret volumes are made container root's as they are written
// (mountSecret), and file shares only when created (ensureShare).
func (m *Manager) own(k kind, path string) error {
	var err error
	switch k {
	case kindEmptyDir:
		err = m.ids.Chown(path)
	case kindGitRepo:
		if m.ids.Enabled() {
			err = m.ids.Shift(path, userns.Mapping{})
		}
	}
	if err != nil {
		return fmt.Errorf("volume: give %s to the container's root: %w", path, err)
	}
	return nil
}

// mkdirMode creates dir and its missing parents; dir itself gets exactly
// mode (no umask).
func mkdirMode(dir string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(dir), err)
	}
	if err := os.Mkdir(dir, mode); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	return nil
}

// ensureShare creates a share directory if missing. A new share is
// world-writable (0777) like a mounted Azure file share, so that containers
// running as any user can write to it; SharesRoot itself is 0700.
func (m *Manager) ensureShare(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("share %s is not a directory: %w", dir, errdefs.ErrConflict)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(dir), err)
	}
	if err := os.Mkdir(dir, 0o777); err != nil {
		if errors.Is(err, os.ErrExist) { // created concurrently for another group
			return nil
		}
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	if err := m.ids.Chown(dir); err != nil {
		return fmt.Errorf("chown %s: %w", dir, err)
	}
	m.log.Info("file share created", "path", dir)
	return nil
}

// ShareDir is a share directory below SharesRoot.
type ShareDir struct {
	Account, Dir string
}

// ShareDirs lists the share directories below SharesRoot
// (SharesRoot/<account>/<dir>), by account and name.
func (m *Manager) ShareDirs() ([]ShareDir, error) {
	accounts, err := os.ReadDir(m.sharesRoot)
	if err != nil {
		return nil, fmt.Errorf("volume: list shares: %w", err)
	}
	var out []ShareDir
	for _, a := range accounts {
		if !a.IsDir() {
			continue
		}
		dirs, err := os.ReadDir(filepath.Join(m.sharesRoot, a.Name()))
		if err != nil {
			return nil, fmt.Errorf("volume: list shares: %w", err)
		}
		for _, d := range dirs {
			if d.IsDir() {
				out = append(out, ShareDir{Account: a.Name(), Dir: d.Name()})
			}
		}
	}
	return out, nil
}

// RemoveShare deletes the share directory SharesRoot/<account>/<dir> and
// everything in it (the account's directory stays: a share of it may be
// being created). A share
// that is not there is no error. Groups that still mount it keep an empty,
// deleted directory, as an Azure file share deleted under a mount.
func (m *Manager) RemoveShare(account, dir string) error {
	if err := checkName("storage account name", account); err != nil {
		return err
	}
	if err := checkName("share directory", dir); err != nil {
		return err
	}
	acctDir := filepath.Join(m.sharesRoot, account)
	path := filepath.Join(acctDir, dir)
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("volume: remove share %s: %w", path, err)
	}
	if fi.IsDir() {
		err = os.RemoveAll(path)
	} else {
		err = os.Remove(path) // never follow a link out of the shares
	}
	if err != nil {
		return fmt.Errorf("volume: remove share %s: %w", path, err)
	}
	m.log.Info("file share removed", "path", path)
	return nil
}

// Release removes the volumes of group groupID: it unmounts every mount
// below Root/<groupID> (falling back to a lazy detach when a mount is busy)
// and deletes Root/<groupID>. File shares are left untouched. Release of a
// group that has no volumes (or was released already) returns nil. Mounts are
// found in /proc/self/mountinfo, so Release works after a process restart.
func (m *Manager) Release(ctx context.Context, groupID string) error {
	if err := checkName("group ID", groupID); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("volume: release group %s: %w", groupID, err)
	}
	unlock := m.lock(groupID)
	defer unlock()
	if err := m.release(filepath.Join(m.root, groupID)); err != nil {
		return fmt.Errorf("volume: release group %s: %w", groupID, err)
	}
	m.log.Info("volumes released", "group", groupID)
	return nil
}

func (m *Manager) release(groupDir string) error {
	if done, err := releaseKnown(groupDir); err != nil || done {
		return err
	}
	if err := unmountAll(groupDir); err != nil {
		return err
	}
	// Never delete through a mount that is still there.
	left, err := mountsUnder(groupDir, true)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("%d mounts remain under %s (first %s): %w", len(left), groupDir, left[0].Mountpoint, errdefs.ErrConflict)
	}
	if err := os.RemoveAll(groupDir); err != nil {
		return fmt.Errorf("remove %s: %w", groupDir, err)
	}
	return nil
}

// releaseKnown unmounts the places Prepare mounts volumes at
// (groupDir/<kind>/<name>) and, when nothing is mounted at or below
// groupDir after that (mounts.Free), removes groupDir and reports done. It
// reads no mountinfo; when anything is still mounted, release falls back to
// the mountinfo walk.
func releaseKnown(groupDir string) (done bool, err error) {
	vols, _ := filepath.Glob(filepath.Join(groupDir, "*", "*"))
	for _, dir := range vols {
		if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
			if err := mounts.Unmount(dir); err != nil {
				return false, err
			}
		}
	}
	if !mounts.Free(groupDir) {
		return false, nil
	}
	if err := os.RemoveAll(groupDir); err != nil {
		return false, fmt.Errorf("remove %s: %w", groupDir, err)
	}
	return true, nil
}

// unmountAll unmounts every mount at or below dir, deepest first.
func unmountAll(dir string) error {
	found, err := mountsUnder(dir, true)
	if err != nil {
		return err
	}
	sort.Slice(found, func(i, j int) bool {
		return len(found[i].Mountpoint) > len(found[j].Mountpoint)
	})
	var errs []error
	for _, mnt := range found {
		if err := mounts.Unmount(mnt.Mountpoint); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// mountsUnder lists the mounts below dir (and dir itself if self is set).
func mountsUnder(dir string, self bool) ([]*mountinfo.Info, error) {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	if !self {
		kept := mounts[:0]
		for _, m := range mounts {
			if m.Mountpoint != dir {
				kept = append(kept, m)
			}
		}
		mounts = kept
	}
	return mounts, nil
}

// CountMounts returns the number of mounts strictly below root (root itself
// is not counted), as seen in /proc/self/mountinfo. A root that does not
// exist has none. It serves leak checks.
func CountMounts(root string) (int, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return 0, fmt.Errorf("volume: %q: %w", root, errdefs.ErrInvalidArgument)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			real = filepath.Clean(abs)
		} else {
			return 0, fmt.Errorf("volume: resolve %s: %w", abs, err)
		}
	}
	mounts, err := mountsUnder(real, false)
	if err != nil {
		return 0, fmt.Errorf("volume: %w", err)
	}
	return len(mounts), nil
}
