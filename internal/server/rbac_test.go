package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/skiff-sh/skiff/internal/authz"
	"github.com/skiff-sh/skiff/internal/identity"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store"
	"github.com/skiff-sh/skiff/internal/testenv/apiserver/controlplane"
)

// Built-in roles' GUIDs (Azure's).
const (
	roleOwner       = authz.OwnerRoleID
	roleContributor = authz.ContributorRoleID
	roleReader      = authz.ReaderRoleID
)

// rbacEnv is a Server with the identity provider and RBAC over HTTPS, and
// tokens of principals with roles.
type rbacEnv struct {
	srv       *Server
	ts        *httptest.Server
	id        *identity.Provider
	rbac      *authz.Authorizer
	sub, sub2 string
}

func newRBACEnv(t *testing.T) *rbacEnv {
	t.Helper()
	p := controlplane.Start(t)
	ctx := context.Background()
	_, sub, err := EnsureIdentity(ctx, p.Store, p.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	ts.StartTLS()
	t.Cleanup(ts.Close)
	sealer, err := seal.New(make([]byte, 32), "test")
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.New(ctx, identity.Config{Store: p.Store, Sealer: sealer, BaseURL: ts.URL})
	if err != nil {
		t.Fatal(err)
	}
	rbac := authz.New(authz.Options{Store: p.Store})
	e := &rbacEnv{ts: ts, id: id, rbac: rbac, sub: sub, sub2: "00000000-0000-0000-0000-0000000000b2"}
	if err := p.Store.PutSubscription(ctx, store.Subscription{ID: e.sub2, DisplayName: "second", State: "Enabled"}); err != nil {
		t.Fatal(err)
	}
	e.srv = New(Config{Store: p.Store, Host: p.Agent, Token: testToken, Identity: id, Authz: rbac, SyncWindow: -1})
	h = e.srv
	for _, rg := range []string{"/subscriptions/" + sub + "/resourceGroups/a", "/subscriptions/" + sub + "/resourceGroups/b", "/subscriptions/" + e.sub2 + "/resourceGroups/c"} {
		if code, body := e.call(t, testToken, "PUT", rg, `{"location":"local"}`); code != 201 {
			t.Fatalf("PUT %s: %d %s", rg, code, body)
		}
	}
	return e
}

// principal makes a service principal with role at scope ("" none) and
// returns a token of it from the token endpoint, as az gets one.
func (e *rbacEnv) principal(t *testing.T, name, role, scope string) string {
	t.Helper()
	ctx := context.Background()
	cred, err := e.id.CreateServicePrincipalWithSecret(ctx, name, 0)
	if err != nil {
		t.Fatal(err)
	}
	if role != "" {
		def := "/subscriptions/" + e.sub + "/providers/Microsoft.Authorization/roleDefinitions/" + role
		if _, _, err := e.rbac.CreateRoleAssignment(ctx, scope, uuid.NewString(), authz.RoleAssignmentProperties{
			RoleDefinitionID: def, PrincipalID: cred.ObjectID, PrincipalType: "ServicePrincipal"}, "test"); err != nil {
			t.Fatal(err)
		}
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {cred.AppID}, "client_secret": {cred.Password},
		"scope": {e.ts.URL + "//.default"}}
	resp, err := e.ts.Client().PostForm(e.ts.URL+"/adfs/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token for %s: %d %v", name, resp.StatusCode, err)
	}
	return tok.AccessToken
}

