package template

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

const rgID = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/myResourceGroup"

func cgID(name string) string {
	return rgID + "/providers/Microsoft.ContainerInstance/containerGroups/" + name
}

func bindDoc(t *testing.T, doc string, params map[string]any) *Plan {
	t.Helper()
	tm, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	p, err := tm.Bind(params, testScope, nil)
	if err != nil {
		t.Fatalf("Bind: %v", err)
	}
	return p
}

func names(p *Plan) []string {
	var out []string
	for _, r := range p.Resources {
		out = append(out, r.Name)
	}
	return out
}

func indexOfName(p *Plan, name string) int {
	for i, r := range p.Resources {
		if r.Name == name {
			return i
		}
	}
	return -1
}

const copyTemplate = `{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {"count": {"type": "int", "defaultValue": 5}, "mode": {"type": "string", "defaultValue": "parallel"}},
  "resources": [
    {
      "type": "Microsoft.ContainerInstance/containerGroups",
      "apiVersion": "2021-10-01",
      "name": "[concat('web-', copyIndex(1))]",
      "location": "[resourceGroup().location]",
      "copy": {"name": "webLoop", "count": "[parameters('count')]", "mode": "[parameters('mode')]", "batchSize": 2},
      "properties": {
        "containers": [{"name": "[format('c{0}', copyIndex())]", "properties": {"image": "nginx", "environmentVariables": [{"name": "INDEX", "value": "[string(copyIndex('webLoop'))]"}]}}]
      }
    },
    {
      "type": "Microsoft.ContainerInstance/containerGroups",
      "apiVersion": "2021-10-01",
      "name": "after",
      "dependsOn": ["webLoop"],
      "properties": {}
    }
  ]
}`

