// Package network attaches container groups to a host bridge through CNI.
//
// Each group gets a persistent network namespace (a bind-mounted nsfs file
// under Config.StateDir/netns), an address on the bridge subnet from
// host-local IPAM, and optional published ports (portmap DNAT from
// Config.PublicAddress). Container traffic is never masqueraded to the
// outside: the bridge plugin runs with ipMasq false and no default route is
// given to the namespace.
//
// An nftables guard (guard.go) keeps groups in their place: a group sends
// only from its own MAC and address, reaches only the groups of its own
// tenant, never the host's loopback, and the host's other addresses (and
// beyond) only when Config.AllowHostAccess is set; replies to connections
// the host opens, and published ports, always work. A published port never
// shadows a port a host process listens on, nor a reserved one (ports.go).
//
// All state that a DEL needs (the network configuration, the result and the
// port mappings of each ADD) lives in a libcni cache under StateDir, so a new
// Manager on the same StateDir can look up and tear down what an earlier
// process set up.
package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/utils"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/atomicfile"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/userns"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultPluginDir     = "/usr/lib/cni"
	DefaultBridgeName    = "skiff0"
	DefaultSubnet        = "10.201.0.0/16"
	DefaultNetworkName   = "skiff"
	DefaultPublicAddress = "127.0.0.1"
)

// IfName is the name of the group's interface inside its namespace.
const IfName = "eth0"

// cniVersion is the highest spec version the Debian plugins (1.1.1) speak.
const cniVersion = "1.0.0"

// Config describes the host network that groups are attached to.
type Config struct {
	// StateDir holds the netns mounts (netns/), the libcni cache (cache/),
	// host-local IPAM data (ipam/) and the generated conflist.
	StateDir string
	// PluginDirs are searched for CNI plugin binaries; default /usr/lib/cni.
	PluginDirs []string
	// BridgeName is the host bridge; default "skiff0".
	BridgeName string
	// Subnet is the IPv4 range addresses are drawn from; default 10.201.0.0/16.
	Subnet string
	// PublicAddress is the host address published ports bind to; default 127.0.0.1.
	PublicAddress string
	// NetworkName names the CNI network (IPAM data, cache and iptables
	// comments carry it; the nftables tables are skiff_<NetworkName>);
	// default "skiff".
	NetworkName string
	// Policy is what the operator allows groups on the network.
	Policy
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
	// IDMap, when enabled, puts each group's network namespace in a user
	// namespace of its own with this mapping (package userns).
	IDMap userns.Mapping
	// PoolSize is the number of attachments kept prepared for groups that
	// publish no ports (pool.go); 0 keeps none.
	PoolSize int
}

// Attachment is a group's live attachment to the network.
type Attachment struct {
	// ID is the group's id, used as the CNI container id.
	ID string
	// NetNSPath is the bind-mounted namespace file to hand to the runtime.
	NetNSPath string
	// UserNSPath is the user namespace owning NetNSPath, which containers
	// join first; empty when the host maps no IDs (Config.IDMap).
	UserNSPath string `json:",omitempty"`
	// IDMap is UserNSPath's mapping.
	IDMap userns.Mapping `json:",omitzero"`
	// IP is the group's address on the bridge.
	IP net.IP
	// Gateway is the bridge's address.
	Gateway net.IP
	// Ports are published as PublicAddress:port -> IP:port.
	Ports []api.Port
}

// Policy is what the operator allows groups on the network; the zero
// Policy is the safe default.
type Policy struct {
	// AllowHostAccess lets groups open connections to the host's own
	// addresses (never its loopback) and to networks the host routes to.
	// Off by default: a group reaches only its tenant's groups.
	AllowHostAccess bool
	// PublishedPorts limits the ports a group may publish; zero: any.
	PublishedPorts PortRange
	// ReservedPorts are never published: the server's own (its API port).
	ReservedPorts []api.Port
}

