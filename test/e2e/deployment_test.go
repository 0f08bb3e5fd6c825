package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// Template deployments end to end: seed 000's templates, exactly as the
// seed prints them (testdata/azuredeploy.json, testdata/hellofiles.json),
// through the skiff CLI, on real containers. Their images are Docker Hub
// names; the server reaches "Docker Hub" through a mirror that is the
// test's registry (the origin disabled), so not even the image names
// change. The images are built from busybox with default commands that
// do what the seed's do: the app serves :80, the sidecar polls it.

// Contents of the stand-ins of the seed's images.
const (
	helloPage    = "<h1>Welcome to Azure Container Instances!</h1>\n"
	sidecarPoll  = "while true; do wget -q -O- http://localhost:80/ && echo; sleep 1; done"
	hellofilesSh = `mkdir -p /aci/logs /www; n=$(cat /aci/logs/hello.txt 2>/dev/null | wc -l); echo "run $((n+1))" >> /aci/logs/hello.txt; ` +
		`cp /aci/logs/hello.txt /www/index.html; exec httpd -f -p 80 -h /www`
)

// deploymentServer starts a server whose docker.io is the test registry,
// holding the seed's three images.
func deploymentServer(t *testing.T) *server {
	t.Helper()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	testenv.Push(t, reg, "microsoft/aci-helloworld:latest", testenv.BusyboxImage(t, testenv.ImageOptions{
		Cmd:    []string{"httpd", "-f", "-p", "80", "-h", "/www"},
		Layers: []testenv.LayerSpec{{Files: map[string]string{"/www/index.html": helloPage}}},
	}))
	testenv.Push(t, reg, "microsoft/aci-tutorial-sidecar:latest", testenv.BusyboxImage(t, testenv.ImageOptions{
		Cmd: []string{"sh", "-c", sidecarPoll},
	}))
	testenv.Push(t, reg, "seanmckenna/aci-hellofiles:latest", testenv.BusyboxImage(t, testenv.ImageOptions{
		Cmd: []string{"sh", "-c", hellofilesSh},
	}))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "registries.yaml"), []byte(hubNoOrigin), 0o600); err != nil {
		t.Fatal(err)
	}
	return newServer(t, testenv.SkiffServerOptions{DataDir: dir, LogLevel: "debug",
		Flags: []string{"--registry-mirror", "docker.io=http://" + reg.Addr}})
}

// deploymentJSON decodes what `deployment group create` or `show` printed.
func deploymentJSON(t *testing.T, out string) api.Deployment {
	t.Helper()
	var d api.Deployment
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("not a deployment: %v\n%s", err, out)
	}
	return d
}

// TestDeploymentSeedSidecar is seed 000's container group template,
// deployed as the seed does it (az group deployment create, here skiff).
func TestDeploymentSeedSidecar(t *testing.T) {
	s := deploymentServer(t)
	s.mustSkiff("group", "create", "--name", "myResourceGroup", "--location", "local")
	out := s.mustSkiff("group", "deployment", "create", "--name", "myContainerGroup", "--resource-group", "myResourceGroup",
		"--template-file", "testdata/azuredeploy.json")
	d := deploymentJSON(t, out)
	if d.Properties.ProvisioningState != "Succeeded" {
		t.Fatalf("deployment %s: %s", d.Properties.ProvisioningState, out)
	}
	// Both containers run, and the output is the group's address.
	s.waitRunning("myResourceGroup", "myContainerGroup")
	// (the CLI prints a group flattened, as az does)
	ip := strings.TrimSpace(s.mustSkiff("container", "show", "-g", "myResourceGroup", "-n", "myContainerGroup", "--query", "ipAddress.ip", "-o", "tsv"))
	if ip == "" {
		t.Fatal("the group has no address")
	}
	if got := d.Properties.Outputs["containerIPv4Address"]; got.Value != ip || got.Type != "String" {
		t.Errorf("outputs.containerIPv4Address = %+v, the group's ipAddress.ip = %s", got, ip)
	}
	states := s.mustSkiff("container", "show", "-g", "myResourceGroup", "-n", "myContainerGroup",
		"--query", "containers[].[name, instanceView.currentState.state]", "-o", "tsv")
	if states != "aci-tutorial-app\tRunning\naci-tutorial-sidecar\tRunning\n" {
		t.Errorf("containers:\n%s", states)
	}
	if body := waitHTTP(t, "http://"+ip+":80/", 30*time.Second); body != helloPage {
		t.Errorf("port 80 served %q", body)
	}
	// The sidecar reaches the app on localhost.
	deadline := time.Now().Add(20 * time.Second)
	var logs string
	for time.Now().Before(deadline) && !strings.Contains(logs, "Welcome to Azure Container Instances") {
		logs = s.mustSkiff("container", "logs", "-g", "myResourceGroup", "-n", "myContainerGroup", "--container-name", "aci-tutorial-sidecar")
		time.Sleep(300 * time.Millisecond)
	}
	if !strings.Contains(logs, "Welcome to Azure Container Instances") {
		t.Errorf("the sidecar's log: %q", logs)
	}
	// The new grammar reads the same deployment.
	if out := strings.TrimSpace(s.mustSkiff("deployment", "group", "show", "-g", "myResourceGroup", "-n", "myContainerGroup",
		"--query", "properties.outputs.containerIPv4Address.value", "-o", "tsv")); out != ip {
		t.Errorf("deployment group show's output: %q", out)
	}
}

