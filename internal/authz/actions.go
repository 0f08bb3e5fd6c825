package authz

import "strings"

// The actions of Skiff's routes. They are Azure's own operation names
// (docs: "Azure permissions for Containers", "… for Management and
// governance", "… for Monitor") wherever Azure has the operation; the few
// that Azure lacks carry a Skiff namespace (Skiff.ContainerInstance,
// Skiff.Cluster), so that "*" (Owner, Contributor) grants them and no
// Microsoft.* wildcard of a built-in role does by accident.
const (
	ActionSubscriptionsRead         = "Microsoft.Resources/subscriptions/read"
	ActionResourceGroupsRead        = "Microsoft.Resources/subscriptions/resourceGroups/read"
	ActionResourceGroupsWrite       = "Microsoft.Resources/subscriptions/resourceGroups/write"
	ActionResourceGroupsDelete      = "Microsoft.Resources/subscriptions/resourceGroups/delete"
	ActionContainerInstanceRegister = "Microsoft.ContainerInstance/register/action"
	ActionStandbyPoolRegister       = "Microsoft.StandbyPool/register/action"
	ActionProviderOperationsRead    = "Microsoft.ContainerInstance/operations/read"

	ActionContainerGroupsRead   = "Microsoft.ContainerInstance/containerGroups/read"
	ActionContainerGroupsWrite  = "Microsoft.ContainerInstance/containerGroups/write"
	ActionContainerGroupsDelete = "Microsoft.ContainerInstance/containerGroups/delete"
	// Container group profiles.
	ActionContainerGroupProfilesRead   = "Microsoft.ContainerInstance/containerGroupProfiles/read"
	ActionContainerGroupProfilesWrite  = "Microsoft.ContainerInstance/containerGroupProfiles/write"
	ActionContainerGroupProfilesDelete = "Microsoft.ContainerInstance/containerGroupProfiles/delete"
	// NGroups.
	ActionNGroupsRead    = "Microsoft.ContainerInstance/ngroups/read"
	ActionNGroupsWrite   = "Microsoft.ContainerInstance/ngroups/write"
	ActionNGroupsDelete  = "Microsoft.ContainerInstance/ngroups/delete"
	ActionNGroupsStart   = "Microsoft.ContainerInstance/ngroups/start/action"
	ActionNGroupsStop    = "Microsoft.ContainerInstance/ngroups/stop/action"
	ActionNGroupsRestart = "Microsoft.ContainerInstance/ngroups/restart/action"
	// Standby pools.
	ActionStandbyPoolsRead         = "Microsoft.StandbyPool/standbyContainerGroupPools/read"
	ActionStandbyPoolsWrite        = "Microsoft.StandbyPool/standbyContainerGroupPools/write"
	ActionStandbyPoolsDelete       = "Microsoft.StandbyPool/standbyContainerGroupPools/delete"
	ActionStandbyPoolViewsRead     = "Microsoft.StandbyPool/standbyContainerGroupPools/runtimeViews/read"
	ActionContainerGroupsStart     = "Microsoft.ContainerInstance/containerGroups/start/action"
	ActionContainerGroupsStop      = "Microsoft.ContainerInstance/containerGroups/stop/action"
	ActionContainerGroupsRestart   = "Microsoft.ContainerInstance/containerGroups/restart/action"
	ActionOutboundEndpointsRead    = "Microsoft.ContainerInstance/containerGroups/outboundNetworkDependenciesEndpoints/read"
	ActionContainerLogsRead        = "Microsoft.ContainerInstance/containerGroups/containers/logs/read"
	ActionContainerExec            = "Microsoft.ContainerInstance/containerGroups/containers/exec/action"
	ActionContainerAttach          = "Microsoft.ContainerInstance/containerGroups/containers/attach/action"
	ActionLocationOperationsRead   = "Microsoft.ContainerInstance/locations/operations/read"
	ActionLocationUsagesRead       = "Microsoft.ContainerInstance/locations/usages/read"
	ActionLocationCapabilitiesRead = "Microsoft.ContainerInstance/locations/capabilities/read"
	ActionLocationCachedImagesRead = "Microsoft.ContainerInstance/locations/cachedImages/read"
	ActionMetricsRead              = "Microsoft.Insights/metrics/read"

	// Skiff's own: Azure has no image routes and no hosts.
	ActionImagesPull   = "Skiff.ContainerInstance/locations/images/pull/action"
	ActionImagesImport = "Skiff.ContainerInstance/locations/images/import/action"
	ActionImagesDelete = "Skiff.ContainerInstance/locations/images/delete"
	ActionHostsRead    = "Skiff.Cluster/hosts/read"

	ActionRoleAssignmentsRead   = "Microsoft.Authorization/roleAssignments/read"
	ActionRoleAssignmentsWrite  = "Microsoft.Authorization/roleAssignments/write"
	ActionRoleAssignmentsDelete = "Microsoft.Authorization/roleAssignments/delete"
	ActionRoleDefinitionsRead   = "Microsoft.Authorization/roleDefinitions/read"
	ActionRoleDefinitionsWrite  = "Microsoft.Authorization/roleDefinitions/write"
	ActionRoleDefinitionsDelete = "Microsoft.Authorization/roleDefinitions/delete"

	// Template deployments at resource group scope.
	ActionDeploymentsRead                 = "Microsoft.Resources/deployments/read"
	ActionDeploymentsWrite                = "Microsoft.Resources/deployments/write"
	ActionDeploymentsDelete               = "Microsoft.Resources/deployments/delete"
	ActionDeploymentsCancel               = "Microsoft.Resources/deployments/cancel/action"
	ActionDeploymentsValidate             = "Microsoft.Resources/deployments/validate/action"
	ActionDeploymentsExportTemplate       = "Microsoft.Resources/deployments/exportTemplate/action"
	ActionDeploymentOperationsRead        = "Microsoft.Resources/deployments/operations/read"
	ActionDeploymentOperationStatusesRead = "Microsoft.Resources/deployments/operationstatuses/read"

	// Storage accounts and their file shares (Microsoft.Storage). Reader's
	// "*/read" does not give listKeys: the keys mount the shares.
	ActionStorageCheckName          = "Microsoft.Storage/checknameavailability/read"
	ActionStorageAccountsRead       = "Microsoft.Storage/storageAccounts/read"
	ActionStorageAccountsWrite      = "Microsoft.Storage/storageAccounts/write"
	ActionStorageAccountsDelete     = "Microsoft.Storage/storageAccounts/delete"
	ActionStorageAccountsListKeys   = "Microsoft.Storage/storageAccounts/listKeys/action"
	ActionStorageAccountsRegenerate = "Microsoft.Storage/storageAccounts/regenerateKey/action"
	ActionStorageFileServicesRead   = "Microsoft.Storage/storageAccounts/fileServices/read"
	ActionStorageFileSharesRead     = "Microsoft.Storage/storageAccounts/fileServices/shares/read"
	ActionStorageFileSharesWrite    = "Microsoft.Storage/storageAccounts/fileServices/shares/write"
	ActionStorageFileSharesDelete   = "Microsoft.Storage/storageAccounts/fileServices/shares/delete"
)