// Request is what a group asks of the network.
type Request struct {
	// Ports to publish on the public address.
	Ports []api.Port
	// Tenant isolates groups: those of different tenants cannot reach each
	// other's addresses on the bridge. "" is one tenant too.
	Tenant string
}

// Manager sets up and tears down attachments. It is safe for concurrent use.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	exec invoke.Exec
	cni  *libcni.CNIConfig
	list *libcni.NetworkConfigList // bridge and portmap: groups with ports
	// bridgeList is the bridge alone: groups without ports and the pool.
	bridgeList *libcni.NetworkConfigList
	pool       *pool // nil: no pool (Config.PoolSize 0)
	mu         sync.Mutex
	// chainsMade is set once an ADD succeeded (so the plugins' shared
	// chains exist); Destroy, which removes them, clears it.
	chainsMade atomic.Bool
	busy       map[string]bool    // ids with a Setup or Teardown in progress
	ports      map[portKey]string // published ports -> owning id
	// guardMu orders changes of the nftables guard (guard.go), and guards
	// tenantRefs: the number of veths in each tenant chain, so a teardown
	// knows when a chain goes without listing the guard.
	guardMu    sync.Mutex
	tenantRefs map[string]int
}

type portKey struct {
	proto string
	port  int32
}

// portMapping is one entry of the portmap plugin's portMappings capability.
type portMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// withDefaults fills zero fields and validates the result.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.StateDir == "" {
		return cfg, fmt.Errorf("network: StateDir is required: %w", errdefs.ErrInvalidArgument)
	}
	abs, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return cfg, fmt.Errorf("network: StateDir: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	cfg.StateDir = abs
	if len(cfg.PluginDirs) == 0 {
		cfg.PluginDirs = []string{DefaultPluginDir}
	}
	if cfg.BridgeName == "" {
		cfg.BridgeName = DefaultBridgeName
	}
	if len(cfg.BridgeName) > 15 {
		return cfg, fmt.Errorf("network: bridge name %q longer than 15 bytes: %w", cfg.BridgeName, errdefs.ErrInvalidArgument)
	}
	if cfg.Subnet == "" {
		cfg.Subnet = DefaultSubnet
	}
	ip, subnet, err := net.ParseCIDR(cfg.Subnet)
	if err != nil || ip.To4() == nil {
		return cfg, fmt.Errorf("network: subnet %q is not an IPv4 CIDR: %w", cfg.Subnet, errdefs.ErrInvalidArgument)
	}
	if ones, _ := subnet.Mask.Size(); ones > 30 {
		return cfg, fmt.Errorf("network: subnet %q too small: %w", cfg.Subnet, errdefs.ErrInvalidArgument)
	}
	cfg.Subnet = subnet.String()
	if cfg.PublicAddress == "" {
		cfg.PublicAddress = DefaultPublicAddress
	}
	if pub := net.ParseIP(cfg.PublicAddress); pub == nil || pub.To4() == nil {
		return cfg, fmt.Errorf("network: public address %q is not an IPv4 address: %w", cfg.PublicAddress, errdefs.ErrInvalidArgument)
	}
	if cfg.NetworkName == "" {
		cfg.NetworkName = DefaultNetworkName
	}
	if e := utils.ValidateNetworkName(cfg.NetworkName); e != nil {
		return cfg, fmt.Errorf("network: network name %q: %v: %w", cfg.NetworkName, e, errdefs.ErrInvalidArgument)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

func (cfg Config) netnsDir() string { return filepath.Join(cfg.StateDir, "netns") }
func (cfg Config) cacheDir() string { return filepath.Join(cfg.StateDir, "cache") }
func (cfg Config) ipamDir() string  { return filepath.Join(cfg.StateDir, "ipam") }

// netnsPath is where the namespace of group id is mounted.
func (cfg Config) netnsPath(id string) string { return filepath.Join(cfg.netnsDir(), id) }

// conflist renders the CNI network configuration list: the bridge plugin
// (with host-local), and portmap if withPorts.
//
// The loopback interface is brought up by Setup with netlink, not by a
// plugin. Two per-bridge ACCEPT rules in FORWARD (forward.go) let the
// groups' traffic pass even when the host's FORWARD policy is DROP
// (br_netfilter sends bridged frames through iptables); the nftables guard
// filters it.
func (cfg Config) conflist(withPorts bool) ([]byte, error) {
	plugins := []any{
		map[string]any{
			"type":        "bridge",
			"bridge":      cfg.BridgeName,
			"isGateway":   true,
			"ipMasq":      false,
			"hairpinMode": true,
			"ipam": map[string]any{
				"type":    "host-local",
				"ranges":  [][]map[string]string{{{"subnet": cfg.Subnet}}},
				"dataDir": cfg.ipamDir(),
			},
		},
	}
	if withPorts {
		plugins = append(plugins, map[string]any{
			"type":         "portmap",
			"capabilities": map[string]bool{"portMappings": true},
			"snat":         true,
		})
	}
	list := map[string]any{"cniVersion": cniVersion, "name": cfg.NetworkName, "plugins": plugins}
	return json.MarshalIndent(list, "", "  ")
}

// parsedConflist is conflist, rendered and parsed by libcni.
func (cfg Config) parsedConflist(withPorts bool) ([]byte, *libcni.NetworkConfigList, error) {
	raw, err := cfg.conflist(withPorts)
	if err != nil {
		return nil, nil, fmt.Errorf("network: render conflist: %v: %w", err, errdefs.ErrUnavailable)
	}
	list, err := libcni.ConfListFromBytes(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("network: parse conflist: %v: %w", err, errdefs.ErrUnavailable)
	}
	return raw, list, nil
}

// New prepares StateDir and the network configuration, installs the
// nftables guard (idempotently; with the entries of attachments an earlier
// process made), and starts filling the pool (Config.PoolSize), adopting
// the entries an earlier process left. The bridge plugin creates the bridge
// on the first ADD. A bridge that carries another holder's veths is refused
// (checkBridgePorts).
func New(cfg Config) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.StateDir, cfg.netnsDir(), cfg.cacheDir(), cfg.ipamDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("network: create state dir: %v: %w", err, errdefs.ErrUnavailable)
		}
	}
	if err := cfg.checkBridgePorts(); err != nil {
		return nil, err
	}
	raw, list, err := cfg.parsedConflist(true)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(cfg.StateDir, cfg.NetworkName+".conflist"), raw); err != nil {
		return nil, fmt.Errorf("network: write conflist: %v: %w", err, errdefs.ErrUnavailable)
	}
	_, bridgeList, err := cfg.parsedConflist(false)
	if err != nil {
		return nil, err
	}
	// An explicit Exec: libcni creates its default lazily, which races
	// when Setups run concurrently.
	exec := &invoke.DefaultExec{
		RawExec:       &invoke.RawExec{Stderr: logWriter{cfg.Logger}},
		PluginDecoder: version.PluginDecoder{},
	}
	m := &Manager{
		cfg:        cfg,
		log:        cfg.Logger,
		exec:       exec,
		cni:        libcni.NewCNIConfigWithCacheDir(cfg.PluginDirs, cfg.cacheDir(), exec),
		list:       list,
		bridgeList: bridgeList,
		busy:       map[string]bool{},
		tenantRefs: map[string]int{},
		ports:      map[portKey]string{},
	}
	entries, err := m.loadCache()
	if err != nil {
		return nil, err
	}
	if err := m.installGuard(context.Background(), entries); err != nil {
		return nil, err
	}
	if err := m.installForward(context.Background()); err != nil {
		return nil, err
	}
	if err := m.startPool(context.Background()); err != nil {
		return nil, err
	}
	return m, nil
}

