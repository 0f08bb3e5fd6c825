package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/console"
	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostapi"
	"github.com/skiff-sh/skiff/internal/runtime/cgroup"
	"github.com/skiff-sh/skiff/internal/runtime/logs"
)

// WindowSize, ExecOptions and LogOptions are the host seam's
// (package hostapi): the agent hands the control plane's requests through
// as they are.
type (
	WindowSize  = hostapi.WindowSize
	ExecOptions = hostapi.ExecOptions
	LogOptions  = hostapi.LogOptions
)

func (r *Runtime) container(id, name string) (*group, *container, error) {
	g, err := r.get(id)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range g.ctrs {
		if c.name == name {
			return g, c, nil
		}
	}
	return nil, nil, fmt.Errorf("container %q in group %q: %w", name, id, errdefs.ErrNotFound)
}

// Exec runs a command in a running container and returns its exit code.
func (r *Runtime) Exec(ctx context.Context, id, name string, o ExecOptions) (int, error) {
	g, c, err := r.container(id, name)
	if err != nil {
		return -1, err
	}
	if len(o.Command) == 0 {
		return -1, fmt.Errorf("exec: empty command: %w", errdefs.ErrInvalidArgument)
	}
	if cs := g.status().Container(name); cs.CurrentState.State != api.ContainerRunning {
		return -1, fmt.Errorf("container %q is not running (%s): %w", name, cs.CurrentState.State, errdefs.ErrConflict)
	}
	spec, err := c.bundleSpec()
	if err == nil && spec.Process == nil {
		err = errors.New("no process")
	}
	if err != nil {
		return -1, fmt.Errorf("container %q: read its spec: %v: %w", name, err, errdefs.ErrConflict)
	}
	p := *spec.Process
	p.Args = o.Command
	p.Terminal = o.TTY
	p.ConsoleSize = nil
	if o.TTY && o.Size.Rows > 0 {
		p.ConsoleSize = &specs.Box{Height: uint(o.Size.Rows), Width: uint(o.Size.Cols)}
	}
	// The session runs in a cgroup of its own below the container's, so
	// that everything it starts (children, daemons that double-fork and
	// setsid) is found and killed when the session ends: its ctx ends
	// (websocket closed, client gone, a server-side deadline) or its
	// command returns. Limits stay the container's (cgroups are
	// hierarchical).
	sub := execCgroupPrefix + randomID()
	subPath := c.cgroupsPath() + "/" + sub
	if err := cgroup.CreateSubCgroup(subPath); err != nil {
		return -1, fmt.Errorf("exec in %q: %w", name, err)
	}
	defer r.endExec(subPath)
	tmp, err := os.MkdirTemp("", "skiff-exec-")
	if err != nil {
		return -1, fmt.Errorf("exec in %q: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	pidFile := filepath.Join(tmp, "pid")
	// runc runs on a context of its own: the session's processes are
	// killed when ctx ends, or when the command itself has exited (what it
	// left in the background would otherwise hold its output open, and
	// runc with it), and runc then returns by itself with the command's
	// exit status. Should it not, it is killed after execKillWait.
	runCtx, stopRunc := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRunc()
	done := make(chan struct{})
	defer close(done)
	go func() {
		exited := make(chan struct{})
		go waitPidFile(done, pidFile, exited)
		select {
		case <-done:
			return
		case <-ctx.Done():
		case <-exited:
		}
		kctx, cancel := context.WithTimeout(context.Background(), execKillWait)
		defer cancel()
		if err := cgroup.KillCgroup(kctx, subPath); err != nil {
			r.log.Warn("exec session: kill", "group", id, "container", name, "err", err)
		}
		select {
		case <-done:
		case <-kctx.Done():
			stopRunc()
		}
	}()
	opts := runc.ExecOpts{PidFile: pidFile, ExtraArgs: []string{"--cgroup", sub}}
	if o.TTY {
		err = r.execTTY(runCtx, c.runcID, p, o, opts)
	} else {
		err = r.execPipes(runCtx, c.runcID, p, o, opts)
	}
	if ctx.Err() != nil {
		return -1, fmt.Errorf("exec in %q: session ended: %w", name, ctx.Err())
	}
	var ee *runc.ExitError
	if errors.As(err, &ee) {
		return ee.Status, nil
	}
	if err != nil {
		return -1, fmt.Errorf("exec in %q: %w", name, err)
	}
	return 0, nil
}

// execCgroupPrefix names the cgroups of exec sessions below a container's.
const execCgroupPrefix = "skiff-exec-"

// execKillWait bounds how long killing a session's processes may take.
const execKillWait = 10 * time.Second

// waitPidFile closes exited once the process whose PID runc writes to
// pidFile has exited, or returns when done is closed first.
func waitPidFile(done <-chan struct{}, pidFile string, exited chan<- struct{}) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	pid := 0
	for pid == 0 {
		select {
		case <-done:
			return
		case <-tick.C:
			if p, err := runc.ReadPidFile(pidFile); err == nil && p > 0 {
				pid = p
			}
		}
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		close(exited) // gone already (ESRCH)
		return
	}
	defer unix.Close(fd)
	for {
		// A pidfd polls readable once its process has exited.
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 100)
		if n > 0 || (err != nil && err != unix.EINTR) {
			close(exited)
			return
		}
		select {
		case <-done:
			return
		default:
		}
	}
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// endExec kills what is left of an exec session (background children of a
// command that returned) and removes its cgroup. Nothing started by an exec
// outlives its session.
func (r *Runtime) endExec(subPath string) {
	ctx, cancel := context.WithTimeout(context.Background(), execKillWait)
	defer cancel()
	if err := cgroup.KillCgroup(ctx, subPath); err != nil {
		r.log.Warn("exec session: kill what is left", "cgroup", subPath, "err", err)
	}
	// A killed process leaves its cgroup an instant after it is gone from
	// cgroup.procs; rmdir says EBUSY until then.
	for {
		err := cgroup.RemoveCgroup(subPath)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			r.log.Warn("exec session: remove cgroup", "cgroup", subPath, "err", err)
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// killStaleExecs ends the exec sessions a previous runtime process left:
// their clients were connected to it, so nothing can reach them any more.
func (g *group) killStaleExecs() {
	for _, c := range g.ctrs {
		subs, err := cgroup.SubCgroups(c.cgroupsPath(), execCgroupPrefix)
		if err != nil {
			continue
		}
		for _, s := range subs {
			g.r.log.Info("ending an exec session left by a previous run", "group", g.id, "container", c.name)
			g.r.endExec(c.cgroupsPath() + "/" + s)
		}
	}
}

// streamIO hands the caller's streams to runc exec.
type streamIO struct {
	in       *os.File
	out, err io.Writer
}

func (s *streamIO) Close() error          { return nil }
func (s *streamIO) Stdin() io.WriteCloser { return nil }
func (s *streamIO) Stdout() io.ReadCloser { return nil }
func (s *streamIO) Stderr() io.ReadCloser { return nil }
func (s *streamIO) Set(cmd *exec.Cmd) {
	if s.in != nil {
		cmd.Stdin = s.in
	}
	cmd.Stdout, cmd.Stderr = s.out, s.err
}

func (r *Runtime) execPipes(ctx context.Context, id string, p specs.Process, o ExecOptions, opts runc.ExecOpts) error {
	sio := &streamIO{out: o.Stdout, err: o.Stderr}
	if sio.out == nil {
		sio.out = io.Discard
	}
	if sio.err == nil {
		sio.err = io.Discard
	}
	if o.Stdin != nil {
		// A pipe of our own, so a stdin that never ends cannot hold up Wait.
		pr, pw, err := os.Pipe()
		if err != nil {
			return err
		}
		defer pr.Close()
		defer pw.Close()
		sio.in = pr
		go func() {
			_, _ = io.Copy(pw, o.Stdin)
			pw.Close()
		}()
	}
	opts.IO = sio
	return r.oci.Exec(ctx, id, p, &opts)
}

// ttyIO gives runc a terminal of ours as stdin, stdout and stderr, and as
// its controlling terminal, so resizing our side reaches runc as SIGWINCH
// and runc passes the size on to the container's terminal.
type ttyIO struct{ slave *os.File }

func (t *ttyIO) Close() error          { return t.slave.Close() }
func (t *ttyIO) Stdin() io.WriteCloser { return nil }
func (t *ttyIO) Stdout() io.ReadCloser { return nil }
func (t *ttyIO) Stderr() io.ReadCloser { return nil }
func (t *ttyIO) Set(cmd *exec.Cmd) {
	cmd.Stdin, cmd.Stdout, cmd.Stderr = t.slave, t.slave, t.slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
}
func (t *ttyIO) CloseAfterStart() error { return t.slave.Close() }

func (r *Runtime) execTTY(ctx context.Context, id string, p specs.Process, o ExecOptions, opts runc.ExecOpts) error {
	master, slavePath, err := console.NewPty()
	if err != nil {
		return fmt.Errorf("allocate terminal: %w", err)
	}
	defer master.Close()
	slave, err := os.OpenFile(slavePath, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("open terminal: %w", err)
	}
	defer slave.Close()
	// This terminal only carries the container's to the client, so it
	// passes every byte as it is: raw. In its default cooked mode it took
	// a ^D from the client as its own end of input, which runc then typed
	// into the container's terminal as a NUL, echoed back as a stray "^@".
	if _, err := term.MakeRaw(int(slave.Fd())); err != nil {
		return fmt.Errorf("set the terminal raw: %w", err)
	}
	if o.Size.Rows > 0 {
		_ = master.Resize(console.WinSize{Height: o.Size.Rows, Width: o.Size.Cols})
	}
	stop := make(chan struct{})
	defer close(stop)
	if o.Resize != nil {
		go func() {
			for {
				select {
				case ws, ok := <-o.Resize:
					if !ok {
						return
					}
					_ = master.Resize(console.WinSize{Height: ws.Rows, Width: ws.Cols})
				case <-stop:
					return
				}
			}
		}()
	}
	if o.Stdin != nil {
		go func() { _, _ = io.Copy(master, o.Stdin) }()
	}
	out := o.Stdout
	if out == nil {
		out = io.Discard
	}
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(out, master) // ends with EIO once runc is gone
		close(copied)
	}()
	opts.IO = &ttyIO{slave: slave}
	err = r.oci.Exec(ctx, id, p, &opts)
	select {
	case <-copied:
	case <-time.After(time.Second):
	}
	return err
}

// Logs writes a container's log to w.
func (r *Runtime) Logs(ctx context.Context, id, name string, o LogOptions, w io.Writer) error {
	g, c, err := r.container(id, name)
	if err != nil {
		return err
	}
	path := c.logPath(o.Previous)
	if o.Previous {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("container %q has no previous run: %w", name, errdefs.ErrNotFound)
		}
	}
	// Follow ends with the run it started on: when that run terminates, or
	// when a restart has begun another (the kubelet's semantics).
	first := g.status().Container(name)
	restarts, running := first.RestartCount, first.CurrentState.State == api.ContainerRunning
	done := func() bool {
		if o.Previous {
			return true
		}
		if _, err := r.get(id); err != nil {
			return true
		}
		st := g.status()
		cs := st.Container(name)
		return st.State == api.GroupStopped || cs.RestartCount != restarts ||
			cs.CurrentState.State == api.ContainerTerminated ||
			(running && cs.CurrentState.State != api.ContainerRunning)
	}
	return logs.Read(ctx, path, logs.Options{
		Tail: o.Tail, Timestamps: o.Timestamps, Since: o.Since, Follow: o.Follow, Done: done, LimitBytes: o.LimitBytes,
	}, w)
}
