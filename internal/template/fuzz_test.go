package template

import (
	"context"
	"errors"
	"testing"
)

const fuzzTemplate = `{
  "parameters": {
    "s": {"type": "string", "defaultValue": "abc"},
    "i": {"type": "int", "defaultValue": 3},
    "o": {"type": "object", "defaultValue": {"a": {"b": [1, 2, "x"]}, "c": true}},
    "a": {"type": "array", "defaultValue": ["x", "y", 1, null]},
    "k": {"type": "securestring", "defaultValue": "secret"}
  },
  "variables": {"v": "[concat(parameters('s'), '-v')]", "big": "[range(0, 100)]"},
  "resources": [
    {"type": "Microsoft.ContainerInstance/containerGroups", "apiVersion": "2021-10-01", "name": "web", "properties": {}},
    {"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2019-06-01", "name": "[concat('acct', copyIndex())]", "copy": {"name": "accts", "count": 2}, "properties": {}}
  ]
}`

// FuzzExpression: any template string evaluated as an output (binding,
// with reference() unknown, and deploying, against a fake Runtime) gives
// a value or an *Error, never a panic.
func FuzzExpression(f *testing.F) {
	for _, s := range []string{
		"[concat('a', parameters('s'))]", "[[x]", "plain", "[format('{0:N2}', 1234)]",
		"[reference('web').ipAddress.ip]", "[listKeys(resourceId('Microsoft.Storage/storageAccounts', 'acct0'), '2019-06-01').keys[0].value]",
		"[parameters('o').a.b[2]]", "[variables('big')[99]]", "[if(equals(1, 1), 'a', json('{'))]",
		"[union(parameters('o'), json('{\"d\": 1}'))]", "[split(parameters('s'), createArray('b', ''))]",
		"[substring('abc', 1, 1)]", "[padLeft('a', 3, 'é')]", "[uniqueString('a', 'b')]", "[guid('a')]",
		"[utcNow()]", "[copyIndex(1)]", "[items(parameters('o'))]", "[range(1, 3)[4]]", "[div(-9223372036854775808, -1)]",
	} {
		f.Add(s)
	}
	tm, err := Parse([]byte(fuzzTemplate))
	if err != nil {
		f.Fatal(err)
	}
	plan, err := tm.Bind(nil, testScope, nil)
	if err != nil {
		f.Fatal(err)
	}
	rt := &fakeRuntime{
		resources: map[string]map[string]any{
			"/subscriptions/00000000-0000-0000-0000-000000000001/resourcegroups/myresourcegroup/providers/microsoft.containerinstance/containergroups/web": {
				"properties": map[string]any{"ipAddress": map[string]any{"ip": "10.0.0.1"}}},
		},
		keys: map[string]any{"keys": []any{map[string]any{"value": "k"}}},
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range []Runtime{nil, rt} {
			rt := r
			_, err := evalPlaced(plan.p, s, rt)
			if err == nil {
				continue
			}
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("%q: %T %v, not an *Error", s, err, err)
			}
		}
		// the same string as a whole template's output
		doc := `{"resources": [], "outputs": {"o": {"type": "string", "value": ` + quoteJSON(s) + `}}}`
		if tm, err := Parse([]byte(doc)); err == nil {
			if _, err := tm.Bind(nil, testScope, nil); err != nil {
				var te *Error
				if !errors.As(err, &te) {
					t.Fatalf("%q: Bind: %T %v", s, err, err)
				}
			}
		}
	})
}

// evalPlaced evaluates s as an output and places its error as Outputs does.
func evalPlaced(p *plan, s string, rt Runtime) (any, error) {
	v, err := p.evalString(context.Background(), s, rt, phOutput)
	if err != nil {
		var ee *evalError
		if errors.As(err, &ee) {
			return nil, p.d.placed("output", "o", nil, err)
		}
		var te *Error
		if errors.As(err, &te) {
			return nil, err
		}
		return nil, &Error{Code: CodeInvalidTemplate, Message: err.Error()}
	}
	return v, nil
}

func quoteJSON(s string) string { return toJSON(s) }
