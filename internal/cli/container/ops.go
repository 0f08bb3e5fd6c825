package container

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/client"
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
			c, err := f.Client()
			if err != nil {
				return err
			}
			v, err := get(cmd.Context(), c, t)
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
			c, err := f.Client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if _, err := c.ListContainerGroups(client.WithRawJSON(cmd.Context(), &raw), rg); err != nil {
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
	var grace int
	cmd := &cobra.Command{
		Use:   "delete -g GROUP -n NAME [--yes] [--grace-period N]",
		Short: "Delete a container group",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.check(); err != nil {
				return err
			}
			var o client.DeleteOptions
			if cmd.Flags().Changed("grace-period") {
				if grace < 0 {
					return cmdutil.FlagErrorf("--grace-period must be 0 or more seconds")
				}
				d := time.Duration(grace) * time.Second
				o.GracePeriod = &d
			}
			if err := f.Confirm(yes, fmt.Sprintf("delete container group %q", t.name)); err != nil {
				return err
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			poller, err := c.DeleteContainerGroup(client.WithRawJSON(cmd.Context(), &raw), t.rg, t.name, o)
			if err != nil {
				return err
			}
			// A delete done at once (ACI answers 200 with the group) is
			// shown, as az does.
			if poller.Done() && len(raw) > 0 {
				var v any
				if err := (&client.Response{Body: raw}).Decode(&v); err != nil {
					return err
				}
				return f.Print(Flatten(v), Columns())
			}
			if noWait {
				return nil
			}
			return poller.Wait(cmd.Context(), nil)
		},
	}
	t.flags(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not prompt for confirmation")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the deletion to finish")
	cmd.Flags().IntVar(&grace, "grace-period", 0, "seconds the containers get between SIGTERM and SIGKILL (default: the server's --stop-grace; 0 kills at once, as kubectl's --grace-period 0)")
	return cmd
}

// newActionCmd is restart, start and stop: a POST, then the operation's
// end unless --no-wait (stop is synchronous).
func newActionCmd(f *cmdutil.Factory, action, short string, lro bool, do func(*client.Client, context.Context, string, string) (*client.Poller, error)) *cobra.Command {
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
			c, err := f.Client()
			if err != nil {
				return err
			}
			poller, err := do(c, cmd.Context(), t.rg, t.name)
			if err != nil || noWait {
				return err
			}
			return poller.Wait(cmd.Context(), nil)
		},
	}
	t.flags(cmd)
	if lro {
		cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the operation to finish")
	}
	return cmd
}

func newRestartCmd(f *cmdutil.Factory) *cobra.Command {
	return newActionCmd(f, "restart", "Restart all containers of a container group in place", true, (*client.Client).RestartContainerGroup)
}

func newStartCmd(f *cmdutil.Factory) *cobra.Command {
	return newActionCmd(f, "start", "Start a stopped container group", true, (*client.Client).StartContainerGroup)
}

func newStopCmd(f *cmdutil.Factory) *cobra.Command {
	return newActionCmd(f, "stop", "Stop all containers of a container group", false, (*client.Client).StopContainerGroup)
}