// Config returns the configuration in use, with defaults filled in.
func (m *Manager) Config() Config { return m.cfg }

// loadCache records the ports published by attachments an earlier process
// made, and returns their guard entries.
func (m *Manager) loadCache() ([]guardEntry, error) {
	ids, err := m.attachedIDs()
	if err != nil {
		return nil, err
	}
	var entries []guardEntry
	for _, id := range ids {
		b, bound := m.cfg.readBinding(id)
		cid := id
		if bound {
			cid = b.Pool
		}
		conf := m.runtimeConf(cid, Request{})
		_, rt, err := m.cni.GetNetworkListCachedConfig(m.list, conf)
		if err != nil || rt == nil {
			m.log.Warn("network: unreadable cache entry", "id", id, "err", err)
			continue
		}
		for _, p := range portsFromCapabilities(rt.CapabilityArgs) {
			m.ports[portKey{p.Protocol, p.Port}] = id
		}
		res, err := m.cni.GetNetworkListCachedResult(m.list, conf)
		if err != nil || res == nil {
			m.log.Warn("network: unreadable cached result", "id", id, "err", err)
			continue
		}
		tenant, _ := rt.CapabilityArgs[tenantCapability].(string)
		if bound {
			tenant = b.Tenant
		}
		e, err := guardFromResult(id, m.cfg.BridgeName, tenant, res)
		if err != nil {
			m.log.Warn("network: cannot guard cached attachment", "id", id, "err", err)
			continue
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// attachedIDs lists the groups attached: those with a libcni cache entry
// under their own id, and those bound to a pool entry.
func (m *Manager) attachedIDs() ([]string, error) {
	cached, err := m.cachedIDs()
	if err != nil {
		return nil, err
	}
	byPool, err := m.cfg.bindings()
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, cid := range cached {
		if !isPoolID(cid) {
			ids = append(ids, cid)
		}
	}
	for _, id := range byPool {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// cachedIDs lists the CNI container ids (groups' and pool entries') that
// have a libcni cache entry on this network.
func (cfg Config) cachedIDs() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(cfg.cacheDir(), "results"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("network: read cni cache: %v: %w", err, errdefs.ErrUnavailable)
	}
	prefix, suffix := cfg.NetworkName+"-", "-"+IfName
	var ids []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, prefix) && strings.HasSuffix(n, suffix) && len(n) > len(prefix)+len(suffix) {
			ids = append(ids, n[len(prefix):len(n)-len(suffix)])
		}
	}
	return ids, nil
}

func (m *Manager) cachedIDs() ([]string, error) { return m.cfg.cachedIDs() }

// runtimeConf builds the libcni runtime config for id.
func (m *Manager) runtimeConf(id string, req Request) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: id,
		NetNS:       m.cfg.netnsPath(id),
		IfName:      IfName,
	}
	if req.Tenant != "" {
		rt.CapabilityArgs = map[string]any{tenantCapability: req.Tenant}
	}
	if ports := req.Ports; len(ports) > 0 {
		maps := make([]portMapping, 0, len(ports))
		for _, p := range ports {
			maps = append(maps, portMapping{
				HostPort:      int(p.Port),
				ContainerPort: int(p.Port),
				Protocol:      strings.ToLower(p.Protocol),
				HostIP:        m.cfg.PublicAddress,
			})
		}
		if rt.CapabilityArgs == nil {
			rt.CapabilityArgs = map[string]any{}
		}
		rt.CapabilityArgs["portMappings"] = maps
	}
	return rt
}

