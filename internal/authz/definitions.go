package authz

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"unicode"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// RoleDefinitionFilter narrows ListRoleDefinitions, as ARM's $filter does.
type RoleDefinitionFilter struct {
	// RoleName keeps the role of that name (roleName eq '…'), compared
	// without case: az asks for 'contributor'.
	RoleName string
	// Type keeps BuiltInRole or CustomRole roles (type eq '…').
	Type string
	// AtScopeAndBelow adds the custom roles assignable only under the
	// scope (atScopeAndBelow()).
	AtScopeAndBelow bool
}

// RoleDefinitionNotFound is ARM's RoleDefinitionDoesNotExist (404).
func RoleDefinitionNotFound(id string) error {
	return errdefs.WithCode(errdefs.ErrNotFound, "RoleDefinitionDoesNotExist", "The specified role definition with ID '%s' does not exist.", clip(id))
}

func invalidRoleDefinitionID(id string) error {
	return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidRoleDefinitionId",
		"The role definition ID '%s' is not valid. It must be a GUID, or a role definition's resource id.", clip(id))
}

func invalidRoleDefinition(format string, a ...any) error {
	return errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidRoleDefinition", format, a...)
}

func builtInUnchangeable(id string) error {
	return errdefs.WithCode(errdefs.ErrInvalidArgument, "BuiltInRoleCannotBeModified",
		"The role definition '%s' is a built-in role; built-in roles cannot be changed or deleted.", id)
}

// builtInAt returns the built-in role guid as seen from scope: its id
// names the scope's subscription (a custom role's id names its own).
func builtInAt(guid, scope string) (RoleDefinition, bool) {
	r := builtInCompiled[strings.ToLower(guid)]
	if r == nil {
		return RoleDefinition{}, false
	}
	d := r.def
	d.ID = RoleDefinitionID(subscriptionOf(scope), d.Name)
	return d, true
}

// visibleAt reports whether a custom role is seen at scope: at the tenant
// level always, else in its own subscription (where all its assignable
// scopes are).
func (sr storedRole) visibleAt(scope string) bool {
	sub := subscriptionOf(scope)
	return sub == "" || strings.EqualFold(sr.Subscription, sub)
}

// RoleDefinition returns the role definition id (a GUID or a role
// definition's resource id) as seen from scope, or RoleDefinitionNotFound.
func (a *Authorizer) RoleDefinition(ctx context.Context, scope, id string) (*RoleDefinition, error) {
	guid := roleGUIDOf(id)
	if guid == "" {
		return nil, RoleDefinitionNotFound(id)
	}
	if d, ok := builtInAt(guid, scope); ok {
		return &d, nil
	}
	sr, _, err := a.customRole(ctx, guid)
	if err != nil {
		return nil, err
	}
	if sr == nil || !sr.visibleAt(scope) {
		return nil, RoleDefinitionNotFound(id)
	}
	return &sr.Definition, nil
}

// customRole reads a custom role from the store (nil if there is none).
func (a *Authorizer) customRole(ctx context.Context, guid string) (*storedRole, int64, error) {
	o, err := a.st.GetObject(ctx, kindRoles, guid)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var sr storedRole
	if err := json.Unmarshal(o.Value, &sr); err != nil {
		return nil, 0, err
	}
	return &sr, o.Revision, nil
}

// ListRoleDefinitions returns the roles that can be assigned at scope: the
// built-in roles and the custom roles assignable at scope or above it
// (with AtScopeAndBelow, under it too), narrowed by f, built-in roles
// first, each in name order.
func (a *Authorizer) ListRoleDefinitions(ctx context.Context, scope string, f RoleDefinitionFilter) ([]RoleDefinition, error) {
	s, err := a.current(ctx)
	if err != nil {
		return nil, err
	}
	keep := func(d RoleDefinition) bool {
		return (f.RoleName == "" || strings.EqualFold(d.Properties.RoleName, f.RoleName)) &&
			(f.Type == "" || strings.EqualFold(d.Properties.Type, f.Type))
	}
	out := []RoleDefinition{}
	for _, d := range BuiltInRoles(subscriptionOf(scope)) {
		if keep(d) {
			out = append(out, d)
		}
	}
	segs := scopeSegments(scope)
	var customs []RoleDefinition
	for _, sr := range s.customs {
		d := sr.Definition
		c := compileRole(d)
		assignable := c.assignableAt(segs)
		if !assignable && f.AtScopeAndBelow {
			assignable = slices.ContainsFunc(c.assignable, func(as []string) bool { return within(as, segs) })
		}
		if assignable && keep(d) {
			customs = append(customs, d)
		}
	}
	slices.SortFunc(customs, func(x, y RoleDefinition) int {
		return strings.Compare(strings.ToLower(x.Properties.RoleName), strings.ToLower(y.Properties.RoleName))
	})
	return append(out, customs...), nil
}

