package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/skiff-sh/skiff/api"
)

type rawKey struct{}

// WithRawJSON returns a context in which a typed method stores in *raw the
// JSON it decoded its result from, as the server sent it: the response's
// body, or for a list the JSON array of the items of every page. The CLI
// prints that, so that it shows every field the server sends, whether this
// package's types know it or not.
func WithRawJSON(ctx context.Context, raw *json.RawMessage) context.Context {
	return context.WithValue(ctx, rawKey{}, raw)
}

func keepRaw(ctx context.Context, b []byte) {
	if p, _ := ctx.Value(rawKey{}).(*json.RawMessage); p != nil {
		*p = append(json.RawMessage(nil), b...)
	}
}

// call sends a request and decodes a non-empty answer into out (when not
// nil), keeping the body for WithRawJSON.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, in, out any) (*Response, error) {
	return c.callRequest(ctx, &Request{Method: method, Path: path, Query: q, JSON: in}, out)
}

// callRequest is call of a whole Request (with headers).
func (c *Client) callRequest(ctx context.Context, req *Request, out any) (*Response, error) {
	r, err := c.CallRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	keepRaw(ctx, r.Body)
	if out != nil && len(r.Body) > 0 {
		if err := r.Decode(out); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// listOf reads every page of the list at path as items of type T.
func listOf[T any](ctx context.Context, c *Client, path string, q url.Values) ([]T, error) {
	raw, err := c.List(ctx, path, q)
	if err != nil {
		return nil, err
	}
	if b, err := json.Marshal(raw); err == nil {
		keepRaw(ctx, b)
	}
	out := make([]T, len(raw))
	for i, r := range raw {
		if err := (&Response{Body: r}).Decode(&out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Healthz checks that the server answers (GET /healthz).
func (c *Client) Healthz(ctx context.Context) error {
	_, err := c.Call(ctx, http.MethodGet, "/healthz", nil, nil)
	return err
}

// ---- subscriptions ----

// Subscriptions lists the subscriptions of the server.
func (c *Client) Subscriptions(ctx context.Context) ([]api.Subscription, error) {
	return listOf[api.Subscription](ctx, c, "/subscriptions", nil)
}

// GetSubscription reads the subscription in use (see Subscription).
func (c *Client) GetSubscription(ctx context.Context) (*api.Subscription, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	var s api.Subscription
	if _, err := c.call(ctx, http.MethodGet, p.Subscription(), nil, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// ---- resource groups ----

// CreateResourceGroup creates resource group name, or updates its tags.
func (c *Client) CreateResourceGroup(ctx context.Context, name string, rg api.ResourceGroup) (*api.ResourceGroup, error) {
	return c.resourceGroup(ctx, http.MethodPut, name, rg)
}

// GetResourceGroup reads resource group name.
func (c *Client) GetResourceGroup(ctx context.Context, name string) (*api.ResourceGroup, error) {
	return c.resourceGroup(ctx, http.MethodGet, name, nil)
}

func (c *Client) resourceGroup(ctx context.Context, method, name string, in any) (*api.ResourceGroup, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	var out api.ResourceGroup
	if _, err := c.call(ctx, method, p.ResourceGroup(name), nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ResourceGroupExists reports whether resource group name exists (HEAD).
func (c *Client) ResourceGroupExists(ctx context.Context, name string) (bool, error) {
	p, err := c.In(ctx)
	if err != nil {
		return false, err
	}
	resp, err := c.Do(ctx, &Request{Method: http.MethodHead, Path: p.ResourceGroup(name)})
	var ae *APIError
	switch {
	case err == nil:
		resp.Body.Close()
		return true, nil
	case errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound:
		return false, nil
	}
	return false, err
}

// ListResourceGroups lists the resource groups of the subscription.
func (c *Client) ListResourceGroups(ctx context.Context) ([]api.ResourceGroup, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	return listOf[api.ResourceGroup](ctx, c, p.ResourceGroups(), nil)
}

// DeleteResourceGroup deletes resource group name and every container
// group in it.
func (c *Client) DeleteResourceGroup(ctx context.Context, name string) (*Poller, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	return c.start(ctx, http.MethodDelete, p.ResourceGroup(name), nil, nil)
}

// start sends a request that may begin a long-running operation and
// returns its poller.
func (c *Client) start(ctx context.Context, method, path string, q url.Values, in any) (*Poller, error) {
	r, err := c.call(ctx, method, path, q, in, nil)
	if err != nil {
		return nil, err
	}
	return c.Poller(r.Header), nil
}

// ---- container groups ----

// CreateOrUpdateContainerGroup creates or updates container group name of
// resource group rg. It returns the group as the server answered and the
// poller of its provisioning: a Skiff server answers a group that runs
// within a moment finished (the poller is then done), else as accepted.
func (c *Client) CreateOrUpdateContainerGroup(ctx context.Context, rg, name string, cg *api.ContainerGroup) (*api.ContainerGroup, *Poller, error) {
	return c.PutContainerGroup(ctx, rg, name, cg, "")
}

// PutContainerGroup is CreateOrUpdateContainerGroup for any JSON document
// of a container group, such as one read from a YAML file: body is sent
// as it is, with apiVersion when not empty.
func (c *Client) PutContainerGroup(ctx context.Context, rg, name string, body any, apiVersion string) (*api.ContainerGroup, *Poller, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, nil, err
	}
	var q url.Values
	if apiVersion != "" {
		q = url.Values{"api-version": {apiVersion}}
	}
	req := &Request{Method: http.MethodPut, Path: p.ContainerGroup(rg, name), Query: q, JSON: body}
	if c.respondAsync {
		req.Header = http.Header{"Prefer": {"respond-async"}}
	}
	var out api.ContainerGroup
	r, err := c.callRequest(ctx, req, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, c.Poller(r.Header), nil
}

// GetContainerGroup reads container group name of resource group rg, with
// its instance view.
func (c *Client) GetContainerGroup(ctx context.Context, rg, name string) (*api.ContainerGroup, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	var out api.ContainerGroup
	if _, err := c.call(ctx, http.MethodGet, p.ContainerGroup(rg, name), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListContainerGroups lists the container groups of resource group rg, or
// of the whole subscription when rg is empty, following every page. List
// views carry no instance view.
func (c *Client) ListContainerGroups(ctx context.Context, rg string) ([]api.ContainerGroup, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	return listOf[api.ContainerGroup](ctx, c, p.ContainerGroups(rg), nil)
}

// ListContainerGroupsWithInstanceView is ListContainerGroups with each
// group's instance view, as GET shows it (Skiff's $expand=instanceView).
func (c *Client) ListContainerGroupsWithInstanceView(ctx context.Context, rg string) ([]api.ContainerGroup, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	return listOf[api.ContainerGroup](ctx, c, p.ContainerGroups(rg), url.Values{"$expand": {"instanceView"}})
}

// DeleteOptions are the options of DeleteContainerGroup.
type DeleteOptions struct {
	// GracePeriod, when set, is the time the containers get between
	// SIGTERM and SIGKILL, in whole seconds (the Skiff extension
	// ?gracePeriodSeconds=); nil leaves it to the server.
	GracePeriod *time.Duration
}

// DeleteContainerGroup deletes container group name of resource group rg.
// Deleting a group that does not exist is no error; its poller is done.
func (c *Client) DeleteContainerGroup(ctx context.Context, rg, name string, o DeleteOptions) (*Poller, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	var q url.Values
	if o.GracePeriod != nil {
		q = url.Values{"gracePeriodSeconds": {strconv.FormatInt(int64(max(*o.GracePeriod, 0)/time.Second), 10)}}
	}
	return c.start(ctx, http.MethodDelete, p.ContainerGroup(rg, name), q, nil)
}

// StopContainerGroup stops every container of a group. It is synchronous:
// its poller is done.
func (c *Client) StopContainerGroup(ctx context.Context, rg, name string) (*Poller, error) {
	return c.action(ctx, rg, name, "stop")
}

// StartContainerGroup starts a stopped group again.
func (c *Client) StartContainerGroup(ctx context.Context, rg, name string) (*Poller, error) {
	return c.action(ctx, rg, name, "start")
}

// RestartContainerGroup restarts every container of a group in place.
func (c *Client) RestartContainerGroup(ctx context.Context, rg, name string) (*Poller, error) {
	return c.action(ctx, rg, name, "restart")
}

func (c *Client) action(ctx context.Context, rg, name, action string) (*Poller, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	return c.start(ctx, http.MethodPost, p.ContainerGroup(rg, name)+"/"+action, nil, nil)
}

// PatchContainerGroupTags replaces the tags of a group (ARM's PATCH of a
// container group changes only its tags).
func (c *Client) PatchContainerGroupTags(ctx context.Context, rg, name string, tags map[string]string) (*api.ContainerGroup, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	var out api.ContainerGroup
	if _, err := c.call(ctx, http.MethodPatch, p.ContainerGroup(rg, name), nil, map[string]any{"tags": tags}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ---- metrics ----

// Metrics reads the Azure Monitor metrics of container group name of
// resource group rg; query holds metricnames, aggregation, interval,
// $filter and the like, and Azure Monitor's api-version (2018-01-01) if
// the caller wants it sent instead of APIVersion.
func (c *Client) Metrics(ctx context.Context, rg, name string, query url.Values) (*api.MetricsResponse, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	return c.MetricsOf(ctx, p.ContainerGroup(rg, name), query)
}

// MetricsOf is Metrics of the resource with this ARM ID.
func (c *Client) MetricsOf(ctx context.Context, resourceID string, query url.Values) (*api.MetricsResponse, error) {
	var out api.MetricsResponse
	if _, err := c.call(ctx, http.MethodGet, resourceID+"/providers/Microsoft.Insights/metrics", query, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
