package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// These are the client's protocol tests: small httptest handlers in the
// shape of docs/api.md check what the client sends and how it reads the
// answers (LRO polling, nextLink, error classes, the exec websocket). The
// tests of the client against the real server are elsewhere (test/e2e and
// the CLI's tests).

func TestListFollowsNextLinkOnTheEndpoint(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization")+" "+r.URL.RequestURI())
		mu.Unlock()
		if r.URL.Query().Get("$skiptoken") == "" {
			// An absolute nextLink naming another host: the client must stay on its endpoint.
			fmt.Fprint(w, `{"value":[{"n":1},{"n":2}],"nextLink":"http://elsewhere.invalid/subscriptions?$skiptoken=2&api-version=2023-05-01"}`)
			return
		}
		fmt.Fprint(w, `{"value":[{"n":3}]}`)
	}))
	defer srv.Close()
	c, err := New(Options{Endpoint: strings.TrimPrefix(srv.URL, "http://"), Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	items, err := c.List(context.Background(), "/subscriptions", nil)
	if err != nil || len(items) != 3 {
		t.Fatalf("items %s, err %v", items, err)
	}
	want := []string{"Bearer tok /subscriptions?api-version=2023-05-01", "Bearer tok /subscriptions?%24skiptoken=2&api-version=2023-05-01"}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("requests %q, want %q", seen, want)
	}
}

func TestWait(t *testing.T) {
	var mu sync.Mutex
	var polls []time.Time
	status := func(n int) string { return "InProgress" }
	reset := func(s func(int) string) {
		mu.Lock()
		defer mu.Unlock()
		polls, status = nil, s
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(polls)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		polls = append(polls, time.Now())
		n := len(polls)
		st := status(n)
		mu.Unlock()
		w.Header().Set("Retry-After", "0")
		fmt.Fprintf(w, `{"id":"x","status":%q,"properties":{"events":[{"name":"Pulling","count":1}]},"error":%s}`, st, r.URL.Query().Get("err"))
	}))
	defer srv.Close()
	c, _ := New(Options{Endpoint: srv.URL})
	ctx := context.Background()

	// Azure-AsyncOperation until Succeeded, at least 200 ms apart; each
	// event reported once.
	reset(func(n int) string {
		if n < 3 {
			return "InProgress"
		}
		return "succeeded"
	})
	var events []string
	h := http.Header{"Azure-Asyncoperation": {srv.URL + "/op?api-version=2018-06-01&err=null"}}
	if err := c.Wait(ctx, h, func(e api.Event) { events = append(events, e.Name) }); err != nil {
		t.Fatal(err)
	}
	if count() != 3 || len(events) != 1 {
		t.Fatalf("%d polls, events %v", count(), events)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(polls); i++ {
		if d := polls[i].Sub(polls[i-1]); d < MinPoll {
			t.Errorf("polls %v apart, below %v", d, MinPoll)
		}
	}

}

func TestWaitFailedAndLocation(t *testing.T) {
	var mu sync.Mutex
	polls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		polls++
		n := polls
		mu.Unlock()
		w.Header().Set("Retry-After", "0")
		if r.URL.Path == "/loc" {
			if n < 3 {
				w.WriteHeader(http.StatusAccepted)
			}
			return
		}
		fmt.Fprintf(w, `{"id":"x","status":"Failed","error":%s}`, r.URL.Query().Get("err"))
	}))
	defer srv.Close()
	c, _ := New(Options{Endpoint: srv.URL})
	ctx := context.Background()

	// Failed carries the operation's error and no error class (exit 1).
	h := http.Header{}
	h.Set("Azure-AsyncOperation", srv.URL+`/op?err={"code":"InaccessibleImage","message":"no such image"}`)
	err := c.Wait(ctx, h, nil)
	var ae *APIError
	if !errors.As(err, &ae) || err.Error() != "(InaccessibleImage) no such image" || errors.Unwrap(err) != nil {
		t.Errorf("failed operation: %v", err)
	}

	// Location: 202 until done.
	mu.Lock()
	polls = 0
	mu.Unlock()
	err = c.Wait(ctx, http.Header{"Location": {srv.URL + "/loc"}}, nil)
	mu.Lock()
	defer mu.Unlock()
	if err != nil || polls != 3 {
		t.Errorf("location poll: %d polls, %v", polls, err)
	}
	// No header: nothing to wait for.
	if err := c.Wait(ctx, http.Header{}, nil); err != nil {
		t.Error(err)
	}
}

