package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/skiff-sh/skiff/api"
)

// DeploymentsAPIVersion is the Microsoft.Resources api-version the
// deployment methods send (az 2.45's).
const DeploymentsAPIVersion = "2021-04-01"

// DeploymentsPath is the path of a resource group's template deployments.
func DeploymentsPath(sub, rg string) string {
	return ResourceGroupPath(sub, rg) + "/providers/Microsoft.Resources/deployments"
}

// DeploymentPath is the path of one deployment.
func DeploymentPath(sub, rg, name string) string {
	return DeploymentsPath(sub, rg) + "/" + url.PathEscape(name)
}

func deploymentsQuery() url.Values { return url.Values{"api-version": {DeploymentsAPIVersion}} }

func (c *Client) deploymentPath(ctx context.Context, rg, name string) (string, error) {
	p, err := c.In(ctx)
	if err != nil {
		return "", err
	}
	return DeploymentPath(p.Sub, rg, name), nil
}

// CreateDeployment starts a template deployment (PUT) and returns it as
// accepted, with the poller of its run.
func (c *Client) CreateDeployment(ctx context.Context, rg, name string, d api.Deployment) (*api.Deployment, *Poller, error) {
	path, err := c.deploymentPath(ctx, rg, name)
	if err != nil {
		return nil, nil, err
	}
	var out api.Deployment
	r, err := c.call(ctx, http.MethodPut, path, deploymentsQuery(), d, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, c.Poller(r.Header), nil
}

// ValidateDeployment checks a deployment as its PUT would, creating
// nothing. A template that would fail is an *APIError (InvalidTemplate,
// InvalidTemplateDeployment, …).
func (c *Client) ValidateDeployment(ctx context.Context, rg, name string, d api.Deployment) (*api.DeploymentValidateResult, error) {
	path, err := c.deploymentPath(ctx, rg, name)
	if err != nil {
		return nil, err
	}
	var out api.DeploymentValidateResult
	if _, err := c.call(ctx, http.MethodPost, path+"/validate", deploymentsQuery(), d, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetDeployment reads a deployment.
func (c *Client) GetDeployment(ctx context.Context, rg, name string) (*api.Deployment, error) {
	path, err := c.deploymentPath(ctx, rg, name)
	if err != nil {
		return nil, err
	}
	var out api.Deployment
	if _, err := c.call(ctx, http.MethodGet, path, deploymentsQuery(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListDeployments lists a resource group's deployments; filter is ARM's
// $filter ("provisioningState eq 'Failed'") or "".
func (c *Client) ListDeployments(ctx context.Context, rg, filter string) ([]api.Deployment, error) {
	p, err := c.In(ctx)
	if err != nil {
		return nil, err
	}
	q := deploymentsQuery()
	if filter != "" {
		q.Set("$filter", filter)
	}
	return listOf[api.Deployment](ctx, c, DeploymentsPath(p.Sub, rg), q)
}

// DeleteDeployment deletes a deployment's record (its resources stay)
// and returns the poller of the delete.
func (c *Client) DeleteDeployment(ctx context.Context, rg, name string) (*Poller, error) {
	path, err := c.deploymentPath(ctx, rg, name)
	if err != nil {
		return nil, err
	}
	r, err := c.call(ctx, http.MethodDelete, path, deploymentsQuery(), nil, nil)
	if err != nil {
		return nil, err
	}
	return c.Poller(r.Header), nil
}

// CancelDeployment cancels a deployment that is Accepted or Running.
func (c *Client) CancelDeployment(ctx context.Context, rg, name string) error {
	path, err := c.deploymentPath(ctx, rg, name)
	if err != nil {
		return err
	}
	_, err = c.call(ctx, http.MethodPost, path+"/cancel", deploymentsQuery(), nil, nil)
	return err
}

// ExportDeploymentTemplate returns the template a deployment ran.
func (c *Client) ExportDeploymentTemplate(ctx context.Context, rg, name string) (json.RawMessage, error) {
	path, err := c.deploymentPath(ctx, rg, name)
	if err != nil {
		return nil, err
	}
	var out api.DeploymentExportResult
	if _, err := c.call(ctx, http.MethodPost, path+"/exportTemplate", deploymentsQuery(), nil, &out); err != nil {
		return nil, err
	}
	return out.Template, nil
}

// ListDeploymentOperations lists what a deployment did, one operation per
// resource.
func (c *Client) ListDeploymentOperations(ctx context.Context, rg, name string) ([]api.DeploymentOperation, error) {
	path, err := c.deploymentPath(ctx, rg, name)
	if err != nil {
		return nil, err
	}
	return listOf[api.DeploymentOperation](ctx, c, path+"/operations", deploymentsQuery())
}

// DeploymentProgress is told a deployment's operations as they change.
type DeploymentProgress func([]api.DeploymentOperation)

// WaitDeployment waits for a deployment to end and returns it as it
// ended: Succeeded, or Failed or Canceled with its error (not an error of
// this call). With progress, it polls the deployment's operations every
// interval and tells progress; without, it follows the poller (which
// long-polls Skiff's server).
func (c *Client) WaitDeployment(ctx context.Context, rg, name string, p *Poller, progress DeploymentProgress) (*api.Deployment, error) {
	if progress == nil && p != nil && !p.Done() {
		// The operation's failure is the deployment's: read it below.
		var apiErr *APIError
		if err := p.Wait(ctx, nil); err != nil && (!errors.As(err, &apiErr) || apiErr.StatusCode != 0) {
			return nil, err
		}
	}
	const interval = 500 * time.Millisecond
	// The operations are not what WithRawJSON keeps: the deployment is.
	opsCtx := context.WithValue(ctx, rawKey{}, (*json.RawMessage)(nil))
	for {
		if progress != nil {
			ops, err := c.ListDeploymentOperations(opsCtx, rg, name)
			if err != nil {
				return nil, err
			}
			progress(ops)
		}
		d, err := c.GetDeployment(ctx, rg, name)
		if err != nil {
			return nil, err
		}
		if api.DeploymentTerminal(d.Properties.ProvisioningState) {
			if progress != nil {
				if ops, err := c.ListDeploymentOperations(opsCtx, rg, name); err == nil {
					progress(ops)
				}
			}
			return d, nil
		}
		if err := sleep(ctx, interval); err != nil {
			return nil, err
		}
	}
}
