package server

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzPutContainerGroup sends arbitrary bodies to PUT containerGroups, the
// whole server path (decode, defaults, validate, port check, store) on a
// real bbolt store: never a panic or a 5xx, every refusal in ARM's
// envelope, and an accepted group can be read back.
func FuzzPutContainerGroup(f *testing.F) {
	e := newTestEnv(f, nil)
	f.Add([]byte(groupJSON(nil)))
	f.Add([]byte(groupJSON(func(p, c map[string]any) {
		p["ipAddress"] = map[string]any{"type": "Public", "ports": []map[string]any{{"port": 80}}}
		p["volumes"] = []map[string]any{{"name": "s", "secret": map[string]string{"k": "aGk="}}, {"name": "e", "emptyDir": map[string]any{}}}
		c["volumeMounts"] = []map[string]any{{"name": "s", "mountPath": "/s"}}
		c["environmentVariables"] = []map[string]any{{"name": "A", "secureValue": "x"}}
		c["livenessProbe"] = map[string]any{"exec": map[string]any{"command": []string{"true"}}}
	})))
	f.Add([]byte(groupJSON(func(p, _ map[string]any) {
		p["initContainers"] = []map[string]any{{"name": "init", "properties": map[string]any{"image": "busybox"}}}
		p["ipAddress"] = map[string]any{"type": "Private"}
	})))
	f.Add([]byte(`{"location":"local","tags":{"a":"b"},"properties":{"containers":[{"name":"x","properties":{"image":"::"}}]}}`))
	f.Add([]byte(`{"properties":{}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte{})
	path := e.cgPath("fz") + "?api-version=2023-05-01"
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("PUT", path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		switch code := rec.Code; {
		case code >= 500:
			t.Fatalf("PUT answered %d: %s", code, rec.Body)
		case code >= 400:
			if armCode(rec.Body.Bytes()) == "" || rec.Header().Get("x-ms-error-code") == "" {
				t.Fatalf("%d without an ARM error: %s", code, rec.Body)
			}
		default:
			var got struct{ Name string }
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.Name != "fz" {
				t.Fatalf("%d with body %s", code, rec.Body)
			}
			get := httptest.NewRequest("GET", path, nil)
			get.Header.Set("Authorization", "Bearer "+testToken)
			rec := httptest.NewRecorder()
			e.srv.ServeHTTP(rec, get)
			if rec.Code != 200 || strings.Contains(rec.Body.String(), `"secureValue":"`) {
				t.Fatalf("GET after an accepted PUT: %d %s", rec.Code, rec.Body)
			}
		}
	})
}
