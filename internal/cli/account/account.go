// Package account is `skiff account`: the subscriptions of the server and
// the one the CLI uses.
package account

import (
	"github.com/spf13/cobra"

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
			c, p, err := f.Connect(cmd.Context())
			if err != nil {
				return err
			}
			var v any
			if err := c.Get(cmd.Context(), p.Subscription(), &v); err != nil {
				return err
			}
			return f.Print(v, nil)
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
			items, err := c.List(cmd.Context(), "/subscriptions", nil)
			if err != nil {
				return err
			}
			return f.Print(items, nil)
		},
	})
	return cmd
}
