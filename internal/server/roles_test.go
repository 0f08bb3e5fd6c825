package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/skiff-sh/skiff/internal/authz"
)

// newRoleEnv is a test server with the role routes on a real Authorizer
// (on the server's bbolt store).
func newRoleEnv(t *testing.T) *testEnv {
	t.Helper()
	e := newTestEnv(t, func(c *Config) { c.Authz = authz.New(authz.Options{Store: c.Store}) })
	return e
}

// azDo sends a request as az does, with its own api-version in the query
// (pathQuery holds it), and returns the status and the body.
func azDo(t *testing.T, e *testEnv, method, pathQuery, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.http.URL+pathQuery, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func decodeInto[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
	return v
}

// listOf GETs an ARM list (200) and returns its items.
func listOf[T any](t *testing.T, e *testEnv, pathQuery string) []T {
	t.Helper()
	code, body := azDo(t, e, "GET", pathQuery, "")
	if code != 200 {
		t.Fatalf("list %s: %d %s", pathQuery, code, body)
	}
	return decodeInto[struct {
		Value []T `json:"value"`
	}](t, body).Value
}

// TestRoleRoutesAzCreateForRBAC: the requests az 2.45's `az ad sp
// create-for-rbac --role contributor --scopes <rg>` sends to ARM (az-cli.md
// steps 6 and 7), exactly, and what follows from them.
func TestRoleRoutesAzCreateForRBAC(t *testing.T) {
	e := newRoleEnv(t)
	ctx := context.Background()
	rg := e.rgPath()

	// Step 6: the role by its lower-case name.
	code, body := azDo(t, e, "GET", rg+"/providers/Microsoft.Authorization/roleDefinitions?%24filter=roleName%20eq%20%27contributor%27&api-version=2018-01-01-preview", "")
	if code != 200 {
		t.Fatalf("role definitions: %d %s", code, body)
	}
	defs := decodeInto[struct {
		Value []authz.RoleDefinition `json:"value"`
	}](t, body)
	if len(defs.Value) != 1 {
		t.Fatalf("roleName eq 'contributor': %d roles: %s", len(defs.Value), body)
	}
	contributor := defs.Value[0]
	if contributor.Name != authz.ContributorRoleID || contributor.Properties.RoleName != "Contributor" ||
		contributor.ID != "/subscriptions/"+e.sub+"/providers/Microsoft.Authorization/roleDefinitions/"+authz.ContributorRoleID ||
		contributor.Type != "Microsoft.Authorization/roleDefinitions" || contributor.Properties.Type != "BuiltInRole" {
		t.Fatalf("contributor: %s", body)
	}

	// Step 7: the assignment, with the id step 6 returned.
	principal := uuid.NewString()
	name := uuid.NewString()
	put := `{"properties": {"roleDefinitionId": "` + contributor.ID + `", "principalId": "` + principal + `", "principalType": "ServicePrincipal"}}`
	code, body = azDo(t, e, "PUT", rg+"/providers/Microsoft.Authorization/roleAssignments/"+name+"?api-version=2020-04-01-preview", put)
	if code != 201 {
		t.Fatalf("role assignment: %d %s", code, body)
	}
	ra := decodeInto[authz.RoleAssignment](t, body)
	if ra.ID != rg+"/providers/Microsoft.Authorization/roleAssignments/"+name || ra.Name != name ||
		ra.Type != "Microsoft.Authorization/roleAssignments" || ra.Properties.Scope != rg ||
		ra.Properties.RoleDefinitionID != contributor.ID || ra.Properties.PrincipalID != principal ||
		ra.Properties.PrincipalType != "ServicePrincipal" || ra.Properties.CreatedOn == nil {
		t.Fatalf("assignment: %s", body)
	}

	// It is in force: the principal manages the resource group's container
	// groups, and nothing outside it.
	a := e.srv.cfg.Authz
	if err := a.Authorize(ctx, principal, authz.ActionContainerGroupsWrite, e.cgPath("web")); err != nil {
		t.Fatal(err)
	}
	for _, denied := range []struct{ action, scope string }{
		{authz.ActionResourceGroupsWrite, "/subscriptions/" + e.sub + "/resourceGroups/other"},
		{authz.ActionContainerGroupsWrite, "/subscriptions/" + e.sub + "/resourceGroups/other/providers/Microsoft.ContainerInstance/containerGroups/web"},
		{authz.ActionRoleAssignmentsWrite, rg + "/providers/Microsoft.Authorization/roleAssignments/" + uuid.NewString()},
	} {
		if a.Can(ctx, principal, denied.action, denied.scope) {
			t.Errorf("the resource group's contributor may %s over %s", denied.action, denied.scope)
		}
	}

	// The same assignment under another name: 409, as ARM.
	code, body = azDo(t, e, "PUT", rg+"/providers/Microsoft.Authorization/roleAssignments/"+uuid.NewString()+"?api-version=2020-04-01-preview", put)
	if code != 409 || armCode(body) != "RoleAssignmentExists" {
		t.Fatalf("second assignment: %d %s", code, body)
	}
	// The same PUT again: the same assignment.
	code, body = azDo(t, e, "PUT", rg+"/providers/Microsoft.Authorization/roleAssignments/"+name+"?api-version=2020-04-01-preview", put)
	if code != 200 || decodeInto[authz.RoleAssignment](t, body).ID != ra.ID {
		t.Fatalf("the same PUT again: %d %s", code, body)
	}
}

func TestRoleAssignmentRoutes(t *testing.T) {
	e := newRoleEnv(t)
	rg := e.rgPath()
	sub := "/subscriptions/" + e.sub
	principal := uuid.NewString()
	assignments := func(scope string) string { return scope + "/providers/Microsoft.Authorization/roleAssignments" }
	create := func(scope, role string) authz.RoleAssignment {
		t.Helper()
		code, body := azDo(t, e, "PUT", assignments(scope)+"/"+uuid.NewString()+"?api-version=2022-04-01",
			`{"properties":{"roleDefinitionId":"`+authz.RoleDefinitionID(e.sub, role)+`","principalId":"`+principal+`"}}`)
		if code != 201 {
			t.Fatalf("create at %s: %d %s", scope, code, body)
		}
		return decodeInto[authz.RoleAssignment](t, body)
	}
	atSub := create(sub, authz.ReaderRoleID)
	atRG := create(rg, authz.ContributorRoleID)

	// A container group is a scope too.
	if code, _, body := e.do(t, "PUT", e.cgPath("web"), groupJSON(nil)); code != 201 {
		t.Fatalf("group: %d %s", code, body)
	}
	atCG := create(e.cgPath("web"), authz.OwnerRoleID)

	list := func(pathQuery string) []string {
		t.Helper()
		var names []string
		for _, ra := range listOf[authz.RoleAssignment](t, e, pathQuery) {
			names = append(names, ra.Name)
		}
		return names
	}
	q := func(filter, version string) string {
		v := url.Values{"api-version": {version}}
		if filter != "" {
			v.Set("$filter", filter)
		}
		return "?" + v.Encode()
	}
	for _, c := range []struct {
		pathQuery string
		want      []string
	}{
		{assignments(rg) + q("atScope()", "2022-04-01"), []string{atSub.Name, atRG.Name}},
		{assignments(rg) + q("", "2015-07-01"), []string{atSub.Name, atRG.Name, atCG.Name}},
		{assignments(sub) + q("principalId eq '"+principal+"'", "2018-09-01-preview"), []string{atSub.Name, atRG.Name, atCG.Name}},
		{assignments(e.cgPath("web")) + q("atScope()", "2020-04-01-preview"), []string{atSub.Name, atRG.Name, atCG.Name}},
		{assignments("") + q("principalId eq '"+strings.ToUpper(principal)+"'", "2022-04-01"), []string{atSub.Name, atRG.Name, atCG.Name}},
		{assignments(sub) + q("assignedTo('"+uuid.NewString()+"')", "2022-04-01"), nil},
	} {
		if got := list(c.pathQuery); strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s: %v, want %v", c.pathQuery, got, c.want)
		}
	}

	// Get and delete by name, at its scope only.
	code, body := azDo(t, e, "GET", assignments(rg)+"/"+atRG.Name+"?api-version=2022-04-01", "")
	if code != 200 || decodeInto[authz.RoleAssignment](t, body).ID != atRG.ID {
		t.Fatalf("get: %d %s", code, body)
	}
	code, body = azDo(t, e, "GET", assignments(sub)+"/"+atRG.Name+"?api-version=2022-04-01", "")
	if code != 404 || armCode(body) != "RoleAssignmentNotFound" {
		t.Fatalf("get at another scope: %d %s", code, body)
	}
	code, body = azDo(t, e, "DELETE", assignments(rg)+"/"+atRG.Name+"?api-version=2022-04-01", "")
	if code != 200 || decodeInto[authz.RoleAssignment](t, body).ID != atRG.ID {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code, body = azDo(t, e, "DELETE", assignments(rg)+"/"+atRG.Name+"?api-version=2022-04-01", ""); code != 204 {
		t.Fatalf("delete again: %d %s", code, body)
	}
	if e.srv.cfg.Authz.Can(context.Background(), principal, authz.ActionContainerGroupsWrite, rg) {
		t.Fatal("the deleted Contributor assignment still works")
	}

	// Refusals: a scope that does not exist, a body that is not one, an
	// unknown role, a name that is no GUID, a filter ARM has not.
	for _, c := range []struct {
		method, pathQuery, body string
		code                    int
		arm                     string
	}{
		{"PUT", assignments(sub+"/resourceGroups/nope") + "/" + uuid.NewString() + "?api-version=2022-04-01", `{"properties":{}}`, 404, "ResourceGroupNotFound"},
		{"GET", assignments("/subscriptions/"+uuid.NewString()) + "?api-version=2022-04-01", "", 404, "SubscriptionNotFound"},
		{"GET", assignments(e.cgPath("nope")) + "?api-version=2022-04-01", "", 404, "ResourceNotFound"},
		{"PUT", assignments(rg) + "/" + uuid.NewString() + "?api-version=2022-04-01", `{"properties":`, 400, "InvalidRequestContent"},
		{"PUT", assignments(rg) + "/" + uuid.NewString() + "?api-version=2022-04-01", `{"properties":{"roleDefinitionId":"` + authz.RoleDefinitionID(e.sub, uuid.NewString()) + `","principalId":"` + principal + `"}}`, 400, "RoleDefinitionDoesNotExist"},
		{"PUT", assignments(rg) + "/not-a-guid?api-version=2022-04-01", `{"properties":{}}`, 400, "InvalidRoleAssignmentId"},
		{"GET", assignments(rg) + q("roleName eq 'x'", "2022-04-01"), "", 400, "InvalidFilter"},
		{"GET", assignments(rg) + "?api-version=2014-04-01", "", 400, "InvalidApiVersionParameter"},
	} {
		if code, body := azDo(t, e, c.method, c.pathQuery, c.body); code != c.code || armCode(body) != c.arm {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.pathQuery, code, body, c.code, c.arm)
		}
	}
}

