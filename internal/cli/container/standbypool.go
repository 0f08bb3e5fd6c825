package container

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
)

// `skiff standby-container-group-pool`: standby pools of ready container
// groups, with the grammar of az's standby-container-group-pool extension
// (create, update, show, list, status, delete).

// NewStandbyPoolCmd returns the standby-container-group-pool command.
func NewStandbyPoolCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "standby-container-group-pool",
		Short: "Manage standby pools of ready container groups, which creates are handed at once",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	f.AddGlobalFlags(cmd)
	cmd.AddCommand(newPoolWriteCmd(f, "create"), newPoolWriteCmd(f, "update"), newPoolShowCmd(f, "show", ""),
		newPoolShowCmd(f, "status", "/runtimeViews/latest"), newPoolListCmd(f), newPoolDeleteCmd(f))
	return cmd
}

// poolQuery is a pool path's api-version (Microsoft.StandbyPool's).
const poolQuery = "?api-version=" + api.MaxStandbyPoolAPIVersion

func poolPath(sub, rg, name string) string {
	p := client.ResourceGroupPath(sub, rg) + "/providers/" + api.StandbyPoolResourceType
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// newPoolWriteCmd is create (a PUT of the whole pool) or update (a PATCH
// of what the flags give).
func newPoolWriteCmd(f *cmdutil.Factory, verb string) *cobra.Command {
	var t target
	var profile, refill, location string
	var capacity, revision int
	cmd := &cobra.Command{
		Use:   verb + " -g GROUP -n NAME --max-ready-capacity N --container-profile-id PROFILE [flags]",
		Short: map[string]string{"create": "Create a standby pool, or replace one", "update": "Change a standby pool's capacity or profile"}[verb],
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.check(); err != nil {
				return err
			}
			fl := cmd.Flags()
			if verb == "create" && (profile == "" || !fl.Changed("max-ready-capacity")) {
				return cmdutil.FlagErrorf("the following arguments are required: --max-ready-capacity, --container-profile-id")
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			sub, err := c.Subscription(cmd.Context())
			if err != nil {
				return err
			}
			props := map[string]any{}
			elastic := map[string]any{}
			if fl.Changed("max-ready-capacity") {
				elastic["maxReadyCapacity"] = capacity
			}
			if refill != "" {
				elastic["refillPolicy"] = refill
			}
			if len(elastic) > 0 {
				props["elasticityProfile"] = elastic
			}
			if profile != "" {
				id := profile
				if !strings.HasPrefix(id, "/") {
					id = profilePath(sub, t.rg, profile)
				}
				ref := map[string]any{"id": id}
				if revision > 0 {
					ref["revision"] = revision
				}
				props["containerGroupProperties"] = map[string]any{"containerGroupProfile": ref}
			}
			body := map[string]any{"properties": props}
			if location != "" {
				body["location"] = location
			}
			method := http.MethodPut
			if verb == "update" {
				method = http.MethodPatch
			}
			raw, err := call(cmd.Context(), f, method, func(sub string) string { return poolPath(sub, t.rg, t.name) + poolQuery }, body)
			if err != nil {
				return err
			}
			return f.PrintJSON(raw, nil)
		},
	}
	t.flags(cmd)
	fl := cmd.Flags()
	fl.IntVar(&capacity, "max-ready-capacity", 0, "how many ready container groups the pool holds")
	fl.StringVar(&refill, "refill-policy", "", "refill policy: always (the one there is; the default)")
	fl.StringVar(&profile, "container-profile-id", "", "the container group profile the pool's groups are made from: its name in the resource group, or its resource ID")
	fl.IntVar(&revision, "profile-revision", 0, "the profile's revision (default: its latest)")
	fl.StringVarP(&location, "location", "l", "", "location (default: the resource group's)")
	return cmd
}

func newPoolShowCmd(f *cmdutil.Factory, verb, suffix string) *cobra.Command {
	var t target
	short := "Show a standby pool"
	if verb == "status" {
		short = "Show a standby pool's runtime view: its container groups by state, and its health"
	}
	cmd := &cobra.Command{
		Use:   verb + " -g GROUP -n NAME",
		Short: short,
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.check(); err != nil {
				return err
			}
			raw, err := call(cmd.Context(), f, http.MethodGet, func(sub string) string { return poolPath(sub, t.rg, t.name) + suffix + poolQuery }, nil)
			if err != nil {
				return err
			}
			return f.PrintJSON(raw, nil)
		},
	}
	t.flags(cmd)
	return cmd
}

func newPoolListCmd(f *cmdutil.Factory) *cobra.Command {
	var rg string
	cmd := &cobra.Command{
		Use:   "list [-g GROUP]",
		Short: "List the standby pools of a resource group, or of the subscription",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return list(cmd.Context(), f, func(sub string) string {
				if rg == "" {
					return "/subscriptions/" + sub + "/providers/" + api.StandbyPoolResourceType + poolQuery
				}
				return poolPath(sub, rg, "") + poolQuery
			})
		},
	}
	cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "name of the resource group")
	return cmd
}

func newPoolDeleteCmd(f *cmdutil.Factory) *cobra.Command {
	var t target
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete -g GROUP -n NAME [--yes]",
		Short: "Delete a standby pool and its ready container groups",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.check(); err != nil {
				return err
			}
			if err := f.Confirm(yes, "delete standby pool "+t.name+" and its container groups"); err != nil {
				return err
			}
			_, err := call(cmd.Context(), f, http.MethodDelete, func(sub string) string { return poolPath(sub, t.rg, t.name) + poolQuery }, nil)
			return err
		},
	}
	t.flags(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}