// ScopeKind says what a route's action is checked over.
type ScopeKind int

const (
	// ScopePath: the action over the request's path (without the query),
	// as ARM names the scope in AuthorizationFailed. Assignments at any of
	// its parents apply, so a group's path is covered by a role on its
	// resource group; a list's path is the collection's, and list handlers
	// narrow the items with AllowedScopes.
	ScopePath ScopeKind = iota
	// ScopeAuthenticated: any authenticated principal (ARM's provider
	// operations and its tenant-level built-in role definitions).
	ScopeAuthenticated
	// ScopeSubscriptionMember: a principal with any role at, above or
	// under the subscription (ARM shows a resource-group contributor its
	// subscription); GET /subscriptions lists those (Subscriptions).
	ScopeSubscriptionMember
	// ScopeOperationTarget: the action over the operation's target
	// resource (store.Operation.ResourceID), so that whoever started a
	// long-running operation on a group may poll it, as ARM lets an
	// Azure-AsyncOperation URL be polled by the principal that got it.
	ScopeOperationTarget
	// ScopeList: a list of what is under a subscription or resource group
	// (the path less its last ".../providers/NS/TYPE" or collection):
	// the action at or under it is enough, and the list handler keeps the
	// items InScopes of AllowedScopes.
	ScopeList
)

