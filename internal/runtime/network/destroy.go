package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// chainLockPath serialises, host-wide, the creation of the shared CNI chains
// (by ADD, shared lock) with their removal (by Destroy, exclusive lock).
const chainLockPath = "/run/skiff-cni-chains.lock"

// lockChains takes the host-wide chain lock, shared or exclusive. The
// returned function releases it.
func lockChains(ctx context.Context, exclusive bool) (func(), error) {
	f, err := os.OpenFile(chainLockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("network: open %s: %v: %w", chainLockPath, err, errdefs.ErrUnavailable)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	done := make(chan error, 1)
	go func() { done <- unix.Flock(int(f.Fd()), how) }()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("network: flock %s: %v: %w", chainLockPath, err, errdefs.ErrUnavailable)
		}
		return func() { f.Close() }, nil
	case <-ctx.Done():
		// Closing the file cannot interrupt flock; let it finish and drop it.
		go func() { <-done; f.Close() }()
		return nil, ctx.Err()
	}
}

// sharedChain is a chain that portmap or firewall creates once per host.
type sharedChain struct {
	table, name string
	// own are the rules the plugin puts in the chain itself; any other rule
	// means a live attachment (of any network) uses the chain.
	own []string
	// after names a chain that must be gone before this one may go.
	after string
}

// sharedChains in removal order.
var sharedChains = []sharedChain{
	{table: "nat", name: "CNI-HOSTPORT-DNAT"},
	{table: "nat", name: "CNI-HOSTPORT-MASQ", after: "CNI-HOSTPORT-DNAT",
		own: []string{`-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE`}},
	{table: "nat", name: "CNI-HOSTPORT-SETMARK", after: "CNI-HOSTPORT-DNAT",
		own: []string{`-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000`}},
	{table: "filter", name: "CNI-FORWARD",
		own: []string{`-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN`}},
	{table: "filter", name: "CNI-ADMIN", after: "CNI-FORWARD"},
}

var builtinChains = []string{"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}

// Destroy removes what the network holds on the host once no group is
// attached: the pool's ready entries (Close), the bridge, the nftables guard's tables, and the CNI iptables chains shared by all CNI
// networks on the host (CNI-HOSTPORT-*, CNI-FORWARD, CNI-ADMIN) when no
// attachment of any network uses them. It fails with errdefs.ErrConflict
// while a group is attached. StateDir is left in place.
func (m *Manager) Destroy(ctx context.Context) error {
	m.closePool(ctx)
	ids, err := m.attachedIDs()
	if err != nil {
		return err
	}
	if len(ids) > 0 {
		return fmt.Errorf("network: %d groups still attached (%s): %w", len(ids), strings.Join(ids, ", "), errdefs.ErrConflict)
	}
	if br, err := netlink.LinkByName(m.cfg.BridgeName); err == nil {
		links, err := linkList()
		if err != nil {
			return fmt.Errorf("network: list links: %v: %w", err, errdefs.ErrUnavailable)
		}
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				return fmt.Errorf("network: bridge %s still has port %s: %w", m.cfg.BridgeName, l.Attrs().Name, errdefs.ErrConflict)
			}
		}
		if err := netlink.LinkDel(br); err != nil {
			return fmt.Errorf("network: delete bridge %s: %v: %w", m.cfg.BridgeName, err, errdefs.ErrUnavailable)
		}
		m.log.Debug("network: bridge deleted", "bridge", m.cfg.BridgeName)
	} else if !errors.As(err, new(netlink.LinkNotFoundError)) {
		return fmt.Errorf("network: look up bridge %s: %v: %w", m.cfg.BridgeName, err, errdefs.ErrUnavailable)
	}

	if err := m.removeGuardTables(ctx); err != nil {
		return err
	}
	if err := m.removeForward(ctx); err != nil {
		return err
	}
	unlock, err := lockChains(ctx, true)
	if err != nil {
		return err
	}
	defer unlock()
	m.chainsMade.Store(false)
	return m.removeUnusedSharedChains(ctx)
}

func (m *Manager) removeUnusedSharedChains(ctx context.Context) error {
	gone := map[string]bool{}
	for _, c := range sharedChains {
		rules, err := iptablesRules(ctx, c.table)
		if err != nil {
			return err
		}
		if !slices.Contains(rules, "-N "+c.name) {
			gone[c.name] = true
			continue
		}
		if c.after != "" && !gone[c.after] {
			continue
		}
		var refs []string
		inUse := false
		for _, r := range rules {
			f := strings.Fields(r)
			if len(f) < 2 || f[0] != "-A" {
				continue
			}
			switch {
			case f[1] == c.name:
				if !slices.Contains(c.own, r) {
					inUse = true
				}
			case strings.HasSuffix(r, " -j "+c.name):
				if !slices.Contains(builtinChains, f[1]) {
					inUse = true // e.g. a CNI-DN-* chain jumping to CNI-HOSTPORT-SETMARK
				}
				refs = append(refs, r)
			}
		}
		if inUse {
			continue
		}
		for _, r := range refs {
			args, err := splitRule(r)
			if err != nil {
				return err
			}
			args[0] = "-D"
			if err := iptables(ctx, append([]string{"-t", c.table}, args...)...); err != nil {
				return err
			}
		}
		if err := iptables(ctx, "-t", c.table, "-F", c.name); err != nil {
			return err
		}
		if err := iptables(ctx, "-t", c.table, "-X", c.name); err != nil {
			return err
		}
		m.log.Debug("network: removed shared chain", "table", c.table, "chain", c.name)
		gone[c.name] = true
	}
	return nil
}

// iptablesRules lists a table's chains and rules as `iptables -S` prints them.
func iptablesRules(ctx context.Context, table string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "iptables", "-w", "-t", table, "-S").Output()
	if err != nil {
		return nil, iptablesErr(err, "iptables -t "+table+" -S")
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n"), nil
}

func iptables(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "iptables", append([]string{"-w"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("network: iptables %s: %v: %s: %w", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()), errdefs.ErrUnavailable)
	}
	return nil
}

// iptablesErr wraps the failure of an iptables command run with Output.
func iptablesErr(err error, cmd string) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		err = fmt.Errorf("%v: %s", err, bytes.TrimSpace(ee.Stderr))
	}
	return fmt.Errorf("network: %s: %v: %w", cmd, err, errdefs.ErrUnavailable)
}

// splitRule splits an `iptables -S` line into arguments: fields separated by
// spaces, double quotes group, backslash escapes the next character.
func splitRule(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inWord, inQuote, esc := false, false, false
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\':
			esc, inWord = true, true
		case r == '"':
			inQuote, inWord = !inQuote, true
		case r == ' ' && !inQuote:
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inQuote || esc {
		return nil, fmt.Errorf("network: cannot parse iptables rule %q: %w", s, errdefs.ErrUnavailable)
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, nil
}
