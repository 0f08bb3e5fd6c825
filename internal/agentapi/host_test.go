package agentapi_test

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/agent/fakeagent"
	"github.com/skiff-sh/skiff/internal/agentapi"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostapi"
)

// Stats and the group count are the agent's; a group that does not run
// fails as it does directly.
func TestStatsAndGroupCount(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	if n := e.client.GroupCount(); n != 0 {
		t.Fatalf("group count %d before any group", n)
	}
	id := e.group("web")
	e.group("db")
	got, err := e.client.Stats(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := e.agent.Stats(t.Context(), id)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stats %+v through the API, %+v directly", got, want)
	}
	if n := e.client.GroupCount(); n != 2 {
		t.Fatalf("group count %d, want 2", n)
	}
	e.stop("web")
	_, err = e.client.Stats(t.Context(), id)
	_, wantErr := e.agent.Stats(t.Context(), id)
	sameError(t, err, wantErr, errdefs.ErrConflict)
	_, err = e.client.Stats(t.Context(), "cg-00000000000000000000")
	_, wantErr = e.agent.Stats(t.Context(), "cg-00000000000000000000")
	sameError(t, err, wantErr, errdefs.ErrNotFound)
}

// The agent's refusal of a port comes back with its class, code and
// message.
func TestCheckPorts(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	if err := e.client.CheckPorts([]api.Port{{Protocol: "TCP", Port: 80}, {Protocol: "UDP", Port: 53}}); err != nil {
		t.Fatal(err)
	}
	ports := []api.Port{{Protocol: "TCP", Port: 80}, {Protocol: "TCP", Port: 22}}
	sameError(t, e.client.CheckPorts(ports), e.direct.CheckPorts(ports), errdefs.ErrConflict)
}

// A deleted share's removal reaches the agent with its account and
// directory, escaped as path segments.
func TestRemoveShare(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	if err := e.client.RemoveShare(t.Context(), "acct1", "data.0123456789abcdef0123456789abcdef"); err != nil {
		t.Fatal(err)
	}
	if got := e.agent.RemovedShares(); len(got) != 1 || got[0] != "acct1/data.0123456789abcdef0123456789abcdef" {
		t.Fatalf("the agent removed %v", got)
	}
}

// The cache is the agent's: list, get and remove as directly.
func TestImages(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	e.agent.AddImage(hostapi.Image{Name: "busybox", Ref: "docker.io/library/busybox:latest", Digest: fakeagent.Digest("busybox"), Size: 4096})
	e.agent.AddImage(hostapi.Image{Name: "reg.example/private:1", Ref: "reg.example/private:1", Digest: fakeagent.Digest("p"), Private: true})
	got, err := e.client.Images().List()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := e.agent.Images().List()
	if !reflect.DeepEqual(got, want) || len(got) != 2 {
		t.Fatalf("list %+v through the API, %+v directly", got, want)
	}
	for _, ref := range []string{"busybox", "docker.io/library/busybox:latest", "reg.example/private:1"} {
		img, err := e.client.Images().Get(ref)
		if err != nil {
			t.Fatalf("get %s: %v", ref, err)
		}
		wantImg, _ := e.agent.Images().Get(ref)
		if *img != *wantImg {
			t.Fatalf("get %s: %+v through the API, %+v directly", ref, img, wantImg)
		}
	}
	if err := e.client.Images().Remove("busybox"); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.Images().Get("busybox")
	_, wantErr := e.agent.Images().Get("busybox")
	sameError(t, err, wantErr, errdefs.ErrNotFound)
	sameError(t, e.client.Images().Remove("busybox"), e.agent.Images().Remove("busybox"), errdefs.ErrNotFound)
	if got, _ := e.client.Images().List(); len(got) != 1 || got[0].Name != "reg.example/private:1" {
		t.Fatalf("after the remove: %+v", got)
	}
}

