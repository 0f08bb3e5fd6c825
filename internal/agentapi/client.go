package agentapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostapi"
)

// callTimeout bounds the calls of Host that take no context (CheckPorts,
// GroupCount, the image cache's List, Get and Remove).
const callTimeout = 30 * time.Second

// client is a hostapi.Host on the agent API.
type client struct {
	base    string // the agent's URL, without a trailing slash
	wsBase  string // the same with ws: or wss:
	baseErr error  // why base is not a URL, if it is not
	token   string
	hc      *http.Client
	ws      *websocket.Dialer
}

// NewClient returns the Host served by the agent API at baseURL
// ("https://host:port"), calling it with token. hc nil is a client without
// an overall timeout (logs that follow and execs are long streams) and
// without a proxy (agents are reached directly). Errors are those of the
// agent's Host (see the package doc); GroupCount is 0 when the agent
// cannot answer.
func NewClient(baseURL, token string, hc *http.Client) hostapi.Host {
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		}}
	}
	c := &client{base: strings.TrimRight(baseURL, "/"), token: token, hc: hc, ws: wsDialer(hc)}
	u, err := url.Parse(c.base)
	switch {
	case err != nil:
		c.baseErr = fmt.Errorf("agent URL %q: %v: %w", baseURL, err, errdefs.ErrInvalidArgument)
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		c.baseErr = fmt.Errorf("agent URL %q: not an http:// or https:// URL: %w", baseURL, errdefs.ErrInvalidArgument)
	default:
		ws := *u
		ws.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
		c.wsBase = ws.String()
	}
	return c
}

// wsDialer dials websockets as hc's transport dials, if it is an
// *http.Transport.
func wsDialer(hc *http.Client) *websocket.Dialer {
	d := &websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	if t, ok := rt.(*http.Transport); ok {
		d.NetDialContext, d.Proxy = t.DialContext, t.Proxy
		if t.TLSClientConfig != nil {
			d.TLSClientConfig = t.TLSClientConfig.Clone()
			d.TLSClientConfig.NextProtos = nil // a websocket is HTTP/1.1
		}
	}
	return d
}

// escape escapes a path segment.
func escape(s string) string { return url.PathEscape(s) }

func groupPath(id string) string { return prefix + "/groups/" + escape(id) }

// A request of the agent API.
type request struct {
	method, path string
	query        url.Values
	body         io.Reader
	size         int64 // the body's length (-1: not known)
	contentType  string
	// expectContinue sends the body once the agent has looked at the
	// headers (a large upload it may refuse).
	expectContinue bool
}

// do sends req and returns the response if the agent answered 2xx; the
// caller closes its body. Otherwise it returns the agent's error.
func (c *client) do(ctx context.Context, req request) (*http.Response, error) {
	if c.baseErr != nil {
		return nil, c.baseErr
	}
	u := c.base + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, req.body)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %s %s: %v: %w", c.base, req.method, req.path, err, errdefs.ErrInvalidArgument)
	}
	hr.Header.Set("Authorization", "Bearer "+c.token)
	if req.contentType != "" {
		hr.Header.Set("Content-Type", req.contentType)
	}
	if req.body != nil && req.size >= 0 {
		hr.ContentLength = req.size
	}
	if req.expectContinue {
		hr.Header.Set("Expect", "100-continue")
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		return nil, c.netErr(ctx, req.method+" "+req.path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, c.responseErr(resp, req.method+" "+req.path)
	}
	return resp, nil
}

// netErr is a failure to reach the agent: the end of ctx, or
// ErrUnavailable.
func (c *client) netErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("agent %s: %s: %w", c.base, what, ctx.Err())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its text repeats the URL
	}
	return fmt.Errorf("agent %s: %s: %v: %w", c.base, what, err, errdefs.ErrUnavailable)
}

// responseErr is the error of a refusal: the agent's, rebuilt from its
// envelope, or ErrUnavailable for an answer that is not the agent's (a
// proxy's, a wrong URL's).
func (c *client) responseErr(resp *http.Response, what string) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var env envelope
	if json.Unmarshal(b, &env) == nil && env.Error.Message != "" {
		return env.Error.err()
	}
	return fmt.Errorf("agent %s: %s: %s, not the agent API's answer: %w", c.base, what, resp.Status, errdefs.ErrUnavailable)
}

// call sends in as JSON (if not nil) and decodes the answer into out (if
// not nil).
func (c *client) call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	req := request{method: method, path: path, query: query, size: -1}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("agent %s: %s %s: %w", c.base, method, path, err)
		}
		req.body, req.size, req.contentType = bytes.NewReader(b), int64(len(b)), jsonType
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return c.netErr(ctx, method+" "+path+": read the answer", err)
	}
	return nil
}