// portsFromCapabilities recovers published ports from cached capability args.
func portsFromCapabilities(caps map[string]any) []api.Port {
	raw, ok := caps["portMappings"]
	if !ok {
		return nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil
	}
	var maps []portMapping
	if json.Unmarshal(b, &maps) != nil {
		return nil
	}
	ports := make([]api.Port, 0, len(maps))
	for _, pm := range maps {
		ports = append(ports, api.Port{Protocol: strings.ToUpper(pm.Protocol), Port: int32(pm.ContainerPort)})
	}
	return ports
}

// normalizePorts validates ports and spells protocols as api.ProtocolTCP/UDP
// (empty means TCP). Duplicates are an error.
func normalizePorts(ports []api.Port) ([]api.Port, error) {
	out := make([]api.Port, 0, len(ports))
	seen := map[portKey]bool{}
	for _, p := range ports {
		proto := strings.ToUpper(p.Protocol)
		if proto == "" {
			proto = api.ProtocolTCP
		}
		if proto != api.ProtocolTCP && proto != api.ProtocolUDP {
			return nil, fmt.Errorf("network: port %d: protocol %q: %w", p.Port, p.Protocol, errdefs.ErrInvalidArgument)
		}
		if p.Port < 1 || p.Port > 65535 {
			return nil, fmt.Errorf("network: port %d out of range: %w", p.Port, errdefs.ErrInvalidArgument)
		}
		k := portKey{proto, p.Port}
		if seen[k] {
			return nil, fmt.Errorf("network: port %s/%d listed twice: %w", proto, p.Port, errdefs.ErrInvalidArgument)
		}
		seen[k] = true
		out = append(out, api.Port{Protocol: proto, Port: p.Port})
	}
	return out, nil
}

