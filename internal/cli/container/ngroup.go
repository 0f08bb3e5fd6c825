package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
)

// `skiff container ngroup`: NGroups, a desired count of container groups
// from one profile revision.

func newNGroupCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ngroup",
		Short: "Manage NGroups (a count of container groups made from a profile)",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	cmd.AddCommand(newNGroupCreateCmd(f), newNGroupScaleCmd(f), newNGroupUpdateCmd(f), newNGroupShowCmd(f), newNGroupListCmd(f),
		newNGroupDeleteCmd(f), newNGroupActionCmd(f, "start"), newNGroupActionCmd(f, "stop"), newNGroupActionCmd(f, "restart"))
	return cmd
}

func ngroupPath(sub, rg, name string) string {
	p := client.ResourceGroupPath(sub, rg) + "/providers/" + client.Provider + "/ngroups"
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// waitNGroup polls an NGroup until its provisioningState is Succeeded
// (printed) or Failed (an error).
func waitNGroup(ctx context.Context, f *cmdutil.Factory, t target) error {
	for {
		raw, err := call(ctx, f, http.MethodGet, func(sub string) string { return ngroupPath(sub, t.rg, t.name) }, nil)
		if err != nil {
			return err
		}
		var ng struct {
			Properties struct{ ProvisioningState string }
		}
		if err := json.Unmarshal(raw, &ng); err != nil {
			return err
		}
		switch ng.Properties.ProvisioningState {
		case "Succeeded":
			return f.PrintJSON(raw, nil)
		case "Failed":
			return fmt.Errorf("(NGroupFailed) the NGroup %q is Failed; see its members with: skiff container list -g %s", t.name, t.rg)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// patchNGroup sends a merge patch and waits unless noWait.
func patchNGroup(ctx context.Context, f *cmdutil.Factory, t target, patch map[string]any, noWait bool) error {
	raw, err := call(ctx, f, http.MethodPatch, func(sub string) string { return ngroupPath(sub, t.rg, t.name) }, patch)
	if err != nil {
		return err
	}
	if noWait {
		return f.PrintJSON(raw, nil)
	}
	return waitNGroup(ctx, f, t)
}

func newNGroupCreateCmd(f *cmdutil.Factory) *cobra.Command {
	var t target
	var profile, prefix, mode, pause, location string
	var count, revision, maxBatch, maxUnhealthy int
	var maintain, inPlace, noWait bool
	cmd := &cobra.Command{
		Use:   "create -g GROUP -n NAME --profile PROFILE --count N [flags]",
		Short: "Create or update an NGroup: N container groups from a profile's revision",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.check(); err != nil {
				return err
			}
			if profile == "" {
				return cmdutil.FlagErrorf("the following arguments are required: --profile")
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			sub, err := c.Subscription(cmd.Context())
			if err != nil {
				return err
			}
			id := profile
			if !strings.HasPrefix(profile, "/") {
				id = profilePath(sub, t.rg, profile)
			}
			ref := map[string]any{"resource": map[string]any{"id": id}}
			if revision > 0 {
				ref["revision"] = revision
			}
			elastic := map[string]any{"desiredCount": count, "maintainDesiredCount": maintain}
			if prefix != "" {
				elastic["containerGroupNamingPolicy"] = map[string]any{"guidNamingPolicy": map[string]any{"prefix": prefix}}
			}
			update := map[string]any{"updateMode": mode}
			if strings.EqualFold(mode, "Rolling") {
				rp := map[string]any{"inPlaceUpdate": inPlace}
				if maxBatch > 0 {
					rp["maxBatchPercent"] = maxBatch
				}
				if maxUnhealthy > 0 {
					rp["maxUnhealthyPercent"] = maxUnhealthy
				}
				if pause != "" {
					rp["pauseTimeBetweenBatches"] = pause
				}
				update["rollingUpdateProfile"] = rp
			}
			body := map[string]any{"properties": map[string]any{
				"elasticProfile": elastic, "updateProfile": update, "containerGroupProfiles": []any{ref}}}
			if location != "" {
				body["location"] = location
			}
			raw, err := call(cmd.Context(), f, http.MethodPut, func(sub string) string { return ngroupPath(sub, t.rg, t.name) }, body)
			if err != nil {
				return err
			}
			if noWait {
				return f.PrintJSON(raw, nil)
			}
			return waitNGroup(cmd.Context(), f, t)
		},
	}
	t.flags(cmd)
	fl := cmd.Flags()
	fl.StringVar(&profile, "profile", "", "the container group profile: its name in the resource group, or its resource ID")
	fl.IntVar(&revision, "revision", 0, "the profile's revision (default: its latest)")
	fl.IntVar(&count, "count", 1, "desired count of container groups")
	fl.BoolVar(&maintain, "maintain-count", true, "replace members that are deleted or fail")
	fl.StringVar(&prefix, "prefix", "", "prefix of the members' names (<prefix><guid>)")
	fl.StringVar(&mode, "update-mode", "Manual", "how members move to a new revision: Manual (new members only) or Rolling")
	fl.IntVar(&maxBatch, "max-batch-percent", 0, "Rolling: percent of the count updated at a time (default 20)")
	fl.IntVar(&maxUnhealthy, "max-unhealthy-percent", 0, "Rolling: percent of the count that may be unhealthy before the update stops (default 20)")
	fl.StringVar(&pause, "pause-time-between-batches", "", "Rolling: ISO 8601 duration between batches, e.g. PT30S")
	fl.BoolVar(&inPlace, "in-place", false, "Rolling: update members in place instead of replacing them")
	fl.StringVarP(&location, "location", "l", "", "location (default: the resource group's)")
	fl.BoolVar(&noWait, "no-wait", false, "do not wait for the members to run")
	return cmd
}

func newNGroupScaleCmd(f *cmdutil.Factory) *cobra.Command {
	var t target
	var count int
	var noWait bool
	cmd := &cobra.Command{
		Use:   "scale -g GROUP -n NAME --count N",
		Short: "Change an NGroup's desired count",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.check(); err != nil {
				return err
			}
			if !cmd.Flags().Changed("count") {
				return cmdutil.FlagErrorf("the following arguments are required: --count")
			}
			return patchNGroup(cmd.Context(), f, t, map[string]any{"properties": map[string]any{"elasticProfile": map[string]any{"desiredCount": count}}}, noWait)
		},
	}
	t.flags(cmd)
	cmd.Flags().IntVar(&count, "count", 0, "desired count of container groups")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the members to run")
	return cmd
}

func newNGroupUpdateCmd(f *cmdutil.Factory) *cobra.Command {
	var t target
	var revision int
	var noWait bool
	cmd := &cobra.Command{
		Use:   "update -g GROUP -n NAME --revision N",
		Short: "Move an NGroup to another revision of its profile (Rolling: batch by batch)",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.check(); err != nil {
				return err
			}
			if revision < 1 {
				return cmdutil.FlagErrorf("the following arguments are required: --revision (1, 2, ...)")
			}
			raw, err := call(cmd.Context(), f, http.MethodGet, func(sub string) string { return ngroupPath(sub, t.rg, t.name) }, nil)
			if err != nil {
				return err
			}
			var ng struct {
				Properties struct {
					ContainerGroupProfiles []map[string]any `json:"containerGroupProfiles"`
				} `json:"properties"`
			}
			if err := json.Unmarshal(raw, &ng); err != nil || len(ng.Properties.ContainerGroupProfiles) != 1 {
				return fmt.Errorf("the NGroup %q has no profile to update", t.name)
			}
			ref := ng.Properties.ContainerGroupProfiles[0]
			ref["revision"] = revision
			return patchNGroup(cmd.Context(), f, t, map[string]any{"properties": map[string]any{"containerGroupProfiles": []any{ref}}}, noWait)
		},
	}
	t.flags(cmd)
	cmd.Flags().IntVar(&revision, "revision", 0, "the profile revision to move to")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the update to finish")
	return cmd
}

func newNGroupShowCmd(f *cmdutil.Factory) *cobra.Command {
	var t target
	cmd := &cobra.Command{
		Use:   "show -g GROUP -n NAME",
		Short: "Show an NGroup",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.check(); err != nil {
				return err
			}
			raw, err := call(cmd.Context(), f, http.MethodGet, func(sub string) string { return ngroupPath(sub, t.rg, t.name) }, nil)
			if err != nil {
				return err
			}
			return f.PrintJSON(raw, nil)
		},
	}
	t.flags(cmd)
	return cmd
}

func newNGroupListCmd(f *cmdutil.Factory) *cobra.Command {
	var rg string
	cmd := &cobra.Command{
		Use:   "list [-g GROUP]",
		Short: "List NGroups, of one resource group or of all",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return list(cmd.Context(), f, func(sub string) string {
				if rg == "" {
					return client.SubscriptionPath(sub) + "/providers/" + client.Provider + "/ngroups"
				}
				return ngroupPath(sub, rg, "")
			})
		},
	}
	cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "name of the resource group (default: all)")
	return cmd
}

