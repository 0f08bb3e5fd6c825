package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/internal/atomicfile"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// The pool of prepared attachments.
//
// CNI ADD (the bridge plugin and host-local under it: two execs, a veth and
// a lease) and, with an ID map, the user namespace's holder process are most
// of a group's network setup, and none of it depends on the group. So a
// Manager with Config.PoolSize > 0 keeps that many attachments made ahead,
// each under an id of its own (poolPrefix + hex), and Setup of a group that
// publishes no ports takes one: what is left per group is a file write, two
// bind mounts and the guard's entry.
//
//		            prepare                 take (Setup)               Teardown
//		(nothing) ──────────▶ ready(P) ─────────────────▶ bound(id→P) ──────────▶ (nothing)
//		    ▲                    │ Close, Destroy, or New finding it broken
//		    └────────────────────┘ drop
//
//	  - prepare is the fill goroutine's: namespaces under P's paths, lo up,
//	    CNI ADD of the bridge-only list under container id P. It refills to
//	    PoolSize after every take, in the background.
//	  - take is Setup's: P leaves the ready list, and the binding file
//	    bound/<id> ({"pool": P, "tenant": …}) is written atomically. From then
//	    on P is the group's, whatever happens next: its namespaces are
//	    bind-mounted at the group's own paths (netns/<id>, userns/<id>) and
//	    P's paths removed (moveNamespaces, idempotent), and the guard gets
//	    the group's entry. The CNI container id stays P: host-local's lease
//	    and libcni's cache are keyed by it.
//	  - Teardown(id) runs CNI DEL under P, removes the guard entry, the
//	    namespaces at both paths, and the binding last, so an interrupted
//	    teardown is found again.
//	  - New adopts the ready entries an earlier process left (namespace
//	    mounted, cache entry present), drops the broken ones, and finishes
//	    the moves of interrupted takes. Close and Destroy stop the refill and
//	    drop the ready entries, so a stopped Manager holds only its groups.
const poolPrefix = "pool-"

func isPoolID(id string) bool { return strings.HasPrefix(id, poolPrefix) }

func newPoolID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return poolPrefix + hex.EncodeToString(b)
}

// binding records that group id took pool entry Pool.
type binding struct {
	Pool   string `json:"pool"`
	Tenant string `json:"tenant,omitempty"`
}

func (cfg Config) boundDir() string { return filepath.Join(cfg.StateDir, "bound") }

func (cfg Config) bindingPath(id string) string { return filepath.Join(cfg.boundDir(), id) }

// readBinding returns group id's binding, if it took a pool entry.
func (cfg Config) readBinding(id string) (binding, bool) {
	var b binding
	raw, err := os.ReadFile(cfg.bindingPath(id))
	if err != nil || json.Unmarshal(raw, &b) != nil || !isPoolID(b.Pool) {
		return binding{}, false
	}
	return b, true
}

// bindings maps every bound pool entry to its group.
func (cfg Config) bindings() (map[string]string, error) {
	entries, err := os.ReadDir(cfg.boundDir())
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("network: read bindings: %v: %w", err, errdefs.ErrUnavailable)
	}
	byPool := make(map[string]string, len(entries))
	for _, e := range entries {
		if b, ok := cfg.readBinding(e.Name()); ok {
			byPool[b.Pool] = e.Name()
		}
	}
	return byPool, nil
}

// cniID is the CNI container id of group id's attachment: its pool entry's
// when it took one.
func (m *Manager) cniID(id string) string {
	if b, ok := m.cfg.readBinding(id); ok {
		return b.Pool
	}
	return id
}

// pool is the ready list and its fill goroutine.
type pool struct {
	size   int
	mu     sync.Mutex
	ready  []string
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func (p *pool) take() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ready) == 0 {
		return ""
	}
	pid := p.ready[0]
	p.ready = p.ready[1:]
	return pid
}

func (p *pool) missing() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.size - len(p.ready)
}

func (p *pool) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// PoolReady is the number of prepared attachments ready to be taken.
func (m *Manager) PoolReady() int {
	if m.pool == nil {
		return 0
	}
	m.pool.mu.Lock()
	defer m.pool.mu.Unlock()
	return len(m.pool.ready)
}

