package template

import (
	"errors"
	"strings"
	"testing"
)

const paramTemplate = `{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "name": {"type": "string", "minLength": 3, "maxLength": 8},
    "sku": {"type": "String", "defaultValue": "Standard", "allowedValues": ["Standard", "Premium"]},
    "count": {"type": "int", "defaultValue": 2, "minValue": 1, "maxValue": 5},
    "public": {"type": "bool", "defaultValue": false},
    "tags": {"type": "object", "defaultValue": {}},
    "zones": {"type": "array", "defaultValue": [], "allowedValues": ["1", "2", "3"], "maxLength": 2},
    "password": {"type": "secureString", "defaultValue": "swordfish", "allowedValues": ["hunter2", "swordfish"]},
    "settings": {"type": "secureObject", "defaultValue": {"a": 1}},
    "location": {"type": "string", "defaultValue": "[resourceGroup().location]"},
    "derived": {"type": "string", "defaultValue": "[concat(parameters('name'), '-', parameters('location'))]"},
    "stamp": {"type": "string", "defaultValue": "[utcNow('yyyy-MM-dd')]"},
    "id": {"type": "string", "defaultValue": "[newGuid()]"}
  },
  "resources": []
}`

func TestParameters(t *testing.T) {
	tm, err := Parse([]byte(paramTemplate))
	if err != nil {
		t.Fatal(err)
	}
	p, err := tm.Bind(map[string]any{"name": "web", "count": "4", "public": "True", "tags": `{"env":"dev"}`, "zones": `["1","3"]`, "password": "hunter2"}, testScope, nil)
	if err != nil {
		t.Fatalf("Bind: %v", err)
	}
	for name, want := range map[string]string{
		"name": `"web"`, "sku": `"Standard"`, "count": `4`, "public": `true`, "tags": `{"env":"dev"}`, "zones": `["1","3"]`,
		"password": `"hunter2"`, "settings": `{"a":1}`, "location": `"westus"`, "derived": `"web-westus"`, "stamp": `"2024-03-05"`,
	} {
		if got := canonical(t, p.Parameters[name].Value); got != want {
			t.Errorf("%s = %s; want %s", name, got, want)
		}
	}
	if id, _ := p.Parameters["id"].Value.(string); len(id) != 36 {
		t.Errorf("newGuid: %v", p.Parameters["id"].Value)
	}
	if !p.Parameters["password"].Secure() || !p.Parameters["settings"].Secure() || p.Parameters["name"].Secure() {
		t.Errorf("Secure")
	}
	if p.Parameters["sku"].Type != "String" {
		t.Errorf("type as written: %q", p.Parameters["sku"].Type)
	}
	// given values as a JSON decoder gives them
	if _, err := tm.Bind(map[string]any{"name": "web", "count": float64(3), "tags": map[string]any{"a": "b"}, "zones": []any{"2"}}, testScope, nil); err != nil {
		t.Errorf("decoded values: %v", err)
	}
}

func TestParameterErrors(t *testing.T) {
	tm, err := Parse([]byte(paramTemplate))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		params map[string]any
		target string
		want   string
	}{
		{map[string]any{}, "name", "The value for the template parameter 'name' at line '5' and column '13' is not provided"},
		{map[string]any{"name": "web", "nope": 1}, "nope", "The template parameters 'nope' in the parameters file are not valid"},
		{map[string]any{"name": 5}, "name", "Expected a value of type 'String', but received a value of type 'Integer'"},
		{map[string]any{"name": "ab"}, "name", "less than the minimum length '3'"},
		{map[string]any{"name": "abcdefghi"}, "name", "more than the maximum length '8'"},
		{map[string]any{"name": "web", "sku": "Basic"}, "sku", "The provided value 'Basic' for the template parameter 'sku' at line '6' and column '12' is not valid. The parameter value is not part of the allowed value(s): 'Standard,Premium'"},
		{map[string]any{"name": "web", "count": "x"}, "count", "Expected a value of type 'Integer', but received a value of type 'String'"},
		{map[string]any{"name": "web", "count": 0}, "count", "less than the minimum value '1'"},
		{map[string]any{"name": "web", "count": 6}, "count", "greater than the maximum value '5'"},
		{map[string]any{"name": "web", "public": "yes"}, "public", "Expected a value of type 'Boolean'"},
		{map[string]any{"name": "web", "tags": "[1]"}, "tags", "Expected a value of type 'Object', but received a value of type 'String'"},
		{map[string]any{"name": "web", "zones": []any{"4"}}, "zones", "The provided value '4' for the template parameter 'zones'"},
		{map[string]any{"name": "web", "zones": []any{"1", "2", "3"}}, "zones", "more than the maximum length '2'"},
		{map[string]any{"name": "web", "password": "wrong"}, "password", "The provided value for the template parameter 'password'"},
	} {
		_, err := tm.Bind(tc.params, testScope, nil)
		var te *Error
		if !errors.As(err, &te) || te.Code != CodeInvalidTemplate || te.Target != tc.target || !strings.Contains(te.Message, tc.want) {
			t.Errorf("%v: %v (%+v); want %s naming %s", tc.params, err, te, tc.want, tc.target)
		}
		if te != nil && strings.Contains(te.Message, "wrong") {
			t.Errorf("a secure value is in the message: %s", te.Message)
		}
	}
}

func TestParameterDefaultErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`{"parameters": {"a": {"type": "string", "defaultValue": "[variables('v')]"}}, "variables": {"v": "x"}, "resources": []}`,
			"The template function 'variables' is not expected at this location"},
		{`{"parameters": {"a": {"type": "string", "defaultValue": "[reference('x').id]"}}, "resources": []}`,
			"The template function 'reference' is not expected at this location"},
		{`{"parameters": {"a": {"type": "string", "defaultValue": "[parameters('b')]"}, "b": {"type": "string", "defaultValue": "[parameters('a')]"}}, "resources": []}`,
			"refers to itself"},
		{`{"parameters": {"a": {"type": "int", "defaultValue": "x"}}, "resources": []}`,
			"Expected a value of type 'Integer', but received a value of type 'String'"},
	} {
		tm, err := Parse([]byte(tc.doc))
		if err == nil {
			_, err = tm.Bind(nil, testScope, nil)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "'a'") {
			t.Errorf("%s: %v; want %q", tc.doc, err, tc.want)
		}
	}
}

func TestSecureValuesNotInMessages(t *testing.T) {
	doc := `{"parameters": {"key": {"type": "securestring"}, "obj": {"type": "secureObject", "defaultValue": {"pw": "objsecret"}}},
  "variables": {"n": "[int(parameters('key'))]"}, "resources": []}`
	tm, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	_, err = tm.Bind(map[string]any{"key": "hunter22"}, testScope, nil)
	if err == nil || strings.Contains(err.Error(), "hunter22") || !strings.Contains(err.Error(), "***") {
		t.Errorf("error: %v", err)
	}
	doc = `{"parameters": {"obj": {"type": "secureObject", "defaultValue": {"pw": "objsecret"}}},
  "resources": [{"type": "A.B/c", "apiVersion": "1", "name": "x", "properties": {"n": "[json(parameters('obj').pw)]"}}]}`
	tm, err = Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	_, err = tm.Bind(nil, testScope, nil)
	if err == nil || strings.Contains(err.Error(), "objsecret") {
		t.Errorf("error: %v", err)
	}
}