func validateID(id string) error {
	if e := utils.ValidateContainerID(id); e != nil {
		return fmt.Errorf("network: group id %q: %v: %w", id, e.Msg, errdefs.ErrInvalidArgument)
	}
	if isPoolID(id) {
		return fmt.Errorf("network: group id %q: the prefix %q is the pool's: %w", id, poolPrefix, errdefs.ErrInvalidArgument)
	}
	return nil
}

// claim marks id busy and reserves its ports; it returns the ports it newly
// reserved, for unclaim.
func (m *Manager) claim(id string, ports []api.Port) ([]portKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.busy[id] {
		return nil, fmt.Errorf("network: group %q: another operation is in progress: %w", id, errdefs.ErrConflict)
	}
	for _, p := range ports {
		if owner, ok := m.ports[portKey{p.Protocol, p.Port}]; ok && owner != id {
			// The owner may be another tenant's group: not named.
			return nil, fmt.Errorf("network: port %s/%d is already published by another container group: %w", p.Protocol, p.Port, errdefs.ErrConflict)
		}
	}
	m.busy[id] = true
	var added []portKey
	for _, p := range ports {
		k := portKey{p.Protocol, p.Port}
		if _, ok := m.ports[k]; !ok {
			m.ports[k] = id
			added = append(added, k)
		}
	}
	return added, nil
}

// unclaim ends the operation on id and frees the given port reservations.
func (m *Manager) unclaim(id string, drop []portKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.busy, id)
	for _, k := range drop {
		if m.ports[k] == id {
			delete(m.ports, k)
		}
	}
}

// portsOf lists the reservations of id.
func (m *Manager) portsOf(id string) []portKey {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []portKey
	for k, owner := range m.ports {
		if owner == id {
			keys = append(keys, k)
		}
	}
	return keys
}