// PutRoleDefinition creates or replaces the custom role guid, put at scope
// (a subscription, or a scope in one: the role is kept in that
// subscription, and is assignable only in it) by the principal by. It
// returns the role and whether it is new. Its name must be unique in the
// directory (409 RoleDefinitionWithSameNameExists); built-in roles cannot
// be replaced, nor another subscription's role (404).
func (a *Authorizer) PutRoleDefinition(ctx context.Context, scope, guid string, in RoleDefinitionProperties, by string) (*RoleDefinition, bool, error) {
	if !isGUID(guid) {
		return nil, false, invalidRoleDefinitionID(guid)
	}
	guid = strings.ToLower(guid)
	if _, ok := builtInCompiled[guid]; ok {
		return nil, false, builtInUnchangeable(guid)
	}
	sub := subscriptionOf(scope)
	if sub == "" {
		return nil, false, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidScope",
			"Custom roles are kept in a subscription: put the role definition at a subscription's scope.")
	}
	old, rev, err := a.customRole(ctx, guid)
	if err != nil {
		return nil, false, err
	}
	if old != nil && !old.visibleAt(scope) {
		return nil, false, RoleDefinitionNotFound(guid)
	}
	props, err := checkCustomRole(in, sub)
	if err != nil {
		return nil, false, err
	}
	now := a.now().UTC()
	props.UpdatedOn, props.UpdatedBy = &now, by
	props.CreatedOn, props.CreatedBy = &now, by
	if old != nil {
		sub = old.Subscription // its id stays as it was
		props.CreatedOn, props.CreatedBy = old.Definition.Properties.CreatedOn, old.Definition.Properties.CreatedBy
	}
	nameKey := strings.ToLower(props.RoleName)
	renamed := old == nil || !strings.EqualFold(old.Definition.Properties.RoleName, props.RoleName)
	if renamed {
		if slices.ContainsFunc(builtIns, func(b RoleDefinitionProperties) bool { return strings.EqualFold(b.RoleName, props.RoleName) }) {
			return nil, false, sameRoleName(props.RoleName)
		}
		holder, err := a.claim(ctx, kindRoleNames, nameKey, guid, a.roleNamed(nameKey))
		if err != nil {
			return nil, false, err
		}
		if holder != "" {
			return nil, false, sameRoleName(props.RoleName)
		}
	}
	def := RoleDefinition{ID: RoleDefinitionID(sub, guid), Name: guid, Type: RoleDefinitionType, Properties: props}
	if err := a.putJSON(ctx, kindRoles, guid, storedRole{V: schemaVersion, Subscription: sub, Definition: def}, rev); err != nil {
		if renamed {
			_ = a.release(ctx, kindRoleNames, nameKey, guid)
		}
		if errdefs.Is(err, errdefs.ErrConflict) {
			return nil, false, errdefs.WithCode(errdefs.ErrConflict, "Conflict",
				"The role definition '%s' was changed by another request at the same time. Retry the request.", guid)
		}
		return nil, false, err
	}
	a.invalidate()
	if renamed && old != nil {
		if err := a.release(ctx, kindRoleNames, strings.ToLower(old.Definition.Properties.RoleName), guid); err != nil {
			return nil, false, err
		}
	}
	return &def, old == nil, nil
}

// roleNamed is the exists func of a role name's claim: the holder is a
// custom role of that name still (not one renamed since).
func (a *Authorizer) roleNamed(nameKey string) func(ctx context.Context, holder string) (bool, error) {
	return func(ctx context.Context, holder string) (bool, error) {
		sr, _, err := a.customRole(ctx, holder)
		return sr != nil && strings.EqualFold(sr.Definition.Properties.RoleName, nameKey), err
	}
}

