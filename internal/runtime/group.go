package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/lifecycle"
	"github.com/skiff-sh/skiff/internal/runtime/cgroup"
	"github.com/skiff-sh/skiff/internal/runtime/network"
	"github.com/skiff-sh/skiff/internal/runtime/volume"
)

// The group's states and the arrows between them are package lifecycle's
// (lifecycle.GroupTransition, drawn there beside the provisioning states
// they map onto); every change goes through transition, and the runtime is
// the one owner of these states.
func transition(from, to string) error {
	return lifecycle.GroupTransition(lifecycle.GroupState(from), lifecycle.GroupState(to))
}

const (
	desiredRunning = "running"
	desiredStopped = "stopped"
)

// groupRecord is group.json: the spec, the desired state, and the resources
// the group holds, so that a restarted runtime can release them.
type groupRecord struct {
	// Sealed is recordSealed: the spec's secrets are sealed (rundir.go).
	Sealed  int                      `json:"sealed,omitempty"`
	Spec    GroupSpec                `json:"spec"`
	Desired string                   `json:"desired"`
	Network *network.Attachment      `json:"network,omitempty"`
	Volumes map[string]volume.Source `json:"volumes,omitempty"`
}

type group struct {
	r    *Runtime
	id   string
	dir  string
	spec GroupSpec

	// op serializes lifecycle operations (stop, start, delete).
	op sync.Mutex

	mu        sync.Mutex // guards everything below
	desired   string
	net       *network.Attachment
	vols      map[string]volume.Source
	st        GroupStatus
	ctrs      []*container
	runCancel context.CancelFunc
	runDone   chan struct{}
}

func newGroup(r *Runtime, id string, spec GroupSpec) *group {
	g := &group{r: r, id: id, dir: r.groupDir(id), spec: spec, desired: desiredRunning}
	g.st = GroupStatus{ID: id, Name: spec.Name, State: api.GroupPending, Events: []api.Event{}}
	add := func(c *container) {
		g.ctrs = append(g.ctrs, c)
		g.st.Containers = append(g.st.Containers, ContainerStatus{
			Name: c.name, Init: c.init, Image: c.image, ContainerID: c.runcID,
			CurrentState: api.ContainerState{State: api.ContainerWaiting, DetailStatus: "Waiting"},
			Events:       []api.Event{},
		})
	}
	for _, ic := range spec.Properties.InitContainers {
		add(newContainer(g, ic.Name, true, api.ContainerProperties{
			Image: ic.Properties.Image, Command: ic.Properties.Command,
			EnvironmentVariables: ic.Properties.EnvironmentVariables, VolumeMounts: ic.Properties.VolumeMounts,
			SecurityContext: ic.Properties.SecurityContext,
		}))
	}
	for _, c := range spec.Properties.Containers {
		add(newContainer(g, c.Name, false, c.Properties))
	}
	return g
}

func loadGroup(r *Runtime, id string) (*group, error) {
	var rec groupRecord
	legacy, err := r.readGroupRecord(filepath.Join(r.groupDir(id), "group.json"), &rec)
	if err != nil {
		return nil, err
	}
	g := newGroup(r, id, rec.Spec)
	g.desired, g.net, g.vols = rec.Desired, rec.Network, rec.Volumes
	if legacy { // secrets in clear: seal them
		if err := g.saveSpec(); err != nil {
			return nil, err
		}
	}
	var st GroupStatus
	if err := readJSON(filepath.Join(g.dir, "status.json"), &st); err == nil && len(st.Containers) == len(g.ctrs) {
		g.st = st
	}
	for _, c := range g.ctrs {
		_ = readJSON(c.path("run.json"), &c.run)
	}
	return g, nil
}

func (g *group) saveSpec() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.saveSpecLocked()
}

func (g *group) saveSpecLocked() error {
	spec, err := g.r.sealSpec(g.spec)
	if err != nil {
		return err
	}
	return writeJSON(filepath.Join(g.dir, "group.json"), groupRecord{Sealed: recordSealed, Spec: spec, Desired: g.desired, Network: g.net, Volumes: g.vols})
}

