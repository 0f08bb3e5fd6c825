package authz

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// RoleAssignment is ARM's Microsoft.Authorization/roleAssignments resource.
type RoleAssignment struct {
	// ID is "{scope}/providers/Microsoft.Authorization/roleAssignments/{name}".
	ID         string                   `json:"id"`
	Name       string                   `json:"name"` // a GUID
	Type       string                   `json:"type"` // RoleAssignmentType
	Properties RoleAssignmentProperties `json:"properties"`
}

// RoleAssignmentProperties are a role assignment's properties. A request
// sets RoleDefinitionID, PrincipalID, and optionally PrincipalType and
// Description; the rest is the server's.
type RoleAssignmentProperties struct {
	// RoleDefinitionID is "/subscriptions/{sub}/providers/Microsoft.
	// Authorization/roleDefinitions/{guid}" (a request may also give the
	// tenant-level form).
	RoleDefinitionID string `json:"roleDefinitionId"`
	PrincipalID      string `json:"principalId"`
	// PrincipalType is User, Group, ServicePrincipal, ForeignGroup or
	// Device.
	PrincipalType string `json:"principalType,omitempty"`
	Scope         string `json:"scope"`
	Description   string `json:"description,omitempty"`
	// Condition (ABAC) is refused: Skiff does not evaluate conditions,
	// and an assignment that ignored its condition would grant too much.
	Condition        string     `json:"condition,omitempty"`
	ConditionVersion string     `json:"conditionVersion,omitempty"`
	CreatedOn        *time.Time `json:"createdOn,omitempty"`
	UpdatedOn        *time.Time `json:"updatedOn,omitempty"`
	CreatedBy        string     `json:"createdBy,omitempty"`
	UpdatedBy        string     `json:"updatedBy,omitempty"`
}

// principalTypes are ARM's principal types by lower-case name.
var principalTypes = map[string]string{
	"user": "User", "group": "Group", "serviceprincipal": "ServicePrincipal",
	"foreigngroup": "ForeignGroup", "device": "Device",
}

// RoleAssignmentID is the id of the assignment name at scope.
func RoleAssignmentID(scope, name string) string {
	return strings.TrimRight(scope, "/") + "/providers/Microsoft.Authorization/roleAssignments/" + name
}

// RoleAssignmentNotFound is ARM's RoleAssignmentNotFound (404).
func RoleAssignmentNotFound(name string) error {
	return errdefs.WithCode(errdefs.ErrNotFound, "RoleAssignmentNotFound", "The role assignment '%s' is not found.", clip(name))
}

func uniqueKey(scope, roleGUID, principalID string) string {
	return strings.ToLower(scope) + "|" + roleGUID + "|" + strings.ToLower(principalID)
}

// CreateRoleAssignment assigns a role to a principal at scope, as the
// assignment name (a GUID), on behalf of the principal by, and returns it
// and whether it is new. As ARM:
//   - the same request again returns the assignment (only its description
//     may change);
//   - the name of an assignment of another role, principal or scope is
//     400 RoleAssignmentUpdateNotPermitted;
//   - a second assignment of the same role to the same principal at the
//     same scope is 409 RoleAssignmentExists, naming the first;
//   - an unknown role is 400 RoleDefinitionDoesNotExist, a custom role not
//     assignable at scope 400 RoleDefinitionNotAssignableAtScope.
func (a *Authorizer) CreateRoleAssignment(ctx context.Context, scope, name string, in RoleAssignmentProperties, by string) (*RoleAssignment, bool, error) {
	if !isGUID(name) {
		return nil, false, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidRoleAssignmentId",
			"The role assignment ID '%s' is not valid. The role assignment ID must be a GUID.", clip(name))
	}
	scope, err := CleanScope(scope)
	if err != nil {
		return nil, false, err
	}
	want, err := a.checkAssignment(ctx, scope, in)
	if err != nil {
		return nil, false, err
	}
	key := strings.ToLower(name)
	for range 2 {
		o, err := a.st.GetObject(ctx, kindAssignments, key)
		if err == nil {
			ex, err := decodeAssignment(*o)
			if err != nil {
				return nil, false, err
			}
			return a.sameAssignment(ctx, ex, want, o.Revision, by)
		}
		if !errdefs.Is(err, errdefs.ErrNotFound) {
			return nil, false, err
		}
		now := a.now().UTC()
		ra := RoleAssignment{ID: RoleAssignmentID(scope, name), Name: name, Type: RoleAssignmentType, Properties: want}
		ra.Properties.CreatedOn, ra.Properties.UpdatedOn, ra.Properties.CreatedBy, ra.Properties.UpdatedBy = &now, &now, by, by
		ukey := uniqueKey(scope, roleGUIDOf(want.RoleDefinitionID), want.PrincipalID)
		holder, err := a.claim(ctx, kindUnique, ukey, key, a.objectExists(kindAssignments))
		if err != nil {
			return nil, false, err
		}
		if holder != "" {
			return nil, false, errdefs.WithCode(errdefs.ErrConflict, "RoleAssignmentExists",
				"The role assignment already exists. The ID of the existing role assignment is %s.", strings.ReplaceAll(holder, "-", ""))
		}
		err = a.putJSON(ctx, kindAssignments, key, storedAssignment{V: schemaVersion, Assignment: ra}, 0)
		if err == nil {
			a.invalidate()
			return &ra, true, nil
		}
		if rerr := a.release(ctx, kindUnique, ukey, key); rerr != nil {
			return nil, false, rerr
		}
		if !errdefs.Is(err, errdefs.ErrConflict) {
			return nil, false, err
		}
		// The same name was created at the same time: compare with it.
	}
	return nil, false, errdefs.WithCode(errdefs.ErrConflict, "Conflict", "The role assignment '%s' was changed by another request at the same time. Retry the request.", name)
}

