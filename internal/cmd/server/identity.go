package servercmd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/skiff-sh/skiff/internal/atomicfile"
	"github.com/skiff-sh/skiff/internal/authz"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/identity"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store"
)

// adminSPFile is where a server writes the bootstrap Owner's credentials
// ({"appId","password","tenant"}, mode 0600): what `skiff login
// --service-principal` and `az login --service-principal` take.
const adminSPFile = "admin-sp.json"

// metaAdminApp is the store setting naming the bootstrap Owner's appId,
// so that every server of a cluster shares one.
const metaAdminApp = "identity.adminAppId"

// ensureAdminPrincipal makes, on first start, the bootstrap Owner: a
// service principal with the Owner role at the root scope "/" (every
// subscription), and writes its credentials to DATA-DIR/admin-sp.json.
// A server whose data dir lacks the file while the store names an Owner
// (a second server of a cluster, or a deleted file) gives that Owner a new
// secret and writes it; a file that names a principal that still exists
// is kept as it is. Secrets are stored hashed, so a lost file cannot be
// read back, only replaced.
func ensureAdminPrincipal(ctx context.Context, st store.Store, id *identity.Provider, rbac *authz.Authorizer, dataDir string) error {
	path := filepath.Join(dataDir, adminSPFile)
	appID, err := st.GetMeta(ctx, metaAdminApp)
	if err != nil && !errdefs.Is(err, errdefs.ErrNotFound) {
		return err
	}
	if appID != "" {
		if _, err := id.AppByAppID(ctx, appID); errdefs.Is(err, errdefs.ErrNotFound) {
			appID = "" // deleted: make another
		} else if err != nil {
			return err
		}
	}
	if appID != "" {
		var have identity.Credentials
		if data, err := os.ReadFile(path); err == nil && json.Unmarshal(data, &have) == nil && have.AppID == appID {
			return nil
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %w", path, err)
		}
		app, err := id.AppByAppID(ctx, appID)
		if err != nil {
			return err
		}
		pw, err := id.AddPassword(ctx, app.ID, identity.PasswordSpec{DisplayName: "skiff server " + dataDir})
		if err != nil {
			return err
		}
		return writeCredentials(path, identity.Credentials{AppID: appID, Password: *pw.SecretText, Tenant: id.TenantID(), DisplayName: app.DisplayName})
	}
	cred, err := id.CreateServicePrincipalWithSecret(ctx, "skiff-admin", 0)
	if err != nil {
		return err
	}
	owner := authz.RoleDefinitionID("", authz.OwnerRoleID)
	if _, _, err := rbac.CreateRoleAssignment(ctx, "/", uuid.NewString(), authz.RoleAssignmentProperties{
		RoleDefinitionID: owner, PrincipalID: cred.ObjectID, PrincipalType: "ServicePrincipal",
		Description: "The bootstrap Owner of this Skiff."}, "skiff"); err != nil {
		return fmt.Errorf("bootstrap Owner: %w", err)
	}
	if err := st.PutMeta(ctx, metaAdminApp, cred.AppID); err != nil {
		return err
	}
	return writeCredentials(path, *cred)
}

// writeCredentials writes az's create-for-rbac shape, 0600.
func writeCredentials(path string, c identity.Credentials) error {
	data, err := json.MarshalIndent(map[string]string{"appId": c.AppID, "displayName": c.DisplayName, "password": c.Password, "tenant": c.Tenant}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(data, '\n'), 0o600)
}

// startIdentity starts role-based access control and, over HTTPS (MSAL
// and az accept no other authority), the identity provider at the API's
// URL with its bootstrap Owner. Without --tls-listen only the admin token
// authenticates.
func startIdentity(ctx context.Context, o Options, st store.Store, sealer *seal.Sealer, tlsEndpoint string, log *slog.Logger) (*identity.Provider, *authz.Authorizer, error) {
	var id *identity.Provider
	rbac := authz.New(authz.Options{Store: st, LookupPrincipal: func(ctx context.Context, principalID string) (string, error) {
		if id == nil {
			return "", nil
		}
		if _, err := id.GetServicePrincipal(ctx, principalID); err != nil {
			if errdefs.Is(err, errdefs.ErrNotFound) {
				return "", errdefs.WithCode(errdefs.ErrInvalidArgument, "PrincipalNotFound",
					"Principal %s does not exist in the directory %s.", principalID, id.TenantID())
			}
			return "", err
		}
		return "ServicePrincipal", nil
	}})
	base := cmp.Or(o.APIURL, tlsEndpoint)
	if base == "" {
		return nil, rbac, nil
	}
	var err error
	id, err = identity.New(ctx, identity.Config{Store: st, Sealer: sealer, BaseURL: base, Logger: log.With("component", "identity"),
		RotationPeriod: 24 * time.Hour})
	if err != nil {
		return nil, nil, fmt.Errorf("identity provider at %s: %w", base, err)
	}
	go id.Run(ctx)
	if err := ensureAdminPrincipal(ctx, st, id, rbac, o.DataDir); err != nil {
		return nil, nil, err
	}
	return id, rbac, nil
}
