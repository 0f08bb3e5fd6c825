package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/lifecycle"
	"github.com/skiff-sh/skiff/internal/store"
)

// request sends one request with extra headers.
func (e *testEnv) request(t *testing.T, method, path, body string, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req, err := http.NewRequest(method, e.http.URL+path+sep+"api-version=2023-05-01", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if header != nil {
		req.Header = header.Clone()
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

// TestPutAnswersFinished: a group that runs within the window is answered
// finished, with no operation to poll: 201 and provisioningState Succeeded
// with the running containers, as ARM's pollers take for done. The same
// PUT again is a 200, finished too.
func TestPutAnswersFinished(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.SyncWindow = 10 * time.Second })
	for _, want := range []int{201, 200} {
		code, h, body := e.request(t, "PUT", e.cgPath("web"), publicGroup("busybox"), nil)
		if code != want || h.Get("Azure-AsyncOperation") != "" || h.Get("Location") != "" {
			t.Fatalf("PUT: %d, Azure-AsyncOperation %q, Location %q: %s; want %d without an operation",
				code, h.Get("Azure-AsyncOperation"), h.Get("Location"), body, want)
		}
		var cg api.ContainerGroup
		if err := json.Unmarshal(body, &cg); err != nil {
			t.Fatal(err)
		}
		wantState(t, cg, lifecycle.Succeeded, lifecycle.GroupRunning)
	}
}

// TestPutGoesAsync: a group that is not running when the window ends is
// answered with its operation as before (Pending, Azure-AsyncOperation);
// so is every PUT of a client that prefers respond-async.
func TestPutGoesAsync(t *testing.T) {
	var hold atomic.Bool
	hold.Store(true)
	e := newTestEnv(t, func(c *Config) { c.SyncWindow = 300 * time.Millisecond })
	e.host.Hold = func(*store.ContainerGroup) bool { return hold.Load() }
	code, h, body := e.request(t, "PUT", e.cgPath("slow"), publicGroup("busybox"), nil)
	if code != 201 || h.Get("Azure-AsyncOperation") == "" {
		t.Fatalf("PUT of a group that does not run: %d, Azure-AsyncOperation %q: %s", code, h.Get("Azure-AsyncOperation"), body)
	}
	if got := provisioningOf(t, body); got != string(lifecycle.Pending) {
		t.Errorf("PUT answered %q, want Pending", got)
	}
	hold.Store(false)
	code, h, body = e.request(t, "PUT", e.cgPath("eager"), groupJSON(nil), http.Header{"Prefer": {"respond-async"}})
	if code != 201 || h.Get("Azure-AsyncOperation") == "" {
		t.Fatalf("PUT with Prefer: respond-async: %d, Azure-AsyncOperation %q: %s", code, h.Get("Azure-AsyncOperation"), body)
	}
}

// TestOperationLongPoll: with "Prefer: wait=N" the status of a running
// operation answers when the operation ends, not at once; without it,
// at once with InProgress and Retry-After.
func TestOperationLongPoll(t *testing.T) {
	var hold atomic.Bool
	hold.Store(true)
	e := newTestEnv(t, nil)
	e.host.Hold = func(*store.ContainerGroup) bool { return hold.Load() }
	_, op, body := e.send(t, "PUT", e.cgPath("web"), publicGroup("busybox"))
	if op == "" {
		t.Fatalf("PUT without an operation: %s", body)
	}
	status := func(h http.Header) (string, http.Header) {
		code, rh, body := e.request(t, "GET", op, "", h)
		if code != 200 {
			t.Fatalf("GET %s: %d %s", op, code, body)
		}
		var st api.OperationStatus
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatal(err)
		}
		return st.Status, rh
	}
	if st, h := status(nil); st != api.OperationInProgress || h.Get("Retry-After") == "" {
		t.Fatalf("plain poll: %s, Retry-After %q; want InProgress with Retry-After", st, h.Get("Retry-After"))
	}
	// Released while the long poll waits: the poll answers Succeeded.
	released := make(chan struct{})
	go func() {
		time.Sleep(300 * time.Millisecond)
		hold.Store(false)
		e.host.Kick(t.Context(), e.sub, "rg", "web")
		close(released)
	}()
	st, h := status(http.Header{"Prefer": {"wait=20"}})
	select {
	case <-released:
	default:
		t.Errorf("the long poll answered %s before the operation could end", st)
	}
	if st != api.OperationSucceeded || h.Get("Preference-Applied") != "wait=20" {
		t.Fatalf("long poll: %s, Preference-Applied %q; want Succeeded, wait=20", st, h.Get("Preference-Applied"))
	}
}
