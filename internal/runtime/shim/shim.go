// Package shim keeps one container's process company, so that the runtime
// process can die and come back without touching the container.
//
// The runtime starts `skiff shim …` for each container run. The shim, in its
// own session, becomes a child subreaper, runs `runc run -d` with pipes as the
// container's stdout and stderr, reports the container's PID (or the error) on
// a ready pipe, copies the pipes into the container's log file, reaps the
// container when it exits and writes an exit file. The runtime watches the
// shim's PID: when the shim is gone, the exit file tells how the container
// ended. Nothing here depends on the runtime process being alive.
package shim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/internal/atomicfile"
	"github.com/skiff-sh/skiff/internal/runtime/logs"
)

// Options configure one shim.
type Options struct {
	ID          string // runc container id
	Bundle      string // bundle directory with config.json
	Runtime     string // runc or crun binary
	RuntimeRoot string // --root of the OCI runtime
	LogPath     string // the run's log file
	LogMaxBytes int64
	ExitFile    string // where the exit record is written
	OOMCheck    string // cgroups path whose OOM counter classifies a kill
}

func (o Options) args() []string {
	return []string{
		"--id", o.ID, "--bundle", o.Bundle, "--runtime", o.Runtime, "--runtime-root", o.RuntimeRoot,
		"--log", o.LogPath, "--log-max-bytes", strconv.FormatInt(o.LogMaxBytes, 10),
		"--exit-file", o.ExitFile, "--oom-check", o.OOMCheck,
	}
}

// Exit is how a container run ended.
type Exit struct {
	Pid        int       `json:"pid"`
	ExitCode   int       `json:"exitCode"`
	Signal     string    `json:"signal,omitempty"`
	OOMKilled  bool      `json:"oomKilled,omitempty"`
	FinishedAt time.Time `json:"finishedAt"`
}

// OOMChecker reports whether a cgroup saw an OOM kill. The shim gets it from
// its caller so that this package does not depend on cgroup layouts.
type OOMChecker func(cgroupsPath string) (bool, error)

// Main is the body of `skiff shim`. It returns the process exit code.
func Main(args []string, oom OOMChecker) int {
	fs := flag.NewFlagSet("shim", flag.ContinueOnError)
	var o Options
	fs.StringVar(&o.ID, "id", "", "")
	fs.StringVar(&o.Bundle, "bundle", "", "")
	fs.StringVar(&o.Runtime, "runtime", "runc", "")
	fs.StringVar(&o.RuntimeRoot, "runtime-root", "", "")
	fs.StringVar(&o.LogPath, "log", "", "")
	fs.Int64Var(&o.LogMaxBytes, "log-max-bytes", 0, "")
	fs.StringVar(&o.ExitFile, "exit-file", "", "")
	fs.StringVar(&o.OOMCheck, "oom-check", "", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	// The ready pipe must not leak into runc and the container: if it did, a
	// shim that dies before reporting would never be seen to have died.
	unix.CloseOnExec(3)
	ready := os.NewFile(3, "ready")
	if err := run(o, ready, oom); err != nil {
		fmt.Fprintf(os.Stderr, "shim %s: %v\n", o.ID, err)
		return 1
	}
	return 0
}

func run(o Options, ready *os.File, oom OOMChecker) error {
	signal.Ignore(unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGPIPE)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return reportFail(ready, fmt.Errorf("subreaper: %w", err))
	}
	lw, err := logs.NewWriter(o.LogPath, o.LogMaxBytes)
	if err != nil {
		return reportFail(ready, err)
	}
	defer lw.Close()
	pio, err := runc.NewPipeIO(0, 0)
	if err != nil {
		return reportFail(ready, fmt.Errorf("pipes: %w", err))
	}
	var copies sync.WaitGroup
	for stream, r := range map[string]io.Reader{logs.Stdout: pio.Stdout(), logs.Stderr: pio.Stderr()} {
		copies.Add(1)
		go func() {
			defer copies.Done()
			_ = lw.Copy(stream, r)
		}()
	}
	pio.Stdin().Close()

	rc := &runc.Runc{
		Command:   o.Runtime,
		Root:      o.RuntimeRoot,
		Log:       filepath.Join(o.Bundle, "runtime.log"),
		LogFormat: runc.JSON,
	}
	pidFile := filepath.Join(o.Bundle, "init.pid")
	_ = os.Remove(pidFile)
	_ = os.Remove(o.ExitFile)
	_, err = rc.Run(context.Background(), o.ID, o.Bundle, &runc.CreateOpts{IO: pio, PidFile: pidFile, Detach: true})
	if c, ok := pio.(runc.StartCloser); ok {
		_ = c.CloseAfterStart()
	}
	if err != nil {
		pio.Close()
		return reportFail(ready, fmt.Errorf("%s run: %s", filepath.Base(o.Runtime), runtimeError(rc.Log, err)))
	}
	pid, err := runc.ReadPidFile(pidFile)
	if err != nil {
		return reportFail(ready, fmt.Errorf("read pid file: %w", err))
	}
	fmt.Fprintf(ready, "ok %d\n", pid)
	ready.Close()

	exit := Exit{Pid: pid, ExitCode: 255}
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(-1, &ws, 0, nil)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			break // ECHILD: nothing left to reap
		}
		if wpid != pid {
			continue
		}
		switch {
		case ws.Exited():
			exit.ExitCode = ws.ExitStatus()
		case ws.Signaled():
			exit.ExitCode = 128 + int(ws.Signal())
			exit.Signal = unix.SignalName(ws.Signal())
		}
		break
	}
	exit.FinishedAt = time.Now().UTC()
	if oom != nil && o.OOMCheck != "" && exit.Signal == "SIGKILL" {
		exit.OOMKilled, _ = oom(o.OOMCheck)
	}
	// Every process of the container's PID namespace is gone with its init,
	// so the pipes reach EOF; do not wait forever on a leaked writer.
	drained := make(chan struct{})
	go func() { copies.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(2 * time.Second):
	}
	return writeExit(o.ExitFile, exit)
}

