package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/testenv"
)

// A PUT that would publish a port a host process listens on, the server's
// own port, or a port outside --published-ports is refused at once with an
// ARM error, and nothing is stored; the host's listener keeps answering.
// A cluster asks its hosts' agents before it accepts the group, with the
// same errors (to the agent the server's port is one a host process
// listens on).
func TestPublishedPortsCannotHijackTheHost(t *testing.T) {
	s := startImageServer(t, "", "--published-ports", "1024-65535")
	image := "busybox"
	if s.cluster() {
		// The agent pulls before it sets up the network.
		_, image = busyboxRegistry(t, testenv.RegistryOptions{})
	}
	if r := s.send("PUT", "/subscriptions/"+s.Subscription+"/resourcegroups/ports", `{"location":"local"}`); r.Status != 201 {
		t.Fatalf("rg: %d %s", r.Status, r)
	}
	hostPort := testenv.HostListener(t, "127.0.0.1:0")
	_, apiPortS, _ := net.SplitHostPort(s.Addr)
	apiPort, _ := strconv.Atoi(apiPortS)

	publishing := func(port int) map[string]any {
		return groupBody(image, func(p map[string]any) {
			container0(p)["ports"] = []map[string]any{{"port": port}}
			p["ipAddress"] = map[string]any{"type": "Public", "ports": []map[string]any{{"port": port, "protocol": "TCP"}}}
		})
	}
	cgPath := "/subscriptions/" + s.Subscription + "/resourceGroups/ports/providers/Microsoft.ContainerInstance/containerGroups/"
	for _, tc := range []struct {
		name                string
		port                int
		status              int
		code                string
		inMsg, inClusterMsg string
	}{
		{"host listener", hostPort, 409, "PortAlreadyInUse", "in use on the host address 127.0.0.1", "in use on the host address 127.0.0.1"},
		{"the API's own port", apiPort, 409, "PortAlreadyInUse", "Skiff server itself", "in use on the host address 127.0.0.1"},
		{"outside --published-ports", 80, 400, "PortNotAllowed", "1024-65535", "1024-65535"},
	} {
		r := s.send("PUT", cgPath+"hijack", publishing(tc.port))
		inMsg := tc.inMsg
		if s.cluster() {
			inMsg = tc.inClusterMsg
		}
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(r.Body, &e)
		if r.Status != tc.status || e.Error.Code != tc.code || !strings.Contains(e.Error.Message, inMsg) || r.Header.Get("x-ms-error-code") != tc.code {
			t.Errorf("%s: PUT = %d %s, want %d %s mentioning %q", tc.name, r.Status, r, tc.status, tc.code, inMsg)
		}
		if r := s.send("GET", cgPath+"hijack", nil); r.Status != 404 {
			t.Errorf("%s: the refused group was stored: GET = %d %s", tc.name, r.Status, r)
		}
	}
	c, err := net.DialTimeout("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(hostPort)), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintln(c, "who")
	if line, _ := bufio.NewReader(c).ReadString('\n'); strings.TrimSpace(line) != "host" {
		t.Errorf("the host's listener answered %q", line)
	}
	// The CLI shows the same refusal, with the conflict exit code.
	out, errOut, exit := s.skiff("container", "create", "-g", "ports", "-n", "cli-hijack", "--image", image,
		"--ip-address", "public", "--ports", strconv.Itoa(hostPort))
	if exit != 4 || !strings.Contains(errOut, "PortAlreadyInUse") {
		t.Errorf("skiff container create on a host port: exit %d, stdout %q, stderr %q; want exit 4 and PortAlreadyInUse", exit, out, errOut)
	}
}
