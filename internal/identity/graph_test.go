package identity

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// azFilter is az's _filter_to_query: "?$filter=" + Python's
// urllib.parse.quote(filter, safe=”).
func azFilter(f string) string {
	var b strings.Builder
	for _, c := range []byte(f) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.-~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return "?$filter=" + b.String()
}

// azDate is az's _datetime_to_utc.
func azDate(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func values(t *testing.T, rep reply) []map[string]any {
	t.Helper()
	if rep.status != http.StatusOK {
		t.Fatalf("list: status %d: %s", rep.status, rep.body)
	}
	var out []map[string]any
	for _, v := range rep.json(t)["value"].([]any) {
		out = append(out, v.(map[string]any))
	}
	return out
}

func wantStatus(t *testing.T, rep reply, status int) map[string]any {
	t.Helper()
	if rep.status != status {
		t.Fatalf("status %d, want %d: %s", rep.status, status, rep.body)
	}
	if len(rep.body) == 0 {
		return nil
	}
	return rep.json(t)
}

// createForRBAC sends what az 2.45's `az ad sp create-for-rbac -n NAME`
// sends to Graph, in its order (role assignment aside), and returns the
// printed appId, password and the service principal's object id.
func (e *env) createForRBAC(token, name string) (appID, password, spID string) {
	t := e.t
	t.Helper()
	start := e.clock.Now()
	// 1. Existing service principals of that name (idempotence).
	sps := values(t, e.call(http.MethodGet, "/v1.0/servicePrincipals"+azFilter(fmt.Sprintf("displayName eq '%s'", name)), token, nil))
	// 2. create_application: list_applications(display_name=…).
	apps := values(t, e.call(http.MethodGet, "/v1.0/applications"+azFilter(fmt.Sprintf("startswith(displayName,'%s')", name)), token, nil))
	var app map[string]any
	if i := slices.IndexFunc(apps, func(a map[string]any) bool { return a["displayName"] == name }); i >= 0 {
		// An existing application is patched and read back.
		id := apps[i]["id"].(string)
		wantStatus(t, e.call(http.MethodPatch, "/v1.0/applications/"+id, token, map[string]any{"displayName": name}), http.StatusNoContent)
		app = wantStatus(t, e.call(http.MethodGet, "/v1.0/applications/"+id, token, nil), http.StatusOK)
	} else {
		// 3. A new one.
		app = wantStatus(t, e.call(http.MethodPost, "/v1.0/applications", token, map[string]any{"displayName": name, "keyCredentials": []any{}}), http.StatusCreated)
	}
	id, appID := app["id"].(string), app["appId"].(string)
	// Existing passwords are removed first.
	for _, c := range app["passwordCredentials"].([]any) {
		keyID := c.(map[string]any)["keyId"].(string)
		wantStatus(t, e.call(http.MethodPost, "/v1.0/applications/"+id+"/removePassword", token, map[string]any{"keyId": keyID}), http.StatusNoContent)
	}
	// 4. addPassword: the secret, once.
	cred := wantStatus(t, e.call(http.MethodPost, "/v1.0/applications/"+id+"/addPassword", token, map[string]any{
		"passwordCredential": map[string]any{"displayName": "rbac", "endDateTime": azDate(start.AddDate(1, 0, 0)), "startDateTime": azDate(start)},
	}), http.StatusOK)
	password = cred["secretText"].(string)
	if len(password) != 40 || cred["hint"] != password[:3] || cred["keyId"] == "" || cred["displayName"] != "rbac" {
		t.Errorf("addPassword: %v", cred)
	}
	// 5. The service principal, unless step 1 found it.
	if len(sps) > 0 {
		return appID, password, sps[0]["id"].(string)
	}
	sp := wantStatus(t, e.call(http.MethodPost, "/v1.0/servicePrincipals", token, map[string]any{"appId": appID, "accountEnabled": true}), http.StatusCreated)
	return appID, password, sp["id"].(string)
}

func TestGraphCreateForRBAC(t *testing.T) {
	e := newEnv(t, Config{})
	// The bootstrap Owner principal calls Graph with its own token.
	owner := e.newSP("skiff-admin")
	ownerTok := e.token(owner)

	appID, password, spID := e.createForRBAC(ownerTok, "ci-bot")
	sp := wantStatus(t, e.call(http.MethodGet, "/v1.0/servicePrincipals/"+spID, ownerTok, nil), http.StatusOK)
	if sp["appId"] != appID || sp["displayName"] != "ci-bot" || sp["accountEnabled"] != true ||
		sp["servicePrincipalType"] != "Application" || sp["appOwnerOrganizationId"] != e.p.TenantID() ||
		!slices.Equal(sp["servicePrincipalNames"].([]any), []any{appID}) || sp["@odata.context"] == nil {
		t.Errorf("service principal %v", sp)
	}
	app := values(t, e.call(http.MethodGet, "/v1.0/applications"+azFilter("appId eq '"+appID+"'"), ownerTok, nil))
	if len(app) != 1 || len(app[0]["passwordCredentials"].([]any)) != 1 {
		t.Fatalf("application %v", app)
	}
	if pc := app[0]["passwordCredentials"].([]any)[0].(map[string]any); pc["secretText"] != nil || pc["hint"] != password[:3] {
		t.Errorf("listed credential %v", pc)
	}

	// `az login --service-principal -u appId -p password` as the new one.
	bot := &Credentials{AppID: appID, Password: password}
	pr, err := e.p.Verify(e.ctx, e.token(bot))
	if err != nil || pr.ObjectID != spID || pr.AppID != appID || pr.DisplayName != "ci-bot" {
		t.Fatalf("principal %v, err %v", pr, err)
	}

	// Running it again (az's idempotence) keeps the principal and
	// replaces the secret.
	appID2, password2, spID2 := e.createForRBAC(ownerTok, "ci-bot")
	if appID2 != appID || spID2 != spID || password2 == password {
		t.Errorf("second run: app %s sp %s", appID2, spID2)
	}
	if rep := e.form("/adfs/oauth2/token", clientCredentials(appID, password, e.base+"//.default")); rep.status != 401 {
		t.Errorf("the replaced secret: status %d", rep.status)
	}
	e.token(&Credentials{AppID: appID, Password: password2})
	if got := values(t, e.call(http.MethodGet, "/v1.0/applications", ownerTok, nil)); len(got) != 2 {
		t.Errorf("%d applications, want 2 (skiff-admin, ci-bot)", len(got))
	}
}

func TestGraphServicePrincipalCommands(t *testing.T) {
	e := newEnv(t, Config{})
	a := e.newSP("team-a")
	e.clock.Advance(time.Second) // lists are oldest first
	e.newSP("team-b")
	e.clock.Advance(time.Second)
	e.newSP("other")

	// az ad sp list --display-name team
	got := values(t, e.call(http.MethodGet, "/v1.0/servicePrincipals"+azFilter("startswith(displayName,'team')"), adminToken, nil))
	if len(got) != 2 || got[0]["displayName"] != "team-a" || got[1]["displayName"] != "team-b" {
		t.Errorf("list: %v", got)
	}
	if got := values(t, e.call(http.MethodGet, "/v1.0/servicePrincipals", adminToken, nil)); len(got) != 3 {
		t.Errorf("list all: %d", len(got))
	}

	// az ad sp credential reset --id APPID
	resolved := values(t, e.call(http.MethodGet, "/v1.0/servicePrincipals"+azFilter("servicePrincipalNames/any(c:c eq '"+a.AppID+"')"), adminToken, nil))
	if len(resolved) != 1 || resolved[0]["id"] != a.ObjectID {
		t.Fatalf("resolve: %v", resolved)
	}
	sp := wantStatus(t, e.call(http.MethodGet, "/v1.0/servicePrincipals/"+a.ObjectID, adminToken, nil), http.StatusOK)
	for _, c := range sp["passwordCredentials"].([]any) {
		wantStatus(t, e.call(http.MethodPost, "/v1.0/servicePrincipals/"+a.ObjectID+"/removePassword", adminToken,
			map[string]any{"keyId": c.(map[string]any)["keyId"]}), http.StatusNoContent)
	}
	now := e.clock.Now()
	cred := wantStatus(t, e.call(http.MethodPost, "/v1.0/servicePrincipals/"+a.ObjectID+"/addPassword", adminToken, map[string]any{
		"passwordCredential": map[string]any{"displayName": nil, "endDateTime": azDate(now.AddDate(1, 0, 0)), "startDateTime": azDate(now)},
	}), http.StatusOK)
	reset := &Credentials{AppID: a.AppID, Password: cred["secretText"].(string)}
	tok := e.token(reset)
	if sp := wantStatus(t, e.call(http.MethodGet, "/v1.0/servicePrincipals/"+a.ObjectID, adminToken, nil), http.StatusOK); len(sp["passwordCredentials"].([]any)) != 1 {
		t.Errorf("credentials after reset: %v", sp["passwordCredentials"])
	}

	// az ad sp delete --id APPID
	wantStatus(t, e.call(http.MethodDelete, "/v1.0/servicePrincipals/"+a.ObjectID, adminToken, nil), http.StatusNoContent)
	if _, err := e.p.Verify(e.ctx, tok); errdefs.CodeOf(err) != CodeInvalidToken {
		t.Errorf("a deleted principal's token: %v", err)
	}
	if rep := e.form("/adfs/oauth2/token", clientCredentials(a.AppID, a.Password, e.base+"//.default")); rep.status != 400 || rep.json(t)["error"] != "unauthorized_client" {
		t.Errorf("sign-in of a deleted principal: %d %s", rep.status, rep.body)
	}
	m := wantStatus(t, e.call(http.MethodGet, "/v1.0/servicePrincipals/"+a.ObjectID, adminToken, nil), http.StatusNotFound)
	if m["error"].(map[string]any)["code"] != "Request_ResourceNotFound" {
		t.Errorf("error %v", m)
	}
	// The application stays (as in Entra); a new principal may be made.
	sp2 := wantStatus(t, e.call(http.MethodPost, "/v1.0/servicePrincipals", adminToken, map[string]any{"appId": a.AppID}), http.StatusCreated)
	if sp2["id"] == a.ObjectID {
		t.Error("the new principal has the old object id")
	}
	dup := wantStatus(t, e.call(http.MethodPost, "/v1.0/servicePrincipals", adminToken, map[string]any{"appId": a.AppID}), http.StatusConflict)
	if dup["error"].(map[string]any)["code"] != "Request_MultipleObjectsWithSameKeyValue" {
		t.Errorf("second principal of one app: %v", dup)
	}
	noApp := wantStatus(t, e.call(http.MethodPost, "/v1.0/servicePrincipals", adminToken, map[string]any{"appId": "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"}), http.StatusBadRequest)
	if !strings.Contains(noApp["error"].(map[string]any)["message"].(string), " does not reference ") {
		t.Errorf("principal of no application: %v", noApp)
	}

	// PATCH accountEnabled=false (az ad sp update --set accountEnabled=false).
	b, _ := e.p.ServicePrincipalByAppID(e.ctx, values(t, e.call(http.MethodGet, "/v1.0/servicePrincipals"+azFilter("displayName eq 'team-b'"), adminToken, nil))[0]["appId"].(string))
	wantStatus(t, e.call(http.MethodPatch, "/v1.0/servicePrincipals/"+b.ID, adminToken, map[string]any{"accountEnabled": false, "tags": []string{"x"}}), http.StatusNoContent)
	if got := wantStatus(t, e.call(http.MethodGet, "/v1.0/servicePrincipals/"+b.ID, adminToken, nil), http.StatusOK); got["accountEnabled"] != false || !slices.Equal(got["tags"].([]any), []any{"x"}) {
		t.Errorf("after PATCH: %v", got)
	}
}

func TestGraphAppCommands(t *testing.T) {
	e := newEnv(t, Config{})
	// az ad app create --display-name web --identifier-uris api://web
	if got := values(t, e.call(http.MethodGet, "/v1.0/applications"+azFilter("startswith(displayName,'web')"), adminToken, nil)); len(got) != 0 {
		t.Fatalf("before: %v", got)
	}
	app := wantStatus(t, e.call(http.MethodPost, "/v1.0/applications", adminToken, map[string]any{
		"displayName": "web", "identifierUris": []string{"api://web"}, "keyCredentials": []any{},
		"web": map[string]any{"redirectUris": []string{"https://web.example/cb"}},
	}), http.StatusCreated)
	id, appID := app["id"].(string), app["appId"].(string)
	if app["signInAudience"] != "AzureADMyOrg" || app["web"] == nil || len(app["passwordCredentials"].([]any)) != 0 || app["createdDateTime"] == nil {
		t.Errorf("created %v", app)
	}
	// az ad app list --display-name web / --app-id / identifier URI.
	for _, f := range []string{"startswith(displayName,'WEB')", "appId eq '" + appID + "'", "identifierUris/any(s:s eq 'api://web')",
		"displayName eq 'web' and appId eq '" + appID + "'"} {
		if got := values(t, e.call(http.MethodGet, "/v1.0/applications"+azFilter(f), adminToken, nil)); len(got) != 1 || got[0]["id"] != id {
			t.Errorf("%s: %v", f, got)
		}
	}
	if got := values(t, e.call(http.MethodGet, "/v1.0/applications"+azFilter("displayName eq 'we'"), adminToken, nil)); len(got) != 0 {
		t.Errorf("eq matched a prefix: %v", got)
	}
	// az ad app show --id APPID: resolve by appId, then GET.
	got := wantStatus(t, e.call(http.MethodGet, "/v1.0/applications/"+id, adminToken, nil), http.StatusOK)
	if got["appId"] != appID || got["@odata.context"] != e.base+"/v1.0/$metadata#applications/$entity" {
		t.Errorf("show %v", got)
	}
	// az ad app update --set … : PATCH, 204.
	wantStatus(t, e.call(http.MethodPatch, "/v1.0/applications/"+id, adminToken, map[string]any{"displayName": "web2", "web": nil, "tags": []string{"t"}}), http.StatusNoContent)
	got = wantStatus(t, e.call(http.MethodGet, "/v1.0/applications/"+id, adminToken, nil), http.StatusOK)
	if got["displayName"] != "web2" || got["web"] != nil || !slices.Equal(got["tags"].([]any), []any{"t"}) || got["appId"] != appID {
		t.Errorf("after PATCH %v", got)
	}
	m := wantStatus(t, e.call(http.MethodPatch, "/v1.0/applications/"+id, adminToken, map[string]any{"passwordCredentials": []any{map[string]any{"secretText": "mine"}}}), http.StatusBadRequest)
	if m["error"].(map[string]any)["code"] != "Request_BadRequest" {
		t.Errorf("setting a secret by PATCH: %v", m)
	}

	// An application with a principal and a token; az ad app delete
	// deletes both and the token stops verifying.
	cred := wantStatus(t, e.call(http.MethodPost, "/v1.0/applications/"+id+"/addPassword", adminToken, map[string]any{}), http.StatusOK)
	sp := wantStatus(t, e.call(http.MethodPost, "/v1.0/servicePrincipals", adminToken, map[string]any{"appId": appID, "accountEnabled": true}), http.StatusCreated)
	tok := e.token(&Credentials{AppID: appID, Password: cred["secretText"].(string)})
	if _, err := e.p.Verify(e.ctx, tok); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, e.call(http.MethodDelete, "/v1.0/applications/"+id, adminToken, nil), http.StatusNoContent)
	if _, err := e.p.Verify(e.ctx, tok); errdefs.CodeOf(err) != CodeInvalidToken {
		t.Errorf("token of a deleted application: %v", err)
	}
	for _, path := range []string{"/v1.0/applications/" + id, "/v1.0/servicePrincipals/" + sp["id"].(string)} {
		m := wantStatus(t, e.call(http.MethodGet, path, adminToken, nil), http.StatusNotFound)
		if e := m["error"].(map[string]any); e["code"] != "Request_ResourceNotFound" || e["innerError"] == nil {
			t.Errorf("%s: %v", path, m)
		}
	}
	if got := values(t, e.call(http.MethodGet, "/v1.0/applications"+azFilter("appId eq '"+appID+"'"), adminToken, nil)); len(got) != 0 {
		t.Errorf("listed after delete: %v", got)
	}
	wantStatus(t, e.call(http.MethodDelete, "/v1.0/applications/"+id, adminToken, nil), http.StatusNotFound)
}

