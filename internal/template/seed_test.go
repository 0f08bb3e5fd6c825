package template

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

var testScope = Scope{
	TenantID:         "72f988bf-86f1-41af-91ab-2d7cd011db47",
	SubscriptionID:   "00000000-0000-0000-0000-000000000001",
	SubscriptionName: "skiff",
	ResourceGroup:    "myResourceGroup",
	Location:         "westus",
	DeploymentName:   "myContainerGroup",
	Now:              time.Date(2024, 3, 5, 7, 8, 9, 0, time.UTC),
}

// fakeRuntime answers reference() and listKeys() from a map of ids (lower
// case) to resources as their GET returns them.
type fakeRuntime struct {
	resources map[string]map[string]any
	keys      map[string]any
	calls     []string
}

func (f *fakeRuntime) Reference(_ context.Context, id, apiVersion string, full bool) (any, error) {
	f.calls = append(f.calls, "reference "+id+" "+apiVersion)
	r, ok := f.resources[strings.ToLower(id)]
	if !ok {
		return nil, &Error{Code: "ResourceNotFound", Message: "The Resource '" + id + "' was not found."}
	}
	if full {
		return r, nil
	}
	return r["properties"], nil
}

func (f *fakeRuntime) ListKeys(_ context.Context, id, apiVersion string) (any, error) {
	f.calls = append(f.calls, "listKeys "+id+" "+apiVersion)
	return f.keys, nil
}

func mustParseFile(t *testing.T, name string) *Template {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return tm
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestSeedSidecarTemplate(t *testing.T) {
	tm := mustParseFile(t, "testdata/seed000-sidecar.json")
	p, err := tm.Bind(nil, testScope, nil)
	if err != nil {
		t.Fatalf("Bind: %v", err)
	}
	if len(p.Resources) != 1 {
		t.Fatalf("resources: %d", len(p.Resources))
	}
	r := p.Resources[0]
	wantID := "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/myResourceGroup/providers/Microsoft.ContainerInstance/containerGroups/myContainerGroup"
	if r.ID != wantID || r.Type != "Microsoft.ContainerInstance/containerGroups" || r.Name != "myContainerGroup" || r.APIVersion != "2017-08-01-preview" {
		t.Fatalf("resource: %+v", r)
	}
	rt := &fakeRuntime{resources: map[string]map[string]any{strings.ToLower(wantID): {
		"id": wantID, "properties": map[string]any{"ipAddress": map[string]any{"ip": "10.1.2.3", "ports": []any{}}}}}}
	body, err := p.Body(context.Background(), r, rt)
	if err != nil {
		t.Fatalf("Body: %v", err)
	}
	if body["location"] != "westus" {
		t.Errorf("location: %v", body["location"])
	}
	for _, k := range []string{"name", "type", "apiVersion"} {
		if _, ok := body[k]; ok {
			t.Errorf("body has %s", k)
		}
	}
	got := asJSON(body["properties"])
	for _, want := range []string{`"name":"aci-tutorial-app"`, `"image":"microsoft/aci-helloworld:latest"`,
		`"name":"aci-tutorial-sidecar"`, `"image":"microsoft/aci-tutorial-sidecar"`, `"memoryInGb":1.5`, `"port":"80"`} {
		if !strings.Contains(got, want) {
			t.Errorf("properties lack %s: %s", want, got)
		}
	}
	outs, err := p.Outputs(context.Background(), rt)
	if err != nil {
		t.Fatalf("Outputs: %v", err)
	}
	if o := outs["containerIPv4Address"]; o.Value != "10.1.2.3" || o.Type != "string" {
		t.Errorf("output: %+v", o)
	}
}

func TestSeedHellofilesTemplate(t *testing.T) {
	tm := mustParseFile(t, "testdata/seed000-hellofiles.json")
	if _, err := tm.Bind(nil, testScope, nil); err == nil || !strings.Contains(err.Error(), "storageaccountname") {
		t.Fatalf("Bind without parameters: %v", err)
	}
	p, err := tm.Bind(map[string]any{"storageaccountname": "mycontainerstorage", "storageaccountkey": "c2VjcmV0"}, testScope, nil)
	if err != nil {
		t.Fatalf("Bind: %v", err)
	}
	if !p.Parameters["storageaccountkey"].Secure() || p.Parameters["storageaccountname"].Secure() {
		t.Errorf("secure: %+v", p.Parameters)
	}
	body, err := p.Body(context.Background(), p.Resources[0], &fakeRuntime{})
	if err != nil {
		t.Fatalf("Body: %v", err)
	}
	got := asJSON(body)
	if !strings.Contains(got, `"azureFile":{"shareName":"myacishare","storageAccountKey":"c2VjcmV0","storageAccountName":"mycontainerstorage"}`) {
		t.Errorf("body: %s", got)
	}
}