// bounded is the context of a call that takes none.
func bounded() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}

// Logs writes the container's log to w as the agent sends it. A follow
// that ctx ends returns nil, as the agent's own Logs does.
func (c *client) Logs(ctx context.Context, id, container string, o hostapi.LogOptions, w io.Writer) error {
	path := groupPath(id) + "/containers/" + escape(container) + "/logs"
	ended := func(err error) error {
		if o.Follow && ctx.Err() != nil {
			return nil
		}
		return err
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, path: path, query: logQuery(o), size: -1})
	if err != nil {
		return ended(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return ended(c.netErr(ctx, "logs", err))
		}
	}
	if t := resp.Trailer.Get(errorTrailer); t != "" {
		var env envelope
		if err := json.Unmarshal([]byte(t), &env); err != nil {
			return fmt.Errorf("agent %s: logs: the stream ended with an error it could not read (%v): %w", c.base, err, errdefs.ErrUnavailable)
		}
		return env.Error.err()
	}
	return nil
}

// Stats samples the group on the agent.
func (c *client) Stats(ctx context.Context, id string) (*hostapi.GroupStats, error) {
	var st hostapi.GroupStats
	if err := c.call(ctx, http.MethodGet, groupPath(id)+"/stats", nil, nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// CheckPorts asks the agent.
func (c *client) CheckPorts(ports []api.Port) error {
	ctx, cancel := bounded()
	defer cancel()
	return c.call(ctx, http.MethodPost, prefix+"/ports/check", nil, ports, nil)
}

// RemoveShare asks the agent to remove a deleted share's data.
func (c *client) RemoveShare(ctx context.Context, account, dir string) error {
	return c.call(ctx, http.MethodDelete, prefix+"/shares/"+escape(account)+"/"+escape(dir), nil, nil, nil)
}

// GroupCount is the agent's count, or 0 if it cannot answer.
func (c *client) GroupCount() int {
	ctx, cancel := bounded()
	defer cancel()
	var out countBody
	if c.call(ctx, http.MethodGet, prefix+"/groups", nil, nil, &out) != nil {
		return 0
	}
	return out.Count
}

// Images is the agent's image cache.
func (c *client) Images() hostapi.Images { return (*images)(c) }

// images is the image cache on the agent API.
type images client

func (i *images) List() ([]hostapi.ImageSummary, error) {
	ctx, cancel := bounded()
	defer cancel()
	var out []hostapi.ImageSummary
	if err := (*client)(i).call(ctx, http.MethodGet, prefix+"/images", nil, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func (i *images) Get(ref string) (*hostapi.Image, error) {
	ctx, cancel := bounded()
	defer cancel()
	var img hostapi.Image
	if err := (*client)(i).call(ctx, http.MethodGet, prefix+"/image", url.Values{"ref": {ref}}, nil, &img); err != nil {
		return nil, err
	}
	return &img, nil
}

func (i *images) Remove(ref string) error {
	ctx, cancel := bounded()
	defer cancel()
	return (*client)(i).call(ctx, http.MethodDelete, prefix+"/image", url.Values{"ref": {ref}}, nil, nil)
}

// Pull reports the agent's progress lines to progress as they come.
func (i *images) Pull(ctx context.Context, ref string, creds []api.ImageRegistryCredential, progress func(hostapi.ImageProgress)) (*hostapi.Image, error) {
	c := (*client)(i)
	b, err := json.Marshal(pullRequest{Ref: ref, Credentials: creds, Progress: progress != nil})
	if err != nil {
		return nil, fmt.Errorf("agent %s: pull %s: %w", c.base, ref, err)
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: prefix + "/images/pull", body: bytes.NewReader(b), size: int64(len(b)), contentType: jsonType})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var l pullLine
		if err := dec.Decode(&l); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, c.netErr(ctx, "pull "+ref+": the answer ended before the result", err)
		}
		switch {
		case l.Error != nil:
			return nil, l.Error.err()
		case l.Image != nil:
			return l.Image, nil
		case l.Progress != nil && progress != nil:
			progress(*l.Progress)
		}
	}
}

// Import streams the tarball at tarPath to the agent, which imports it.
func (i *images) Import(ctx context.Context, tarPath string) ([]hostapi.Image, error) {
	c := (*client)(i)
	f, err := os.Open(tarPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, request{method: http.MethodPut, path: prefix + "/images/import", body: f, size: fi.Size(),
		contentType: tarType, expectContinue: true})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []hostapi.Image
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, c.netErr(ctx, "import: read the answer", err)
	}
	return out, nil
}
