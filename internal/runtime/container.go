package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	runc "github.com/containerd/go-runc"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/image"
	"github.com/skiff-sh/skiff/internal/runtime/oci"
	"github.com/skiff-sh/skiff/internal/runtime/rootfs"
	"github.com/skiff-sh/skiff/internal/runtime/shim"
)

const (
	sigTERM = syscall.SIGTERM
	sigKILL = syscall.SIGKILL
)

var allProcs = &runc.KillOpts{All: true}

// runRecord is run.json: the container's current run.
type runRecord struct {
	Attempt   int       `json:"attempt"`
	ShimPid   int       `json:"shimPid"`
	Pid       int       `json:"pid"`
	StartedAt time.Time `json:"startedAt"`
	// Done is set once the run's exit has been recorded.
	Done bool `json:"done"`
}

type container struct {
	g      *group
	name   string
	init   bool
	image  string
	props  api.ContainerProperties
	runcID string
	dir    string

	// Owned by whoever drives the container: the group's run goroutine, or
	// stop after that goroutine has ended.
	img    *image.Image
	run    runRecord
	exited <-chan struct{}
	delay  time.Duration
}

func newContainer(g *group, name string, init bool, p api.ContainerProperties) *container {
	return &container{
		g: g, name: name, init: init, image: p.Image, props: p,
		runcID: g.id + "_" + name,
		dir:    filepath.Join(g.dir, "containers", name),
	}
}

func (c *container) path(elem ...string) string {
	return filepath.Join(append([]string{c.dir}, elem...)...)
}

// LogPath is the active log file of the container's current run.
func (c *container) logPath(previous bool) string {
	if previous {
		return c.path("logs", "previous.log")
	}
	return c.path("logs", "current.log")
}

func (c *container) update(f func(cs *ContainerStatus)) {
	c.g.update(func(st *GroupStatus) { f(st.Container(c.name)) })
}

func (c *container) event(typ, name, msg string) {
	c.update(func(cs *ContainerStatus) { cs.Events = addEvent(cs.Events, typ, name, msg, time.Now()) })
}

func (c *container) done() bool { return c.run.Done }

// pending: a run was started and its exit is not recorded yet.
func (c *container) pending() bool { return c.run.ShimPid != 0 && !c.run.Done }

func (c *container) alive() bool {
	if !c.pending() {
		return false
	}
	select {
	case <-c.exitedCh():
		return false
	default:
		return true
	}
}

func (c *container) exitedCh() <-chan struct{} {
	if c.exited == nil {
		if c.pending() {
			c.exited = watchShim(c.run.ShimPid, c.runcID)
		} else {
			ch := make(chan struct{})
			close(ch)
			return ch
		}
	}
	return c.exited
}

func (c *container) wantsRestart(cs *ContainerStatus) bool {
	switch c.g.restartPolicy() {
	case api.RestartAlways:
		return true
	case api.RestartOnFailure:
		return cs.CurrentState.ExitCode == nil || *cs.CurrentState.ExitCode != 0
	}
	return false
}

