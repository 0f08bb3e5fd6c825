// Package deployment is `skiff deployment group` and `skiff deployment
// operation group`: ARM template deployments at resource group scope,
// with the grammar of `az deployment group`; and the seed's older `skiff
// group deployment`, as az's deprecated `az group deployment` has it.
package deployment

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
	"github.com/skiff-sh/skiff/internal/cli/output"
)

// Columns is the table of deployments, as az prints it.
func Columns() *output.Columns {
	return &output.Columns{
		Headers: []string{"Name", "State", "Timestamp", "Mode", "ResourceGroup"},
		Row: func(it any) []string {
			return []string{
				output.Scalar(output.Field(it, "name")),
				output.Scalar(output.Field(it, "properties", "provisioningState")),
				output.Scalar(output.Field(it, "properties", "timestamp")),
				output.Scalar(output.Field(it, "properties", "mode")),
				client.ResourceGroupOf(output.Scalar(output.Field(it, "id"))),
			}
		},
	}
}

// operationColumns is the table of deployment operations.
func operationColumns() *output.Columns {
	return &output.Columns{
		Headers: []string{"OperationId", "Operation", "State", "StatusCode", "ResourceType", "ResourceName", "Timestamp"},
		Row: func(it any) []string {
			return []string{
				output.Scalar(output.Field(it, "operationId")),
				output.Scalar(output.Field(it, "properties", "provisioningOperation")),
				output.Scalar(output.Field(it, "properties", "provisioningState")),
				output.Scalar(output.Field(it, "properties", "statusCode")),
				output.Scalar(output.Field(it, "properties", "targetResource", "resourceType")),
				output.Scalar(output.Field(it, "properties", "targetResource", "resourceName")),
				output.Scalar(output.Field(it, "properties", "timestamp")),
			}
		},
	}
}

