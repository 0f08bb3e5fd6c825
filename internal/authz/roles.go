package authz

import (
	"strings"
	"time"
)

// RoleDefinition is ARM's Microsoft.Authorization/roleDefinitions resource.
type RoleDefinition struct {
	// ID is "/subscriptions/{sub}/providers/Microsoft.Authorization/
	// roleDefinitions/{guid}", or without the subscription at the tenant
	// level.
	ID         string                   `json:"id"`
	Name       string                   `json:"name"` // the GUID
	Type       string                   `json:"type"` // RoleDefinitionType
	Properties RoleDefinitionProperties `json:"properties"`
}

// RoleDefinitionProperties are a role definition's properties.
type RoleDefinitionProperties struct {
	RoleName    string `json:"roleName"`
	Description string `json:"description"`
	// Type is BuiltInRole or CustomRole.
	Type             string       `json:"type"`
	Permissions      []Permission `json:"permissions"`
	AssignableScopes []string     `json:"assignableScopes"`
	CreatedOn        *time.Time   `json:"createdOn,omitempty"`
	UpdatedOn        *time.Time   `json:"updatedOn,omitempty"`
	CreatedBy        string       `json:"createdBy,omitempty"`
	UpdatedBy        string       `json:"updatedBy,omitempty"`
}

// Permission is one grant of a role: what it allows less what it excepts.
type Permission struct {
	Actions        []string `json:"actions"`
	NotActions     []string `json:"notActions"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions"`
}

// ARM's type names.
const (
	RoleDefinitionType = "Microsoft.Authorization/roleDefinitions"
	RoleAssignmentType = "Microsoft.Authorization/roleAssignments"
	BuiltInRole        = "BuiltInRole"
	CustomRole         = "CustomRole"
)

// The built-in roles' GUIDs, Azure's own, so that templates and scripts
// that name them by id work unchanged.
const (
	OwnerRoleID                         = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
	ContributorRoleID                   = "b24988ac-6180-42a0-ab88-20f7382dd24c"
	ReaderRoleID                        = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
	UserAccessAdministratorRoleID       = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
	ContainerInstancesContributorRoleID = "5d977122-f97e-4b4d-a52f-6b43003ddb4d"
)

// builtIns are Azure's built-in roles that matter to Skiff, with Azure's
// names, descriptions and permissions as Azure's built-in role reference
// lists them (Contributor's notActions as of 2024; the Azure Container
// Instances Contributor Role's actions as far as they concern Skiff's
// routes). Roles with ABAC conditions (Role Based Access Control
// Administrator) are left out: Skiff does not evaluate conditions.
var builtIns = []RoleDefinitionProperties{
	{
		RoleName:    "Owner",
		Description: "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
		Permissions: []Permission{{Actions: []string{"*"}}},
	},
	{
		RoleName: "Contributor",
		Description: "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, " +
			"manage assignments in Azure Blueprints, or share image galleries.",
		Permissions: []Permission{{
			Actions: []string{"*"},
			NotActions: []string{
				"Microsoft.Authorization/*/Delete",
				"Microsoft.Authorization/*/Write",
				"Microsoft.Authorization/elevateAccess/Action",
				"Microsoft.Blueprint/blueprintAssignments/write",
				"Microsoft.Blueprint/blueprintAssignments/delete",
				"Microsoft.Compute/galleries/share/action",
				"Microsoft.Purview/consents/write",
				"Microsoft.Purview/consents/delete",
				"Microsoft.Resources/deploymentStacks/manageDenySetting/action",
			},
		}},
	},
	{
		RoleName:    "Reader",
		Description: "View all resources, but does not allow you to make any changes.",
		Permissions: []Permission{{Actions: []string{"*/read"}}},
	},
	{
		RoleName:    "User Access Administrator",
		Description: "Lets you manage user access to Azure resources.",
		Permissions: []Permission{{Actions: []string{"*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"}}},
	},
	{
		RoleName:    "Azure Container Instances Contributor Role",
		Description: "Grants read/write access to container groups provided by Azure Container Instances",
		Permissions: []Permission{{Actions: []string{
			"Microsoft.Authorization/*/read",
			"Microsoft.ContainerInstance/containerGroups/*",
			"Microsoft.ContainerInstance/locations/*",
			"Microsoft.Insights/alertRules/*",
			"Microsoft.Resources/deployments/*",
			"Microsoft.Resources/subscriptions/resourceGroups/read",
			"Microsoft.Support/*",
		}}},
	},
}