// ensureImage finds the container's image in the store, or pulls it. A
// stored private image (pulled with another group's credentials) counts
// only if the registry accepts this group's credentials for it
// (image.Store.GetFor); otherwise the pull decides, as if nothing were
// stored.
func (c *container) ensureImage(ctx context.Context) error {
	if img, err := c.g.r.cfg.Images.GetFor(ctx, c.image, c.g.spec.Properties.ImageRegistryCredentials); err == nil {
		c.img = img
		c.update(func(cs *ContainerStatus) { cs.ImageID = img.Digest })
		return nil
	}
	c.event(api.EventNormal, "Pulling", fmt.Sprintf("pulling image %q", c.image))
	attempts := c.g.r.cfg.PullAttempts
	for i := 1; ; i++ {
		img, err := c.g.r.cfg.Images.Pull(ctx, c.image, c.g.spec.Properties.ImageRegistryCredentials, func(p image.Progress) {
			if p.Status == image.ProgressBackOff {
				c.event(api.EventNormal, "BackOff", fmt.Sprintf("Back-off pulling image %q (attempt %d, retry in %s)", c.image, p.Attempt, p.Delay))
			}
		})
		if err == nil {
			c.img = img
			c.event(api.EventNormal, "Pulled", fmt.Sprintf("Successfully pulled image %q (%s)", c.image, img.Digest))
			c.update(func(cs *ContainerStatus) { cs.ImageID = img.Digest })
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errdefs.Is(err, errdefs.ErrUnavailable) && i < attempts {
			c.event(api.EventNormal, "BackOff", fmt.Sprintf("Back-off pulling image %q", c.image))
			select {
			case <-time.After(time.Duration(1<<i) * time.Second):
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		c.event(api.EventWarning, "Failed", fmt.Sprintf("Failed to pull image %q: %v", c.image, err))
		c.update(func(cs *ContainerStatus) {
			cs.CurrentState = api.ContainerState{State: api.ContainerWaiting, DetailStatus: "ErrImagePull"}
		})
		return fmt.Errorf("container %q: %w", c.name, err)
	}
}

func (g *group) ensureImage(ctx context.Context, c *container) error { return c.ensureImage(ctx) }

// runOnceNotify runs the container once (or re-attaches to the live run after
// a runtime restart) and returns its exit code. started is called once the
// container runs. If ctx ends first it returns ctx.Err() and leaves the
// container running.
func (c *container) runOnceNotify(ctx context.Context, started func()) (int, error) {
	if c.pending() {
		c.reattach()
	} else {
		if err := c.start(ctx); err != nil {
			if ctx.Err() != nil {
				return -1, ctx.Err()
			}
			c.event(api.EventWarning, "Failed", fmt.Sprintf("Error: %v", err))
			now := time.Now()
			code := int32(128)
			c.update(func(cs *ContainerStatus) {
				cs.CurrentState = api.ContainerState{State: api.ContainerTerminated, ExitCode: &code,
					StartTime: timestamp(now), FinishTime: timestamp(now), DetailStatus: "StartError: " + err.Error()}
			})
			c.run.Done = true
			return int(code), err
		}
	}
	started()
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	if !c.init {
		c.startProbes(pctx)
	}
	select {
	case <-c.exitedCh():
	case <-ctx.Done():
		return -1, ctx.Err()
	}
	pcancel()
	return c.collectExit(context.WithoutCancel(ctx)), nil
}

func (c *container) runOnce(ctx context.Context) (int, error) {
	return c.runOnceNotify(ctx, func() {})
}

// start starts a new run of the container.
func (c *container) start(ctx context.Context) (retErr error) {
	r := c.g.r
	if c.img == nil {
		if err := c.ensureImage(ctx); err != nil {
			return err
		}
	}
	for _, d := range []string{c.bundleDir(), c.path("logs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	t0 := time.Now()
	defer func() { r.log.Debug("container started", "container", c.runcID, "took", time.Since(t0), "err", retErr) }()
	root := c.path("rootfs")
	merged := filepath.Join(root, "merged")
	if ok, _ := mountinfo.Mounted(merged); !ok {
		m, err := rootfs.Mount(c.img.Layers, root)
		if err != nil {
			return fmt.Errorf("root filesystem: %w", err)
		}
		merged = m
	}
	cfg, err := c.ociConfig(merged)
	if err != nil {
		return err
	}
	spec, err := oci.Spec(cfg)
	if err != nil {
		return err
	}
	if err := openToContainerRoot(cfg); err != nil {
		return err
	}
	if err := oci.WriteBundle(c.bundleDir(), spec); err != nil {
		return err
	}
	// Keep the previous run's log; drop the one before.
	if _, err := os.Stat(c.logPath(false)); err == nil {
		_ = os.Rename(c.logPath(false), c.logPath(true))
		_ = os.Remove(c.logPath(false) + ".1")
	}
	// A run that died with the host may have left its OCI state behind.
	if _, err := os.Stat(filepath.Join(r.oci.Root, c.runcID)); err == nil {
		_ = r.oci.Delete(ctx, c.runcID, &runc.DeleteOpts{Force: true})
	}
	_ = os.Remove(c.path("exit.json"))
	attempt := c.run.Attempt + 1
	now := time.Now()
	s, err := shim.Start(ctx, r.cfg.ShimCommand, shim.Options{
		ID: c.runcID, Bundle: c.bundleDir(), Runtime: r.cfg.OCIRuntime, RuntimeRoot: r.oci.Root,
		LogPath: c.logPath(false), LogMaxBytes: r.cfg.LogMaxBytes, ExitFile: c.path("exit.json"),
		OOMCheck: cfg.CgroupsPath,
	}, c.path("shim.log"), func(shimPid int) {
		// Recorded before the container exists: a runtime killed from here
		// on re-attaches to this shim rather than starting another run.
		c.run = runRecord{Attempt: attempt, ShimPid: shimPid, StartedAt: now}
		if err := writeJSON(c.path("run.json"), c.run); err != nil {
			r.log.Error("persist run", "container", c.runcID, "err", err)
		}
	})
	if err != nil {
		if c.run.Attempt == attempt {
			c.run.Done = true // the shim reported the failure and is gone
			_ = writeJSON(c.path("run.json"), c.run)
		}
		return err
	}
	c.run.Pid = s.Pid
	c.exited = watchShim(s.ShimPid, c.runcID)
	c.sealBundleLogged() // runc has read it
	if err := writeJSON(c.path("run.json"), c.run); err != nil {
		r.log.Error("persist run", "container", c.runcID, "err", err)
	}
	c.markRunning(now, s.Pid)
	// The postStart hook, as kubelet runs it: before the next container
	// starts; if it fails, the container is killed and its restart policy
	// decides.
	if l := c.props.Lifecycle; l != nil && l.PostStart != nil {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := c.runHook(hctx, l.PostStart, "FailedPostStartHook", "PostStart")
		cancel()
		if err != nil {
			c.event(api.EventNormal, "Killing", "FailedPostStartHook")
			_ = r.oci.Kill(context.WithoutCancel(ctx), c.runcID, int(sigKILL), allProcs)
		}
	}
	return nil
}

// markRunning records the current run as Running.
func (c *container) markRunning(startedAt time.Time, pid int) {
	ready := c.props.ReadinessProbe == nil && c.props.StartupProbe == nil
	attempt := c.run.Attempt
	c.update(func(cs *ContainerStatus) {
		if cs.CurrentState.State == api.ContainerTerminated {
			prev := cs.CurrentState
			cs.PreviousState = &prev
		}
		cs.CurrentState = api.ContainerState{State: api.ContainerRunning, StartTime: timestamp(startedAt), DetailStatus: ""}
		cs.RestartCount = int32(attempt - 1)
		cs.Pid = pid
		cs.Ready = ready
		cs.Events = addEvent(cs.Events, api.EventNormal, "Started", "Started container", startedAt)
	})
}

// reattach picks up a run a previous runtime started. If that runtime died
// between launching the shim and seeing the container run, the status is
// caught up from the shim's pid file.
func (c *container) reattach() {
	if cs := c.g.status().Container(c.name); cs != nil && cs.CurrentState.State == api.ContainerRunning {
		c.sealBundleLogged() // a runtime killed right after the start left it plain
		return
	}
	select {
	case <-c.exitedCh():
		return // ended meanwhile: collectExit records it
	default:
	}
	pid := c.run.Pid
	// The shim may still be inside `runc run`: wait for its pid file.
	for i := 0; pid == 0 && i < 300; i++ {
		if p, err := runc.ReadPidFile(filepath.Join(c.bundleDir(), "init.pid")); err == nil && p > 0 {
			pid = p
			break
		}
		select {
		case <-c.exitedCh():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	if pid > 0 {
		c.run.Pid = pid
		_ = writeJSON(c.path("run.json"), c.run)
		c.sealBundleLogged() // runc has read it: the pid file is written after
		c.markRunning(c.run.StartedAt, pid)
	}
}

// openToContainerRoot lets a container in a user namespace reach its root
// filesystem and every bind-mount source: runc mounts them from inside the
// namespace, as the mapped root (userns.Mapping.AllowTraverse).
func openToContainerRoot(cfg oci.ContainerConfig) error {
	if cfg.UserNSPath == "" {
		return nil
	}
	paths := []string{cfg.RootfsPath, cfg.HostsFile, cfg.ResolvConfFile, cfg.HostnameFile}
	for _, m := range cfg.Mounts {
		paths = append(paths, m.Source)
	}
	for _, p := range paths {
		if p == "" {
			continue
		}
		if err := cfg.IDMap.AllowTraverse(p); err != nil {
			return fmt.Errorf("container %s: %w", cfg.ID, err)
		}
	}
	return nil
}

func (c *container) ociConfig(rootfsPath string) (oci.ContainerConfig, error) {
	g := c.g
	args := c.props.Command
	if len(args) == 0 {
		args = append(append([]string{}, c.img.Config.Entrypoint...), c.img.Config.Cmd...)
	}
	if len(args) == 0 {
		return oci.ContainerConfig{}, fmt.Errorf("container %q: no command: the image has no entrypoint or cmd and the container sets none: %w", c.name, errdefs.ErrInvalidArgument)
	}
	env := mergeEnv(c.img.Config.Env, c.props.EnvironmentVariables)
	g.mu.Lock()
	vols, att := g.vols, g.net
	g.mu.Unlock()
	var mounts []oci.Mount
	for _, vm := range c.props.VolumeMounts {
		src, ok := vols[vm.Name]
		if !ok {
			return oci.ContainerConfig{}, fmt.Errorf("container %q: volume %q is not prepared: %w", c.name, vm.Name, errdefs.ErrInvalidArgument)
		}
		mounts = append(mounts, oci.Mount{Source: src.Path, Destination: vm.MountPath, ReadOnly: vm.ReadOnly || src.ReadOnly})
	}
	if c.props.ConfigMap != nil {
		mounts = append(mounts, oci.Mount{Source: g.configMapDir(c.name), Destination: path.Join(api.ConfigMapDir, c.name), ReadOnly: true})
	}
	cfg := oci.ContainerConfig{
		ID: c.runcID, Hostname: g.spec.Name, RootfsPath: rootfsPath,
		Args: args, Env: env, Cwd: c.img.Config.WorkingDir, User: c.img.Config.User,
		NetNSPath:   att.NetNSPath,
		CgroupsPath: c.cgroupsPath(),
		PidsLimit:   g.r.cfg.PidsLimit,
		Mounts:      mounts,
		HostsFile:   filepath.Join(g.dir, "hosts"), ResolvConfFile: filepath.Join(g.dir, "resolv.conf"),
		HostnameFile: filepath.Join(g.dir, "hostname"),
		Security:     c.props.SecurityContext,
		Policy:       g.r.cfg.Security,
		UserNSPath:   att.UserNSPath,
		IDMap:        att.IDMap,
	}
	req := c.props.Resources.Requests
	cfg.CPUShares = req.CPU
	cfg.CPULimit = req.CPU
	cfg.MemoryLimitBytes = int64(req.MemoryInGB * (1 << 30))
	if l := c.props.Resources.Limits; l != nil {
		if l.CPU > 0 {
			cfg.CPULimit = l.CPU
		}
		if l.MemoryInGB > 0 {
			cfg.MemoryLimitBytes = int64(l.MemoryInGB * (1 << 30))
		}
	}
	return cfg, nil
}

// mergeEnv overlays the container's variables on the image's.
func mergeEnv(image []string, vars []api.EnvironmentVariable) []string {
	out := append([]string{}, image...)
	index := map[string]int{}
	for i, kv := range out {
		k, _, _ := strings.Cut(kv, "=")
		index[k] = i
	}
	for _, v := range vars {
		val := v.Value
		if v.SecureValue != "" {
			val = v.SecureValue
		}
		kv := v.Name + "=" + val
		if i, ok := index[v.Name]; ok {
			out[i] = kv
		} else {
			index[v.Name] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

// collectExit records how the current run ended and removes its OCI state.
// It returns the exit code.
func (c *container) collectExit(ctx context.Context) int {
	if !c.pending() {
		if cs := c.g.status().Container(c.name); cs != nil && cs.CurrentState.ExitCode != nil {
			return int(*cs.CurrentState.ExitCode)
		}
		return 0
	}
	ex, err := shim.ReadExit(c.path("exit.json"))
	detail := ""
	if err != nil {
		ex = &shim.Exit{ExitCode: 255, FinishedAt: time.Now().UTC()}
		detail = "Unknown: the container's shim ended without recording an exit"
	}
	switch {
	case detail != "":
	case ex.OOMKilled:
		detail = "OOMKilled"
	case ex.ExitCode == 0:
		detail = "Completed"
	default:
		detail = "Error"
	}
	code := int32(ex.ExitCode)
	c.update(func(cs *ContainerStatus) {
		cs.CurrentState = api.ContainerState{State: api.ContainerTerminated, ExitCode: &code,
			StartTime: timestamp(c.run.StartedAt), FinishTime: timestamp(ex.FinishedAt), DetailStatus: detail}
		cs.Pid = 0
		cs.Ready = false
		if ex.OOMKilled {
			cs.Events = addEvent(cs.Events, api.EventWarning, "OOMKilled", "Container was killed because it exceeded its memory limit", time.Now())
		}
	})
	c.run.Done = true
	_ = writeJSON(c.path("run.json"), c.run)
	_ = c.g.r.oci.Delete(ctx, c.runcID, &runc.DeleteOpts{Force: true})
	return int(code)
}

// backOff waits before the next restart. It returns false if ctx ended.
func (c *container) backOff(ctx context.Context) bool {
	ran := time.Since(c.run.StartedAt)
	c.delay = c.g.r.cfg.Backoff.next(c.delay, ran)
	c.update(func(cs *ContainerStatus) {
		if cs.CurrentState.State == api.ContainerTerminated {
			prev := cs.CurrentState
			cs.PreviousState = &prev
		}
		cs.CurrentState = api.ContainerState{State: api.ContainerWaiting, DetailStatus: "CrashLoopBackOff"}
		cs.Events = addEvent(cs.Events, api.EventNormal, "BackOff", "Back-off restarting failed container", time.Now())
	})
	select {
	case <-time.After(c.delay):
		return true
	case <-ctx.Done():
		return false
	}
}

// cleanup removes the container's OCI state and root filesystem mount.
func (c *container) cleanup(ctx context.Context) error {
	_ = c.g.r.oci.Delete(ctx, c.runcID, &runc.DeleteOpts{Force: true})
	if err := c.removeBundle(); err != nil {
		return fmt.Errorf("container %q: %w", c.name, err)
	}
	if err := rootfs.Unmount(c.path("rootfs")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("container %q: %w", c.name, err)
	}
	c.exited = nil
	return nil
}

// watchShim returns a channel closed when the shim process is gone. It
// checks the process is still the shim of runcID, so a reused PID after a
// host reboot is not mistaken for it.
func watchShim(pid int, runcID string) <-chan struct{} {
	ch := make(chan struct{})
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), "\x00"+runcID+"\x00") {
		close(ch)
		return ch
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		close(ch)
		return ch
	}
	go func() {
		defer unix.Close(fd)
		defer close(ch)
		for {
			_, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, -1)
			if err != nil && errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
	}()
	return ch
}