// Route is the authorization of one of Skiff's HTTP routes.
type Route struct {
	Method string
	// Pattern is the route's path in internal/server's syntax (literal
	// segments compare without case; {name} is a variable).
	Pattern string
	Action  string
	Scope   ScopeKind
}

// Scope prefixes of the patterns, as internal/server writes them.
const (
	subPattern = "/subscriptions/{sub}"
	rgPattern  = subPattern + "/resourceGroups/{rg}"
	cgPattern  = rgPattern + "/providers/Microsoft.ContainerInstance/containerGroups/{name}"
	locPattern = subPattern + "/providers/Microsoft.ContainerInstance/locations/{loc}"
	// authzPrefix is Microsoft.Authorization's, under any scope.
	authzPrefix = "/providers/Microsoft.Authorization"
)

// Routes is the action of every authenticated route of internal/server,
// the role routes (at each of their scopes) included. The server's test
// checks that every route it serves is here.
var Routes = buildRoutes()

func buildRoutes() []Route {
	p := func(method, pattern, action string) Route { return Route{method, pattern, action, ScopePath} }
	list := func(pattern, action string) Route { return Route{"GET", pattern, action, ScopeList} }
	rs := []Route{
		{"GET", "/subscriptions", ActionSubscriptionsRead, ScopeSubscriptionMember},
		{"GET", subPattern, ActionSubscriptionsRead, ScopeSubscriptionMember},
		p("POST", subPattern+"/providers/Microsoft.ContainerInstance/register", ActionContainerInstanceRegister),
		p("POST", subPattern+"/providers/Microsoft.StandbyPool/register", ActionStandbyPoolRegister),
		{"GET", "/providers/Microsoft.ContainerInstance/operations", ActionProviderOperationsRead, ScopeAuthenticated},
		list(subPattern+"/resourceGroups", ActionResourceGroupsRead),
		p("PUT", rgPattern, ActionResourceGroupsWrite),
		p("GET", rgPattern, ActionResourceGroupsRead),
		p("HEAD", rgPattern, ActionResourceGroupsRead),
		p("DELETE", rgPattern, ActionResourceGroupsDelete),
		list(subPattern+"/providers/Microsoft.ContainerInstance/containerGroups", ActionContainerGroupsRead),
		list(rgPattern+"/providers/Microsoft.ContainerInstance/containerGroups", ActionContainerGroupsRead),
		p("PUT", cgPattern, ActionContainerGroupsWrite),
		p("GET", cgPattern, ActionContainerGroupsRead),
		p("PATCH", cgPattern, ActionContainerGroupsWrite),
		p("DELETE", cgPattern, ActionContainerGroupsDelete),
		p("POST", cgPattern+"/stop", ActionContainerGroupsStop),
		p("POST", cgPattern+"/start", ActionContainerGroupsStart),
		p("POST", cgPattern+"/restart", ActionContainerGroupsRestart),
		p("GET", cgPattern+"/outboundNetworkDependenciesEndpoints", ActionOutboundEndpointsRead),
		p("GET", cgPattern+"/providers/Microsoft.Insights/metrics", ActionMetricsRead),
		p("GET", cgPattern+"/containers/{container}/logs", ActionContainerLogsRead),
		p("POST", cgPattern+"/containers/{container}/exec", ActionContainerExec),
		p("POST", cgPattern+"/containers/{container}/attach", ActionContainerAttach),
		{"GET", locPattern + "/operations/{op}", ActionLocationOperationsRead, ScopeOperationTarget},
		p("GET", locPattern+"/usages", ActionLocationUsagesRead),
		p("GET", locPattern+"/capabilities", ActionLocationCapabilitiesRead),
		p("GET", locPattern+"/cachedImages", ActionLocationCachedImagesRead),
		p("POST", locPattern+"/images/pull", ActionImagesPull),
		p("POST", locPattern+"/images/import", ActionImagesImport),
		p("DELETE", locPattern+"/images", ActionImagesDelete),
		p("GET", "/providers/Skiff.Cluster/hosts", ActionHostsRead),
		p("GET", "/providers/Skiff.Cluster/hosts/{host}", ActionHostsRead),
	}
	// Template deployments (internal/server/deployments.go).
	deployments := rgPattern + "/providers/Microsoft.Resources/deployments"
	dep := deployments + "/{deployment}"
	rs = append(rs,
		list(deployments, ActionDeploymentsRead),
		p("PUT", dep, ActionDeploymentsWrite),
		p("GET", dep, ActionDeploymentsRead),
		p("HEAD", dep, ActionDeploymentsRead),
		p("DELETE", dep, ActionDeploymentsDelete),
		p("POST", dep+"/validate", ActionDeploymentsValidate),
		p("POST", dep+"/cancel", ActionDeploymentsCancel),
		p("POST", dep+"/exportTemplate", ActionDeploymentsExportTemplate),
		p("GET", dep+"/operations", ActionDeploymentOperationsRead),
		p("GET", dep+"/operations/{operationId}", ActionDeploymentOperationsRead),
		p("GET", rgPattern+"/deployments/{deployment}/operations", ActionDeploymentOperationsRead),
		p("GET", rgPattern+"/deployments/{deployment}/operations/{operationId}", ActionDeploymentOperationsRead),
		p("GET", dep+"/operationStatuses/{op}", ActionDeploymentOperationStatusesRead),
		p("GET", dep+"/operationResults/{op}", ActionDeploymentOperationStatusesRead),
	)
	// Container group profiles (internal/server/profiles.go).
	profiles := "/providers/Microsoft.ContainerInstance/containerGroupProfiles"
	prof := rgPattern + profiles + "/{profile}"
	rs = append(rs,
		list(subPattern+profiles, ActionContainerGroupProfilesRead),
		list(rgPattern+profiles, ActionContainerGroupProfilesRead),
		p("PUT", prof, ActionContainerGroupProfilesWrite),
		p("GET", prof, ActionContainerGroupProfilesRead),
		p("PATCH", prof, ActionContainerGroupProfilesWrite),
		p("DELETE", prof, ActionContainerGroupProfilesDelete),
		p("GET", prof+"/revisions", ActionContainerGroupProfilesRead),
		p("GET", prof+"/revisions/{revision}", ActionContainerGroupProfilesRead),
	)
	// NGroups (internal/server/ngroups.go).
	ngroups := "/providers/Microsoft.ContainerInstance/ngroups"
	ng := rgPattern + ngroups + "/{ngroup}"
	rs = append(rs,
		list(subPattern+ngroups, ActionNGroupsRead),
		list(rgPattern+ngroups, ActionNGroupsRead),
		p("PUT", ng, ActionNGroupsWrite),
		p("GET", ng, ActionNGroupsRead),
		p("PATCH", ng, ActionNGroupsWrite),
		p("DELETE", ng, ActionNGroupsDelete),
		p("POST", ng+"/start", ActionNGroupsStart),
		p("POST", ng+"/stop", ActionNGroupsStop),
		p("POST", ng+"/restart", ActionNGroupsRestart),
	)
	// Standby pools (internal/server/standbypools.go).
	pools := "/providers/Microsoft.StandbyPool/standbyContainerGroupPools"
	pool := rgPattern + pools + "/{pool}"
	rs = append(rs,
		list(subPattern+pools, ActionStandbyPoolsRead),
		list(rgPattern+pools, ActionStandbyPoolsRead),
		p("PUT", pool, ActionStandbyPoolsWrite),
		p("GET", pool, ActionStandbyPoolsRead),
		p("PATCH", pool, ActionStandbyPoolsWrite),
		p("DELETE", pool, ActionStandbyPoolsDelete),
		p("GET", pool+"/runtimeViews", ActionStandbyPoolViewsRead),
		p("GET", pool+"/runtimeViews/{view}", ActionStandbyPoolViewsRead),
	)
	// Storage accounts and file shares (internal/server/storage.go).
	accounts := "/providers/Microsoft.Storage/storageAccounts"
	acct := rgPattern + accounts + "/{account}"
	shares := acct + "/fileServices/default/shares"
	rs = append(rs,
		p("POST", subPattern+"/providers/Microsoft.Storage/checkNameAvailability", ActionStorageCheckName),
		list(subPattern+accounts, ActionStorageAccountsRead),
		list(rgPattern+accounts, ActionStorageAccountsRead),
		p("PUT", acct, ActionStorageAccountsWrite),
		p("GET", acct, ActionStorageAccountsRead),
		p("PATCH", acct, ActionStorageAccountsWrite),
		p("DELETE", acct, ActionStorageAccountsDelete),
		p("POST", acct+"/listKeys", ActionStorageAccountsListKeys),
		p("POST", acct+"/regenerateKey", ActionStorageAccountsRegenerate),
		p("GET", acct+"/fileServices", ActionStorageFileServicesRead),
		p("GET", acct+"/fileServices/default", ActionStorageFileServicesRead),
		p("GET", shares, ActionStorageFileSharesRead),
		p("PUT", shares+"/{share}", ActionStorageFileSharesWrite),
		p("GET", shares+"/{share}", ActionStorageFileSharesRead),
		p("DELETE", shares+"/{share}", ActionStorageFileSharesDelete),
	)
	// ARM's tenant-level routes: the role definitions (built-in roles are
	// public, so any principal reads them) and a principal's assignments.
	rs = append(rs,
		Route{"GET", authzPrefix + "/roleDefinitions", ActionRoleDefinitionsRead, ScopeAuthenticated},
		Route{"GET", authzPrefix + "/roleDefinitions/{roleDefinitionId}", ActionRoleDefinitionsRead, ScopeAuthenticated},
		p("GET", authzPrefix+"/roleAssignments", ActionRoleAssignmentsRead),
	)
	for _, scope := range []string{subPattern, rgPattern, cgPattern} {
		rs = append(rs, Route{"GET", scope + authzPrefix + "/permissions", ActionPermissionsRead, ScopeAuthenticated})
		defs := scope + authzPrefix + "/roleDefinitions"
		assigns := scope + authzPrefix + "/roleAssignments"
		rs = append(rs,
			p("GET", defs, ActionRoleDefinitionsRead),
			p("GET", defs+"/{roleDefinitionId}", ActionRoleDefinitionsRead),
			p("PUT", defs+"/{roleDefinitionId}", ActionRoleDefinitionsWrite),
			p("DELETE", defs+"/{roleDefinitionId}", ActionRoleDefinitionsDelete),
			p("GET", assigns, ActionRoleAssignmentsRead),
			p("GET", assigns+"/{roleAssignmentName}", ActionRoleAssignmentsRead),
			p("PUT", assigns+"/{roleAssignmentName}", ActionRoleAssignmentsWrite),
			p("DELETE", assigns+"/{roleAssignmentName}", ActionRoleAssignmentsDelete),
		)
	}
	return rs
}

var routeIndex = func() map[string]Route {
	m := make(map[string]Route, len(Routes))
	for _, r := range Routes {
		m[routeKey(r.Method, r.Pattern)] = r
	}
	return m
}()

func routeKey(method, pattern string) string {
	return strings.ToUpper(method) + " " + strings.ToLower(strings.TrimRight(pattern, "/"))
}

// RouteFor returns the authorization of the route method and pattern
// (compared without case, as the router compares literals).
func RouteFor(method, pattern string) (Route, bool) {
	r, ok := routeIndex[routeKey(method, pattern)]
	return r, ok
}