func TestRetryAfter(t *testing.T) {
	for in, want := range map[string]time.Duration{"": DefaultPoll, "0": MinPoll, "0.5": 500 * time.Millisecond, "2": 2 * time.Second, "x": DefaultPoll, "3600": 30 * time.Second} {
		h := http.Header{}
		if in != "" {
			h.Set("Retry-After", in)
		}
		if got := retryAfter(h, DefaultPoll); got != want {
			t.Errorf("Retry-After %q: %v, want %v", in, got, want)
		}
	}
}

func TestErrorClasses(t *testing.T) {
	for status, class := range map[int]error{400: errdefs.ErrInvalidArgument, 401: errdefs.ErrUnauthorized, 403: errdefs.ErrUnauthorized,
		404: errdefs.ErrNotFound, 409: errdefs.ErrConflict, 500: errdefs.ErrUnavailable, 503: errdefs.ErrUnavailable} {
		if err := (&APIError{StatusCode: status}); !errors.Is(err, class) {
			t.Errorf("%d is not %v", status, class)
		}
	}
	if _, err := New(Options{Endpoint: "ftp://x"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("ftp endpoint: %v", err)
	}
}

// newTyped returns a client of h with subscription "s" set, so that
// requests go straight to their paths.
func newTyped(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := New(Options{Endpoint: srv.URL, Subscription: "s"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTypedListFollowsNextLinkAndKeepsRawJSON(t *testing.T) {
	const cgs = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ContainerInstance/containerGroups"
	var paths []string
	c := newTyped(t, func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.RequestURI())
		if r.URL.Path != cgs {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("$skiptoken") == "" {
			fmt.Fprintf(w, `{"value":[{"name":"a","extra":1}],"nextLink":"http://%s%s?$skiptoken=1&api-version=2023-05-01"}`, r.Host, cgs)
			return
		}
		fmt.Fprint(w, `{"value":[{"name":"b","tags":{"k":"v"}}]}`)
	})
	var raw json.RawMessage
	list, err := c.ListContainerGroups(WithRawJSON(context.Background(), &raw), "rg")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "a" || list[1].Tags["k"] != "v" {
		t.Errorf("list %+v", list)
	}
	// The raw JSON keeps the field the api types do not know.
	if string(raw) != `[{"name":"a","extra":1},{"name":"b","tags":{"k":"v"}}]` {
		t.Errorf("raw %s", raw)
	}
	if len(paths) != 2 {
		t.Errorf("requests %q", paths)
	}
}

func TestPollerOfATypedCall(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	polls := 0
	c := newTyped(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.RequestURI())
		mu.Unlock()
		w.Header().Set("Retry-After", "0")
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/web/stop"):
			w.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodDelete:
			w.Header().Set("Azure-AsyncOperation", "http://"+r.Host+"/subscriptions/s/providers/Microsoft.ContainerInstance/locations/local/operations/op1?api-version=2023-05-01")
			w.WriteHeader(http.StatusAccepted)
		case strings.HasSuffix(r.URL.Path, "/operations/op1"):
			mu.Lock()
			polls++
			n := polls
			mu.Unlock()
			if n < 2 {
				fmt.Fprint(w, `{"id":"x","status":"InProgress"}`)
				return
			}
			fmt.Fprint(w, `{"id":"x","status":"Canceled","error":{"code":"OperationCanceled","message":"a delete overtook it"}}`)
		default:
			http.NotFound(w, r)
		}
	})
	ctx := context.Background()
	grace := 1500 * time.Millisecond
	p, err := c.DeleteContainerGroup(ctx, "rg", "web", DeleteOptions{GracePeriod: &grace})
	if err != nil || p.Done() {
		t.Fatalf("delete: %v, done %v", err, p != nil && p.Done())
	}
	op, err := p.Operation(ctx)
	if err != nil || op.Status != api.OperationInProgress || p.Done() {
		t.Fatalf("first poll: %+v, %v", op, err)
	}
	// A resumed poller polls the same operation.
	p, err = c.ResumePoller(p.ResumeToken())
	if err != nil {
		t.Fatal(err)
	}
	err = p.Wait(ctx, nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != "OperationCanceled" || ae.StatusCode != 0 || !p.Done() {
		t.Errorf("canceled operation: %v", err)
	}
	mu.Lock()
	if seen[0] != "DELETE /subscriptions/s/resourcegroups/rg/providers/Microsoft.ContainerInstance/containerGroups/web?api-version=2023-05-01&gracePeriodSeconds=1" {
		t.Errorf("delete sent %s", seen[0])
	}
	mu.Unlock()
	// Stop answers 204 at once: its poller is done.
	if p, err = c.StopContainerGroup(ctx, "rg", "web"); err != nil || !p.Done() || p.Wait(ctx, nil) != nil {
		t.Errorf("stop: %v", err)
	}
	if _, err = c.StopContainerGroup(ctx, "rg", "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("stop of a missing group: %v", err)
	}
}

func TestLogs(t *testing.T) {
	c := newTyped(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/containerGroups/web/containers/app/logs") {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("follow") == "true" {
			fmt.Fprint(w, "streamed "+r.URL.RawQuery)
			return
		}
		fmt.Fprintf(w, `{"content":%q}`, "all "+r.URL.RawQuery)
	})
	ctx := context.Background()
	tail := 0
	for _, tc := range []struct {
		o    LogOptions
		want string
	}{
		{LogOptions{}, "all api-version=2023-05-01"},
		{LogOptions{Tail: &tail, Timestamps: true, Previous: true}, "all api-version=2023-05-01&previous=true&tail=0&timestamps=true"},
		{LogOptions{Tail: &tail, Follow: true}, "streamed api-version=2023-05-01&follow=true&tail=0"},
	} {
		rc, err := c.Logs(ctx, "rg", "web", "app", tc.o)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != tc.want {
			t.Errorf("%+v: %q, want %q", tc.o, b, tc.want)
		}
	}
	if _, err := c.Logs(ctx, "rg", "web", "nope", LogOptions{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("logs of a missing container: %v", err)
	}
}

