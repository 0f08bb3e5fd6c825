package network

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"sort"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// The guard keeps groups in their place with two nftables tables per
// network, both named skiff_<NetworkName> (nft, from Debian's nftables, runs
// each change as one atomic transaction):
//
//	table bridge skiff_NET              frames on the bridge, before anything else sees them
//	  set ports    { ifname }             the group veths
//	  set macs     { ifname . ether }     the one MAC each veth may send from
//	  set ips      { ifname . ipv4 }      the one address each veth may send from
//	  map tenants  { ifname : jump t_K }  the tenant chain of each veth
//	  set/chain t_K                       the veths of tenant K; frames to any other port drop
//	  chain prerouting  from a veth: only its own MAC, its own IPv4 (and ARP sender) address,
//	                    and only IPv4 and ARP frames (no IPv6, no VLAN tags)
//	  chain forward     bridged between veths: only within one tenant
//	  chain input       to the host: never a routed detour to another group's address
//	table inet skiff_NET                packets the host receives from or routes for the bridge
//	  chain input       only replies to the host's own connections (and DNATed ones); never
//	                    127.0.0.0/8 (route_localnet is on for portmap: CVE-2020-8558);
//	                    new connections only with AllowHostAccess
//	  chain forward     off the bridge only replies, unless AllowHostAccess
//
// The tables and their base chains are installed by New, idempotently (the
// chains are flushed and refilled in the same transaction, so a restart
// applies a changed policy without a window). Per-group elements carry the
// group id as their comment: Setup adds them after CNI ADD, Teardown deletes
// whatever carries the id (so it needs no cache), New re-adds those of
// cached attachments (after `nft flush ruleset`, or an upgrade). The kernel
// refuses concurrent transactions, and Manager.guardMu orders the
// list-then-delete of Teardown against Setups of the same tenant.

// tenantCapability is the key under which the tenant is kept in the
// attachment's libcni cache entry (RuntimeConf.CapabilityArgs). libcni
// passes a plugin only the capabilities it declares, so no plugin sees it;
// libcni caches the whole map, so New can rebuild the guard after a restart.
const tenantCapability = "io.skiff.tenant"

// guardEntry is what the guard knows of one attachment.
type guardEntry struct {
	id, veth, tenant string
	mac              net.HardwareAddr
	ip               net.IP
}

func (cfg Config) nftTable() string { return "skiff_" + cfg.NetworkName }

// gateway is the bridge's address: host-local's default, the subnet's first.
func (cfg Config) gateway() net.IP {
	_, subnet, _ := net.ParseCIDR(cfg.Subnet)
	ip := subnet.IP.To4()
	gw := make(net.IP, 4)
	copy(gw, ip)
	gw[3]++
	return gw
}

// tenantChain names the chain and set of a tenant (a hash: nft names are
// short and plain; tenant keys are not).
func tenantChain(tenant string) string {
	sum := sha256.Sum256([]byte(tenant))
	return "t_" + hex.EncodeToString(sum[:8])
}