// startPool adopts what an earlier process left and starts the fill
// goroutine. Entries are dropped here only when broken or beyond the size.
func (m *Manager) startPool(ctx context.Context) error {
	byPool, err := m.cfg.bindings()
	if err != nil {
		return err
	}
	for pid, id := range byPool {
		if err := m.moveNamespaces(pid, id); err != nil {
			m.log.Warn("network: finish take of pool entry", "pool", pid, "id", id, "err", err)
		}
	}
	cached, err := m.cachedIDs()
	if err != nil {
		return err
	}
	var ready []string
	seen := map[string]bool{}
	for _, pid := range cached {
		if !isPoolID(pid) || byPool[pid] != "" {
			continue
		}
		seen[pid] = true
		ok := isNetNS(m.cfg.netnsPath(pid)) && (!m.cfg.IDMap.Enabled() || isNetNS(m.cfg.usernsPath(pid)))
		if ok && len(ready) < m.cfg.PoolSize {
			ready = append(ready, pid)
			continue
		}
		m.dropPooled(ctx, pid)
	}
	// Namespaces and leases of entries whose ADD never finished.
	for _, pid := range m.orphanPoolIDs(byPool, seen) {
		m.dropPooled(ctx, pid)
	}
	if m.cfg.PoolSize <= 0 {
		return nil
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.pool = &pool{size: m.cfg.PoolSize, ready: ready, wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go m.fill(fctx)
	return nil
}

// orphanPoolIDs lists pool ids that hold a namespace file or a lease but
// neither a binding nor a cache entry (in seen).
func (m *Manager) orphanPoolIDs(byPool map[string]string, seen map[string]bool) []string {
	var ids []string
	add := func(id string) {
		if isPoolID(id) && byPool[id] == "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, dir := range []string{m.cfg.netnsDir(), m.cfg.usernsDir()} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			add(e.Name())
		}
	}
	for _, owner := range leaseOwners(m.cfg) {
		add(owner)
	}
	return ids
}

// leaseOwners lists the container ids holding host-local leases.
func leaseOwners(cfg Config) []string {
	dir := filepath.Join(cfg.ipamDir(), cfg.NetworkName)
	entries, _ := os.ReadDir(dir)
	var owners []string
	for _, e := range entries {
		if net.ParseIP(e.Name()) != nil {
			owners = append(owners, leaseOwner(filepath.Join(dir, e.Name())))
		}
	}
	return owners
}

// leaseOwner is the container id in a host-local lease file, which holds
// "<container id>\r\n<ifname>"; "" if unreadable.
func leaseOwner(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	owner, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(owner)
}

// fill keeps the ready list at its size until ctx ends.
//
// It refills at the lowest CPU priority (nice 19): a refill starts as a
// group takes an entry, while that group's containers start, and on a
// host with few cores its two plugin execs would take the CPU the start
// needs. Its thread stays locked, so that its priority, which the plugins
// it forks inherit, is never the runtime's other goroutines'; the thread
// ends with the goroutine.
func (m *Manager) fill(ctx context.Context) {
	defer close(m.pool.done)
	goruntime.LockOSThread()
	if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19); err != nil {
		m.log.Debug("network: pool refill keeps its priority", "err", err)
	}
	for {
		for ctx.Err() == nil && m.pool.missing() > 0 {
			pid, err := m.prepare(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				m.log.Warn("network: prepare pool entry", "err", err)
				select {
				case <-time.After(time.Second):
				case <-ctx.Done():
					return
				}
				continue
			}
			m.pool.mu.Lock()
			m.pool.ready = append(m.pool.ready, pid)
			m.pool.mu.Unlock()
		}
		select {
		case <-m.pool.wake:
		case <-ctx.Done():
			return
		}
	}
}

// prepare makes one pool entry; on failure nothing of it is left.
func (m *Manager) prepare(ctx context.Context) (pid string, retErr error) {
	pid = newPoolID()
	nsPath := m.cfg.netnsPath(pid)
	if _, err := m.createNamespaces(pid); err != nil {
		return "", fmt.Errorf("network: create netns: %v: %w", err, errdefs.ErrUnavailable)
	}
	defer func() {
		if retErr != nil {
			m.dropPooled(context.WithoutCancel(ctx), pid)
		}
	}()
	if err := loopbackUp(nsPath); err != nil {
		return "", fmt.Errorf("network: bring up lo: %v: %w", err, errdefs.ErrUnavailable)
	}
	if err := ctx.Err(); err != nil {
		return "", err // closing: no ADD to undo
	}
	rt := &libcni.RuntimeConf{ContainerID: pid, NetNS: nsPath, IfName: IfName}
	if _, err := m.cni.AddNetworkList(ctx, m.bridgeList, rt); err != nil {
		return "", fmt.Errorf("network: cni add: %v: %w", err, classify(ctx, err))
	}
	return pid, nil
}

// dropPooled tears down an unbound pool entry, logging what fails.
func (m *Manager) dropPooled(ctx context.Context, pid string) {
	if err := m.release(ctx, pid, pid); err != nil {
		m.log.Warn("network: drop pool entry", "pool", pid, "err", err)
	}
}