func TestExecSession(t *testing.T) {
	type frame struct {
		kind int
		data string
	}
	got := make(chan frame, 16)
	var wsURL string
	c := newTyped(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/containers/app/exec"):
			var req api.ExecRequest
			if json.NewDecoder(r.Body).Decode(&req) != nil || req.Command != "sh" {
				http.Error(w, "bad exec request", http.StatusBadRequest)
				return
			}
			fmt.Fprintf(w, `{"webSocketUri":%q,"password":"pw"}`, wsURL)
		case r.URL.Path == "/ws":
			conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer conn.Close()
			// The password, the resize, the input.
			for range 3 {
				kind, data, err := conn.ReadMessage()
				if err != nil {
					return
				}
				got <- frame{kind, string(data)}
			}
			_ = conn.WriteMessage(websocket.BinaryMessage, []byte("hello\r\n"))
			_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "exit code 7"))
		default:
			http.NotFound(w, r)
		}
	})
	wsURL = "ws" + strings.TrimPrefix(c.Endpoint(), "http") + "/ws"
	ctx := context.Background()
	s, err := c.Exec(ctx, "rg", "web", "app", api.ExecRequest{Command: "sh"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Resize(40, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("ls\x04")); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(s)
	if err != nil || string(out) != "hello\r\n" || s.ExitCode() != 7 {
		t.Errorf("output %q, err %v, exit code %d", out, err, s.ExitCode())
	}
	want := []frame{{websocket.TextMessage, "pw"}, {websocket.TextMessage, `{"rows":40,"cols":100}`}, {websocket.BinaryMessage, "ls\x04"}}
	for _, w := range want {
		if f := <-got; f != w {
			t.Errorf("server got %+v, want %+v", f, w)
		}
	}

	// A session the server drops without a close is of class ErrUnavailable.
	wsURL = "ws" + strings.TrimPrefix(c.Endpoint(), "http") + "/nows"
	if _, err := c.Exec(ctx, "rg", "web", "app", api.ExecRequest{Command: "sh"}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("dial of a missing socket: %v", err)
	}
}

// A typed call whose answer is not the JSON expected fails with class
// ErrUnavailable (a proxy's HTML page, say), and sends the query it is given.
func TestTypedCallOfABodyThatIsNotJSON(t *testing.T) {
	var query string
	c := newTyped(t, func(w http.ResponseWriter, r *http.Request) {
		query = r.URL.RawQuery
		fmt.Fprint(w, "<html>")
	})
	_, err := c.Metrics(context.Background(), "rg", "web", url.Values{"metricnames": {"CpuUsage"}})
	if !errors.Is(err, errdefs.ErrUnavailable) || query != "api-version=2023-05-01&metricnames=CpuUsage" {
		t.Errorf("metrics of an HTML page: %v (query %q)", err, query)
	}
}
