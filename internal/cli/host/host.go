// Package host is `skiff host`: the hosts of a Skiff cluster (Skiff's
// extension; az has no counterpart). The embedded server has one host,
// "local".
package host

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
	"github.com/skiff-sh/skiff/internal/cli/output"
)

// Columns is the table of `host list -o table`.
func Columns() *output.Columns {
	return &output.Columns{
		Headers: []string{"Name", "State", "PublicAddress", "Zone", "CPU", "MemoryGB", "Groups"},
		Row: func(it any) []string {
			f := func(path ...string) string {
				return output.Scalar(output.Field(it, append([]string{"properties"}, path...)...))
			}
			return []string{
				output.Scalar(output.Field(it, "name")),
				f("state"), f("publicAddress"), f("zone"),
				fmt.Sprintf("%s/%s", f("allocated", "cpu"), f("allocatable", "cpu")),
				fmt.Sprintf("%s/%s", f("allocated", "memoryInGB"), f("allocatable", "memoryInGB")),
				f("containerGroupCount"),
			}
		},
	}
}

// NewCmd returns `skiff host`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "host",
		Short: "Show the cluster's hosts: state, capacity, what is allocated, group count",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	f.AddGlobalFlags(cmd)
	cmd.AddCommand(newListCmd(f), newShowCmd(f))
	return cmd
}

func newListCmd(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the hosts",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if _, err := c.ListHosts(client.WithRawJSON(cmd.Context(), &raw)); err != nil {
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
		Short: "Show one host",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return cmdutil.FlagErrorf("the following arguments are required: --name/-n")
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if _, err := c.GetHost(client.WithRawJSON(cmd.Context(), &raw), name); err != nil {
				return err
			}
			return f.PrintJSON(raw, Columns())
		},
	}
	cmd.Flags().StringVarP(&name, "name", "n", "", "the host's name")
	return cmd
}
