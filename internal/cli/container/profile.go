package container

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
)

// `skiff container profile`: container group profiles, the specs with
// revisions that NGroups (and groups created with --profile) are made of.

func newProfileCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "profile",
		Short: "Manage container group profiles (container group specs with revisions)",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	cmd.AddCommand(newProfileCreateCmd(f), newProfileShowCmd(f), newProfileListCmd(f), newProfileDeleteCmd(f), newProfileRevisionsCmd(f))
	return cmd
}

func profilePath(sub, rg, name string) string {
	p := client.ResourceGroupPath(sub, rg) + "/providers/" + client.Provider + "/containerGroupProfiles"
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// call sends one request to a path of the subscription in use and prints
// the answer.
func call(ctx context.Context, f *cmdutil.Factory, method string, path func(sub string) string, body any) (json.RawMessage, error) {
	c, err := f.Client()
	if err != nil {
		return nil, err
	}
	sub, err := c.Subscription(ctx)
	if err != nil {
		return nil, err
	}
	r, err := c.Call(ctx, method, path(sub), nil, body)
	if err != nil {
		return nil, err
	}
	return r.Body, nil
}

// list gets every page of a list path and prints the items.
func list(ctx context.Context, f *cmdutil.Factory, path func(sub string) string) error {
	c, err := f.Client()
	if err != nil {
		return err
	}
	sub, err := c.Subscription(ctx)
	if err != nil {
		return err
	}
	items, err := c.List(ctx, path(sub), nil)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(items)
	if err != nil {
		return err
	}
	return f.PrintJSON(raw, nil)
}

func newProfileCreateCmd(f *cmdutil.Factory) *cobra.Command {
	o := &createOptions{}
	cmd := &cobra.Command{
		Use:   "create -g GROUP -n NAME --image IMAGE [flags] | -g GROUP -f FILE",
		Short: "Create a container group profile, or add a revision to one (the flags of container create)",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var body map[string]any
			var err error
			if o.File != "" {
				body, err = readFile(o)
			} else {
				body, err = buildGroup(o)
			}
			if err != nil {
				return err
			}
			delete(body, "name")
			c, err := f.Client()
			if err != nil {
				return err
			}
			if err := setLocation(cmd.Context(), c, o, body); err != nil {
				return err
			}
			raw, err := call(cmd.Context(), f, http.MethodPut, func(sub string) string { return profilePath(sub, o.rg, o.name) }, body)
			if err != nil {
				return err
			}
			return f.PrintJSON(raw, nil)
		},
	}
	o.addFlags(cmd)
	return cmd
}

func newProfileShowCmd(f *cmdutil.Factory) *cobra.Command {
	var t target
	var rev int
	cmd := &cobra.Command{
		Use:   "show -g GROUP -n NAME [--revision N]",
		Short: "Show a container group profile, at its latest revision or another",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.check(); err != nil {
				return err
			}
			raw, err := call(cmd.Context(), f, http.MethodGet, func(sub string) string {
				p := profilePath(sub, t.rg, t.name)
				if rev > 0 {
					p += "/revisions/" + strconv.Itoa(rev)
				}
				return p
			}, nil)
			if err != nil {
				return err
			}
			return f.PrintJSON(raw, nil)
		},
	}
	t.flags(cmd)
	cmd.Flags().IntVar(&rev, "revision", 0, "revision to show (default: the latest)")
	return cmd
}

func newProfileRevisionsCmd(f *cmdutil.Factory) *cobra.Command {
	var t target
	cmd := &cobra.Command{
		Use:   "list-revisions -g GROUP -n NAME",
		Short: "List the revisions of a container group profile, newest first",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.check(); err != nil {
				return err
			}
			return list(cmd.Context(), f, func(sub string) string { return profilePath(sub, t.rg, t.name) + "/revisions" })
		},
	}
	t.flags(cmd)
	return cmd
}

func newProfileListCmd(f *cmdutil.Factory) *cobra.Command {
	var rg string
	cmd := &cobra.Command{
		Use:   "list [-g GROUP]",
		Short: "List container group profiles, of one resource group or of all",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return list(cmd.Context(), f, func(sub string) string {
				if rg == "" {
					return client.SubscriptionPath(sub) + "/providers/" + client.Provider + "/containerGroupProfiles"
				}
				return profilePath(sub, rg, "")
			})
		},
	}
	cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "name of the resource group (default: all)")
	return cmd
}

func newProfileDeleteCmd(f *cmdutil.Factory) *cobra.Command {
	var t target
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete -g GROUP -n NAME [--yes]",
		Short: "Delete a container group profile and its revisions (groups made from it stay)",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.check(); err != nil {
				return err
			}
			if err := f.Confirm(yes, fmt.Sprintf("delete container group profile %q", t.name)); err != nil {
				return err
			}
			_, err := call(cmd.Context(), f, http.MethodDelete, func(sub string) string { return profilePath(sub, t.rg, t.name) }, nil)
			return err
		},
	}
	t.flags(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not prompt for confirmation")
	return cmd
}
