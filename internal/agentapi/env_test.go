package agentapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/agent/fakeagent"
	"github.com/skiff-sh/skiff/internal/agentapi"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostapi"
	"github.com/skiff-sh/skiff/internal/store"
	"github.com/skiff-sh/skiff/internal/testenv/apiserver/controlplane"
)

const (
	sub   = "00000000-0000-0000-0000-0000000000a9"
	token = "agent-token-0123456789"
	// wait bounds every wait for something to arrive.
	wait = 10 * time.Second
)

// env is the fake agent (package fakeagent) of a control plane (a real
// bbolt store and controller), served by the agent API on a real HTTP
// server, and a client of it. direct is the host the handler serves, to
// compare the client with.
type env struct {
	t      *testing.T
	st     store.Store
	agent  *fakeagent.Agent
	direct *host
	srv    *httptest.Server
	client hostapi.Host
	// spool is the handler's TempDir.
	spool string
}

func newEnv(t *testing.T, o agentapi.HandlerOptions) *env {
	t.Helper()
	p := controlplane.Start(t)
	if err := p.Store.PutSubscription(t.Context(), store.Subscription{ID: sub, DisplayName: "test", State: "Enabled"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Store.PutResourceGroup(t.Context(), store.ResourceGroup{Subscription: sub, Name: "rg", Location: "local"}); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: p.Store, agent: p.Agent, spool: filepath.Join(p.Dir, "spool")}
	if err := os.Mkdir(e.spool, 0o700); err != nil {
		t.Fatal(err)
	}
	e.direct = newHost(e.agent)
	if o.Token == "" {
		o.Token = token
	}
	if o.TempDir == "" {
		o.TempDir = e.spool
	}
	e.srv = httptest.NewServer(agentapi.NewHandler(e.direct, o))
	t.Cleanup(e.srv.Close)
	e.client = agentapi.NewClient(e.srv.URL, token, nil)
	return e
}

// group writes a group placed on the fake agent's host and waits until
// the agent runs it; it returns its runtime id.
func (e *env) group(name string) string {
	e.t.Helper()
	cg := store.ContainerGroup{Subscription: sub, ResourceGroup: "rg", RuntimeID: store.RuntimeID(sub, "rg", name), Host: fakeagent.Name,
		Resource: api.ContainerGroup{Name: name, Location: "local", Properties: api.ContainerGroupProperties{OSType: "Linux",
			Containers: []api.Container{{Name: "app", Properties: api.ContainerProperties{Image: "busybox"}}}}}}
	if _, err := e.st.PutContainerGroup(e.t.Context(), cg); err != nil {
		e.t.Fatal(err)
	}
	e.until("group "+name+" runs", func() bool { _, err := e.agent.Stats(e.t.Context(), cg.RuntimeID); return err == nil })
	return cg.RuntimeID
}

// stop asks for a group's stop and waits until the agent has stopped it.
func (e *env) stop(name string) {
	e.t.Helper()
	_, err := e.st.UpdateContainerGroup(e.t.Context(), sub, "rg", name, func(cg *store.ContainerGroup) error {
		cg.Action = store.Action{Kind: store.ActionStop, Seq: cg.Action.Seq + 1}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	id := store.RuntimeID(sub, "rg", name)
	e.until("group "+name+" stops", func() bool {
		_, err := e.agent.Stats(e.t.Context(), id)
		return errdefs.Is(err, errdefs.ErrConflict)
	})
}

func (e *env) until(what string, ok func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(wait)
	for !ok() {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not after %v", what, wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// spooled lists what is left in the handler's TempDir.
func (e *env) spooled() []string {
	e.t.Helper()
	ents, err := os.ReadDir(e.spool)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, ent := range ents {
		out = append(out, ent.Name())
	}
	return out
}

// host is the fake agent with what it lacks for these tests (it writes no
// stderr, ignores terminal sizes, reports no pull progress, refuses no
// port and fails no log after its first byte), each added on top of the
// fake's own behaviour, and with a record of the calls that reach it, so a
// test can see what the agent's side got and when its calls ended:
//
//   - exec "cat" copies stdin to stdout, then writes "stdin closed" to
//     stderr and "after" to stdout and exits with 7;
//   - exec "stty" (on a terminal) writes the terminal's size as "rows cols"
//     at the start and after each resize, until stdin's end;
//   - CheckPorts refuses port 22 (PortInUse);
//   - Pull reports Progress (if set) and then waits for Release (if set)
//     before pulling; a ref starting with "denied/" fails unauthorized;
//   - Logs of container "failing" writes a line and then fails.
type host struct {
	*fakeagent.Agent
	Progress []hostapi.ImageProgress
	Release  chan struct{}

	mu        sync.Mutex
	logOpts   []hostapi.LogOptions
	pulls     []pullCall
	logsEnded chan error // each Logs' error when it returns
	execEnded chan error // each Exec's error when it returns
}

type pullCall struct {
	ref          string
	creds        []api.ImageRegistryCredential
	withProgress bool
}

func newHost(a *fakeagent.Agent) *host {
	return &host{Agent: a, logsEnded: make(chan error, 16), execEnded: make(chan error, 16)}
}

func (h *host) Logs(ctx context.Context, id, container string, o hostapi.LogOptions, w io.Writer) error {
	h.mu.Lock()
	h.logOpts = append(h.logOpts, o)
	h.mu.Unlock()
	var err error
	if container == "failing" {
		if _, err = io.WriteString(w, "a line before the failure\n"); err == nil {
			err = errdefs.WithCode(errdefs.ErrUnavailable, "LogReadFailed", "read the log of %q: the disk went away", container)
		}
	} else {
		err = h.Agent.Logs(ctx, id, container, o, w)
	}
	h.logsEnded <- err
	return err
}

func (h *host) lastLogOptions() hostapi.LogOptions {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.logOpts[len(h.logOpts)-1]
}

func (h *host) Exec(ctx context.Context, id, container string, o hostapi.ExecOptions) (int, error) {
	code, err := h.exec(ctx, id, container, o)
	h.execEnded <- err
	return code, err
}

func (h *host) exec(ctx context.Context, id, container string, o hostapi.ExecOptions) (int, error) {
	if len(o.Command) == 0 || (o.Command[0] != "cat" && o.Command[0] != "stty") {
		return h.Agent.Exec(ctx, id, container, o)
	}
	if _, err := h.Agent.Stats(ctx, id); err != nil { // running, as the fake's own exec wants
		return -1, err
	}
	if o.Command[0] == "cat" {
		if _, err := io.Copy(o.Stdout, o.Stdin); err != nil {
			return -1, err
		}
		fmt.Fprintln(o.Stderr, "stdin closed")
		fmt.Fprintln(o.Stdout, "after")
		return 7, nil
	}
	if !o.TTY {
		return -1, fmt.Errorf("stty: not a terminal: %w", errdefs.ErrInvalidArgument)
	}
	fmt.Fprintf(o.Stdout, "%d %d\r\n", o.Size.Rows, o.Size.Cols)
	read := make(chan struct{})
	go func() {
		defer close(read)
		_, _ = io.Copy(io.Discard, o.Stdin)
	}()
	for {
		select {
		case s := <-o.Resize:
			fmt.Fprintf(o.Stdout, "%d %d\r\n", s.Rows, s.Cols)
		case <-read:
			return 0, nil
		case <-ctx.Done():
			return -1, ctx.Err()
		}
	}
}

func (h *host) CheckPorts(ports []api.Port) error {
	for _, p := range ports {
		if p.Port == 22 {
			return errdefs.WithCode(errdefs.ErrConflict, "PortInUse", "Port %d/%s is in use on this host.", p.Port, p.Protocol)
		}
	}
	return h.Agent.CheckPorts(ports)
}

func (h *host) Images() hostapi.Images { return &hostImages{Images: h.Agent.Images(), h: h} }

type hostImages struct {
	hostapi.Images
	h *host
}

func (i *hostImages) Pull(ctx context.Context, ref string, creds []api.ImageRegistryCredential, progress func(hostapi.ImageProgress)) (*hostapi.Image, error) {
	i.h.mu.Lock()
	i.h.pulls = append(i.h.pulls, pullCall{ref: ref, creds: creds, withProgress: progress != nil})
	i.h.mu.Unlock()
	if strings.HasPrefix(ref, "denied/") {
		return nil, fmt.Errorf("pull %s: 401 from the registry: %w", ref, errdefs.ErrUnauthorized)
	}
	for _, p := range i.h.Progress {
		if progress != nil {
			progress(p)
		}
	}
	if i.h.Release != nil {
		select {
		case <-i.h.Release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return i.Images.Pull(ctx, ref, creds, progress)
}

func (h *host) lastPull() pullCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pulls[len(h.pulls)-1]
}

// stream is a writer that a test reads while it is written.
type stream struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func newStream() *stream { return &stream{wrote: make(chan struct{}, 1)} }

func (s *stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.buf.Write(p)
	s.mu.Unlock()
	select {
	case s.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (s *stream) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// waitFor waits until what was written contains want.
func (s *stream) waitFor(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(wait)
	for !strings.Contains(s.String(), want) {
		select {
		case <-s.wrote:
		case <-timeout:
			t.Fatalf("waiting for %q: got only %q", want, s.String())
		}
	}
}

// execResult is what an exec returned.
type execResult struct {
	code int
	err  error
}

// startExec runs an exec through c in the background.
func startExec(ctx context.Context, c hostapi.Host, id string, o hostapi.ExecOptions) <-chan execResult {
	done := make(chan execResult, 1)
	go func() {
		code, err := c.Exec(ctx, id, "app", o)
		done <- execResult{code, err}
	}()
	return done
}

// execWithin runs an exec through c, and fails the test if it does not
// return in time.
func execWithin(t *testing.T, c hostapi.Host, id string, o hostapi.ExecOptions) (int, error) {
	t.Helper()
	r := receive(t, startExec(t.Context(), c, id, o), fmt.Sprintf("exec %q", o.Command))
	return r.code, r.err
}

// receive waits for what c gives: what returned, or ended.
func receive[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(wait):
		t.Fatalf("%s did not end", what)
		var zero T
		return zero
	}
}

// dialExec opens the exec websocket of the group's container "app" as it
// is, without the client; the test ends it.
func (e *env) dialExec(id string) *websocket.Conn {
	e.t.Helper()
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/v1/groups/" + id + "/containers/app/exec"
	conn, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	return conn
}

// request sends a request of the agent API as it is, with Authorization
// auth (if not ""); the test closes its body.
func (e *env) request(method, path, auth string, body io.Reader, header http.Header) *http.Response {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if n := header.Get("Content-Length"); n != "" {
		fmt.Sscan(n, &req.ContentLength)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// sameError fails unless got is the error want is, as the control plane
// sees it: the same class, ARM code and message.
func sameError(t *testing.T, got, want error, class error) {
	t.Helper()
	switch {
	case want == nil:
		t.Fatal("the direct call did not fail")
	case got == nil:
		t.Fatalf("no error through the API; directly: %v", want)
	case !errdefs.Is(want, class):
		t.Fatalf("the direct call's error %v is not of class %v", want, class)
	case !errdefs.Is(got, class):
		t.Fatalf("error %v (%T) is not of class %v", got, got, class)
	case errdefs.CodeOf(got) != errdefs.CodeOf(want):
		t.Fatalf("code %q, want %q", errdefs.CodeOf(got), errdefs.CodeOf(want))
	case got.Error() != want.Error():
		t.Fatalf("message %q, want %q", got.Error(), want.Error())
	}
	for _, other := range []error{errdefs.ErrNotFound, errdefs.ErrConflict, errdefs.ErrInvalidArgument, errdefs.ErrUnavailable, errdefs.ErrUnauthorized} {
		if errdefs.Is(got, other) != errdefs.Is(want, other) {
			t.Fatalf("error %v: of class %v is %v through the API, %v directly", got, other, errdefs.Is(got, other), errdefs.Is(want, other))
		}
	}
}
