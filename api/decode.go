package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// codeInvalidRequestContent is ARM's code for a body that cannot be read.
const codeInvalidRequestContent = "InvalidRequestContent"

// maxTerminalDimension is the largest row or column count a terminal can be
// given (struct winsize holds unsigned shorts).
const maxTerminalDimension = 1<<16 - 1

// DecodeContainerGroup decodes the body of ContainerGroups_CreateOrUpdate.
//
// Field names match case-insensitively, as ARM's do. Properties of the
// schema that Skiff does not honour (a GPU, a managed identity, …;
// unsupported.go) are refused with <Field>NotSupported. Unknown keys are
// ignored, so the documents `az container create --file` sends (with
// top-level apiVersion, type and name) are accepted. Read-only properties a
// client echoes back from a GET (id, provisioningState, instanceView, fqdn)
// are dropped. The body must be a JSON object with a `properties` object.
//
// Errors have code InvalidRequestContent, class errdefs.ErrInvalidArgument,
// and give the line and position of malformed JSON. Decoding does not
// validate; see ValidateContainerGroup.
func DecodeContainerGroup(body []byte) (*ContainerGroup, error) {
	body, err := objectBody(body)
	if err != nil {
		return nil, err
	}
	var cg ContainerGroup
	if err := unmarshal(body, &cg); err != nil {
		return nil, err
	}
	var raw struct {
		Properties json.RawMessage `json:"properties"`
	}
	if err := unmarshal(body, &raw); err != nil {
		return nil, err
	}
	if len(raw.Properties) == 0 || string(raw.Properties) == "null" {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, codeInvalidRequestContent,
			"The request content was invalid: the container group's 'properties' are required.")
	}
	if err := refuseUnhonoured(body); err != nil {
		return nil, err
	}
	cg.ID = ""
	p := &cg.Properties
	p.ProvisioningState = ""
	p.InstanceView = nil
	p.IsCreatedFromStandbyPool = false // read-only: the server sets it
	for i := range p.Containers {
		p.Containers[i].Properties.InstanceView = nil
	}
	for i := range p.InitContainers {
		p.InitContainers[i].Properties.InstanceView = nil
	}
	if p.IPAddress != nil {
		p.IPAddress.FQDN = ""
	}
	return &cg, nil
}

// DecodeResourceGroup decodes the body of ResourceGroups_CreateOrUpdate.
// Errors are as for DecodeContainerGroup; see ValidateResourceGroup.
func DecodeResourceGroup(body []byte) (*ResourceGroup, error) {
	body, err := objectBody(body)
	if err != nil {
		return nil, err
	}
	var rg ResourceGroup
	if err := unmarshal(body, &rg); err != nil {
		return nil, err
	}
	rg.ID = ""
	rg.Properties.ProvisioningState = ""
	return &rg, nil
}

// DecodeTagsPatch decodes the body of ContainerGroups_Update, which
// updates tags only: {"tags": {"k": "v"}}. It returns nil when the body has
// no tags (leave them unchanged) and a non-nil, possibly empty, map
// otherwise (replace them; {} clears them). Other keys are ignored.
func DecodeTagsPatch(body []byte) (map[string]string, error) {
	body, err := objectBody(body)
	if err != nil {
		return nil, err
	}
	var patch struct {
		Tags map[string]string `json:"tags"`
	}
	if err := unmarshal(body, &patch); err != nil {
		return nil, err
	}
	return patch.Tags, nil
}

// DecodeExecRequest decodes the body of Containers_ExecuteCommand. The
// command is required and at most MaxArgBytes long; terminal rows and
// columns must be 0 to 65535.
func DecodeExecRequest(body []byte) (*ExecRequest, error) {
	body, err := objectBody(body)
	if err != nil {
		return nil, err
	}
	var req ExecRequest
	if err := unmarshal(body, &req); err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.Command) == "" {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, codeInvalidRequestContent,
			"The request content was invalid: the 'command' to execute is required.")
	}
	if len(req.Command) > MaxArgBytes {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, codeInvalidRequestContent,
			"The request content was invalid: the 'command' to execute is %d bytes long; the maximum is %d.",
			len(req.Command), MaxArgBytes)
	}
	if ts := req.TerminalSize; ts != nil {
		if ts.Rows < 0 || ts.Cols < 0 || ts.Rows > maxTerminalDimension || ts.Cols > maxTerminalDimension {
			return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, codeInvalidRequestContent,
				"The request content was invalid: the 'terminalSize' rows '%d' and cols '%d' must be between 0 and %d.",
				ts.Rows, ts.Cols, maxTerminalDimension)
		}
	}
	return &req, nil
}

// objectBody strips a UTF-8 byte order mark and checks that body is a JSON
// object, which every ARM PUT, PATCH and POST body here must be.
func objectBody(body []byte) ([]byte, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, codeInvalidRequestContent,
			"The request content was invalid: the request body is empty.")
	}
	if trimmed[0] != '{' {
		// Let the JSON parser describe malformed input precisely; a
		// well-formed non-object gets its own message.
		if !json.Valid(body) {
			var v any
			return nil, decodeError(body, json.Unmarshal(body, &v))
		}
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, codeInvalidRequestContent,
			"The request content was invalid: the request body must be a JSON object.")
	}
	return body, nil
}

func unmarshal(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return decodeError(body, err)
	}
	return nil
}

// decodeError turns a JSON error into InvalidRequestContent, with the line
// and position (both 1-based) where the parser stopped, as ARM reports them.
func decodeError(body []byte, err error) error {
	const prefix = "The request content was invalid and could not be deserialized: "
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		line, pos := position(body, se.Offset)
		return errdefs.WithCode(errdefs.ErrInvalidArgument, codeInvalidRequestContent,
			prefix+"'%s'. Line %d, position %d.", se.Error(), line, pos)
	case errors.As(err, &te):
		line, pos := position(body, te.Offset)
		path := te.Field
		if path == "" {
			path = "(root)"
		}
		return errdefs.WithCode(errdefs.ErrInvalidArgument, codeInvalidRequestContent,
			prefix+"'cannot convert a JSON %s to %s'. Path '%s', line %d, position %d.",
			te.Value, jsonKind(te.Type), path, line, pos)
	default:
		return errdefs.WithCode(errdefs.ErrInvalidArgument, codeInvalidRequestContent, prefix+"'%s'.", err.Error())
	}
}

// position converts a byte offset into a 1-based line and position.
func position(body []byte, offset int64) (line, pos int) {
	if offset < 0 {
		offset = 0
	}
	if offset > int64(len(body)) {
		offset = int64(len(body))
	}
	consumed := body[:offset]
	line = 1 + bytes.Count(consumed, []byte("\n"))
	pos = len(consumed) - (bytes.LastIndexByte(consumed, '\n') + 1)
	return line, pos
}

// jsonKind names the JSON kind a Go type is decoded from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer of type " + t.Kind().String()
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	}
	return t.String()
}
