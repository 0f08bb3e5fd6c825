package deployment

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
)

// template is a template file as the CLI reads it: its document (as
// JSON) and its parameters' declared types (lower-case).
type template struct {
	doc   json.RawMessage
	types map[string]string
	names []string
}

// readTemplate reads a template file (JSON, with comments as ARM allows).
func readTemplate(path string) (*template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, cmdutil.FlagErrorf("--template-file: %v", err)
	}
	doc := api.RelaxedJSON(data)
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		return nil, cmdutil.FlagErrorf("--template-file %s is not a JSON template: %v", path, err)
	}
	t := &template{doc: doc, types: map[string]string{}}
	for k, v := range top {
		if !strings.EqualFold(k, "parameters") {
			continue
		}
		var decls map[string]map[string]any
		if err := json.Unmarshal(v, &decls); err != nil {
			return nil, cmdutil.FlagErrorf("--template-file %s: its 'parameters' are not an object of declarations: %v", path, err)
		}
		for name, d := range decls {
			typ := ""
			for dk, dv := range d {
				if s, ok := dv.(string); ok && strings.EqualFold(dk, "type") {
					typ = strings.ToLower(s)
				}
			}
			t.types[name] = typ
			t.names = append(t.names, name)
		}
	}
	return t, nil
}

// defaultName is az's deployment name for a template file: its base name
// without the extension.
func defaultName(path string) string {
	base := filepath.Base(path)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// parseParameters reads --parameters as az does: each value is a
// parameters file (@file.json, or a path), a JSON object (a
// deploymentParameters document {"$schema", "parameters": {…}} or the
// parameters themselves, {"k": {"value": v}}), or k=v, converted to the
// template's declared type of k (int, bool, object and array from JSON).
// Later values override earlier ones.
func parseParameters(t *template, values []string) (map[string]api.DeploymentParameter, error) {
	out := map[string]api.DeploymentParameter{}
	for _, v := range values {
		if obj, ok, err := parametersObject(v); err != nil {
			return nil, err
		} else if ok {
			for k, p := range obj {
				out[k] = p
			}
			continue
		}
		key, val, ok := strings.Cut(v, "=")
		if !ok {
			return nil, cmdutil.FlagErrorf("--parameters: unable to parse parameter: %s (want KEY=VALUE, @FILE or a JSON object)", v)
		}
		typ, declared := t.types[key]
		if !declared {
			return nil, cmdutil.FlagErrorf("--parameters: unrecognized template parameter '%s'. Allowed parameters: %s", key, strings.Join(sortedNames(t), ", "))
		}
		var value any
		switch typ {
		case "object", "array", "secureobject":
			dv, err := api.DecodeJSONValue(api.RelaxedJSON([]byte(val)))
			if err != nil {
				return nil, cmdutil.FlagErrorf("--parameters %s: the value of a parameter of type %s must be JSON: %v", key, typ, err)
			}
			value = dv
		case "bool":
			value = strings.EqualFold(val, "true")
		case "int":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return nil, cmdutil.FlagErrorf("--parameters %s: '%s' is not an int", key, val)
			}
			value = n
		default:
			value = val
		}
		out[key] = api.DeploymentParameter{Value: value}
	}
	return out, nil
}

// parametersObject reads a parameters file or JSON object; ok is false
// for anything else (a k=v).
func parametersObject(v string) (map[string]api.DeploymentParameter, bool, error) {
	var data []byte
	source := "the JSON given"
	switch {
	case strings.HasPrefix(v, "@"):
		b, err := os.ReadFile(v[1:])
		if err != nil {
			return nil, false, cmdutil.FlagErrorf("--parameters %s: %v", v, err)
		}
		data, source = b, v[1:]
	case strings.HasPrefix(strings.TrimSpace(v), "{"):
		data = []byte(v)
	default:
		if fi, err := os.Stat(v); err == nil && fi.Mode().IsRegular() && !strings.Contains(v, "=") {
			b, err := os.ReadFile(v)
			if err != nil {
				return nil, false, cmdutil.FlagErrorf("--parameters %s: %v", v, err)
			}
			data, source = b, v
		} else {
			return nil, false, nil
		}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(api.RelaxedJSON(data), &top); err != nil {
		return nil, false, cmdutil.FlagErrorf("--parameters: %s is not a JSON object of parameters: %v", source, err)
	}
	if inner, ok := top["parameters"]; ok {
		top = nil
		if err := json.Unmarshal(inner, &top); err != nil {
			return nil, false, cmdutil.FlagErrorf("--parameters: the 'parameters' of %s are not an object: %v", source, err)
		}
	}
	out := map[string]api.DeploymentParameter{}
	for k, raw := range top {
		var p struct {
			Value     json.RawMessage `json:"value"`
			Reference json.RawMessage `json:"reference"`
		}
		if err := json.Unmarshal(raw, &p); err != nil || (len(p.Value) == 0 && len(p.Reference) == 0) {
			return nil, false, cmdutil.FlagErrorf("--parameters: parameter '%s' of %s must be {\"value\": ...}", k, source)
		}
		if len(p.Reference) > 0 {
			return nil, false, cmdutil.FlagErrorf("--parameters: parameter '%s' of %s is a Key Vault reference, which Skiff does not support: give its value", k, source)
		}
		val, err := api.DecodeJSONValue(p.Value)
		if err != nil {
			return nil, false, cmdutil.FlagErrorf("--parameters: parameter '%s' of %s: %v", k, source, err)
		}
		out[k] = api.DeploymentParameter{Value: val}
	}
	return out, true, nil
}

func sortedNames(t *template) []string {
	names := slices.Clone(t.names)
	slices.Sort(names)
	return names
}

func describe(e *api.ErrorBody) string {
	if e == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "(%s) %s", e.Code, e.Message)
	for _, d := range e.Details {
		fmt.Fprintf(&b, " (%s) %s", d.Code, d.Message)
	}
	return b.String()
}