// TestDeploymentLoopsModesAndBadTemplates: a copy loop of 5 groups after
// the group they depend on; Complete mode removing what its template does
// not hold; a table of bad templates that each give their code, name the
// place and create nothing; a secure parameter that never shows.
func TestDeploymentLoopsModesAndBadTemplates(t *testing.T) {
	s := deploymentServer(t)
	s.mustSkiff("group", "create", "--name", "rg", "--location", "local")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	group := func(name, extra, env string) string {
		return `{"name": "` + name + `", "type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2023-05-01",
  "location": "[resourceGroup().location]"` + extra + `,
  "properties": {"osType": "Linux", "restartPolicy": "Never", "containers": [{"name": "c", "properties": {"image": "microsoft/aci-tutorial-sidecar",
    "command": ["sleep", "3600"], "environmentVariables": [` + env + `],
    "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}]}}`
	}
	loop := write("loop.json", `{"parameters": {"count": {"type": "int", "defaultValue": 5}, "pw": {"type": "securestring"}},
 "resources": [`+group("first", "", `{"name": "PW", "secureValue": "[parameters('pw')]"}`)+`,
  `+group("[concat('web-', copyIndex())]", `, "copy": {"name": "webs", "count": "[parameters('count')]"}, "dependsOn": ["first"]`, "")+`],
 "outputs": {"names": {"type": "array", "value": "[createArray('first', 'web-0')]"}}}`)
	const secret = "pa55-Word-e2e-7c1d"
	d := deploymentJSON(t, s.mustSkiff("deployment", "group", "create", "-g", "rg", "-f", loop, "--parameters", "pw="+secret))
	if d.Name != "loop" || d.Properties.ProvisioningState != "Succeeded" {
		t.Fatalf("loop: %+v", d.Properties)
	}
	names := strings.Fields(s.mustSkiff("container", "list", "-g", "rg", "--query", "[].name", "-o", "tsv"))
	if strings.Join(names, " ") != "first web-0 web-1 web-2 web-3 web-4" {
		t.Fatalf("groups: %v", names)
	}
	// dependsOn: every web started after first was deployed.
	var ops []api.DeploymentOperation
	if err := json.Unmarshal([]byte(s.mustSkiff("deployment", "operation", "group", "list", "-g", "rg", "-n", "loop")), &ops); err != nil {
		t.Fatal(err)
	}
	var firstDone time.Time
	starts := map[string]time.Time{}
	for _, op := range ops {
		end, _ := time.Parse(time.RFC3339Nano, op.Properties.Timestamp)
		dur, _ := time.ParseDuration(strings.ToLower(strings.TrimPrefix(op.Properties.Duration, "PT")))
		if op.Properties.TargetResource.ResourceName == "first" {
			firstDone = end
		} else {
			starts[op.Properties.TargetResource.ResourceName] = end.Add(-dur)
		}
	}
	if len(starts) != 5 || firstDone.IsZero() {
		t.Fatalf("operations: %+v", ops)
	}
	for name, st := range starts {
		if st.Before(firstDone.Add(-5 * time.Millisecond)) {
			t.Errorf("%s started at %s, before first was deployed at %s", name, st.Format(time.StampMicro), firstDone.Format(time.StampMicro))
		}
	}
	// The secure parameter shows nowhere.
	for _, args := range [][]string{
		{"deployment", "group", "show", "-g", "rg", "-n", "loop"},
		{"deployment", "operation", "group", "list", "-g", "rg", "-n", "loop"},
		{"deployment", "group", "list", "-g", "rg"},
		{"container", "show", "-g", "rg", "-n", "first"},
	} {
		if out := s.mustSkiff(args...); strings.Contains(out, secret) {
			t.Errorf("skiff %s shows the secure parameter: %s", strings.Join(args, " "), out)
		}
	}

	// Complete mode: the template holds first only; the webs go.
	only := write("only.json", `{"parameters": {"pw": {"type": "securestring"}}, "resources": [`+group("first", "", `{"name": "PW", "secureValue": "[parameters('pw')]"}`)+`]}`)
	d = deploymentJSON(t, s.mustSkiff("deployment", "group", "create", "-g", "rg", "-n", "complete", "-f", only, "-p", "pw="+secret, "--mode", "Complete"))
	if d.Properties.ProvisioningState != "Succeeded" {
		t.Fatalf("complete: %+v", d.Properties)
	}
	if names := strings.Fields(s.mustSkiff("container", "list", "-g", "rg", "--query", "[].name", "-o", "tsv")); strings.Join(names, " ") != "first" {
		t.Errorf("after Complete mode: %v", names)
	}
	deletes := s.mustSkiff("deployment", "operation", "group", "list", "-g", "rg", "-n", "complete",
		"--query", "[?properties.provisioningOperation=='Delete'].properties.targetResource.resourceName", "-o", "tsv")
	if got := strings.Fields(deletes); len(got) != 5 {
		t.Errorf("Delete operations: %v", got)
	}

	// Bad templates: the code, the place, nothing created.
	for _, tc := range []struct {
		name, template string
		params         []string
		code, place    string
	}{
		{"unknown type", `{"resources": [` + group("fine", "", "") + `, {"name": "net", "type": "Microsoft.Network/virtualNetworks", "apiVersion": "2023-05-01", "location": "local", "properties": {}}]}`,
			nil, "InvalidTemplateDeployment", "Microsoft.Network/virtualNetworks"},
		{"failing expression", `{"resources": [` + group("[concat('x-', variables('missing'))]", "", "") + `]}`,
			nil, "InvalidTemplate", "missing"},
		{"missing parameter", `{"parameters": {"replicas": {"type": "int"}}, "resources": [` + group("fine", "", "") + `]}`,
			nil, "InvalidTemplate", "replicas"},
		{"disallowed value", `{"parameters": {"size": {"type": "string", "allowedValues": ["small", "large"]}}, "resources": [` + group("fine", "", "") + `]}`,
			[]string{"-p", "size=huge"}, "InvalidTemplate", "size"},
		{"cycle", `{"resources": [` + group("a", `, "dependsOn": ["b"]`, "") + `, ` + group("b", `, "dependsOn": ["a"]`, "") + `]}`,
			nil, "InvalidTemplate", "containerGroups/a"},
	} {
		f := write("bad.json", tc.template)
		args := append([]string{"deployment", "group", "create", "-g", "rg", "-f", f}, tc.params...)
		_, errOut, code := s.skiff(args...)
		if code != 2 || !strings.Contains(errOut, "("+tc.code+")") || !strings.Contains(errOut, tc.place) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%s: exit %d, stderr %q; want 2, (%s), naming %q", tc.name, code, errOut, tc.code, tc.place)
		}
	}
	if names := strings.Fields(s.mustSkiff("container", "list", "-g", "rg", "--query", "[].name", "-o", "tsv")); strings.Join(names, " ") != "first" {
		t.Errorf("bad templates created groups: %v", names)
	}
	if out := strings.Fields(s.mustSkiff("deployment", "group", "list", "-g", "rg", "--query", "[].name", "-o", "tsv")); strings.Join(out, " ") != "complete loop" {
		t.Errorf("deployments: %v (a bad one left a record?)", out)
	}
	if strings.Contains(s.Log(), secret) {
		t.Errorf("the server's log holds the secure parameter")
	}
}

