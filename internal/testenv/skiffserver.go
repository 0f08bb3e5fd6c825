package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/client"
	etcdenv "github.com/skiff-sh/skiff/internal/testenv/etcd"
	"github.com/skiff-sh/skiff/internal/testenv/freeport"
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
	// DNSListen is --dns-listen; empty runs no DNS server (the default
	// address is one per machine, and test servers run side by side).
	DNSListen string

	// Etcd runs the server in cluster mode on these etcd endpoints
	// (--store etcd); nil is the embedded mode on bbolt.
	Etcd []string
	// Cluster runs the cluster mode on an etcd of its own: etcd, then the
	// server with --agent=false, then one `skiff agent` (named "agent-1")
	// with Bridge and Subnet that runs the groups, so that a suite written
	// for the embedded mode runs unchanged against a cluster.
	Cluster bool
	// NoAgent is --agent=false (cluster mode only).
	NoAgent bool
	// SealKeyFile is --seal-key-file: a second server of a cluster opens
	// the first one's secrets with its key.
	SealKeyFile string
	// TLS also serves the API over HTTPS (--tls-listen on a free loopback
	// port; SkiffServer.TLSEndpoint, CAFile). A Cluster's agent then joins
	// over HTTPS, trusting CAFile (--ca-file), when the server made one.
	TLS bool
}

// SkiffServer is a `skiff server` process that StartSkiffServer started,
// and a client of its API.
type SkiffServer struct {
	// Client calls the API with the admin token, in the server's one
	// subscription. Start makes a new one each time.
	Client *client.Client
	// Addr is the loopback address the API listens on, Endpoint its URL.
	Addr, Endpoint string
	// TLSEndpoint is the HTTPS URL of a TLS server and CAFile its
	// DATA-DIR/ca.crt ("" when it made none: an operator's certificate).
	TLSEndpoint, CAFile string
	// Token is the admin token and Subscription the server's subscription.
	Token, Subscription string
	// DataDir is the server's data dir, which the server's log is in.
	DataDir string
	// Etcd is the etcd a Cluster server started, and Agent its agent.
	Etcd  *etcdenv.Etcd
	Agent *SkiffAgent

	t testing.TB
	o SkiffServerOptions
	skiffProc
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
	addr := FreeLoopbackAddr(t, "127.0.0.1")
	s := &SkiffServer{Addr: addr, Endpoint: "http://" + addr, DataDir: o.DataDir, t: t, o: o}
	s.bin, s.logPath = o.Binary, filepath.Join(o.DataDir, "server.log")
	var etcd *etcdenv.Etcd
	if o.Cluster {
		etcd = etcdenv.Start(t)
		o.Etcd, o.NoAgent = etcd.Endpoints, true
		s.Etcd = etcd
	}
	s.args = []string{"server", "--listen", addr, "--data-dir", o.DataDir, "--log-level", o.LogLevel, "--dns-listen", o.DNSListen}
	if !o.NoAgent {
		ReclaimBridge(t, o.Bridge)
		s.args = append(s.args, "--public-address", "127.0.0.1")
		s.args = append(s.args, runtimeFlags(o.StopGrace, o.Bridge, o.Subnet)...)
	}
	if len(o.Etcd) > 0 {
		s.args = append(s.args, "--store", "etcd", "--etcd-endpoints", strings.Join(o.Etcd, ","))
	}
	if o.NoAgent {
		s.args = append(s.args, "--agent=false")
	}
	if o.SealKeyFile != "" {
		s.args = append(s.args, "--seal-key-file", o.SealKeyFile)
	}
	if o.TLS {
		tlsAddr := FreeLoopbackAddr(t, "127.0.0.1")
		s.TLSEndpoint = "https://" + tlsAddr
		s.args = append(s.args, "--tls-listen", tlsAddr)
	}
	flags, agentFlags := clusterFlags(t, o)
	s.args = append(s.args, flags...)
	// Registered before the start, so that a server that never answers is
	// stopped too.
	t.Cleanup(s.cleanup)
	s.Start()
	if o.Cluster {
		join := s.Endpoint
		if s.CAFile != "" {
			join, agentFlags = s.TLSEndpoint, append(agentFlags, "--ca-file", s.CAFile)
		}
		s.Agent = StartSkiffAgent(t, SkiffAgentOptions{Binary: o.Binary, Servers: []string{join}, JoinTokenFile: s.JoinTokenFile(),
			Name: "agent-1", PublicAddress: "127.0.0.1", Bridge: o.Bridge, Subnet: o.Subnet, RemoveBridge: o.RemoveBridge,
			StopGrace: o.StopGrace, LogLevel: o.LogLevel, Flags: agentFlags})
		s.o.RemoveBridge = false // the agent's
		s.WaitHosts(1)
		s.DeleteAtCleanup()
	}
	return s
}

// runtimeFlags are the flags of a host agent's runtime that the options
// set.
func runtimeFlags(grace time.Duration, bridge, subnet string) []string {
	var args []string
	if grace != 0 {
		args = append(args, "--stop-grace", grace.String())
	}
	if bridge != "" {
		args = append(args, "--bridge", bridge)
	}
	if subnet != "" {
		args = append(args, "--subnet", subnet)
	}
	return args
}

// FreeLoopbackAddr returns a free TCP address on the loopback address ip
// (127.0.0.1, or another of 127.0.0.0/8 for a second host), from
// freeport: no other server the test starts is given the same one.
func FreeLoopbackAddr(t testing.TB, ip string) string {
	t.Helper()
	addr, err := freeport.Addr(ip)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// JoinTokenFile is where a cluster server wrote the join token.
func (s *SkiffServer) JoinTokenFile() string { return filepath.Join(s.DataDir, "join.token") }

// SealKeyFile is the server's seal key (a second server of its cluster
// is given it).
func (s *SkiffServer) SealKeyFile() string { return filepath.Join(s.DataDir, "seal.key") }

// WaitHosts waits until n hosts are Ready.
func (s *SkiffServer) WaitHosts(n int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		hosts, err := s.Client.ListHosts(ctx)
		ready := 0
		for _, h := range hosts {
			if h.Properties.State == "Ready" {
				ready++
			}
		}
		if err == nil && ready >= n {
			return
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("%d hosts should be Ready: %+v %v\n%s", n, hosts, err, s.LogTail(40))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Start starts the server (again, after Stop) on the same address and data
// dir, waits until it answers, and reads the admin token and the
// subscription.
func (s *SkiffServer) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
	cmd, exited := s.cmd, s.exited
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
	if ca := filepath.Join(s.DataDir, "ca.crt"); s.o.TLS && fileExists(ca) {
		s.CAFile = ca
	}
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

// Stop sends the server sig and waits until it has exited: SIGTERM stops
// it as an operator does, SIGKILL crashes it for the tests of recovery.
func (s *SkiffServer) Stop(sig syscall.Signal) { s.stop(sig) }

// DeleteAtCleanup deletes the test's resource groups first when the test
// ends, before the agents started after the server stop: call it once
// they are started.
func (s *SkiffServer) DeleteAtCleanup() {
	s.t.Cleanup(func() {
		if s.Running() && s.Client != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := s.DeleteResourceGroups(ctx); err != nil {
				s.t.Logf("the test's resource groups were not all deleted: %v", err)
			}
		}
	})
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

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
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
