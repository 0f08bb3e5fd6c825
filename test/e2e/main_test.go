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
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// skiffBin is the binary built once for the whole package.
var skiffBin string

func TestMain(m *testing.M) { os.Exit(testenv.RunWithSkiff(m, &skiffBin)) }

// server is the Skiff under test, with the CLI pointed at it: one `skiff
// server` (testenv's) in the embedded mode, or, with SKIFF_TEST_MODE=cluster
// (testenv.ModeEnv), a cluster: etcd, a `skiff server --agent=false` and one
// `skiff agent` that runs the groups (testenv.SkiffServerOptions.Cluster).
// Stop, Start and Log stand for the whole of it, as the one process of the
// embedded mode does: a test that kills the server and starts it again
// kills and restarts the cluster's server and its agent, so that both the
// control plane and the host runtime recover, and the log it reads is the
// server's and the agent's. The API calls go to the server either way.
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
// (ske2e0, e2eSubnet), with a stop grace short enough for the tests, in
// the mode testenv.ModeEnv picks.
func newServer(t *testing.T, o testenv.SkiffServerOptions) *server {
	t.Helper()
	o.Binary, o.Bridge, o.Subnet, o.StopGrace = skiffBin, "ske2e0", e2eSubnet, 2*time.Second
	o.Cluster = testenv.ClusterMode(t)
	return &server{SkiffServer: testenv.StartSkiffServer(t, o), t: t}
}

// cluster reports whether the Skiff under test is a cluster.
func (s *server) cluster() bool { return s.Agent != nil }

// waitGroupEvent polls a group until its instance view has the event
// name with a message that contains inMsg, and returns the group's
// instance view; it fails the test after timeout.
func (s *server) waitGroupEvent(rg, group, name, inMsg string, timeout time.Duration) *api.GroupInstanceView {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		g, err := s.Client.GetContainerGroup(s.t.Context(), rg, group)
		if err == nil && g.Properties.InstanceView != nil {
			for _, e := range g.Properties.InstanceView.Events {
				if e.Name == name && strings.Contains(e.Message, inMsg) {
					return g.Properties.InstanceView
				}
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s/%s has no %s event mentioning %q after %s: %v %+v", rg, group, name, inMsg, timeout, err, g)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hostDir is the data dir of the host runtime that runs the groups: the
// server's, or the cluster's agent's.
func (s *server) hostDir() string {
	if s.Agent != nil {
		return s.Agent.DataDir
	}
	return s.DataDir
}

// Stop sends sig to the agent of a cluster and then to the server, and
// waits until they have exited.
func (s *server) Stop(sig syscall.Signal) {
	if s.Agent != nil {
		s.Agent.Stop(sig)
	}
	s.SkiffServer.Stop(sig)
}

// Start starts the server again and then the agent of a cluster, which
// joins it again, and waits until the agent's host is Ready.
func (s *server) Start() {
	s.t.Helper()
	s.SkiffServer.Start()
	if s.Agent != nil {
		s.Agent.Start()
		s.WaitHosts(1)
	}
}

// Log is the server's output so far, and then a cluster's agent's.
func (s *server) Log() string {
	if s.Agent == nil {
		return s.SkiffServer.Log()
	}
	return s.SkiffServer.Log() + s.Agent.Log()
}

// LogTail is the last n lines of the server's output, and of a cluster's
// agent's, for the messages of failed tests.
func (s *server) LogTail(n int) string {
	if s.Agent == nil {
		return s.SkiffServer.LogTail(n)
	}
	return s.SkiffServer.LogTail(n) + "\nagent log:\n" + s.Agent.LogTail(n)
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
	return testenv.WaitHTTP(t, url, timeout)
}
