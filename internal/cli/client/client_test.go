package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// These tests use small httptest handlers in the shape of docs/api.md, a
// stand-in for the real server.

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
