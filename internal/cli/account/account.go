// Package account is `skiff account`: the subscriptions of the server and
// the one the CLI uses.
package account

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
)

// NewCmd returns `skiff account`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "account",
		Short: "Show the subscriptions of the server",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	f.AddGlobalFlags(cmd)
	cmd.AddCommand(&cobra.Command{
		Use:   "show",
		Short: "Show the subscription in use (--subscription, $SKIFF_SUBSCRIPTION, else the server's first)",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if _, err := c.GetSubscription(client.WithRawJSON(cmd.Context(), &raw)); err != nil {
				return err
			}
			return f.PrintJSON(raw, nil)
		},
	}, &cobra.Command{
		Use:   "list",
		Short: "List the subscriptions of the server",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if _, err := c.Subscriptions(client.WithRawJSON(cmd.Context(), &raw)); err != nil {
				return err
			}
			return f.PrintJSON(raw, nil)
		},
	})
	return cmd
}
