package network

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

var testNetSeq atomic.Int32

// testConfig returns a config with a bridge, subnet and network name of its
// own, and registers cleanup of the bridge and of the shared CNI chains the
// test created.
func testConfig(t *testing.T) Config {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("network tests need root (netns, bridge, iptables)")
	}
	for _, bin := range []string{"bridge", "host-local", "portmap", "firewall"} {
		if _, err := os.Stat(filepath.Join(DefaultPluginDir, bin)); err != nil {
			t.Fatalf("CNI plugin %s missing (apt-get install containernetworking-plugins): %v", bin, err)
		}
	}
	if _, err := exec.LookPath("iptables-save"); err != nil {
		t.Fatalf("iptables missing: %v", err)
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatalf("nft missing (apt-get install nftables): %v", err)
	}
	n := testNetSeq.Add(1)
	name := fmt.Sprintf("skt%d%d", os.Getpid()%1000, n)
	cfg := Config{
		StateDir:      t.TempDir(),
		BridgeName:    name,
		Subnet:        fmt.Sprintf("10.202.%d.0/24", (os.Getpid()*7+int(n))%250),
		PublicAddress: "127.0.0.1",
		NetworkName:   name,
	}
	if testing.Verbose() {
		cfg.Logger = slogForTest(t)
	}
	deleteLink(t, name) // a leftover from a crashed run
	forward, err := os.ReadFile(ipForward)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The bridge plugin turns on IPv4 forwarding (isGateway); nothing
		// here needs it, so put the host back as it was.
		if err := os.WriteFile(ipForward, forward, 0o644); err != nil {
			t.Errorf("restore %s: %v", ipForward, err)
		}
	})
	t.Cleanup(func() {
		m, err := New(cfg)
		if err == nil {
			// Whatever a failed test left attached.
			ids, _ := m.Attachments()
			entries, _ := os.ReadDir(filepath.Join(cfg.StateDir, "netns"))
			for _, e := range entries {
				if !isPoolID(e.Name()) { // Destroy drops the pool's
					ids = append(ids, e.Name())
				}
			}
			for _, id := range ids {
				if err := m.Teardown(context.Background(), id); err != nil {
					t.Errorf("cleanup: Teardown(%s): %v", id, err)
				}
			}
			err = m.Destroy(context.Background())
		}
		if err != nil {
			t.Errorf("cleanup: Destroy: %v", err)
			deleteLink(t, name)
		}
	})
	return cfg
}

const ipForward = "/proc/sys/net/ipv4/ip_forward"

func deleteLink(t *testing.T, name string) {
	t.Helper()
	if l, err := netlink.LinkByName(name); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			t.Errorf("delete link %s: %v", name, err)
		}
	}
}

// presentSharedChains lists the shared CNI chains that exist now.
func presentSharedChains(t *testing.T) []string {
	t.Helper()
	var have []string
	for _, c := range sharedChains {
		if exec.Command("iptables", "-w", "-t", c.table, "-n", "-L", c.name).Run() == nil {
			have = append(have, c.name)
		}
	}
	return have
}

// inNetNS runs fn on a thread inside the namespace mounted at path. Sockets
// fn creates stay in that namespace when used from other goroutines.
func inNetNS(t *testing.T, path string, fn func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, err) // thread stays locked and dies
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// serveTCP starts an echo server inside the namespace that answers each line
// with tag + line.
func serveTCP(t *testing.T, nsPath string, port int32, tag string) {
	t.Helper()
	var ln net.Listener
	if err := inNetNS(t, nsPath, func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatalf("listen tcp in %s: %v", nsPath, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return
				}
				fmt.Fprintf(c, "%s %s", tag, line)
			}()
		}
	}()
}

// serveUDP starts a UDP echo server inside the namespace.
func serveUDP(t *testing.T, nsPath string, port int32, tag string) {
	t.Helper()
	var pc net.PacketConn
	if err := inNetNS(t, nsPath, func() (err error) {
		pc, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatalf("listen udp in %s: %v", nsPath, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(tag+" "+string(buf[:n])), addr)
		}
	}()
}

