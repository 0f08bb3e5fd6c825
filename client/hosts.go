package client

import (
	"context"
	"net/url"

	"github.com/skiff-sh/skiff/api"
)

// The hosts of a Skiff cluster (Skiff's extension; the embedded server has
// one, "local").

const hostsPath = "/providers/Skiff.Cluster/hosts"

// ListHosts lists the cluster's hosts.
func (c *Client) ListHosts(ctx context.Context) ([]api.Host, error) {
	return listOf[api.Host](ctx, c, hostsPath, nil)
}

// GetHost reads one host.
func (c *Client) GetHost(ctx context.Context, name string) (*api.Host, error) {
	var h api.Host
	if _, err := c.call(ctx, "GET", hostsPath+"/"+url.PathEscape(name), nil, nil, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

type hostKey struct{}

// OnHost makes the image operations sent with ctx (list, pull, import,
// remove) go to the named host of a cluster only, not to every host.
func OnHost(ctx context.Context, host string) context.Context {
	return context.WithValue(ctx, hostKey{}, host)
}
