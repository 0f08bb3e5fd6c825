// Package login is `skiff login`, `skiff logout` and `skiff cloud-config`:
// signing the CLI in as a service principal of the server's directory,
// and the custom-cloud file the real az CLI registers the server with.
package login

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// CloudName is the name the printed login and cloud config give the
// server's cloud.
const CloudName = "skiff"

// NewCmds returns `skiff login`, `skiff logout` and `skiff cloud-config`.
func NewCmds(f *cmdutil.Factory) []*cobra.Command {
	return []*cobra.Command{newLoginCmd(f), newLogoutCmd(f), newCloudConfigCmd(f)}
}

// Subscription is one item of az login's output.
type Subscription struct {
	CloudName        string   `json:"cloudName"`
	HomeTenantID     string   `json:"homeTenantId"`
	ID               string   `json:"id"`
	IsDefault        bool     `json:"isDefault"`
	ManagedByTenants []string `json:"managedByTenants"`
	Name             string   `json:"name"`
	State            string   `json:"state"`
	TenantID         string   `json:"tenantId"`
	User             User     `json:"user"`
}

// User is who is logged in, as az prints it.
type User struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

func newLoginCmd(f *cmdutil.Factory) *cobra.Command {
	var sp bool
	var appID, password, tenant string
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Sign the CLI in as a service principal (--service-principal -u APPID -p SECRET --tenant TENANT)",
		Long: `Sign in as a service principal of the server's directory, as az login --service-principal does.
The credentials are checked (a token, then the subscriptions), stored in $SKIFF_CONFIG_DIR (default ~/.skiff,
mode 0600) and used by later commands unless $SKIFF_TOKEN is set. Without a login the CLI uses the admin
token of the data dir.`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !sp {
				return cmdutil.FlagErrorf("only service principals sign in: give --service-principal -u APPID -p SECRET --tenant TENANT")
			}
			if appID == "" || password == "" {
				return cmdutil.FlagErrorf("--service-principal needs -u/--username (the appId) and -p/--password (its secret)")
			}
			ep := f.Endpoint
			if ep == "" {
				ep = f.Getenv(cmdutil.EnvEndpoint)
			}
			if ep == "" {
				ep = client.DefaultEndpoint
			}
			l := cmdutil.Login{Endpoint: ep, AppID: appID, Password: password, Tenant: tenant}
			if ca := f.CAFile(ep); ca != "" {
				abs, err := filepath.Abs(ca)
				if err != nil {
					return err
				}
				l.CAFile = abs
			}
			c, err := f.NewClient(ep, l.ServicePrincipal(), &l)
			if err != nil {
				return err
			}
			l.Endpoint = c.Endpoint()
			subs, err := loginSubscriptions(cmd.Context(), c, appID, f.Subscription)
			if err != nil {
				return err
			}
			for _, s := range subs {
				if s.IsDefault {
					l.Subscription = s.ID
				}
			}
			if err := f.SaveLogin(l); err != nil {
				return err
			}
			return f.Print(subs, nil)
		},
	}
	f.AddGlobalFlags(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&sp, "service-principal", false, "sign in with a service principal's client credentials")
	fl.StringVarP(&appID, "username", "u", "", "the service principal's appId")
	fl.StringVarP(&password, "password", "p", "", "its secret")
	fl.StringVarP(&tenant, "tenant", "t", "", "the directory's tenant id")
	return cmd
}

// loginSubscriptions lists what the principal sees, as az login prints it;
// none is an error, as in az.
func loginSubscriptions(ctx context.Context, c *client.Client, appID, def string) ([]Subscription, error) {
	list, err := c.Subscriptions(ctx)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, errdefs.WithCode(errdefs.ErrForbidden, "NoSubscriptionsFound", "No subscriptions found for %s.", appID)
	}
	out := make([]Subscription, 0, len(list))
	for i, s := range list {
		isDefault := i == 0
		if def != "" {
			isDefault = strings.EqualFold(def, s.SubscriptionID)
		}
		out = append(out, Subscription{CloudName: CloudName, HomeTenantID: s.TenantID, ID: s.SubscriptionID, IsDefault: isDefault,
			ManagedByTenants: []string{}, Name: s.DisplayName, State: s.State, TenantID: s.TenantID,
			User: User{Name: appID, Type: "servicePrincipal"}})
	}
	return out, nil
}

