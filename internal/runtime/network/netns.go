package network

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/internal/runtime/userns"
)

// usernsDir holds the groups' user namespace files when the host maps IDs.
func (cfg Config) usernsDir() string { return filepath.Join(cfg.StateDir, "userns") }

// usernsPath is where the user namespace of group id is mounted.
func (cfg Config) usernsPath(id string) string { return filepath.Join(cfg.usernsDir(), id) }

// createNamespaces makes group id's network namespace. When the host maps
// IDs (Config.IDMap), the network namespace is owned by a new user
// namespace of the group's, mounted too, which the group's containers join
// first. It returns the user namespace's path, or "".
func (m *Manager) createNamespaces(id string) (string, error) {
	if !m.cfg.IDMap.Enabled() {
		return "", createNetNS(m.cfg.netnsPath(id))
	}
	if err := os.MkdirAll(m.cfg.usernsDir(), 0o700); err != nil {
		return "", err
	}
	up := m.cfg.usernsPath(id)
	return up, m.cfg.IDMap.Create(up, m.cfg.netnsPath(id))
}

// removeNamespaces removes what createNamespaces made; missing ones are
// not an error.
func (m *Manager) removeNamespaces(id string) error {
	return errors.Join(removeNetNS(m.cfg.netnsPath(id)), userns.Remove(m.cfg.usernsPath(id)))
}

// createNetNS makes a new network namespace and bind-mounts it on path, as
// `ip netns add` does. It fails with an os.ErrExist error if path exists.
func createNetNS(path string) (retErr error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			_ = os.Remove(path)
		}
	}()

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		merr := unix.Mount(src, path, "none", unix.MS_BIND, "")
		if merr != nil {
			merr = fmt.Errorf("bind mount %s: %w", path, merr)
		}
		// Return the thread to the original namespace. If that fails the
		// thread stays locked, and the runtime discards it when this
		// goroutine ends. (Were it the main thread, it would be parked
		// instead, and keep the namespace alive: hence the switch back
		// rather than relying on thread exit.)
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(merr, fmt.Errorf("return to original netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- merr
	}()
	return <-errc
}

// isNetNS reports whether path is a mounted namespace file.
func isNetNS(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// removeNetNS unmounts and removes the namespace file at path. A missing or
// unmounted file is not an error.
func removeNetNS(path string) error { return userns.Remove(path) }

// withHandle runs fn with a netlink handle inside the namespace mounted at
// path.
func withHandle(path string, fn func(*netlink.Handle) error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	return fn(h)
}

// loopbackUp sets lo up inside the namespace mounted at path.
func loopbackUp(path string) error {
	return withHandle(path, func(h *netlink.Handle) error {
		lo, err := h.LinkByName("lo")
		if err != nil {
			return err
		}
		return h.LinkSetUp(lo)
	})
}

// linkList lists the host's links, dumping again when the kernel says the
// dump was interrupted by a change (veths come and go while groups start
// and stop).
func linkList() ([]netlink.Link, error) {
	for i := 0; ; i++ {
		links, err := netlink.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || i == 9 {
			return links, err
		}
	}
}
