package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
)

// A port number decodes from a JSON number or from a string that holds
// one: the container groups of api-version 2017-08-01-preview, as seed
// 000's templates write them, give a published port as "80", and ARM
// accepts both. It is always written back as a number.

// UnmarshalJSON decodes a published port.
func (p *Port) UnmarshalJSON(b []byte) error {
	type plain Port
	var v struct {
		plain
		Port json.RawMessage `json:"port"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = Port(v.plain)
	return decodePortNumber(v.Port, &p.Port)
}

// UnmarshalJSON decodes a container's port.
func (p *ContainerPort) UnmarshalJSON(b []byte) error {
	type plain ContainerPort
	var v struct {
		plain
		Port json.RawMessage `json:"port"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = ContainerPort(v.plain)
	return decodePortNumber(v.Port, &p.Port)
}

// decodePortNumber decodes raw (absent, null, a number, or a string that
// holds a whole number) into n.
func decodePortNumber(raw json.RawMessage, n *int32) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		v, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return &json.UnmarshalTypeError{Value: "string " + strconv.Quote(s), Type: reflect.TypeFor[int32](), Field: "port"}
		}
		*n = int32(v)
		return nil
	}
	return json.Unmarshal(raw, n)
}
