package network

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// checkBridgePorts refuses a bridge that already carries veths this
// network did not make. Addresses are leased from this data dir's
// host-local store alone, so another holder of the bridge (a second skiff
// server or agent given the same --bridge, or the namespaces a killed one
// left mounted) has leased the same addresses from its own store: groups
// of both would answer for one IP, and traffic to either goes wherever ARP
// last pointed. That shows up as a group that runs and never answers, so
// New fails instead, naming the interfaces.
//
// Ours are the host ends of the veths in the namespaces under netnsDir:
// the groups', the pool's, and those of an ADD a crash interrupted (which
// have no libcni cache entry yet), so a restart after a crash is not
// refused.
func (cfg Config) checkBridgePorts() error {
	ports, err := cfg.bridgeVeths()
	if err != nil || len(ports) == 0 {
		return err
	}
	ours, err := cfg.hostEnds()
	if err != nil {
		return err
	}
	var foreign []string
	for _, l := range ports {
		if !ours[l.Attrs().Index] {
			foreign = append(foreign, l.Attrs().Name)
		}
	}
	if len(foreign) == 0 {
		return nil
	}
	shown := foreign
	if len(shown) > 5 {
		shown = append(shown[:5:5], "…")
	}
	return fmt.Errorf("network: bridge %s carries %d interfaces this data dir did not make (%s): another skiff server or agent uses --bridge %s, or a stopped one left its groups' namespaces; give each host its own --bridge and --subnet, or delete them (ip link del NAME): %w",
		cfg.BridgeName, len(foreign), strings.Join(shown, ", "), cfg.BridgeName, errdefs.ErrConflict)
}

// bridgeVeths lists the veths enslaved to the bridge; none when it does
// not exist (yet).
func (cfg Config) bridgeVeths() ([]netlink.Link, error) {
	br, err := netlink.LinkByName(cfg.BridgeName)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("network: look up bridge %s: %v: %w", cfg.BridgeName, err, errdefs.ErrUnavailable)
	}
	links, err := linkList()
	if err != nil {
		return nil, fmt.Errorf("network: list links: %v: %w", err, errdefs.ErrUnavailable)
	}
	var veths []netlink.Link
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index && l.Type() == "veth" {
			veths = append(veths, l)
		}
	}
	return veths, nil
}

// hostEnds returns the host-side interface indexes of the veths in the
// namespaces mounted under netnsDir. A file that is no namespace (a
// create a crash interrupted) has none.
func (cfg Config) hostEnds() (map[int]bool, error) {
	entries, err := os.ReadDir(cfg.netnsDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("network: read %s: %v: %w", cfg.netnsDir(), err, errdefs.ErrUnavailable)
	}
	ours := make(map[int]bool, len(entries))
	for _, e := range entries {
		_ = withHandle(cfg.netnsPath(e.Name()), func(h *netlink.Handle) error {
			l, err := h.LinkByName(IfName)
			if err == nil && l.Attrs().ParentIndex > 0 {
				ours[l.Attrs().ParentIndex] = true
			}
			return err
		})
	}
	return ours, nil
}
