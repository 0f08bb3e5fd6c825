package identity

import (
	"net/http"
	"testing"
)

func TestMetadataEndpoints(t *testing.T) {
	e := newEnv(t, Config{})
	// az cloud register --endpoint-resource-manager URL sends exactly this.
	m := wantStatus(t, e.call(http.MethodGet, "/metadata/endpoints?api-version=2015-01-01", "", nil), http.StatusOK)
	auth := m["authentication"].(map[string]any)
	if m["graphEndpoint"] != e.base+"/" || m["galleryEndpoint"] != e.base+"/" || m["portalEndpoint"] != e.base+"/" ||
		auth["loginEndpoint"] != e.base+"/adfs" || len(auth["audiences"].([]any)) != 1 || auth["audiences"].([]any)[0] != e.base+"/" {
		t.Errorf("metadata %v", m)
	}
	// What the advertised audience becomes in az's scope is accepted.
	if aud, ok := e.p.Resource(e.base + "/"); !ok || aud != e.base+"/" {
		t.Errorf("resource %q %v", aud, ok)
	}
}

func TestDiscoveryDocuments(t *testing.T) {
	e := newEnv(t, Config{})
	tid := e.p.TenantID()
	for _, tc := range []struct{ path, issuer, token, keys string }{
		// MSAL Python (az) with an /adfs authority.
		{"/adfs/.well-known/openid-configuration", e.base + "/adfs", e.base + "/adfs/oauth2/token", e.base + "/adfs/discovery/keys"},
		// MSAL Go (azidentity) with a tenant authority.
		{"/" + tid + "/v2.0/.well-known/openid-configuration", e.base + "/" + tid + "/v2.0", e.base + "/" + tid + "/oauth2/v2.0/token", e.base + "/" + tid + "/discovery/v2.0/keys"},
		{"/" + tid + "/.well-known/openid-configuration", e.base + "/" + tid + "/", e.base + "/" + tid + "/oauth2/token", e.base + "/" + tid + "/discovery/keys"},
		{"/organizations/v2.0/.well-known/openid-configuration", e.base + "/" + tid + "/v2.0", e.base + "/" + tid + "/oauth2/v2.0/token", e.base + "/" + tid + "/discovery/v2.0/keys"},
	} {
		m := wantStatus(t, e.call(http.MethodGet, tc.path, "", nil), http.StatusOK)
		if m["issuer"] != tc.issuer || m["token_endpoint"] != tc.token || m["jwks_uri"] != tc.keys || m["authorization_endpoint"] == nil {
			t.Errorf("%s: %v", tc.path, m)
		}
		// The published endpoints answer.
		wantStatus(t, e.call(http.MethodGet, tc.keys[len(e.base):], "", nil), http.StatusOK)
		if rep := e.call(http.MethodGet, m["authorization_endpoint"].(string)[len(e.base):], "", nil); rep.status != 400 ||
			rep.json(t)["error"] != "unsupported_response_type" {
			t.Errorf("authorize: %d %s", rep.status, rep.body)
		}
	}
	for _, path := range []string{"/adfs/nope", "/" + tid + "/oauth2/nope"} {
		if rep := e.call(http.MethodGet, path, "", nil); rep.status != http.StatusNotFound || rep.json(t)["error"] != "invalid_request" {
			t.Errorf("%s: %d %s", path, rep.status, rep.body)
		}
	}
	if rep := e.call(http.MethodGet, "/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration", "", nil); rep.status != 400 ||
		rep.json(t)["error"] != "invalid_tenant" {
		t.Errorf("another tenant: %d %s", rep.status, rep.body)
	}
	if rep := e.call(http.MethodPost, "/adfs/.well-known/openid-configuration", "", nil); rep.status != http.StatusMethodNotAllowed {
		t.Errorf("POST discovery: %d", rep.status)
	}
}

func TestHandles(t *testing.T) {
	for path, want := range map[string]bool{
		"/metadata/endpoints":                               true,
		"/adfs/oauth2/token":                                true,
		"/adfs/.well-known/openid-configuration":            true,
		"/v1.0/servicePrincipals":                           true,
		"/t/oauth2/v2.0/token":                              true,
		"/t/v2.0/.well-known/openid-configuration":          true,
		"/t/.well-known/openid-configuration":               true,
		"/t/discovery/v2.0/keys":                            true,
		"/subscriptions":                                    false,
		"/subscriptions/s/resourceGroups/rg":                false,
		"/subscriptions/s/providers/Microsoft.Foo/bar":      false,
		"/providers/Microsoft.ContainerInstance/operations": false,
		"/tenants":             false,
		"/metadata/endpoints2": false,
		"/":                    false,
	} {
		if got := Handles(path); got != want {
			t.Errorf("Handles(%q) = %v, want %v", path, got, want)
		}
	}
}
