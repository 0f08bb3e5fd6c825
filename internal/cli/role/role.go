// Package role is `skiff role`: role assignments and role definitions
// (ARM's Microsoft.Authorization), with az's grammar. Assign resolves an
// assignee and a role name the way az does; `skiff ad sp create-for-rbac`
// uses it too.
package role

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
	"github.com/skiff-sh/skiff/internal/cli/output"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// APIVersion is the Microsoft.Authorization api-version sent.
const APIVersion = "2022-04-01"

const (
	definitions = "/providers/Microsoft.Authorization/roleDefinitions"
	assignments = "/providers/Microsoft.Authorization/roleAssignments"
)

func query(filter string) url.Values {
	q := url.Values{"api-version": {APIVersion}}
	if filter != "" {
		q.Set("$filter", filter)
	}
	return q
}

// Quote writes s as an OData string literal.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// NewCmd returns `skiff role`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "role",
		Short: "Manage role assignments and list role definitions",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	f.AddGlobalFlags(cmd)
	assignment := &cobra.Command{Use: "assignment", Short: "Grant, list and revoke roles of principals at scopes", Args: cobra.ArbitraryArgs, RunE: cmdutil.GroupRunE}
	assignment.AddCommand(newAssignmentCreateCmd(f), newAssignmentListCmd(f), newAssignmentDeleteCmd(f))
	definition := &cobra.Command{Use: "definition", Short: "List role definitions", Args: cobra.ArbitraryArgs, RunE: cmdutil.GroupRunE}
	definition.AddCommand(newDefinitionListCmd(f))
	cmd.AddCommand(assignment, definition)
	return cmd
}

// scopeOr returns scope, or the subscription's id when it is empty.
func scopeOr(ctx context.Context, c *client.Client, scope string) (string, error) {
	if scope = strings.TrimSuffix(strings.TrimSpace(scope), "/"); scope != "" {
		if !strings.HasPrefix(scope, "/") {
			return "", cmdutil.FlagErrorf("--scope %q: want a resource id such as /subscriptions/SUB/resourceGroups/RG", scope)
		}
		return scope, nil
	}
	sub, err := c.Subscription(ctx)
	if err != nil {
		return "", err
	}
	return "/subscriptions/" + sub, nil
}

// ServicePrincipal is the part of a Graph servicePrincipal the CLI reads.
type ServicePrincipal struct {
	ID          string `json:"id"`
	AppID       string `json:"appId"`
	DisplayName string `json:"displayName"`
	Tenant      string `json:"appOwnerOrganizationId"`
}

// FindServicePrincipal returns the service principal named by its appId
// or its object id, as az's --assignee and --id take it.
func FindServicePrincipal(ctx context.Context, c *client.Client, id string) (*ServicePrincipal, error) {
	raw, err := c.List(ctx, "/v1.0/servicePrincipals", url.Values{"$filter": {"appId eq " + Quote(id)}})
	if err != nil {
		return nil, err
	}
	for _, r := range raw {
		var sp ServicePrincipal
		if json.Unmarshal(r, &sp) == nil && sp.ID != "" {
			return &sp, nil
		}
	}
	var sp ServicePrincipal
	if err := c.Get(ctx, "/v1.0/servicePrincipals/"+url.PathEscape(id), &sp); err != nil {
		if errdefs.Is(err, errdefs.ErrNotFound) {
			return nil, errdefs.WithCode(errdefs.ErrNotFound, "PrincipalNotFound", "Cannot find user or service principal in graph database for '%s'.", id)
		}
		return nil, err
	}
	return &sp, nil
}

// ResolveAssignee returns the object id of a service principal named by
// its appId or object id.
func ResolveAssignee(ctx context.Context, c *client.Client, assignee string) (string, error) {
	sp, err := FindServicePrincipal(ctx, c, assignee)
	if err != nil {
		return "", err
	}
	return sp.ID, nil
}