// baseRules renders the tables and base chains.
func (cfg Config) baseRules() string {
	t, br := cfg.nftTable(), cfg.BridgeName
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("add table bridge %s", t)
	w("add set bridge %s ports { type ifname; }", t)
	w("add set bridge %s macs { type ifname . ether_addr; }", t)
	w("add set bridge %s ips { type ifname . ipv4_addr; }", t)
	w("add map bridge %s tenants { type ifname : verdict; }", t)
	w("add chain bridge %s prerouting { type filter hook prerouting priority -300; policy accept; }", t)
	w("flush chain bridge %s prerouting", t)
	w("add rule bridge %s prerouting iifname != @ports accept", t)
	w("add rule bridge %s prerouting iifname . ether saddr != @macs drop", t)
	w("add rule bridge %s prerouting ether type != { ip, arp } drop", t)
	w("add rule bridge %s prerouting iifname . arp saddr ether != @macs drop", t)
	w("add rule bridge %s prerouting iifname . arp saddr ip != @ips drop", t)
	w("add rule bridge %s prerouting iifname . ip saddr != @ips drop", t)
	w("add chain bridge %s forward { type filter hook forward priority -300; policy accept; }", t)
	w("flush chain bridge %s forward", t)
	w("add rule bridge %s forward iifname != @ports accept", t)
	w("add rule bridge %s forward iifname vmap @tenants", t)
	w("add rule bridge %s forward drop", t)
	// A group reaches other groups' addresses on the bridge directly; one
	// sent to the bridge's MAC would be routed back onto it, past the
	// tenant check.
	w("add chain bridge %s input { type filter hook input priority -300; policy accept; }", t)
	w("flush chain bridge %s input", t)
	w("add rule bridge %s input iifname != @ports accept", t)
	w("add rule bridge %s input ip daddr %s ip daddr != %s drop", t, cfg.Subnet, cfg.gateway())

	w("add table inet %s", t)
	w("add chain inet %s input { type filter hook input priority filter - 10; policy accept; }", t)
	w("flush chain inet %s input", t)
	w("add rule inet %s input iifname != %q accept", t, br)
	w("add rule inet %s input ct state established,related accept", t)
	w("add rule inet %s input ip daddr 127.0.0.0/8 counter drop", t)
	w("add rule inet %s input ct status dnat accept", t)
	if !cfg.AllowHostAccess {
		w("add rule inet %s input counter drop", t)
	}
	w("add chain inet %s forward { type filter hook forward priority filter - 10; policy accept; }", t)
	w("flush chain inet %s forward", t)
	w("add rule inet %s forward iifname != %q accept", t, br)
	w("add rule inet %s forward oifname %q accept", t, br)
	w("add rule inet %s forward ct state established,related accept", t)
	if !cfg.AllowHostAccess {
		w("add rule inet %s forward counter drop", t)
	}
	return b.String()
}

// entryRules renders the elements (and tenant chain) of attachments.
func (cfg Config) entryRules(entries []guardEntry) string {
	t := cfg.nftTable()
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	done := map[string]bool{}
	for _, e := range entries {
		tc := tenantChain(e.tenant)
		if !done[tc] {
			done[tc] = true
			w("add set bridge %s %s { type ifname; }", t, tc)
			w("add chain bridge %s %s", t, tc)
			w("flush chain bridge %s %s", t, tc)
			w("add rule bridge %s %s oifname @%s accept", t, tc, tc)
			w("add rule bridge %s %s drop", t, tc)
		}
		c := fmt.Sprintf("comment %q", e.id)
		w("add element bridge %s %s { %q %s }", t, tc, e.veth, c)
		w("add element bridge %s ports { %q %s }", t, e.veth, c)
		w("add element bridge %s macs { %q . %s %s }", t, e.veth, e.mac, c)
		w("add element bridge %s ips { %q . %s %s }", t, e.veth, e.ip, c)
		w("add element bridge %s tenants { %q %s : jump %s }", t, e.veth, c, tc)
	}
	return b.String()
}

// installGuard installs the base tables and the entries of the given
// attachments in one transaction.
func (m *Manager) installGuard(ctx context.Context, entries []guardEntry) error {
	m.guardMu.Lock()
	defer m.guardMu.Unlock()
	if err := nft(ctx, m.cfg.baseRules()+m.cfg.entryRules(entries)); err != nil {
		return fmt.Errorf("network: install nftables guard: %w", err)
	}
	for _, e := range entries {
		m.tenantRefs[tenantChain(e.tenant)]++
	}
	return nil
}

// addGuard adds the entries of one new attachment.
func (m *Manager) addGuard(ctx context.Context, e guardEntry) error {
	m.guardMu.Lock()
	defer m.guardMu.Unlock()
	if err := nft(ctx, m.cfg.entryRules([]guardEntry{e})); err != nil {
		return fmt.Errorf("network: guard group %q: %w", e.id, err)
	}
	m.tenantRefs[tenantChain(e.tenant)]++
	return nil
}

