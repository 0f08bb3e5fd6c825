package network

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// LeakCount counts what attachments of a network hold on the host. After
// every group is torn down each count is zero.
type LeakCount struct {
	// NetNS is the number of files under StateDir/netns and StateDir/userns
	// (the groups' network and user namespaces).
	NetNS int
	// Veths is the number of veth devices enslaved to the bridge.
	Veths int
	// IPAllocations is the number of host-local leases in the IPAM data dir.
	IPAllocations int
	// IPTablesRules is the number of iptables rules (any table) that name
	// the network in a comment or an address inside its subnet.
	IPTablesRules int
	// GuardEntries is the number of per-group entries in the nftables
	// guard: set and map elements, and tenant chains. (The tables and
	// their base chains are per network, and stay until Destroy.)
	GuardEntries int
	// Bindings is the number of groups' pool bindings (pool.go).
	Bindings int
	// Pool is the number of prepared attachments ready to be taken: what a
	// Manager keeps by design (Config.PoolSize), not a leak. The counts
	// above leave out what they hold; Close or Destroy removes them.
	Pool int
}

// Zero reports whether nothing is held but the pool's ready entries.
func (l LeakCount) Zero() bool {
	l.Pool = 0
	return l == LeakCount{}
}

var ipv4Re = regexp.MustCompile(`\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b`)

// CountLeaks counts the host resources held by attachments of the network
// cfg describes. Tests use it to check that teardown leaves nothing behind.
func CountLeaks(cfg Config) (LeakCount, error) {
	var lc LeakCount
	cfg, err := cfg.withDefaults()
	if err != nil {
		return lc, err
	}

	pool, poolVeths, err := readyPoolEntries(cfg)
	if err != nil {
		return lc, err
	}
	lc.Pool = len(pool)
	for _, dir := range []string{cfg.netnsDir(), cfg.usernsDir()} {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return lc, fmt.Errorf("network: read %s: %v: %w", dir, err, errdefs.ErrUnavailable)
		}
		for _, e := range entries {
			if !pool[e.Name()] {
				lc.NetNS++
			}
		}
	}
	bound, err := os.ReadDir(cfg.boundDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return lc, fmt.Errorf("network: read bindings: %v: %w", err, errdefs.ErrUnavailable)
	}
	lc.Bindings = len(bound)

	veths, err := cfg.bridgeVeths()
	if err != nil {
		return lc, err
	}
	for _, l := range veths {
		if !poolVeths[l.Attrs().Name] {
			lc.Veths++
		}
	}

	leaseDir := filepath.Join(cfg.ipamDir(), cfg.NetworkName)
	leases, err := os.ReadDir(leaseDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return lc, fmt.Errorf("network: read ipam dir: %v: %w", err, errdefs.ErrUnavailable)
	}
	for _, e := range leases {
		if net.ParseIP(e.Name()) != nil && !pool[leaseOwner(filepath.Join(leaseDir, e.Name()))] {
			lc.IPAllocations++
		}
	}

	rules, err := networkRules(cfg)
	if err != nil {
		return lc, err
	}
	lc.IPTablesRules = len(rules)
	if lc.GuardEntries, err = countGuard(context.Background(), cfg); err != nil {
		return lc, err
	}
	return lc, nil
}

// networkRules returns the iptables rules (iptables-save syntax) that belong
// to attachments of the network: those whose comment names it (portmap's
// `name: "NET" id: "ID"`) or that mention an address inside its subnet
// (portmap DNAT targets, firewall ACCEPT rules).
func networkRules(cfg Config) ([]string, error) {
	_, subnet, err := net.ParseCIDR(cfg.Subnet)
	if err != nil {
		return nil, fmt.Errorf("network: subnet: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		return nil, iptablesErr(err, "iptables-save")
	}
	nameTag := fmt.Sprintf(`name: \"%s\"`, cfg.NetworkName)
	var rules []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "-A ") {
			continue
		}
		match := strings.Contains(line, nameTag)
		for _, s := range ipv4Re.FindAllString(line, -1) {
			if ip := net.ParseIP(s); ip != nil && subnet.Contains(ip) {
				match = true
			}
		}
		if match {
			rules = append(rules, line)
		}
	}
	return rules, sc.Err()
}
