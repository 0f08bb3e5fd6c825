package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/authz"
	"github.com/skiff-sh/skiff/internal/store"
)

// The deployment routes on the real store, controller and engine, with
// the fake agent as the host: every group a template deploys "runs" at
// once (fakeagent), so these tests are about the deployments themselves.

// syncBuffer is a log sink tests read.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type deployEnv struct {
	*testEnv
	log *syncBuffer
}

// newDeployEnv is a testEnv whose engine runs, with the server's logs (at
// debug) and audit lines in log.
func newDeployEnv(t *testing.T) *deployEnv {
	t.Helper()
	logs := &syncBuffer{}
	e := newTestEnv(t, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { e.srv.Deployments().Run(ctx); close(ran) }()
	t.Cleanup(func() { stop(); <-ran })
	return &deployEnv{testEnv: e, log: logs}
}

func (e *deployEnv) depPath(name string) string {
	return e.rgPath() + "/providers/Microsoft.Resources/deployments/" + name
}

// body is a deployment's PUT body.
func depBody(template string, params map[string]any, mode string) string {
	p := map[string]any{}
	for k, v := range params {
		p[k] = map[string]any{"value": v}
	}
	b, _ := json.Marshal(map[string]any{"properties": map[string]any{"template": json.RawMessage(template), "parameters": p, "mode": mode}})
	return string(b)
}

// wait polls a deployment until it is over.
func (e *deployEnv) wait(t *testing.T, name string) api.Deployment {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, _, body := e.do(t, "GET", e.depPath(name), nil)
		var d api.Deployment
		if code != 200 || json.Unmarshal(body, &d) != nil {
			t.Fatalf("GET deployment %s: %d %s", name, code, body)
		}
		if api.DeploymentTerminal(d.Properties.ProvisioningState) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment %s still %s", name, d.Properties.ProvisioningState)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *deployEnv) operations(t *testing.T, name string) []api.DeploymentOperation {
	t.Helper()
	code, _, body := e.do(t, "GET", e.depPath(name)+"/operations", nil)
	var l api.List[api.DeploymentOperation]
	if code != 200 || json.Unmarshal(body, &l) != nil {
		t.Fatalf("operations: %d %s", code, body)
	}
	return l.Value
}

func (e *deployEnv) groups(t *testing.T) []string {
	t.Helper()
	cgs, err := e.srv.cfg.Store.ListContainerGroups(context.Background(), e.sub, "rg")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, cg := range cgs {
		names = append(names, cg.Resource.Name)
	}
	return names
}

// sidecarTemplate is seed 000's sidecar template, its group's name
// lower-cased (ACI refuses upper-case group names; see test/e2e for the
// seed's file as it is).
const sidecarTemplate = `{
  "$schema": "https://schema.management.azure.com/schemas/2015-01-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {},
  "variables": {"container1name": "aci-tutorial-app", "container1image": "microsoft/aci-helloworld:latest",
    "container2name": "aci-tutorial-sidecar", "container2image": "microsoft/aci-tutorial-sidecar"},
  "resources": [{
    "name": "mycontainergroup", "type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2017-08-01-preview",
    "location": "[resourceGroup().location]",
    "properties": {
      "containers": [
        {"name": "[variables('container1name')]", "properties": {"image": "[variables('container1image')]",
          "resources": {"requests": {"cpu": 1, "memoryInGb": 1.5}}, "ports": [{"port": 80}]}},
        {"name": "[variables('container2name')]", "properties": {"image": "[variables('container2image')]",
          "resources": {"requests": {"cpu": 1, "memoryInGb": 1.5}}}}
      ],
      "osType": "Linux",
      "ipAddress": {"type": "Public", "ports": [{"protocol": "tcp", "port": "80"}]}
    }
  }],
  "outputs": {"containerIPv4Address": {"type": "string",
    "value": "[reference(resourceId('Microsoft.ContainerInstance/containerGroups/', 'mycontainergroup')).ipAddress.ip]"}}
}`

func TestDeploymentOfTheSeedTemplate(t *testing.T) {
	e := newDeployEnv(t)
	code, h, body := e.roundTrip(t, "PUT", e.depPath("myContainerGroup"), depBody(sidecarTemplate, nil, "Incremental"))
	if code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	async := h.Get("Azure-AsyncOperation")
	if !strings.Contains(async, "/providers/Microsoft.Resources/deployments/myContainerGroup/operationStatuses/") {
		t.Fatalf("Azure-AsyncOperation %q", async)
	}
	d := e.wait(t, "myContainerGroup")
	if d.Properties.ProvisioningState != api.DeploymentSucceeded {
		t.Fatalf("deployment %s: %+v", d.Properties.ProvisioningState, d.Properties.Error)
	}
	if d.ID != e.depPath("myContainerGroup") || d.Type != "Microsoft.Resources/deployments" || d.Properties.Mode != "Incremental" ||
		!strings.HasPrefix(d.Properties.Duration, "PT") || d.Properties.CorrelationID == "" {
		t.Errorf("deployment: %+v", d)
	}
	// The output is the group's address, as its GET shows it.
	_, _, cgBody := e.do(t, "GET", e.cgPath("mycontainergroup"), nil)
	var cg api.ContainerGroup
	if err := json.Unmarshal(cgBody, &cg); err != nil || cg.Properties.IPAddress == nil {
		t.Fatalf("group: %s", cgBody)
	}
	if out := d.Properties.Outputs["containerIPv4Address"]; out.Type != "String" || out.Value != cg.Properties.IPAddress.IP || out.Value == "" {
		t.Errorf("output %+v, group ip %q", out, cg.Properties.IPAddress.IP)
	}
	if len(cg.Properties.Containers) != 2 || cg.Properties.Containers[1].Name != "aci-tutorial-sidecar" {
		t.Errorf("containers %+v", cg.Properties.Containers)
	}
	if len(d.Properties.OutputResources) != 1 || !strings.EqualFold(d.Properties.OutputResources[0].ID, e.cgPath("mycontainergroup")) {
		t.Errorf("outputResources %+v", d.Properties.OutputResources)
	}
	ops := e.operations(t, "myContainerGroup")
	if len(ops) != 1 || ops[0].Properties.ProvisioningOperation != "Create" || ops[0].Properties.ProvisioningState != "Succeeded" ||
		ops[0].Properties.StatusCode != "Created" || ops[0].Properties.TargetResource.ResourceName != "mycontainergroup" {
		t.Fatalf("operations %+v", ops)
	}
	code, _, body = e.do(t, "GET", e.depPath("myContainerGroup")+"/operations/"+ops[0].OperationID, nil)
	if code != 200 || !strings.Contains(string(body), ops[0].OperationID) {
		t.Errorf("operation: %d %s", code, body)
	}
	// The operation status the PUT pointed at.
	i := strings.Index(async, "/subscriptions/")
	code, _, body = e.do(t, "GET", strings.Split(async[i:], "?")[0], nil)
	if code != 200 || !strings.Contains(string(body), `"status":"Succeeded"`) {
		t.Errorf("operation status: %d %s", code, body)
	}
	// A second PUT of the same deployment: 200, and it runs again.
	if code, _, body := e.do(t, "PUT", e.depPath("myContainerGroup"), depBody(sidecarTemplate, nil, "Incremental")); code != 200 {
		t.Fatalf("PUT again: %d %s", code, body)
	}
	if d := e.wait(t, "myContainerGroup"); d.Properties.ProvisioningState != "Succeeded" {
		t.Fatalf("again: %+v", d.Properties)
	}
	// List, export, HEAD, DELETE (the record only).
	code, _, body = e.do(t, "GET", e.rgPath()+"/providers/Microsoft.Resources/deployments", nil)
	if code != 200 || !strings.Contains(string(body), `"name":"myContainerGroup"`) {
		t.Errorf("list: %d %s", code, body)
	}
	code, _, body = e.do(t, "GET", e.rgPath()+"/providers/Microsoft.Resources/deployments?$filter=provisioningState%20eq%20'Failed'", nil)
	if code != 200 || strings.Contains(string(body), "myContainerGroup") {
		t.Errorf("list of the failed: %d %s", code, body)
	}
	code, _, body = e.do(t, "POST", e.depPath("myContainerGroup")+"/exportTemplate", "{}")
	if code != 200 || !strings.Contains(string(body), `"container1name"`) {
		t.Errorf("export: %d %s", code, body)
	}
	if code, _, _ := e.do(t, "HEAD", e.depPath("myContainerGroup"), nil); code != 204 {
		t.Errorf("HEAD: %d", code)
	}
	code, h, _ = e.roundTrip(t, "DELETE", e.depPath("myContainerGroup"), nil)
	if code != 202 || h.Get("Location") == "" {
		t.Fatalf("DELETE: %d %v", code, h)
	}
	loc := h.Get("Location")
	if code, _, _ := e.do(t, "GET", strings.Split(loc[strings.Index(loc, "/subscriptions/"):], "?")[0], nil); code != 204 {
		t.Errorf("the delete's Location: %d", code)
	}
	if code, c, _ := e.do(t, "GET", e.depPath("myContainerGroup"), nil); code != 404 || c != "DeploymentNotFound" {
		t.Errorf("GET after DELETE: %d %s", code, c)
	}
	if code, _, _ := e.do(t, "HEAD", e.depPath("myContainerGroup"), nil); code != 404 {
		t.Errorf("HEAD after DELETE: %d", code)
	}
	if g := e.groups(t); len(g) != 1 {
		t.Errorf("the group went with the record: %v", g)
	}
}

func TestDeploymentOfAzCLIBody(t *testing.T) {
	e := newDeployEnv(t)
	tmpl := `{"parameters": {"name": {"type": "string"}, "n": {"type": "int", "defaultValue": 2}},
 "resources": [{"name": "[parameters('name')]", "type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2023-05-01",
  "location": "[resourceGroup().location]",
  "properties": {"osType": "Linux", "containers": [{"name": "c", "properties": {"image": "busybox", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}}]}}],
 "outputs": {"n": {"type": "int", "value": "[parameters('n')]"}}}`
	// az 2.45's body: the template key unquoted, the file's text spliced in.
	body := `{"properties": {"parameters": {"name": {"value": "fromaz"}}, "mode": "Incremental", template:` + tmpl + `}}`
	if code, _, resp := e.do(t, "POST", e.depPath("az")+"/validate", body); code != 200 || !strings.Contains(string(resp), `"validatedResources"`) {
		t.Fatalf("validate: %d %s", code, resp)
	}
	if code, _, resp := e.do(t, "PUT", e.depPath("az"), body); code != 201 {
		t.Fatalf("PUT: %d %s", code, resp)
	}
	d := e.wait(t, "az")
	if d.Properties.ProvisioningState != "Succeeded" || d.Properties.Outputs["n"].Value != float64(2) || d.Properties.Outputs["n"].Type != "Int" {
		t.Fatalf("%+v", d.Properties)
	}
	if p := d.Properties.Parameters; p["name"].Value != "fromaz" || p["name"].Type != "String" || p["n"].Value != float64(2) {
		t.Errorf("parameters %+v", p)
	}
	if g := e.groups(t); len(g) != 1 || g[0] != "fromaz" {
		t.Errorf("groups %v", g)
	}
}

// TestBadTemplatesCreateNothing: each bad template is refused at validate
// and at PUT with its code, naming the place; no record, no group.
func TestBadTemplatesCreateNothing(t *testing.T) {
	e := newDeployEnv(t)
	group := func(name, extra string) string {
		return `{"name": "` + name + `", "type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2023-05-01", "location": "local"` + extra +
			`, "properties": {"osType": "Linux", "containers": [{"name": "c", "properties": {"image": "busybox", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}}]}}`
	}
	for _, tc := range []struct {
		name, template string
		params         map[string]any
		code           string
		want           []string
	}{
		{"unknown type", `{"resources": [` + group("ok", "") + `, {"name": "v", "type": "Microsoft.Network/virtualNetworks", "apiVersion": "2023-05-01", "location": "local", "properties": {}}]}`,
			nil, "InvalidTemplateDeployment", []string{"Microsoft.Network/virtualNetworks"}},
		{"nested deployment", `{"resources": [{"name": "inner", "type": "Microsoft.Resources/deployments", "apiVersion": "2021-04-01", "properties": {"mode": "Incremental", "template": {}}}]}`,
			nil, "InvalidTemplateDeployment", []string{"nested deployments"}},
		{"failing expression", `{"resources": [` + group("[concat('a', variables('nope'))]", "") + `]}`,
			nil, "InvalidTemplate", []string{"nope"}},
		{"missing parameter", `{"parameters": {"size": {"type": "int"}}, "resources": [` + group("ok", "") + `]}`,
			nil, "InvalidTemplate", []string{"size"}},
		{"disallowed value", `{"parameters": {"sku": {"type": "string", "allowedValues": ["small", "large"]}}, "resources": [` + group("ok", "") + `]}`,
			map[string]any{"sku": "huge"}, "InvalidTemplate", []string{"sku"}},
		{"cycle", `{"resources": [` + group("a", `, "dependsOn": ["b"]`) + `, ` + group("b", `, "dependsOn": ["a"]`) + `]}`,
			nil, "InvalidTemplate", []string{"a", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := depBody(tc.template, tc.params, "Incremental")
			for _, method := range []string{"POST", "PUT"} {
				path := e.depPath("bad")
				if method == "POST" {
					path += "/validate"
				}
				code, c, resp := e.do(t, method, path, body)
				if code != 400 || c != tc.code {
					t.Fatalf("%s: %d %s %s", method, code, c, resp)
				}
				for _, w := range tc.want {
					if !strings.Contains(string(resp), w) {
						t.Errorf("%s: message does not name %q: %s", method, w, resp)
					}
				}
			}
			if code, _, _ := e.do(t, "GET", e.depPath("bad"), nil); code != 404 {
				t.Errorf("a record was left: %d", code)
			}
			if g := e.groups(t); len(g) != 0 {
				t.Errorf("groups were created: %v", g)
			}
		})
	}
	// Malformed bodies.
	for _, body := range []string{`{"properties": {"template": {"resources": [}}}`, `{"properties": {}}`, `not json`} {
		if code, c, resp := e.do(t, "PUT", e.depPath("bad"), body); code != 400 || (c != "InvalidRequestContent" && c != "InvalidDeployment") {
			t.Errorf("%s: %d %s %s", body, code, c, resp)
		}
	}
	if code, c, _ := e.do(t, "PUT", e.depPath("bad name!"), depBody(`{"resources": []}`, nil, "")); code != 400 || c != "InvalidDeploymentName" {
		t.Errorf("bad name: %d %s", code, c)
	}
	if code, c, _ := e.do(t, "PUT", e.rgPath()+"x/providers/Microsoft.Resources/deployments/d", depBody(`{"resources": []}`, nil, "")); code != 404 || c != "ResourceGroupNotFound" {
		t.Errorf("no resource group: %d %s", code, c)
	}
}

func TestDeploymentCopyLoopAndOrder(t *testing.T) {
	e := newDeployEnv(t)
	tmpl := `{"resources": [
  {"name": "[concat('web', copyIndex())]", "type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2023-05-01", "location": "local",
   "copy": {"name": "webs", "count": 5}, "dependsOn": ["db"],
   "properties": {"osType": "Linux", "containers": [{"name": "c", "properties": {"image": "busybox", "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}]}},
  {"name": "db", "type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2023-05-01", "location": "local",
   "properties": {"osType": "Linux", "containers": [{"name": "c", "properties": {"image": "busybox", "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}]}}]}`
	if code, _, body := e.do(t, "PUT", e.depPath("loop"), depBody(tmpl, nil, "Incremental")); code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if d := e.wait(t, "loop"); d.Properties.ProvisioningState != "Succeeded" {
		t.Fatalf("%+v", d.Properties.Error)
	} else if len(d.Properties.Dependencies) != 5 {
		t.Errorf("dependencies %+v", d.Properties.Dependencies)
	}
	if g := e.groups(t); len(g) != 6 {
		t.Fatalf("groups %v", g)
	}
	// db's operation ended before any web's started.
	var dbEnd time.Time
	var webStarts []time.Time
	for _, op := range e.operations(t, "loop") {
		ts, _ := time.Parse(time.RFC3339Nano, op.Properties.Timestamp)
		dur, _ := time.ParseDuration(strings.ToLower(strings.TrimPrefix(op.Properties.Duration, "PT")))
		if op.Properties.TargetResource.ResourceName == "db" {
			dbEnd = ts
		} else {
			webStarts = append(webStarts, ts.Add(-dur))
		}
	}
	if len(webStarts) != 5 || dbEnd.IsZero() {
		t.Fatalf("operations: db %v, webs %v", dbEnd, webStarts)
	}
	for _, s := range webStarts {
		if s.Before(dbEnd.Add(-time.Millisecond)) {
			t.Errorf("a web started at %v, before db ended at %v", s, dbEnd)
		}
	}
}

func TestDeploymentCompleteMode(t *testing.T) {
	e := newDeployEnv(t)
	cg := `{"location": "local", "properties": {"osType": "Linux", "containers": [{"name": "c", "properties": {"image": "busybox", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}}]}}`
	if code, _, body := e.do(t, "PUT", e.cgPath("stray"), cg); code != 201 {
		t.Fatalf("stray: %d %s", code, body)
	}
	tmpl := `{"resources": [{"name": "kept", "type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2023-05-01", "location": "local",
  "properties": {"osType": "Linux", "containers": [{"name": "c", "properties": {"image": "busybox", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}}]}}]}`
	if code, _, body := e.do(t, "PUT", e.depPath("inc"), depBody(tmpl, nil, "Incremental")); code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	e.wait(t, "inc")
	if g := e.groups(t); len(g) != 2 {
		t.Fatalf("incremental left %v", g)
	}
	if code, _, body := e.do(t, "PUT", e.depPath("complete"), depBody(tmpl, nil, "Complete")); code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if d := e.wait(t, "complete"); d.Properties.ProvisioningState != "Succeeded" || d.Properties.Mode != "Complete" {
		t.Fatalf("%+v", d.Properties)
	}
	deadline := time.Now().Add(10 * time.Second)
	for g := e.groups(t); len(g) != 1 || g[0] != "kept"; g = e.groups(t) {
		if time.Now().After(deadline) {
			t.Fatalf("complete mode left %v", g)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var del *api.DeploymentOperation
	for _, op := range e.operations(t, "complete") {
		if op.Properties.ProvisioningOperation == "Delete" {
			del = &op
		}
	}
	if del == nil || del.Properties.TargetResource.ResourceName != "stray" || del.Properties.ProvisioningState != "Succeeded" {
		t.Errorf("delete operation %+v", del)
	}
}

func TestDeploymentFailedResource(t *testing.T) {
	e := newDeployEnv(t)
	e.host.Fail = func(cg *store.ContainerGroup) *api.ErrorBody {
		if cg.Resource.Name == "broken" {
			return &api.ErrorBody{Code: "InaccessibleImage", Message: "The image 'nope' could not be pulled."}
		}
		return nil
	}
	group := func(name, extra string) string {
		return `{"name": "` + name + `", "type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2023-05-01", "location": "local"` + extra +
			`, "properties": {"osType": "Linux", "containers": [{"name": "c", "properties": {"image": "busybox", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}}]}}`
	}
	invalid := `{"name": "invalid", "type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2023-05-01", "location": "local",
  "properties": {"osType": "Linux", "containers": []}}`
	tmpl := `{"resources": [` + group("broken", "") + `, ` + group("after", `, "dependsOn": ["broken"]`) + `, ` + group("beside", "") +
		`, ` + invalid + `]}`
	if code, _, body := e.do(t, "PUT", e.depPath("fails"), depBody(tmpl, nil, "Incremental")); code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	d := e.wait(t, "fails")
	if d.Properties.ProvisioningState != "Failed" || d.Properties.Error == nil || d.Properties.Error.Code != "DeploymentFailed" {
		t.Fatalf("%+v", d.Properties)
	}
	details := map[string]string{}
	for _, det := range d.Properties.Error.Details {
		details[det.Code] = det.Message
	}
	if !strings.Contains(details["InaccessibleImage"], "broken") || len(details) != 2 {
		t.Errorf("details %+v", d.Properties.Error.Details)
	}
	got := e.groups(t)
	if strings.Join(got, ",") != "beside,broken" {
		t.Errorf("groups %v: 'after' must not start, 'beside' must finish", got)
	}
	// Over, it cannot be canceled.
	if code, c, _ := e.do(t, "POST", e.depPath("fails")+"/cancel", nil); code != 409 || c != "DeploymentCannotBeCancelled" {
		t.Errorf("cancel of a failed one: %d %s", code, c)
	}
}

func TestDeploymentCancel(t *testing.T) {
	e := newDeployEnv(t)
	var held sync.Map
	e.host.Hold = func(cg *store.ContainerGroup) bool {
		_, hold := held.Load(cg.Resource.Name)
		return hold
	}
	held.Store("slow", true)
	tmpl := `{"resources": [{"name": "slow", "type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2023-05-01", "location": "local",
  "properties": {"osType": "Linux", "containers": [{"name": "c", "properties": {"image": "busybox", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}}]}},
  {"name": "next", "type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2023-05-01", "location": "local", "dependsOn": ["slow"],
  "properties": {"osType": "Linux", "containers": [{"name": "c", "properties": {"image": "busybox", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}}]}}]}`
	if code, _, body := e.do(t, "PUT", e.depPath("c"), depBody(tmpl, nil, "Incremental")); code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	// Running, with slow's PUT in flight.
	deadline := time.Now().Add(10 * time.Second)
	for len(e.groups(t)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("slow never created")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, c, _ := e.do(t, "PUT", e.depPath("c"), depBody(tmpl, nil, "Incremental")); code != 409 || c != "DeploymentActive" {
		t.Errorf("PUT while running: %d %s", code, c)
	}
	if code, c, _ := e.do(t, "DELETE", e.depPath("c"), nil); code != 409 || c != "DeploymentActive" {
		t.Errorf("DELETE while running: %d %s", code, c)
	}
	if code, _, body := e.do(t, "POST", e.depPath("c")+"/cancel", nil); code != 204 {
		t.Fatalf("cancel: %d %s", code, body)
	}
	if d := e.wait(t, "c"); d.Properties.ProvisioningState != "Canceled" {
		t.Fatalf("%+v", d.Properties)
	}
	// The run ends its wait on slow and starts nothing more.
	deadline = time.Now().Add(5 * time.Second)
	for {
		ops := e.operations(t, "c")
		if len(ops) == 1 && ops[0].Properties.ProvisioningState == "Canceled" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("operations %+v", ops)
		}
		time.Sleep(20 * time.Millisecond)
	}
	held.Delete("slow")
	time.Sleep(200 * time.Millisecond)
	if g := e.groups(t); strings.Join(g, ",") != "slow" {
		t.Errorf("groups %v", g)
	}
	if code, c, _ := e.do(t, "POST", e.depPath("c")+"/cancel", nil); code != 409 || c != "DeploymentCannotBeCancelled" {
		t.Errorf("second cancel: %d %s", code, c)
	}
	if code, _, _ := e.do(t, "DELETE", e.depPath("c"), nil); code != 202 {
		t.Errorf("DELETE once canceled: %d", code)
	}
}

// TestDeploymentSecureParameters: a secure value never comes back from a
// read, an operation, an error, the log or the audit log, and is sealed in
// the store.
func TestDeploymentSecureParameters(t *testing.T) {
	e := newDeployEnv(t)
	const secret = "s3cr3t-Value-9f8e7d"
	tmpl := `{"parameters": {"pw": {"type": "securestring"}, "conf": {"type": "secureObject"}, "sku": {"type": "string", "allowedValues": ["a"]}},
 "resources": [{"name": "sec", "type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2023-05-01", "location": "local",
  "properties": {"osType": "Linux", "containers": [{"name": "c", "properties": {"image": "busybox",
    "environmentVariables": [{"name": "PW", "secureValue": "[parameters('pw')]"}, {"name": "TOKEN", "secureValue": "[parameters('conf').token]"}],
    "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}}]}},
  {"name": "bad", "type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2023-05-01", "location": "local",
   "properties": {"osType": "Linux", "containers": [{"name": "[concat('Bad_', parameters('pw'))]", "properties": {"image": "busybox",
     "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}}]}}],
 "outputs": {"echo": {"type": "securestring", "value": "[parameters('pw')]"}}}`
	params := map[string]any{"pw": secret, "conf": map[string]any{"token": secret + "-tok"}, "sku": "a"}
	// Refused parameters quote values, never a secure one.
	bad := map[string]any{"pw": secret, "conf": map[string]any{"token": "x"}, "sku": secret}
	tmplBadSku := strings.Replace(tmpl, `"allowedValues": ["a"]`, `"allowedValues": ["a"], "minLength": 1`, 1)
	_, _, resp := e.do(t, "PUT", e.depPath("sec"), depBody(tmplBadSku, bad, "Incremental"))
	_ = resp // sku is not secure: it may be quoted
	tmplBadPw := strings.Replace(tmpl, `"pw": {"type": "securestring"}`, `"pw": {"type": "securestring", "allowedValues": ["other"]}`, 1)
	code, _, resp := e.do(t, "PUT", e.depPath("sec"), depBody(tmplBadPw, params, "Incremental"))
	if code != 400 || strings.Contains(string(resp), secret) {
		t.Errorf("a refused secure parameter: %d %s", code, resp)
	}
	code, _, resp = e.do(t, "POST", e.depPath("sec")+"/validate", depBody(tmpl, params, "Incremental"))
	if code != 200 || strings.Contains(string(resp), secret) {
		t.Errorf("validate: %d %s", code, resp)
	}
	if code, _, resp := e.do(t, "PUT", e.depPath("sec"), depBody(tmpl, params, "Incremental")); code != 201 || strings.Contains(string(resp), secret) {
		t.Fatalf("PUT: %d %s", code, resp)
	}
	d := e.wait(t, "sec")
	if d.Properties.ProvisioningState != "Failed" { // the container name of 'bad' is invalid
		t.Fatalf("%+v", d.Properties)
	}
	if p := d.Properties.Parameters["pw"]; p.Type != "SecureString" || p.Value != nil {
		t.Errorf("pw reads %+v", p)
	}
	if p := d.Properties.Parameters["conf"]; p.Type != "SecureObject" || p.Value != nil {
		t.Errorf("conf reads %+v", p)
	}
	for _, path := range []string{e.depPath("sec"), e.depPath("sec") + "/operations", e.rgPath() + "/providers/Microsoft.Resources/deployments"} {
		_, _, body := e.do(t, "GET", path, nil)
		if strings.Contains(string(body), secret) {
			t.Errorf("GET %s shows the secret: %s", path, body)
		}
	}
	if det := fmt.Sprint(d.Properties.Error.Details); !strings.Contains(det, "'bad'") || !strings.Contains(det, "Bad_[secure value redacted]") {
		t.Errorf("the failure names no resource: %+v", d.Properties.Error)
	}
	objs, err := e.srv.cfg.Store.ListObjects(context.Background(), "deployment", "")
	if err != nil || len(objs) != 1 {
		t.Fatalf("records: %v %d", err, len(objs))
	}
	if bytes.Contains(objs[0].Value, []byte(secret)) {
		t.Errorf("the record holds the secret in plain: %s", objs[0].Value)
	}
	if strings.Contains(e.log.String(), secret) {
		t.Errorf("the log holds the secret:\n%s", e.log.String())
	}
}

func TestDeploymentRecordsGoWithTheirResourceGroup(t *testing.T) {
	e := newDeployEnv(t)
	if code, _, body := e.do(t, "PUT", e.depPath("empty"), depBody(`{"resources": []}`, nil, "Incremental")); code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if d := e.wait(t, "empty"); d.Properties.ProvisioningState != "Succeeded" {
		t.Fatalf("%+v", d.Properties)
	}
	if code, _, body := e.do(t, "DELETE", e.rgPath(), nil); code != 202 {
		t.Fatalf("delete rg: %d %s", code, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		objs, err := e.srv.cfg.Store.ListObjects(context.Background(), "deployment", "")
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("records left: %d", len(objs))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A namesake resource group starts without them.
	if code, _, _ := e.do(t, "PUT", e.rgPath(), `{"location": "local"}`); code != 201 {
		t.Fatal("rg again")
	}
	if code, _, _ := e.do(t, "GET", e.depPath("empty"), nil); code != 404 {
		t.Errorf("GET: %d", code)
	}
}

// TestDeploymentActsAsItsPrincipal: a template's resources are created
// with the deploying principal's rights, not the server's: a principal
// that may deploy but not write container groups gets a failed
// deployment with AuthorizationFailed, and one that may write them gets
// its groups.
func TestDeploymentActsAsItsPrincipal(t *testing.T) {
	e := newRBACEnv(t)
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { e.srv.Deployments().Run(ctx); close(ran) }()
	t.Cleanup(func() { stop(); <-ran })
	sub := "/subscriptions/" + e.sub
	rgA := sub + "/resourceGroups/a"
	deployer := uuid.NewString()
	if _, _, err := e.rbac.PutRoleDefinition(context.Background(), sub, deployer, authz.RoleDefinitionProperties{RoleName: "Deployer only",
		Permissions:      []authz.Permission{{Actions: []string{"Microsoft.Resources/deployments/*", "Microsoft.Resources/subscriptions/resourceGroups/read"}}},
		AssignableScopes: []string{sub}}, "test"); err != nil {
		t.Fatal(err)
	}
	only := e.principal(t, "deployer-only", deployer, rgA)
	contrib := e.principal(t, "contrib-a", roleContributor, rgA)
	tmpl := `{"resources": [{"name": "[parameters('n')]", "type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2023-05-01", "location": "local",
  "properties": {"osType": "Linux", "containers": [{"name": "c", "properties": {"image": "busybox", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}}]}}],
  "parameters": {"n": {"type": "string"}}}`
	wait := func(tok, name string) api.Deployment {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, body := e.call(t, tok, "GET", rgA+"/providers/Microsoft.Resources/deployments/"+name, "")
			var d api.Deployment
			if code != 200 || json.Unmarshal([]byte(body), &d) != nil {
				t.Fatalf("GET %s: %d %s", name, code, body)
			}
			if api.DeploymentTerminal(d.Properties.ProvisioningState) {
				return d
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still %s", name, d.Properties.ProvisioningState)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if code, body := e.call(t, only, "PUT", rgA+"/providers/Microsoft.Resources/deployments/denied", depBody(tmpl, map[string]any{"n": "denied"}, "Incremental")); code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	d := wait(only, "denied")
	if d.Properties.ProvisioningState != "Failed" || len(d.Properties.Error.Details) != 1 || d.Properties.Error.Details[0].Code != "AuthorizationFailed" {
		t.Fatalf("deployment by a principal without containerGroups/write: %+v", d.Properties.Error)
	}
	if code, body := e.call(t, contrib, "PUT", rgA+"/providers/Microsoft.Resources/deployments/allowed", depBody(tmpl, map[string]any{"n": "allowed"}, "Incremental")); code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if d := wait(contrib, "allowed"); d.Properties.ProvisioningState != "Succeeded" {
		t.Fatalf("deployment by a contributor: %+v", d.Properties.Error)
	}
	if code, _ := e.call(t, contrib, "GET", rgA+"/providers/Microsoft.ContainerInstance/containerGroups/allowed", ""); code != 200 {
		t.Errorf("the group: %d", code)
	}
	if code, _ := e.call(t, contrib, "GET", rgA+"/providers/Microsoft.ContainerInstance/containerGroups/denied", ""); code != 404 {
		t.Errorf("the denied group: %d", code)
	}
}

// TestDeploymentOfStorage: a template deploys a storage account, a share
// under it and a group that mounts the share with the account's key from
// listKeys(), in that order; the key shows in no read.
func TestDeploymentOfStorage(t *testing.T) {
	e := newDeployEnv(t)
	tmpl := `{"variables": {"acct": "deploystore1"},
 "resources": [
  {"name": "[variables('acct')]", "type": "Microsoft.Storage/storageAccounts", "apiVersion": "2023-01-01", "location": "[resourceGroup().location]",
   "sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "properties": {}},
  {"name": "[concat(variables('acct'), '/default/data')]", "type": "Microsoft.Storage/storageAccounts/fileServices/shares", "apiVersion": "2023-01-01",
   "dependsOn": ["[resourceId('Microsoft.Storage/storageAccounts', variables('acct'))]"], "properties": {}},
  {"name": "files", "type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2023-05-01", "location": "[resourceGroup().location]",
   "dependsOn": ["[resourceId('Microsoft.Storage/storageAccounts/fileServices/shares', variables('acct'), 'default', 'data')]"],
   "properties": {"osType": "Linux", "containers": [{"name": "c", "properties": {"image": "busybox",
     "volumeMounts": [{"name": "v", "mountPath": "/data"}], "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}}],
    "volumes": [{"name": "v", "azureFile": {"shareName": "data", "storageAccountName": "[variables('acct')]",
      "storageAccountKey": "[listKeys(resourceId('Microsoft.Storage/storageAccounts', variables('acct')), '2023-01-01').keys[0].value]"}}]}}],
 "outputs": {"keyLength": {"type": "int", "value": "[length(listKeys(resourceId('Microsoft.Storage/storageAccounts', variables('acct')), '2023-01-01').keys[0].value)]"}}}`
	if code, _, body := e.do(t, "PUT", e.depPath("storage"), depBody(tmpl, nil, "Incremental")); code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	d := e.wait(t, "storage")
	if d.Properties.ProvisioningState != "Succeeded" {
		t.Fatalf("%+v", d.Properties.Error)
	}
	if n := d.Properties.Outputs["keyLength"].Value; n != float64(88) {
		t.Errorf("keyLength %v", n)
	}
	var order []string
	for _, op := range e.operations(t, "storage") {
		order = append(order, op.Properties.TargetResource.ResourceType+" "+op.Properties.ProvisioningState)
	}
	if strings.Join(order, ",") != "Microsoft.Storage/storageAccounts Succeeded,Microsoft.Storage/storageAccounts/fileServices/shares Succeeded,Microsoft.ContainerInstance/containerGroups Succeeded" {
		t.Errorf("operations %v", order)
	}
	if g := e.groups(t); len(g) != 1 || g[0] != "files" {
		t.Errorf("groups %v", g)
	}
}

// TestDeploymentOfProfileAndStandbyPool: a template deploys a container
// group profile and a standby pool made from it (as ACI's docs do), in
// their dependsOn order; Complete mode lists them as the resource group's.
func TestDeploymentOfProfileAndStandbyPool(t *testing.T) {
	e := newDeployEnv(t)
	tmpl := `{"resources": [
  {"name": "worker", "type": "Microsoft.ContainerInstance/containerGroupProfiles", "apiVersion": "2024-11-01-preview", "location": "[resourceGroup().location]",
   "properties": {"osType": "Linux", "containers": [{"name": "c", "properties": {"image": "busybox", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}}]}},
  {"name": "warm", "type": "Microsoft.StandbyPool/standbyContainerGroupPools", "apiVersion": "2025-03-01", "location": "[resourceGroup().location]",
   "dependsOn": ["[resourceId('Microsoft.ContainerInstance/containerGroupProfiles', 'worker')]"],
   "properties": {"elasticityProfile": {"maxReadyCapacity": 0, "refillPolicy": "always"},
    "containerGroupProperties": {"containerGroupProfile": {"id": "[resourceId('Microsoft.ContainerInstance/containerGroupProfiles', 'worker')]", "revision": 1}}}}]}`
	if code, _, body := e.do(t, "PUT", e.depPath("pool"), depBody(tmpl, nil, "Complete")); code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	d := e.wait(t, "pool")
	if d.Properties.ProvisioningState != "Succeeded" {
		t.Fatalf("%+v", d.Properties.Error)
	}
	var order []string
	for _, op := range e.operations(t, "pool") {
		order = append(order, op.Properties.TargetResource.ResourceType+" "+op.Properties.ProvisioningState)
	}
	if strings.Join(order, ",") != "Microsoft.ContainerInstance/containerGroupProfiles Succeeded,Microsoft.StandbyPool/standbyContainerGroupPools Succeeded" {
		t.Errorf("operations %v", order)
	}
	code, _, body := e.do(t, "GET", e.rgPath()+"/providers/Microsoft.StandbyPool/standbyContainerGroupPools/warm?api-version=2025-03-01", nil)
	if code != 200 || !strings.Contains(string(body), `"revision":1`) {
		t.Errorf("GET pool: %d %s", code, body)
	}
}

// TestDeploymentResumesAfterTheEngineStops: a run interrupted (the
// engine's process stopped, or lost the lead) is resumed by the next
// engine on the store, which deploys it to the end.
func TestDeploymentResumesAfterTheEngineStops(t *testing.T) {
	e := newTestEnv(t, nil)
	var held sync.Map
	held.Store("slow", true)
	e.host.Hold = func(cg *store.ContainerGroup) bool {
		_, hold := held.Load(cg.Resource.Name)
		return hold
	}
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { e.srv.Deployments().Run(ctx); close(ran) }()
	d := &deployEnv{testEnv: e}
	tmpl := `{"resources": [{"name": "slow", "type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2023-05-01", "location": "local",
  "properties": {"osType": "Linux", "containers": [{"name": "c", "properties": {"image": "busybox", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}}]}}]}`
	if code, _, body := e.do(t, "PUT", d.depPath("r"), depBody(tmpl, nil, "Incremental")); code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(d.groups(t)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("slow never created")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	<-ran
	// Stopped mid-run: the record stays Running.
	if _, _, body := e.do(t, "GET", d.depPath("r"), nil); !strings.Contains(string(body), `"provisioningState":"Running"`) {
		t.Fatalf("after the engine stopped: %s", body)
	}
	held.Delete("slow")
	e.host.Kick(context.Background(), e.sub, "rg", "slow")
	ctx2, stop2 := context.WithCancel(context.Background())
	ran2 := make(chan struct{})
	go func() { e.srv.Deployments().Run(ctx2); close(ran2) }()
	t.Cleanup(func() { stop2(); <-ran2 })
	if got := d.wait(t, "r"); got.Properties.ProvisioningState != "Succeeded" {
		t.Fatalf("resumed: %+v", got.Properties)
	}
}
