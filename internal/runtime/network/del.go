package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// delUncached runs CNI DEL for an attachment that has no libcni cache entry:
// an ADD that failed halfway (Setup's rollback), or one that a crash
// interrupted before libcni wrote its cache. libcni would pass the plugins
// no prevResult and, after a crash, no port mappings, and then portmap and
// firewall delete nothing. So this rebuilds both: the address from
// host-local's lease for the id, and a placeholder port mapping when the
// real ones are unknown (portmap deletes by container id; it only needs the
// list to be non-empty).
func (m *Manager) delUncached(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	maps, _ := rt.CapabilityArgs["portMappings"].([]portMapping)
	if len(maps) == 0 {
		maps = []portMapping{{HostPort: 1, ContainerPort: 1, Protocol: "tcp", HostIP: m.cfg.PublicAddress}}
	}
	var prev any
	if ipn := m.leasedAddress(rt.ContainerID); ipn != nil {
		r := &current.Result{
			CNIVersion: list.CNIVersion,
			Interfaces: []*current.Interface{{Name: rt.IfName, Sandbox: rt.NetNS}},
			IPs:        []*current.IPConfig{{Interface: current.Int(0), Address: *ipn}},
		}
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &prev); err != nil {
			return err
		}
	}
	args := &invoke.Args{
		Command:     "DEL",
		ContainerID: rt.ContainerID,
		NetNS:       rt.NetNS,
		IfName:      rt.IfName,
		Path:        strings.Join(m.cfg.PluginDirs, string(os.PathListSeparator)),
	}
	var errs []error
	for i := len(list.Plugins) - 1; i >= 0; i-- {
		p := list.Plugins[i]
		inject := map[string]any{"name": list.Name, "cniVersion": list.CNIVersion}
		if prev != nil {
			inject["prevResult"] = prev
		}
		if p.Network.Capabilities["portMappings"] {
			inject["runtimeConfig"] = map[string]any{"portMappings": maps}
		}
		conf, err := libcni.InjectConf(p, inject)
		if err != nil {
			return err
		}
		path, err := m.exec.FindInPath(p.Network.Type, m.cfg.PluginDirs)
		if err != nil {
			return err
		}
		// Unlike DelNetworkList, go on past a failing plugin so that the
		// others still release what they hold.
		if err := invoke.ExecPluginWithoutResult(ctx, path, conf.Bytes, args, m.exec); err != nil {
			errs = append(errs, fmt.Errorf("plugin %s failed (delete): %w", p.Network.Type, err))
		}
	}
	return errors.Join(errs...)
}

// leasedAddress returns the address host-local leased to id, or nil.
func (m *Manager) leasedAddress(id string) *net.IPNet {
	_, subnet, err := net.ParseCIDR(m.cfg.Subnet)
	if err != nil {
		return nil
	}
	dir := filepath.Join(m.cfg.ipamDir(), m.cfg.NetworkName)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		ip := net.ParseIP(e.Name())
		if ip == nil || !subnet.Contains(ip) {
			continue
		}
		if leaseOwner(filepath.Join(dir, e.Name())) == id {
			return &net.IPNet{IP: ip.To4(), Mask: subnet.Mask}
		}
	}
	return nil
}

// bridgeOnly reports whether list is the bridge plugin alone (with
// host-local): the configuration of groups without ports and of the pool.
func bridgeOnly(list *libcni.NetworkConfigList) bool {
	return len(list.Plugins) == 1 && list.Plugins[0].Network.Type == "bridge" &&
		list.Plugins[0].Network.IPAM.Type == "host-local"
}

// releaseBridge undoes a bridge-only ADD of cid in process, without the two
// plugin execs of a DEL (bridge, and host-local under it): what the bridge
// plugin's DEL does with ipMasq off. The namespace's end of the veth is
// deleted (the host's end goes with it), host-local's lease is removed
// under host-local's own lock (DATA-DIR/<network>/lock, flock), and libcni's
// cache entry last. Every step is idempotent. leased are the addresses
// libcni's cached result names (nil: unknown).
func (m *Manager) releaseBridge(cid, nsPath string, leased []net.IP) error {
	if nsPath != "" {
		if err := deleteLinkIn(nsPath, IfName); err != nil {
			return fmt.Errorf("delete %s in %s: %w", IfName, nsPath, err)
		}
	}
	if err := m.releaseLease(cid, leased); err != nil {
		return err
	}
	err := os.Remove(filepath.Join(m.cfg.cacheDir(), "results", m.cfg.NetworkName+"-"+cid+"-"+IfName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// deleteLinkIn deletes link name inside the namespace mounted at nsPath; a
// missing link is not an error.
func deleteLinkIn(nsPath, name string) error {
	return withHandle(nsPath, func(h *netlink.Handle) error {
		l, err := h.LinkByName(name)
		if errors.As(err, new(netlink.LinkNotFoundError)) {
			return nil
		}
		if err != nil {
			return err
		}
		return h.LinkDel(l)
	})
}

// releaseLease removes the host-local leases held by cid, as host-local's
// DEL (ReleaseByID) does, holding the lock file it holds. The leases of
// the addresses in leased are the ones it checks; only when none of them
// is cid's does it read every lease (host-local's own DEL reads them all:
// with a thousand groups, a thousand files per delete).
func (m *Manager) releaseLease(cid string, leased []net.IP) error {
	dir := filepath.Join(m.cfg.ipamDir(), m.cfg.NetworkName)
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDONLY|os.O_CREATE, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		return nil // no lease was ever made on this network
	}
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	// removeOwned removes those of the named leases that are cid's.
	removeOwned := func(names []string) (found bool, err error) {
		for _, n := range names {
			if p := filepath.Join(dir, n); net.ParseIP(n) != nil && leaseOwner(p) == cid {
				if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
					return found, err
				}
				found = true
			}
		}
		return found, nil
	}
	var names []string
	for _, ip := range leased {
		names = append(names, ip.String())
	}
	if found, err := removeOwned(names); found || err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	names = names[:0]
	for _, e := range entries {
		names = append(names, e.Name())
	}
	_, err = removeOwned(names)
	return err
}

// resultIPs are the addresses of a CNI result; nil if it has none or is
// unreadable.
func resultIPs(res types.Result) []net.IP {
	r, err := current.NewResultFromResult(res)
	if err != nil {
		return nil
	}
	var ips []net.IP
	for _, ipc := range r.IPs {
		ips = append(ips, ipc.Address.IP)
	}
	return ips
}