// Setup creates the namespace of group id, attaches it to the bridge behind
// the guard and publishes ports on PublicAddress. A group without ports
// takes a prepared attachment from the pool when one is ready. Ports
// CheckPorts refuses are refused with its errors. On failure nothing it
// made is left.
func (m *Manager) Setup(ctx context.Context, id string, req Request) (_ *Attachment, retErr error) {
	if err := validateID(id); err != nil {
		return nil, err
	}
	ports, err := normalizePorts(req.Ports)
	if err != nil {
		return nil, err
	}
	req.Ports = ports
	if err := m.CheckPorts(ports); err != nil {
		return nil, err
	}
	added, err := m.claim(id, ports)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr == nil {
			added = nil
		}
		m.unclaim(id, added)
	}()

	nsPath := m.cfg.netnsPath(id)
	if _, bound := m.cfg.readBinding(id); bound {
		return nil, fmt.Errorf("network: group %q is already attached: %w", id, errdefs.ErrAlreadyExists)
	}
	if len(ports) == 0 && m.pool != nil {
		if _, err := os.Lstat(nsPath); err == nil {
			return nil, fmt.Errorf("network: group %q is already attached: %w", id, errdefs.ErrAlreadyExists)
		}
		if pid := m.pool.take(); pid != "" {
			return m.setupPooled(ctx, id, pid, req)
		}
	}
	list := m.bridgeList
	if len(ports) > 0 {
		list = m.list
	}
	log := m.log.With("id", id)
	_, err = m.createNamespaces(id)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("network: group %q is already attached: %w", id, errdefs.ErrAlreadyExists)
		}
		return nil, fmt.Errorf("network: create netns for %q: %v: %w", id, err, errdefs.ErrUnavailable)
	}
	defer func() {
		if retErr != nil {
			if err := m.removeNamespaces(id); err != nil {
				log.Warn("network: rollback: remove netns", "err", err)
			}
		}
	}()
	if err := loopbackUp(nsPath); err != nil {
		return nil, fmt.Errorf("network: bring up lo for %q: %v: %w", id, err, errdefs.ErrUnavailable)
	}

	rt := m.runtimeConf(id, req)
	// Until one ADD has succeeded, the plugins' shared chains may not exist
	// yet, and portmap creating them from two ADDs at once fails ("chain
	// exists"): the first ADDs take the chain lock exclusively.
	unlock, err := lockChains(ctx, len(ports) > 0 && !m.chainsMade.Load())
	if err != nil {
		return nil, err
	}
	defer unlock()
	log.Debug("network: cni add", "netns", nsPath, "ports", ports)
	res, err := m.cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		// A plugin failing halfway leaves the earlier ones' work behind,
		// which DEL (idempotent in every plugin we use) undoes.
		if derr := m.delUncached(context.WithoutCancel(ctx), list, rt); derr != nil {
			log.Warn("network: rollback: cni del", "err", derr)
		}
		return nil, fmt.Errorf("network: cni add for %q: %v: %w", id, err, classify(ctx, err))
	}
	if len(ports) > 0 { // portmap makes its chains only for mappings
		m.chainsMade.Store(true)
	}
	defer func() {
		if retErr != nil {
			if derr := m.cni.DelNetworkList(context.WithoutCancel(ctx), list, rt); derr != nil {
				log.Warn("network: rollback: cni del", "err", derr)
			}
		}
	}()
	return m.finishSetup(ctx, id, req, res, ports)
}

// finishSetup reads group id's attachment from its ADD's result and adds
// the guard's entry for it: the last step of Setup, pooled or not.
func (m *Manager) finishSetup(ctx context.Context, id string, req Request, res types.Result, ports []api.Port) (*Attachment, error) {
	nsPath := m.cfg.netnsPath(id)
	att, err := attachmentFromResult(id, nsPath, res, ports)
	if err != nil {
		return nil, err
	}
	entry, err := guardFromResult(id, m.cfg.BridgeName, req.Tenant, res)
	if err != nil {
		return nil, err
	}
	if err := m.addGuard(ctx, entry); err != nil {
		return nil, err
	}
	if m.cfg.IDMap.Enabled() {
		att.UserNSPath, att.IDMap = m.cfg.usernsPath(id), m.cfg.IDMap
	}
	m.log.Debug("network: attached", "id", id, "ip", att.IP, "gateway", att.Gateway)
	return att, nil
}

// classify picks the error class of a failed plugin call.
func classify(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var te *types.Error
	if errors.As(err, &te) && te.Code == types.ErrInvalidNetworkConfig {
		return errdefs.ErrInvalidArgument
	}
	return errdefs.ErrUnavailable
}

