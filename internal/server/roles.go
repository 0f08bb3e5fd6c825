package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/authz"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// ARM's Microsoft.Authorization routes: role definitions and role
// assignments at a subscription, a resource group and a container group,
// and at the tenant level ARM's role definitions and a principal's
// assignments. The engine is Config.Authz (internal/authz).

// roleAPIVersions are Microsoft.Authorization's api-versions that clients
// send on these routes, older than the ARM range of api.CheckAPIVersion
// among them: az 2.45 asks for role definitions with 2018-01-01-preview
// and creates assignments with 2020-04-01-preview.
var roleAPIVersions = map[string]bool{
	"2015-07-01": true, "2018-01-01-preview": true, "2018-09-01-preview": true,
	"2020-04-01-preview": true, "2022-04-01": true,
}

// roleAPIVersionOK reports whether v is one of roleAPIVersions and pattern
// (a matched route's, lower case) one of the role routes: checkAPIVersion
// accepts it there beside the ARM range.
func roleAPIVersionOK(pattern, v string) bool {
	return strings.Contains(pattern, "/providers/microsoft.authorization/") && roleAPIVersions[strings.ToLower(v)]
}

// callerID is the principal making the request, or admin for the admin
// token, the server's own work and a server without RBAC (which may do
// anything).
func (s *Server) callerID(ctx context.Context) (id string, admin bool) {
	p := principalOf(ctx)
	if s.unrestricted(p) {
		return "", true
	}
	return p.ObjectID, false
}

// registerRoleRoutes adds the Microsoft.Authorization routes.
func (s *Server) registerRoleRoutes() {
	r := &s.routes
	const defs, assigns = "/providers/microsoft.authorization/roledefinitions", "/providers/microsoft.authorization/roleassignments"
	r.handle("GET", defs, s.listRoleDefinitions)
	r.handle("GET", defs+"/{roledefinitionid}", s.getRoleDefinition)
	r.handle("GET", assigns, s.listRoleAssignments)
	for _, scope := range []string{subPrefix, rgPrefix, cgPrefix} {
		r.handle("GET", scope+defs, s.listRoleDefinitions)
		r.handle("GET", scope+defs+"/{roledefinitionid}", s.getRoleDefinition)
		r.handle("PUT", scope+defs+"/{roledefinitionid}", s.putRoleDefinition)
		r.handle("DELETE", scope+defs+"/{roledefinitionid}", s.deleteRoleDefinition)
		r.handle("GET", scope+assigns, s.listRoleAssignments)
		r.handle("GET", scope+assigns+"/{roleassignmentname}", s.getRoleAssignment)
		r.handle("PUT", scope+assigns+"/{roleassignmentname}", s.putRoleAssignment)
		r.handle("DELETE", scope+assigns+"/{roleassignmentname}", s.deleteRoleAssignment)
		r.handle("GET", scope+"/providers/microsoft.authorization/permissions", s.listPermissions)
	}
}

// listPermissions is ARM's GET {scope}/providers/Microsoft.Authorization/
// permissions: the caller's own actions and notActions at the scope, so a
// client can tell what it may do before it tries (the virtual node checks
// its resource group this way). The admin, and any caller of a server
// without RBAC, has "*". The scope is the path's, whether or not it
// exists: the answer is about the caller, so it tells nothing of others.
func (s *Server) listPermissions(w http.ResponseWriter, r *http.Request, p params) error {
	id, admin := s.callerID(r.Context())
	perms := []authz.Permission{{Actions: []string{"*"}, NotActions: []string{}, DataActions: []string{}, NotDataActions: []string{}}}
	if !admin {
		scope := "/subscriptions/" + p["sub"]
		if p["rg"] != "" {
			scope += "/resourceGroups/" + p["rg"]
		}
		if p["name"] != "" {
			scope += "/providers/Microsoft.ContainerInstance/containerGroups/" + p["name"]
		}
		var err error
		if perms, err = s.cfg.Authz.Permissions(r.Context(), id, scope); err != nil {
			return err
		}
	}
	return writePage(w, r, perms)
}

// authz returns the engine, or NotSupported when the server has none.
func (s *Server) authz() (*authz.Authorizer, error) {
	if s.cfg.Authz == nil {
		return nil, errdefs.WithCode(errdefs.ErrNotImplemented, "NotSupported", "Role-based access control is not configured on this server.")
	}
	return s.cfg.Authz, nil
}

// roleScope is the scope a role route names: the root "/" at the tenant
// level, else the subscription, resource group or container group of its
// path, which must exist (404 as on the resources' own routes), written as
// the resource was created.
func (s *Server) roleScope(ctx context.Context, p params) (string, error) {
	switch {
	case p["sub"] == "":
		return "/", nil
	case p["name"] != "":
		cg, err := s.containerGroup(ctx, p)
		if err != nil {
			return "", err
		}
		return "/subscriptions/" + cg.Subscription + "/resourceGroups/" + cg.ResourceGroup +
			"/providers/Microsoft.ContainerInstance/containerGroups/" + cg.Resource.Name, nil
	case p["rg"] != "":
		rg, err := s.resourceGroup(ctx, p["sub"], p["rg"])
		if err != nil {
			return "", err
		}
		return "/subscriptions/" + rg.Subscription + "/resourceGroups/" + rg.Name, nil
	}
	sub, err := s.subscription(ctx, p["sub"])
	if err != nil {
		return "", err
	}
	return "/subscriptions/" + sub.ID, nil
}

// roleRequest is what every role route starts with: the engine and the
// scope.
func (s *Server) roleRequest(r *http.Request, p params) (*authz.Authorizer, string, error) {
	a, err := s.authz()
	if err != nil {
		return nil, "", err
	}
	scope, err := s.roleScope(r.Context(), p)
	return a, scope, err
}