func TestCopyLoopParallel(t *testing.T) {
	p := bindDoc(t, copyTemplate, nil)
	if got := strings.Join(names(p), ","); got != "web-1,web-2,web-3,web-4,web-5,after" {
		t.Fatalf("order: %s", got)
	}
	for i, r := range p.Resources[:5] {
		if r.Copy != "webLoop" || r.Index != i || len(r.DependsOn) != 0 || r.ID != cgID(r.Name) {
			t.Errorf("instance %d: %+v", i, r)
		}
		body, err := p.Body(context.Background(), r, &fakeRuntime{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := asJSON(body["properties"]), `"name":"c`+string(rune('0'+i))+`"`; !strings.Contains(got, want) {
			t.Errorf("instance %d body %s lacks %s", i, got, want)
		}
		if got := asJSON(body["properties"]); !strings.Contains(got, `"value":"`+string(rune('0'+i))+`"`) {
			t.Errorf("instance %d body %s lacks its index", i, got)
		}
	}
	after := p.Resources[5]
	if len(after.DependsOn) != 5 {
		t.Errorf("after depends on %v, want the 5 instances", after.DependsOn)
	}
}

func TestCopyLoopSerialBatches(t *testing.T) {
	p := bindDoc(t, copyTemplate, map[string]any{"mode": "serial"})
	deps := map[string]string{}
	for _, r := range p.Resources {
		var ns []string
		for _, d := range r.DependsOn {
			ns = append(ns, d[strings.LastIndex(d, "/")+1:])
		}
		deps[r.Name] = strings.Join(ns, ",")
	}
	// batchSize 2: {1,2} then {3,4} then {5}
	want := map[string]string{"web-1": "", "web-2": "", "web-3": "web-1,web-2", "web-4": "web-1,web-2", "web-5": "web-3,web-4",
		"after": "web-1,web-2,web-3,web-4,web-5"}
	for k, v := range want {
		if deps[k] != v {
			t.Errorf("%s depends on %q, want %q", k, deps[k], v)
		}
	}
}

func TestCopyCountZeroAndLimit(t *testing.T) {
	p := bindDoc(t, copyTemplate, map[string]any{"count": 0})
	if got := strings.Join(names(p), ","); got != "after" {
		t.Fatalf("count 0: %s", got)
	}
	tm, _ := Parse([]byte(copyTemplate))
	_, err := tm.Bind(map[string]any{"count": 801}, testScope, nil)
	if err == nil || !strings.Contains(err.Error(), "more than the limit of 800") {
		t.Fatalf("count 801: %v", err)
	}
}

func TestDependsOnOrderAndCondition(t *testing.T) {
	doc := `{
  "parameters": {"withDb": {"type": "bool", "defaultValue": false}},
  "resources": [
    {"type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2021-10-01", "name": "front",
     "dependsOn": ["[resourceId('Microsoft.ContainerInstance/containerGroups', 'back')]", "Microsoft.ContainerInstance/containerGroups/db"], "properties": {}},
    {"type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2021-10-01", "name": "back", "dependsOn": ["db"], "properties": {}},
    {"type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2021-10-01", "name": "db", "condition": "[parameters('withDb')]", "properties": {}}
  ]
}`
	p := bindDoc(t, doc, nil)
	if got := strings.Join(names(p), ","); got != "back,front" {
		t.Fatalf("without db: %s", got)
	}
	if d := p.Resources[1].DependsOn; len(d) != 1 || d[0] != cgID("back") {
		t.Errorf("front depends on %v", d)
	}
	p = bindDoc(t, doc, map[string]any{"withDb": "true"})
	if got := strings.Join(names(p), ","); got != "db,back,front" {
		t.Fatalf("with db: %s", got)
	}
	if d := p.Resources[2].DependsOn; len(d) != 2 {
		t.Errorf("front depends on %v", d)
	}
}

func TestImplicitDependencyOfReference(t *testing.T) {
	doc := `{
  "resources": [
    {"type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2021-10-01", "name": "client",
     "properties": {"containers": [{"name": "c", "properties": {"environmentVariables": [
        {"name": "SERVER", "value": "[reference('server').ipAddress.ip]"},
        {"name": "KEY", "value": "[listKeys(resourceId('Microsoft.Storage/storageAccounts', 'acct'), '2019-06-01').keys[0].value]"}]}}]}},
    {"type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2021-10-01", "name": "server", "properties": {}},
    {"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2019-06-01", "name": "acct", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}
  ],
  "outputs": {"ip": {"type": "string", "value": "[reference(resourceId('Microsoft.ContainerInstance/containerGroups', 'server'), '2021-10-01', 'Full').properties.ipAddress.ip]"}}
}`
	p := bindDoc(t, doc, nil)
	if got := strings.Join(names(p), ","); got != "server,acct,client" {
		t.Fatalf("order: %s", got)
	}
	acct := rgID + "/providers/Microsoft.Storage/storageAccounts/acct"
	rt := &fakeRuntime{
		resources: map[string]map[string]any{strings.ToLower(cgID("server")): {"id": cgID("server"), "properties": map[string]any{"ipAddress": map[string]any{"ip": "10.0.0.7"}}}},
		keys:      map[string]any{"keys": []any{map[string]any{"keyName": "key1", "value": "k1"}}},
	}
	body, err := p.Body(context.Background(), p.Resources[2], rt)
	if err != nil {
		t.Fatal(err)
	}
	got := asJSON(body)
	if !strings.Contains(got, `"value":"10.0.0.7"`) || !strings.Contains(got, `"value":"k1"`) {
		t.Errorf("body: %s", got)
	}
	if rt.calls[0] != "reference "+cgID("server")+" 2021-10-01" || rt.calls[1] != "listKeys "+acct+" 2019-06-01" {
		t.Errorf("calls: %v", rt.calls)
	}
	outs, err := p.Outputs(context.Background(), rt)
	if err != nil || outs["ip"].Value != "10.0.0.7" {
		t.Errorf("outputs: %v %v", outs, err)
	}
	// a Runtime's error keeps its class
	_, err = p.Body(context.Background(), p.Resources[2], &fakeRuntime{})
	var te *Error
	if !errors.As(err, &te) || te.Code != "ResourceNotFound" {
		t.Errorf("missing reference: %v", err)
	}
}

func TestPropertyCopyACI(t *testing.T) {
	// The shape of the Azure quickstart aci-... templates: containers made
	// by a property copy.
	doc := `{
  "parameters": {"names": {"type": "array", "defaultValue": ["app", "sidecar", "logger"]}},
  "resources": [{
    "type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2021-10-01", "name": "group",
    "location": "[resourceGroup().location]",
    "properties": {
      "copy": [{"name": "containers", "count": "[length(parameters('names'))]", "input": {
        "name": "[parameters('names')[copyIndex('containers')]]",
        "properties": {"image": "nginx", "ports": [{"port": "[add(80, copyIndex('containers'))]"}],
                       "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}}}}}],
      "osType": "Linux"
    }
  }]
}`
	p := bindDoc(t, doc, nil)
	body, err := p.Body(context.Background(), p.Resources[0], &fakeRuntime{})
	if err != nil {
		t.Fatal(err)
	}
	props := body["properties"].(map[string]any)
	cs := props["containers"].([]any)
	if len(cs) != 3 || props["osType"] != "Linux" {
		t.Fatalf("properties: %s", asJSON(props))
	}
	if got := asJSON(cs[2]); !strings.Contains(got, `"name":"logger"`) || !strings.Contains(got, `"port":82`) {
		t.Errorf("third container: %s", got)
	}
	if _, ok := props["copy"]; ok {
		t.Errorf("copy left in the body")
	}
}

func TestNestedChildResources(t *testing.T) {
	doc := `{
  "resources": [{
    "type": "Microsoft.Storage/storageAccounts", "apiVersion": "2019-06-01", "name": "acct", "kind": "StorageV2",
    "resources": [{
      "type": "fileServices/shares", "apiVersion": "2019-06-01", "name": "default/share",
      "dependsOn": ["acct"]
    }]
  }, {
    "type": "Microsoft.Storage/storageAccounts/fileServices/shares", "apiVersion": "2019-06-01", "name": "acct/default/other",
    "dependsOn": ["[resourceId('Microsoft.Storage/storageAccounts', 'acct')]"]
  }]
}`
	tm, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	// a nested child's type is one segment; a full type is used as it is
	if _, err := tm.Bind(nil, testScope, nil); err == nil || !strings.Contains(err.Error(), "incorrect segment lengths") {
		t.Fatalf("bind: %v", err)
	}
	doc = strings.Replace(doc, `"type": "fileServices/shares", "apiVersion": "2019-06-01", "name": "default/share"`, `"type": "fileServices", "apiVersion": "2019-06-01", "name": "default"`, 1)
	p := bindDoc(t, doc, nil)
	if got := strings.Join(names(p), ","); got != "acct,acct/default,acct/default/other" {
		t.Fatalf("names: %s", got)
	}
	if p.Resources[1].ID != rgID+"/providers/Microsoft.Storage/storageAccounts/acct/fileServices/default" ||
		p.Resources[2].ID != rgID+"/providers/Microsoft.Storage/storageAccounts/acct/fileServices/default/shares/other" {
		t.Errorf("ids: %s %s", p.Resources[1].ID, p.Resources[2].ID)
	}
	body, err := p.Body(context.Background(), p.Resources[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := body["resources"]; ok || body["kind"] != "StorageV2" {
		t.Errorf("body: %v", body)
	}
}

func TestTypesCheck(t *testing.T) {
	tm := mustParseFile(t, "testdata/seed000-sidecar.json")
	_, err := tm.Bind(nil, testScope, func(typ, api string) error {
		return errors.New("The resource type 'Microsoft.ContainerInstance/containerGroups' at api version '" + api + "' is not supported")
	})
	var te *Error
	if !errors.As(err, &te) || te.Code != CodeInvalidTemplateDeployment || te.Target != "myContainerGroup" || !strings.Contains(te.Message, "2017-08-01-preview") {
		t.Fatalf("types: %v", err)
	}
	if !errdefs.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("class of %v", err)
	}
}
