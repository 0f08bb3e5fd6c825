package template

import (
	"errors"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

func res(name string, extra string) string {
	return `{"type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2021-10-01", "name": "` + name + `"` + extra + `, "properties": {}}`
}

// TestBadTemplates: each template is refused by Parse or Bind with ARM's
// code and a message naming the place.
func TestBadTemplates(t *testing.T) {
	deep := strings.Repeat("concat(", 70) + "'a'" + strings.Repeat(")", 70)
	doubling := `"v0": "[padLeft('x', 400000, 'y')]", "v1": "[concat(variables('v0'), variables('v0'))]"`
	for _, tc := range []struct {
		name, doc string
		code      string
		target    string
		line      int
		want      string
	}{
		{"not JSON", "{\n  \"resources\": [\n    x\n  ]\n}", CodeInvalidTemplate, "", 3, "Deployment template parse failed: 'Unexpected character encountered while parsing value: x"},
		{"trailing text", `{"resources": []} x`, CodeInvalidTemplate, "", 1, "Additional text encountered"},
		{"unknown member", "{\n\"resources\": [],\n\"resource\": []}", CodeInvalidTemplate, "", 3, "Could not find member 'resource' on object of type 'Template'"},
		{"no resources", `{"parameters": {}}`, CodeInvalidTemplate, "", 1, "Required property 'resources' not found"},
		{"symbolic names", `{"languageVersion": "2.0", "resources": {}}`, CodeInvalidTemplate, "", 1, "is not supported"},
		{"unknown function", "{\"resources\": [\n  " + res("web", `, "location": "[foo()]"`) + "]}", CodeInvalidTemplate, "web", 2,
			"The template resource 'web' at line '2' and column '"},
		{"unknown function message", `{"resources": [` + res("web", `, "location": "[Foo()]"`) + `]}`, CodeInvalidTemplate, "web", 1,
			"is not valid: The template function 'Foo' is not valid. Please see https://aka.ms/arm-functions for usage details.'"},
		{"syntax error", `{"resources": [` + res("web", `, "location": "[concat('a',]"`) + `]}`, CodeInvalidTemplate, "web", 1, "Unable to parse language expression"},
		{"unknown parameter", `{"resources": [` + res("web", `, "location": "[parameters('loc')]"`) + `]}`, CodeInvalidTemplate, "web", 1, "The template parameter 'loc' is not found"},
		{"unknown variable in output", `{"resources": [], "outputs": {"o": {"type": "string", "value": "[variables('v')]"}}}`, CodeInvalidTemplate, "o", 1, "The template output 'o' at line"},
		{"reference in a variable", `{"variables": {"v": "[reference('web').ip]"}, "resources": [` + res("web", "") + `]}`, CodeInvalidTemplate, "v", 1,
			"The template variable 'v' at line '1' and column '21' is not valid: The template function 'reference' is not expected at this location"},
		{"variable cycle", `{"variables": {"a": "[variables('b')]", "b": "[variables('a')]"}, "resources": []}`, CodeInvalidTemplate, "b", 1, "refers to itself"},
		{"reference in a name", `{"resources": [` + res("[reference('x').name]", "") + `]}`, CodeInvalidTemplate, "[reference('x').name]", 1, "The template function 'reference' is not expected at this location"},
		{"dependsOn not defined", `{"resources": [` + res("web", `, "dependsOn": ["db"]`) + `]}`, CodeInvalidTemplate, "web", 1, "The resource 'db' is not defined in the template."},
		{"cycle", `{"resources": [` + res("a", `, "dependsOn": ["b"]`) + `, ` + res("b", `, "dependsOn": ["c"]`) + `, ` + res("c", `, "dependsOn": ["a"]`) + `]}`, CodeInvalidTemplate, "a", 1,
			"Circular dependency detected on resource: '" + cgID("a") + "' and '" + cgID("b") + "' and '" + cgID("c") + "'"},
		{"self cycle", `{"resources": [` + res("a", `, "dependsOn": ["a"]`) + `]}`, CodeInvalidTemplate, "a", 1, "Circular dependency detected on resource: '" + cgID("a") + "'"},
		{"implicit cycle", `{"resources": [` + res("a", `, "tags": {"x": "[reference('b').x]"}`) + `, ` + res("b", `, "dependsOn": ["a"]`) + `]}`, CodeInvalidTemplate, "a", 1, "Circular dependency detected"},
		{"duplicate", `{"resources": [` + res("web", "") + `, ` + res("WEB", "") + `]}`, CodeInvalidTemplate, "WEB", 1, "is defined multiple times in a template"},
		{"duplicate by copy", `{"resources": [` + res("web", `, "copy": {"name": "l", "count": 2}`) + `]}`, CodeInvalidTemplate, "web", 1, "is defined multiple times"},
		{"bad parameter type", "{\"parameters\": {\n\"p\": {\"type\": \"strin\"}}, \"resources\": []}", CodeInvalidTemplate, "", 2, "has an invalid type 'strin'"},
		{"parameter without type", `{"parameters": {"p": {}}, "resources": []}`, CodeInvalidTemplate, "", 1, "has no 'type'"},
		{"output type", `{"resources": [], "outputs": {"o": {"type": "string", "value": 5}}}`, CodeInvalidTemplate, "o", 1, "Expected 'String'. Actual 'Integer'"},
		{"output without type", `{"resources": [], "outputs": {"o": {"value": 5}}}`, CodeInvalidTemplate, "o", 1, "must have a 'type'"},
		{"copyIndex outside a copy", `{"resources": [` + res("[concat('w', copyIndex())]", "") + `]}`, CodeInvalidTemplate, "[concat('w', copyIndex())]", 1, "'copyIndex' is not expected at this location"},
		{"copyIndex of another loop", `{"resources": [` + res("[concat('w', copyIndex('other'))]", `, "copy": {"name": "l", "count": 2}`) + `]}`, CodeInvalidTemplate, "[concat('w', copyIndex('other'))]", 1, "invalid loop name 'other'"},
		{"no apiVersion", `{"resources": [{"type": "Microsoft.ContainerInstance/containerGroups", "name": "web"}]}`, CodeInvalidTemplate, "web", 1, "Required property 'apiVersion' not found"},
		{"bad type", `{"resources": [{"type": "containerGroups", "apiVersion": "1", "name": "web"}]}`, CodeInvalidTemplate, "web", 1, "must be a namespace and a type"},
		{"name segments", `{"resources": [` + res("a/b", "") + `]}`, CodeInvalidTemplate, "a/b", 1, "has incorrect segment lengths"},
		{"condition not boolean", `{"resources": [` + res("web", `, "condition": "[createArray()]"`) + `]}`, CodeInvalidTemplate, "web", 1, "condition must be a boolean"},
		{"copy count not integer", `{"resources": [` + res("web", `, "copy": {"name": "l", "count": "x"}`) + `]}`, CodeInvalidTemplate, "web", 1, "must be an integer"},
		{"copy count negative", `{"resources": [` + res("web", `, "copy": {"name": "l", "count": -1}`) + `]}`, CodeInvalidTemplate, "web", 1, "cannot be negative"},
		{"too deep", `{"resources": [` + res("web", `, "location": "[`+deep+`]"`) + `]}`, CodeInvalidTemplate, "web", 1, "nested more than 64 levels"},
		{"string too large", `{"variables": {` + doubling + `, "v2": "[concat(variables('v1'), variables('v1'))]"}, "resources": []}`, CodeInvalidTemplate, "v2", 1, "more than 1048576 bytes"},
		{"range too large", `{"variables": {"r": "[range(0, 100000)]"}, "resources": []}`, CodeInvalidTemplate, "r", 1, "invalid count"},
		{"user function calling a user function", `{"functions": [{"namespace": "n", "members": {"f": {"output": {"type": "string", "value": "[n.f()]"}}}}], "resources": []}`, CodeInvalidTemplate, "n.f", 1, "The template function 'n.f' is not valid"},
		{"unknown user function", `{"resources": [` + res("[n.g()]", "") + `]}`, CodeInvalidTemplate, "[n.g()]", 1, "The template function 'n.g' is not valid"},
		{"variables in a user function", `{"functions": [{"namespace": "n", "members": {"f": {"output": {"type": "string", "value": "[variables('v')]"}}}}], "variables": {"v": "x"}, "resources": [` + res("[n.f()]", "") + `]}`, CodeInvalidTemplate, "[n.f()]", 1, "'variables' is not expected at this location"},
		{"utcNow outside a default", `{"resources": [` + res("web", `, "tags": {"t": "[utcNow()]"}`) + `]}`, CodeInvalidTemplate, "web", 1, "can only be used in the default value of a parameter"},
		{"listKeys in a variable", `{"variables": {"k": "[listKeys('x', '1')]"}, "resources": []}`, CodeInvalidTemplate, "k", 1, "'listKeys' is not expected at this location"},
		{"reference to a missing name", `{"resources": [` + res("web", `, "tags": {"t": "[reference('nothere').x]"}`) + `]}`, CodeInvalidTemplate, "web", 1, "could not find template resource or resource copy with this name"},
		{"property missing", `{"variables": {"o": {"a": 1}, "p": "[variables('o').b]"}, "resources": []}`, CodeInvalidTemplate, "p", 1, "The language expression property 'b' doesn't exist, available properties are 'a'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm, err := Parse([]byte(tc.doc))
			if err == nil {
				_, err = tm.Bind(nil, testScope, nil)
			}
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("error %v (%T); want an *Error", err, err)
			}
			if te.Code != tc.code || te.Target != tc.target || (tc.line != 0 && te.Line != tc.line) || !strings.Contains(te.Message, tc.want) {
				t.Errorf("got %s target %q at %d:%d: %s\nwant %s target %q at line %d: %s", te.Code, te.Target, te.Line, te.Column, te.Message, tc.code, tc.target, tc.line, tc.want)
			}
			if !errdefs.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("class: %v", err)
			}
		})
	}
}