// persistLocked writes status.json. Callers hold g.mu and call notify after
// unlocking.
func (g *group) persistLocked() {
	g.st.UpdatedAt = time.Now().UTC()
	if err := writeJSON(filepath.Join(g.dir, "status.json"), g.st); err != nil && !errors.Is(err, os.ErrNotExist) {
		g.r.log.Error("persist group status", "group", g.id, "err", err)
	}
}

// update runs f on the status under the lock, persists and notifies.
func (g *group) update(f func(st *GroupStatus)) {
	g.mu.Lock()
	f(&g.st)
	g.persistLocked()
	g.mu.Unlock()
	g.r.notify(g.id)
}

func (g *group) setState(to string) {
	g.update(func(st *GroupStatus) {
		if err := transition(st.State, to); err != nil {
			g.r.log.Warn("refused state change", "group", g.id, "err", err)
			return
		}
		st.State = to
	})
}

func (g *group) event(typ, name, msg string) {
	g.update(func(st *GroupStatus) { st.Events = addEvent(st.Events, typ, name, msg, time.Now()) })
}

func (g *group) status() *GroupStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.st
	s.Events = append([]api.Event(nil), s.Events...)
	s.Containers = make([]ContainerStatus, len(g.st.Containers))
	for i, c := range g.st.Containers {
		c.Events = append([]api.Event(nil), c.Events...)
		if c.PreviousState != nil {
			p := *c.PreviousState
			c.PreviousState = &p
		}
		s.Containers[i] = c
	}
	return &s
}

func (g *group) restartPolicy() string {
	if g.spec.Properties.RestartPolicy == "" {
		return api.RestartAlways
	}
	return g.spec.Properties.RestartPolicy
}

// launch starts the group's supervisor goroutine.
func (g *group) launch() {
	ctx, cancel := context.WithCancel(g.r.ctx)
	done := make(chan struct{})
	g.mu.Lock()
	g.runCancel, g.runDone = cancel, done
	g.mu.Unlock()
	g.r.wg.Add(1)
	go func() {
		defer g.r.wg.Done()
		defer close(done)
		g.run(ctx)
	}()
}

// run drives the group from Pending to its end. It is resumable: after a
// runtime restart it skips what is done and re-attaches to live containers.
// When ctx ends it returns and leaves the containers as they are.
func (g *group) run(ctx context.Context) {
	if g.status().State == api.GroupSucceeded || g.status().State == api.GroupFailed {
		return
	}
	t0 := time.Now()
	code, err := g.prepare(ctx)
	g.r.log.Debug("group prepared", "group", g.id, "took", time.Since(t0))
	if err != nil {
		if ctx.Err() == nil {
			g.fail(code, err)
		}
		return
	}
	for _, c := range g.ctrs {
		if c.init && !g.runInit(ctx, c) {
			return
		}
	}
	var wg sync.WaitGroup
	started := make(chan struct{}, len(g.ctrs))
	for _, c := range g.ctrs {
		if c.init {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.supervise(ctx, c, started)
		}()
	}
	go func() {
		// Running once every app container has run (or is running).
		for _, c := range g.ctrs {
			if c.init {
				continue
			}
			select {
			case <-started:
			case <-ctx.Done():
				return
			}
		}
		if g.status().State == api.GroupPending {
			g.setState(api.GroupRunning)
		}
	}()
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	g.finish()
}

// finish sets the end state once no container will run again.
func (g *group) finish() {
	g.update(func(st *GroupStatus) {
		final := api.GroupSucceeded
		for _, c := range st.Containers {
			if c.CurrentState.ExitCode != nil && *c.CurrentState.ExitCode != 0 {
				final = api.GroupFailed
			}
		}
		if st.State == api.GroupPending {
			st.State = api.GroupRunning // every container ran, if briefly
		}
		if err := transition(st.State, final); err == nil {
			st.State = final
		}
	})
}

func (g *group) fail(code string, err error) {
	g.r.log.Warn("container group failed", "group", g.id, "code", code, "err", err)
	g.update(func(st *GroupStatus) {
		st.Error = &StatusError{Code: code, Message: err.Error()}
		st.Events = addEvent(st.Events, api.EventWarning, "Failed", err.Error(), time.Now())
		if transition(st.State, api.GroupFailed) == nil {
			st.State = api.GroupFailed
		}
	})
}