func newNGroupDeleteCmd(f *cmdutil.Factory) *cobra.Command {
	var t target
	var yes, noWait bool
	cmd := &cobra.Command{
		Use:   "delete -g GROUP -n NAME [--yes]",
		Short: "Delete an NGroup and its container groups",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.check(); err != nil {
				return err
			}
			if err := f.Confirm(yes, fmt.Sprintf("delete NGroup %q and its container groups", t.name)); err != nil {
				return err
			}
			path := func(sub string) string { return ngroupPath(sub, t.rg, t.name) }
			if _, err := call(cmd.Context(), f, http.MethodDelete, path, nil); err != nil || noWait {
				return err
			}
			for {
				_, err := call(cmd.Context(), f, http.MethodGet, path, nil)
				if errors.Is(err, client.ErrNotFound) {
					return nil
				}
				if err != nil {
					return err
				}
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(250 * time.Millisecond):
				}
			}
		},
	}
	t.flags(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not prompt for confirmation")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the deletion to finish")
	return cmd
}

func newNGroupActionCmd(f *cmdutil.Factory, action string) *cobra.Command {
	var t target
	cmd := &cobra.Command{
		Use:   action + " -g GROUP -n NAME",
		Short: strings.ToUpper(action[:1]) + action[1:] + " every container group of an NGroup",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := t.check(); err != nil {
				return err
			}
			_, err := call(cmd.Context(), f, http.MethodPost, func(sub string) string { return ngroupPath(sub, t.rg, t.name) + "/" + action }, nil)
			return err
		},
	}
	t.flags(cmd)
	return cmd
}
