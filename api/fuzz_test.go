package api

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// clientError fails unless err is what the server turns into a 4xx: an
// errdefs.Coded error with a code and a message, of class
// ErrInvalidArgument or ErrNotImplemented (both 400).
func clientError(t *testing.T, what string, err error) {
	t.Helper()
	var coded *errdefs.Coded
	if !errors.As(err, &coded) || coded.Code == "" || coded.Message == "" {
		t.Fatalf("%s: error without an ARM code: %#v", what, err)
	}
	if !errdefs.Is(err, errdefs.ErrInvalidArgument) && !errdefs.Is(err, errdefs.ErrNotImplemented) {
		t.Fatalf("%s: error %q (%s) is not a client error class", what, err, coded.Code)
	}
}

// FuzzDecodeContainerGroup runs a PUT body through what the server does
// with it: decode, defaults, validate, validate as an update of itself and
// redact for the answer. None may panic, and every refusal is a 4xx.
func FuzzDecodeContainerGroup(f *testing.F) {
	valid, _ := json.Marshal(validGroup())
	f.Add(valid)
	f.Add([]byte(`{"location":"local","properties":{"containers":[{"name":"app","properties":{"image":"busybox",` +
		`"command":["sleep","3600"],"resources":{"requests":{"cpu":1,"memoryInGB":1}},"ports":[{"port":80}]}}],` +
		`"ipAddress":{"type":"Public","ports":[{"port":80}]},"osType":"Linux"}}`))
	f.Add([]byte(`{"properties":null}`))
	f.Add([]byte(`{"properties":{"containers":[{"properties":{"resources":{"requests":{"cpu":1e309}}}}]}}`))
	f.Add([]byte(`{"tags":{"a":"b"},"properties":{"volumes":[{"name":"s","secret":{"k":"!!"}}],"containers":[]}}`))
	f.Add([]byte("\xef\xbb\xbf[1,2]"))
	f.Add([]byte(`{"properties":{"initContainers":[{"name":"i","properties":{"image":"x"}}],"ipAddress":{"type":"Private"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		cg, err := DecodeContainerGroup(body)
		if err != nil {
			clientError(t, "decode", err)
			return
		}
		cg.Name = "g"
		if cg.Location == "" {
			cg.Location = "local"
		}
		SetDefaults(cg)
		if err := ValidateContainerGroup(cg); err != nil {
			clientError(t, "validate", err)
			return
		}
		if err := ValidateUpdate(cg, cg); err != nil {
			t.Fatalf("a group is not a valid update of itself: %v", err)
		}
		if _, err := json.Marshal(StripInstanceView(Redact(cg))); err != nil {
			t.Fatalf("a valid group does not encode: %v", err)
		}
	})
}

// FuzzDecodeBodies covers the other bodies the server decodes: a resource
// group PUT, a container group tags PATCH and an exec request.
func FuzzDecodeBodies(f *testing.F) {
	f.Add([]byte(`{"location":"local","tags":{"env":"dev"}}`))
	f.Add([]byte(`{"tags":{"a":"1","b":""}}`))
	f.Add([]byte(`{"tags":{"a/b":"1"}}`))
	f.Add([]byte(`{"tags":null}`))
	f.Add([]byte(`{"command":"/bin/sh","terminalSize":{"rows":24,"cols":80}}`))
	f.Add([]byte(`{"command":"[\"sh\",\"-c\",\"echo hi\"]","terminalSize":{"rows":-1,"cols":70000}}`))
	f.Add([]byte(`   `))
	f.Fuzz(func(t *testing.T, body []byte) {
		if rg, err := DecodeResourceGroup(body); err != nil {
			clientError(t, "decode resource group", err)
		} else if err := ValidateResourceGroup(rg); err != nil {
			clientError(t, "validate resource group", err)
		}
		if tags, err := DecodeTagsPatch(body); err != nil {
			clientError(t, "decode tags", err)
		} else if err := ValidateTags(tags); err != nil {
			clientError(t, "validate tags", err)
		}
		if req, err := DecodeExecRequest(body); err != nil {
			clientError(t, "decode exec", err)
		} else if ts := req.TerminalSize; ts != nil && (ts.Rows < 0 || ts.Cols < 0 || ts.Rows > maxTerminalDimension || ts.Cols > maxTerminalDimension) {
			t.Fatalf("terminal size %+v accepted", ts)
		}
	})
}
