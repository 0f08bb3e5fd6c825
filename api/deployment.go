package api

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// DeploymentType is the type of template deployments.
const DeploymentType = "Microsoft.Resources/deployments"

// Deployment modes.
const (
	DeploymentModeIncremental = "Incremental"
	DeploymentModeComplete    = "Complete"
)

// Provisioning states of a deployment (properties.provisioningState).
const (
	DeploymentAccepted  = "Accepted"
	DeploymentRunning   = "Running"
	DeploymentSucceeded = "Succeeded"
	DeploymentFailed    = "Failed"
	DeploymentCanceled  = "Canceled"
	DeploymentDeleting  = "Deleting"
)

// DeploymentTerminal reports whether a deployment in state s is over.
func DeploymentTerminal(s string) bool {
	return s == DeploymentSucceeded || s == DeploymentFailed || s == DeploymentCanceled
}

// Deployment is a Microsoft.Resources/deployments resource at resource
// group scope: the body of Deployments_CreateOrUpdate and Validate, and
// what a read returns (DeploymentExtended).
type Deployment struct {
	ID         string               `json:"id,omitempty"`
	Name       string               `json:"name,omitempty"`
	Type       string               `json:"type,omitempty"`
	Location   string               `json:"location,omitempty"`
	Tags       map[string]string    `json:"tags,omitempty"`
	Properties DeploymentProperties `json:"properties"`
}

// DeploymentProperties are a deployment's properties. Template,
// Parameters (with values), Mode, DebugSetting and OnErrorDeployment are
// what a client sends; the rest is read-only.
type DeploymentProperties struct {
	Template          json.RawMessage                `json:"template,omitempty"`
	TemplateLink      *TemplateLink                  `json:"templateLink,omitempty"`
	Parameters        map[string]DeploymentParameter `json:"parameters,omitempty"`
	ParametersLink    *TemplateLink                  `json:"parametersLink,omitempty"`
	Mode              string                         `json:"mode,omitempty"`
	DebugSetting      *DebugSetting                  `json:"debugSetting,omitempty"`
	OnErrorDeployment *OnErrorDeployment             `json:"onErrorDeployment,omitempty"`

	TemplateHash       string                      `json:"templateHash,omitempty"`
	ProvisioningState  string                      `json:"provisioningState,omitempty"`
	CorrelationID      string                      `json:"correlationId,omitempty"`
	Timestamp          string                      `json:"timestamp,omitempty"`
	Duration           string                      `json:"duration,omitempty"`
	Outputs            map[string]DeploymentOutput `json:"outputs,omitempty"`
	Providers          []Provider                  `json:"providers,omitempty"`
	Dependencies       []Dependency                `json:"dependencies,omitempty"`
	OutputResources    []ResourceReference         `json:"outputResources,omitempty"`
	ValidatedResources []ResourceReference         `json:"validatedResources,omitempty"`
	Error              *ErrorBody                  `json:"error,omitempty"`
}

// DeploymentParameter is one parameter: {"value": v} as a client sends it,
// {"type": "String", "value": v} as a read shows it ({"type":
// "SecureString"} without a value for a secure one), or a Key Vault
// {"reference": …}, which Skiff refuses.
type DeploymentParameter struct {
	Type      string          `json:"type,omitempty"`
	Value     any             `json:"value,omitempty"`
	Reference json.RawMessage `json:"reference,omitempty"`
}

// TemplateLink is a template or parameters file by URI, which Skiff
// refuses (it fetches nothing on a client's behalf).
type TemplateLink struct {
	URI            string `json:"uri,omitempty"`
	ID             string `json:"id,omitempty"`
	RelativePath   string `json:"relativePath,omitempty"`
	ContentVersion string `json:"contentVersion,omitempty"`
	QueryString    string `json:"queryString,omitempty"`
}

// DebugSetting is accepted and shown back; Skiff logs no request or
// response content either way.
type DebugSetting struct {
	DetailLevel string `json:"detailLevel,omitempty"`
}

// OnErrorDeployment is the rollback on failure (az's --rollback-on-error).
type OnErrorDeployment struct {
	Type           string `json:"type,omitempty"`
	DeploymentName string `json:"deploymentName,omitempty"`
}

// DeploymentOutput is an evaluated output.
type DeploymentOutput struct {
	Type  string `json:"type"`
	Value any    `json:"value,omitempty"`
}

// ResourceReference names a resource by id.
type ResourceReference struct {
	ID string `json:"id"`
}