func (e *rbacEnv) call(t *testing.T, token, method, path, body string) (int, string) {
	t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.ts.URL+path+sep+"api-version=2023-05-01", r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// The isolation matrix: principals scoped to resource group a, to b, a
// Reader of the subscription, an Owner of a second subscription, and one
// with no role, against the routes; each cell is the status a user gets,
// and every 403 is ARM's AuthorizationFailed naming the action and scope.
func TestRBACIsolationMatrix(t *testing.T) {
	e := newRBACEnv(t)
	sub := "/subscriptions/" + e.sub
	rgA, rgB := sub+"/resourceGroups/a", sub+"/resourceGroups/b"
	cgA := rgA + "/providers/Microsoft.ContainerInstance/containerGroups/web"
	group := `{"location":"local","properties":{"osType":"Linux","containers":[{"name":"app","properties":{"image":"busybox","command":["sleep","3600"],"resources":{"requests":{"cpu":0.5,"memoryInGB":0.5}},"environmentVariables":[{"name":"TOKEN","secureValue":"s3cret-value"}]}}]}}`
	if code, body := e.call(t, testToken, "PUT", cgA, group); code != 201 {
		t.Fatalf("admin PUT: %d %s", code, body)
	}
	tok := map[string]string{
		"A":      e.principal(t, "contrib-a", roleContributor, rgA),
		"B":      e.principal(t, "contrib-b", roleContributor, rgB),
		"Reader": e.principal(t, "reader", roleReader, sub),
		"Owner2": e.principal(t, "owner-2", roleOwner, "/subscriptions/"+e.sub2),
		"None":   e.principal(t, "nobody", "", ""),
	}
	loc := sub + "/providers/Microsoft.ContainerInstance/locations/local"
	// A template deployment in a (no engine runs here: it stays Accepted).
	deps := rgA + "/providers/Microsoft.Resources/deployments"
	depA, depBody := deps+"/d", `{"properties":{"mode":"Incremental","template":{"resources":[]}}}`
	if code, body := e.call(t, testToken, "PUT", depA, depBody); code != 201 {
		t.Fatalf("admin PUT of a deployment: %d %s", code, body)
	}
	// The operation of A's own PUT: A and the Reader may poll it, B not.
	req, _ := http.NewRequest("PUT", e.ts.URL+cgA+"?api-version=2023-05-01", strings.NewReader(group))
	req.Header.Set("Authorization", "Bearer "+tok["A"])
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	opURL, _ := url.Parse(resp.Header.Get("Azure-AsyncOperation"))
	if resp.StatusCode != 200 || opURL == nil || opURL.Path == "" {
		t.Fatalf("A's PUT: %d, Azure-AsyncOperation %q", resp.StatusCode, resp.Header.Get("Azure-AsyncOperation"))
	}
	// A storage account with a share in a (storage.go).
	acctA := rgA + "/providers/Microsoft.Storage/storageAccounts/rbacstore1"
	shareA := acctA + "/fileServices/default/shares/data"
	acctBody := `{"sku":{"name":"Standard_LRS"},"kind":"StorageV2","location":"local"}`
	if code, body := e.call(t, testToken, "PUT", acctA, acctBody); code != 200 {
		t.Fatalf("admin PUT of a storage account: %d %s", code, body)
	}
	if code, body := e.call(t, testToken, "PUT", shareA, `{}`); code != 201 {
		t.Fatalf("admin PUT of a share: %d %s", code, body)
	}
	cases := []struct {
		method, path, body string
		want               map[string]int
	}{
		{"GET", cgA, "", map[string]int{"A": 200, "B": 403, "Reader": 200, "Owner2": 403, "None": 403}},
		{"PUT", cgA, group, map[string]int{"A": 200, "B": 403, "Reader": 403, "Owner2": 403, "None": 403}},
		{"PATCH", cgA, `{"tags":{"x":"y"}}`, map[string]int{"A": 200, "B": 403, "Reader": 403}},
		{"GET", cgA + "/containers/app/logs", "", map[string]int{"A": 200, "B": 403, "Reader": 200, "None": 403}},
		{"GET", cgA + "/containers/app/logs?follow=true&tail=1", "", map[string]int{"B": 403, "None": 403}},
		{"GET", opURL.Path, "", map[string]int{"A": 200, "B": 403, "Reader": 200, "Owner2": 403, "None": 403}},
		{"GET", "/subscriptions/" + e.sub2 + opURL.Path[len(sub):], "", map[string]int{"A": 403, "Owner2": 403}},
		{"POST", cgA + "/containers/app/exec", `{"command":"sh","terminalSize":{"rows":24,"cols":80}}`, map[string]int{"B": 403, "Reader": 403, "None": 403}},
		{"GET", cgA + "/providers/Microsoft.Insights/metrics", "", map[string]int{"A": 200, "B": 403, "Reader": 200}},
		{"POST", cgA + "/stop", "", map[string]int{"B": 403, "Reader": 403}},
		{"GET", rgA, "", map[string]int{"A": 200, "B": 403, "Reader": 200, "Owner2": 403}},
		{"PUT", sub + "/resourceGroups/new", `{"location":"local"}`, map[string]int{"A": 403, "B": 403, "Reader": 403, "Owner2": 403}},
		{"DELETE", rgB, "", map[string]int{"A": 403, "Reader": 403, "Owner2": 403}},
		{"GET", sub, "", map[string]int{"A": 200, "B": 200, "Reader": 200, "Owner2": 403, "None": 403}},
		{"GET", loc + "/usages", "", map[string]int{"A": 403, "Reader": 200}},
		{"GET", loc + "/cachedImages", "", map[string]int{"A": 403, "Reader": 200}},
		{"POST", loc + "/images/pull", `{"image":"busybox"}`, map[string]int{"A": 403, "Reader": 403, "Owner2": 403}},
		{"DELETE", loc + "/images?image=busybox", "", map[string]int{"A": 403, "Reader": 403}},
		{"GET", "/providers/Skiff.Cluster/hosts", "", map[string]int{"A": 403, "Reader": 403, "Owner2": 403}},
		{"GET", "/subscriptions/" + e.sub2 + "/resourceGroups/c", "", map[string]int{"A": 403, "Owner2": 200}},
		{"POST", cgA + "/start", "", map[string]int{"B": 403, "Reader": 403, "None": 403}},
		{"POST", cgA + "/restart", "", map[string]int{"B": 403, "Reader": 403, "None": 403}},
		{"POST", cgA + "/containers/app/attach", "", map[string]int{"B": 403, "Reader": 403, "None": 403}},
		{"GET", cgA + "/outboundNetworkDependenciesEndpoints", "", map[string]int{"A": 200, "B": 403, "Reader": 200}},
		{"GET", rgA + "/providers/Microsoft.ContainerInstance/containerGroups", "", map[string]int{"A": 200, "B": 403, "Reader": 200, "Owner2": 403}},
		{"HEAD", rgA, "", map[string]int{"A": 204, "B": 403, "Reader": 204}},
		{"PUT", rgA, `{"location":"local"}`, map[string]int{"A": 200, "B": 403, "Reader": 403}},
		{"POST", sub + "/providers/Microsoft.ContainerInstance/register", "", map[string]int{"A": 403, "Reader": 403, "Owner2": 403}},
		{"GET", "/providers/Microsoft.ContainerInstance/operations", "", map[string]int{"A": 200, "None": 200}},
		{"GET", loc + "/capabilities", "", map[string]int{"A": 403, "Reader": 200, "Owner2": 403}},
		{"POST", loc + "/images/import", "", map[string]int{"A": 403, "Reader": 403}},
		{"GET", "/providers/Skiff.Cluster/hosts/local", "", map[string]int{"A": 403, "Reader": 403}},
		{"GET", rgA + "/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01", "", map[string]int{"A": 200, "B": 403, "Reader": 200}},
		{"PUT", rgA + "/providers/Microsoft.Authorization/roleAssignments/" + uuid.NewString() + "?api-version=2022-04-01",
			`{"properties":{"roleDefinitionId":"/subscriptions/` + e.sub + `/providers/Microsoft.Authorization/roleDefinitions/` + roleReader + `","principalId":"` + uuid.NewString() + `"}}`,
			map[string]int{"A": 403, "B": 403, "Reader": 403}},
		{"GET", sub + "/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01", "", map[string]int{"A": 403, "Reader": 200}},
		{"GET", rgA + "/providers/Microsoft.Authorization/roleDefinitions?api-version=2018-01-01-preview&$filter=roleName%20eq%20%27contributor%27", "", map[string]int{"A": 200, "B": 403}},
		{"PUT", depA, depBody, map[string]int{"B": 403, "Reader": 403, "Owner2": 403, "None": 403}},
		{"GET", depA, "", map[string]int{"A": 200, "B": 403, "Reader": 200, "Owner2": 403, "None": 403}},
		{"HEAD", depA, "", map[string]int{"A": 204, "B": 403, "Reader": 204}},
		{"GET", deps, "", map[string]int{"A": 200, "B": 403, "Reader": 200, "Owner2": 403}},
		{"POST", depA + "/validate", depBody, map[string]int{"A": 200, "B": 403, "Reader": 403}},
		{"POST", depA + "/exportTemplate", "", map[string]int{"A": 200, "B": 403, "Reader": 403}},
		{"GET", depA + "/operations", "", map[string]int{"A": 200, "B": 403, "Reader": 200}},
		{"GET", depA + "/operations/0123456789ABCDEF", "", map[string]int{"A": 404, "B": 403, "Reader": 404}},
		{"GET", depA + "/operationStatuses/x", "", map[string]int{"A": 404, "B": 403, "Reader": 404}},
		{"POST", depA + "/cancel", "", map[string]int{"B": 403, "Reader": 403, "None": 403}},
		{"DELETE", depA, "", map[string]int{"B": 403, "Reader": 403, "Owner2": 403}},
		{"DELETE", cgA, "", map[string]int{"B": 403, "Reader": 403, "Owner2": 403, "None": 403}},
		// Storage: a Reader reads accounts and shares but never lists keys.
		{"GET", acctA, "", map[string]int{"A": 200, "B": 403, "Reader": 200, "Owner2": 403, "None": 403}},
		{"PUT", acctA, acctBody, map[string]int{"A": 200, "B": 403, "Reader": 403, "Owner2": 403}},
		{"PATCH", acctA, `{"tags":{"x":"y"}}`, map[string]int{"A": 200, "B": 403, "Reader": 403}},
		{"POST", acctA + "/listKeys", "", map[string]int{"A": 200, "B": 403, "Reader": 403, "Owner2": 403, "None": 403}},
		{"POST", acctA + "/regenerateKey", `{"keyName":"key2"}`, map[string]int{"A": 200, "B": 403, "Reader": 403}},
		{"GET", acctA + "/fileServices", "", map[string]int{"A": 200, "B": 403, "Reader": 200}},
		{"GET", acctA + "/fileServices/default", "", map[string]int{"A": 200, "B": 403, "Reader": 200}},
		{"GET", acctA + "/fileServices/default/shares", "", map[string]int{"A": 200, "B": 403, "Reader": 200}},
		{"PUT", shareA, `{}`, map[string]int{"A": 200, "B": 403, "Reader": 403, "None": 403}},
		{"GET", shareA, "", map[string]int{"A": 200, "B": 403, "Reader": 200, "None": 403}},
		{"GET", rgA + "/providers/Microsoft.Storage/storageAccounts", "", map[string]int{"A": 200, "B": 403, "Reader": 200, "Owner2": 403}},
		{"POST", sub + "/providers/Microsoft.Storage/checkNameAvailability", `{"name":"rbacstore1"}`, map[string]int{"A": 403, "Reader": 200, "Owner2": 403}},
		{"PUT", rgB + "/providers/Microsoft.Storage/storageAccounts/rbacstore2", acctBody, map[string]int{"A": 403, "B": 200, "Reader": 403}},
		{"DELETE", shareA, "", map[string]int{"B": 403, "Reader": 403, "None": 403}},
		{"DELETE", acctA, "", map[string]int{"B": 403, "Reader": 403, "Owner2": 403, "None": 403}},
	}
	for _, c := range cases {
		for who, want := range c.want {
			code, body := e.call(t, tok[who], c.method, c.path, c.body)
			if code != want {
				t.Errorf("%s %s %s: %d %s, want %d", who, c.method, c.path, code, clipBody(body), want)
				continue
			}
			if code == 403 && c.method != "HEAD" && (!strings.Contains(body, `"AuthorizationFailed"`) || !strings.Contains(body, "over scope '")) {
				t.Errorf("%s %s %s: 403 %s, want ARM's AuthorizationFailed", who, c.method, c.path, clipBody(body))
			}
			if strings.Contains(body, "s3cret-value") {
				t.Errorf("%s %s %s: the secure value came back", who, c.method, c.path)
			}
		}
	}

	// Lists show what the caller may read.
	lists := []struct {
		path string
		want map[string]string // principal → the names listed
	}{
		{sub + "/resourcegroups", map[string]string{"A": "a", "B": "b", "Reader": "a b"}},
		{sub + "/providers/Microsoft.ContainerInstance/containerGroups", map[string]string{"A": "web", "B": "", "Reader": "web"}},
		{"/subscriptions", map[string]string{"A": e.sub, "Owner2": e.sub2, "None": ""}},
		{sub + "/providers/Microsoft.Storage/storageAccounts", map[string]string{"A": "rbacstore1", "B": "rbacstore2", "Reader": "rbacstore1 rbacstore2"}},
	}
	for _, l := range lists {
		for who, want := range l.want {
			code, body := e.call(t, tok[who], "GET", l.path, "")
			var list struct {
				Value []struct {
					Name, SubscriptionID string
				} `json:"value"`
			}
			_ = json.Unmarshal([]byte(body), &list)
			var names []string
			for _, v := range list.Value {
				names = append(names, v.Name+v.SubscriptionID)
			}
			if code != 200 || strings.Join(names, " ") != want {
				t.Errorf("%s lists %s: %d %v, want [%s]", who, l.path, code, names, want)
			}
		}
	}
	if code, _ := e.call(t, tok["Owner2"], "GET", sub+"/resourcegroups", ""); code != 403 {
		t.Errorf("an Owner of another subscription lists this one's resource groups: %d, want 403", code)
	}
}

// Bad tokens are 401 with ARM's codes, never a 500.
func TestRBACBadTokens(t *testing.T) {
	e := newRBACEnv(t)
	good := e.principal(t, "reader", roleReader, "/subscriptions/"+e.sub)
	parts := strings.Split(good, ".")
	for name, tc := range map[string]struct{ token, code string }{
		"none":          {"", "AuthenticationFailed"},
		"garbage":       {"not-a-jwt", "InvalidAuthenticationToken"},
		"bad signature": {parts[0] + "." + parts[1] + ".AAAA", "InvalidAuthenticationToken"},
		"alg none":      {"eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + parts[1] + ".", "InvalidAuthenticationToken"},
	} {
		code, body := e.call(t, tc.token, "GET", "/subscriptions/"+e.sub, "")
		if code != 401 || !strings.Contains(body, `"`+tc.code+`"`) {
			t.Errorf("%s: %d %s, want 401 %s", name, code, clipBody(body), tc.code)
		}
	}
	if code, body := e.call(t, good, "GET", "/subscriptions/"+e.sub, ""); code != 200 {
		t.Errorf("the good token: %d %s", code, clipBody(body))
	}
}

// Every route the server serves has an action in authz.Routes.
func TestEveryRouteIsAuthorized(t *testing.T) {
	s := New(Config{Location: "local"})
	for _, rt := range s.routes.routes {
		pattern := "/" + strings.Join(rt.segs, "/")
		if _, ok := authz.RouteFor(rt.method, pattern); !ok {
			t.Errorf("%s %s has no action in authz.Routes", rt.method, pattern)
		}
	}
}

func clipBody(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