func sameRoleName(name string) error {
	return errdefs.WithCode(errdefs.ErrConflict, "RoleDefinitionWithSameNameExists",
		"A role definition named '%s' exists already in this directory. Use a different name.", name)
}

// checkCustomRole validates a custom role's properties and returns them
// clean: a name, at least one action, assignable scopes in the
// subscription sub.
func checkCustomRole(in RoleDefinitionProperties, sub string) (RoleDefinitionProperties, error) {
	out := RoleDefinitionProperties{RoleName: strings.TrimSpace(in.RoleName), Description: in.Description, Type: CustomRole}
	if out.RoleName == "" {
		return out, invalidRoleDefinition("The role definition's roleName is required.")
	}
	if len(out.RoleName) > 512 {
		return out, invalidRoleDefinition("The role definition's roleName is longer than 512 characters.")
	}
	if in.Type != "" && !strings.EqualFold(in.Type, CustomRole) {
		return out, invalidRoleDefinition("The role definition's type '%s' is not valid: a role defined through the API is a '%s'.", clip(in.Type), CustomRole)
	}
	if len(in.Permissions) == 0 {
		return out, invalidRoleDefinition("The role definition has no permissions.")
	}
	grants := false
	for _, p := range in.Permissions {
		for _, list := range [][]string{p.Actions, p.NotActions, p.DataActions, p.NotDataActions} {
			for _, action := range list {
				if action == "" || strings.IndexFunc(action, unicode.IsSpace) >= 0 {
					return out, invalidRoleDefinition("The action '%s' is not valid: actions are of the form 'Provider.Namespace/type/operation', with '*' as a wildcard.", clip(action))
				}
			}
		}
		grants = grants || len(p.Actions) > 0 || len(p.DataActions) > 0
	}
	if !grants {
		return out, invalidRoleDefinition("The role definition grants no action: give its permissions actions or dataActions.")
	}
	out.Permissions = normalPermissions(in.Permissions)
	if len(in.AssignableScopes) == 0 {
		return out, invalidRoleDefinition("The role definition's assignableScopes are required.")
	}
	for _, s := range in.AssignableScopes {
		clean, err := CleanScope(s)
		if err != nil {
			return out, err
		}
		if clean == "/" {
			return out, invalidRoleDefinition("A custom role cannot be assignable at the root scope '/'.")
		}
		if !strings.EqualFold(subscriptionOf(clean), sub) {
			return out, invalidRoleDefinition("The assignable scope '%s' is not in the subscription '%s' the role is defined in.", clean, sub)
		}
		out.AssignableScopes = append(out.AssignableScopes, clean)
	}
	return out, nil
}

// DeleteRoleDefinition deletes the custom role guid and returns it (nil if
// there is none, which ARM answers with 204). A role still assigned is
// refused (409 RoleDefinitionHasAssignments), a built-in one too.
func (a *Authorizer) DeleteRoleDefinition(ctx context.Context, scope, guid string) (*RoleDefinition, error) {
	g := roleGUIDOf(guid)
	if g == "" {
		return nil, invalidRoleDefinitionID(guid)
	}
	if _, ok := builtInCompiled[g]; ok {
		return nil, builtInUnchangeable(g)
	}
	sr, rev, err := a.customRole(ctx, g)
	if err != nil || sr == nil || !sr.visibleAt(scope) {
		return nil, err
	}
	objs, err := a.st.ListObjects(ctx, kindAssignments, "")
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		ra, err := decodeAssignment(o)
		if err != nil {
			return nil, err
		}
		if roleGUIDOf(ra.Properties.RoleDefinitionID) == g {
			return nil, errdefs.WithCode(errdefs.ErrConflict, "RoleDefinitionHasAssignments",
				"There are existing role assignments referencing role '%s'. Delete them first.", sr.Definition.Properties.RoleName)
		}
	}
	if err := a.st.DeleteObject(ctx, kindRoles, g, rev); err != nil {
		if errdefs.Is(err, errdefs.ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	a.invalidate()
	if err := a.release(ctx, kindRoleNames, strings.ToLower(sr.Definition.Properties.RoleName), g); err != nil {
		return nil, err
	}
	return &sr.Definition, nil
}
