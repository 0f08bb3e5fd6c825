// Package ad is `skiff ad sp`: service principals of the server's
// directory (the Microsoft Graph subset Skiff serves under /v1.0/), with
// the calls and output of az ad sp.
package ad

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
	"github.com/skiff-sh/skiff/internal/cli/output"
	"github.com/skiff-sh/skiff/internal/cli/role"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// NewCmd returns `skiff ad`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ad",
		Short: "Manage the server's directory: service principals",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	f.AddGlobalFlags(cmd)
	sp := &cobra.Command{Use: "sp", Short: "Create, list, delete service principals and reset their secrets", Args: cobra.ArbitraryArgs, RunE: cmdutil.GroupRunE}
	credential := &cobra.Command{Use: "credential", Short: "Manage a service principal's secrets", Args: cobra.ArbitraryArgs, RunE: cmdutil.GroupRunE}
	credential.AddCommand(newCredentialResetCmd(f))
	sp.AddCommand(newCreateForRBACCmd(f), newListCmd(f), newShowCmd(f), newDeleteCmd(f), credential)
	cmd.AddCommand(sp)
	return cmd
}

// application is the part of a Graph application read here.
type application struct {
	ID    string `json:"id"`
	AppID string `json:"appId"`
}

// Credentials are what create-for-rbac and credential reset print, as az.
type Credentials struct {
	AppID       string `json:"appId"`
	DisplayName string `json:"displayName"`
	Password    string `json:"password"`
	Tenant      string `json:"tenant"`
}

// applicationOf returns the application of an appId.
func applicationOf(ctx context.Context, c *client.Client, appID string) (*application, error) {
	raw, err := c.List(ctx, "/v1.0/applications", url.Values{"$filter": {"appId eq " + role.Quote(appID)}})
	if err != nil {
		return nil, err
	}
	for _, r := range raw {
		var a application
		if json.Unmarshal(r, &a) == nil && a.ID != "" {
			return &a, nil
		}
	}
	return nil, errdefs.WithCode(errdefs.ErrNotFound, "ResourceNotFound", "Application '%s' doesn't exist.", appID)
}

// addPassword adds a secret to an application and returns its text.
func addPassword(ctx context.Context, c *client.Client, appObjectID string) (string, error) {
	var pw struct {
		SecretText string `json:"secretText"`
	}
	r, err := c.Call(ctx, http.MethodPost, "/v1.0/applications/"+url.PathEscape(appObjectID)+"/addPassword", nil,
		map[string]any{"passwordCredential": map[string]any{"displayName": "rbac"}})
	if err != nil {
		return "", err
	}
	if err := r.Decode(&pw); err != nil {
		return "", err
	}
	return pw.SecretText, nil
}

// CreateForRBAC does what az ad sp create-for-rbac does: an application
// with a secret, its service principal and, when role is not empty, the
// role at each scope.
func CreateForRBAC(ctx context.Context, c *client.Client, name, roleName string, scopes []string) (*Credentials, error) {
	var app application
	r, err := c.Call(ctx, http.MethodPost, "/v1.0/applications", nil, map[string]any{"displayName": name, "keyCredentials": []any{}})
	if err != nil {
		return nil, err
	}
	if err := r.Decode(&app); err != nil {
		return nil, err
	}
	secret, err := addPassword(ctx, c, app.ID)
	if err != nil {
		return nil, err
	}
	var sp role.ServicePrincipal
	r, err = c.Call(ctx, http.MethodPost, "/v1.0/servicePrincipals", nil, map[string]any{"appId": app.AppID, "accountEnabled": true})
	if err != nil {
		return nil, err
	}
	if err := r.Decode(&sp); err != nil {
		return nil, err
	}
	for _, scope := range scopes {
		if _, err := role.Assign(ctx, c, sp.ID, roleName, strings.TrimSuffix(scope, "/")); err != nil {
			return nil, fmt.Errorf("service principal %s created, but the role assignment at %s failed: %w", app.AppID, scope, err)
		}
	}
	return &Credentials{AppID: app.AppID, DisplayName: name, Password: secret, Tenant: sp.Tenant}, nil
}

