// Package e2e tests whole features the way a user meets them: the skiff
// binary (server and CLI), real containers, a real registry, and the Azure
// SDK for Go as an unchanged client.
package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// skiffBin is the binary built once for the whole package.
var skiffBin string

func TestMain(m *testing.M) { os.Exit(testenv.RunWithSkiff(m, &skiffBin)) }

// server is a running `skiff server` (testenv's), with the CLI pointed at
// it.
type server struct {
	*testenv.SkiffServer
	t *testing.T
}

// startServer starts skiff server with extra flags on a fresh data dir;
// it is stopped and everything it ran is deleted when the test ends.
func startServer(t *testing.T, flags ...string) *server {
	t.Helper()
	return newServer(t, testenv.SkiffServerOptions{Flags: flags})
}

// newServer starts a server of o on the package's container network
// (ske2e0, e2eSubnet), with a stop grace short enough for the tests.
func newServer(t *testing.T, o testenv.SkiffServerOptions) *server {
	t.Helper()
	o.Binary, o.Bridge, o.Subnet, o.StopGrace = skiffBin, "ske2e0", e2eSubnet, 2*time.Second
	return &server{SkiffServer: testenv.StartSkiffServer(t, o), t: t}
}

// reply is an answer of the server as it came on the wire: its status,
// headers and body, an ARM error's too. Err is what the client made of
// it: an *client.APIError for a status of 400 or more, or the transport's
// error when the server did not answer (Status 0: it may be dying).
type reply struct {
	Status int
	Header http.Header
	Body   []byte
	Err    error
}

// String is the body, or the error when there is no body, for messages.
func (r reply) String() string {
	if len(r.Body) == 0 && r.Err != nil {
		return r.Err.Error()
	}
	return string(r.Body)
}

// send sends a request through the client, with the admin token, and
// returns the answer as it came (the tests check statuses, headers and
// error envelopes that the client's typed methods hide). A string body is
// sent as it is, so that a test can send malformed JSON; any other is
// sent as JSON. It never fails the test, so goroutines may call it.
func (s *server) send(method, path string, body any) reply {
	return s.sendAs(s.Token, method, path, body)
}

// sendAs is send with another token; "" sends none.
func (s *server) sendAs(token, method, path string, body any) reply {
	var r reply
	// The transport keeps the answer before the client reads it.
	keep := roundTrip(func(req *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		r.Status, r.Header = resp.StatusCode, resp.Header
		r.Body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(r.Body))
		return resp, nil
	})
	c, err := client.New(client.Options{Endpoint: s.Endpoint, Token: token, Subscription: s.Subscription, HTTPClient: &http.Client{Transport: keep}})
	if err != nil {
		return reply{Err: err}
	}
	req := &client.Request{Method: method, Path: path}
	if raw, ok := body.(string); ok {
		req.Body, req.ContentType = strings.NewReader(raw), "application/json"
	} else if body != nil {
		req.JSON = body
	}
	resp, err := c.Do(s.t.Context(), req)
	if err == nil {
		resp.Body.Close()
	}
	r.Err = err
	return r
}

// roundTrip is an http.RoundTripper of a function.
type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// skiff runs the CLI against the server and returns stdout, stderr and the
// exit code.
func (s *server) skiff(args ...string) (string, string, int) {
	s.t.Helper()
	return s.skiffIn(nil, args...)
}

func (s *server) skiffIn(stdin io.Reader, args ...string) (string, string, int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, skiffBin, args...)
	cmd.Env = append(os.Environ(), "SKIFF_ENDPOINT="+s.Endpoint, "SKIFF_DATA_DIR="+s.DataDir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errb, stdin
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatalf("skiff %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// mustSkiff runs the CLI and fails the test on a non-zero exit.
func (s *server) mustSkiff(args ...string) string {
	s.t.Helper()
	out, errOut, code := s.skiff(args...)
	if code != 0 {
		s.t.Fatalf("skiff %s: exit %d\nstdout: %s\nstderr: %s\nserver log: %s", strings.Join(args, " "), code, out, errOut, s.LogTail(20))
	}
	return out
}

// registry starts a registry with a busybox image and returns the image
// reference.
func busyboxRegistry(t *testing.T, opts testenv.RegistryOptions) (*testenv.Registry, string) {
	reg := testenv.StartRegistry(t, opts)
	img := testenv.Push(t, reg, "busybox:1", testenv.BusyboxImage(t, testenv.ImageOptions{
		Layers: []testenv.LayerSpec{{Files: map[string]string{"/www/index.html": "<h1>Hello from Skiff</h1>\n"}}},
	}))
	return reg, img
}

// waitHTTP polls url until it answers 200 and returns the body.
func waitHTTP(t *testing.T, url string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return string(b)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered: %v", url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