// prepare pulls images and sets up volumes, the network and the files every
// container shares. It returns a StatusError code with its error.
func (g *group) prepare(ctx context.Context) (string, error) {
	for _, c := range g.ctrs {
		if err := g.ensureImage(ctx, c); err != nil {
			return CodeInaccessibleImage, err
		}
	}
	g.mu.Lock()
	vols, att := g.vols, g.net
	g.mu.Unlock()
	if vols == nil {
		v, err := g.r.cfg.Volumes.Prepare(ctx, g.id, g.spec.Properties.Volumes)
		if errdefs.Is(err, errdefs.ErrAlreadyExists) {
			// Left by a runtime that died between preparing and recording.
			if err = g.r.cfg.Volumes.Release(ctx, g.id); err == nil {
				v, err = g.r.cfg.Volumes.Prepare(ctx, g.id, g.spec.Properties.Volumes)
			}
		}
		if err != nil {
			return CodeVolumeFailed, fmt.Errorf("volumes: %w", err)
		}
		g.mu.Lock()
		g.vols = v
		err = g.saveSpecLocked()
		g.mu.Unlock()
		if err != nil {
			return CodeVolumeFailed, err
		}
	}
	if att == nil {
		// Only a Public group's ports are published on the host address;
		// a Private one is reached at its own address on the bridge.
		var ports []api.Port
		if ip := g.spec.Properties.IPAddress; ip.Published() {
			ports = ip.Ports
		}
		req := network.Request{Ports: ports, Tenant: g.spec.Tenant}
		a, err := g.r.cfg.Network.Setup(ctx, g.id, req)
		if errdefs.Is(err, errdefs.ErrAlreadyExists) {
			// Left by a runtime that died between setting up and recording.
			if err = g.r.cfg.Network.Teardown(ctx, g.id); err == nil {
				a, err = g.r.cfg.Network.Setup(ctx, g.id, req)
			}
		}
		if err != nil {
			return CodeNetworkFailed, fmt.Errorf("network: %w", err)
		}
		g.mu.Lock()
		g.net = a
		g.st.IP = a.IP.String()
		err = g.saveSpecLocked()
		g.persistLocked()
		g.mu.Unlock()
		if err != nil {
			return CodeNetworkFailed, err
		}
		att = a
	}
	if err := g.writeEtcFiles(att); err != nil {
		return CodeContainerFailed, err
	}
	g.mu.Lock()
	containers := g.spec.Properties.Containers
	g.mu.Unlock()
	if err := g.writeConfigMaps(containers); err != nil {
		return CodeContainerFailed, err
	}
	// The group's cgroup, parent of its containers', caps their processes
	// together; each container has its own (smaller) limit too.
	if err := cgroup.SetPidsLimit(g.cgroupParent(), g.r.cfg.GroupPidsLimit); err != nil {
		return CodeContainerFailed, fmt.Errorf("group pids limit: %w", err)
	}
	return "", nil
}

