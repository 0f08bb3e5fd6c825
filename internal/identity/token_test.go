package identity

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// unverifiedClaims decodes a token's header and claims without checking
// it, as a test reads what was issued.
func unverifiedClaims(t *testing.T, tok string) (map[string]any, Claims) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	var hdr map[string]any
	var c Claims
	for i, v := range []any{&hdr, &c} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatal(err)
		}
	}
	return hdr, c
}

func TestTokenV2ScopeWithDoubleSlash(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.newSP("ci")
	// az 2.45: scope = activeDirectoryResourceId + "/.default", with the id
	// ending in "/".
	rep := e.form("/adfs/oauth2/token", clientCredentials(c.AppID, c.Password, e.base+"//.default"))
	if rep.status != http.StatusOK {
		t.Fatalf("status %d: %s", rep.status, rep.body)
	}
	m := rep.json(t)
	if m["token_type"] != "Bearer" || m["expires_in"] != float64(3600) || m["ext_expires_in"] != float64(3600) {
		t.Errorf("reply %s", rep.body)
	}
	if cc := rep.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	tok := m["access_token"].(string)
	hdr, claims := unverifiedClaims(t, tok)
	if hdr["alg"] != "RS256" || hdr["typ"] != "JWT" || hdr["kid"] == "" {
		t.Errorf("header %v", hdr)
	}
	now := e.clock.Now().Unix()
	want := Claims{
		Audience: e.base + "/", Issuer: e.base + "/adfs", IssuedAt: now, NotBefore: now, Expiry: now + 3600,
		TenantID: e.p.TenantID(), ObjectID: c.ObjectID, Subject: c.ObjectID, AppID: c.AppID, AZP: c.AppID,
		AppIDACR: "1", IDType: "app", Version: "1.0", UTI: claims.UTI, Name: "ci",
	}
	if claims != want {
		t.Errorf("claims\n got %+v\nwant %+v", claims, want)
	}
	pr, err := e.p.Verify(e.ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if *pr != (Principal{TenantID: e.p.TenantID(), ObjectID: c.ObjectID, AppID: c.AppID, DisplayName: "ci"}) {
		t.Errorf("principal %+v", pr)
	}
}

func TestTokenV1Resource(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.newSP("v1")
	for _, path := range []string{"/adfs/oauth2/token", "/" + e.p.TenantID() + "/oauth2/token"} {
		rep := e.form(path, url.Values{"grant_type": {"client_credentials"}, "client_id": {c.AppID},
			"client_secret": {c.Password}, "resource": {e.base + "/"}})
		if rep.status != http.StatusOK {
			t.Fatalf("%s: status %d: %s", path, rep.status, rep.body)
		}
		m := rep.json(t)
		// Entra's v1 endpoint sends its numbers as strings.
		if m["token_type"] != "Bearer" || m["expires_in"] != "3600" || m["resource"] != e.base+"/" || m["expires_on"] == nil {
			t.Errorf("%s: reply %s", path, rep.body)
		}
		_, claims := unverifiedClaims(t, m["access_token"].(string))
		if claims.Audience != e.base+"/" {
			t.Errorf("%s: aud %q", path, claims.Audience)
		}
		if _, err := e.p.Verify(e.ctx, m["access_token"].(string)); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
}

func TestTokenBasicAuthAndTenantPaths(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.newSP("basic")
	// HTTP Basic (RFC 6749 2.3.1: form-encoded id and secret).
	req, _ := http.NewRequest(http.MethodPost, e.base+"/"+e.p.TenantID()+"/oauth2/v2.0/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"https://management.azure.com/.default"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.AppID), url.QueryEscape(c.Password))
	rep := e.do(req)
	if rep.status != http.StatusOK {
		t.Fatalf("status %d: %s", rep.status, rep.body)
	}
	tok := rep.json(t)["access_token"].(string)
	_, claims := unverifiedClaims(t, tok)
	// SDK configs made for public Azure work unchanged.
	if claims.Audience != "https://management.azure.com" || claims.Issuer != e.base+"/"+e.p.TenantID()+"/v2.0" {
		t.Errorf("aud %q iss %q", claims.Audience, claims.Issuer)
	}
	if _, err := e.p.Verify(e.ctx, tok); err != nil {
		t.Error(err)
	}
	// "organizations" names this tenant too; the base URL without slash.
	rep = e.form("/organizations/oauth2/v2.0/token", clientCredentials(c.AppID, c.Password, e.base+"/.default openid profile offline_access"))
	if rep.status != http.StatusOK {
		t.Fatalf("status %d: %s", rep.status, rep.body)
	}
	_, claims = unverifiedClaims(t, rep.json(t)["access_token"].(string))
	if claims.Audience != e.base {
		t.Errorf("aud %q", claims.Audience)
	}
}

func TestTokenErrors(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.newSP("errs")
	disabled := e.newSP("disabled")
	sp, err := e.p.ServicePrincipalByAppID(e.ctx, disabled.AppID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.UpdateServicePrincipal(e.ctx, sp.ID, func(s *ServicePrincipal) error { s.AccountEnabled = false; return nil }); err != nil {
		t.Fatal(err)
	}
	appOnly, err := e.p.CreateApp(e.ctx, AppSpec{DisplayName: "no-sp"})
	if err != nil {
		t.Fatal(err)
	}
	appOnlyCred, err := e.p.AddPassword(e.ctx, appOnly.ID, PasswordSpec{})
	if err != nil {
		t.Fatal(err)
	}
	expiring := e.newSP("expiring")
	expApp, _ := e.p.AppByAppID(e.ctx, expiring.AppID)
	soon, err := e.p.AddPassword(e.ctx, expApp.ID, PasswordSpec{End: e.clock.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}

	scope := e.base + "//.default"
	cases := []struct {
		name   string
		path   string
		form   url.Values
		status int
		code   string
	}{
		{"wrong secret", "/adfs/oauth2/token", clientCredentials(c.AppID, "x"+c.Password[1:], scope), 401, "invalid_client"},
		{"no secret", "/adfs/oauth2/token", clientCredentials(c.AppID, "", scope), 401, "invalid_client"},
		{"unknown client", "/adfs/oauth2/token", clientCredentials("6f2d8a51-4c7e-4b1a-9d1e-2b8f7c0a9e11", c.Password, scope), 400, "unauthorized_client"},
		{"client id not a uuid", "/adfs/oauth2/token", clientCredentials("admin", c.Password, scope), 400, "unauthorized_client"},
		{"no service principal", "/adfs/oauth2/token", clientCredentials(appOnly.AppID, *appOnlyCred.SecretText, scope), 400, "unauthorized_client"},
		{"disabled", "/adfs/oauth2/token", clientCredentials(disabled.AppID, disabled.Password, scope), 400, "unauthorized_client"},
		{"no client id", "/adfs/oauth2/token", clientCredentials("", c.Password, scope), 400, "invalid_request"},
		{"no grant type", "/adfs/oauth2/token", url.Values{"client_id": {c.AppID}, "client_secret": {c.Password}, "scope": {scope}}, 400, "invalid_request"},
		{"password grant", "/adfs/oauth2/token", url.Values{"grant_type": {"password"}, "client_id": {c.AppID}, "username": {"u"}, "password": {"p"}}, 400, "unsupported_grant_type"},
		{"scope without .default", "/adfs/oauth2/token", clientCredentials(c.AppID, c.Password, e.base+"/user_impersonation"), 400, "invalid_scope"},
		{"two resources", "/adfs/oauth2/token", clientCredentials(c.AppID, c.Password, scope+" https://management.azure.com/.default"), 400, "invalid_scope"},
		{"only openid", "/adfs/oauth2/token", clientCredentials(c.AppID, c.Password, "openid profile"), 400, "invalid_scope"},
		{"unknown resource", "/adfs/oauth2/token", clientCredentials(c.AppID, c.Password, "https://vault.azure.net/.default"), 400, "invalid_resource"},
		{"no scope on v2", "/" + e.p.TenantID() + "/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {c.AppID}, "client_secret": {c.Password}, "resource": {e.base}}, 400, "invalid_request"},
		{"unknown tenant", "/9a3f0e6c-1111-4222-8333-444455556666/oauth2/v2.0/token", clientCredentials(c.AppID, c.Password, scope), 400, "invalid_tenant"},
		{"assertion", "/adfs/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {c.AppID}, "client_assertion": {"x.y.z"}, "scope": {scope}}, 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep := e.form(tc.path, tc.form)
			m := rep.json(t)
			if rep.status != tc.status || m["error"] != tc.code {
				t.Fatalf("status %d, body %s; want %d %s", rep.status, rep.body, tc.status, tc.code)
			}
			if d, _ := m["error_description"].(string); !strings.HasPrefix(d, "AADSTS") {
				t.Errorf("error_description %q", d)
			}
			if strings.Contains(string(rep.body), c.Password) {
				t.Error("the reply carries the secret")
			}
		})
	}

	t.Run("expired secret", func(t *testing.T) {
		e.clock.Advance(2 * time.Minute)
		rep := e.form("/adfs/oauth2/token", clientCredentials(expiring.AppID, *soon.SecretText, scope))
		if m := rep.json(t); rep.status != 401 || m["error"] != "invalid_client" || !strings.Contains(m["error_description"].(string), "expired") {
			t.Fatalf("status %d: %s", rep.status, rep.body)
		}
		// The other secret of the same application still signs in.
		if rep := e.form("/adfs/oauth2/token", clientCredentials(expiring.AppID, expiring.Password, scope)); rep.status != 200 {
			t.Fatalf("status %d: %s", rep.status, rep.body)
		}
	})
	t.Run("GET", func(t *testing.T) {
		rep := e.call(http.MethodGet, "/adfs/oauth2/token", "", nil)
		if m := rep.json(t); rep.status != 405 || m["error"] != "invalid_request" {
			t.Fatalf("status %d: %s", rep.status, rep.body)
		}
	})
	t.Run("JSON body", func(t *testing.T) {
		rep := e.call(http.MethodPost, "/adfs/oauth2/token", "", map[string]string{"grant_type": "client_credentials"})
		if m := rep.json(t); rep.status != 400 || m["error"] != "invalid_request" {
			t.Fatalf("status %d: %s", rep.status, rep.body)
		}
	})
	t.Run("basic and body disagree", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.base+"/adfs/oauth2/token",
			strings.NewReader(clientCredentials(c.AppID, "other", scope).Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(c.AppID, c.Password)
		if rep := e.do(req); rep.status != 400 || rep.json(t)["error"] != "invalid_request" {
			t.Fatalf("status %d: %s", rep.status, rep.body)
		}
	})
	t.Run("wrong basic secret", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.base+"/adfs/oauth2/token",
			strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(c.AppID, "nope")
		rep := e.do(req)
		if rep.status != 401 || rep.json(t)["error"] != "invalid_client" || rep.header.Get("WWW-Authenticate") == "" {
			t.Fatalf("status %d %v: %s", rep.status, rep.header, rep.body)
		}
	})
}

// forge signs claims with a key and header of the test's choosing.
func forge(t *testing.T, key any, alg jose.SignatureAlgorithm, kid string, c Claims) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func b64(v any) string {
	raw, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(raw)
}

func TestVerifyRefusesBadTokens(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.newSP("victim")
	good := e.token(c)
	hdr, claims := unverifiedClaims(t, good)
	kid := hdr["kid"].(string)
	cur, err := e.p.currentKey(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")

	// HS256 keyed with the public key's PEM (the classic alg confusion).
	keyRec, _, err := e.p.getKeyRecord(e.ctx, kid)
	if err != nil {
		t.Fatal(err)
	}
	hsInput := b64(map[string]string{"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + parts[1]
	mac := hmac.New(sha256.New, []byte(keyRec.Public))
	mac.Write([]byte(hsInput))
	hs256 := hsInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	withClaims := func(mod func(*Claims)) Claims {
		c2 := claims
		mod(&c2)
		return c2
	}
	tampered := parts[0] + "." + b64(withClaims(func(c *Claims) { c.AppID = "00000000-0000-0000-0000-000000000000" })) + "." + parts[2]

	cases := []struct {
		name, token, code string
	}{
		{"empty", "", CodeInvalidToken},
		{"garbage", "not a token", CodeInvalidToken},
		{"three dots", "a.b.c", CodeInvalidToken},
		{"two parts", parts[0] + "." + parts[1], CodeInvalidToken},
		{"alg none", b64(map[string]string{"alg": "none", "typ": "JWT", "kid": kid}) + "." + parts[1] + ".", CodeInvalidToken},
		{"HS256 with the public key", hs256, CodeInvalidToken},
		{"tampered claims", tampered, CodeInvalidToken},
		{"wrong signature", forge(t, other, jose.RS256, kid, claims), CodeInvalidToken},
		{"unknown kid", forge(t, other, jose.RS256, "no-such-key", claims), CodeInvalidToken},
		{"no kid", forge(t, other, jose.RS256, "", claims), CodeInvalidToken},
		{"RS512", forge(t, cur.priv, jose.RS512, kid, claims), CodeInvalidToken},
		{"wrong audience", forge(t, cur.priv, jose.RS256, kid, withClaims(func(c *Claims) { c.Audience = "https://vault.azure.net" })), CodeInvalidAudience},
		{"audience of another host", forge(t, cur.priv, jose.RS256, kid, withClaims(func(c *Claims) { c.Audience = "https://elsewhere:8443/" })), CodeInvalidAudience},
		{"wrong tenant", forge(t, cur.priv, jose.RS256, kid, withClaims(func(c *Claims) { c.TenantID = "72f988bf-86f1-41af-91ab-2d7cd011db47" })), CodeInvalidTenant},
		{"unknown issuer", forge(t, cur.priv, jose.RS256, kid, withClaims(func(c *Claims) { c.Issuer = "https://sts.windows.net/x/" })), CodeInvalidToken},
		{"not yet valid", forge(t, cur.priv, jose.RS256, kid, withClaims(func(c *Claims) { c.NotBefore += 3600 })), CodeInvalidToken},
		{"no expiry", forge(t, cur.priv, jose.RS256, kid, withClaims(func(c *Claims) { c.Expiry = 0 })), CodeInvalidToken},
		{"user token", forge(t, cur.priv, jose.RS256, kid, withClaims(func(c *Claims) { c.IDType = "user" })), CodeInvalidToken},
		{"unknown object id", forge(t, cur.priv, jose.RS256, kid, withClaims(func(c *Claims) { c.ObjectID = "11111111-2222-4333-8444-555555555555" })), CodeInvalidToken},
		{"appid of another app", forge(t, cur.priv, jose.RS256, kid, withClaims(func(c *Claims) { c.AppID = "11111111-2222-4333-8444-555555555555" })), CodeInvalidToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.p.Verify(e.ctx, tc.token)
			if !errdefs.Is(err, errdefs.ErrUnauthorized) || errdefs.CodeOf(err) != tc.code {
				t.Fatalf("err %v (code %q), want %s", err, errdefs.CodeOf(err), tc.code)
			}
			if tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Error("the error carries the token")
			}
		})
	}
	if _, err := e.p.Verify(e.ctx, good); err != nil {
		t.Fatalf("the good token: %v", err)
	}

	t.Run("expired", func(t *testing.T) {
		e.clock.Advance(time.Hour + DefaultClockSkew + time.Second)
		defer e.clock.Advance(-(time.Hour + DefaultClockSkew + time.Second))
		_, err := e.p.Verify(e.ctx, good)
		if errdefs.CodeOf(err) != CodeExpiredToken || !errdefs.Is(err, errdefs.ErrUnauthorized) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("disabled principal", func(t *testing.T) {
		set := func(on bool) {
			if _, err := e.p.UpdateServicePrincipal(e.ctx, c.ObjectID, func(s *ServicePrincipal) error { s.AccountEnabled = on; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		set(false)
		defer set(true)
		if _, err := e.p.Verify(e.ctx, good); errdefs.CodeOf(err) != CodeInvalidToken {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("deleted principal", func(t *testing.T) {
		if err := e.p.DeleteServicePrincipal(e.ctx, c.ObjectID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.p.Verify(e.ctx, good); errdefs.CodeOf(err) != CodeInvalidToken || !errdefs.Is(err, errdefs.ErrUnauthorized) {
			t.Fatalf("err %v", err)
		}
	})
}

func TestAuthenticateHeader(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.newSP("hdr")
	tok := e.token(c)
	for _, tc := range []struct{ header, code string }{
		{"", CodeAuthFailed},
		{"Basic abc", CodeAuthFailed},
		{"Bearer", CodeAuthFailed},
		{"Bearer abc", CodeInvalidToken},
		{"Bearer " + tok, ""},
		{"bearer " + tok, ""},
	} {
		r, _ := http.NewRequest(http.MethodGet, e.base+"/subscriptions", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		pr, err := e.p.Authenticate(r)
		if tc.code == "" {
			if err != nil || pr.ObjectID != c.ObjectID {
				t.Errorf("%.20q: %v %v", tc.header, pr, err)
			}
			continue
		}
		if errdefs.CodeOf(err) != tc.code {
			t.Errorf("%.20q: err %v, want %s", tc.header, err, tc.code)
		}
	}
}

func TestPrincipalString(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.newSP("audit-me")
	pr, err := e.p.Verify(e.ctx, e.token(c))
	if err != nil {
		t.Fatal(err)
	}
	s := pr.String()
	for _, want := range []string{"audit-me", c.ObjectID, c.AppID, e.p.TenantID()} {
		if !strings.Contains(s, want) {
			t.Errorf("%q lacks %q", s, want)
		}
	}
	if got := e.p.AdminPrincipal().String(); !strings.Contains(got, "admin") {
		t.Errorf("admin: %q", got)
	}
	for _, printed := range []string{c.String(), fmt.Sprintf("%v", *c), fmt.Sprintf("%#v", *c), fmt.Sprint(c)} {
		if strings.Contains(printed, c.Password) {
			t.Errorf("credentials print their password: %s", printed)
		}
	}
}
