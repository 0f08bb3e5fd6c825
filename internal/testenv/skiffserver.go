package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/client"
)

// RunWithSkiff is the body of TestMain in the packages that run the skiff
// binary: it builds the binary into *bin, runs the tests and removes the
// binary. Building it once per package keeps every test on the same binary
// and the build out of the tests' timings.
func RunWithSkiff(m *testing.M, bin *string) int {
	b, dir, err := BuildSkiff()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*bin = b
	return m.Run()
}

// SkiffServerOptions say how StartSkiffServer runs `skiff server`.
type SkiffServerOptions struct {
	// Binary is the skiff binary (see RunWithSkiff).
	Binary string
	// DataDir is the server's data dir; empty is a fresh t.TempDir(). A
	// test that needs files there before the server starts (a
	// registries.yaml) writes them into its own dir and names it here.
	DataDir string
	// Bridge and Subnet are the server's container network; empty leaves
	// the server's defaults. Test packages take networks of their own so
	// that they never share a bridge with a server another package runs.
	Bridge, Subnet string
	// RemoveBridge deletes Bridge once the server has stopped at the end
	// of the test: the server leaves its bridge behind, as it should on a
	// host, and a test that picks a bridge for one test removes it.
	RemoveBridge bool
	// StopGrace is --stop-grace; zero leaves the server's default.
	StopGrace time.Duration
	// LogLevel is --log-level; empty is warn.
	LogLevel string
	// Flags are further flags of `skiff server`.
	Flags []string
}

// SkiffServer is a `skiff server` process that StartSkiffServer started,
// and a client of its API.
type SkiffServer struct {
	// Client calls the API with the admin token, in the server's one
	// subscription. Start makes a new one each time.
	Client *client.Client
	// Addr is the loopback address the API listens on, Endpoint its URL.
	Addr, Endpoint string
	// Token is the admin token and Subscription the server's subscription.
	Token, Subscription string
	// DataDir is the server's data dir, which the server's log is in.
	DataDir string

	t    testing.TB
	o    SkiffServerOptions
	args []string
	cmd  *exec.Cmd
	// exited is closed once cmd has exited.
	exited chan struct{}
}

