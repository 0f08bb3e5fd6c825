package container

import (
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
)

func newShowCmd(f *cmdutil.Factory) *cobra.Command {
	var t target
	cmd := &cobra.Command{
		Use:   "show -g GROUP -n NAME",
		Short: "Show a container group, with its state and events",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.check(); err != nil {
				return err
			}
			c, p, err := f.Connect(cmd.Context())
			if err != nil {
				return err
			}
			v, err := get(cmd.Context(), c, p, t)
			if err != nil {
				return err
			}
			return f.Print(Flatten(v), Columns())
		},
	}
	t.flags(cmd)
	return cmd
}

func newListCmd(f *cmdutil.Factory) *cobra.Command {
	var rg string
	cmd := &cobra.Command{
		Use:   "list [-g GROUP]",
		Short: "List container groups, of one resource group or of all",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, p, err := f.Connect(cmd.Context())
			if err != nil {
				return err
			}
			raw, err := c.List(cmd.Context(), p.ContainerGroups(rg), nil)
			if err != nil {
				return err
			}
			items, err := flattenRaw(raw)
			if err != nil {
				return err
			}
			return f.Print(items, Columns())
		},
	}
	cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "name of the resource group (default: all)")
	return cmd
}

func newDeleteCmd(f *cmdutil.Factory) *cobra.Command {
	var t target
	var yes, noWait bool
	cmd := &cobra.Command{
		Use:   "delete -g GROUP -n NAME [--yes]",
		Short: "Delete a container group",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.check(); err != nil {
				return err
			}
			if err := f.Confirm(yes, fmt.Sprintf("delete container group %q", t.name)); err != nil {
				return err
			}
			c, p, err := f.Connect(cmd.Context())
			if err != nil {
				return err
			}
			r, err := c.Call(cmd.Context(), http.MethodDelete, p.ContainerGroup(t.rg, t.name), nil, nil)
			if err != nil {
				return err
			}
			if r.StatusCode == http.StatusOK && len(r.Body) > 0 {
				var v any
				if err := r.Decode(&v); err != nil {
					return err
				}
				return f.Print(Flatten(v), Columns())
			}
			if noWait {
				return nil
			}
			return c.Wait(cmd.Context(), r.Header, nil)
		},
	}
	t.flags(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not prompt for confirmation")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the deletion to finish")
	return cmd
}

// newActionCmd is restart, start and stop: a POST, then the operation's
// end unless --no-wait (stop is synchronous).
func newActionCmd(f *cmdutil.Factory, action, short string, lro bool) *cobra.Command {
	var t target
	var noWait bool
	cmd := &cobra.Command{
		Use:   action + " -g GROUP -n NAME",
		Short: short,
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.check(); err != nil {
				return err
			}
			c, p, err := f.Connect(cmd.Context())
			if err != nil {
				return err
			}
			r, err := c.Call(cmd.Context(), http.MethodPost, p.ContainerGroup(t.rg, t.name)+"/"+action, nil, nil)
			if err != nil || noWait {
				return err
			}
			return c.Wait(cmd.Context(), r.Header, nil)
		},
	}
	t.flags(cmd)
	if lro {
		cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the operation to finish")
	}
	return cmd
}

func newRestartCmd(f *cmdutil.Factory) *cobra.Command {
	return newActionCmd(f, "restart", "Restart all containers of a container group in place", true)
}

func newStartCmd(f *cmdutil.Factory) *cobra.Command {
	return newActionCmd(f, "start", "Start a stopped container group", true)
}

func newStopCmd(f *cmdutil.Factory) *cobra.Command {
	return newActionCmd(f, "stop", "Stop all containers of a container group", false)
}
