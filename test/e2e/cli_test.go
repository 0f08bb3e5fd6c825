package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/testenv"
)

// The quick start of seed 000, with skiff in place of az.
func TestCLIQuickStart(t *testing.T) {
	s := startServer(t)
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})

	s.mustSkiff("group", "create", "--name", "myResourceGroup", "--location", "local")
	out := s.mustSkiff("container", "create", "--name", "mycontainer", "--image", image, "--resource-group", "myResourceGroup",
		"--ip-address", "public", "--ports", "18280", "--command-line", "sh -c 'echo listening; exec httpd -f -v -p 18280 -h /www'")
	var created map[string]any
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("create printed no JSON: %v\n%s", err, out)
	}
	if created["provisioningState"] != "Succeeded" {
		t.Errorf("create printed provisioningState %v", created["provisioningState"])
	}
	if body := waitHTTP(t, "http://127.0.0.1:18280/", 30*time.Second); !strings.Contains(body, "Hello from Skiff") {
		t.Errorf("the container's port served %q", body)
	}

	table := s.mustSkiff("container", "show", "--name", "mycontainer", "--resource-group", "myResourceGroup", "-o", "table")
	for _, want := range []string{"Name", "ResourceGroup", "Status", "mycontainer", "myResourceGroup", "Running", image, "127.0.0.1:18280"} {
		if !strings.Contains(table, want) {
			t.Errorf("show -o table lacks %q:\n%s", want, table)
		}
	}
	var shown map[string]any
	if err := json.Unmarshal([]byte(s.mustSkiff("container", "show", "-n", "mycontainer", "-g", "myResourceGroup", "-o", "json")), &shown); err != nil {
		t.Fatal(err)
	}
	if shown["name"] != "mycontainer" {
		t.Errorf("show -o json: %v", shown["name"])
	}
	if ip := strings.TrimSpace(s.mustSkiff("container", "show", "-g", "myResourceGroup", "-n", "mycontainer", "--query", "ipAddress.ip", "-o", "tsv")); ip != "127.0.0.1" {
		t.Errorf("--query ipAddress.ip -o tsv = %q", ip)
	}
	var logs string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(logs, "listening") {
		logs = s.mustSkiff("container", "logs", "--name", "mycontainer", "--resource-group", "myResourceGroup")
	}
	if !strings.Contains(logs, "listening") {
		t.Errorf("logs = %q", logs)
	}
	list := s.mustSkiff("container", "list", "-g", "myResourceGroup", "-o", "table")
	if !strings.Contains(list, "mycontainer") || !strings.Contains(list, "1.0 core/1.5 gb") {
		t.Errorf("list -o table:\n%s", list)
	}
	s.mustSkiff("container", "delete", "--name", "mycontainer", "--resource-group", "myResourceGroup", "--yes")
	if _, errOut, code := s.skiff("container", "show", "-n", "mycontainer", "-g", "myResourceGroup"); code == 0 || !strings.Contains(errOut, "ResourceNotFound") {
		t.Errorf("show after delete: exit %d, %q", code, errOut)
	}
}

// A two-container group from a YAML file: the sidecar reaches the app on
// localhost. Then a private registry with credentials, and export.
func TestCLIYAMLSidecarAndPrivateRegistry(t *testing.T) {
	s := startServer(t)
	priv, image := busyboxRegistry(t, testenv.RegistryOptions{Username: "bob", Password: "hunter2-pw"})
	s.mustSkiff("group", "create", "-n", "rg", "-l", "local")
	yaml := `apiVersion: 2021-10-01
name: pair
location: local
type: Microsoft.ContainerInstance/containerGroups
properties:
  osType: Linux
  imageRegistryCredentials:
  - server: ` + priv.Addr + `
    username: bob
    password: hunter2-pw
  containers:
  - name: app
    properties:
      image: ` + image + `
      command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
      resources: {requests: {cpu: 0.5, memoryInGB: 0.5}}
  - name: sidecar
    properties:
      image: ` + image + `
      command: ["sh", "-c", "while true; do wget -q -O - http://localhost:8080/ && sleep 1; done"]
      resources: {requests: {cpu: 0.5, memoryInGB: 0.5}}
`
	file := filepath.Join(t.TempDir(), "pair.yaml")
	os.WriteFile(file, []byte(yaml), 0o600)
	s.mustSkiff("container", "create", "-g", "rg", "-f", file)
	var logs string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(logs, "Hello from Skiff") {
		logs = s.mustSkiff("container", "logs", "-g", "rg", "-n", "pair", "--container-name", "sidecar")
		time.Sleep(300 * time.Millisecond)
	}
	if !strings.Contains(logs, "Hello from Skiff") {
		t.Fatalf("sidecar never reached the app on localhost: %q", logs)
	}
	shown := s.mustSkiff("container", "show", "-g", "rg", "-n", "pair")
	if strings.Contains(shown, "hunter2-pw") {
		t.Errorf("show leaked the registry password")
	}
	exported := filepath.Join(t.TempDir(), "export.yaml")
	s.mustSkiff("container", "export", "-g", "rg", "-n", "pair", "-f", exported)
	data, _ := os.ReadFile(exported)
	if !strings.Contains(string(data), "sidecar") || strings.Contains(string(data), "instanceView") || strings.Contains(string(data), "hunter2-pw") {
		t.Errorf("export:\n%s", data)
	}

	// Without credentials a private image not yet on the host fails with a
	// clear reason. (An image already pulled is used from the cache, as
	// Kubernetes' IfNotPresent does.)
	other := testenv.Push(t, priv, "other/app:2", testenv.BusyboxImage(t, testenv.ImageOptions{Cmd: []string{"sleep", "3600"}}))
	_, errOut, code := s.skiff("container", "create", "-g", "rg", "-n", "nocreds", "--image", other)
	if code == 0 || !strings.Contains(errOut, "InaccessibleImage") {
		t.Errorf("private image without credentials: exit %d, %q", code, errOut)
	}
	// With them on the command line, it runs.
	s.mustSkiff("container", "create", "-g", "rg", "-n", "withcreds", "--image", image, "--command-line", "sleep 3600",
		"--registry-login-server", priv.Addr, "--registry-username", "bob", "--registry-password", "hunter2-pw")
	if state := strings.TrimSpace(s.mustSkiff("container", "show", "-g", "rg", "-n", "withcreds", "--query", "instanceView.state", "-o", "tsv")); state != "Running" {
		t.Errorf("withcreds state %q", state)
	}
	s.mustSkiff("group", "delete", "-n", "rg", "--yes")
}
