package network

import (
	"context"
	"errors"
	"os/exec"
)

// Bridged and routed traffic of the groups passes iptables' FORWARD chain,
// which may drop it by policy (Docker sets DROP). Two rules per bridge let it
// through, installed once when a Manager starts: the nftables guard
// (guard.go) is what decides which group may talk to whom, so the CNI
// firewall plugin, which added two rules per group on every ADD and took
// them out on every DEL (about 20 ms and 40 ms), is no longer in the chain.
// Groups attached before keep their plugin rules until their DEL, which
// runs with the configuration cached at their ADD.

// forwardRules are the per-bridge FORWARD rules, as iptables arguments
// after the chain name.
func (cfg Config) forwardRules() [][]string {
	comment := []string{"-m", "comment", "--comment", "skiff bridge " + cfg.BridgeName}
	return [][]string{
		append([]string{"-i", cfg.BridgeName}, append(comment, "-j", "ACCEPT")...),
		append([]string{"-o", cfg.BridgeName}, append(comment, "-j", "ACCEPT")...),
	}
}

// installForward adds the per-bridge FORWARD rules that are missing.
func (m *Manager) installForward(ctx context.Context) error {
	for _, r := range m.cfg.forwardRules() {
		if err := exec.CommandContext(ctx, "iptables", append([]string{"-w", "-C", "FORWARD"}, r...)...).Run(); err == nil {
			continue
		} else if !errors.As(err, new(*exec.ExitError)) {
			return iptablesErr(err, "iptables -C FORWARD")
		}
		if err := iptables(ctx, append([]string{"-I", "FORWARD"}, r...)...); err != nil {
			return err
		}
	}
	return nil
}

// removeForward deletes the per-bridge FORWARD rules (Destroy).
func (m *Manager) removeForward(ctx context.Context) error {
	for _, r := range m.cfg.forwardRules() {
		for exec.CommandContext(ctx, "iptables", append([]string{"-w", "-C", "FORWARD"}, r...)...).Run() == nil {
			if err := iptables(ctx, append([]string{"-D", "FORWARD"}, r...)...); err != nil {
				return err
			}
		}
	}
	return nil
}
