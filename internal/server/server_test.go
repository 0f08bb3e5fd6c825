package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store"
)

const testToken = "test-token"

// noRuntime is the controller's runtime in these tests: it refuses to
// create anything, so an accepted group ends Failed. A fake because the
// bodies here (and the fuzzer's) name arbitrary images on arbitrary
// registries, which a real runtime would pull from the network. The host
// runtime the server reads from (runtime.Open in a temp dir) is real.
type noRuntime struct{}

func (noRuntime) Create(context.Context, string, runtime.GroupSpec) error {
	return fmt.Errorf("these tests run no containers: %w", errdefs.ErrNotImplemented)
}
func (noRuntime) Status(id string) (*runtime.GroupStatus, error) {
	return nil, fmt.Errorf("group %s: %w", id, errdefs.ErrNotFound)
}
func (noRuntime) Stop(context.Context, string) error                  { return nil }
func (noRuntime) Start(context.Context, string) error                 { return nil }
func (noRuntime) Restart(context.Context, string) error               { return nil }
func (noRuntime) Delete(context.Context, string, time.Duration) error { return nil }
func (noRuntime) List() []string                                      { return nil }

// testEnv is a Server on a real bbolt store and a host runtime in a temp
// dir, with a resource group "rg".
type testEnv struct {
	srv  *Server
	http *httptest.Server
	sub  string
}

func newTestEnv(t testing.TB, mutate func(*Config)) *testEnv {
	t.Helper()
	dir := t.TempDir()
	sealer, err := seal.LoadOrCreateKey(filepath.Join(dir, seal.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenBolt(filepath.Join(dir, "skiff.db"), store.BoltOptions{Sealer: sealer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	_, sub, err := EnsureIdentity(ctx, st, dir)
	if err != nil {
		t.Fatal(err)
	}
	host, err := runtime.Open(ctx, runtime.HostOptions{DataDir: dir, PublicAddress: "127.0.0.1",
		NetworkName: "skiff-servertest", BridgeName: "skiff-st0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	cfg := Config{Store: st, Host: host, Controller: controller.New(st, noRuntime{}, nil), Token: testToken}
	if mutate != nil {
		mutate(&cfg)
	}
	e := &testEnv{srv: New(cfg), sub: sub}
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
	return resp.StatusCode, armCode(data), data
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
