package cli_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/store"
)

// deployTemplate deploys one group named by a parameter, with an int, a
// bool, an object and a secure parameter, and outputs.
const deployTemplate = `{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  // a comment, as az's JSONC allows
  "parameters": {
    "name": {"type": "string"},
    "cpu": {"type": "int", "defaultValue": 1},
    "public": {"type": "bool", "defaultValue": false},
    "labels": {"type": "object", "defaultValue": {}},
    "token": {"type": "securestring", "defaultValue": "t0ken-default-xyz"}
  },
  "resources": [{
    "name": "[parameters('name')]", "type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2023-05-01",
    "location": "[resourceGroup().location]", "tags": "[parameters('labels')]",
    "properties": {"osType": "Linux", "containers": [{"name": "app", "properties": {"image": "busybox",
      "environmentVariables": [{"name": "TOKEN", "secureValue": "[parameters('token')]"}],
      "resources": {"requests": {"cpu": "[parameters('cpu')]", "memoryInGB": 1}}}}]}
  }],
  "outputs": {"group": {"type": "string", "value": "[parameters('name')]"}, "public": {"type": "bool", "value": "[parameters('public')]"}}
}`

func TestDeploymentGroupCreate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tf := writeFile(t, "azuredeploy.json", deployTemplate)
	pf := writeFile(t, "params.json", `{"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
  "contentVersion": "1.0.0.0", "parameters": {"labels": {"value": {"team": "core"}}, "cpu": {"value": 2}}}`)
	r := h.ok("deployment", "group", "create", "-g", "rg", "--template-file", tf,
		"--parameters", "name=web", "public=true", "--parameters", "@"+pf, `{"token": {"value": "s3cret-from-json"}}`)
	var d api.Deployment
	if err := json.Unmarshal([]byte(r.out), &d); err != nil {
		t.Fatalf("stdout: %v\n%s", err, r.out)
	}
	// The name is the template file's, as az names it; the outputs typed.
	if d.Name != "azuredeploy" || d.Properties.ProvisioningState != "Succeeded" || d.Properties.Outputs["group"].Value != "web" ||
		d.Properties.Outputs["public"].Value != true {
		t.Fatalf("deployment: %s", r.out)
	}
	if r.err != "" {
		t.Errorf("without a terminal nothing but the JSON is printed; stderr %q", r.err)
	}
	if strings.Contains(r.out, "s3cret-from-json") {
		t.Errorf("the secure parameter came back: %s", r.out)
	}
	// As az: validate first, then the PUT, with the values typed by the
	// template's declarations.
	reqs := h.rec.requests()
	var order []string
	for _, q := range reqs {
		if strings.Contains(q.Path, "Microsoft.Resources/deployments") && q.Method != http.MethodGet {
			order = append(order, q.Method+" "+q.Path[strings.LastIndex(q.Path, "/"):])
		}
	}
	if strings.Join(order, ",") != "POST /validate,PUT /azuredeploy" {
		t.Errorf("requests %v", order)
	}
	put := h.rec.last(http.MethodPut, "/deployments/azuredeploy")
	var body struct {
		Properties struct {
			Mode       string
			Parameters map[string]struct{ Value any }
		}
	}
	if err := json.Unmarshal(put.Body, &body); err != nil {
		t.Fatal(err)
	}
	p := body.Properties.Parameters
	if body.Properties.Mode != "Incremental" || p["name"].Value != "web" || p["public"].Value != true || p["cpu"].Value != float64(2) ||
		p["token"].Value != "s3cret-from-json" || p["labels"].Value.(map[string]any)["team"] != "core" {
		t.Errorf("PUT body %s", put.Body)
	}

	// show, list, operations, export, delete.
	r = h.ok("deployment", "group", "show", "-g", "rg", "-n", "azuredeploy", "--query", "properties.parameters.token")
	if strings.TrimSpace(r.out) != "{\n  \"type\": \"SecureString\"\n}" {
		t.Errorf("show's secure parameter: %q", r.out)
	}
	r = h.ok("deployment", "group", "list", "-g", "rg", "-o", "table")
	if lines := strings.Split(strings.TrimSpace(r.out), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "Name") ||
		!strings.Contains(lines[2], "azuredeploy") || !strings.Contains(lines[2], "Succeeded") || !strings.Contains(lines[2], "Incremental") {
		t.Errorf("list table:\n%s", r.out)
	}
	r = h.ok("deployment", "operation", "group", "list", "-g", "rg", "-n", "azuredeploy", "--query", "[].properties.[provisioningOperation, provisioningState, targetResource.resourceName]", "-o", "tsv")
	if strings.TrimSpace(r.out) != "Create\tSucceeded\tweb" {
		t.Errorf("operations: %q", r.out)
	}
	r = h.ok("deployment", "group", "export", "-g", "rg", "-n", "azuredeploy", "--query", "contentVersion", "-o", "tsv")
	if strings.TrimSpace(r.out) != "1.0.0.0" {
		t.Errorf("export: %q", r.out)
	}
	h.ok("deployment", "group", "delete", "-g", "rg", "-n", "azuredeploy")
	h.fails(3, "error: (DeploymentNotFound) Deployment 'azuredeploy' could not be found.", "deployment", "group", "show", "-g", "rg", "-n", "azuredeploy")
}