func newCreateForRBACCmd(f *cmdutil.Factory) *cobra.Command {
	var name, roleName string
	var scopes []string
	cmd := &cobra.Command{
		Use:   "create-for-rbac",
		Short: "Create a service principal, with a role at scopes (--role and --scopes)",
		Long: `Create an application, its secret and its service principal, and give it --role at each of --scopes.
The secret is printed once: keep it.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (roleName == "") != (len(scopes) == 0) {
				return cmdutil.FlagErrorf("give --role and --scopes together")
			}
			if name == "" {
				name = "skiff-sp"
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			creds, err := CreateForRBAC(cmd.Context(), c, name, roleName, scopes)
			if err != nil {
				return err
			}
			return f.Print(creds, nil)
		},
	}
	cmd.Flags().StringVarP(&name, "name", "n", "", "display name of the service principal")
	cmd.Flags().StringVar(&roleName, "role", "", "role to give it (e.g. Contributor)")
	cmd.Flags().StringSliceVar(&scopes, "scopes", nil, "scopes of the role (resource ids), space or comma separated")
	return cmd
}

var spCols = &output.Columns{
	Headers: []string{"DisplayName", "Id", "AppId"},
	Row: func(it any) []string {
		return []string{
			output.Scalar(output.Field(it, "displayName")),
			output.Scalar(output.Field(it, "id")),
			output.Scalar(output.Field(it, "appId")),
		}
	},
}

func newListCmd(f *cmdutil.Factory) *cobra.Command {
	var display string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List service principals (--display-name: those whose name starts with it)",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			var q url.Values
			if display != "" {
				q = url.Values{"$filter": {"startswith(displayName," + role.Quote(display) + ")"}}
			}
			raw, err := c.List(cmd.Context(), "/v1.0/servicePrincipals", q)
			if err != nil {
				return err
			}
			return f.Print(raw, spCols)
		},
	}
	cmd.Flags().StringVar(&display, "display-name", "", "only those whose display name starts with this")
	return cmd
}

func newShowCmd(f *cmdutil.Factory) *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show a service principal (--id: its appId or object id)",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			sp, err := role.FindServicePrincipal(cmd.Context(), c, id)
			if err != nil {
				return err
			}
			r, err := c.Call(cmd.Context(), http.MethodGet, "/v1.0/servicePrincipals/"+url.PathEscape(sp.ID), nil, nil)
			if err != nil {
				return err
			}
			return f.PrintJSON(r.Body, spCols)
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "appId or object id")
	_ = cmd.MarkFlagRequired("id")
	return cmd
}

func newDeleteCmd(f *cmdutil.Factory) *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete a service principal and its application (--id: appId or object id)",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			sp, err := role.FindServicePrincipal(ctx, c, id)
			if err != nil {
				return err
			}
			if _, err := c.Call(ctx, http.MethodDelete, "/v1.0/servicePrincipals/"+url.PathEscape(sp.ID), nil, nil); err != nil {
				return err
			}
			// az ad sp delete removes the application as well.
			if app, err := applicationOf(ctx, c, sp.AppID); err == nil {
				if _, err := c.Call(ctx, http.MethodDelete, "/v1.0/applications/"+url.PathEscape(app.ID), nil, nil); err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
					return err
				}
			} else if !errdefs.Is(err, errdefs.ErrNotFound) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "appId or object id")
	_ = cmd.MarkFlagRequired("id")
	return cmd
}

func newCredentialResetCmd(f *cmdutil.Factory) *cobra.Command {
	var id string
	var appendSecret bool
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Give a service principal a new secret (the old ones stop working unless --append)",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.Client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			sp, err := role.FindServicePrincipal(ctx, c, id)
			if err != nil {
				return err
			}
			app, err := applicationOf(ctx, c, sp.AppID)
			if err != nil {
				return err
			}
			var old struct {
				Passwords []struct {
					KeyID string `json:"keyId"`
				} `json:"passwordCredentials"`
			}
			if err := c.Get(ctx, "/v1.0/applications/"+url.PathEscape(app.ID), &old); err != nil {
				return err
			}
			secret, err := addPassword(ctx, c, app.ID)
			if err != nil {
				return err
			}
			if !appendSecret {
				for _, p := range old.Passwords {
					if _, err := c.Call(ctx, http.MethodPost, "/v1.0/applications/"+url.PathEscape(app.ID)+"/removePassword", nil,
						map[string]any{"keyId": p.KeyID}); err != nil {
						return err
					}
				}
			}
			return f.Print(Credentials{AppID: sp.AppID, DisplayName: sp.DisplayName, Password: secret, Tenant: sp.Tenant}, nil)
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "appId or object id")
	cmd.Flags().BoolVar(&appendSecret, "append", false, "keep the existing secrets")
	_ = cmd.MarkFlagRequired("id")
	return cmd
}
