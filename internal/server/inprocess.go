package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/deployment"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// The deployment engine creates a template's resources through the
// server's own routes, in-process: each request is an http.Request with
// the deploying principal in its context instead of a token, and goes
// through the same route match, api-version check, authorization,
// handler and audit line as a client's (route in server.go), so that a
// deployed resource is validated, defaulted and authorized exactly as a
// PUT of it would be.

// inprocessKey marks the context of an in-process request.
type inprocessKey struct{}

func inprocess(ctx context.Context) bool { return ctx.Value(inprocessKey{}) != nil }

// errorsOnly is a log handler that passes only errors (5xx): the debug
// lines of refused in-process requests carry messages that may quote a
// template's secure values, which the engine scrubs where it keeps them.
type errorsOnly struct{ slog.Handler }

func (h errorsOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError && h.Handler.Enabled(ctx, l)
}
func (h errorsOnly) WithAttrs(a []slog.Attr) slog.Handler { return errorsOnly{h.Handler.WithAttrs(a)} }
func (h errorsOnly) WithGroup(n string) slog.Handler      { return errorsOnly{h.Handler.WithGroup(n)} }

// inprocessHost is the Host of in-process requests (what baseURL puts in
// the URLs of their answers).
const inprocessHost = "skiff.internal"

// deployableTypes are the resource types a template may deploy (if the
// server serves them); the top-level ones are those Complete mode lists.
var deployableTypes = []struct {
	typ      string
	topLevel bool
}{
	{api.ResourceType, true},
	{"Microsoft.Storage/storageAccounts", true},
	{"Microsoft.Storage/storageAccounts/fileServices/shares", false},
	{api.ProfileResourceType, true},
	{api.NGroupResourceType, true},
	{api.StandbyPoolResourceType, true},
}

// deployResources is deployment.Resources on the server.
type deployResources struct{ s *Server }

// bufferWriter is the ResponseWriter of an in-process request.
type bufferWriter struct {
	h    http.Header
	code int
	buf  bytes.Buffer
}

func (b *bufferWriter) Header() http.Header { return b.h }
func (b *bufferWriter) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.buf.Write(p)
}
func (b *bufferWriter) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}

