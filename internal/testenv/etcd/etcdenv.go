// Package etcdenv runs a real single-member etcd for tests, on free
// 127.0.0.1 ports with its data under the test's temporary directory. A
// test can kill it (SIGKILL, as a crash would), stop it, and start it again
// on the same data and ports, to see what its clients do meanwhile.
//
// The binary is the one hack/build-k8s.sh builds for the Kubernetes test
// control plane (internal/testenv/k8s), in k8senv.BinDir(); SKIFF_K8S_BIN
// overrides that directory. The package uses only the standard library.
package etcdenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/testenv/freeport"
	k8senv "github.com/skiff-sh/skiff/internal/testenv/k8s"
)

// healthTimeout bounds how long Start and Restart wait for etcd to report
// itself healthy.
const healthTimeout = time.Minute

// Etcd is a running test etcd. It is stopped when the test that started it
// ends; its log is shown then if the test failed.
type Etcd struct {
	// Endpoints are its client URLs (one, http://127.0.0.1:<port>). They
	// stay the same across Restart.
	Endpoints []string
	// Dir holds its data (Dir/data) and its log (Dir/etcd.log).
	Dir string

	bin  string
	args []string

	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when cmd has exited; err is then Wait's result.
	exited chan struct{}
	err    error
}

// Start starts etcd and returns once it is healthy. It fails the test if
// the binary is missing (run ./hack/build-k8s.sh) or etcd does not come up.
//
// The process is killed if the OS thread that started it exits
// (Pdeathsig), so a crashed test leaves nothing running: call Start (and
// Restart) from a goroutine that is not locked to a thread it will later
// terminate.
func Start(t testing.TB) *Etcd {
	t.Helper()
	bin := filepath.Join(k8senv.BinDir(), "etcd")
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("etcdenv: %s is missing: run ./hack/build-k8s.sh (make test does) to build etcd into %s, or point SKIFF_K8S_BIN at a directory holding an etcd binary",
			bin, k8senv.BinDir())
	}
	e := &Etcd{Dir: t.TempDir(), bin: bin}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("etcdenv: etcd log tail (%s):\n%s", e.logPath(), e.logTail(40))
		}
		e.Stop()
	})
	// A port picked free can be taken by someone else before etcd binds
	// it: then etcd exits at once, and another pair of ports is tried.
	var err error
	for range 3 {
		var ports []int
		if ports, err = freeport.N(2); err != nil {
			break
		}
		e.configure(ports[0], ports[1])
		if err = e.start(); err != nil {
			break
		}
		if err = e.waitHealthy(); err == nil {
			return e
		}
		e.Kill()
	}
	t.Fatalf("etcdenv: %v", err)
	return nil
}

// configure sets the endpoints and the command line for a client and a
// peer port.
func (e *Etcd) configure(clientPort, peerPort int) {
	client := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peer := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	e.Endpoints = []string{client}
	e.args = []string{
		"--name=skiff-test",
		"--data-dir=" + filepath.Join(e.Dir, "data"),
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=skiff-test=" + peer,
		"--log-level=warn",
		// Tests only: a write is acknowledged before it reaches the disk,
		// which makes writes fast and a kill can lose the last ones (a
		// test that kills etcd only relies on what it wrote before).
		"--unsafe-no-fsync",
		// A single member elects itself after one election timeout: short
		// ones make Start and Restart fast. They also make etcd's smallest
		// lease 1 s (it is 1.5 heartbeat-election rounds), so a test of a
		// 1 s heartbeat sees 1 s.
		"--heartbeat-interval=20",
		"--election-timeout=200",
	}
}

func (e *Etcd) logPath() string { return filepath.Join(e.Dir, "etcd.log") }

// start starts the process, its output appended to the log.
func (e *Etcd) start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	logFile, err := os.OpenFile(e.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open etcd log: %w", err)
	}
	cmd := exec.Command(e.bin, e.args...)
	cmd.Dir = e.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start etcd: %w", err)
	}
	exited := make(chan struct{})
	e.cmd, e.exited = cmd, exited
	go func() {
		err := cmd.Wait()
		logFile.Close()
		e.mu.Lock()
		e.err = err
		e.mu.Unlock()
		close(exited)
	}()
	return nil
}

// waitHealthy polls etcd's /health until it answers healthy, the process
// exits, or healthTimeout passes.
func (e *Etcd) waitHealthy() error {
	e.mu.Lock()
	exited := e.exited
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		if last = health(ctx, client, e.Endpoints[0]); last == nil {
			return nil
		}
		select {
		case <-exited:
			e.mu.Lock()
			defer e.mu.Unlock()
			return fmt.Errorf("etcd exited before it was healthy (%v); its log is %s:\n%s", e.err, e.logPath(), e.logTail(20))
		case <-ctx.Done():
			return fmt.Errorf("etcd not healthy after %s: %v; its log is %s", healthTimeout, last, e.logPath())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// health asks endpoint's /health once.
func health(ctx context.Context, client *http.Client, endpoint string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var h struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return fmt.Errorf("/health: %s: %w", resp.Status, err)
	}
	if h.Health != "true" {
		return fmt.Errorf("/health: %s %q", resp.Status, h.Reason)
	}
	return nil
}

// Kill kills etcd with SIGKILL, as a crash or a power cut would, and
// waits until it is gone. Killing a stopped etcd does nothing.
func (e *Etcd) Kill() { e.signal(syscall.SIGKILL, 0) }

// Stop stops etcd with SIGTERM (SIGKILL after 10 s) and waits until it is
// gone. Stopping a stopped etcd does nothing.
func (e *Etcd) Stop() { e.signal(syscall.SIGTERM, 10*time.Second) }

// signal sends sig to etcd's process group and waits for the process to
// exit, sending SIGKILL after grace.
func (e *Etcd) signal(sig syscall.Signal, grace time.Duration) {
	e.mu.Lock()
	cmd, exited := e.cmd, e.exited
	e.mu.Unlock()
	if cmd == nil {
		return
	}
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, sig)
	if sig != syscall.SIGKILL {
		select {
		case <-exited:
		case <-time.After(grace):
		}
	}
	// Whatever is left of the group (the leader, if it ignored sig) goes;
	// ESRCH (none left) is the usual answer.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-exited
	e.mu.Lock()
	if e.cmd == cmd {
		e.cmd = nil
	}
	e.mu.Unlock()
}

// Restart stops etcd if it runs (SIGTERM), starts it again on the same
// data and ports, and returns once it is healthy; it fails the test if it
// is not.
func (e *Etcd) Restart(t testing.TB) {
	t.Helper()
	e.Stop()
	if err := e.start(); err != nil {
		t.Fatalf("etcdenv: restart: %v", err)
	}
	if err := e.waitHealthy(); err != nil {
		t.Fatalf("etcdenv: restart: %v", err)
	}
}

// logTail returns the last n lines of the log.
func (e *Etcd) logTail(n int) string {
	b, err := os.ReadFile(e.logPath())
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