// StartSkiffServer starts `skiff server` on a free loopback port, waits
// until it answers, and returns it with a client that holds the admin
// token. When the test ends, every resource group is deleted through the
// API (so that nothing the test ran stays on the host) and the server is
// stopped with SIGTERM. The server needs root: it runs real containers.
func StartSkiffServer(t testing.TB, o SkiffServerOptions) *SkiffServer {
	t.Helper()
	RequireRoot(t)
	if o.Binary == "" {
		t.Fatal("SkiffServerOptions.Binary is empty: build the binary in TestMain with testenv.RunWithSkiff")
	}
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	if o.LogLevel == "" {
		o.LogLevel = "warn"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &SkiffServer{Addr: addr, Endpoint: "http://" + addr, DataDir: o.DataDir, t: t, o: o}
	s.args = []string{"server", "--listen", addr, "--data-dir", o.DataDir, "--public-address", "127.0.0.1", "--log-level", o.LogLevel}
	if o.StopGrace != 0 {
		s.args = append(s.args, "--stop-grace", o.StopGrace.String())
	}
	if o.Bridge != "" {
		s.args = append(s.args, "--bridge", o.Bridge)
	}
	if o.Subnet != "" {
		s.args = append(s.args, "--subnet", o.Subnet)
	}
	s.args = append(s.args, o.Flags...)
	// Registered before the start, so that a server that never answers is
	// stopped too.
	t.Cleanup(s.cleanup)
	s.Start()
	return s
}

// Start starts the server (again, after Stop) on the same address and data
// dir, waits until it answers, and reads the admin token and the
// subscription.
func (s *SkiffServer) Start() {
	s.t.Helper()
	logf, err := os.OpenFile(s.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(s.o.Binary, s.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	err = cmd.Start()
	// The server writes to its own copy of the descriptor.
	logf.Close()
	if err != nil {
		s.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	anon, err := client.New(client.Options{Endpoint: s.Endpoint})
	if err != nil {
		s.t.Fatal(err)
	}
	for anon.Healthz(ctx) != nil {
		select {
		case <-exited:
			s.t.Fatalf("skiff server exited before it answered: %v\n%s", cmd.ProcessState, s.LogTail(40))
		case <-ctx.Done():
			s.t.Fatalf("skiff server did not answer /healthz in 30 s:\n%s", s.LogTail(40))
		case <-time.After(50 * time.Millisecond):
		}
	}
	tok, err := os.ReadFile(filepath.Join(s.DataDir, "admin.token"))
	if err != nil {
		s.t.Fatal(err)
	}
	s.Token = strings.TrimSpace(string(tok))
	c, err := client.New(client.Options{Endpoint: s.Endpoint, Token: s.Token})
	if err != nil {
		s.t.Fatal(err)
	}
	subs, err := c.Subscriptions(ctx)
	if err != nil || len(subs) != 1 {
		s.t.Fatalf("the server should list one subscription: %+v %v", subs, err)
	}
	s.Subscription = subs[0].SubscriptionID
	s.Client = c.WithSubscription(s.Subscription)
}

// Running reports whether the server was started and not stopped since.
func (s *SkiffServer) Running() bool { return s.cmd != nil }

// Process is the server's process, while it runs.
func (s *SkiffServer) Process() *os.Process {
	if s.cmd == nil {
		return nil
	}
	return s.cmd.Process
}

// Stop sends the server sig and waits until it has exited: SIGTERM stops
// it as an operator does, SIGKILL crashes it for the tests of recovery.
func (s *SkiffServer) Stop(sig syscall.Signal) {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	<-s.exited
	s.cmd = nil
}

// DeleteResourceGroups deletes every resource group of the subscription
// and waits until none is listed any more.
func (s *SkiffServer) DeleteResourceGroups(ctx context.Context) error {
	rgs, err := s.Client.ListResourceGroups(ctx)
	if err != nil {
		return err
	}
	for _, rg := range rgs {
		// A delete that fails (one is already under way) is seen below:
		// the group stays listed.
		_, _ = s.Client.DeleteResourceGroup(ctx, rg.Name)
	}
	for {
		rgs, err := s.Client.ListResourceGroups(ctx)
		switch {
		case err != nil:
			return err
		case len(rgs) == 0:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("resource groups left: %+v: %w", rgs, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// cleanup runs when the test ends. It is not cancelled with the test's
// context: the test has ended by then.
func (s *SkiffServer) cleanup() {
	if s.Running() && s.Client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if err := s.DeleteResourceGroups(ctx); err != nil {
			s.t.Logf("the test's resource groups were not all deleted: %v", err)
		}
		cancel()
	}
	s.Stop(syscall.SIGTERM)
	if s.o.RemoveBridge && s.o.Bridge != "" {
		_ = exec.Command("ip", "link", "del", s.o.Bridge).Run()
	}
}

// LogPath is the file the server's output goes to, in its data dir; each
// start appends to it.
func (s *SkiffServer) LogPath() string { return filepath.Join(s.DataDir, "server.log") }

// Log returns the server's output so far.
func (s *SkiffServer) Log() string {
	b, _ := os.ReadFile(s.LogPath())
	return string(b)
}

// LogTail returns the last n lines of the server's output, for the
// messages of failed tests.
func (s *SkiffServer) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(s.Log(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// StatusOf is the HTTP status a call of the client ended with: 200 when
// it succeeded, the status of the ARM error it returned, or 0 when the
// server did not answer.
func StatusOf(err error) int {
	var ae *client.APIError
	switch {
	case err == nil:
		return 200
	case errors.As(err, &ae):
		return ae.StatusCode
	}
	return 0
}