// ResolveRole returns the id of a role definition named by its roleName
// (any case), its GUID or its id, as seen at scope.
func ResolveRole(ctx context.Context, c *client.Client, scope, role string) (string, error) {
	if strings.HasPrefix(role, "/") {
		return role, nil
	}
	if _, err := uuid.Parse(role); err == nil {
		return strings.TrimSuffix(scope, "/") + definitions + "/" + role, nil
	}
	raw, err := c.List(ctx, scope+definitions, query("roleName eq "+Quote(role)))
	if err != nil {
		return "", err
	}
	for _, r := range raw {
		var d struct {
			ID         string
			Properties struct{ RoleName string }
		}
		if json.Unmarshal(r, &d) == nil && strings.EqualFold(d.Properties.RoleName, role) {
			return d.ID, nil
		}
	}
	return "", errdefs.WithCode(errdefs.ErrNotFound, "RoleDefinitionNotFound", "Role '%s' doesn't exist.", role)
}

// Assign gives the principal (object id) the role (name or id) at scope
// and returns the assignment as the server sent it.
func Assign(ctx context.Context, c *client.Client, principalID, role, scope string) (json.RawMessage, error) {
	roleID, err := ResolveRole(ctx, c, scope, role)
	if err != nil {
		return nil, err
	}
	body := map[string]any{"properties": map[string]any{"roleDefinitionId": roleID, "principalId": principalID, "principalType": "ServicePrincipal"}}
	r, err := c.Call(ctx, http.MethodPut, scope+assignments+"/"+uuid.NewString(), query(""), body)
	if err != nil {
		return nil, err
	}
	return r.Body, nil
}

func newAssignmentCreateCmd(f *cmdutil.Factory) *cobra.Command {
	var assignee, role, scope string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Give a service principal a role at a scope",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if scope, err = scopeOr(ctx, c, scope); err != nil {
				return err
			}
			id, err := ResolveAssignee(ctx, c, assignee)
			if err != nil {
				return err
			}
			raw, err := Assign(ctx, c, id, role, scope)
			if err != nil {
				return err
			}
			return f.PrintJSON(raw, assignmentCols)
		},
	}
	cmd.Flags().StringVar(&assignee, "assignee", "", "the service principal: its appId or object id")
	cmd.Flags().StringVar(&role, "role", "", "role name (e.g. Contributor) or role definition id")
	cmd.Flags().StringVar(&scope, "scope", "", "scope of the assignment (default: the subscription)")
	_ = cmd.MarkFlagRequired("assignee")
	_ = cmd.MarkFlagRequired("role")
	return cmd
}

var assignmentCols = &output.Columns{
	Headers: []string{"Principal", "RoleDefinitionId", "Scope"},
	Row: func(it any) []string {
		return []string{
			output.Scalar(output.Field(it, "properties", "principalId")),
			output.Scalar(output.Field(it, "properties", "roleDefinitionId")),
			output.Scalar(output.Field(it, "properties", "scope")),
		}
	},
}

// listAssignments lists the assignments at scope (all under it too when
// all is set) of the principal, if one is given.
func listAssignments(ctx context.Context, c *client.Client, scope, principalID string, all bool) ([]json.RawMessage, error) {
	var filter []string
	if !all {
		filter = append(filter, "atScope()")
	}
	if principalID != "" {
		filter = append(filter, "principalId eq "+Quote(principalID))
	}
	return c.List(ctx, scope+assignments, query(strings.Join(filter, " and ")))
}

func newAssignmentListCmd(f *cmdutil.Factory) *cobra.Command {
	var assignee, scope string
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List role assignments (at the subscription, or --scope; --all for those below too)",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if scope, err = scopeOr(ctx, c, scope); err != nil {
				return err
			}
			var id string
			if assignee != "" {
				if id, err = ResolveAssignee(ctx, c, assignee); err != nil {
					return err
				}
			}
			raw, err := listAssignments(ctx, c, scope, id, all)
			if err != nil {
				return err
			}
			return f.Print(raw, assignmentCols)
		},
	}
	cmd.Flags().StringVar(&assignee, "assignee", "", "only this service principal's (appId or object id)")
	cmd.Flags().StringVar(&scope, "scope", "", "scope (default: the subscription)")
	cmd.Flags().BoolVar(&all, "all", false, "also the assignments below the scope")
	return cmd
}

