package e2e

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/testenv"
)

// e2eSubnet is the container network of the servers these tests start.
const e2eSubnet = "10.215.0.0/16"

// TestCLIPrivateAddress: --ip-address Private gives the group its own
// address on the container network. The port answers there, nothing is
// published on the server's public address, and two Private groups may use
// the same port.
func TestCLIPrivateAddress(t *testing.T) {
	s := startServer(t)
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})
	s.mustSkiff("group", "create", "-n", "rg", "-l", "local")
	_, subnet, err := net.ParseCIDR(e2eSubnet)
	if err != nil {
		t.Fatal(err)
	}
	ips := map[string]string{}
	for _, name := range []string{"priv-a", "priv-b"} {
		s.mustSkiff("container", "create", "-g", "rg", "-n", name, "--image", image, "--ip-address", "Private",
			"--ports", "18380", "--command-line", "sh -c 'mkdir -p /w && echo i-am-"+name+" > /w/index.html && exec httpd -f -p 18380 -h /w'")
		ip := strings.TrimSpace(s.mustSkiff("container", "show", "-g", "rg", "-n", name, "--query", "ipAddress.ip", "-o", "tsv"))
		if parsed := net.ParseIP(ip); parsed == nil || !subnet.Contains(parsed) {
			t.Fatalf("%s: ipAddress.ip = %q, want an address in %s", name, ip, e2eSubnet)
		}
		priv := strings.TrimSpace(s.mustSkiff("container", "show", "-g", "rg", "-n", name, "--query", "ipAddress.privateIp", "-o", "tsv"))
		if priv != ip {
			t.Errorf("%s: privateIp %q != ip %q", name, priv, ip)
		}
		ips[name] = ip
	}
	if ips["priv-a"] == ips["priv-b"] {
		t.Fatalf("both groups got %s", ips["priv-a"])
	}
	for name, ip := range ips {
		if body := waitHTTP(t, "http://"+ip+":18380/", 30*time.Second); !strings.Contains(body, "i-am-"+name) {
			t.Errorf("%s at %s served %q", name, ip, body)
		}
	}
	c := http.Client{Timeout: 2 * time.Second}
	if resp, err := c.Get("http://127.0.0.1:18380/"); err == nil {
		resp.Body.Close()
		t.Errorf("a Private group's port answers on the public address")
	}
	table := s.mustSkiff("container", "show", "-g", "rg", "-n", "priv-a", "-o", "table")
	if !strings.Contains(table, ips["priv-a"]+":18380") {
		t.Errorf("show -o table lacks %s:18380:\n%s", ips["priv-a"], table)
	}
	// A Public group reports its private address too (Skiff extension).
	s.mustSkiff("container", "create", "-g", "rg", "-n", "pub", "--image", image, "--ip-address", "Public",
		"--ports", "18381", "--command-line", "sleep 3600")
	pub := strings.TrimSpace(s.mustSkiff("container", "show", "-g", "rg", "-n", "pub", "--query", "[ipAddress.ip, ipAddress.privateIp]", "-o", "tsv"))
	f := strings.Fields(pub)
	if len(f) != 2 || f[0] != "127.0.0.1" || !subnet.Contains(net.ParseIP(f[1])) {
		t.Errorf("Public group's ip/privateIp = %q", pub)
	}
}