// Provider is a resource provider a deployment deploys to.
type Provider struct {
	Namespace     string                 `json:"namespace"`
	ResourceTypes []ProviderResourceType `json:"resourceTypes"`
}

// ProviderResourceType is a provider's resource type and its locations.
type ProviderResourceType struct {
	ResourceType string   `json:"resourceType"`
	Locations    []string `json:"locations,omitempty"`
}

// Dependency is a resource and the resources it depends on.
type Dependency struct {
	DependsOn    []BasicDependency `json:"dependsOn"`
	ID           string            `json:"id"`
	ResourceType string            `json:"resourceType"`
	ResourceName string            `json:"resourceName"`
}

// BasicDependency is a resource depended on.
type BasicDependency struct {
	ID           string `json:"id"`
	ResourceType string `json:"resourceType"`
	ResourceName string `json:"resourceName"`
}

// DeploymentOperation is what a deployment did to one resource.
type DeploymentOperation struct {
	ID          string                        `json:"id"`
	OperationID string                        `json:"operationId"`
	Properties  DeploymentOperationProperties `json:"properties"`
}

// Provisioning operations of a deployment operation.
const (
	ProvisioningOperationCreate = "Create"
	ProvisioningOperationDelete = "Delete"
)

// DeploymentOperationProperties are a deployment operation's properties.
type DeploymentOperationProperties struct {
	ProvisioningOperation string          `json:"provisioningOperation"`
	ProvisioningState     string          `json:"provisioningState"`
	Timestamp             string          `json:"timestamp"`
	Duration              string          `json:"duration,omitempty"`
	TrackingID            string          `json:"trackingId,omitempty"`
	StatusCode            string          `json:"statusCode,omitempty"`
	StatusMessage         *StatusMessage  `json:"statusMessage,omitempty"`
	TargetResource        *TargetResource `json:"targetResource,omitempty"`
}

// StatusMessage is a failed operation's message: {"status": "Failed",
// "error": {...}} for a long-running operation that failed, {"error":
// {...}} for a refused request.
type StatusMessage struct {
	Status string     `json:"status,omitempty"`
	Error  *ErrorBody `json:"error,omitempty"`
}

// TargetResource is the resource of a deployment operation.
type TargetResource struct {
	ID           string `json:"id"`
	ResourceType string `json:"resourceType"`
	ResourceName string `json:"resourceName"`
}

// DeploymentValidateResult is the body of Deployments_Validate.
type DeploymentValidateResult struct {
	ID         string                `json:"id,omitempty"`
	Name       string                `json:"name,omitempty"`
	Type       string                `json:"type,omitempty"`
	Error      *ErrorBody            `json:"error,omitempty"`
	Properties *DeploymentProperties `json:"properties,omitempty"`
}

// DeploymentExportResult is the body of Deployments_ExportTemplate.
type DeploymentExportResult struct {
	Template json.RawMessage `json:"template"`
}

// DeploymentOperationStatus is what a deployment's Azure-AsyncOperation
// URL returns: {"status": "Running"} until it ends.
type DeploymentOperationStatus struct {
	Status string     `json:"status"`
	Error  *ErrorBody `json:"error,omitempty"`
}

// DeploymentRequest is a decoded PUT or validate body: what a deployment
// is asked to do.
type DeploymentRequest struct {
	// Template is the template document, as the client wrote it (so that
	// the template's line numbers are the client's file's).
	Template json.RawMessage
	// Parameters are the given values, without ARM's {"value": …}
	// wrapper. Numbers are int64 when whole, else float64.
	Parameters   map[string]any
	Mode         string
	DebugSetting *DebugSetting
	Tags         map[string]string
}

// The codes of a deployment request refused.
const (
	codeInvalidDeployment = "InvalidDeployment"
	codeNotSupported      = "NotSupported"
)

