// Package client is the public Go client of Skiff's HTTP API (the ARM
// Microsoft.ContainerInstance API, docs/api.md): the one the CLI, the
// virtual node, the tests and the benchmarks use. Its typed methods take
// and return the wire types of package api, wait for long-running
// operations with a Poller, and stream logs, exec and attach sessions.
// Below them, Do, Call, Get and List send any request on a path; they add
// the bearer token and api-version, resolve the subscription, decode ARM
// errors into the classes of errdefs and follow list pages.
//
// Skiff speaks ARM, so the real Azure SDK for Go
// (armcontainerinstance) works against it too; this package is smaller,
// knows Skiff's extensions (grace periods, image routes, pull progress)
// and has no Azure dependency.
package client

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// APIVersion is the api-version the client sends.
const APIVersion = "2023-05-01"

// DefaultEndpoint is where the client looks for the server when nothing else is said.
const DefaultEndpoint = "http://127.0.0.1:7700"

// Options configure a Client.
type Options struct {
	// Endpoint is the server's base URL; "host:port" means http://host:port.
	Endpoint string
	// Token is sent as "Authorization: Bearer <token>" when not empty.
	Token string
	// TokenHint tells the user where a token is looked for; it is added to
	// 401 errors when Token is empty.
	TokenHint string
	// Credentials, when not nil, hand out the bearer token instead of
	// Token: a *ServicePrincipal, or another TokenSource (auth.go).
	Credentials TokenSource
	// Subscription is the subscription to use; empty means the first one
	// the server lists.
	Subscription string
	// HTTPClient defaults to a client without a timeout (logs --follow and
	// LROs run as long as the user wants).
	HTTPClient *http.Client
	// CAFile (PEM, a Skiff server's DATA-DIR/ca.crt) or RootCAs is what
	// an https endpoint is trusted with: CAFile beside the system's roots,
	// RootCAs instead of them. See tls.go.
	CAFile  string
	RootCAs *x509.CertPool
	// CAHint tells the user how to trust the server's CA; it is added to
	// the error of a certificate the client does not trust.
	CAHint string
	// RespondAsync asks, on each PUT of a container group, for its
	// long-running operation at once (Prefer: respond-async) instead of
	// the server's short wait for the group to run: for callers that
	// follow their groups themselves, as the virtual node does.
	RespondAsync bool
}

// Client calls the API of one server.
type Client struct {
	base      *url.URL
	token     string
	tokenHint string
	creds     TokenSource
	hc        *http.Client
	tls       tlsTrust

	respondAsync bool

	mu  sync.Mutex
	sub string
}

// New returns a client of the server at o.Endpoint.
func New(o Options) (*Client, error) {
	ep := o.Endpoint
	if ep == "" {
		ep = DefaultEndpoint
	}
	if !strings.Contains(ep, "://") {
		ep = "http://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "", "endpoint %q is not an http(s) URL", o.Endpoint)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	hc, trust, err := httpClient(o)
	if err != nil {
		return nil, err
	}
	return &Client{base: u, token: o.Token, tokenHint: o.TokenHint, creds: o.Credentials, hc: hc, tls: trust, sub: o.Subscription, respondAsync: o.RespondAsync}, nil
}

// Endpoint returns the server's base URL.
func (c *Client) Endpoint() string { return c.base.String() }

// Token returns the fixed bearer token the client sends (Options.Token;
// "" when it signs in with Credentials).
func (c *Client) Token() string { return c.token }

// WithSubscription returns a client of the same server, with the same
// token and HTTP client, that uses subscription sub.
func (c *Client) WithSubscription(sub string) *Client {
	return &Client{base: c.base, token: c.token, tokenHint: c.tokenHint, creds: c.creds, hc: c.hc, tls: c.tls, sub: sub, respondAsync: c.respondAsync}
}

// Request is one call of the API.
type Request struct {
	Method string
	// Path is a path on the endpoint ("/subscriptions/…") or an absolute URL
	// the server handed out (nextLink, Azure-AsyncOperation); the latter is
	// sent to the endpoint's scheme and host so the token never leaves it.
	Path string
	// Query is added to the path's own query; api-version is added when
	// neither has one.
	Query url.Values
	// JSON, when not nil, is marshaled as the body.
	JSON any
	// Body is sent as is when JSON is nil.
	Body          io.Reader
	ContentType   string
	ContentLength int64
	// Header holds extra request headers (e.g. Prefer).
	Header http.Header
}

// URL returns the URL a request for path and query goes to.
func (c *Client) URL(path string, query url.Values) (*url.URL, error) {
	p, err := url.Parse(path)
	if err != nil {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "", "bad path %q: %v", path, err)
	}
	u := *c.base
	if p.IsAbs() {
		u.Path, u.RawPath = p.Path, p.RawPath
	} else {
		u.Path, u.RawPath = c.base.Path+p.Path, ""
		if p.RawPath != "" {
			u.RawPath = c.base.EscapedPath() + p.RawPath
		}
	}
	q := p.Query()
	for k, vs := range query {
		q[k] = vs
	}
	if q.Get("api-version") == "" {
		q.Set("api-version", APIVersion)
	}
	u.RawQuery = q.Encode()
	return &u, nil
}