func TestGraphAuthAndErrors(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.newSP("reader")
	tok := e.token(c)

	// No token, a bad one: 401 in Graph's shape.
	for _, token := range []string{"", "garbage"} {
		m := wantStatus(t, e.call(http.MethodGet, "/v1.0/applications", token, nil), http.StatusUnauthorized)
		if m["error"].(map[string]any)["code"] != CodeInvalidToken {
			t.Errorf("token %q: %v", token, m)
		}
	}
	// Allow is asked with the principal and the action; its refusal is 403.
	var asked []string
	e.mu.Lock()
	e.allow = func(pr *Principal, action string) error {
		asked = append(asked, pr.ObjectID+" "+action)
		if action == ActionApplicationsRead {
			return nil
		}
		return fmt.Errorf("role assignment missing: %w", errdefs.ErrForbidden)
	}
	e.mu.Unlock()
	wantStatus(t, e.call(http.MethodGet, "/v1.0/applications", tok, nil), http.StatusOK)
	m := wantStatus(t, e.call(http.MethodPost, "/v1.0/applications", tok, map[string]any{"displayName": "x"}), http.StatusForbidden)
	if e := m["error"].(map[string]any); e["code"] != "Authorization_RequestDenied" || !strings.Contains(strings.ToLower(e["message"].(string)), "insufficient privileges") {
		t.Errorf("403 %v", m)
	}
	wantStatus(t, e.call(http.MethodDelete, "/v1.0/servicePrincipals/"+c.ObjectID, tok, nil), http.StatusForbidden)
	if want := []string{c.ObjectID + " " + ActionApplicationsRead, c.ObjectID + " " + ActionApplicationsWrite,
		c.ObjectID + " " + ActionServicePrincipalsDelete}; !slices.Equal(asked, want) {
		t.Errorf("asked %v, want %v", asked, want)
	}
	e.mu.Lock()
	e.allow = nil
	e.mu.Unlock()

	// Without an Allow hook only the admin may use Graph.
	strict := NewHandler(e.p, HandlerOptions{})
	r, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "/v1.0/applications", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	strict.ServeHTTP(rec, r)
	if rec.Code != http.StatusForbidden {
		t.Errorf("default Allow: status %d", rec.Code)
	}

	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		code         string
	}{
		{http.MethodGet, "/v1.0/applications" + azFilter("tags/any(t:t eq 'x')"), nil, 400, "Request_UnsupportedQuery"},
		{http.MethodGet, "/v1.0/applications" + azFilter("displayName ne 'x'"), nil, 400, "Request_UnsupportedQuery"},
		{http.MethodGet, "/v1.0/applications" + azFilter("startswith(displayName,'x"), nil, 400, "Request_UnsupportedQuery"},
		{http.MethodGet, "/v1.0/applications/not-a-uuid", nil, 400, "Request_BadRequest"},
		{http.MethodGet, "/v1.0/applications/0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d", nil, 404, "Request_ResourceNotFound"},
		{http.MethodGet, "/v1.0/users", nil, 400, "BadRequest"},
		{http.MethodPut, "/v1.0/applications", nil, 400, "Request_BadRequest"},
		{http.MethodPost, "/v1.0/applications", map[string]any{}, 400, "Request_BadRequest"},
		{http.MethodPost, "/v1.0/applications", map[string]any{"displayName": 7}, 400, "Request_BadRequest"},
		{http.MethodPost, "/v1.0/servicePrincipals", map[string]any{"accountEnabled": true}, 400, "Request_BadRequest"},
		{http.MethodPost, "/v1.0/applications/0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d/removePassword", map[string]any{"keyId": "x"}, 404, "Request_ResourceNotFound"},
	} {
		m := wantStatus(t, e.call(tc.method, tc.path, adminToken, tc.body), tc.status)
		if got := m["error"].(map[string]any)["code"]; got != tc.code {
			t.Errorf("%s %s: code %v, want %s", tc.method, tc.path, got, tc.code)
		}
	}

	// directoryObjects/getByIds (az role assignment create|list).
	got := values(t, e.call(http.MethodPost, "/v1.0/directoryObjects/getByIds", adminToken, map[string]any{
		"ids": []string{c.ObjectID, "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"}, "types": []string{"user", "group", "servicePrincipal", "directoryObjectPartnerReference"},
	}))
	if len(got) != 1 || got[0]["id"] != c.ObjectID || got[0]["@odata.type"] != "#microsoft.graph.servicePrincipal" {
		t.Errorf("getByIds %v", got)
	}
}
