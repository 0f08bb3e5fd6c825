package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SkiffAgentOptions say how StartSkiffAgent runs `skiff agent`.
type SkiffAgentOptions struct {
	// Binary is the skiff binary (see RunWithSkiff).
	Binary string
	// Servers are the cluster servers' URLs and JoinTokenFile a server's
	// join token.
	Servers       []string
	JoinTokenFile string
	// Name is the host's name (--name).
	Name string
	// DataDir is the agent's data dir; empty is a fresh t.TempDir().
	DataDir string
	// PublicAddress is the loopback address that stands for the host
	// (127.0.0.2, …): its published ports answer there, and its API
	// listens there on a free port. Empty is 127.0.0.1.
	PublicAddress string
	// Bridge and Subnet are the host's container network; each host of a
	// test needs its own. RemoveBridge deletes Bridge at the end.
	Bridge, Subnet string
	RemoveBridge   bool
	// CPU and MemoryGB are what the host offers (--cpu, --memory); zero
	// is the machine's.
	CPU, MemoryGB float64
	StopGrace     time.Duration
	// LogLevel is --log-level; empty is warn.
	LogLevel string
	Flags    []string
}

// SkiffAgent is a `skiff agent` process.
type SkiffAgent struct {
	// Name is the host's name, Addr where its API listens.
	Name, Addr string
	DataDir    string

	t testing.TB
	o SkiffAgentOptions
	skiffProc
}

// StartSkiffAgent starts `skiff agent` and waits until its API answers.
// It is stopped with SIGTERM when the test ends (its containers keep
// running, as on a host: delete the test's groups first, see
// SkiffServer.DeleteAtCleanup).
func StartSkiffAgent(t testing.TB, o SkiffAgentOptions) *SkiffAgent {
	t.Helper()
	RequireRoot(t)
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	if o.LogLevel == "" {
		o.LogLevel = "warn"
	}
	if o.PublicAddress == "" {
		o.PublicAddress = "127.0.0.1"
	}
	a := &SkiffAgent{Name: o.Name, Addr: FreeLoopbackAddr(t, o.PublicAddress), DataDir: o.DataDir, t: t, o: o}
	a.bin, a.logPath = o.Binary, filepath.Join(o.DataDir, "agent.log")
	a.args = []string{"agent", "--server", strings.Join(o.Servers, ","), "--join-token-file", o.JoinTokenFile, "--name", o.Name,
		"--data-dir", o.DataDir, "--listen", a.Addr, "--public-address", o.PublicAddress, "--log-level", o.LogLevel}
	a.args = append(a.args, runtimeFlags(o.StopGrace, o.Bridge, o.Subnet)...)
	ReclaimBridge(t, o.Bridge)
	if o.CPU > 0 {
		a.args = append(a.args, "--cpu", fmt.Sprint(o.CPU))
	}
	if o.MemoryGB > 0 {
		a.args = append(a.args, "--memory", fmt.Sprint(o.MemoryGB))
	}
	a.args = append(a.args, o.Flags...)
	t.Cleanup(func() {
		a.Stop(syscall.SIGTERM)
		if o.RemoveBridge && o.Bridge != "" {
			// What a cluster agent names after its bridge: the link, its
			// guard's nftables tables and its (empty by now) cgroup root.
			_ = exec.Command("ip", "link", "del", o.Bridge).Run()
			for _, family := range []string{"inet", "bridge"} {
				_ = exec.Command("nft", "delete", "table", family, "skiff_"+o.Bridge).Run()
			}
			dirs, _ := filepath.Glob("/sys/fs/cgroup/*/skiff-" + o.Bridge)
			more, _ := filepath.Glob("/sys/fs/cgroup/skiff-" + o.Bridge)
			for _, d := range append(dirs, more...) {
				_ = os.Remove(d)
			}
		}
	})
	a.Start()
	return a
}

// Start starts the agent (again, after Stop) with the same name, data dir
// and address, and waits until its API answers (401 without a token).
func (a *SkiffAgent) Start() {
	a.t.Helper()
	if err := a.start(); err != nil {
		a.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.Addr+"/v1/groups", nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			return
		}
		select {
		case <-a.exited:
			a.t.Fatalf("skiff agent %s exited before it answered:\n%s", a.Name, a.LogTail(40))
		case <-ctx.Done():
			a.t.Fatalf("skiff agent %s did not answer in 60 s:\n%s", a.Name, a.LogTail(40))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop sends the agent sig and waits until it has exited: SIGKILL is a
// host's crash.
func (a *SkiffAgent) Stop(sig syscall.Signal) { a.stop(sig) }
