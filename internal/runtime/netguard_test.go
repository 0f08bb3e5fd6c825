package runtime_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// netImage is busybox with udpecho (a UDP receiver that logs what it gets)
// and spoofer (crafted frames from inside the container, with the
// CAP_NET_RAW containers have by default).
func (e *env) netImage() string {
	e.t.Helper()
	return testenv.Push(e.t, e.reg, "nettools:test", testenv.BusyboxImage(e.t, testenv.ImageOptions{
		Layers: []testenv.LayerSpec{{
			Files: map[string]string{"/bin/udpecho": testenv.UDPEchoBinary(e.t), "/bin/spoofer": testenv.SpooferBinary(e.t)},
			Modes: map[string]int64{"/bin/udpecho": 0o755, "/bin/spoofer": 0o755},
		}},
	}))
}

// webGroup serves its name on :8080 and logs UDP datagrams to :9999.
func webGroup(name, image, tenant string) runtime.GroupSpec {
	web := container("web", image, "sh", "-c", `mkdir -p /tmp/www && echo `+name+` > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www`)
	udp := container("udp", image, "udpecho", "9999")
	spec := group(name, web, udp)
	spec.Tenant = tenant
	return spec
}

func httpGet(url string) (string, error) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

// From inside real containers: a group reaches neither the host (its
// bridge address, its loopback through route_localnet) nor another
// tenant's group, cannot spoof its address or poison ARP, and still
// reaches its own tenant; the host still reaches every group and a
// published port.
func TestNetworkGuardFromContainers(t *testing.T) {
	e := newEnv(t)
	img := e.netImage()
	pubPort := freeTCPPort(t)
	a1 := webGroup("a1", img, "sub-a")
	a1.Properties.Containers[0].Properties.Command = []string{"sh", "-c",
		fmt.Sprintf(`mkdir -p /tmp/www && echo a1 > /tmp/www/index.html && httpd -p %d -h /tmp/www && exec httpd -f -p 8080 -h /tmp/www`, pubPort)}
	a1.Properties.Containers[0].Properties.Ports = []api.ContainerPort{{Port: 8080}, {Port: pubPort}}
	a1.Properties.IPAddress = &api.IPAddress{Type: "Public", Ports: []api.Port{{Protocol: "TCP", Port: pubPort}}}
	for _, s := range []struct {
		id   string
		spec runtime.GroupSpec
	}{{"a1", a1}, {"a2", webGroup("a2", img, "sub-a")}, {"b1", webGroup("b1", img, "sub-b")}} {
		e.create(s.id, s.spec)
	}
	ip := map[string]string{}
	for _, id := range []string{"a1", "a2", "b1"} {
		ip[id] = e.waitState(id, api.GroupRunning, 60*time.Second).IP
	}
	// The host reaches every group, and a1's published port.
	for id, addr := range ip {
		var got string
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if got, err = httpGet("http://" + addr + ":8080/"); err == nil {
				break
			}
		}
		if got != id {
			st, _ := e.host.Status(id)
			t.Fatalf("host -> %s (%s): %q, %v\nweb log:\n%s\nstatus:\n%s", id, addr, got, err,
				e.logs(id, "web", runtime.LogOptions{Tail: -1}), dump(st))
		}
	}
	if got, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", pubPort)); err != nil || got != "a1" {
		t.Errorf("host -> published 127.0.0.1:%d: %q, %v", pubPort, got, err)
	}

	br, err := netlink.LinkByName(testBridge)
	if err != nil {
		t.Fatal(err)
	}
	brMAC := br.Attrs().HardwareAddr.String()
	gw := strings.TrimSuffix(testSubnet, "0/16") + "1"
	gwPort := testenv.HostListener(t, net.JoinHostPort(gw, "0"))
	loPort := testenv.HostListener(t, "127.0.0.1:0")
	macs := map[string]string{}
	for id := range ip {
		out, _ := e.exec(id, "web", "cat", "/sys/class/net/eth0/address")
		macs[id] = strings.TrimSpace(out)
	}

	sh := func(id, script string) (string, int) {
		t.Helper()
		return e.exec(id, "web", "sh", "-c", script)
	}
	// GET / from a group (busybox wget -T crashes: nc has a connect
	// timeout); it answers the page's last line.
	get := func(from, to string) string {
		t.Helper()
		out, _ := sh(from, fmt.Sprintf(`printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 %s 8080`, ip[to]))
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return strings.TrimSpace(lines[len(lines)-1])
	}
	// Same tenant: reachable. Another tenant: not.
	if got := get("a1", "a2"); got != "a2" {
		t.Errorf("a1 -> a2 (same tenant): %q", got)
	}
	if got := get("a1", "b1"); got == "b1" {
		t.Errorf("a1 reached b1 of another tenant")
	}
	if got := get("b1", "a2"); got == "a2" {
		t.Errorf("b1 reached a2 of another tenant")
	}
	// The host: its bridge address, and its loopback through the bridge.
	if out, _ := sh("a1", fmt.Sprintf("echo hi | nc -w 2 %s %d", gw, gwPort)); strings.Contains(out, "host") {
		t.Errorf("a1 reached the host's %s:%d", gw, gwPort)
	}
	if out, code := sh("a1", fmt.Sprintf("spoofer syn -via %s -dst 127.0.0.1:%d", brMAC, loPort)); code == 0 {
		t.Errorf("a1's SYN to the host's 127.0.0.1:%d was answered: %s", loPort, out)
	}
	// The same crafted SYN to a2 is answered: spoofer works in a container.
	if out, code := sh("a1", fmt.Sprintf("spoofer syn -via %s -dst %s:8080", macs["a2"], ip["a2"])); code != 0 {
		t.Fatalf("a1's crafted SYN to a2 got no answer (%s): the test cannot see anything", out)
	}
	// Spoofing: a datagram from a1 with b1's address never reaches a2;
	// an honest one does.
	if out, code := sh("a1", fmt.Sprintf("spoofer udp -via %s -src %s -dst %s:9999 -msg spoofed && spoofer udp -via %s -dst %s:9999 -msg honest",
		macs["a2"], ip["b1"], ip["a2"], macs["a2"], ip["a2"])); code != 0 {
		t.Fatalf("spoofer udp: %s", out)
	}
	logs := e.waitLog("a2", "udp", `got "honest"`, 5*time.Second)
	if strings.Contains(logs, "spoofed") {
		t.Errorf("a2 received a datagram with a spoofed source:\n%s", logs)
	}
	// ARP: a1 claims a2's address; neither the host nor a2's neighbours
	// believe it.
	time.Sleep(1100 * time.Millisecond) // past the neighbour lock time
	if out, code := sh("a1", "spoofer garp -ip "+ip["a2"]); code != 0 {
		t.Fatalf("spoofer garp: %s", out)
	}
	time.Sleep(300 * time.Millisecond)
	neighs, err := netlink.NeighList(br.Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		if n.IP.String() == ip["a2"] && n.HardwareAddr.String() == macs["a1"] {
			t.Errorf("the host's ARP entry for a2 (%s) now points at a1's MAC", ip["a2"])
		}
	}
	if got, err := httpGet("http://" + ip["a2"] + ":8080/"); err != nil || got != "a2" {
		t.Errorf("host -> a2 after a1's gratuitous ARP: %q, %v", got, err)
	}

	for _, id := range []string{"a1", "a2", "b1"} {
		if err := e.host.Delete(t.Context(), id, -1); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}
	if l := e.leaks(); l != (leaks{}) {
		out, _ := exec.Command("nft", "list", "ruleset").CombinedOutput()
		t.Errorf("leaked after delete: %+v\nnft ruleset:\n%s", l, out)
	}
}

