// Package runtime runs container groups on this host as real OCI containers.
//
// A Runtime owns a root directory. Each group lives in root/groups/<id>:
//
//	group.json    the spec and the desired state (running or stopped)
//	status.json   the observed state (GroupStatus), rewritten on every change
//	hosts, resolv.conf, hostname   files bind-mounted into every container
//	containers/<name>/             (the OCI bundle is on a tmpfs: see rundir.go)
//	containers/<name>/rootfs       overlay upper, work and merged dirs
//	containers/<name>/run.json     the current run: shim PID, container PID
//	containers/<name>/exit.json    written by the shim when the run ends
//	logs/<name>/current.log        the run's log (CRI format), previous.log the last run's
//
// Each container run is kept by a shim process (package shim), so the
// runtime's own process can be killed and started again: New re-attaches to
// live runs and records the exits that happened while it was away.
package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"

	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/atomicfile"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/image"
	"github.com/skiff-sh/skiff/internal/runtime/network"
	"github.com/skiff-sh/skiff/internal/runtime/volume"
	"github.com/skiff-sh/skiff/internal/seal"
)

// Config configures a Runtime.
type Config struct {
	// Root holds all of the runtime's state.
	Root string
	// Sealer seals the secrets of the group records (required).
	Sealer *seal.Sealer
	// OCIRuntime is the runc or crun binary (default "runc").
	OCIRuntime string
	// ShimCommand starts a shim; the shim's flags are appended. Default: this
	// executable with the argument "shim".
	ShimCommand []string
	Images      *image.Store
	Network     *network.Manager
	Volumes     *volume.Manager
	Logger      *slog.Logger
	// Backoff of restarted containers (default DefaultBackoff).
	Backoff Backoff
	// LogMaxBytes caps one run's log (default 10 MiB).
	LogMaxBytes int64
	// StopGrace is the time between SIGTERM and SIGKILL (default 10 s).
	StopGrace time.Duration
	// PidsLimit is each container's default pids limit (default 4096).
	PidsLimit int64
	// GroupPidsLimit caps the processes of all of a group's containers
	// together, in the group's cgroup (default DefaultGroupPidsLimit).
	GroupPidsLimit int64
	// CgroupRoot is the cgroup the groups' cgroups are made under
	// (default "/skiff"). Hosts sharing a machine (a cluster's agents in
	// tests) need roots of their own: removing a group kills everything
	// in its cgroup.
	CgroupRoot string
	// PullAttempts is how often an unreachable registry is tried (default 3).
	PullAttempts int
	// Security is what the operator allows containers beyond the defaults;
	// Create refuses a group that asks for more, and so does every
	// container start (oci.Spec), for groups recorded before a change.
	Security api.SecurityPolicy
	// OnChange, if set, is called (without locks held) after a group's
	// observed state changes.
	OnChange func(id string)
}

// Runtime runs container groups.
type Runtime struct {
	cfg  Config
	log  *slog.Logger
	oci  *runc.Runc
	lock *os.File

	// ctx ends the runtime's supervision (Close); it never stops containers.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	groups map[string]*group
}

// GroupSpec is what Create runs.
type GroupSpec struct {
	// Name is the group's name; it is the containers' hostname.
	Name       string                       `json:"name"`
	Properties api.ContainerGroupProperties `json:"properties"`
	// Tenant isolates the group on the network: groups of different
	// tenants cannot reach each other's addresses (the controller uses the
	// subscription). Empty is one tenant too.
	Tenant string `json:"tenant,omitempty"`
}

var idPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9_.-]{0,62}[a-z0-9])?$`)

// ShimBinary is the name of the small shim binary (cmd/skiff-shim) that
// is looked for next to the skiff executable.
const ShimBinary = "skiff-shim"

// DefaultShimCommand is how a runtime in executable exe starts shims:
// ShimBinary next to exe when it is there (one runs per container, and it
// carries only the shim's packages), else `exe shim`, the same code
// inside the whole binary. Containers started by either are adopted
// alike after a restart or an upgrade: a shim is found by its pid and
// its container's id, not its binary.
func DefaultShimCommand(exe string) []string {
	small := filepath.Join(filepath.Dir(exe), ShimBinary)
	if st, err := os.Stat(small); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return []string{small}
	}
	return []string{exe, "shim"}
}

// New opens the runtime at cfg.Root and re-attaches to the groups found there.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if cfg.Root == "" || cfg.Images == nil || cfg.Network == nil || cfg.Volumes == nil || cfg.Sealer == nil {
		return nil, fmt.Errorf("runtime: Root, Images, Network, Volumes and Sealer are required: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.OCIRuntime == "" {
		cfg.OCIRuntime = "runc"
	}
	if len(cfg.ShimCommand) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cfg.ShimCommand = DefaultShimCommand(exe)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Backoff == (Backoff{}) {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.StopGrace == 0 {
		cfg.StopGrace = 10 * time.Second
	}
	if cfg.PidsLimit == 0 {
		cfg.PidsLimit = 4096
	}
	if cfg.GroupPidsLimit == 0 {
		cfg.GroupPidsLimit = DefaultGroupPidsLimit
	}
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = "/skiff"
	}
	if cfg.GroupPidsLimit < 0 {
		return nil, fmt.Errorf("runtime: group pids limit %d: must be positive: %w", cfg.GroupPidsLimit, errdefs.ErrInvalidArgument)
	}
	if cfg.PullAttempts == 0 {
		cfg.PullAttempts = 3
	}
	if err := os.MkdirAll(filepath.Join(cfg.Root, "groups"), 0o700); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(cfg.Root, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("runtime root %s is in use by another process: %w", cfg.Root, errdefs.ErrConflict)
	}
	if err := prepareRunDir(cfg.Root, cfg.Logger); err != nil {
		lock.Close()
		return nil, err
	}
	if err := moveLegacyOCIState(cfg.Root, cfg.Logger); err != nil {
		lock.Close()
		return nil, err
	}
	// go-runc's Exec writes the process spec (the environment, secure
	// values included) to a temporary file in $XDG_RUNTIME_DIR, or in /tmp
	// without one: keep it on the tmpfs.
	if err := os.MkdirAll(filepath.Join(runBase, "tmp"), 0o700); err != nil {
		lock.Close()
		return nil, err
	}
	os.Setenv("XDG_RUNTIME_DIR", filepath.Join(runBase, "tmp"))
	r := &Runtime{
		cfg:    cfg,
		log:    cfg.Logger,
		oci:    &runc.Runc{Command: cfg.OCIRuntime, Root: OCIRoot(cfg.Root)},
		lock:   lock,
		groups: map[string]*group{},
	}
	r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if err := r.recover(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Close stops supervising. Containers keep running; a new Runtime on the same
// root picks them up.
func (r *Runtime) Close() error {
	r.cancel()
	r.wg.Wait()
	r.mu.Lock()
	if len(r.groups) == 0 {
		removeRunDir(r.cfg.Root)
	}
	r.mu.Unlock()
	return r.lock.Close()
}

func (r *Runtime) groupDir(id string) string { return filepath.Join(r.cfg.Root, "groups", id) }

func (r *Runtime) get(id string) (*group, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g, ok := r.groups[id]
	if !ok {
		return nil, fmt.Errorf("container group %q: %w", id, errdefs.ErrNotFound)
	}
	return g, nil
}

// Create persists the group and starts it in the background. It returns once
// the group is recorded; Status shows the progress.
func (r *Runtime) Create(ctx context.Context, id string, spec GroupSpec) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("group id %q: must be 1-64 lowercase letters, digits, '-', '_' or '.': %w", id, errdefs.ErrInvalidArgument)
	}
	if err := validate(spec); err != nil {
		return err
	}
	if err := api.CheckSecurityPolicy(spec.Name, &spec.Properties, r.cfg.Security); err != nil {
		return err
	}
	r.mu.Lock()
	if _, ok := r.groups[id]; ok {
		r.mu.Unlock()
		return fmt.Errorf("container group %q: %w", id, errdefs.ErrAlreadyExists)
	}
	g := newGroup(r, id, spec)
	r.groups[id] = g
	r.mu.Unlock()
	if err := os.MkdirAll(g.dir, 0o700); err != nil {
		r.forget(id)
		return err
	}
	if err := g.saveSpec(); err != nil {
		r.forget(id)
		os.RemoveAll(g.dir)
		return err
	}
	g.mu.Lock()
	g.persistLocked()
	g.mu.Unlock()
	g.launch()
	return nil
}

func (r *Runtime) forget(id string) {
	r.mu.Lock()
	delete(r.groups, id)
	r.mu.Unlock()
}

// Status returns a copy of a group's observed state.
func (r *Runtime) Status(id string) (*GroupStatus, error) {
	g, err := r.get(id)
	if err != nil {
		return nil, err
	}
	return g.status(), nil
}

// Spec returns the spec a group was created with.
func (r *Runtime) Spec(id string) (*GroupSpec, error) {
	g, err := r.get(id)
	if err != nil {
		return nil, err
	}
	g.mu.Lock() // UpdateConfigMaps changes the containers
	s := g.spec
	g.mu.Unlock()
	return &s, nil
}

// List returns the ids of all groups, sorted.
func (r *Runtime) List() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(r.groups))
	for id := range r.groups {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Stop stops a group's containers (SIGTERM, then SIGKILL after the grace
// period) and frees its network and volumes. The group stays, Stopped.
func (r *Runtime) Stop(ctx context.Context, id string) error {
	g, err := r.get(id)
	if err != nil {
		return err
	}
	return g.stop(ctx, r.cfg.StopGrace, false)
}

// Start starts a stopped or finished group again.
func (r *Runtime) Start(ctx context.Context, id string) error {
	g, err := r.get(id)
	if err != nil {
		return err
	}
	return g.start(ctx)
}

// Restart restarts all containers of a group in place: the group keeps its
// IP address and volumes.
func (r *Runtime) Restart(ctx context.Context, id string) error {
	g, err := r.get(id)
	if err != nil {
		return err
	}
	if err := g.stop(ctx, r.cfg.StopGrace, true); err != nil {
		return err
	}
	return g.start(ctx)
}

// Delete stops a group and removes every trace of it. Its containers get
// grace between SIGTERM and SIGKILL; a negative grace means the host's
// StopGrace.
func (r *Runtime) Delete(ctx context.Context, id string, grace time.Duration) error {
	g, err := r.get(id)
	if err != nil {
		return err
	}
	if grace < 0 {
		grace = r.cfg.StopGrace
	}
	if err := g.stop(ctx, grace, false); err != nil {
		return err
	}
	g.op.Lock()
	defer g.op.Unlock()
	for _, c := range g.ctrs {
		if err := c.removeBundle(); err != nil {
			return fmt.Errorf("remove group %q: %w", id, err)
		}
	}
	if err := os.RemoveAll(g.dir); err != nil {
		return fmt.Errorf("remove group %q: %w", id, err)
	}
	r.forget(id)
	return nil
}

func (r *Runtime) notify(id string) {
	if r.cfg.OnChange != nil {
		r.cfg.OnChange(id)
	}
}

// recover loads every group under root and resumes its supervision.
func (r *Runtime) recover() error {
	entries, err := os.ReadDir(filepath.Join(r.cfg.Root, "groups"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		g, err := loadGroup(r, e.Name())
		if errors.Is(err, seal.ErrWrongKey) {
			return fmt.Errorf("group %s: %w", e.Name(), err) // never remove what a wrong key cannot read
		}
		if err != nil {
			// A group whose spec was never fully written is a failed create.
			r.log.Warn("removing unreadable group", "id", e.Name(), "err", err)
			os.RemoveAll(filepath.Join(r.cfg.Root, "groups", e.Name()))
			continue
		}
		r.groups[g.id] = g
		g.killStaleExecs()
		if g.desired == desiredRunning {
			g.launch()
		}
	}
	return nil
}

// writeJSON writes v to path, mode 0600, atomically and durably (fsync and
// rename).
func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o600)
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// ReadStatus reads a group's last persisted status from a runtime root
// without opening the runtime (for tools and tests watching from outside).
func ReadStatus(root, id string) (*GroupStatus, error) {
	var s GroupStatus
	if err := readJSON(filepath.Join(root, "groups", id, "status.json"), &s); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("container group %q: %w", id, errdefs.ErrNotFound)
		}
		return nil, err
	}
	return &s, nil
}