// NewCmd returns `skiff deployment`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deployment",
		Short: "Manage ARM template deployments",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	f.AddGlobalFlags(cmd)
	group := &cobra.Command{
		Use:   "group",
		Short: "Manage template deployments at resource group scope",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	group.AddCommand(newCreateCmd(f), newValidateCmd(f), newShowCmd(f), newListCmd(f), newDeleteCmd(f),
		newCancelCmd(f), newExportCmd(f))
	operation := &cobra.Command{
		Use:   "operation",
		Short: "Manage the operations of template deployments",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	opGroup := &cobra.Command{
		Use:   "group",
		Short: "The operations of deployments at resource group scope",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	opGroup.AddCommand(newOperationListCmd(f))
	operation.AddCommand(opGroup)
	cmd.AddCommand(group, operation)
	return cmd
}

// NewGroupDeploymentCmd returns `skiff group deployment`, az's deprecated
// `az group deployment` (the seed's): create, validate, show, list,
// delete, cancel, export and operation list, with its flags.
func NewGroupDeploymentCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deployment",
		Short: "Manage template deployments (az's older grammar: see `skiff deployment group`)",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	operation := &cobra.Command{
		Use:   "operation",
		Short: "The operations of a deployment",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	operation.AddCommand(newOperationListCmd(f))
	cmd.AddCommand(newCreateCmd(f), newValidateCmd(f), newShowCmd(f), newListCmd(f), newDeleteCmd(f),
		newCancelCmd(f), newExportCmd(f), operation)
	return cmd
}

// target is -g and -n.
type target struct{ rg, name string }

func (t *target) flags(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&t.rg, "resource-group", "g", "", "name of the resource group")
	cmd.Flags().StringVarP(&t.name, "name", "n", "", "name of the deployment")
}

func (t *target) need(nameToo bool) error {
	switch {
	case t.rg == "":
		return cmdutil.FlagErrorf("the following arguments are required: --resource-group/-g")
	case nameToo && t.name == "":
		return cmdutil.FlagErrorf("the following arguments are required: --name/-n")
	}
	return nil
}

// deployFlags are what create and validate send.
type deployFlags struct {
	target
	templateFile, templateURI string
	parameters                []string
	mode                      string
}

func (d *deployFlags) add(cmd *cobra.Command) {
	d.target.flags(cmd)
	fl := cmd.Flags()
	fl.StringVarP(&d.templateFile, "template-file", "f", "", "the template file (JSON)")
	fl.StringVarP(&d.templateURI, "template-uri", "u", "", "a template by URI (not supported: give --template-file)")
	fl.StringArrayVarP(&d.parameters, "parameters", "p", nil, "parameters: KEY=VALUE pairs, @FILE.json (a parameters file) or a JSON object; repeatable")
	fl.StringVar(&d.mode, "mode", "Incremental", "Incremental or Complete (Complete deletes the resources of the group that the template does not hold)")
	cmdutil.Nargs(cmd, "parameters")
}

// body reads the template and parameters into a deployment's body.
func (d *deployFlags) body() (api.Deployment, error) {
	if err := d.need(false); err != nil {
		return api.Deployment{}, err
	}
	if d.templateURI != "" {
		return api.Deployment{}, cmdutil.FlagErrorf("--template-uri is not supported: Skiff fetches nothing on your behalf; download the template and give --template-file")
	}
	if d.templateFile == "" {
		return api.Deployment{}, cmdutil.FlagErrorf("the following arguments are required: --template-file/-f")
	}
	var mode string
	switch {
	case strings.EqualFold(d.mode, api.DeploymentModeIncremental):
		mode = api.DeploymentModeIncremental
	case strings.EqualFold(d.mode, api.DeploymentModeComplete):
		mode = api.DeploymentModeComplete
	default:
		return api.Deployment{}, cmdutil.FlagErrorf("--mode %q: allowed values: Incremental, Complete", d.mode)
	}
	t, err := readTemplate(d.templateFile)
	if err != nil {
		return api.Deployment{}, err
	}
	params, err := parseParameters(t, d.parameters)
	if err != nil {
		return api.Deployment{}, err
	}
	if d.name == "" {
		d.name = defaultName(d.templateFile)
	}
	return api.Deployment{Properties: api.DeploymentProperties{Template: t.doc, Parameters: params, Mode: mode}}, nil
}

// failure is a deployment that ended Failed or Canceled: one line with
// its code and each detail; exit code 1.
type failure struct{ d *api.Deployment }

func (e failure) Error() string {
	p := e.d.Properties
	if p.Error == nil {
		return fmt.Sprintf("deployment '%s' %s", e.d.Name, strings.ToLower(p.ProvisioningState))
	}
	return fmt.Sprintf("deployment '%s' %s: %s", e.d.Name, strings.ToLower(p.ProvisioningState), describe(p.Error))
}

func newCreateCmd(f *cmdutil.Factory) *cobra.Command {
	var d deployFlags
	var noWait bool
	cmd := &cobra.Command{
		Use:   "create -g RESOURCE-GROUP [-n NAME] --template-file FILE [--parameters ...] [--mode Incremental|Complete] [--no-wait]",
		Short: "Deploy a template to a resource group",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, err := d.body()
			if err != nil {
				return err
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			// As az: validate first, so that a bad template is refused
			// before anything is sent to run.
			if _, err := c.ValidateDeployment(ctx, d.rg, d.name, body); err != nil {
				return err
			}
			_, poller, err := c.CreateDeployment(ctx, d.rg, d.name, body)
			if err != nil || noWait {
				return err
			}
			var progress client.DeploymentProgress
			if f.IO.StderrTTY {
				progress = newProgressView(f.IO.ErrOut).update
			}
			var raw json.RawMessage
			got, err := c.WaitDeployment(client.WithRawJSON(ctx, &raw), d.rg, d.name, poller, progress)
			if err != nil {
				return err
			}
			if got.Properties.ProvisioningState != api.DeploymentSucceeded {
				return failure{got}
			}
			return f.PrintJSON(raw, nil)
		},
	}
	d.add(cmd)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the deployment to end")
	return cmd
}

func newValidateCmd(f *cmdutil.Factory) *cobra.Command {
	var d deployFlags
	cmd := &cobra.Command{
		Use:   "validate -g RESOURCE-GROUP --template-file FILE [--parameters ...]",
		Short: "Check whether a template would deploy, creating nothing",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, err := d.body()
			if err != nil {
				return err
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if _, err := c.ValidateDeployment(client.WithRawJSON(cmd.Context(), &raw), d.rg, d.name, body); err != nil {
				return err
			}
			return f.PrintJSON(raw, nil)
		},
	}
	d.add(cmd)
	return cmd
}

func newListCmd(f *cmdutil.Factory) *cobra.Command {
	var t target
	var filter string
	cmd := &cobra.Command{
		Use:   "list -g RESOURCE-GROUP [--filter \"provisioningState eq 'Failed'\"]",
		Short: "List the deployments of a resource group",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.need(false); err != nil {
				return err
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if _, err := c.ListDeployments(client.WithRawJSON(cmd.Context(), &raw), t.rg, filter); err != nil {
				return err
			}
			return f.PrintJSON(raw, Columns())
		},
	}
	cmd.Flags().StringVarP(&t.rg, "resource-group", "g", "", "name of the resource group")
	cmd.Flags().StringVar(&filter, "filter", "", "ARM's $filter: provisioningState eq '{state}'")
	return cmd
}

func newDeleteCmd(f *cmdutil.Factory) *cobra.Command {
	var t target
	var noWait bool
	cmd := &cobra.Command{
		Use:   "delete -g RESOURCE-GROUP -n NAME [--no-wait]",
		Short: "Delete a deployment's record (its resources stay)",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.need(true); err != nil {
				return err
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			poller, err := c.DeleteDeployment(cmd.Context(), t.rg, t.name)
			if err != nil || noWait {
				return err
			}
			return poller.Wait(cmd.Context(), nil)
		},
	}
	t.flags(cmd)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the deletion to finish")
	return cmd
}

// namedCmd is a command on one deployment (-g and -n): run does the work
// and returns what to print (nil: nothing).
func namedCmd(f *cmdutil.Factory, use, short string, cols *output.Columns,
	run func(ctx context.Context, c *client.Client, t target) (json.RawMessage, error)) *cobra.Command {
	var t target
	cmd := &cobra.Command{
		Use:   use + " -g RESOURCE-GROUP -n NAME",
		Short: short,
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.need(true); err != nil {
				return err
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			raw, err := run(cmd.Context(), c, t)
			if err != nil || raw == nil {
				return err
			}
			return f.PrintJSON(raw, cols)
		},
	}
	t.flags(cmd)
	return cmd
}

func newShowCmd(f *cmdutil.Factory) *cobra.Command {
	return namedCmd(f, "show", "Show a deployment: its state, parameters (secure ones without values), outputs and error", Columns(),
		func(ctx context.Context, c *client.Client, t target) (json.RawMessage, error) {
			var raw json.RawMessage
			_, err := c.GetDeployment(client.WithRawJSON(ctx, &raw), t.rg, t.name)
			return raw, err
		})
}

func newCancelCmd(f *cmdutil.Factory) *cobra.Command {
	return namedCmd(f, "cancel", "Cancel a deployment that is running (the resources it made stay)", nil,
		func(ctx context.Context, c *client.Client, t target) (json.RawMessage, error) {
			return nil, c.CancelDeployment(ctx, t.rg, t.name)
		})
}

func newExportCmd(f *cmdutil.Factory) *cobra.Command {
	return namedCmd(f, "export", "Print the template a deployment ran", nil,
		func(ctx context.Context, c *client.Client, t target) (json.RawMessage, error) {
			return c.ExportDeploymentTemplate(ctx, t.rg, t.name)
		})
}

func newOperationListCmd(f *cmdutil.Factory) *cobra.Command {
	return namedCmd(f, "list", "List what a deployment did, one operation per resource", operationColumns(),
		func(ctx context.Context, c *client.Client, t target) (json.RawMessage, error) {
			var raw json.RawMessage
			_, err := c.ListDeploymentOperations(client.WithRawJSON(ctx, &raw), t.rg, t.name)
			return raw, err
		})
}