// checkAssignment validates a request's properties at scope and returns
// them as they are stored: the role definition id of scope's subscription,
// a principal type.
func (a *Authorizer) checkAssignment(ctx context.Context, scope string, in RoleAssignmentProperties) (RoleAssignmentProperties, error) {
	if in.Condition != "" || in.ConditionVersion != "" {
		return in, errdefs.WithCode(errdefs.ErrNotImplemented, "RoleAssignmentConditionNotSupported",
			"Role assignments with conditions are not supported: Skiff does not evaluate conditions.")
	}
	if !isGUID(in.PrincipalID) {
		return in, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidPrincipalId",
			"The principal ID '%s' is not valid. It must be the object id (a GUID) of a principal.", clip(in.PrincipalID))
	}
	guid := roleGUIDOf(in.RoleDefinitionID)
	if guid == "" {
		return in, invalidRoleDefinitionID(in.RoleDefinitionID)
	}
	role := builtInCompiled[guid]
	if role == nil {
		sr, _, err := a.customRole(ctx, guid)
		if err != nil {
			return in, err
		}
		if sr == nil {
			return in, errdefs.WithCode(errdefs.ErrInvalidArgument, "RoleDefinitionDoesNotExist",
				"The specified role definition with ID '%s' does not exist.", guid)
		}
		role = compileRole(sr.Definition)
	}
	if !role.assignableAt(scopeSegments(scope)) {
		return in, errdefs.WithCode(errdefs.ErrInvalidArgument, "RoleDefinitionNotAssignableAtScope",
			"The role definition '%s' is not assignable at scope '%s': its assignable scopes are %s.",
			role.def.Properties.RoleName, scope, strings.Join(role.def.Properties.AssignableScopes, ", "))
	}
	out := RoleAssignmentProperties{
		RoleDefinitionID: RoleDefinitionID(subscriptionOf(scope), guid),
		PrincipalID:      strings.ToLower(in.PrincipalID),
		Scope:            scope,
		Description:      in.Description,
	}
	if in.PrincipalType != "" {
		t, ok := principalTypes[strings.ToLower(in.PrincipalType)]
		if !ok {
			return in, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidPrincipalType",
				"The principal type '%s' is not valid. It is one of User, Group, ServicePrincipal, ForeignGroup or Device.", clip(in.PrincipalType))
		}
		out.PrincipalType = t
	}
	if a.lookup != nil {
		t, err := a.lookup(ctx, out.PrincipalID)
		if err != nil {
			return in, err
		}
		out.PrincipalType = cmp.Or(t, out.PrincipalType)
	}
	out.PrincipalType = cmp.Or(out.PrincipalType, "ServicePrincipal")
	return out, nil
}

