package authz

import (
	"context"
	"strings"
)

// ActionPermissionsRead is ARM's GET {scope}/providers/Microsoft.Authorization/
// permissions: the caller's own permissions at a scope. Any authenticated
// principal may ask (ScopeAuthenticated), as ARM lets it.
const ActionPermissionsRead = "Microsoft.Authorization/permissions/read"

// Permissions returns the permissions of every role assigned to
// principalID at scope or above it, one entry per permission of each
// assignment, as ARM's permissions list shows them ({"actions",
// "notActions"}). A principal with no role there has none.
func (a *Authorizer) Permissions(ctx context.Context, principalID, scope string) ([]Permission, error) {
	s, err := a.current(ctx)
	if err != nil {
		return nil, err
	}
	segs := scopeSegments(scope)
	out := []Permission{}
	for _, g := range s.grants[strings.ToLower(principalID)] {
		if !within(segs, g.scope) {
			continue
		}
		out = append(out, normalPermissions(g.role.def.Properties.Permissions)...)
	}
	return out, nil
}
