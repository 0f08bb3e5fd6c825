package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// Poll intervals of long-running operations: Retry-After is honoured, but
// never below MinPoll; without one the client waits DefaultPoll.
const (
	MinPoll     = 200 * time.Millisecond
	DefaultPoll = time.Second
	maxPoll     = 30 * time.Second
	// longPoll is the wait asked of a server that long-polls.
	longPoll = 20 * time.Second
)

// Progress is told each new event of an operation once, in order.
type Progress func(api.Event)

// Poller follows one long-running operation, as ARM announces it in the
// headers of the response that started it: Azure-AsyncOperation (polled
// for an api.OperationStatus), else Location (202 until done). A response
// that announced neither was done at once.
type Poller struct {
	c *Client
	// async or loc is the URL polled; both empty means nothing to wait for.
	async, loc string
	wait       time.Duration
	done       bool
}

// Poller returns the poller of the operation announced by the headers of
// a response (for callers of Do and Call).
func (c *Client) Poller(h http.Header) *Poller {
	p := &Poller{c: c, async: h.Get("Azure-AsyncOperation"), wait: retryAfter(h, DefaultPoll)}
	if p.async == "" {
		p.loc = h.Get("Location")
	}
	p.done = p.async == "" && p.loc == ""
	return p
}

// Wait waits for the long-running operation announced by the headers of a
// response to end; see Poller.Wait.
func (c *Client) Wait(ctx context.Context, h http.Header, progress Progress) error {
	return c.Poller(h).Wait(ctx, progress)
}

// Resume tokens name the kind of URL polled, then the URL.
const (
	tokenAsync    = "AsyncOperation "
	tokenLocation = "Location "
)

// ResumeToken returns a token that ResumePoller turns back into this
// poller, in another process too; it is empty when there is nothing to
// wait for.
func (p *Poller) ResumeToken() string {
	switch {
	case p.async != "":
		return tokenAsync + p.async
	case p.loc != "":
		return tokenLocation + p.loc
	}
	return ""
}

// ResumePoller returns the poller of a ResumeToken.
func (c *Client) ResumePoller(token string) (*Poller, error) {
	h := http.Header{}
	if u, ok := strings.CutPrefix(token, tokenAsync); ok {
		h.Set("Azure-AsyncOperation", u)
	} else if u, ok := strings.CutPrefix(token, tokenLocation); ok {
		h.Set("Location", u)
	} else if token != "" {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "", "%q is not a resume token of an operation", token)
	}
	return c.Poller(h), nil
}

// URL returns the URL polled, or "" when there is nothing to wait for.
func (p *Poller) URL() string { return p.async + p.loc }

// Done reports whether the operation has ended, as far as the poller has
// seen: at once when nothing was announced, else after a poll saw it end.
func (p *Poller) Done() bool { return p.done }

// Operation polls once and returns the operation's status. A Location
// operation has no status document: it reads InProgress while the server
// answers 202, then Succeeded.
func (p *Poller) Operation(ctx context.Context) (*api.OperationStatus, error) {
	op, _, err := p.poll(ctx)
	return op, err
}

func (p *Poller) poll(ctx context.Context) (*api.OperationStatus, http.Header, error) {
	switch {
	case p.async != "":
		// Skiff's server long-polls (Prefer: wait): it answers the moment
		// the operation ends. Others ignore the header.
		r, err := p.c.CallRequest(ctx, &Request{Method: http.MethodGet, Path: p.async,
			Header: http.Header{"Prefer": {"wait=" + strconv.Itoa(int(longPoll/time.Second))}}})
		if err != nil {
			return nil, nil, err
		}
		var op api.OperationStatus
		if err := r.Decode(&op); err != nil {
			return nil, nil, err
		}
		p.done = ended(op.Status)
		return &op, r.Header, nil
	case p.loc != "":
		r, err := p.c.Call(ctx, http.MethodGet, p.loc, nil, nil)
		if err != nil {
			return nil, nil, err
		}
		op := &api.OperationStatus{Status: api.OperationSucceeded}
		if r.StatusCode == http.StatusAccepted {
			op.Status = api.OperationInProgress
		}
		p.done = op.Status == api.OperationSucceeded
		return op, r.Header, nil
	}
	return &api.OperationStatus{Status: api.OperationSucceeded}, nil, nil
}

func ended(status string) bool {
	switch strings.ToLower(status) {
	case "succeeded", "completed", "failed", "canceled", "cancelled":
		return true
	}
	return false
}

// Wait polls until the operation ends, at the pace of the server's
// Retry-After, and tells progress each new event of the operation (only
// Azure-AsyncOperation statuses carry events). It returns nil when the
// operation succeeded, and an *APIError with the operation's error code
// (StatusCode 0, no error class) when it failed or was canceled.
func (p *Poller) Wait(ctx context.Context, progress Progress) error {
	seen := map[string]bool{}
	for {
		op, h, err := p.poll(ctx)
		if err != nil {
			return err
		}
		if op.Properties != nil && progress != nil {
			for _, ev := range op.Properties.Events {
				key := fmt.Sprintf("%s\x00%s\x00%s\x00%d", ev.Name, ev.Message, ev.FirstTimestamp, ev.Count)
				if !seen[key] {
					seen[key] = true
					progress(ev)
				}
			}
		}
		switch strings.ToLower(op.Status) {
		case "succeeded", "completed":
			return nil
		case "failed", "canceled", "cancelled":
			e := &APIError{Code: op.Status, Message: "the operation " + strings.ToLower(op.Status)}
			if op.Error != nil {
				if op.Error.Code != "" {
					e.Code = op.Error.Code
				}
				if op.Error.Message != "" {
					e.Message = op.Error.Message
				}
			}
			return e
		case "":
			return errdefs.WithCode(errdefs.ErrUnavailable, "", "the operation status at %s has no status", p.async)
		}
		if h.Get("Preference-Applied") != "" {
			continue // the server waited already
		}
		if err := sleep(ctx, retryAfter(h, p.wait)); err != nil {
			return err
		}
	}
}

// GetOperation reads the status of operation id of the subscription in
// use, at the location its URL names (Skiff's server finds an operation
// by its id at any location).
func (c *Client) GetOperation(ctx context.Context, location, id string) (*api.OperationStatus, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	var op api.OperationStatus
	if _, err := c.call(ctx, http.MethodGet, p.Location(location)+"/operations/"+url.PathEscape(id), nil, nil, &op); err != nil {
		return nil, err
	}
	return &op, nil
}

// retryAfter reads a Retry-After in seconds, clamped to [MinPoll, 30s].
func retryAfter(h http.Header, def time.Duration) time.Duration {
	d := def
	if s := h.Get("Retry-After"); s != "" {
		if n, err := strconv.ParseFloat(s, 64); err == nil && n >= 0 {
			d = time.Duration(n * float64(time.Second))
		}
	}
	return min(max(d, MinPoll), maxPoll)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