func reportFail(ready *os.File, err error) error {
	fmt.Fprintf(ready, "error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
	ready.Close()
	return err
}

// runtimeError picks the last error message from runc's JSON log.
func runtimeError(logPath string, err error) string {
	f, ferr := os.Open(logPath)
	if ferr != nil {
		return err.Error()
	}
	defer f.Close()
	msg := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && (rec.Level == "error" || rec.Level == "fatal") {
			msg = rec.Msg
		}
	}
	if msg == "" {
		return err.Error()
	}
	return msg
}

func writeExit(path string, e Exit) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o600)
}

// ReadExit reads a shim's exit file.
func ReadExit(path string) (*Exit, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var e Exit
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("exit file %s: %w", path, err)
	}
	return &e, nil
}

// startTimeout bounds how long a container may take to start once its image
// and root filesystem are ready.
const startTimeout = time.Minute

// Started is a running shim, as returned by Start.
type Started struct {
	ShimPid int
	Pid     int // the container's init process
}

// Start launches a shim with command (e.g. ["/usr/bin/skiff", "shim"]) and
// waits until the container runs or fails to start. launched, if set, is
// called with the shim's PID as soon as the shim exists, before the
// container does, so the caller can record it: a caller that dies while
// waiting then finds the shim again instead of starting a second one.
func Start(ctx context.Context, command []string, o Options, shimLog string, launched func(shimPid int)) (*Started, error) {
	rd, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	logf, err := os.OpenFile(shimLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		wr.Close()
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(command[0], append(append([]string{}, command[1:]...), o.args()...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{wr}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		wr.Close()
		return nil, fmt.Errorf("start shim: %w", err)
	}
	wr.Close()
	go func() { _ = cmd.Wait() }() // reap the shim if we outlive it
	if launched != nil {
		launched(cmd.Process.Pid)
	}

	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(rd).ReadString('\n')
		ch <- result{strings.TrimSpace(line), err}
	}()
	var res result
	timeout := time.NewTimer(startTimeout)
	defer timeout.Stop()
	select {
	case res = <-ch:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the shim leads its own session
		return nil, ctx.Err()
	case <-timeout.C:
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		data, _ := os.ReadFile(shimLog)
		return nil, fmt.Errorf("container did not start within %s: %s", startTimeout, strings.TrimSpace(string(data)))
	}
	switch {
	case strings.HasPrefix(res.line, "ok "):
		pid, err := strconv.Atoi(strings.TrimPrefix(res.line, "ok "))
		if err != nil {
			return nil, fmt.Errorf("shim said %q", res.line)
		}
		return &Started{ShimPid: cmd.Process.Pid, Pid: pid}, nil
	case strings.HasPrefix(res.line, "error "):
		return nil, errors.New(strings.TrimPrefix(res.line, "error "))
	default:
		data, _ := os.ReadFile(shimLog)
		return nil, fmt.Errorf("shim exited without a report: %v %s", res.err, strings.TrimSpace(string(data)))
	}
}