// tcpAsk dials addr (from the namespace at nsPath, or the host if empty),
// sends one line and returns the answer.
func tcpAsk(t *testing.T, nsPath, addr, msg string) (string, error) {
	t.Helper()
	var c net.Conn
	dial := func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, 3*time.Second)
		return err
	}
	var err error
	if nsPath == "" {
		err = dial()
	} else {
		err = inNetNS(t, nsPath, dial)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// udpAsk sends msg to addr from the host and waits for an answer, retrying a
// few times since UDP may drop.
func udpAsk(t *testing.T, addr, msg string) (string, error) {
	t.Helper()
	c, err := net.Dial("udp4", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	buf := make([]byte, 1500)
	var lastErr error
	for range 3 {
		if _, err := c.Write([]byte(msg)); err != nil {
			lastErr = err
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err == nil {
			return string(buf[:n]), nil
		}
		lastErr = err
	}
	return "", lastErr
}

// freePort returns a port nothing on the host's loopback listens on for network.
func freePort(t *testing.T, network string) int32 {
	t.Helper()
	switch network {
	case "tcp":
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return int32(ln.Addr().(*net.TCPAddr).Port)
	default:
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return int32(pc.LocalAddr().(*net.UDPAddr).Port)
	}
}

func newManager(t *testing.T, cfg Config) *Manager {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

func setup(t *testing.T, m *Manager, id string, ports []api.Port) *Attachment {
	t.Helper()
	att, err := m.Setup(context.Background(), id, Request{Ports: ports})
	if err != nil {
		t.Fatalf("Setup(%s): %v", id, err)
	}
	t.Cleanup(func() {
		if err := m.Teardown(context.Background(), id); err != nil {
			t.Errorf("cleanup Teardown(%s): %v", id, err)
		}
	})
	return att
}

func teardown(t *testing.T, m *Manager, id string) {
	t.Helper()
	if err := m.Teardown(context.Background(), id); err != nil {
		t.Fatalf("Teardown(%s): %v", id, err)
	}
}

func leaks(t *testing.T, cfg Config) LeakCount {
	t.Helper()
	lc, err := CountLeaks(cfg)
	if err != nil {
		t.Fatalf("CountLeaks: %v", err)
	}
	return lc
}

func assertNoLeaks(t *testing.T, cfg Config) {
	t.Helper()
	if lc := leaks(t, cfg); !lc.Zero() {
		rules, _ := networkRules(mustDefaults(t, cfg))
		t.Fatalf("leaks after teardown: %+v\nrules:\n%s", lc, strings.Join(rules, "\n"))
	}
}

func mustDefaults(t *testing.T, cfg Config) Config {
	t.Helper()
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestTwoGroupsReachEachOtherAndPublishedPorts(t *testing.T) {
	cfg := testConfig(t)
	m := newManager(t, cfg)
	tcpPort, udpPort, hiddenPort := freePort(t, "tcp"), freePort(t, "udp"), freePort(t, "tcp")

	a := setup(t, m, "group-a", []api.Port{{Protocol: "TCP", Port: tcpPort}, {Protocol: "UDP", Port: udpPort}})
	b := setup(t, m, "group-b", nil)

	_, subnet, _ := net.ParseCIDR(cfg.Subnet)
	for _, att := range []*Attachment{a, b} {
		if !subnet.Contains(att.IP) {
			t.Errorf("%s: IP %s not in %s", att.ID, att.IP, subnet)
		}
		if att.Gateway == nil || !subnet.Contains(att.Gateway) || att.Gateway.Equal(att.IP) {
			t.Errorf("%s: bad gateway %v", att.ID, att.Gateway)
		}
		if !isNetNS(att.NetNSPath) || filepath.Dir(att.NetNSPath) != filepath.Join(cfg.StateDir, "netns") {
			t.Errorf("%s: netns %s is not a mounted namespace under StateDir", att.ID, att.NetNSPath)
		}
	}
	if a.IP.Equal(b.IP) {
		t.Fatalf("both groups got %s", a.IP)
	}
	if len(a.Ports) != 2 || a.Ports[0] != (api.Port{Protocol: "TCP", Port: tcpPort}) || a.Ports[1] != (api.Port{Protocol: "UDP", Port: udpPort}) {
		t.Errorf("a.Ports = %+v", a.Ports)
	}
	lc := leaks(t, cfg)
	if lc.NetNS != 2 || lc.Veths != 2 || lc.IPAllocations != 2 || lc.IPTablesRules == 0 {
		t.Errorf("CountLeaks with two groups up = %+v, want 2 netns, 2 veths, 2 leases, some rules", lc)
	}

	// lo is up inside the namespace.
	serveTCP(t, a.NetNSPath, hiddenPort, "lo")
	if got, err := tcpAsk(t, a.NetNSPath, fmt.Sprintf("127.0.0.1:%d", hiddenPort), "ping"); err != nil || got != "lo ping" {
		t.Errorf("loopback inside a: %q, %v", got, err)
	}

	serveTCP(t, a.NetNSPath, tcpPort, "a-tcp")
	serveUDP(t, a.NetNSPath, udpPort, "a-udp")

	// Group to group over the bridge.
	if got, err := tcpAsk(t, b.NetNSPath, net.JoinHostPort(a.IP.String(), fmt.Sprint(tcpPort)), "from-b"); err != nil || got != "a-tcp from-b" {
		t.Errorf("b -> a: %q, %v", got, err)
	}
	// Host to the group's IP (route via the bridge).
	if got, err := tcpAsk(t, "", net.JoinHostPort(a.IP.String(), fmt.Sprint(tcpPort)), "from-host"); err != nil || got != "a-tcp from-host" {
		t.Errorf("host -> a.IP: %q, %v", got, err)
	}
	// Published ports on 127.0.0.1.
	if got, err := tcpAsk(t, "", fmt.Sprintf("127.0.0.1:%d", tcpPort), "published"); err != nil || got != "a-tcp published" {
		t.Errorf("127.0.0.1:%d/tcp: %q, %v", tcpPort, got, err)
	}
	if got, err := udpAsk(t, fmt.Sprintf("127.0.0.1:%d", udpPort), "dgram"); err != nil || got != "a-udp dgram" {
		t.Errorf("127.0.0.1:%d/udp: %q, %v", udpPort, got, err)
	}
	// A port that was not published is not reachable on 127.0.0.1.
	if got, err := tcpAsk(t, "", fmt.Sprintf("127.0.0.1:%d", hiddenPort), "nope"); err == nil {
		t.Errorf("unpublished port %d answered %q on 127.0.0.1", hiddenPort, got)
	}
	// b cannot leave the host: it has no default route.
	if err := inNetNS(t, b.NetNSPath, func() error {
		routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if r.Dst == nil || r.Dst.IP.Equal(net.IPv4zero) {
				return fmt.Errorf("default route %v", r)
			}
		}
		return nil
	}); err != nil {
		t.Errorf("routes in b: %v", err)
	}

	// Attachment lookup.
	got, err := m.Attachment("group-a")
	if err != nil || !got.IP.Equal(a.IP) || got.NetNSPath != a.NetNSPath || len(got.Ports) != 2 {
		t.Errorf("Attachment(group-a) = %+v, %v; want %+v", got, err, a)
	}
	if _, err := m.Attachment("nobody"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Attachment(nobody) error = %v, want ErrNotFound", err)
	}

	teardown(t, m, "group-a")
	teardown(t, m, "group-b")
	assertNoLeaks(t, cfg)
	if got, err := tcpAsk(t, "", fmt.Sprintf("127.0.0.1:%d", tcpPort), "gone"); err == nil {
		t.Errorf("127.0.0.1:%d still answers after teardown: %q", tcpPort, got)
	}
	if _, err := m.Attachment("group-a"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Attachment after teardown error = %v, want ErrNotFound", err)
	}
	// Idempotent.
	teardown(t, m, "group-a")
	teardown(t, m, "never-set-up")
	assertNoLeaks(t, cfg)
}

func TestTeardownAfterRestart(t *testing.T) {
	cfg := testConfig(t)
	port := freePort(t, "tcp")
	old := newManager(t, cfg)
	att := setup(t, old, "restarted", []api.Port{{Protocol: "TCP", Port: port}})
	serveTCP(t, att.NetNSPath, port, "r")
	if got, err := tcpAsk(t, "", fmt.Sprintf("127.0.0.1:%d", port), "before"); err != nil || got != "r before" {
		t.Fatalf("published port before restart: %q, %v", got, err)
	}

	m := newManager(t, cfg) // a new process on the same StateDir
	got, err := m.Attachment("restarted")
	if err != nil {
		t.Fatalf("Attachment after restart: %v", err)
	}
	if !got.IP.Equal(att.IP) || !got.Gateway.Equal(att.Gateway) || got.NetNSPath != att.NetNSPath ||
		len(got.Ports) != 1 || got.Ports[0] != att.Ports[0] {
		t.Errorf("Attachment after restart = %+v, want %+v", got, att)
	}
	// The new manager knows the port is taken.
	if _, err := m.Setup(context.Background(), "other", Request{Ports: []api.Port{{Protocol: "TCP", Port: port}}}); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("Setup with a port published before restart: %v, want ErrConflict", err)
	}

	teardown(t, m, "restarted")
	assertNoLeaks(t, cfg)
	if got, err := tcpAsk(t, "", fmt.Sprintf("127.0.0.1:%d", port), "after"); err == nil {
		t.Errorf("published port still answers after teardown: %q", got)
	}
	// The port is free again.
	setup(t, m, "other", []api.Port{{Protocol: "TCP", Port: port}})
	teardown(t, m, "other")
	assertNoLeaks(t, cfg)
}

// TestSecondHolderOfABridgeIsRefused: a second data dir on a bridge whose
// veths another one made (another server given the same --bridge, or the
// namespaces a killed one left) leases the same addresses from its own
// store, so its New fails, naming the interfaces, while a restart on the
// first data dir, with its group and its pool, is not refused.
func TestSecondHolderOfABridgeIsRefused(t *testing.T) {
	cfg := testConfig(t)
	cfg.PoolSize = 2
	first := newManager(t, cfg)
	att := setup(t, first, "first", nil)
	waitPool(t, first, 2)
	hostEnd := ""
	if err := withHandle(att.NetNSPath, func(h *netlink.Handle) error {
		l, err := h.LinkByName(IfName)
		if err == nil {
			peer, perr := netlink.LinkByIndex(l.Attrs().ParentIndex)
			if perr != nil {
				return perr
			}
			hostEnd = peer.Attrs().Name
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}

	other := cfg
	other.StateDir, other.PoolSize = t.TempDir(), 0
	_, err := New(other)
	if !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), hostEnd) || !strings.Contains(err.Error(), "carries 3 interfaces") {
		t.Fatalf("New on another data dir with the bridge in use: %v; want ErrConflict naming %s among 3", err, hostEnd)
	}
	if entries, _ := os.ReadDir(filepath.Join(other.StateDir, "netns")); len(entries) != 0 {
		t.Errorf("the refused New left namespaces: %v", entries)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again := newManager(t, Config{StateDir: cfg.StateDir, BridgeName: cfg.BridgeName, Subnet: cfg.Subnet,
		PublicAddress: cfg.PublicAddress, NetworkName: cfg.NetworkName})
	if got, err := again.Attachment("first"); err != nil || !got.IP.Equal(att.IP) {
		t.Errorf("after a restart on the same data dir: %+v, %v", got, err)
	}
	teardown(t, again, "first")
	if m, err := New(other); err != nil {
		t.Errorf("New on another data dir once the bridge is free: %v", err)
	} else {
		_ = m.Close()
	}
}

func TestSetupErrors(t *testing.T) {
	cfg := testConfig(t)
	m := newManager(t, cfg)
	port := freePort(t, "tcp")
	setup(t, m, "first", []api.Port{{Port: port}})

	cases := []struct {
		name  string
		id    string
		ports []api.Port
		want  error
	}{
		{"same id", "first", nil, errdefs.ErrAlreadyExists},
		{"port taken", "second", []api.Port{{Protocol: "tcp", Port: port}}, errdefs.ErrConflict},
		{"bad id", "../x", nil, errdefs.ErrInvalidArgument},
		{"bad protocol", "third", []api.Port{{Protocol: "SCTP", Port: 80}}, errdefs.ErrInvalidArgument},
		{"bad port", "third", []api.Port{{Port: 70000}}, errdefs.ErrInvalidArgument},
		{"duplicate port", "third", []api.Port{{Port: 81}, {Protocol: "TCP", Port: 81}}, errdefs.ErrInvalidArgument},
	}
	for _, tc := range cases {
		if _, err := m.Setup(context.Background(), tc.id, Request{Ports: tc.ports}); !errors.Is(err, tc.want) {
			t.Errorf("%s: Setup error = %v, want %v", tc.name, err, tc.want)
		}
	}
	// "first" is untouched by the failed attempts.
	if lc := leaks(t, cfg); lc.NetNS != 1 || lc.Veths != 1 || lc.IPAllocations != 1 {
		t.Errorf("after failed setups: %+v, want only the first group", lc)
	}
	att, err := m.Attachment("first")
	if err != nil || len(att.Ports) != 1 || att.Ports[0] != (api.Port{Protocol: "TCP", Port: port}) {
		t.Errorf("Attachment(first) = %+v, %v", att, err)
	}
	if _, err := New(Config{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("New without StateDir: %v", err)
	}
}

// A plugin failing halfway through ADD leaves nothing behind.
func TestSetupRollsBack(t *testing.T) {
	cfg := testConfig(t)
	dir := t.TempDir()
	for _, p := range []string{"bridge", "host-local", "firewall"} {
		if err := os.Symlink(filepath.Join(DefaultPluginDir, p), filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	// portmap fails on ADD (after bridge made a veth and took an IP) and
	// delegates everything else to the real plugin.
	script := fmt.Sprintf(`#!/bin/sh
if [ "$CNI_COMMAND" = ADD ]; then
  echo '{"cniVersion":"1.0.0","code":11,"msg":"injected failure"}'
  exit 1
fi
exec %s/portmap
`, DefaultPluginDir)
	if err := os.WriteFile(filepath.Join(dir, "portmap"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg.PluginDirs = []string{dir}
	m := newManager(t, cfg)
	port := freePort(t, "tcp")
	_, err := m.Setup(context.Background(), "doomed", Request{Ports: []api.Port{{Port: port}}})
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("Setup error = %v, want the injected failure", err)
	}
	assertNoLeaks(t, cfg)
	if _, err := m.Attachment("doomed"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Attachment(doomed) = %v, want ErrNotFound", err)
	}
	// The port reservation was released too.
	cfg.PluginDirs = nil
	m2 := newManager(t, cfg)
	setup(t, m2, "fine", []api.Port{{Port: port}})
	teardown(t, m2, "fine")
	assertNoLeaks(t, cfg)
}

func TestSetupTeardownCyclesLeaveNothing(t *testing.T) {
	cfg := testConfig(t)
	m := newManager(t, cfg)
	tcpPort, udpPort := freePort(t, "tcp"), freePort(t, "udp")
	ports := []api.Port{{Protocol: "TCP", Port: tcpPort}, {Protocol: "UDP", Port: udpPort}}
	start := time.Now()
	for i := range 20 {
		id := fmt.Sprintf("cycle-%d", i)
		att, err := m.Setup(context.Background(), id, Request{Ports: ports})
		if err != nil {
			t.Fatalf("cycle %d: Setup: %v", i, err)
		}
		assertNoThreadInNetNS(t, att.NetNSPath)
		if i%5 == 0 {
			if lc := leaks(t, cfg); lc.NetNS != 1 || lc.Veths != 1 || lc.IPAllocations != 1 || lc.IPTablesRules == 0 {
				t.Errorf("cycle %d: with one group up CountLeaks = %+v", i, lc)
			}
		}
		teardown(t, m, id)
	}
	t.Logf("20 setup/teardown cycles in %v", time.Since(start))
	assertNoLeaks(t, cfg)
}

func slogForTest(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestDestroyRemovesBridgeAndUnusedChains(t *testing.T) {
	before := presentSharedChains(t)
	cfg := testConfig(t)
	m := newManager(t, cfg)
	setup(t, m, "g", []api.Port{{Port: freePort(t, "tcp")}})
	if _, err := netlink.LinkByName(cfg.BridgeName); err != nil {
		t.Fatalf("bridge %s after Setup: %v", cfg.BridgeName, err)
	}
	if err := m.Destroy(context.Background()); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("Destroy with a group attached: %v, want ErrConflict", err)
	}
	teardown(t, m, "g")
	if err := m.Destroy(context.Background()); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if _, err := netlink.LinkByName(cfg.BridgeName); err == nil {
		t.Errorf("bridge %s still exists after Destroy", cfg.BridgeName)
	}
	for _, fam := range []string{"bridge", "inet"} {
		if out, err := exec.Command("nft", "list", "table", fam, mustDefaults(t, cfg).nftTable()).CombinedOutput(); err == nil {
			t.Errorf("nftables table %s %s still exists after Destroy:\n%s", fam, mustDefaults(t, cfg).nftTable(), out)
		}
	}
	if after := presentSharedChains(t); len(before) == 0 && len(after) > 0 {
		t.Errorf("shared chains %v left after Destroy (none before the test; is another CNI user running?)", after)
	}
	if err := m.Destroy(context.Background()); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
	assertNoLeaks(t, cfg)
}

func TestSplitRule(t *testing.T) {
	got, err := splitRule(`-A POSTROUTING -m comment --comment "CNI portfwd \"x\" masq" -j CNI-HOSTPORT-MASQ`)
	want := []string{"-A", "POSTROUTING", "-m", "comment", "--comment", `CNI portfwd "x" masq`, "-j", "CNI-HOSTPORT-MASQ"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("splitRule = %q, %v; want %q", got, err, want)
	}
}

// After a reboot the netns mount is gone but the file, the CNI cache, the
// IP lease and the rules are still there; Teardown must clear them.
func TestTeardownAfterNetnsLost(t *testing.T) {
	cfg := testConfig(t)
	m := newManager(t, cfg)
	att := setup(t, m, "lost", []api.Port{{Protocol: "UDP", Port: freePort(t, "udp")}})
	if err := unix.Unmount(att.NetNSPath, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attachment("lost"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Attachment with netns gone: %v, want ErrNotFound", err)
	}
	teardown(t, m, "lost")
	// The veth goes away asynchronously once the namespace is freed.
	deadline := time.Now().Add(5 * time.Second)
	for leaks(t, cfg).Veths > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	assertNoLeaks(t, cfg)
}

func TestConcurrentSetups(t *testing.T) {
	cfg := testConfig(t)
	m := newManager(t, cfg)
	const n = 6
	atts := make([]*Attachment, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("par-%d", i)
			atts[i], errs[i] = m.Setup(context.Background(), id, Request{Ports: []api.Port{{Port: freePort(t, "tcp")}}})
			t.Cleanup(func() { _ = m.Teardown(context.Background(), id) })
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Setup par-%d: %v", i, errs[i])
		}
		if seen[atts[i].IP.String()] {
			t.Fatalf("IP %s handed out twice", atts[i].IP)
		}
		seen[atts[i].IP.String()] = true
	}
	// Every group reaches every published port through 127.0.0.1.
	for i, a := range atts {
		serveTCP(t, a.NetNSPath, a.Ports[0].Port, fmt.Sprint(i))
		if got, err := tcpAsk(t, "", fmt.Sprintf("127.0.0.1:%d", a.Ports[0].Port), "hi"); err != nil || got != fmt.Sprintf("%d hi", i) {
			t.Errorf("group %d via 127.0.0.1:%d: %q, %v", i, a.Ports[0].Port, got, err)
		}
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = m.Teardown(context.Background(), fmt.Sprintf("par-%d", i))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Teardown par-%d: %v", i, err)
		}
	}
	assertNoLeaks(t, cfg)
}

// assertNoThreadInNetNS checks that creating the namespace left none of this
// process's threads inside it (such a thread would keep it alive after
// Teardown).
func assertNoThreadInNetNS(t *testing.T, nsPath string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(nsPath, &st); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("net:[%d]", st.Ino)
	tasks, err := filepath.Glob("/proc/self/task/*/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tasks {
		if l, _ := os.Readlink(p); l == want {
			t.Fatalf("thread %s is inside the group's namespace", p)
		}
	}
}

// A crash between the plugins' ADD and libcni writing its cache leaves a
// lease, a veth and rules but no cache entry; Teardown still clears them.
func TestTeardownWithoutCache(t *testing.T) {
	cfg := testConfig(t)
	m := newManager(t, cfg)
	setup(t, m, "crashed", []api.Port{{Protocol: "TCP", Port: freePort(t, "tcp")}, {Protocol: "UDP", Port: freePort(t, "udp")}})
	if lc := leaks(t, cfg); lc.IPTablesRules == 0 || lc.IPAllocations != 1 {
		t.Fatalf("after Setup: %+v", lc)
	}
	results := filepath.Join(cfg.StateDir, "cache", "results")
	entries, err := os.ReadDir(results)
	if err != nil || len(entries) != 1 {
		t.Fatalf("cache entries: %v, %v", entries, err)
	}
	if err := os.Remove(filepath.Join(results, entries[0].Name())); err != nil {
		t.Fatal(err)
	}
	teardown(t, newManager(t, cfg), "crashed")
	assertNoLeaks(t, cfg)
}