func TestRoleDefinitionRoutes(t *testing.T) {
	e := newRoleEnv(t)
	sub := "/subscriptions/" + e.sub
	id := uuid.NewString()
	custom := `{"properties":{"roleName":"Group Restarter","description":"Restarts groups.","type":"CustomRole",
		"permissions":[{"actions":["Microsoft.ContainerInstance/containerGroups/restart/action","Microsoft.ContainerInstance/containerGroups/read"],"notActions":[]}],
		"assignableScopes":["` + e.rgPath() + `"]}}`
	code, body := azDo(t, e, "PUT", sub+"/providers/Microsoft.Authorization/roleDefinitions/"+id+"?api-version=2022-04-01", custom)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	def := decodeInto[authz.RoleDefinition](t, body)
	if def.ID != authz.RoleDefinitionID(e.sub, id) || def.Properties.Type != "CustomRole" || len(def.Properties.Permissions[0].Actions) != 2 {
		t.Fatalf("created: %s", body)
	}
	if code, body = azDo(t, e, "PUT", sub+"/providers/Microsoft.Authorization/roleDefinitions/"+id+"?api-version=2022-04-01", custom); code != 200 {
		t.Fatalf("replace: %d %s", code, body)
	}
	if code, body = azDo(t, e, "PUT", sub+"/providers/Microsoft.Authorization/roleDefinitions/"+uuid.NewString()+"?api-version=2022-04-01", custom); code != 409 || armCode(body) != "RoleDefinitionWithSameNameExists" {
		t.Fatalf("a second role of the name: %d %s", code, body)
	}

	names := func(pathQuery string) []string {
		t.Helper()
		var out []string
		for _, d := range listOf[authz.RoleDefinition](t, e, pathQuery) {
			out = append(out, d.Properties.RoleName)
		}
		return out
	}
	const builtIns = "Owner,Contributor,Reader,User Access Administrator,Azure Container Instances Contributor Role"
	for pathQuery, want := range map[string]string{
		"/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01":                                                                        builtIns,
		sub + "/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01":                                                                  builtIns,
		sub + "/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01&%24filter=atScopeAndBelow%28%29":                                  builtIns + ",Group Restarter",
		e.rgPath() + "/providers/Microsoft.Authorization/roleDefinitions?api-version=2015-07-01&%24filter=type%20eq%20%27CustomRole%27":                    "Group Restarter",
		e.rgPath() + "/providers/Microsoft.Authorization/roleDefinitions?api-version=2018-01-01-preview&%24filter=roleName%20eq%20%27group%20restarter%27": "Group Restarter",
	} {
		if got := strings.Join(names(pathQuery), ","); got != want {
			t.Errorf("%s: %s, want %s", pathQuery, got, want)
		}
	}

	// Get: a built-in role at the tenant level and at a subscription; the
	// custom role.
	for pathQuery, wantID := range map[string]string{
		"/providers/Microsoft.Authorization/roleDefinitions/" + authz.ReaderRoleID + "?api-version=2022-04-01":       "/providers/Microsoft.Authorization/roleDefinitions/" + authz.ReaderRoleID,
		sub + "/providers/Microsoft.Authorization/roleDefinitions/" + authz.ReaderRoleID + "?api-version=2022-04-01": authz.RoleDefinitionID(e.sub, authz.ReaderRoleID),
		e.rgPath() + "/providers/Microsoft.Authorization/roleDefinitions/" + id + "?api-version=2022-04-01":          def.ID,
	} {
		code, body := azDo(t, e, "GET", pathQuery, "")
		if code != 200 || decodeInto[authz.RoleDefinition](t, body).ID != wantID {
			t.Errorf("%s: %d %s, want id %s", pathQuery, code, body, wantID)
		}
	}
	code, body = azDo(t, e, "GET", sub+"/providers/Microsoft.Authorization/roleDefinitions/"+uuid.NewString()+"?api-version=2022-04-01", "")
	if code != 404 || armCode(body) != "RoleDefinitionDoesNotExist" {
		t.Fatalf("an unknown role: %d %s", code, body)
	}

	// Built-in roles stay; custom ones go, and then are gone.
	if code, body = azDo(t, e, "DELETE", sub+"/providers/Microsoft.Authorization/roleDefinitions/"+authz.OwnerRoleID+"?api-version=2022-04-01", ""); code != 400 {
		t.Fatalf("delete Owner: %d %s", code, body)
	}
	if code, body = azDo(t, e, "DELETE", sub+"/providers/Microsoft.Authorization/roleDefinitions/"+id+"?api-version=2022-04-01", ""); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code, body = azDo(t, e, "DELETE", sub+"/providers/Microsoft.Authorization/roleDefinitions/"+id+"?api-version=2022-04-01", ""); code != 204 {
		t.Fatalf("delete again: %d %s", code, body)
	}
}
