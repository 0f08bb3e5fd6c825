package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/testenv"
	"github.com/skiff-sh/skiff/internal/testenv/spoof"
)

func setupReq(t *testing.T, m *Manager, id string, req Request) *Attachment {
	t.Helper()
	att, err := m.Setup(context.Background(), id, req)
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

// dialFrom opens a TCP connection from the namespace (the host if nsPath is
// empty) and closes it; an error means it was not reachable.
func dialFrom(t *testing.T, nsPath, addr string) error {
	t.Helper()
	dial := func() error {
		c, err := net.DialTimeout("tcp4", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
	if nsPath == "" {
		return dial()
	}
	return inNetNS(t, nsPath, dial)
}

// withLink runs fn with a raw socket on eth0 of the namespace.
func withLink(t *testing.T, nsPath string, fn func(l *spoof.Link) error) error {
	t.Helper()
	return inNetNS(t, nsPath, func() error {
		l, err := spoof.Open(IfName)
		if err != nil {
			return err
		}
		defer l.Close()
		return fn(l)
	})
}

// rawSYN sends a crafted SYN from the namespace through next-hop MAC via and
// reports whether any TCP answer came back.
func rawSYN(t *testing.T, nsPath string, via net.HardwareAddr, src, dst net.IP, port int32) bool {
	t.Helper()
	var answered bool
	if err := withLink(t, nsPath, func(l *spoof.Link) error {
		p := spoof.Packet{DstMAC: via, Src: src, Dst: dst, DstPort: uint16(port)}
		p.SrcPort = uint16(41000 + testNetSeq.Add(1)%1000)
		for range 2 {
			if err := l.Send(l.SYN(p)); err != nil {
				return err
			}
			ok, err := l.Wait(700*time.Millisecond, spoof.IsTCPAnswer(p))
			if err != nil || ok {
				answered = ok
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("raw SYN from %s: %v", nsPath, err)
	}
	return answered
}

// arrivesAt sends the frame build makes from the namespace from and reports
// whether a frame match accepts shows up on eth0 of the namespace at.
func arrivesAt(t *testing.T, at, from string, build func(l *spoof.Link) []byte, match func([]byte) bool) bool {
	t.Helper()
	res := make(chan bool, 1)
	ready := make(chan struct{})
	go func() {
		var seen bool
		err := withLink(t, at, func(l *spoof.Link) error {
			close(ready)
			var err error
			seen, err = l.Wait(1500*time.Millisecond, match)
			return err
		})
		if err != nil {
			t.Error(err)
		}
		res <- seen
	}()
	<-ready
	time.Sleep(100 * time.Millisecond)
	if err := withLink(t, from, func(l *spoof.Link) error { return l.Send(build(l)) }); err != nil {
		t.Fatal(err)
	}
	return <-res
}

func macOf(t *testing.T, nsPath string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	if err := inNetNS(t, nsPath, func() error {
		ifc, err := net.InterfaceByName(IfName)
		if err == nil {
			mac = ifc.HardwareAddr
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return mac
}

func bridgeMAC(t *testing.T, cfg Config) net.HardwareAddr {
	t.Helper()
	br, err := netlink.LinkByName(cfg.BridgeName)
	if err != nil {
		t.Fatal(err)
	}
	return br.Attrs().HardwareAddr
}

var counterRe = regexp.MustCompile(`counter packets (\d+)`)

// dropCount reads the packet counter of the rule of the inet table's input
// chain whose text contains match.
func dropCount(t *testing.T, cfg Config, chain, match string) int {
	t.Helper()
	out, err := exec.Command("nft", "list", "chain", "inet", mustDefaults(t, cfg).nftTable(), chain).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list chain: %v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, match) {
			if m := counterRe.FindStringSubmatch(line); m != nil {
				n, _ := strconv.Atoi(m[1])
				return n
			}
		}
	}
	t.Fatalf("no counted rule matching %q in:\n%s", match, out)
	return 0
}

// A group reaches neither the host's loopback (route_localnet is on for
// portmap) nor the host's other addresses, unless the operator allows the
// latter; the host still reaches the group and its published ports.
func TestGuardKeepsGroupsOffTheHost(t *testing.T) {
	cfg := testConfig(t)
	m := newManager(t, cfg)
	pub := freePort(t, "tcp")
	a := setupReq(t, m, "guest", Request{Ports: []api.Port{{Protocol: "TCP", Port: pub}}})
	serveTCP(t, a.NetNSPath, pub, "guest")
	brMAC := bridgeMAC(t, cfg)

	gwPort := int32(testenv.HostListener(t, net.JoinHostPort(a.Gateway.String(), "0")))
	loPort := int32(testenv.HostListener(t, "127.0.0.1:0"))
	if b, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + cfg.BridgeName + "/route_localnet"); err == nil {
		t.Logf("route_localnet on %s: %s", cfg.BridgeName, strings.TrimSpace(string(b)))
	}
	gwAddr := net.JoinHostPort(a.Gateway.String(), fmt.Sprint(gwPort))

	if err := dialFrom(t, a.NetNSPath, gwAddr); err == nil {
		t.Errorf("group reached the host's %s", gwAddr)
	}
	before := dropCount(t, cfg, "input", "127.0.0.0/8")
	if rawSYN(t, a.NetNSPath, brMAC, a.IP, net.IPv4(127, 0, 0, 1), loPort) {
		t.Errorf("a SYN to 127.0.0.1:%d through the bridge was answered", loPort)
	}
	if after := dropCount(t, cfg, "input", "127.0.0.0/8"); after <= before {
		t.Errorf("the loopback rule dropped nothing (counter %d -> %d): the SYN never reached the host", before, after)
	}
	// The host reaches the group, directly and through the published port.
	if got, err := tcpAsk(t, "", net.JoinHostPort(a.IP.String(), fmt.Sprint(pub)), "direct"); err != nil || got != "guest direct" {
		t.Errorf("host -> group: %q, %v", got, err)
	}
	if got, err := tcpAsk(t, "", fmt.Sprintf("127.0.0.1:%d", pub), "published"); err != nil || got != "guest published" {
		t.Errorf("host -> published port: %q, %v", got, err)
	}

	// The operator allows host access (a restart with the flag): the
	// bridge address answers, to a plain connect and to a crafted SYN
	// (so the crafted SYN above would have been answered if it could),
	// and loopback stays closed.
	allow := cfg
	allow.AllowHostAccess = true
	newManager(t, allow)
	if err := dialFrom(t, a.NetNSPath, gwAddr); err != nil {
		t.Errorf("with AllowHostAccess the group cannot reach %s: %v", gwAddr, err)
	}
	if !rawSYN(t, a.NetNSPath, brMAC, a.IP, a.Gateway, gwPort) {
		t.Errorf("with AllowHostAccess a crafted SYN to %s got no answer", gwAddr)
	}
	if rawSYN(t, a.NetNSPath, brMAC, a.IP, net.IPv4(127, 0, 0, 1), loPort) {
		t.Errorf("with AllowHostAccess a SYN to 127.0.0.1:%d through the bridge was answered", loPort)
	}
	// And back: the next start without the flag closes it again.
	newManager(t, cfg)
	if err := dialFrom(t, a.NetNSPath, gwAddr); err == nil {
		t.Errorf("after a restart without AllowHostAccess the group still reaches %s", gwAddr)
	}
	if got, err := tcpAsk(t, "", fmt.Sprintf("127.0.0.1:%d", pub), "again"); err != nil || got != "guest again" {
		t.Errorf("host -> published port after restarts: %q, %v", got, err)
	}
	teardown(t, m, "guest")
	assertNoLeaks(t, cfg)
}

// A published port never shadows a host listener, a reserved port, or a
// port outside the allowed range.
func TestPublishedPortChecks(t *testing.T) {
	cfg := testConfig(t)
	busyTCP := int32(testenv.HostListener(t, "127.0.0.1:0"))
	anyTCP := int32(testenv.HostListener(t, "0.0.0.0:0"))
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	busyUDP := int32(udp.LocalAddr().(*net.UDPAddr).Port)
	reserved := freePort(t, "tcp")
	cfg.ReservedPorts = []api.Port{{Protocol: "TCP", Port: reserved}}
	m := newManager(t, cfg)

	cases := []struct {
		name  string
		ports []api.Port
		class error
		code  string
	}{
		{"host listener on the public address", []api.Port{{Protocol: "TCP", Port: busyTCP}}, errdefs.ErrConflict, CodePortInUse},
		{"host listener on the wildcard address", []api.Port{{Port: anyTCP}}, errdefs.ErrConflict, CodePortInUse},
		{"host UDP socket", []api.Port{{Protocol: "UDP", Port: busyUDP}}, errdefs.ErrConflict, CodePortInUse},
		{"reserved port", []api.Port{{Protocol: "TCP", Port: reserved}}, errdefs.ErrConflict, CodePortInUse},
	}
	for _, tc := range cases {
		_, err := m.Setup(context.Background(), "hijack", Request{Ports: tc.ports})
		if !errors.Is(err, tc.class) || errdefs.CodeOf(err) != tc.code {
			t.Errorf("%s: Setup error = %v (code %q), want %v with code %s", tc.name, err, errdefs.CodeOf(err), tc.class, tc.code)
		}
		if err := m.CheckPorts(tc.ports); !errors.Is(err, tc.class) {
			t.Errorf("%s: CheckPorts = %v", tc.name, err)
		}
	}
	// The host's listener still answers itself.
	if got, err := tcpAsk(t, "", fmt.Sprintf("127.0.0.1:%d", busyTCP), "who"); err != nil || got != "host" {
		t.Errorf("host listener after refused publish: %q, %v", got, err)
	}
	// Another protocol on a busy port number is fine.
	setupReq(t, m, "tcp-on-udp-port", Request{Ports: []api.Port{{Protocol: "TCP", Port: busyUDP}}})
	teardown(t, m, "tcp-on-udp-port")

	// An allowed range.
	ranged := cfg
	ranged.PublishedPorts = PortRange{Min: 20000, Max: 20010}
	rm := newManager(t, ranged)
	err = rm.CheckPorts([]api.Port{{Port: 8080}})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || errdefs.CodeOf(err) != CodePortNotAllowed || !strings.Contains(err.Error(), "20000-20010") {
		t.Errorf("port outside the range: %v (code %q)", err, errdefs.CodeOf(err))
	}
	if _, err := rm.Setup(context.Background(), "outside", Request{Ports: []api.Port{{Port: 8080}}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Setup outside the range: %v", err)
	}
	assertNoLeaks(t, cfg)
}

func TestParsePortRange(t *testing.T) {
	for in, want := range map[string]PortRange{"": {}, "1024-65535": {1024, 65535}, " 80 ": {80, 80}, "10-20": {10, 20}} {
		if got, err := ParsePortRange(in); err != nil || got != want {
			t.Errorf("ParsePortRange(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0-10", "10-5", "1-70000", "a-b", "-", "80-"} {
		if _, err := ParsePortRange(in); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParsePortRange(%q) error = %v, want ErrInvalidArgument", in, err)
		}
	}
	if (PortRange{}).Contains(0) || !(PortRange{}).Contains(1) || (PortRange{1024, 2048}).Contains(80) {
		t.Error("Contains")
	}
}

// A group sends only from its own address and MAC: a datagram with a
// neighbour's source address, or the group's address from a neighbour's
// MAC, and a gratuitous ARP claiming a neighbour's address never arrive.
func TestGuardStopsSpoofing(t *testing.T) {
	cfg := testConfig(t)
	m := newManager(t, cfg)
	a := setupReq(t, m, "spoofer", Request{})
	b := setupReq(t, m, "bystander", Request{})
	c := setupReq(t, m, "victim", Request{})
	aMAC, bMAC, cMAC := macOf(t, a.NetNSPath), macOf(t, b.NetNSPath), macOf(t, c.NetNSPath)

	arrives := func(build func(l *spoof.Link) []byte, match func([]byte) bool) bool {
		t.Helper()
		return arrivesAt(t, c.NetNSPath, a.NetNSPath, build, match)
	}
	udp := func(srcMAC net.HardwareAddr, src net.IP, msg string) (func(*spoof.Link) []byte, func([]byte) bool) {
		return func(l *spoof.Link) []byte {
				return l.UDP(spoof.Packet{SrcMAC: srcMAC, DstMAC: cMAC, Src: src, Dst: c.IP, DstPort: 9, Payload: []byte(msg)})
			},
			spoof.IsUDPFrom(src, []byte(msg))
	}
	if !arrives(udp(aMAC, a.IP, "honest")) {
		t.Fatal("a's honest datagram did not reach c: the test cannot see anything")
	}
	if arrives(udp(aMAC, b.IP, "other-ip")) {
		t.Error("a datagram from a with b's address reached c")
	}
	if arrives(udp(bMAC, a.IP, "other-mac")) {
		t.Error("a datagram from a with b's MAC reached c")
	}
	if !arrives(func(l *spoof.Link) []byte { return l.GratuitousARP(a.IP, nil) }, spoof.IsARPFrom(a.IP, aMAC)) {
		t.Fatal("a's gratuitous ARP for its own address did not reach c")
	}
	if arrives(func(l *spoof.Link) []byte { return l.GratuitousARP(b.IP, nil) }, spoof.IsARPFrom(b.IP, aMAC)) {
		t.Error("a's gratuitous ARP claiming b's address reached c")
	}
	// Nor did the host believe it.
	neighs, err := netlink.NeighList(0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		if n.IP.Equal(b.IP) && n.HardwareAddr.String() == aMAC.String() {
			t.Errorf("the host's neighbour entry for %s points at a's MAC", b.IP)
		}
	}
	teardown(t, m, "spoofer")
	teardown(t, m, "bystander")
	teardown(t, m, "victim")
	assertNoLeaks(t, cfg)
}

// Groups of different tenants cannot reach each other, directly on the
// bridge or routed through the host; groups of one tenant can.
func TestGuardSeparatesTenants(t *testing.T) {
	cfg := testConfig(t)
	m := newManager(t, cfg)
	a := setupReq(t, m, "a1", Request{Tenant: "sub-A"})
	b := setupReq(t, m, "a2", Request{Tenant: "sub-A"})
	c := setupReq(t, m, "b1", Request{Tenant: "sub-B"})
	const port = 7070
	for _, att := range []*Attachment{a, b, c} {
		serveTCP(t, att.NetNSPath, port, att.ID)
	}
	addr := func(att *Attachment) string { return net.JoinHostPort(att.IP.String(), fmt.Sprint(port)) }

	if got, err := tcpAsk(t, a.NetNSPath, addr(b), "hi"); err != nil || got != "a2 hi" {
		t.Errorf("a1 -> a2 (same tenant): %q, %v", got, err)
	}
	if err := dialFrom(t, a.NetNSPath, addr(c)); err == nil {
		t.Error("a1 reached b1 of another tenant")
	}
	if err := dialFrom(t, c.NetNSPath, addr(a)); err == nil {
		t.Error("b1 reached a1 of another tenant")
	}
	// Through the bridge's MAC, to be routed back onto the bridge (the
	// host sends it on, so only the way in can stop it).
	brMAC := bridgeMAC(t, cfg)
	routed := func(dst *Attachment, msg string) bool {
		return arrivesAt(t, dst.NetNSPath, a.NetNSPath, func(l *spoof.Link) []byte {
			return l.UDP(spoof.Packet{DstMAC: brMAC, Src: a.IP, Dst: dst.IP, DstPort: 9, Payload: []byte(msg)})
		}, spoof.IsUDPFrom(a.IP, []byte(msg)))
	}
	if routed(c, "detour") {
		t.Error("a1's datagram to b1 routed through the host arrived")
	}
	if rawSYN(t, a.NetNSPath, brMAC, a.IP, c.IP, port) {
		t.Error("a1's SYN to b1 routed through the host was answered")
	}
	if !rawSYN(t, a.NetNSPath, macOf(t, b.NetNSPath), a.IP, b.IP, port) {
		t.Error("a1's crafted SYN to a2 got no answer: the test cannot see anything")
	}
	// The host reaches every tenant.
	for _, att := range []*Attachment{a, c} {
		if got, err := tcpAsk(t, "", addr(att), "host"); err != nil || got != att.ID+" host" {
			t.Errorf("host -> %s: %q, %v", att.ID, got, err)
		}
	}
	// A tenant's chain goes with its last group.
	teardown(t, m, "b1")
	if got, err := tcpAsk(t, a.NetNSPath, addr(b), "still"); err != nil || got != "a2 still" {
		t.Errorf("a1 -> a2 after b1 left: %q, %v", got, err)
	}
	teardown(t, m, "a1")
	teardown(t, m, "a2")
	assertNoLeaks(t, cfg)
}

// The guard is rebuilt from the CNI cache at start: after the rules were
// flushed behind Skiff's back, and for attachments made before it existed.
func TestGuardRebuiltAtStart(t *testing.T) {
	cfg := testConfig(t)
	m := newManager(t, cfg)
	a := setupReq(t, m, "x1", Request{Tenant: "sub-A"})
	c := setupReq(t, m, "x2", Request{Tenant: "sub-B"})
	const port = 7071
	serveTCP(t, c.NetNSPath, port, "x2")
	want := leaks(t, cfg).GuardEntries
	if want == 0 {
		t.Fatal("no guard entries with two groups up")
	}
	table := mustDefaults(t, cfg).nftTable()
	for _, fam := range []string{"bridge", "inet"} {
		if out, err := exec.Command("nft", "delete", "table", fam, table).CombinedOutput(); err != nil {
			t.Fatalf("nft delete table: %v: %s", err, out)
		}
	}
	if err := dialFrom(t, a.NetNSPath, net.JoinHostPort(c.IP.String(), fmt.Sprint(port))); err != nil {
		t.Fatalf("without the guard x1 should reach x2 (the test's premise): %v", err)
	}
	m2 := newManager(t, cfg)
	if got := leaks(t, cfg).GuardEntries; got != want {
		t.Errorf("guard entries after restart = %d, want %d", got, want)
	}
	if err := dialFrom(t, a.NetNSPath, net.JoinHostPort(c.IP.String(), fmt.Sprint(port))); err == nil {
		t.Error("after restart x1 reaches x2 of another tenant")
	}
	teardown(t, m2, "x1")
	teardown(t, m2, "x2")
	assertNoLeaks(t, cfg)
}