func (s *Server) listRoleDefinitions(w http.ResponseWriter, r *http.Request, p params) error {
	a, scope, err := s.roleRequest(r, p)
	if err != nil {
		return err
	}
	f, err := authz.ParseRoleDefinitionFilter(r.URL.Query().Get("$filter"))
	if err != nil {
		return err
	}
	defs, err := a.ListRoleDefinitions(r.Context(), scope, f)
	if err != nil {
		return err
	}
	return writePage(w, r, defs)
}

// The GET, PUT and DELETE of one role definition or assignment: key names
// the path variable, the method expression the engine's call.
func (s *Server) getRoleDefinition(w http.ResponseWriter, r *http.Request, p params) error {
	return getRoleResource(s, w, r, p, "roledefinitionid", (*authz.Authorizer).RoleDefinition)
}

func (s *Server) putRoleDefinition(w http.ResponseWriter, r *http.Request, p params) error {
	return putRoleResource(s, w, r, p, "roledefinitionid", (*authz.Authorizer).PutRoleDefinition)
}

func (s *Server) deleteRoleDefinition(w http.ResponseWriter, r *http.Request, p params) error {
	return deleteRoleResource(s, w, r, p, "roledefinitionid", (*authz.Authorizer).DeleteRoleDefinition)
}

func (s *Server) getRoleAssignment(w http.ResponseWriter, r *http.Request, p params) error {
	return getRoleResource(s, w, r, p, "roleassignmentname", (*authz.Authorizer).RoleAssignment)
}

func (s *Server) putRoleAssignment(w http.ResponseWriter, r *http.Request, p params) error {
	return putRoleResource(s, w, r, p, "roleassignmentname", (*authz.Authorizer).CreateRoleAssignment)
}

func (s *Server) deleteRoleAssignment(w http.ResponseWriter, r *http.Request, p params) error {
	return deleteRoleResource(s, w, r, p, "roleassignmentname", (*authz.Authorizer).DeleteRoleAssignment)
}

// getRoleResource answers a GET with what get finds (200).
func getRoleResource[T any](s *Server, w http.ResponseWriter, r *http.Request, p params, key string,
	get func(*authz.Authorizer, context.Context, string, string) (*T, error)) error {
	a, scope, err := s.roleRequest(r, p)
	if err != nil {
		return err
	}
	v, err := get(a, r.Context(), scope, p[key])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// putRoleResource answers a PUT of {"properties": P}: put writes it on
// behalf of the caller; 201 when it is new, else 200, as ARM.
func putRoleResource[P, T any](s *Server, w http.ResponseWriter, r *http.Request, p params, key string,
	put func(*authz.Authorizer, context.Context, string, string, P, string) (*T, bool, error)) error {
	a, scope, err := s.roleRequest(r, p)
	if err != nil {
		return err
	}
	var in struct {
		Properties P `json:"properties"`
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if err := decodeJSON(body, &in); err != nil {
		return err
	}
	by, _ := s.callerID(r.Context())
	v, created, err := put(a, r.Context(), scope, p[key], in.Properties, by)
	if err != nil {
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, v)
	return nil
}

// deleteRoleResource answers a DELETE as ARM's Microsoft.Authorization
// does: 200 with what was deleted, 204 when there was nothing.
func deleteRoleResource[T any](s *Server, w http.ResponseWriter, r *http.Request, p params, key string,
	del func(*authz.Authorizer, context.Context, string, string) (*T, error)) error {
	a, scope, err := s.roleRequest(r, p)
	if err != nil {
		return err
	}
	deleted, err := del(a, r.Context(), scope, p[key])
	if err != nil {
		return err
	}
	if deleted == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeJSON(w, http.StatusOK, deleted)
	return nil
}

func (s *Server) listRoleAssignments(w http.ResponseWriter, r *http.Request, p params) error {
	a, scope, err := s.roleRequest(r, p)
	if err != nil {
		return err
	}
	f, err := authz.ParseRoleAssignmentFilter(r.URL.Query().Get("$filter"))
	if err != nil {
		return err
	}
	ctx := r.Context()
	list, err := a.ListRoleAssignments(ctx, scope, f)
	if err != nil {
		return err
	}
	if id, admin := s.callerID(ctx); !admin {
		// A caller sees the assignments it may read: those at or under a
		// scope it reads them at, and, when it reads them at the scope
		// asked about, those above it that apply there, as ARM shows
		// inherited assignments.
		atScope := a.Can(ctx, id, authz.ActionRoleAssignmentsRead, scope)
		visible := list[:0]
		for _, ra := range list {
			if a.Can(ctx, id, authz.ActionRoleAssignmentsRead, ra.Properties.Scope) || atScope && authz.Within(scope, ra.Properties.Scope) {
				visible = append(visible, ra)
			}
		}
		list = visible
	}
	return writePage(w, r, list)
}

// writePage writes items as an ARM list: the page $skiptoken and $top ask
// for, and a nextLink to the rest.
func writePage[T any](w http.ResponseWriter, r *http.Request, items []T) error {
	pg, err := pageOf(r)
	if err != nil {
		return err
	}
	out := api.List[T]{Value: []T{}}
	if pg.skip < len(items) {
		out.Value = items[pg.skip:min(len(items), pg.skip+pg.top)]
	}
	if pg.skip+pg.top < len(items) {
		next := *r.URL
		v := next.Query()
		v.Set("$skiptoken", strconv.Itoa(pg.skip+pg.top))
		next.RawQuery = v.Encode()
		out.NextLink = baseURL(r) + next.RequestURI()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