// attachmentFromResult reads the namespace interface's address from a CNI result.
func attachmentFromResult(id, nsPath string, res types.Result, ports []api.Port) (*Attachment, error) {
	r, err := current.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("network: cni result for %q: %v: %w", id, err, errdefs.ErrUnavailable)
	}
	for _, ipc := range r.IPs {
		if ipc.Address.IP.To4() == nil {
			continue
		}
		if ipc.Interface != nil && *ipc.Interface >= 0 && *ipc.Interface < len(r.Interfaces) &&
			r.Interfaces[*ipc.Interface].Sandbox == "" {
			continue // an address on a host-side interface
		}
		return &Attachment{
			ID:        id,
			NetNSPath: nsPath,
			IP:        ipc.Address.IP.To4(),
			Gateway:   ipc.Gateway.To4(),
			Ports:     ports,
		}, nil
	}
	return nil, fmt.Errorf("network: cni result for %q has no IPv4 address: %w", id, errdefs.ErrUnavailable)
}

// Teardown detaches group id: CNI DEL with the configuration and port
// mappings cached at its ADD (so it works after a restart), then the guard
// entry, the namespaces and the pool binding are removed. Tearing down an
// unknown or already torn down id succeeds.
func (m *Manager) Teardown(ctx context.Context, id string) (retErr error) {
	if err := validateID(id); err != nil {
		return err
	}
	if _, err := m.claim(id, nil); err != nil {
		return err
	}
	defer func() {
		var drop []portKey
		if retErr == nil {
			drop = m.portsOf(id)
		}
		m.unclaim(id, drop)
	}()
	return m.teardown(ctx, id)
}

// teardown is Teardown with id's claim held.
func (m *Manager) teardown(ctx context.Context, id string) error {
	cid := m.cniID(id)
	if err := m.release(ctx, cid, id); err != nil {
		return err
	}
	if cid != id {
		if err := os.Remove(m.cfg.bindingPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("network: remove binding of %q: %v: %w", id, err, errdefs.ErrUnavailable)
		}
	}
	return nil
}

// release undoes the attachment made under CNI container id cid for group
// id (the same id unless the group took a pool entry, or a pool entry
// itself): CNI DEL, the guard's entry, and the namespaces at both ids' paths.
func (m *Manager) release(ctx context.Context, cid, id string) error {
	nsPath := m.cfg.netnsPath(id)
	if !isNetNS(nsPath) {
		nsPath = m.cfg.netnsPath(cid)
	}
	if !isNetNS(nsPath) {
		// Missing, or left unmounted by a reboot: plugins skip the
		// in-namespace work, and the veth died with the namespace.
		nsPath = ""
	}
	rt := m.runtimeConf(cid, Request{})
	var list *libcni.NetworkConfigList
	cachedConf, cachedRT, err := m.cni.GetNetworkListCachedConfig(m.list, rt)
	if err != nil {
		m.log.Warn("network: unreadable cache entry; deleting with current config", "id", cid, "err", err)
	} else if cachedConf != nil {
		if l, err := libcni.ConfListFromBytes(cachedConf); err == nil {
			list, rt = l, cachedRT
		} else {
			m.log.Warn("network: unparsable cached config; deleting with current config", "id", cid, "err", err)
		}
	}
	rt.NetNS = nsPath
	// The guard's entry, known from the cached result before DEL drops it,
	// is removed element by element; without it, by listing the guard.
	var entry *guardEntry
	var leased []net.IP // the addresses the cached result names: their leases, without a scan
	if list != nil {
		if res, err := m.cni.GetNetworkListCachedResult(list, rt); err == nil && res != nil {
			leased = resultIPs(res)
			if !isPoolID(id) {
				tenant, _ := rt.CapabilityArgs[tenantCapability].(string)
				if b, ok := m.cfg.readBinding(id); ok {
					tenant = b.Tenant
				}
				if e, err := guardFromResult(id, m.cfg.BridgeName, tenant, res); err == nil {
					entry = &e
				}
			}
		}
	}
	unlock, err := lockChains(ctx, false)
	if err != nil {
		return err
	}
	switch {
	case list != nil && bridgeOnly(list):
		m.log.Debug("network: release in process", "id", cid, "netns", rt.NetNS)
		err = m.releaseBridge(cid, rt.NetNS, leased)
	case list != nil:
		m.log.Debug("network: cni del", "id", cid, "netns", rt.NetNS)
		err = m.cni.DelNetworkList(ctx, list, rt)
	default:
		// DEL runs even without a cache entry: a process that died during
		// ADD leaves a lease and rules behind but no cache entry.
		m.log.Debug("network: cni del without cache", "id", cid, "netns", rt.NetNS)
		err = m.delUncached(ctx, m.list, rt)
		if err == nil {
			_ = os.Remove(filepath.Join(m.cfg.cacheDir(), "results", m.cfg.NetworkName+"-"+cid+"-"+IfName))
		}
	}
	unlock()
	if err != nil {
		err = fmt.Errorf("network: cni del for %q: %v: %w", id, err, classify(ctx, err))
		if isPoolID(id) {
			// A pool entry runs nothing: its namespaces go whatever DEL
			// says (a lease DEL left is found by the next start's orphan
			// scan), so no mount outlives a stopped Manager.
			err = errors.Join(err, m.removeNamespaces(id))
		}
		return err
	}
	if !isPoolID(id) {
		if entry == nil || m.removeGuardEntry(ctx, *entry) != nil {
			if err := m.removeGuard(ctx, id); err != nil {
				return err
			}
		}
	}
	if err := m.removeNamespaces(id); err != nil {
		return fmt.Errorf("network: remove netns of %q: %v: %w", id, err, errdefs.ErrUnavailable)
	}
	if cid != id {
		if err := m.removeNamespaces(cid); err != nil {
			return fmt.Errorf("network: remove netns of %q: %v: %w", id, err, errdefs.ErrUnavailable)
		}
	}
	return nil
}

