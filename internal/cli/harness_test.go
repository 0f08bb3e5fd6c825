// The CLI's tests run the whole command line (cli.Execute) against the
// real API server, in-process on a real store with the fake host agent
// (testenv/apiserver): they are about the CLI's grammar, output, exit
// codes and the requests it sends. One middleware sits in front of the
// server, the recorder: it keeps what the CLI sent (requests, and the
// frames of its exec and attach sessions) for the tests that check it, and
// lets a test inject the few failures the real server cannot be made to
// produce.
package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
	"github.com/skiff-sh/skiff/internal/testenv/apiserver"
)

// epoch is the fake agent's clock, so that the events and start times it
// reports can be expected.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type harness struct {
	t   *testing.T
	srv *apiserver.Server
	rec *recorder
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

// newHarness starts a server with a resource group "rg" in eastus.
func newHarness(t *testing.T) *harness {
	t.Helper()
	rec := &recorder{t: t}
	srv := apiserver.Start(t, rec.wrap)
	srv.Agent.Clock = func() time.Time { return epoch }
	h := &harness{t: t, srv: srv, rec: rec, env: map[string]string{
		cmdutil.EnvEndpoint: srv.URL,
		cmdutil.EnvToken:    srv.Token,
		cmdutil.EnvDataDir:  t.TempDir(),
	}}
	h.addGroup("rg", "eastus")
	return h
}

// seed runs f with a client of the server, unrecorded: what a test sets up
// is not what the CLI sent.
func (h *harness) seed(f func(ctx context.Context, c *client.Client) error) {
	h.t.Helper()
	h.rec.pause(true)
	defer h.rec.pause(false)
	if err := f(h.t.Context(), h.srv.Client(h.t)); err != nil {
		h.t.Fatalf("seed: %v", err)
	}
}

// addGroup creates a resource group.
func (h *harness) addGroup(name, location string) {
	h.t.Helper()
	h.seed(func(ctx context.Context, c *client.Client) error {
		_, err := c.CreateResourceGroup(ctx, name, api.ResourceGroup{Location: location})
		return err
	})
}

// addContainerGroup PUTs a container group (body is the ARM JSON) and
// waits until it is Succeeded. It reads the group every 10 ms rather than
// polling the operation at the server's Retry-After of a second: the tests
// that check the CLI's waiting wait that second themselves.
func (h *harness) addContainerGroup(rg, body string) {
	h.t.Helper()
	var cg struct{ Name string }
	if err := json.Unmarshal([]byte(body), &cg); err != nil {
		h.t.Fatalf("addContainerGroup: %v", err)
	}
	h.seed(func(ctx context.Context, c *client.Client) error {
		if _, _, err := c.PutContainerGroup(ctx, rg, cg.Name, json.RawMessage(body), ""); err != nil {
			return err
		}
		var state string
		if !waitFor(func() bool {
			got, err := c.GetContainerGroup(ctx, rg, cg.Name)
			if err == nil {
				state = got.Properties.ProvisioningState
			}
			return state == "Succeeded"
		}) {
			return fmt.Errorf("%s is %s, not Succeeded", cg.Name, state)
		}
		return nil
	})
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

// request is one request the server received.
type request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
	// Response and Answer are the header and the body of the answer, as
	// far as they were written (before the client could read them).
	Response http.Header
	Answer   []byte
}

// frame is a websocket data message the server received.
type frame struct {
	Type int
	Data string
}

// recorder is the middleware in front of the server.
type recorder struct {
	t      testing.TB
	mu     sync.Mutex
	paused bool
	reqs   []*request
	frames []frame
	// inject, when set, is asked first; it returns true when it answered.
	// It is for failures the real server cannot be made to produce (an
	// HTML 500, a socket that drops), never for what it can.
	inject func(w http.ResponseWriter, r *http.Request) bool
	// served, when set, is told of each request once it was answered.
	served func(*request)
}

func (rec *recorder) pause(on bool) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.paused = on
}

// setInject sets rec.inject (nil: none).
func (rec *recorder) setInject(f func(w http.ResponseWriter, r *http.Request) bool) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.inject = f
}

// setServed sets rec.served (nil: none).
func (rec *recorder) setServed(f func(*request)) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.served = f
}

func (rec *recorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		req := &request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body}
		rec.mu.Lock()
		record, inject, served := !rec.paused, rec.inject, rec.served
		if record {
			rec.reqs = append(rec.reqs, req)
		}
		rec.mu.Unlock()
		tw := &tapWriter{ResponseWriter: w, rec: rec, req: req, record: record}
		if inject == nil || !inject(tw, r) {
			next.ServeHTTP(tw, r)
		}
		if served != nil {
			served(req)
		}
	})
}

