package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// azBody is what az 2.45's JsonCTemplatePolicy sends: the properties as
// JSON, then ", template:" and the template file's text as it is, then
// "}}".
const azBody = `{"properties": {"parameters": {"storageaccountname": {"value": "acct"}, "n": {"value": 3}, "f": {"value": 1.5}, "o": {"value": {"a": [1, true, null]}}}, "mode": "Incremental", template:{
  "$schema": "https://schema.management.azure.com/schemas/2015-01-01/deploymentTemplate.json#",
  // a comment, as JSONC files have
  "contentVersion": "1.0.0.0",
  "parameters": {"storageaccountname": {"type": "string"}},
  "resources": [] /* none */
}}}`

func TestDecodeDeploymentAzBody(t *testing.T) {
	req, err := DecodeDeployment([]byte(azBody))
	if err != nil {
		t.Fatal(err)
	}
	if req.Mode != DeploymentModeIncremental {
		t.Errorf("mode %q", req.Mode)
	}
	if req.Parameters["storageaccountname"] != "acct" || req.Parameters["n"] != int64(3) || req.Parameters["f"] != 1.5 {
		t.Errorf("parameters %#v", req.Parameters)
	}
	o, _ := req.Parameters["o"].(map[string]any)
	if a, _ := o["a"].([]any); len(a) != 3 || a[0] != int64(1) || a[1] != true || a[2] != nil {
		t.Errorf("object parameter %#v", req.Parameters["o"])
	}
	var tmpl map[string]any
	if err := json.Unmarshal(req.Template, &tmpl); err != nil {
		t.Fatalf("template is not JSON: %v\n%s", err, req.Template)
	}
	if tmpl["contentVersion"] != "1.0.0.0" {
		t.Errorf("template %v", tmpl)
	}
	// The template keeps its lines: "contentVersion" is on its 4th.
	if lines := strings.Split(string(req.Template), "\n"); len(lines) < 4 || !strings.Contains(lines[3], "contentVersion") {
		t.Errorf("template lines moved:\n%s", req.Template)
	}
}

func TestDecodeDeploymentStrictJSON(t *testing.T) {
	body := `{"properties": {"mode": "complete", "template": {"resources": []}, "parameters": {"p": {"value": "x"}}}, "tags": {"k": "v"}}`
	req, err := DecodeDeployment([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if req.Mode != DeploymentModeComplete || req.Parameters["p"] != "x" || req.Tags["k"] != "v" {
		t.Errorf("%+v", req)
	}
}

func TestDecodeDeploymentRefused(t *testing.T) {
	for _, tc := range []struct {
		name, body, code, want string
		class                  error
	}{
		{"malformed", "{\"properties\": {\n  \"template\": {\"a\": }}}", "InvalidRequestContent", "Line 2, position 21", errdefs.ErrInvalidArgument},
		{"malformed after az's bare key", "{\"properties\": {\"mode\": \"Incremental\", template:{\n\"a\": ,}}}", "InvalidRequestContent", "Line 2, position 6", errdefs.ErrInvalidArgument},
		{"bare value", `{"properties": {"template": {"a": b}}}`, "InvalidRequestContent", "invalid character 'b'", errdefs.ErrInvalidArgument},
		{"empty", ``, "InvalidRequestContent", "empty", errdefs.ErrInvalidArgument},
		{"no properties", `{}`, "InvalidRequestContent", "'properties'", errdefs.ErrInvalidArgument},
		{"no template", `{"properties": {"mode": "Incremental"}}`, "InvalidDeployment", "'template' is required", errdefs.ErrInvalidArgument},
		{"template not an object", `{"properties": {"template": "x"}}`, "InvalidDeployment", "JSON object", errdefs.ErrInvalidArgument},
		{"template link", `{"properties": {"templateLink": {"uri": "https://example.com/t.json"}}}`, "NotSupported", "templateLink", errdefs.ErrNotImplemented},
		{"parameters link", `{"properties": {"template": {}, "parametersLink": {"uri": "https://example.com/p.json"}}}`, "NotSupported", "parametersLink", errdefs.ErrNotImplemented},
		{"key vault reference", `{"properties": {"template": {}, "parameters": {"pw": {"reference": {"keyVault": {"id": "x"}, "secretName": "s"}}}}}`, "NotSupported", "Key Vault", errdefs.ErrNotImplemented},
		{"rollback", `{"properties": {"template": {}, "onErrorDeployment": {"type": "LastSuccessful"}}}`, "NotSupported", "onErrorDeployment", errdefs.ErrNotImplemented},
		{"bad mode", `{"properties": {"template": {}, "mode": "Sometimes"}}`, "InvalidDeployment", "'Sometimes'", errdefs.ErrInvalidArgument},
		{"parameter without value", `{"properties": {"template": {}, "parameters": {"p": {}}}}`, "InvalidDeployment", "'p' has no 'value'", errdefs.ErrInvalidArgument},
		{"parameter not wrapped", `{"properties": {"template": {}, "parameters": {"p": "x"}}}`, "InvalidDeployment", "must be an object", errdefs.ErrInvalidArgument},
		{"mode of the wrong type", `{"properties": {"template": {}, "mode": 1}}`, "InvalidRequestContent", "cannot convert", errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeDeployment([]byte(tc.body))
			if err == nil {
				t.Fatal("accepted")
			}
			if errdefs.CodeOf(err) != tc.code || !errdefs.Is(err, tc.class) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got (%s) %v; want (%s) containing %q", errdefs.CodeOf(err), err, tc.code, tc.want)
			}
		})
	}
}

func TestRelaxJSONLeavesStringsAlone(t *testing.T) {
	in := `{"a": "x // not a comment, b: /* nor this */", c: [1, {d :2}], "e\"": "f"}`
	out, _ := relaxJSON([]byte(in))
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if v["a"] != "x // not a comment, b: /* nor this */" || v["e\""] != "f" {
		t.Errorf("%v", v)
	}
	if c, _ := v["c"].([]any); len(c) != 2 {
		t.Errorf("%v", v)
	}
}

func TestDeploymentParameterReadShape(t *testing.T) {
	b, err := json.Marshal(map[string]DeploymentParameter{"s": {Type: "SecureString"}, "b": {Type: "Bool", Value: false}})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"b":{"type":"Bool","value":false},"s":{"type":"SecureString"}}` {
		t.Errorf("%s", b)
	}
}

// FuzzDecodeDeployment: any body gives a request or an
// InvalidArgument/NotImplemented error with a code, never a panic; a
// request's template is a JSON object.
func FuzzDecodeDeployment(f *testing.F) {
	f.Add([]byte(azBody))
	f.Add([]byte(`{"properties": {"mode": "Complete", "template": {"resources": []}, "parameters": {"p": {"value": [1, {"a": null}]}}}}`))
	f.Add([]byte(`{"properties": {"parameters": {}, "mode": "Incremental", template:{/* c */ "a": 1, b: 2}}}`))
	f.Add([]byte(`{"properties": {"templateLink": {"uri": "x"}}}`))
	f.Add([]byte("{\"properties\": {\"template\": {\"a\": \"\\u00e9 // \\\"\"}} // trailing"))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeDeployment(body)
		if err != nil {
			if errdefs.CodeOf(err) == "" || !(errdefs.Is(err, errdefs.ErrInvalidArgument) || errdefs.Is(err, errdefs.ErrNotImplemented)) {
				t.Fatalf("error without a code or class: %v", err)
			}
			return
		}
		var v map[string]any
		if json.Unmarshal(req.Template, &v) != nil {
			t.Fatalf("template is not a JSON object: %q", req.Template)
		}
	})
}