// Do sends r and returns the response when its status is below 400; any
// other status comes back as an *APIError. The caller closes the body.
func (c *Client) Do(ctx context.Context, r *Request) (*http.Response, error) {
	u, err := c.URL(r.Path, r.Query)
	if err != nil {
		return nil, err
	}
	if h, _ := ctx.Value(hostKey{}).(string); h != "" {
		q := u.Query()
		q.Set("host", h)
		u.RawQuery = q.Encode()
	}
	body, ctype, clen := r.Body, r.ContentType, r.ContentLength
	if r.JSON != nil {
		b, err := json.Marshal(r.JSON)
		if err != nil {
			return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "", "encode request: %v", err)
		}
		body, ctype, clen = bytes.NewReader(b), "application/json", int64(len(b))
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), body)
	if err != nil {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "", "%s %s: %v", r.Method, u.Path, err)
	}
	if body != nil && clen > 0 {
		req.ContentLength = clen
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	token, err := c.bearer(ctx)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, c.decodeError(resp)
	}
	return resp, nil
}

// Response is a fully read response.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// Decode unmarshals the body into v.
func (r *Response) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return errdefs.WithCode(errdefs.ErrUnavailable, "", "the server sent a body that is not the JSON expected: %v", err)
	}
	return nil
}

// Call sends a request with an optional JSON body and reads the whole
// response.
func (c *Client) Call(ctx context.Context, method, path string, query url.Values, in any) (*Response, error) {
	return c.CallRequest(ctx, &Request{Method: method, Path: path, Query: query, JSON: in})
}

// CallRequest is Call of a whole Request.
func (c *Client) CallRequest(ctx context.Context, req *Request) (*Response, error) {
	resp, err := c.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	return &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Get reads path into out.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	r, err := c.Call(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return err
	}
	return r.Decode(out)
}

// List reads every page of an ARM list, following nextLink.
func (c *Client) List(ctx context.Context, path string, query url.Values) ([]json.RawMessage, error) {
	var all []json.RawMessage
	for next := path; next != ""; query = nil {
		r, err := c.Call(ctx, http.MethodGet, next, query, nil)
		if err != nil {
			return nil, err
		}
		var page api.List[json.RawMessage]
		if err := r.Decode(&page); err != nil {
			return nil, err
		}
		all = append(all, page.Value...)
		if page.NextLink == next {
			break
		}
		next = page.NextLink
	}
	if all == nil {
		all = []json.RawMessage{}
	}
	return all, nil
}

// Subscription returns the subscription in use: the one given in Options,
// else the first the server lists.
func (c *Client) Subscription(ctx context.Context) (string, error) {
	c.mu.Lock()
	sub := c.sub
	c.mu.Unlock()
	if sub != "" {
		return sub, nil
	}
	raw, err := c.List(ctx, "/subscriptions", nil)
	if err != nil {
		return "", err
	}
	for _, r := range raw {
		var s api.Subscription
		if json.Unmarshal(r, &s) == nil && s.SubscriptionID != "" {
			c.mu.Lock()
			c.sub = s.SubscriptionID
			c.mu.Unlock()
			return s.SubscriptionID, nil
		}
	}
	return "", errdefs.WithCode(errdefs.ErrNotFound, "", "the server at %s has no subscription", c.Endpoint())
}

// transportError turns a failed round trip into an error of class
// ErrUnavailable, with a hint when nothing listens at the endpoint.
func (c *Client) transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return &NotRunningError{Endpoint: c.Endpoint()}
	}
	if ce := c.certificateError(err); ce != nil {
		return ce
	}
	return errdefs.WithCode(errdefs.ErrUnavailable, "", "cannot reach the Skiff server at %s: %v", c.Endpoint(), err)
}