// requests returns the requests received so far.
func (rec *recorder) requests() []request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := make([]request, len(rec.reqs))
	for i, r := range rec.reqs {
		out[i] = *r
	}
	return out
}

// last returns the last request with this method whose path ends with
// suffix (case-insensitively), or fails the test.
func (rec *recorder) last(method, suffix string) request {
	rec.t.Helper()
	reqs := rec.requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Method == method && strings.HasSuffix(strings.ToLower(reqs[i].Path), strings.ToLower(suffix)) {
			return reqs[i]
		}
	}
	rec.t.Fatalf("no %s request to …%s; got %v", method, suffix, reqs)
	return request{}
}

// polled reports whether the operation the answer to r announced
// (Azure-AsyncOperation) was polled.
func (rec *recorder) polled(r request) bool {
	rec.t.Helper()
	u, err := url.Parse(r.Response.Get("Azure-AsyncOperation"))
	if err != nil || u.Path == "" {
		rec.t.Fatalf("%s %s announced no operation: %v", r.Method, r.Path, r.Response)
	}
	for _, p := range rec.requests() {
		if p.Method == http.MethodGet && strings.EqualFold(p.Path, u.Path) {
			return true
		}
	}
	return false
}

// received returns the websocket data messages received, in order.
func (rec *recorder) received() []frame {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]frame(nil), rec.frames...)
}

// tapWriter records the answer to req as it is written, and hands the
// server a connection that records the websocket frames the client sends
// on it.
type tapWriter struct {
	http.ResponseWriter
	rec         *recorder
	req         *request
	record      bool
	wroteHeader bool
}

func (w *tapWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.wroteHeader = true
		w.rec.mu.Lock()
		w.req.Response = w.Header().Clone()
		w.rec.mu.Unlock()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *tapWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.rec.mu.Lock()
	w.req.Answer = append(w.req.Answer, p...)
	w.rec.mu.Unlock()
	return w.ResponseWriter.Write(p)
}

func (w *tapWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (w *tapWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *tapWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil || !w.record {
		return conn, brw, err
	}
	tc := &tapConn{Conn: conn, r: brw.Reader, rec: w.rec}
	return tc, bufio.NewReadWriter(bufio.NewReader(tc), brw.Writer), nil
}

// tapConn parses the frames a websocket client sends (RFC 6455 section
// 5.2: masked, maybe fragmented) as the server reads them, and records the
// data messages; control frames (close, ping, pong) are not recorded.
type tapConn struct {
	net.Conn
	r   io.Reader
	rec *recorder

	buf    []byte
	op     byte
	msg    []byte
	broken bool
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.buf = append(c.buf, p[:n]...)
	for !c.broken && c.next() {
	}
	return n, err
}

// next consumes one whole frame from c.buf, if there is one.
func (c *tapConn) next() bool {
	b := c.buf
	if len(b) < 2 {
		return false
	}
	fin, op, masked := b[0]&0x80 != 0, b[0]&0x0f, b[1]&0x80 != 0
	n, hdr := uint64(b[1]&0x7f), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return false
		}
		n, hdr = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return false
		}
		n, hdr = binary.BigEndian.Uint64(b[2:]), 10
	}
	var key []byte
	if masked {
		if len(b) < hdr+4 {
			return false
		}
		key, hdr = b[hdr:hdr+4], hdr+4
	}
	if n > 1<<24 {
		c.broken = true // not a frame the CLI sends: stop parsing
		return false
	}
	if uint64(len(b)-hdr) < n {
		return false
	}
	payload := append([]byte(nil), b[hdr:hdr+int(n)]...)
	for i := range payload {
		if masked {
			payload[i] ^= key[i%4]
		}
	}
	c.buf = b[hdr+int(n):]
	if op >= 8 {
		return true
	}
	if op != 0 {
		c.op = op
	}
	c.msg = append(c.msg, payload...)
	if fin {
		c.rec.mu.Lock()
		c.rec.frames = append(c.rec.frames, frame{Type: int(c.op), Data: string(c.msg)})
		c.rec.mu.Unlock()
		c.msg = nil
	}
	return true
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

// waitFor polls cond until it holds or ten seconds have passed.
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}

func sprintf(format string, a ...any) string { return fmt.Sprintf(format, a...) }