// DecodeDeployment decodes the body of Deployments_CreateOrUpdate or
// Deployments_Validate at resource group scope.
//
// az sends the template spliced in as raw text under an unquoted key
// (`{"properties": {"parameters": …, "mode": "Incremental",
// template:{…}}}`, az-cli.md), in the JSON-with-comments dialect ARM
// reads: so a bare identifier as an object key is quoted first, and //
// and /* */ comments are blanked. Anything else that is not JSON is
// refused with InvalidRequestContent and the line and position.
//
// A template by link, parameters by link or by Key Vault reference, and
// onErrorDeployment are refused: Skiff fetches nothing on a client's
// behalf and keeps no earlier deployment to roll back to.
func DecodeDeployment(body []byte) (*DeploymentRequest, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	norm, inserted := relaxJSON(body)
	fail := func(err error) error { return decodeError(body, shiftOffset(err, inserted)) }
	if len(bytes.TrimSpace(norm)) > 0 && !json.Valid(norm) {
		var v any
		return nil, fail(json.Unmarshal(norm, &v))
	}
	obj, err := objectBody(norm)
	if err != nil {
		return nil, err
	}
	var d struct {
		Tags       map[string]string `json:"tags"`
		Properties *struct {
			Template          json.RawMessage            `json:"template"`
			TemplateLink      json.RawMessage            `json:"templateLink"`
			Parameters        map[string]json.RawMessage `json:"parameters"`
			ParametersLink    json.RawMessage            `json:"parametersLink"`
			Mode              string                     `json:"mode"`
			DebugSetting      *DebugSetting              `json:"debugSetting"`
			OnErrorDeployment json.RawMessage            `json:"onErrorDeployment"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(obj, &d); err != nil {
		return nil, fail(err)
	}
	invalid := func(format string, a ...any) error {
		return errdefs.WithCode(errdefs.ErrInvalidArgument, codeInvalidDeployment, format, a...)
	}
	if d.Properties == nil {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, codeInvalidRequestContent,
			"The request content was invalid: the deployment's 'properties' are required.")
	}
	p := d.Properties
	notSupported := func(what string) error {
		return errdefs.WithCode(errdefs.ErrNotImplemented, codeNotSupported,
			"The deployment's '%s' is not supported by this server: send the template (or parameters) inline.", what)
	}
	switch {
	case present(p.TemplateLink):
		return nil, notSupported("templateLink")
	case present(p.ParametersLink):
		return nil, notSupported("parametersLink")
	case present(p.OnErrorDeployment):
		return nil, errdefs.WithCode(errdefs.ErrNotImplemented, codeNotSupported,
			"The deployment's 'onErrorDeployment' (rollback on error) is not supported by this server.")
	case !present(p.Template):
		return nil, invalid("The deployment's 'template' is required.")
	}
	// The template keeps its lines (comments became spaces, bare keys
	// quoted in place), so that a template error's line is the file's.
	tmpl := bytes.TrimSpace(p.Template)
	if tmpl[0] != '{' {
		return nil, invalid("The deployment's 'template' must be a JSON object.")
	}
	req := &DeploymentRequest{Template: bytes.Clone(tmpl), Parameters: map[string]any{}, DebugSetting: p.DebugSetting, Tags: d.Tags}
	switch {
	case p.Mode == "" || strings.EqualFold(p.Mode, DeploymentModeIncremental):
		req.Mode = DeploymentModeIncremental
	case strings.EqualFold(p.Mode, DeploymentModeComplete):
		req.Mode = DeploymentModeComplete
	default:
		return nil, invalid("The deployment mode '%s' is not valid: it must be '%s' or '%s'.", clipValue(p.Mode),
			DeploymentModeIncremental, DeploymentModeComplete)
	}
	for name, raw := range p.Parameters {
		var v struct {
			Value     json.RawMessage `json:"value"`
			Reference json.RawMessage `json:"reference"`
		}
		if err := json.Unmarshal(raw, &v); err != nil || bytes.TrimSpace(raw)[0] != '{' {
			return nil, invalid("The value of deployment parameter '%s' must be an object with a 'value': {\"%s\": {\"value\": ...}}.", name, name)
		}
		if present(v.Reference) {
			return nil, errdefs.WithCode(errdefs.ErrNotImplemented, codeNotSupported,
				"The deployment parameter '%s' is a Key Vault reference, which this server does not support: give its value.", name)
		}
		if len(v.Value) == 0 {
			return nil, invalid("The deployment parameter '%s' has no 'value': {\"%s\": {\"value\": ...}}.", name, name)
		}
		val, err := DecodeJSONValue(v.Value)
		if err != nil {
			return nil, fail(err)
		}
		req.Parameters[name] = val
	}
	return req, nil
}

// DecodeJSONValue decodes a JSON value into plain Go values (map[string]any,
// []any, string, bool, nil, and int64 for whole numbers within its range,
// float64 for others).
func DecodeJSONValue(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return plainNumbers(v), nil
}

func plainNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			return int64(f)
		}
		return f
	case map[string]any:
		for k, e := range t {
			t[k] = plainNumbers(e)
		}
	case []any:
		for i, e := range t {
			t[i] = plainNumbers(e)
		}
	}
	return v
}

func present(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && !bytes.Equal(t, []byte("null"))
}

func clipValue(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// relaxJSON rewrites ARM's relaxed JSON into JSON: a bare identifier in
// an object's key position ([A-Za-z_$][A-Za-z0-9_$]* followed by ':') is
// quoted, and comments are replaced by spaces (newlines kept, so lines
// stay). Anything else is left for the JSON parser to refuse. inserted
// holds the offsets, in the output, of the quotes it added.
func relaxJSON(in []byte) (out []byte, inserted []int) {
	out = make([]byte, 0, len(in)+8)
	// stack of containers: '{' or '['; keyPos: the next token is a key.
	var stack []byte
	keyPos := false
	for i := 0; i < len(in); {
		c := in[i]
		switch {
		case c == '"':
			j := i + 1
			for j < len(in) && in[j] != '"' {
				if in[j] == '\\' {
					j++
				}
				j++
			}
			if j < len(in) {
				j++
			}
			j = min(j, len(in)) // a string that ends in its escape's backslash
			out = append(out, in[i:j]...)
			i = j
			keyPos = false
		case c == '/' && i+1 < len(in) && in[i+1] == '/':
			for i < len(in) && in[i] != '\n' {
				out = append(out, ' ')
				i++
			}
		case c == '/' && i+1 < len(in) && in[i+1] == '*':
			end := bytes.Index(in[i+2:], []byte("*/"))
			if end < 0 {
				out = append(out, in[i:]...) // unterminated: the parser says so
				return out, inserted
			}
			for _, b := range in[i : i+2+end+2] {
				if b == '\n' {
					out = append(out, '\n')
				} else {
					out = append(out, ' ')
				}
			}
			i += 2 + end + 2
		case c == '{':
			stack = append(stack, c)
			keyPos = true
			out = append(out, c)
			i++
		case c == '[':
			stack = append(stack, c)
			keyPos = false
			out = append(out, c)
			i++
		case c == '}' || c == ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			keyPos = false
			out = append(out, c)
			i++
		case c == ',':
			keyPos = len(stack) > 0 && stack[len(stack)-1] == '{'
			out = append(out, c)
			i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			out = append(out, c)
			i++
		case keyPos && isIdentStart(c):
			j := i + 1
			for j < len(in) && isIdentPart(in[j]) {
				j++
			}
			k := j
			for k < len(in) && (in[k] == ' ' || in[k] == '\t' || in[k] == '\r' || in[k] == '\n') {
				k++
			}
			if k < len(in) && in[k] == ':' {
				inserted = append(inserted, len(out))
				out = append(out, '"')
				out = append(out, in[i:j]...)
				inserted = append(inserted, len(out))
				out = append(out, '"')
			} else {
				out = append(out, in[i:j]...)
			}
			i = j
			keyPos = false
		default:
			out = append(out, c)
			i++
			keyPos = false
		}
	}
	return out, inserted
}

func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// shiftOffset maps a JSON error's offset in relaxJSON's output back to the
// input, so that its line and position are the client's.
func shiftOffset(err error, inserted []int) error {
	back := func(off int64) int64 {
		n := int64(0)
		for _, at := range inserted {
			if int64(at) < off {
				n++
			}
		}
		return off - n
	}
	switch e := err.(type) {
	case *json.SyntaxError:
		c := *e
		c.Offset = back(e.Offset)
		return &c
	case *json.UnmarshalTypeError:
		c := *e
		c.Offset = back(e.Offset)
		return &c
	}
	return err
}

// TemplateTypeName is a template type ("securestring", "INT", …) as ARM
// writes it in a deployment's read: String, SecureString, Int, Bool,
// Object, SecureObject, Array; an unknown one as it is.
func TemplateTypeName(t string) string {
	switch strings.ToLower(t) {
	case "string":
		return "String"
	case "securestring":
		return "SecureString"
	case "int":
		return "Int"
	case "bool":
		return "Bool"
	case "object":
		return "Object"
	case "secureobject":
		return "SecureObject"
	case "array":
		return "Array"
	}
	return t
}

// RelaxedJSON rewrites a document in the JSON-with-comments dialect ARM
// reads templates and parameter files in (// and /* */ comments, bare
// identifier keys) as JSON, keeping its lines; JSON comes back as it is.
func RelaxedJSON(in []byte) []byte {
	out, _ := relaxJSON(bytes.TrimPrefix(in, []byte("\xef\xbb\xbf")))
	return out
}