// setupPooled gives group id the pool entry pid (Setup holds id's claim).
func (m *Manager) setupPooled(ctx context.Context, id, pid string, req Request) (_ *Attachment, retErr error) {
	defer m.pool.kick()
	raw, err := json.Marshal(binding{Pool: pid, Tenant: req.Tenant})
	if err != nil {
		m.dropPooled(ctx, pid)
		return nil, fmt.Errorf("network: binding of %q: %v: %w", id, err, errdefs.ErrUnavailable)
	}
	if err := os.MkdirAll(m.cfg.boundDir(), 0o700); err != nil {
		m.dropPooled(ctx, pid)
		return nil, fmt.Errorf("network: bindings dir: %v: %w", err, errdefs.ErrUnavailable)
	}
	if err := atomicfile.WriteFile(m.cfg.bindingPath(id), raw, 0o600); err != nil {
		m.dropPooled(ctx, pid)
		return nil, fmt.Errorf("network: bind pool entry to %q: %v: %w", id, err, errdefs.ErrUnavailable)
	}
	// From here the entry is id's: a failure tears it down as id's.
	defer func() {
		if retErr != nil {
			if err := m.teardown(context.WithoutCancel(ctx), id); err != nil {
				m.log.Warn("network: rollback: teardown", "id", id, "err", err)
			}
		}
	}()
	if err := m.moveNamespaces(pid, id); err != nil {
		return nil, fmt.Errorf("network: move netns of pool entry to %q: %v: %w", id, err, errdefs.ErrUnavailable)
	}
	res, err := m.cni.GetNetworkListCachedResult(m.bridgeList, &libcni.RuntimeConf{ContainerID: pid, IfName: IfName})
	if err != nil || res == nil {
		return nil, fmt.Errorf("network: cached result of pool entry %s: %v: %w", pid, err, errdefs.ErrUnavailable)
	}
	return m.finishSetup(ctx, id, req, res, nil)
}

// moveNamespaces bind-mounts pool entry pid's namespace files at group id's
// paths and removes pid's. It is idempotent, so New can finish a move a
// crash interrupted.
func (m *Manager) moveNamespaces(pid, id string) error {
	pairs := [][2]string{{m.cfg.netnsPath(pid), m.cfg.netnsPath(id)}}
	if m.cfg.IDMap.Enabled() {
		pairs = append(pairs, [2]string{m.cfg.usernsPath(pid), m.cfg.usernsPath(id)})
	}
	for _, p := range pairs {
		src, dst := p[0], p[1]
		if !isNetNS(src) {
			continue
		}
		if !isNetNS(dst) {
			_ = os.Remove(dst) // an empty file of an interrupted move
			f, err := os.OpenFile(dst, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
			if err != nil {
				return err
			}
			f.Close()
			if err := unix.Mount(src, dst, "none", unix.MS_BIND, ""); err != nil {
				_ = os.Remove(dst)
				return fmt.Errorf("bind mount %s on %s: %w", src, dst, err)
			}
		}
		if err := removeNetNS(src); err != nil {
			return err
		}
	}
	return nil
}

// closePool stops the refill and drops the ready entries.
func (m *Manager) closePool(ctx context.Context) {
	p := m.pool
	if p == nil {
		return
	}
	p.once.Do(func() {
		p.cancel()
		<-p.done
		p.mu.Lock()
		ready := p.ready
		p.ready = nil
		p.size = 0
		p.mu.Unlock()
		// And whatever else of the pool's is left unbound: an entry whose
		// prepare the cancel interrupted and whose drop failed.
		if byPool, err := m.cfg.bindings(); err == nil {
			seen := map[string]bool{}
			for _, pid := range ready {
				seen[pid] = true
			}
			ready = append(ready, m.orphanPoolIDs(byPool, seen)...)
		}
		var wg sync.WaitGroup
		for _, pid := range ready {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m.dropPooled(ctx, pid)
			}()
		}
		wg.Wait()
	})
}

// Close stops refilling the pool and tears down its ready entries. The
// groups' attachments stay. A closed Manager sets up groups without the
// pool.
func (m *Manager) Close() error {
	m.closePool(context.Background())
	return nil
}

// readyPoolEntries lists the pool entries of the network cfg describes that
// are ready (cached, unbound), with their host-side interface names (for
// CountLeaks, which leaves them out).
func readyPoolEntries(cfg Config) (map[string]bool, map[string]bool, error) {
	byPool, err := cfg.bindings()
	if err != nil {
		return nil, nil, err
	}
	_, list, err := cfg.parsedConflist(false)
	if err != nil {
		return nil, nil, err
	}
	cni := libcni.NewCNIConfigWithCacheDir(nil, cfg.cacheDir(), nil)
	ids, veths := map[string]bool{}, map[string]bool{}
	cached, err := cfg.cachedIDs()
	if err != nil {
		return nil, nil, err
	}
	for _, pid := range cached {
		if !isPoolID(pid) || byPool[pid] != "" {
			continue
		}
		ids[pid] = true
		res, err := cni.GetNetworkListCachedResult(list, &libcni.RuntimeConf{ContainerID: pid, IfName: IfName})
		if err != nil || res == nil {
			continue
		}
		for _, name := range hostInterfaces(res, cfg.BridgeName) {
			veths[name] = true
		}
	}
	return ids, veths, nil
}

// hostInterfaces names a CNI result's host-side interfaces but the bridge.
func hostInterfaces(res types.Result, bridge string) []string {
	r, err := current.NewResultFromResult(res)
	if err != nil {
		return nil
	}
	var names []string
	for _, i := range r.Interfaces {
		if i.Sandbox == "" && i.Name != bridge {
			names = append(names, i.Name)
		}
	}
	return names
}