// removeGuardEntry deletes the elements of entry e, and its tenant's chain
// and set when e was the tenant's last veth, in one transaction, without
// listing the guard (whose listing grows with every group). Each element
// is added before it is deleted, so the transaction holds whether or not a
// teardown before this one got that far. It fails, changing nothing, when
// the guard is not as tenantRefs says (a chain still in use, a missing
// table): removeGuard then does it by listing.
func (m *Manager) removeGuardEntry(ctx context.Context, e guardEntry) error {
	m.guardMu.Lock()
	defer m.guardMu.Unlock()
	t, tc := m.cfg.nftTable(), tenantChain(e.tenant)
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("add set bridge %s %s { type ifname; }", t, tc)
	w("add chain bridge %s %s", t, tc)
	veth := fmt.Sprintf("%q", e.veth)
	for _, el := range [][2]string{{tc, veth}, {"ports", veth}, {"macs", veth + " . " + e.mac.String()}, {"ips", veth + " . " + e.ip.String()}} {
		w("add element bridge %s %s { %s }", t, el[0], el[1])
		w("delete element bridge %s %s { %s }", t, el[0], el[1])
	}
	w("add element bridge %s tenants { %s : jump %s }", t, veth, tc)
	w("delete element bridge %s tenants { %s }", t, veth)
	left := m.tenantRefs[tc] - 1
	if left <= 0 {
		w("delete chain bridge %s %s", t, tc)
		w("delete set bridge %s %s", t, tc)
	}
	if err := nft(ctx, b.String()); err != nil {
		return err
	}
	if left <= 0 {
		delete(m.tenantRefs, tc)
	} else {
		m.tenantRefs[tc] = left
	}
	return nil
}

// removeGuard deletes every element that carries id, and the chain and set
// of a tenant left without veths. A missing table is not an error.
func (m *Manager) removeGuard(ctx context.Context, id string) error {
	m.guardMu.Lock()
	defer m.guardMu.Unlock()
	st, err := listGuard(ctx, m.cfg)
	if err != nil || st == nil {
		return err
	}
	t := m.cfg.nftTable()
	var b strings.Builder
	var tenantGone []string
	for _, s := range st.sets {
		left := 0
		for _, e := range s.elems {
			if e.comment == id {
				fmt.Fprintf(&b, "delete element bridge %s %s { %s }\n", t, s.name, e.key)
			} else {
				left++
			}
		}
		if strings.HasPrefix(s.name, "t_") && left == 0 {
			tenantGone = append(tenantGone, s.name)
		}
	}
	for _, tc := range tenantGone {
		fmt.Fprintf(&b, "delete chain bridge %s %s\ndelete set bridge %s %s\n", t, tc, t, tc)
	}
	// What the listing shows is the truth tenantRefs follows.
	for _, set := range st.sets {
		if strings.HasPrefix(set.name, "t_") {
			n := 0
			for _, e := range set.elems {
				if e.comment != id {
					n++
				}
			}
			if n == 0 {
				delete(m.tenantRefs, set.name)
			} else {
				m.tenantRefs[set.name] = n
			}
		}
	}
	if b.Len() == 0 {
		return nil
	}
	if err := nft(ctx, b.String()); err != nil {
		return fmt.Errorf("network: remove guard of %q: %w", id, err)
	}
	return nil
}

// removeGuardTables deletes both tables (Destroy).
func (m *Manager) removeGuardTables(ctx context.Context) error {
	m.guardMu.Lock()
	defer m.guardMu.Unlock()
	t := m.cfg.nftTable()
	// add-then-delete: one transaction that succeeds whether or not the
	// tables exist.
	script := fmt.Sprintf("add table bridge %s\ndelete table bridge %s\nadd table inet %s\ndelete table inet %s\n", t, t, t, t)
	if err := nft(ctx, script); err != nil {
		return fmt.Errorf("network: remove nftables guard: %w", err)
	}
	return nil
}

// guardFromResult finds the host veth and the group's MAC and address in a
// CNI result.
func guardFromResult(id, bridge, tenant string, res types.Result) (guardEntry, error) {
	e := guardEntry{id: id, tenant: tenant}
	r, err := current.NewResultFromResult(res)
	if err != nil {
		return e, fmt.Errorf("network: cni result for %q: %v: %w", id, err, errdefs.ErrUnavailable)
	}
	for i, ifc := range r.Interfaces {
		switch {
		case ifc.Sandbox == "" && ifc.Name != bridge:
			e.veth = ifc.Name
		case ifc.Sandbox != "":
			for _, ipc := range r.IPs {
				if ipc.Interface != nil && *ipc.Interface == i && ipc.Address.IP.To4() != nil {
					e.ip = ipc.Address.IP.To4()
					e.mac, _ = net.ParseMAC(ifc.Mac)
				}
			}
		}
	}
	if e.veth == "" || e.ip == nil || e.mac == nil {
		return e, fmt.Errorf("network: cni result for %q lacks the host veth, the address or the MAC: %w", id, errdefs.ErrUnavailable)
	}
	return e, nil
}