func newLogoutCmd(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Forget the service principal of skiff login",
		Args:  cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			had, err := f.RemoveLogin()
			if err != nil {
				return fmt.Errorf("logout: %w", err)
			}
			if !had {
				return errdefs.WithCode(errdefs.ErrNotFound, "", "there is no active login")
			}
			return nil
		},
	}
}

// CloudConfig is the file of az cloud register --cloud-config @FILE.
type CloudConfig struct {
	Endpoints CloudEndpoints `json:"endpoints"`
	Suffixes  CloudSuffixes  `json:"suffixes"`
}

// CloudSuffixes are the DNS suffixes az needs for Skiff: the storage
// endpoints' (az storage account show-connection-string prints it).
type CloudSuffixes struct {
	StorageEndpoint string `json:"storageEndpoint"`
}

// CloudEndpoints are the endpoints az needs for Skiff: ARM, the
// authority and the resource ids of ARM and Graph.
type CloudEndpoints struct {
	ResourceManager                string `json:"resourceManager"`
	ActiveDirectory                string `json:"activeDirectory"`
	ActiveDirectoryResourceID      string `json:"activeDirectoryResourceId"`
	ActiveDirectoryGraphResourceID string `json:"activeDirectoryGraphResourceId"`
	MicrosoftGraphResourceID       string `json:"microsoftGraphResourceId"`
}

func newCloudConfigCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cloud-config",
		Short: "Print the file that registers this server as a cloud of the az CLI",
		Long: `Print the custom-cloud file of this server for the real az CLI:

  skiff cloud-config --endpoint https://HOST:PORT > skiff-cloud.json
  az cloud register -n skiff --cloud-config @skiff-cloud.json
  az cloud set -n skiff
  REQUESTS_CA_BUNDLE=DATA-DIR/ca.crt az login --service-principal -u APPID -p SECRET --tenant TENANT

The authority and the resource ids are the ones the server advertises (/metadata/endpoints).`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ep := f.Endpoint
			if ep == "" {
				ep = f.Getenv(cmdutil.EnvEndpoint)
			}
			c, err := f.NewClient(ep, noToken{}, nil)
			if err != nil {
				return err
			}
			var md struct {
				Authentication struct {
					LoginEndpoint string   `json:"loginEndpoint"`
					Audiences     []string `json:"audiences"`
				} `json:"authentication"`
			}
			if err := c.Get(cmd.Context(), "/metadata/endpoints?api-version=2015-01-01", &md); err != nil {
				return fmt.Errorf("the server's cloud metadata (is it started with --tls-listen?): %w", err)
			}
			if md.Authentication.LoginEndpoint == "" || len(md.Authentication.Audiences) == 0 {
				return errdefs.WithCode(errdefs.ErrUnavailable, "", "the server at %s advertises no identity provider: start it with --tls-listen", c.Endpoint())
			}
			res := md.Authentication.Audiences[0]
			return f.Print(CloudConfig{Endpoints: CloudEndpoints{
				ResourceManager: strings.TrimSuffix(c.Endpoint(), "/") + "/", ActiveDirectory: md.Authentication.LoginEndpoint,
				ActiveDirectoryResourceID: res, ActiveDirectoryGraphResourceID: res, MicrosoftGraphResourceID: res,
			}, Suffixes: CloudSuffixes{StorageEndpoint: api.StorageEndpointSuffix}}, nil)
		},
	}
	f.AddGlobalFlags(cmd)
	return cmd
}

// noToken is a TokenSource that sends no token (for the unauthenticated
// metadata route).
type noToken struct{}

func (noToken) Token(context.Context, *http.Client, string) (string, error) { return "", nil }