// Attachment returns the live attachment of group id, read from the CNI
// cache, so it works for attachments made by an earlier process. It fails
// with errdefs.ErrNotFound when id is not attached.
func (m *Manager) Attachment(id string) (*Attachment, error) {
	if err := validateID(id); err != nil {
		return nil, err
	}
	nsPath := m.cfg.netnsPath(id)
	rt := m.runtimeConf(m.cniID(id), Request{})
	res, err := m.cni.GetNetworkListCachedResult(m.list, rt)
	if err != nil {
		return nil, fmt.Errorf("network: cached result of %q: %v: %w", id, err, errdefs.ErrUnavailable)
	}
	if res == nil {
		return nil, fmt.Errorf("network: group %q is not attached: %w", id, errdefs.ErrNotFound)
	}
	if !isNetNS(nsPath) {
		return nil, fmt.Errorf("network: group %q has no mounted netns at %s: %w", id, nsPath, errdefs.ErrNotFound)
	}
	_, cachedRT, err := m.cni.GetNetworkListCachedConfig(m.list, rt)
	if err != nil || cachedRT == nil {
		return nil, fmt.Errorf("network: cached config of %q: %v: %w", id, err, errdefs.ErrUnavailable)
	}
	att, err := attachmentFromResult(id, nsPath, res, portsFromCapabilities(cachedRT.CapabilityArgs))
	if err == nil && isNetNS(m.cfg.usernsPath(id)) {
		att.UserNSPath, att.IDMap = m.cfg.usernsPath(id), m.cfg.IDMap
	}
	return att, err
}

// Attachments lists the ids that are attached (have a cache entry or a
// pool entry).
func (m *Manager) Attachments() ([]string, error) { return m.attachedIDs() }

// writeFileAtomic writes data to path, mode 0600, atomically and durably.
func writeFileAtomic(path string, data []byte) error {
	return atomicfile.WriteFile(path, data, 0o600)
}

// logWriter sends plugin stderr to the logger at debug level.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Debug("network: plugin stderr", "text", strings.TrimSpace(string(p)))
	return len(p), nil
}