// guardState is the bridge table as listed: its sets and maps with their
// elements, and its chains.
type guardState struct {
	sets   []guardSet
	chains []string
}

type guardSet struct {
	name  string
	elems []guardElem
}

type guardElem struct{ key, comment string }

// listGuard reads the network's bridge table; nil if it does not exist.
func listGuard(ctx context.Context, cfg Config) (*guardState, error) {
	cmd := exec.CommandContext(ctx, "nft", "-j", "list", "table", "bridge", cfg.nftTable())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if strings.Contains(stderr.String(), "No such file or directory") {
			return nil, nil
		}
		return nil, nftErr(err, "list table", stderr.Bytes())
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
		return nil, fmt.Errorf("network: parse nft -j output: %v: %w", err, errdefs.ErrUnavailable)
	}
	st := &guardState{}
	for _, obj := range doc.Nftables {
		if raw, ok := obj["chain"]; ok {
			var c struct{ Name string }
			if json.Unmarshal(raw, &c) == nil {
				st.chains = append(st.chains, c.Name)
			}
			continue
		}
		raw, ok := obj["set"]
		if !ok {
			raw, ok = obj["map"]
		}
		if !ok {
			continue
		}
		var s struct {
			Name string
			Elem []json.RawMessage
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("network: parse nft set: %v: %w", err, errdefs.ErrUnavailable)
		}
		gs := guardSet{name: s.Name}
		for _, e := range s.Elem {
			ge, err := parseElem(e)
			if err != nil {
				return nil, err
			}
			gs.elems = append(gs.elems, ge)
		}
		st.sets = append(st.sets, gs)
	}
	sort.Slice(st.sets, func(i, j int) bool { return st.sets[i].name < st.sets[j].name })
	return st, nil
}

// parseElem reads one element of `nft -j` output: a map element is a
// [key, value] pair; a key with a comment is {"elem": {"val", "comment"}};
// a value is a string or {"concat": [...]}. The key is rendered for a
// delete command: the first component (always an ifname here) quoted.
func parseElem(raw json.RawMessage) (guardElem, error) {
	var pair []json.RawMessage
	if json.Unmarshal(raw, &pair) == nil && len(pair) == 2 {
		raw = pair[0]
	}
	var wrapped struct {
		Elem *struct {
			Val     json.RawMessage `json:"val"`
			Comment string          `json:"comment"`
		} `json:"elem"`
	}
	val, comment := raw, ""
	if json.Unmarshal(raw, &wrapped) == nil && wrapped.Elem != nil {
		val, comment = wrapped.Elem.Val, wrapped.Elem.Comment
	}
	var parts []string
	var one string
	var concat struct{ Concat []string }
	switch {
	case json.Unmarshal(val, &one) == nil:
		parts = []string{one}
	case json.Unmarshal(val, &concat) == nil && len(concat.Concat) > 0:
		parts = concat.Concat
	default:
		return guardElem{}, fmt.Errorf("network: unexpected nft element %s: %w", raw, errdefs.ErrUnavailable)
	}
	parts[0] = fmt.Sprintf("%q", parts[0])
	return guardElem{key: strings.Join(parts, " . "), comment: comment}, nil
}

// countGuard counts the per-group entries: elements and tenant chains.
func countGuard(ctx context.Context, cfg Config) (int, error) {
	st, err := listGuard(ctx, cfg)
	if err != nil || st == nil {
		return 0, err
	}
	n := 0
	for _, s := range st.sets {
		n += len(s.elems)
	}
	for _, c := range st.chains {
		if strings.HasPrefix(c, "t_") {
			n++
		}
	}
	return n, nil
}

// nft runs an nft script as one transaction.
func nft(ctx context.Context, script string) error {
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nftErr(err, "-f", stderr.Bytes())
	}
	return nil
}

func nftErr(err error, what string, stderr []byte) error {
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("nft not found (apt-get install nftables): %w", errdefs.ErrUnavailable)
	}
	return fmt.Errorf("nft %s: %v: %s: %w", what, err, bytes.TrimSpace(stderr), errdefs.ErrUnavailable)
}