// sameAssignment answers a PUT of a name that exists: the same assignment
// again is returned (with its new description), another is refused.
func (a *Authorizer) sameAssignment(ctx context.Context, ex RoleAssignment, want RoleAssignmentProperties, rev int64, by string) (*RoleAssignment, bool, error) {
	p := ex.Properties
	if !strings.EqualFold(p.Scope, want.Scope) || !strings.EqualFold(p.PrincipalID, want.PrincipalID) ||
		roleGUIDOf(p.RoleDefinitionID) != roleGUIDOf(want.RoleDefinitionID) {
		return nil, false, errdefs.WithCode(errdefs.ErrInvalidArgument, "RoleAssignmentUpdateNotPermitted",
			"Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
	}
	if p.Description == want.Description {
		return &ex, false, nil
	}
	now := a.now().UTC()
	ex.Properties.Description, ex.Properties.UpdatedOn, ex.Properties.UpdatedBy = want.Description, &now, by
	if err := a.putJSON(ctx, kindAssignments, strings.ToLower(ex.Name), storedAssignment{V: schemaVersion, Assignment: ex}, rev); err != nil {
		return nil, false, err
	}
	a.invalidate()
	return &ex, false, nil
}

// RoleAssignment returns the assignment name at scope (read from the
// store, not the snapshot), or RoleAssignmentNotFound.
func (a *Authorizer) RoleAssignment(ctx context.Context, scope, name string) (*RoleAssignment, error) {
	ra, _, err := a.assignmentAt(ctx, scope, name)
	if err != nil {
		return nil, err
	}
	if ra == nil {
		return nil, RoleAssignmentNotFound(name)
	}
	return ra, nil
}

func (a *Authorizer) assignmentAt(ctx context.Context, scope, name string) (*RoleAssignment, int64, error) {
	o, err := a.st.GetObject(ctx, kindAssignments, strings.ToLower(name))
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	ra, err := decodeAssignment(*o)
	if err != nil {
		return nil, 0, err
	}
	if !sameScope(ra.Properties.Scope, scope) {
		return nil, 0, nil
	}
	return &ra, o.Revision, nil
}

func sameScope(x, y string) bool { return slices.Equal(scopeSegments(x), scopeSegments(y)) }

// DeleteRoleAssignment deletes the assignment name at scope and returns
// it; nil if there is none (ARM answers 204).
func (a *Authorizer) DeleteRoleAssignment(ctx context.Context, scope, name string) (*RoleAssignment, error) {
	ra, rev, err := a.assignmentAt(ctx, scope, name)
	if err != nil || ra == nil {
		return nil, err
	}
	key := strings.ToLower(ra.Name)
	if err := a.st.DeleteObject(ctx, kindAssignments, key, rev); err != nil {
		if errdefs.Is(err, errdefs.ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	a.invalidate()
	p := ra.Properties
	if err := a.release(ctx, kindUnique, uniqueKey(p.Scope, roleGUIDOf(p.RoleDefinitionID), p.PrincipalID), key); err != nil {
		return nil, err
	}
	return ra, nil
}

// RoleAssignmentFilter narrows ListRoleAssignments, as ARM's $filter does.
type RoleAssignmentFilter struct {
	// AtScope keeps the assignments at the scope and above it, not those
	// under it (atScope()).
	AtScope bool
	// PrincipalID keeps one principal's (principalId eq '…', or
	// assignedTo('…'): Skiff has no groups, so the two are the same).
	PrincipalID string
}

// ListRoleAssignments returns the assignments that apply at scope (at it
// and above it) and, unless f.AtScope, those under it, narrowed by f, in
// order of scope and name.
func (a *Authorizer) ListRoleAssignments(ctx context.Context, scope string, f RoleAssignmentFilter) ([]RoleAssignment, error) {
	s, err := a.current(ctx)
	if err != nil {
		return nil, err
	}
	segs := scopeSegments(scope)
	out := []RoleAssignment{}
	for _, ra := range s.assignments {
		as := scopeSegments(ra.Properties.Scope)
		if !within(segs, as) && (f.AtScope || !within(as, segs)) {
			continue
		}
		if f.PrincipalID != "" && !strings.EqualFold(ra.Properties.PrincipalID, f.PrincipalID) {
			continue
		}
		out = append(out, ra)
	}
	slices.SortFunc(out, func(x, y RoleAssignment) int {
		return cmp.Or(strings.Compare(strings.ToLower(x.Properties.Scope), strings.ToLower(y.Properties.Scope)), strings.Compare(x.Name, y.Name))
	})
	return out, nil
}

// DeleteRoleAssignmentsUnder deletes the assignments at scope and under it
// and returns how many it deleted. ARM deletes a resource's assignments
// with it (they are its extension resources); the server calls this once
// a resource group or container group is gone, so that one created again
// under the same name does not inherit them.
func (a *Authorizer) DeleteRoleAssignmentsUnder(ctx context.Context, scope string) (int, error) {
	objs, err := a.st.ListObjects(ctx, kindAssignments, "")
	if err != nil {
		return 0, err
	}
	segs, n := scopeSegments(scope), 0
	for _, o := range objs {
		ra, err := decodeAssignment(o)
		if err != nil {
			return n, err
		}
		if !within(scopeSegments(ra.Properties.Scope), segs) {
			continue
		}
		deleted, err := a.DeleteRoleAssignment(ctx, ra.Properties.Scope, ra.Name)
		if err != nil {
			return n, err
		}
		if deleted != nil {
			n++
		}
	}
	return n, nil
}
