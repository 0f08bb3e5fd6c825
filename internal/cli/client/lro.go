package client

import (
	"context"
	"fmt"
	"net/http"
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
)

// Progress is told each new event of an operation once, in order.
type Progress func(api.Event)

// Wait waits for the long-running operation announced by the headers of a
// response (Azure-AsyncOperation, else Location) to end. It returns nil at
// once when the response announced none, and an *APIError with the
// operation's error code when the operation failed.
func (c *Client) Wait(ctx context.Context, h http.Header, progress Progress) error {
	if u := h.Get("Azure-AsyncOperation"); u != "" {
		return c.waitAsync(ctx, u, retryAfter(h, DefaultPoll), progress)
	}
	if u := h.Get("Location"); u != "" {
		return c.waitLocation(ctx, u, retryAfter(h, DefaultPoll))
	}
	return nil
}

func (c *Client) waitAsync(ctx context.Context, u string, wait time.Duration, progress Progress) error {
	seen := map[string]bool{}
	for {
		r, err := c.Call(ctx, http.MethodGet, u, nil, nil)
		if err != nil {
			return err
		}
		var op api.OperationStatus
		if err := r.Decode(&op); err != nil {
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
			return errdefs.WithCode(errdefs.ErrUnavailable, "", "the operation status at %s has no status", u)
		}
		if err := sleep(ctx, retryAfter(r.Header, wait)); err != nil {
			return err
		}
	}
}

func (c *Client) waitLocation(ctx context.Context, u string, wait time.Duration) error {
	for {
		r, err := c.Call(ctx, http.MethodGet, u, nil, nil)
		if err != nil {
			return err
		}
		if r.StatusCode != http.StatusAccepted {
			return nil
		}
		if err := sleep(ctx, retryAfter(r.Header, wait)); err != nil {
			return err
		}
	}
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