// TestDeploymentHellofilesStorageFlow is seed 000's persistent storage:
// a storage account, its key, a share, then the hellofiles template
// (word for word) deployed with both parameters; the group writes into
// the share; the group is deleted and deployed again, and reads what the
// first wrote. A wrong key fails the deployment with the mount error in
// its details.
func TestDeploymentHellofilesStorageFlow(t *testing.T) {
	s := deploymentServer(t)
	rg := "myResourceGroup"
	s.mustSkiff("group", "create", "--name", rg, "--location", "local")
	s.mustSkiff("storage", "account", "create", "-n", "mycontainerstorage", "-g", rg, "--sku", "Standard_LRS")
	key := strings.TrimSpace(s.mustSkiff("storage", "account", "keys", "list", "--resource-group", rg, "--account-name", "mycontainerstorage",
		"--query", "[0].value", "-o", "tsv"))
	s.mustSkiff("storage", "share-rm", "create", "--storage-account", "mycontainerstorage", "-n", "myacishare")
	deploy := func(key string) (string, string, int) {
		return s.skiff("group", "deployment", "create", "--name", "hellofilesdeployment", "--template-file", "testdata/hellofiles.json",
			"--resource-group", rg, "--parameters", "storageaccountname=mycontainerstorage", "storageaccountkey="+key)
	}
	if out, errOut, code := deploy(key); code != 0 {
		t.Fatalf("deploy: exit %d\n%s%s\n%s", code, out, errOut, s.LogTail(20))
	} else if d := deploymentJSON(t, out); d.Properties.ProvisioningState != "Succeeded" || d.Properties.Parameters["storageaccountkey"].Value != nil {
		t.Fatalf("deployment %+v", d.Properties)
	}
	if body := waitHTTP(t, "http://127.0.0.1:80/", 30*time.Second); body != "run 1\n" {
		t.Fatalf("the first group served %q", body)
	}
	s.mustSkiff("container", "delete", "-g", rg, "-n", "hellofiles", "--yes")
	if out, errOut, code := deploy(key); code != 0 {
		t.Fatalf("deploy again: exit %d\n%s%s", code, out, errOut)
	}
	if body := waitHTTP(t, "http://127.0.0.1:80/", 30*time.Second); body != "run 1\nrun 2\n" {
		t.Errorf("the second group served %q: it must read what the first wrote", body)
	}
	if out := s.mustSkiff("deployment", "group", "show", "-g", rg, "-n", "hellofilesdeployment"); strings.Contains(out, key) {
		t.Errorf("show holds the storage key: %s", out)
	}

	// A wrong key: the deployment fails with the mount error.
	s.mustSkiff("container", "delete", "-g", rg, "-n", "hellofiles", "--yes")
	wrong := strings.Repeat("A", 86) + "=="
	out, errOut, code := deploy(wrong)
	want := "the storage account key is not valid for account 'mycontainerstorage'"
	if code != 1 || !strings.Contains(errOut, "(DeploymentFailed)") || !strings.Contains(errOut, want) || strings.Count(errOut, "\n") != 1 || out != "" {
		t.Errorf("a wrong key: exit %d, stdout %q, stderr %q; want one line with DeploymentFailed and %q", code, out, errOut, want)
	}
	if strings.Contains(s.Log(), key) || strings.Contains(errOut, wrong) {
		t.Errorf("a storage key reached the log or the error")
	}
}
