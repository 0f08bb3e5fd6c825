package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/internal/agent/fakeagent"
	"github.com/skiff-sh/skiff/internal/testenv/apiserver/controlplane"
)

const testToken = "test-token"

// testEnv is a Server on apiserver/controlplane: a real bbolt store with the
// real controller and the fake agent (package fakeagent: the bodies here,
// and the fuzzer's, name arbitrary images on arbitrary registries that a
// real runtime would pull from the network), with a resource group "rg".
type testEnv struct {
	srv  *Server
	host *fakeagent.Agent
	http *httptest.Server
	sub  string
}

func newTestEnv(t testing.TB, mutate func(*Config)) *testEnv {
	t.Helper()
	p := controlplane.Start(t)
	_, sub, err := EnsureIdentity(context.Background(), p.Store, p.Dir)
	if err != nil {
		t.Fatal(err)
	}
	// The lifecycle tests follow each operation: a PUT announces its
	// operation at once (opwait_test.go tests the synchronous PUT).
	cfg := Config{Store: p.Store, Host: p.Agent, Token: testToken, SyncWindow: -1}
	if mutate != nil {
		mutate(&cfg)
	}
	e := &testEnv{srv: New(cfg), host: p.Agent, sub: sub}
	e.http = httptest.NewServer(e.srv)
	t.Cleanup(e.http.Close)
	if code, _, body := e.do(t, "PUT", e.rgPath(), `{"location":"local"}`); code != 201 {
		t.Fatalf("create rg: %d %s", code, body)
	}
	return e
}

func (e *testEnv) rgPath() string { return "/subscriptions/" + e.sub + "/resourceGroups/rg" }
func (e *testEnv) cgPath(name string) string {
	return e.rgPath() + "/providers/Microsoft.ContainerInstance/containerGroups/" + name
}

// do sends a request over HTTP (body: string, []byte, io.Reader or nil)
// and returns the status, the ARM error code and the body.
func (e *testEnv) do(t testing.TB, method, path string, body any) (int, string, []byte) {
	t.Helper()
	code, _, data := e.roundTrip(t, method, path, body)
	return code, armCode(data), data
}

// roundTrip is do with the response headers instead of the ARM code.
func (e *testEnv) roundTrip(t testing.TB, method, path string, body any) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = strings.NewReader(string(b))
	case io.Reader:
		r = b
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req, err := http.NewRequest(method, e.http.URL+path+sep+"api-version=2023-05-01", r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := e.http.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, data
}

// armCode is the code of an ARM error envelope, or "".
func armCode(body []byte) string {
	var env struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(body, &env) != nil || env.Error.Message == "" {
		return ""
	}
	return env.Error.Code
}
