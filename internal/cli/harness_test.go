// The CLI's tests run the whole command line (cli.Execute) against
// clitest.Server, an httptest stand-in that speaks the HTTP contract of
// docs/api.md. The real server (internal/server) is written separately;
// end-to-end tests against `skiff server` come once it exists.
package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/skiff-sh/skiff/internal/cli"
	"github.com/skiff-sh/skiff/internal/cli/clitest"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
)

type harness struct {
	t   *testing.T
	srv *clitest.Server
	env map[string]string

	stdin     string
	stdinTTY  bool
	stderrTTY bool
	out       *syncBuffer
	// streams, when set, replaces the test streams (out and err are then
	// read from the buffers set on it).
	streams *cmdutil.IOStreams
}

type result struct {
	out, err string
	code     int
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	srv := clitest.New(t)
	srv.AddGroup("rg", "eastus")
	return &harness{t: t, srv: srv, env: map[string]string{
		cmdutil.EnvEndpoint: srv.URL,
		cmdutil.EnvToken:    clitest.Token,
		cmdutil.EnvDataDir:  t.TempDir(),
	}}
}

// run runs `skiff args…` and returns what it printed and its exit code.
func (h *harness) run(args ...string) result {
	h.t.Helper()
	streams, out, errOut := cmdutil.Test(h.stdin)
	streams.StdinTTY, streams.StderrTTY = h.stdinTTY, h.stderrTTY
	if h.streams != nil {
		streams = h.streams
		streams.Out, streams.ErrOut = out, errOut
	}
	if h.out != nil {
		streams.Out = h.out
	}
	f := cmdutil.New(streams, func(k string) string { return h.env[k] })
	code := cli.Execute(context.Background(), args, f)
	r := result{out: out.String(), err: errOut.String(), code: code}
	if h.out != nil {
		r.out = h.out.String()
	}
	return r
}

// ok runs args and fails the test unless the exit code is 0.
func (h *harness) ok(args ...string) result {
	h.t.Helper()
	r := h.run(args...)
	if r.code != 0 {
		h.t.Fatalf("skiff %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.err)
	}
	return r
}

// fails runs args and checks the exit code and the one-line error.
func (h *harness) fails(code int, wantErr string, args ...string) result {
	h.t.Helper()
	r := h.run(args...)
	if r.code != code {
		h.t.Fatalf("skiff %s: exit %d, want %d (stderr %q)", strings.Join(args, " "), r.code, code, r.err)
	}
	if strings.Count(r.err, "\n") != 1 || !strings.HasPrefix(r.err, "error: ") {
		h.t.Fatalf("skiff %s: stderr %q is not one error line", strings.Join(args, " "), r.err)
	}
	if !strings.Contains(r.err, wantErr) {
		h.t.Fatalf("skiff %s: stderr %q does not say %q", strings.Join(args, " "), r.err, wantErr)
	}
	return r
}

// assertJSON compares JSON documents by value.
func assertJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want is not JSON: %v: %s", err, want)
	}
	if !reflect.DeepEqual(g, w) {
		gi, _ := json.MarshalIndent(g, "", "  ")
		wi, _ := json.MarshalIndent(w, "", "  ")
		t.Fatalf("JSON differs\n got: %s\nwant: %s", gi, wi)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func sprintf(format string, a ...any) string { return fmt.Sprintf(format, a...) }
