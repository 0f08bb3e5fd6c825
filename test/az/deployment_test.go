package az

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/testenv"
)

// Template deployments with the real az: seed 000's template as the seed
// deploys it (az group deployment create), and az deployment group
// create with --parameters k=v, show and list. az sends validate and then
// the PUT, whose body splices the template's text in under an unquoted
// key (az-cli.md).

// deploymentServer is startServer with docker.io mirrored by a registry
// of the test that holds the seed's images, so that the seed's template
// runs with its image names as they are.
func deploymentServer(t *testing.T) *testenv.SkiffServer {
	t.Helper()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	testenv.Push(t, reg, "microsoft/aci-helloworld:latest", testenv.BusyboxImage(t, testenv.ImageOptions{
		Cmd:    []string{"httpd", "-f", "-p", "80", "-h", "/www"},
		Layers: []testenv.LayerSpec{{Files: map[string]string{"/www/index.html": "<h1>Welcome to Azure Container Instances!</h1>\n"}}},
	}))
	testenv.Push(t, reg, "microsoft/aci-tutorial-sidecar:latest", testenv.BusyboxImage(t, testenv.ImageOptions{
		Cmd: []string{"sh", "-c", "while true; do wget -q -O- http://localhost:80/ && echo; sleep 1; done"},
	}))
	// The hellofiles image: it appends a line to the share's hello.txt at
	// each start and serves the file on :80.
	testenv.Push(t, reg, "seanmckenna/aci-hellofiles:latest", testenv.BusyboxImage(t, testenv.ImageOptions{
		Cmd: []string{"sh", "-c", `mkdir -p /aci/logs /www; n=$(cat /aci/logs/hello.txt 2>/dev/null | wc -l); ` +
			`echo "run $((n+1))" >> /aci/logs/hello.txt; cp /aci/logs/hello.txt /www/index.html; exec httpd -f -p 80 -h /www`},
	}))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "registries.yaml"), []byte("mirrors:\n  docker.io:\n    disable_origin: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return testenv.StartSkiffServer(t, testenv.SkiffServerOptions{Binary: skiffBin, Bridge: azBridge, Subnet: azSubnet,
		StopGrace: 2 * time.Second, TLS: true, DataDir: dir, Flags: []string{"--registry-mirror", "docker.io=http://" + reg.Addr}})
}

// deployment is the part of az's deployment output the tests read.
type deployment struct {
	Name       string `json:"name"`
	Properties struct {
		ProvisioningState string `json:"provisioningState"`
		Mode              string `json:"mode"`
		Outputs           map[string]struct {
			Type  string `json:"type"`
			Value any    `json:"value"`
		} `json:"outputs"`
		Parameters map[string]struct {
			Type  string `json:"type"`
			Value any    `json:"value"`
		} `json:"parameters"`
	} `json:"properties"`
}

func TestDeploymentGroupCreate(t *testing.T) {
	s := deploymentServer(t)
	az := newCLI(t, s)
	az.login(adminCredentials(t, s))
	az.must("group", "create", "--name", "myResourceGroup", "--location", "local")

	// Seed 000, word for word.
	var seed deployment
	az.mustJSON(&seed, "group", "deployment", "create", "--name", "myContainerGroup", "--resource-group", "myResourceGroup",
		"--template-file", "../e2e/testdata/azuredeploy.json")
	ip := strings.TrimSpace(az.must("container", "show", "--resource-group", "myResourceGroup", "--name", "myContainerGroup",
		"--query", "ipAddress.ip", "-o", "tsv"))
	if seed.Properties.ProvisioningState != "Succeeded" || ip == "" || seed.Properties.Outputs["containerIPv4Address"].Value != ip {
		t.Errorf("az group deployment create: %+v; the group's ip %q", seed.Properties, ip)
	}

	// The current grammar with --parameters k=v, typed by the template.
	tmpl := `{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "name": {"type": "string"},
    "cpu": {"type": "int", "defaultValue": 1},
    "secret": {"type": "securestring"}
  },
  "resources": [{
    "name": "[parameters('name')]", "type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2022-10-01-preview",
    "location": "[resourceGroup().location]",
    "properties": {"osType": "Linux", "restartPolicy": "Never", "containers": [{"name": "app", "properties": {
      "image": "microsoft/aci-tutorial-sidecar", "command": ["sleep", "3600"],
      "environmentVariables": [{"name": "SECRET", "secureValue": "[parameters('secret')]"}],
      "resources": {"requests": {"cpu": "[parameters('cpu')]", "memoryInGB": 0.5}}}}]}
  }],
  "outputs": {"id": {"type": "string", "value": "[resourceId('Microsoft.ContainerInstance/containerGroups', parameters('name'))]"},
    "cpu": {"type": "int", "value": "[parameters('cpu')]"}}
}`
	file := filepath.Join(t.TempDir(), "sleeper.json")
	if err := os.WriteFile(file, []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	const secret = "az-Secret-v4lue-0d1e"
	var d deployment
	az.mustJSON(&d, "deployment", "group", "create", "--resource-group", "myResourceGroup", "--template-file", file,
		"--parameters", "name=sleeper", "cpu=1", "secret="+secret)
	if d.Name != "sleeper" || d.Properties.ProvisioningState != "Succeeded" || d.Properties.Mode != "Incremental" ||
		!strings.HasSuffix(d.Properties.Outputs["id"].Value.(string), "/containerGroups/sleeper") || d.Properties.Outputs["cpu"].Value != float64(1) {
		t.Errorf("az deployment group create: %+v", d)
	}
	if p := d.Properties.Parameters["secret"]; p.Type != "SecureString" || p.Value != nil {
		t.Errorf("the secure parameter reads %+v", p)
	}
	var shown deployment
	az.mustJSON(&shown, "deployment", "group", "show", "--resource-group", "myResourceGroup", "--name", "sleeper")
	if shown.Properties.Outputs["cpu"].Value != float64(1) {
		t.Errorf("az deployment group show: %+v", shown)
	}
	list := az.must("deployment", "group", "list", "--resource-group", "myResourceGroup", "-o", "table")
	for _, want := range []string{"myContainerGroup", "sleeper", "Succeeded"} {
		if !strings.Contains(list, want) {
			t.Errorf("az deployment group list -o table lacks %q:\n%s", want, list)
		}
	}
	var names []string
	if err := json.Unmarshal([]byte(az.must("deployment", "group", "list", "-g", "myResourceGroup", "--query", "[].name")), &names); err != nil || len(names) != 2 {
		t.Errorf("list: %v %v", names, err)
	}
	if out := az.must("deployment", "operation", "group", "list", "-g", "myResourceGroup", "-n", "sleeper"); strings.Contains(out, secret) ||
		!strings.Contains(out, `"provisioningOperation": "Create"`) {
		t.Errorf("az deployment operation group list: %s", out)
	}
	// A template az sends that the server refuses: az prints its error.
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"resources": [{"name": "v", "type": "Microsoft.Network/virtualNetworks", "apiVersion": "2023-05-01", "location": "local", "properties": {}}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	az.fails("Microsoft.Network/virtualNetworks", "deployment", "group", "create", "-g", "myResourceGroup", "--template-file", bad)
	az.must("deployment", "group", "delete", "-g", "myResourceGroup", "-n", "sleeper")
	az.fails("DeploymentNotFound", "deployment", "group", "show", "-g", "myResourceGroup", "-n", "sleeper")
}