// A group cannot take over a port a host process listens on: it fails with
// a clear reason, and the host's listener keeps answering.
func TestPublishRefusesHostPort(t *testing.T) {
	e := newEnv(t)
	port := testenv.HostListener(t, "127.0.0.1:0")
	web := container("web", e.image, "httpd", "-f", "-p", fmt.Sprint(port))
	web.Properties.Ports = []api.ContainerPort{{Port: int32(port)}}
	spec := group("hijack", web)
	spec.Properties.IPAddress = &api.IPAddress{Type: "Public", Ports: []api.Port{{Protocol: "TCP", Port: int32(port)}}}
	e.create("hijack", spec)
	st := e.waitFor("hijack", 30*time.Second, "a failure", func(s *runtime.GroupStatus) bool { return s.Error != nil })
	if st.Error.Code != runtime.CodeNetworkFailed || !strings.Contains(st.Error.Message, "already in use on the host") {
		t.Errorf("error = %+v, want %s naming the port in use", st.Error, runtime.CodeNetworkFailed)
	}
	c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(c, "who")
	line, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if strings.TrimSpace(line) != "host" {
		t.Errorf("127.0.0.1:%d answered %q, want the host's listener", port, line)
	}
	if err := e.host.Delete(t.Context(), "hijack", -1); err != nil {
		t.Fatal(err)
	}
	e.assertNoLeaks()
}

func freeTCPPort(t *testing.T) int32 {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return int32(ln.Addr().(*net.TCPAddr).Port)
}