func newAssignmentDeleteCmd(f *cmdutil.Factory) *cobra.Command {
	var ids []string
	var assignee, role, scope string
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Revoke role assignments: --ids, or --assignee with --role and --scope",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(ids) == 0 && assignee == "" && role == "" {
				return cmdutil.FlagErrorf("give --ids, or --assignee (with --role and --scope to narrow it)")
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if len(ids) == 0 {
				if ids, err = matchingAssignments(ctx, c, assignee, role, scope); err != nil {
					return err
				}
			}
			var deleted []json.RawMessage
			for _, id := range ids {
				r, err := c.Call(ctx, http.MethodDelete, id, query(""), nil)
				if err != nil {
					return err
				}
				if len(r.Body) > 0 {
					deleted = append(deleted, r.Body)
				}
			}
			if deleted == nil {
				deleted = []json.RawMessage{}
			}
			return f.Print(deleted, assignmentCols)
		},
	}
	cmd.Flags().StringSliceVar(&ids, "ids", nil, "ids of the role assignments")
	cmd.Flags().StringVar(&assignee, "assignee", "", "the service principal: its appId or object id")
	cmd.Flags().StringVar(&role, "role", "", "role name or role definition id")
	cmd.Flags().StringVar(&scope, "scope", "", "scope of the assignments (default: the subscription)")
	return cmd
}

// matchingAssignments returns the ids of the assignments at scope that
// match an assignee and a role (either may be empty).
func matchingAssignments(ctx context.Context, c *client.Client, assignee, role, scope string) ([]string, error) {
	scope, err := scopeOr(ctx, c, scope)
	if err != nil {
		return nil, err
	}
	var pid, roleID string
	if assignee != "" {
		if pid, err = ResolveAssignee(ctx, c, assignee); err != nil {
			return nil, err
		}
	}
	if role != "" {
		if roleID, err = ResolveRole(ctx, c, scope, role); err != nil {
			return nil, err
		}
	}
	raw, err := listAssignments(ctx, c, scope, pid, true)
	if err != nil {
		return nil, err
	}
	ids := []string{}
	for _, r := range raw {
		var a struct {
			ID         string
			Properties struct{ RoleDefinitionID, Scope string }
		}
		if json.Unmarshal(r, &a) != nil || !strings.EqualFold(a.Properties.Scope, scope) {
			continue
		}
		if roleID != "" && !strings.EqualFold(lastSegment(a.Properties.RoleDefinitionID), lastSegment(roleID)) {
			continue
		}
		ids = append(ids, a.ID)
	}
	if len(ids) == 0 {
		return nil, errdefs.WithCode(errdefs.ErrNotFound, "RoleAssignmentNotFound", "No matched assignments were found to delete.")
	}
	return ids, nil
}

func lastSegment(id string) string { return id[strings.LastIndex(id, "/")+1:] }

func newDefinitionListCmd(f *cmdutil.Factory) *cobra.Command {
	var name, scope string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List role definitions (--name for one role)",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if scope, err = scopeOr(ctx, c, scope); err != nil {
				return err
			}
			var filter string
			if name != "" {
				filter = "roleName eq " + Quote(name)
			}
			raw, err := c.List(ctx, scope+definitions, query(filter))
			if err != nil {
				return err
			}
			return f.Print(raw, definitionCols)
		},
	}
	cmd.Flags().StringVarP(&name, "name", "n", "", "role name (e.g. Contributor)")
	cmd.Flags().StringVar(&scope, "scope", "", "scope (default: the subscription)")
	return cmd
}

var definitionCols = &output.Columns{
	Headers: []string{"Name", "Type", "Description"},
	Row: func(it any) []string {
		return []string{
			output.Scalar(output.Field(it, "properties", "roleName")),
			output.Scalar(output.Field(it, "properties", "type")),
			output.Scalar(output.Field(it, "properties", "description")),
		}
	},
}
