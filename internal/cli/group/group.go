// Package group is `skiff group`: resource groups, with the grammar of
// `az group`.
package group

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
	"github.com/skiff-sh/skiff/internal/cli/deployment"
	"github.com/skiff-sh/skiff/internal/cli/output"
)

// Columns is the table of `group list -o table`, as az prints it.
func Columns() *output.Columns {
	return &output.Columns{
		Headers: []string{"Name", "Location", "Status"},
		Row: func(it any) []string {
			return []string{
				output.Scalar(output.Field(it, "name")),
				output.Scalar(output.Field(it, "location")),
				output.Scalar(output.Field(it, "properties", "provisioningState")),
			}
		},
	}
}

// NewCmd returns `skiff group`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Manage resource groups",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	f.AddGlobalFlags(cmd)
	cmd.AddCommand(newCreateCmd(f), newListCmd(f), newShowCmd(f), newDeleteCmd(f), newExistsCmd(f))
	// az's deprecated `az group deployment` (the seed's grammar).
	cmd.AddCommand(deployment.NewGroupDeploymentCmd(f))
	return cmd
}

// nameFlags adds -n/--name with az's alias -g/--resource-group.
func nameFlags(cmd *cobra.Command, name *string) {
	cmd.Flags().StringVarP(name, "name", "n", "", "name of the resource group")
	cmd.Flags().StringVarP(name, "resource-group", "g", "", "name of the resource group")
	_ = cmd.Flags().MarkHidden("resource-group")
}

func needName(name string) error {
	if name == "" {
		return cmdutil.FlagErrorf("the following arguments are required: --name/-n")
	}
	return nil
}

func newCreateCmd(f *cmdutil.Factory) *cobra.Command {
	var name, location string
	var tags []string
	cmd := &cobra.Command{
		Use:   "create -n NAME -l LOCATION [--tags KEY=VALUE ...]",
		Short: "Create a resource group, or update its tags",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needName(name); err != nil {
				return err
			}
			if location == "" {
				return cmdutil.FlagErrorf("the following arguments are required: --location/-l")
			}
			_, tv, err := cmdutil.ParseKV("--tags", tags, true)
			if err != nil {
				return err
			}
			body := api.ResourceGroup{Location: location}
			if len(tags) > 0 {
				body.Tags = tv
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if _, err := c.CreateResourceGroup(client.WithRawJSON(cmd.Context(), &raw), name, body); err != nil {
				return err
			}
			return f.PrintJSON(raw, nil)
		},
	}
	nameFlags(cmd, &name)
	cmd.Flags().StringVarP(&location, "location", "l", "", "location of the resource group")
	cmd.Flags().StringArrayVar(&tags, "tags", nil, "space-separated tags: key[=value]")
	cmdutil.Nargs(cmd, "tags")
	return cmd
}

func newListCmd(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List resource groups",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if _, err := c.ListResourceGroups(client.WithRawJSON(cmd.Context(), &raw)); err != nil {
				return err
			}
			return f.PrintJSON(raw, Columns())
		},
	}
}

func newShowCmd(f *cmdutil.Factory) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "show -n NAME",
		Short: "Show a resource group",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needName(name); err != nil {
				return err
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if _, err := c.GetResourceGroup(client.WithRawJSON(cmd.Context(), &raw), name); err != nil {
				return err
			}
			return f.PrintJSON(raw, Columns())
		},
	}
	nameFlags(cmd, &name)
	return cmd
}

func newDeleteCmd(f *cmdutil.Factory) *cobra.Command {
	var name string
	var yes, noWait bool
	cmd := &cobra.Command{
		Use:   "delete -n NAME [--yes] [--no-wait]",
		Short: "Delete a resource group and every container group in it",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needName(name); err != nil {
				return err
			}
			if err := f.Confirm(yes, fmt.Sprintf("delete resource group %q", name)); err != nil {
				return err
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			poller, err := c.DeleteResourceGroup(cmd.Context(), name)
			if err != nil || noWait {
				return err
			}
			return poller.Wait(cmd.Context(), nil)
		},
	}
	nameFlags(cmd, &name)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not prompt for confirmation")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the deletion to finish")
	return cmd
}

func newExistsCmd(f *cmdutil.Factory) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "exists -n NAME",
		Short: "Print true if the resource group exists, else false",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needName(name); err != nil {
				return err
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			ok, err := c.ResourceGroupExists(cmd.Context(), name)
			if err != nil {
				return err
			}
			return f.Print(ok, nil)
		},
	}
	nameFlags(cmd, &name)
	return cmd
}