func (g *group) writeEtcFiles(att *network.Attachment) error {
	hosts := fmt.Sprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n", att.IP, g.spec.Name)
	if aliases := g.spec.Properties.HostAliases; len(aliases) > 0 {
		// As kubelet writes a pod's hostAliases (validated: an address and
		// host names each, api.checkHostAliases).
		hosts += "\n# Entries added by HostAliases.\n"
		for _, a := range aliases {
			hosts += a.IP + "\t" + strings.Join(a.Hostnames, "\t") + "\n"
		}
	}
	if err := os.WriteFile(filepath.Join(g.dir, "hosts"), []byte(hosts), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(g.dir, "hostname"), []byte(g.spec.Name+"\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(g.dir, "resolv.conf"), []byte(resolvConf(g.spec.Properties.DNSConfig)), 0o644)
}

// resolvConf renders dnsConfig, or else the host's resolv.conf without
// loopback name servers (which would point into the container itself).
func resolvConf(dns *api.DNSConfig) string {
	var b strings.Builder
	if dns != nil && len(dns.NameServers) > 0 {
		for _, ns := range dns.NameServers {
			fmt.Fprintf(&b, "nameserver %s\n", ns)
		}
		if s := strings.TrimSpace(dns.SearchDomains); s != "" {
			fmt.Fprintf(&b, "search %s\n", s)
		}
		if o := strings.TrimSpace(dns.Options); o != "" {
			fmt.Fprintf(&b, "options %s\n", o)
		}
		return b.String()
	}
	data, _ := os.ReadFile("/etc/resolv.conf")
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" && (strings.HasPrefix(f[1], "127.") || f[1] == "::1") {
			continue
		}
		if strings.TrimSpace(line) != "" {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// runInit runs an init container to completion. It returns false when the
// group must not go on (failed, or ctx ended).
func (g *group) runInit(ctx context.Context, c *container) bool {
	for {
		if g.status().Container(c.name).CurrentState.State == api.ContainerTerminated && c.done() {
			if code := g.status().Container(c.name).CurrentState.ExitCode; code != nil && *code == 0 {
				return true
			}
		}
		code, err := c.runOnce(ctx)
		if ctx.Err() != nil {
			return false
		}
		if err == nil && code == 0 {
			return true
		}
		if g.restartPolicy() == api.RestartNever {
			msg := fmt.Sprintf("init container %q exited with code %d", c.name, code)
			if err != nil {
				msg = fmt.Sprintf("init container %q: %v", c.name, err)
			}
			g.fail(CodeContainerFailed, errors.New(msg))
			return false
		}
		if !c.backOff(ctx) {
			return false
		}
	}
}

// supervise runs an app container and restarts it per the restart policy.
func (g *group) supervise(ctx context.Context, c *container, started chan<- struct{}) {
	once := sync.OnceFunc(func() { started <- struct{}{} })
	for {
		if g.status().Container(c.name).CurrentState.State == api.ContainerTerminated && c.done() && !c.wantsRestart(g.status().Container(c.name)) {
			once()
			return // finished before a runtime restart
		}
		code, err := c.runOnceNotify(ctx, once)
		if ctx.Err() != nil {
			return
		}
		once()
		st := g.status().Container(c.name)
		if err == nil && !c.wantsRestart(st) {
			return
		}
		if err != nil && g.restartPolicy() == api.RestartNever {
			_ = code
			return
		}
		if !c.backOff(ctx) {
			return
		}
	}
}

// stop kills the group's containers and, unless keep, frees its network and
// volumes. keep is for restarts in place.
func (g *group) stop(ctx context.Context, grace time.Duration, keep bool) error {
	g.op.Lock()
	defer g.op.Unlock()
	g.mu.Lock()
	cancel, done := g.runCancel, g.runDone
	g.runCancel, g.runDone = nil, nil
	if !keep {
		g.desired = desiredStopped
	}
	g.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	// Kill in reverse order: sidecars last would be nicer, but all get the
	// same grace; SIGTERM everyone first, then wait together.
	ctx = context.WithoutCancel(ctx)
	var live []*container
	for _, c := range g.ctrs {
		if c.alive() {
			live = append(live, c)
		}
	}
	graceCtx, cancelGrace := context.WithTimeout(ctx, grace)
	// preStop hooks first, all at once, within the grace (as kubelet).
	var hooks sync.WaitGroup
	for _, c := range live {
		if l := c.props.Lifecycle; l != nil && l.PreStop != nil {
			hooks.Go(func() { _ = c.runHook(graceCtx, l.PreStop, "FailedPreStopHook", "PreStop") })
		}
	}
	hooks.Wait()
	for _, c := range live {
		c.event(api.EventNormal, "Killing", "Stopping container")
		_ = g.r.oci.Kill(ctx, c.runcID, int(sigTERM), nil)
	}
	for _, c := range live {
		select {
		case <-c.exitedCh():
		case <-graceCtx.Done():
		}
	}
	cancelGrace()
	for _, c := range live {
		if c.alive() {
			_ = g.r.oci.Kill(ctx, c.runcID, int(sigKILL), allProcs)
		}
	}
	for _, c := range live {
		select {
		case <-c.exitedCh():
		case <-time.After(10 * time.Second):
			g.r.log.Error("container did not die after SIGKILL", "group", g.id, "container", c.name)
		}
		c.collectExit(ctx)
	}
	var errs []error
	for _, c := range g.ctrs {
		errs = append(errs, c.cleanup(ctx))
	}
	if !keep {
		errs = append(errs, g.release(ctx))
	}
	g.update(func(st *GroupStatus) {
		for i := range st.Containers {
			st.Containers[i].Ready = false
			st.Containers[i].Pid = 0
		}
		if !keep && transition(st.State, api.GroupStopped) == nil {
			st.State = api.GroupStopped
		}
	})
	return errors.Join(errs...)
}

// DefaultGroupPidsLimit is the pids limit of a group's cgroup (all its
// containers together) when Config.GroupPidsLimit is zero: twice one
// container's default.
const DefaultGroupPidsLimit = 8192

// cgroupParent is the cgroup under which the group's containers run. It
// carries the group's pids limit (Config.GroupPidsLimit).
func (g *group) cgroupParent() string { return g.r.cfg.CgroupRoot + "/" + g.id }

// cgroupsPath is the container's cgroup, "<root>/<group>/<container>"
// ("/skiff/<group>/<container>" by default).
func (c *container) cgroupsPath() string { return c.g.cgroupParent() + "/" + c.name }

// release frees the network, volumes and the group's cgroup, the three at
// once (they share nothing).
func (g *group) release(ctx context.Context) error {
	errs := make([]error, 3)
	var wg sync.WaitGroup
	wg.Go(func() {
		err := cgroup.RemoveCgroup(g.cgroupParent())
		if errdefs.Is(err, errdefs.ErrConflict) {
			// Processes are left in the group's cgroup: a container whose
			// start the stop overtook (its runc was still creating it).
			// Nothing of a released group may run on: kill them, then remove.
			g.r.log.Warn("killing processes left in the cgroup of a released group", "group", g.id)
			kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if kerr := cgroup.KillCgroup(kctx, g.cgroupParent()); kerr == nil {
				err = cgroup.RemoveCgroup(g.cgroupParent())
			}
			cancel()
		}
		if err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
			errs[0] = fmt.Errorf("remove cgroup: %w", err)
		}
	})
	wg.Go(func() {
		if err := g.r.cfg.Network.Teardown(ctx, g.id); err != nil {
			errs[1] = fmt.Errorf("network teardown: %w", err)
		}
	})
	wg.Go(func() {
		if err := g.r.cfg.Volumes.Release(ctx, g.id); err != nil {
			errs[2] = fmt.Errorf("volume release: %w", err)
		}
	})
	wg.Wait()
	g.mu.Lock()
	g.net, g.vols = nil, nil
	g.st.IP = ""
	if err := g.saveSpecLocked(); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	g.mu.Unlock()
	return errors.Join(errs...)
}

// start runs a stopped or finished group again.
func (g *group) start(ctx context.Context) error {
	g.op.Lock()
	defer g.op.Unlock()
	g.mu.Lock()
	if g.runDone != nil {
		select {
		case <-g.runDone:
		default:
			if g.st.State == api.GroupPending || g.st.State == api.GroupRunning {
				g.mu.Unlock()
				return nil // already running
			}
		}
	}
	if err := transition(g.st.State, api.GroupPending); err != nil {
		g.mu.Unlock()
		return err
	}
	g.desired = desiredRunning
	g.st.State = api.GroupPending
	g.st.Error = nil
	for i, c := range g.ctrs {
		c.run = runRecord{}
		c.delay = 0
		_ = os.Remove(c.path("run.json"))
		cs := &g.st.Containers[i]
		if cs.CurrentState.State != api.ContainerWaiting {
			prev := cs.CurrentState
			cs.PreviousState = &prev
		}
		cs.CurrentState = api.ContainerState{State: api.ContainerWaiting, DetailStatus: "Waiting"}
		cs.Ready = false
	}
	err := g.saveSpecLocked()
	g.persistLocked()
	g.mu.Unlock()
	g.r.notify(g.id)
	if err != nil {
		return err
	}
	g.launch()
	return nil
}