// do serves one request as p. path may carry its own query (a nextLink);
// apiVersion, if set, is added.
func (rs deployResources) do(ctx context.Context, p deployment.Principal, method, path, apiVersion string, body []byte, header http.Header) (int, http.Header, []byte, error) {
	u, err := url.Parse(path)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("resource path %q: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	q := u.Query()
	if apiVersion != "" {
		q.Set("api-version", apiVersion)
	}
	u.Scheme, u.Host, u.RawQuery = "http", inprocessHost, q.Encode()
	var rd *bytes.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	var req *http.Request
	if rd != nil {
		req, err = http.NewRequestWithContext(ctx, method, u.String(), rd)
	} else {
		req, err = http.NewRequestWithContext(ctx, method, u.String(), nil)
	}
	if err != nil {
		return 0, nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	ctx = context.WithValue(context.WithValue(req.Context(), principalKey{}, asPrincipal(p)), inprocessKey{}, true)
	req = req.WithContext(ctx)
	bw := &bufferWriter{h: http.Header{}}
	rs.s.route(&statusRecorder{ResponseWriter: bw, code: 200}, req, asPrincipal(p))
	if bw.code == 0 {
		bw.code = http.StatusOK
	}
	if err := ctx.Err(); err != nil {
		return 0, nil, nil, err
	}
	return bw.code, bw.h, bw.buf.Bytes(), nil
}

// reply turns an answer into a Reply (its error envelope if refused).
func reply(code int, body []byte) deployment.Reply {
	r := deployment.Reply{Status: code, Body: body}
	if code >= 400 {
		var env api.ErrorResponse
		if json.Unmarshal(body, &env) != nil || env.Error.Code == "" {
			env.Error = api.ErrorBody{Code: http.StatusText(code), Message: strings.TrimSpace(string(body))}
		}
		r.Error = &env.Error
	}
	return r
}

func (rs deployResources) Get(ctx context.Context, p deployment.Principal, id, apiVersion string) (deployment.Reply, error) {
	code, _, body, err := rs.do(ctx, p, http.MethodGet, id, apiVersion, nil, nil)
	if err != nil {
		return deployment.Reply{}, err
	}
	return reply(code, body), nil
}

func (rs deployResources) Post(ctx context.Context, p deployment.Principal, path, apiVersion string, body []byte) (deployment.Reply, error) {
	if body == nil {
		body = []byte("{}")
	}
	code, _, resp, err := rs.do(ctx, p, http.MethodPost, path, apiVersion, body, nil)
	if err != nil {
		return deployment.Reply{}, err
	}
	return reply(code, resp), nil
}

func (rs deployResources) Put(ctx context.Context, p deployment.Principal, id, apiVersion string, body []byte) (deployment.Reply, error) {
	code, h, resp, err := rs.do(ctx, p, http.MethodPut, id, apiVersion, body, nil)
	if err != nil {
		return deployment.Reply{}, err
	}
	if code >= 400 {
		return reply(code, resp), nil
	}
	if e, err := rs.await(ctx, p, h); err != nil || e != nil {
		return deployment.Reply{Status: code, Error: e, Async: e != nil}, err
	}
	// The resource as it is now that its operation ended.
	got, err := rs.Get(ctx, p, id, apiVersion)
	if err != nil {
		return deployment.Reply{}, err
	}
	if got.Error != nil {
		return got, nil
	}
	return deployment.Reply{Status: code, Body: got.Body}, nil
}

func (rs deployResources) Delete(ctx context.Context, p deployment.Principal, id, apiVersion string) (deployment.Reply, error) {
	code, h, resp, err := rs.do(ctx, p, http.MethodDelete, id, apiVersion, nil, nil)
	if err != nil {
		return deployment.Reply{}, err
	}
	if code == http.StatusNotFound {
		return deployment.Reply{Status: http.StatusNoContent}, nil // gone already
	}
	if code >= 400 {
		return reply(code, resp), nil
	}
	if e, err := rs.await(ctx, p, h); err != nil || e != nil {
		return deployment.Reply{Status: code, Error: e, Async: e != nil}, err
	}
	return deployment.Reply{Status: code}, nil
}

// await follows a request's long-running operation (Azure-AsyncOperation,
// else a 202's Location) until it ends; it returns the operation's error
// if it failed or was canceled.
func (rs deployResources) await(ctx context.Context, p deployment.Principal, h http.Header) (*api.ErrorBody, error) {
	if async := h.Get("Azure-AsyncOperation"); async != "" {
		for {
			code, hh, body, err := rs.do(ctx, p, http.MethodGet, async, "", nil, http.Header{"Prefer": {"wait=20"}})
			if err != nil {
				return nil, err
			}
			if code >= 400 {
				return reply(code, body).Error, nil
			}
			var st struct {
				Status string         `json:"status"`
				Error  *api.ErrorBody `json:"error"`
			}
			if err := json.Unmarshal(body, &st); err != nil {
				return nil, fmt.Errorf("operation status %s: %v: %w", async, err, errdefs.ErrUnavailable)
			}
			switch strings.ToLower(st.Status) {
			case "succeeded":
				return nil, nil
			case "failed", "canceled":
				if st.Error == nil {
					st.Error = &api.ErrorBody{Code: "Operation" + st.Status, Message: "The operation ended " + st.Status + "."}
				}
				return st.Error, nil
			}
			if hh.Get("Preference-Applied") == "" {
				if err := pause(ctx, 250*time.Millisecond); err != nil {
					return nil, err
				}
			}
		}
	}
	if loc := h.Get("Location"); loc != "" {
		for {
			code, _, body, err := rs.do(ctx, p, http.MethodGet, loc, "", nil, nil)
			if err != nil {
				return nil, err
			}
			switch {
			case code >= 400:
				return reply(code, body).Error, nil
			case code != http.StatusAccepted:
				return nil, nil
			}
			if err := pause(ctx, 250*time.Millisecond); err != nil {
				return nil, err
			}
		}
	}
	return nil, nil
}

func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// List lists the resource group's resources of the top-level deployable
// types the server serves.
func (rs deployResources) List(ctx context.Context, p deployment.Principal, rgID string) ([]deployment.Item, error) {
	var out []deployment.Item
	for _, dt := range deployableTypes {
		if !dt.topLevel || rs.Types(dt.typ, "") != nil {
			continue
		}
		next := rgID + "/providers/" + dt.typ
		version := deploymentDefaultVersion(dt.typ)
		for next != "" {
			code, _, body, err := rs.do(ctx, p, http.MethodGet, next, version, nil, nil)
			if err != nil {
				return nil, err
			}
			if code >= 400 {
				e := reply(code, body).Error
				return nil, errdefs.WithCode(errdefs.ErrUnavailable, e.Code, "listing the %s of the resource group: %s", dt.typ, e.Message)
			}
			var page struct {
				Value []struct {
					ID   string `json:"id"`
					Type string `json:"type"`
				} `json:"value"`
				NextLink string `json:"nextLink"`
			}
			if err := json.Unmarshal(body, &page); err != nil {
				return nil, fmt.Errorf("listing the %s of the resource group: %v: %w", dt.typ, err, errdefs.ErrUnavailable)
			}
			for _, it := range page.Value {
				typ := it.Type
				if typ == "" {
					typ = dt.typ
				}
				out = append(out, deployment.Item{ID: it.ID, Type: typ})
			}
			next, version = "", ""
			if page.NextLink != "" {
				if u, err := url.Parse(page.NextLink); err == nil {
					next = u.RequestURI()
				}
			}
		}
	}
	return out, nil
}

// deploymentDefaultVersion is an api-version of the server's routes for a
// resource type, for the requests no template names one for.
func deploymentDefaultVersion(typ string) string {
	if strings.HasPrefix(strings.ToLower(typ), "microsoft.storage/") {
		return "2023-01-01"
	}
	if strings.EqualFold(typ, api.StandbyPoolResourceType) {
		return api.MaxStandbyPoolAPIVersion
	}
	return "2023-05-01"
}

// Types refuses what a template may not deploy here: a type off the list,
// one this server does not serve, or an api-version its route refuses.
// ("" as apiVersion checks the type only.)
func (rs deployResources) Types(resourceType, apiVersion string) error {
	if strings.EqualFold(resourceType, api.DeploymentType) {
		return fmt.Errorf("nested deployments (%s) are not supported by this server: %w", api.DeploymentType, errdefs.ErrInvalidArgument)
	}
	known := false
	var names []string
	for _, dt := range deployableTypes {
		names = append(names, dt.typ)
		known = known || strings.EqualFold(dt.typ, resourceType)
	}
	if !known {
		return fmt.Errorf("the resource type '%s' cannot be deployed by this server; a template may deploy %s: %w",
			resourceType, strings.Join(names, ", "), errdefs.ErrInvalidArgument)
	}
	parts := strings.Split(resourceType, "/")
	path := "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/default/providers/" + parts[0]
	for _, t := range parts[1:] {
		path += "/" + t + "/default" // "default" is any name, and the one name of a fileServices
	}
	rt, _, _ := rs.s.routes.match(http.MethodPut, path)
	if rt == nil {
		return fmt.Errorf("the resource type '%s' is not served by this server: %w", resourceType, errdefs.ErrInvalidArgument)
	}
	if apiVersion == "" {
		return nil
	}
	if err := checkAPIVersion("/"+strings.Join(rt.segs, "/"), apiVersion); err != nil {
		return fmt.Errorf("the apiVersion '%s' of resource type '%s' is not supported: %s: %w", apiVersion, resourceType, err.Error(), errdefs.ErrInvalidArgument)
	}
	return nil
}