// A pull's progress arrives while it pulls; the credentials reach the
// agent; a pull without a progress func asks for none; a refused pull
// fails with the agent's error.
func TestPull(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	e.direct.Progress = []hostapi.ImageProgress{
		{Ref: "app:1", Layer: "sha256:aa", Status: "downloading", Complete: 10, Total: 100},
		{Ref: "app:1", Layer: "sha256:aa", Status: "backoff", Attempt: 2, Delay: 1500 * time.Millisecond, Message: "connection reset"},
	}
	e.direct.Release = make(chan struct{})
	creds := []api.ImageRegistryCredential{{Server: "reg.example", Username: "u", Password: "p4ss"}}
	var seen []hostapi.ImageProgress
	ctx, cancel := context.WithTimeout(t.Context(), wait) // the agent's pull waits for the progress to arrive
	defer cancel()
	img, err := e.client.Images().Pull(ctx, "reg.example/app:1", creds, func(p hostapi.ImageProgress) {
		seen = append(seen, p)
		if len(seen) == len(e.direct.Progress) {
			close(e.direct.Release) // the agent's pull ends only now
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(seen, e.direct.Progress) {
		t.Fatalf("progress %+v, want %+v", seen, e.direct.Progress)
	}
	want := hostapi.Image{Name: "reg.example/app:1", Ref: "reg.example/app:1", Digest: fakeagent.Digest("reg.example/app:1")}
	if *img != want {
		t.Fatalf("pulled %+v, want %+v", img, want)
	}
	if p := e.direct.lastPull(); !reflect.DeepEqual(p.creds, creds) || !p.withProgress {
		t.Fatalf("the agent's pull got %+v", p)
	}
	if got, err := e.client.Images().Get("reg.example/app:1"); err != nil || *got != want {
		t.Fatalf("get after the pull: %+v, %v", got, err)
	}

	e.direct.Progress, e.direct.Release = nil, nil
	if _, err := e.client.Images().Pull(t.Context(), "busybox", nil, nil); err != nil {
		t.Fatal(err)
	}
	if p := e.direct.lastPull(); p.withProgress || p.creds != nil {
		t.Fatalf("a pull without progress or credentials reached the agent as %+v", p)
	}

	_, err = e.client.Images().Pull(t.Context(), "denied/app", nil, nil)
	_, wantErr := e.direct.Images().Pull(t.Context(), "denied/app", nil, nil)
	sameError(t, err, wantErr, errdefs.ErrUnauthorized)
}

// A pull that the caller's context ends returns the context's end.
func TestPullCancel(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	e.direct.Release = make(chan struct{}) // never: the pull waits
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := e.client.Images().Pull(ctx, "busybox", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("pull: %v, want the context's deadline", err)
	}
}

// dockerArchive writes a docker-archive tarball with the given tags and
// filler bytes of padding in a layer; it returns its path and the digest of
// its config.
func dockerArchive(t *testing.T, tags []string, padding int) (string, string) {
	t.Helper()
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	manifest, err := json.Marshal([]map[string]any{{"Config": "blobs/config.json", "RepoTags": tags, "Layers": []string{}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "image.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, file := range []struct {
		name string
		data []byte
	}{{"manifest.json", manifest}, {"blobs/config.json", config}, {"blobs/filler", make([]byte, padding)}} {
		if err := tw.WriteHeader(&tar.Header{Name: file.name, Mode: 0o644, Size: int64(len(file.data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(file.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(config)
	return path, "sha256:" + hex.EncodeToString(sum[:])
}

// An import streams the tarball to the agent, which imports it and leaves
// no spool behind; a file that is not a tarball fails as it does directly;
// a missing file fails before anything is sent.
func TestImport(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	path, digest := dockerArchive(t, []string{"example.test/app:1", "example.test/app:latest"}, 100<<10)
	got, err := e.client.Images().Import(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	want := []hostapi.Image{{Name: "example.test/app:1", Ref: "example.test/app:1", Digest: digest},
		{Name: "example.test/app:latest", Ref: "example.test/app:latest", Digest: digest}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("imported %+v, want %+v", got, want)
	}
	if img, err := e.agent.Images().Get("example.test/app:latest"); err != nil || img.Digest != digest {
		t.Fatalf("the agent's cache after the import: %+v, %v", img, err)
	}
	if left := e.spooled(); len(left) != 0 {
		t.Fatalf("the import left %v in the spool directory", left)
	}

	junk := filepath.Join(t.TempDir(), "junk.tar")
	if err := os.WriteFile(junk, []byte("this is not a tarball, not even close"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.Images().Import(t.Context(), junk)
	_, wantErr := e.agent.Images().Import(t.Context(), junk)
	sameError(t, err, wantErr, errdefs.ErrInvalidArgument)
	if left := e.spooled(); len(left) != 0 {
		t.Fatalf("a failed import left %v in the spool directory", left)
	}

	_, err = e.client.Images().Import(t.Context(), filepath.Join(t.TempDir(), "missing.tar"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("import of a missing file: %v", err)
	}
}

// A tarball beyond MaxImportSize is refused (413) whether its length is
// announced or not, with a message that says the limit, and nothing of it
// is kept.
func TestImportTooLarge(t *testing.T) {
	const limit = 8 << 10
	e := newEnv(t, agentapi.HandlerOptions{MaxImportSize: limit})
	path, _ := dockerArchive(t, []string{"example.test/big:1"}, 64<<10)
	_, err := e.client.Images().Import(t.Context(), path)
	if !errdefs.Is(err, errdefs.ErrTooLarge) || !errdefs.Is(err, errdefs.ErrInvalidArgument) || errdefs.CodeOf(err) != "RequestContentTooLarge" {
		t.Fatalf("import beyond the limit: %v (code %q)", err, errdefs.CodeOf(err))
	}
	if !strings.Contains(err.Error(), "maximum import size of 8192 bytes") {
		t.Fatalf("the message does not say the limit: %q", err.Error())
	}

	// Streamed without a length: the agent stops reading at the limit.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	resp := e.request(http.MethodPut, "/v1/images/import", "Bearer "+token, io.MultiReader(f), nil)
	if env := readEnvelope(t, resp); resp.StatusCode != http.StatusRequestEntityTooLarge || env.Class != "TooLarge" {
		t.Fatalf("a chunked upload beyond the limit: %s %+v", resp.Status, env)
	}
	if _, err := e.agent.Images().Get("example.test/big:1"); !errdefs.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a refused import was imported: %v", err)
	}
	if left := e.spooled(); len(left) != 0 {
		t.Fatalf("a refused import left %v in the spool directory", left)
	}

	// An announced length beyond the limit is refused before the upload
	// (Expect: 100-continue): not a byte of the body is sent.
	body := &countingReader{}
	resp2 := e.request(http.MethodPut, "/v1/images/import", "Bearer "+token, body,
		http.Header{"Expect": {"100-continue"}, "Content-Length": {"1073741824"}})
	if resp2.StatusCode != http.StatusRequestEntityTooLarge || body.n != 0 {
		t.Fatalf("1 GiB announced: %s after %d bytes of it were sent", resp2.Status, body.n)
	}

	// Below the limit it passes.
	small, _ := dockerArchive(t, []string{"example.test/small:1"}, 0)
	if _, err := e.client.Images().Import(t.Context(), small); err != nil {
		t.Fatalf("an import below the limit: %v", err)
	}
}

type wireError struct {
	Class, Code, Message string
}

func readEnvelope(t *testing.T, resp *http.Response) wireError {
	t.Helper()
	var env struct{ Error wireError }
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &env); err != nil || env.Error.Message == "" {
		t.Fatalf("%s: not an error envelope: %q (%v)", resp.Status, b, err)
	}
	return env.Error
}

// Every route refuses a request without the token, or with another one,
// with 401 and an error envelope, and does nothing; with the token each
// answers as it should.
func TestAuth(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	id := e.group("web")
	e.agent.AddImage(hostapi.Image{Name: "busybox", Ref: "busybox", Digest: fakeagent.Digest("busybox")})
	routes := []struct {
		method, path, body string
		status             int // with the token
	}{
		{"GET", "/v1/groups", "", http.StatusOK},
		{"GET", "/v1/groups/" + id + "/stats", "", http.StatusOK},
		{"GET", "/v1/groups/" + id + "/containers/app/logs?tail=-1", "", http.StatusOK},
		{"GET", "/v1/groups/" + id + "/containers/app/exec", "", http.StatusBadRequest}, // not a websocket upgrade
		{"POST", "/v1/ports/check", `[{"protocol":"TCP","port":80}]`, http.StatusNoContent},
		{"GET", "/v1/images", "", http.StatusOK},
		{"GET", "/v1/image?ref=busybox", "", http.StatusOK},
		{"DELETE", "/v1/image?ref=busybox", "", http.StatusNoContent},
		{"POST", "/v1/images/pull", `{"ref":"alpine"}`, http.StatusOK},
		{"PUT", "/v1/images/import", "not a tarball", http.StatusBadRequest},
		{"GET", "/v1/no/such/route", "", http.StatusNotFound},
	}
	for _, r := range routes {
		for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer wrong-token", "Bearer " + token + "x", "Bearer " + token[:len(token)-1],
			"Basic " + token, token} {
			resp := e.request(r.method, r.path, auth, strings.NewReader(r.body), nil)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("%s %s with Authorization %q: %s, want 401", r.method, r.path, auth, resp.Status)
			}
			if env := readEnvelope(t, resp); env.Class != "Unauthorized" || env.Code != "AuthenticationFailed" {
				t.Fatalf("%s %s with Authorization %q: %+v", r.method, r.path, auth, env)
			}
		}
	}
	if _, err := e.agent.Images().Get("busybox"); err != nil {
		t.Fatalf("a refused DELETE removed the image: %v", err)
	}
	if _, err := e.agent.Images().Get("alpine"); !errdefs.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a refused pull pulled: %v", err)
	}
	for _, r := range routes {
		resp := e.request(r.method, r.path, "bearer "+token, strings.NewReader(r.body), nil)
		if resp.StatusCode != r.status {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s %s with the token: %s %q, want %d", r.method, r.path, resp.Status, b, r.status)
		}
	}
	if _, err := e.agent.Images().Get("alpine"); err != nil {
		t.Fatalf("the pull with the token: %v", err)
	}

	// The client with another token: every call is refused as unauthorized.
	wrong := agentapi.NewClient(e.srv.URL, "wrong-token", nil)
	_, err := wrong.Stats(t.Context(), id)
	checks := map[string]error{"stats": err}
	checks["logs"] = wrong.Logs(t.Context(), id, "app", hostapi.LogOptions{Tail: -1, Follow: true}, io.Discard)
	_, checks["exec"] = wrong.Exec(t.Context(), id, "app", hostapi.ExecOptions{Command: []string{"sh"}})
	checks["ports"] = wrong.CheckPorts(nil)
	_, checks["list"] = wrong.Images().List()
	_, checks["pull"] = wrong.Images().Pull(t.Context(), "busybox", nil, nil)
	for what, err := range checks {
		if !errdefs.Is(err, errdefs.ErrUnauthorized) {
			t.Fatalf("%s with a wrong token: %v", what, err)
		}
	}
	if n := wrong.GroupCount(); n != 0 {
		t.Fatalf("group count with a wrong token: %d", n)
	}

	// A handler without a token refuses everyone, a client without one too.
	open := httptest.NewServer(agentapi.NewHandler(e.direct, agentapi.HandlerOptions{}))
	defer open.Close()
	if _, err := agentapi.NewClient(open.URL, "", nil).Images().List(); !errdefs.Is(err, errdefs.ErrUnauthorized) {
		t.Fatalf("a handler without a token, called without one: %v", err)
	}
}

// Bad requests are refused with an error envelope of the right class.
func TestBadRequests(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	id := e.group("web")
	for _, c := range []struct {
		method, path, body string
		status             int
		class              string
	}{
		{"GET", "/v1/groups/" + id + "/containers/app/logs?tail=many", "", http.StatusBadRequest, "InvalidArgument"},
		{"GET", "/v1/groups/" + id + "/containers/app/logs?since=yesterday", "", http.StatusBadRequest, "InvalidArgument"},
		{"GET", "/v1/groups/" + id + "/containers/app/logs?follow=perhaps", "", http.StatusBadRequest, "InvalidArgument"},
		{"POST", "/v1/ports/check", `{"port":`, http.StatusBadRequest, "InvalidArgument"},
		{"POST", "/v1/images/pull", `[1,2]`, http.StatusBadRequest, "InvalidArgument"},
		{"POST", "/v1/images/pull", `{"ref":"` + strings.Repeat("x", 2<<20) + `"}`, http.StatusRequestEntityTooLarge, "TooLarge"},
		{"PATCH", "/v1/images", "", http.StatusNotFound, "NotFound"},
	} {
		resp := e.request(c.method, c.path, "Bearer "+token, strings.NewReader(c.body), nil)
		env := readEnvelope(t, resp)
		if resp.StatusCode != c.status || env.Class != c.class {
			t.Fatalf("%s %s: %s %+v, want %d %s", c.method, c.path, resp.Status, env, c.status, c.class)
		}
	}
}

// An agent that cannot be reached is ErrUnavailable, named by its URL;
// so is a URL that answers something else than the agent API.
func TestUnreachable(t *testing.T) {
	e := newEnv(t, agentapi.HandlerOptions{})
	id := e.group("web")
	e.srv.Close()
	c := e.client
	_, err := c.Stats(t.Context(), id)
	checks := map[string]error{"stats": err}
	checks["logs"] = c.Logs(t.Context(), id, "app", hostapi.LogOptions{Tail: -1}, io.Discard)
	_, checks["exec"] = c.Exec(t.Context(), id, "app", hostapi.ExecOptions{Command: []string{"sh"}})
	checks["ports"] = c.CheckPorts(nil)
	_, checks["get"] = c.Images().Get("busybox")
	_, checks["pull"] = c.Images().Pull(t.Context(), "busybox", nil, nil)
	path, _ := dockerArchive(t, []string{"a:1"}, 0)
	_, checks["import"] = c.Images().Import(t.Context(), path)
	for what, err := range checks {
		if !errdefs.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), e.srv.URL) {
			t.Fatalf("%s of a gone agent: %v, want unavailable naming %s", what, err, e.srv.URL)
		}
	}
	if n := c.GroupCount(); n != 0 {
		t.Fatalf("group count of a gone agent: %d", n)
	}

	other := newPlainServer(t)
	_, err = agentapi.NewClient(other, token, nil).Images().List()
	if !errdefs.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), other) {
		t.Fatalf("a server that is not an agent: %v", err)
	}
	if _, err := agentapi.NewClient("ftp://agent.example", token, nil).Images().List(); !errdefs.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("a URL that is not http: %v", err)
	}
}

// newPlainServer is an HTTP server that is not an agent: 404 to all.
func newPlainServer(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// countingReader is an endless body of zeros that counts what is read.
type countingReader struct{ n int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	clear(p)
	c.n += int64(len(p))
	return len(p), nil
}