// TestGroupDeploymentCreate is the seed's older grammar.
func TestGroupDeploymentCreate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tf := writeFile(t, "azuredeploy.json", deployTemplate)
	r := h.ok("group", "deployment", "create", "--name", "myContainerGroup", "--resource-group", "rg", "--template-file", tf, "--parameters", "name=seed")
	if !strings.Contains(r.out, `"provisioningState": "Succeeded"`) {
		t.Fatalf("%s", r.out)
	}
	r = h.ok("group", "deployment", "show", "-g", "rg", "-n", "myContainerGroup", "--query", "properties.outputs.group.value", "-o", "tsv")
	if strings.TrimSpace(r.out) != "seed" {
		t.Errorf("show: %q", r.out)
	}
	r = h.ok("group", "deployment", "list", "-g", "rg", "--query", "[].name", "-o", "tsv")
	if strings.TrimSpace(r.out) != "myContainerGroup" {
		t.Errorf("list: %q", r.out)
	}
	h.ok("group", "deployment", "operation", "list", "-g", "rg", "-n", "myContainerGroup")
	h.ok("group", "deployment", "delete", "-g", "rg", "-n", "myContainerGroup")
}

func TestDeploymentErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tf := writeFile(t, "t.json", deployTemplate)
	h.fails(2, "unrecognized template parameter 'nope'. Allowed parameters: cpu, labels, name, public, token", "deployment", "group", "create", "-g", "rg", "-f", tf, "-p", "nope=1")
	h.fails(2, "'many' is not an int", "deployment", "group", "create", "-g", "rg", "-f", tf, "-p", "name=x", "cpu=many")
	h.fails(2, "--template-file/-f", "deployment", "group", "create", "-g", "rg")
	h.fails(2, "--template-uri is not supported", "deployment", "group", "create", "-g", "rg", "--template-uri", "https://example.com/t.json")
	h.fails(2, `--mode "Sometimes"`, "deployment", "group", "create", "-g", "rg", "-f", tf, "--mode", "Sometimes")
	// The server's refusals, one line each, nothing created.
	h.fails(2, "error: (InvalidTemplate) ", "deployment", "group", "create", "-g", "rg", "-f", tf)
	bad := writeFile(t, "bad.json", `{"resources": [{"name": "v", "type": "Microsoft.Network/virtualNetworks", "apiVersion": "2023-05-01", "location": "eastus", "properties": {}}]}`)
	h.fails(2, "Microsoft.Network/virtualNetworks", "deployment", "group", "validate", "-g", "rg", "-f", bad)
	h.fails(2, "(InvalidTemplateDeployment)", "deployment", "group", "create", "-g", "rg", "-f", bad)
	h.fails(3, "(DeploymentNotFound)", "deployment", "group", "show", "-g", "rg", "-n", "bad")
	h.fails(3, "(ResourceGroupNotFound)", "deployment", "group", "list", "-g", "nope")
	h.fails(3, "(DeploymentNotFound)", "deployment", "group", "cancel", "-g", "rg", "-n", "bad")
}

// TestDeploymentFailureAndProgress: on a terminal the CLI shows a line
// per resource; a failed deployment is one error line with each detail,
// exit 1.
func TestDeploymentFailureAndProgress(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.srv.Agent.Fail = func(cg *store.ContainerGroup) *api.ErrorBody {
		if cg.Resource.Name == "broken" {
			return &api.ErrorBody{Code: "InaccessibleImage", Message: "The image 'nope:1' could not be pulled."}
		}
		return nil
	}
	tf := writeFile(t, "t.json", deployTemplate)
	h.stderrTTY = true
	r := h.ok("deployment", "group", "create", "-g", "rg", "-n", "good", "-f", tf, "-p", "name=fine")
	if !strings.Contains(r.err, "Create fine (containerGroups)") || !strings.Contains(r.err, "Succeeded") {
		t.Errorf("progress on a terminal: %q", r.err)
	}
	r = h.run("deployment", "group", "create", "-g", "rg", "-n", "bad", "-f", tf, "-p", "name=broken")
	if r.code != 1 || !strings.Contains(r.err, "error: deployment 'bad' failed: (DeploymentFailed) At least one resource deployment operation failed.") ||
		!strings.Contains(r.err, "(InaccessibleImage) Microsoft.ContainerInstance/containerGroups 'broken': The image 'nope:1' could not be pulled.") {
		t.Errorf("exit %d, stderr %q", r.code, r.err)
	}
	if last := r.err[strings.LastIndex(strings.TrimSuffix(r.err, "\n"), "\n")+1:]; !strings.HasPrefix(last, "error: ") || strings.Count(last, "\n") != 1 {
		t.Errorf("the failure is not one last line: %q", r.err)
	}
	h.fails(4, "(DeploymentCannotBeCancelled)", "deployment", "group", "cancel", "-g", "rg", "-n", "bad")
	h.stderrTTY = false
	r = h.run("deployment", "group", "create", "-g", "rg", "-n", "bad", "-f", tf, "-p", "name=broken")
	if r.code != 1 || strings.Count(r.err, "\n") != 1 || r.out != "" {
		t.Errorf("without a terminal: exit %d, stdout %q, stderr %q", r.code, r.out, r.err)
	}
}