var builtInIDs = []string{OwnerRoleID, ContributorRoleID, ReaderRoleID, UserAccessAdministratorRoleID, ContainerInstancesContributorRoleID}

// BuiltInRoles returns the built-in role definitions as seen from the
// subscription sub ("": at the tenant level).
func BuiltInRoles(sub string) []RoleDefinition {
	out := make([]RoleDefinition, 0, len(builtIns))
	for i, p := range builtIns {
		p.Type = BuiltInRole
		p.AssignableScopes = []string{"/"}
		p.Permissions = normalPermissions(p.Permissions)
		out = append(out, RoleDefinition{ID: RoleDefinitionID(sub, builtInIDs[i]), Name: builtInIDs[i], Type: RoleDefinitionType, Properties: p})
	}
	return out
}

// RoleDefinitionID is the id of role definition guid as seen from the
// subscription sub ("": at the tenant level).
func RoleDefinitionID(sub, guid string) string {
	id := "/providers/Microsoft.Authorization/roleDefinitions/" + guid
	if sub != "" {
		id = "/subscriptions/" + sub + id
	}
	return id
}

// roleGUIDOf returns the GUID of a role definition id in either of
// RoleDefinitionID's forms, or of a bare GUID; "" if it is neither.
func roleGUIDOf(id string) string {
	const marker = "/providers/microsoft.authorization/roledefinitions/"
	s := id
	if i := strings.LastIndex(strings.ToLower(id), marker); i >= 0 {
		prefix := strings.ToLower(id[:i])
		if prefix != "" && (subscriptionOf(prefix) == "" || len(scopeSegments(prefix)) != 2) {
			return ""
		}
		s = id[i+len(marker):]
	}
	if !isGUID(s) {
		return ""
	}
	return strings.ToLower(s)
}

// normalPermissions returns permissions whose lists are never nil, so that
// they are [] on the wire as ARM writes them.
func normalPermissions(ps []Permission) []Permission {
	out := make([]Permission, 0, len(ps))
	for _, p := range ps {
		out = append(out, Permission{
			Actions: nonNil(p.Actions), NotActions: nonNil(p.NotActions),
			DataActions: nonNil(p.DataActions), NotDataActions: nonNil(p.NotDataActions),
		})
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// compiledRole is a role ready for evaluation.
type compiledRole struct {
	def   RoleDefinition
	perms []compiledPermission
	// assignable are the segments of its assignable scopes.
	assignable [][]string
}

type compiledPermission struct{ actions, notActions []pattern }

func compileRole(def RoleDefinition) *compiledRole {
	c := &compiledRole{def: def}
	for _, p := range def.Properties.Permissions {
		c.perms = append(c.perms, compiledPermission{compileAll(p.Actions), compileAll(p.NotActions)})
	}
	for _, s := range def.Properties.AssignableScopes {
		c.assignable = append(c.assignable, scopeSegments(s))
	}
	return c
}

// allows reports whether the role allows the lower-case action: some
// permission's actions match it and that permission's notActions do not,
// as ARM evaluates a role (a notAction excepts from its own permission, it
// does not deny what another grants).
func (c *compiledRole) allows(action string) bool {
	for _, p := range c.perms {
		if matchAny(p.actions, action) && !matchAny(p.notActions, action) {
			return true
		}
	}
	return false
}

// assignableAt reports whether the role may be assigned at scope.
func (c *compiledRole) assignableAt(scope []string) bool {
	for _, a := range c.assignable {
		if within(scope, a) {
			return true
		}
	}
	return false
}
