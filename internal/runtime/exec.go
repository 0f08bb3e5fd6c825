package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/containerd/console"
	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/logs"
)

// WindowSize is a terminal size.
type WindowSize struct {
	Rows, Cols uint16
}

// ExecOptions describe a command run in a running container.
type ExecOptions struct {
	Command []string
	// TTY runs the command on a pseudo-terminal; Stderr is then unused.
	TTY bool
	// Size is the initial terminal size (TTY only).
	Size   WindowSize
	Resize <-chan WindowSize
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

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
	if o.TTY {
		err = r.execTTY(ctx, c.runcID, p, o)
	} else {
		err = r.execPipes(ctx, c.runcID, p, o)
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

func (r *Runtime) execPipes(ctx context.Context, id string, p specs.Process, o ExecOptions) error {
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
	return r.oci.Exec(ctx, id, p, &runc.ExecOpts{IO: sio})
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

func (r *Runtime) execTTY(ctx context.Context, id string, p specs.Process, o ExecOptions) error {
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
	err = r.oci.Exec(ctx, id, p, &runc.ExecOpts{IO: &ttyIO{slave: slave}})
	select {
	case <-copied:
	case <-time.After(time.Second):
	}
	return err
}

// LogOptions select a container's log output.
type LogOptions struct {
	Tail       int // last N lines; negative for all
	Timestamps bool
	Follow     bool
	// Previous reads the run before the current one.
	Previous   bool
	Since      time.Time
	LimitBytes int64
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
