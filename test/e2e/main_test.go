// Package e2e tests whole features the way a user meets them: the skiff
// binary (server and CLI), real containers, a real registry, and the Azure
// SDK for Go as an unchanged client.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/testenv"
)

// skiffBin is the binary built once for the whole package.
var skiffBin string

func TestMain(m *testing.M) {
	bin, dir, err := testenv.BuildSkiff()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	skiffBin = bin
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running `skiff server`.
type server struct {
	t        *testing.T
	dataDir  string
	endpoint string
	token    string
	sub      string
	cmd      *exec.Cmd
	listen   string
	// flags are extra skiff server flags (startServerWith).
	flags []string
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServer starts skiff server on a fresh data dir; it is stopped and
// everything it ran is deleted when the test ends.
func startServer(t *testing.T) *server {
	t.Helper()
	return startServerWith(t)
}

// startServerWith is startServer with extra skiff server flags.
func startServerWith(t *testing.T, flags ...string) *server {
	t.Helper()
	testenv.RequireRoot(t)
	s := &server{t: t, dataDir: t.TempDir(), listen: freePort(t), flags: flags}
	s.endpoint = "http://" + s.listen
	s.start()
	t.Cleanup(func() {
		// Delete every group through the API so the host is left clean.
		for _, rg := range s.listRGs() {
			s.do("DELETE", "/subscriptions/"+s.sub+"/resourcegroups/"+rg, nil)
		}
		deadline := time.Now().Add(120 * time.Second)
		for time.Now().Before(deadline) && len(s.listRGs()) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		s.stop(syscall.SIGTERM)
	})
	return s
}

func (s *server) start() {
	s.t.Helper()
	s.cmd = exec.Command(skiffBin, "server", "--listen", s.listen, "--data-dir", s.dataDir, "--public-address", "127.0.0.1", "--log-level", "warn", "--stop-grace", "2s",
		"--bridge", "ske2e0", "--subnet", e2eSubnet)
	s.cmd.Args = append(s.cmd.Args, s.flags...)
	logf, _ := os.Create(filepath.Join(s.dataDir, "server.log"))
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.endpoint + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(filepath.Join(s.dataDir, "server.log"))
			s.t.Fatalf("server did not come up: %s", data)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tok, err := os.ReadFile(filepath.Join(s.dataDir, "admin.token"))
	if err != nil {
		s.t.Fatal(err)
	}
	s.token = strings.TrimSpace(string(tok))
	var subs struct {
		Value []struct {
			SubscriptionID string `json:"subscriptionId"`
		} `json:"value"`
	}
	if code := s.do("GET", "/subscriptions", &subs); code != 200 || len(subs.Value) != 1 {
		s.t.Fatalf("GET /subscriptions: %d %+v", code, subs)
	}
	s.sub = subs.Value[0].SubscriptionID
}

func (s *server) stop(sig syscall.Signal) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(sig)
	s.cmd.Wait()
	s.cmd = nil
}

func (s *server) listRGs() []string {
	var out struct {
		Value []struct{ Name string } `json:"value"`
	}
	if s.cmd == nil {
		return nil
	}
	s.do("GET", "/subscriptions/"+s.sub+"/resourcegroups", &out)
	var names []string
	for _, v := range out.Value {
		names = append(names, v.Name)
	}
	return names
}

// request sends an authenticated API request and returns status, headers
// and body.
func (s *server) request(method, path string, body any, hdr map[string]string) (int, http.Header, []byte) {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		rd = bytes.NewReader(data)
	}
	u := s.endpoint + path
	if !strings.Contains(path, "api-version=") {
		if strings.Contains(path, "?") {
			u += "&api-version=2023-05-01"
		} else {
			u += "?api-version=2023-05-01"
		}
	}
	req, _ := http.NewRequest(method, u, rd)
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, data
}

func (s *server) do(method, path string, out any) int {
	s.t.Helper()
	code, _, data := s.request(method, path, nil, nil)
	if out != nil && len(data) > 0 {
		json.Unmarshal(data, out)
	}
	return code
}

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
	cmd.Env = append(os.Environ(), "SKIFF_ENDPOINT="+s.endpoint, "SKIFF_DATA_DIR="+s.dataDir)
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
		s.t.Fatalf("skiff %s: exit %d\nstdout: %s\nstderr: %s\nserver log: %s", strings.Join(args, " "), code, out, errOut, s.logTail())
	}
	return out
}

func (s *server) logTail() string {
	f, err := os.Open(filepath.Join(s.dataDir, "server.log"))
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
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
