package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// skiffProc is a skiff process a test runs (a server or an agent), its
// output appended to a log file.
type skiffProc struct {
	bin, logPath string
	args         []string
	cmd          *exec.Cmd
	// exited is closed once cmd has exited.
	exited chan struct{}
}

// start starts the process; it does not wait for it to serve.
func (p *skiffProc) start() error {
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	err = cmd.Start()
	// The process writes to its own copy of the descriptor.
	logf.Close()
	if err != nil {
		return fmt.Errorf("start %s: %w", strings.Join(p.args[:1], " "), err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
	return nil
}

// Running reports whether the process was started and not stopped since.
func (p *skiffProc) Running() bool { return p.cmd != nil }

// Process is the running process, or nil.
func (p *skiffProc) Process() *os.Process {
	if p.cmd == nil {
		return nil
	}
	return p.cmd.Process
}

// stop sends sig and waits until the process has exited.
func (p *skiffProc) stop(sig syscall.Signal) {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	<-p.exited
	p.cmd = nil
}

// LogPath is the file the process's output goes to; each start appends
// to it.
func (p *skiffProc) LogPath() string { return p.logPath }

// Log returns the process's output so far.
func (p *skiffProc) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// LogTail returns the last n lines of the output, for the messages of
// failed tests.
func (p *skiffProc) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
