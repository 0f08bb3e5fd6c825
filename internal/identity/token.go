package identity

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// Access tokens: RS256 JWTs with the claims of Entra's v1.0 access tokens
// for an application (client credentials), e.g.
//
//	{"aud":"https://host:8443/","iss":"https://host:8443/adfs","iat":…,"nbf":…,"exp":…,
//	 "tid":"<tenant>","oid":"<sp object id>","sub":"<sp object id>","appid":"<appId>",
//	 "azp":"<appId>","appidacr":"1","idtyp":"app","ver":"1.0","uti":"<random>"}
//
// with a kid header naming the signing key.

// Claims are an access token's claims.
type Claims struct {
	Audience  string `json:"aud"`
	Issuer    string `json:"iss"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	Expiry    int64  `json:"exp"`
	TenantID  string `json:"tid"`
	ObjectID  string `json:"oid"`
	Subject   string `json:"sub"`
	AppID     string `json:"appid"`
	AZP       string `json:"azp"`
	AppIDACR  string `json:"appidacr"`
	IDType    string `json:"idtyp"`
	Version   string `json:"ver"`
	UTI       string `json:"uti"`
	// Name is the service principal's display name, for logs (not an
	// Entra app-token claim; Verify reads the directory's).
	Name string `json:"app_displayname,omitempty"`
}

// Token is an issued access token.
type Token struct {
	AccessToken string
	Audience    string
	NotBefore   time.Time
	ExpiresOn   time.Time
}

// issuers are the token issuers of this install: the ADFS authority's and
// the Entra-style tenant paths' (v1 and v2 discovery).
func (p *Provider) issuers() []string {
	return []string{p.base + "/adfs", p.base + "/" + p.tenant + "/", p.base + "/" + p.tenant + "/v2.0"}
}

// Resource checks a resource id a client asked a token for (v1
// resource=, or a v2 scope without its "/.default") and returns it in the
// form the token's aud carries: scheme and host lower-cased, the trailing
// slash as asked.
func (p *Provider) Resource(raw string) (string, bool) {
	k, err := audienceKey(raw)
	if err != nil {
		return "", false
	}
	if _, ok := p.audiences[k]; !ok {
		return "", false
	}
	if strings.HasSuffix(strings.TrimSpace(raw), "/") {
		return k + "/", true
	}
	return k, true
}

// Audiences lists the accepted audiences (each with and without its
// trailing slash), for error messages and /metadata/endpoints.
func (p *Provider) Audiences() []string {
	out := []string{p.base + "/", p.base}
	for k := range p.audiences {
		if k != p.base {
			out = append(out, k+"/", k)
		}
	}
	return out
}

// oauthError is an OAuth 2.0 error reply (RFC 6749 5.2, with Entra's
// AADSTS number in the description).
type oauthError struct {
	status int
	code   string
	aadsts int
	desc   string
}

func (e *oauthError) Error() string { return fmt.Sprintf("%s: %s", e.code, e.desc) }

func oauthErr(status int, code string, aadsts int, format string, a ...any) *oauthError {
	return &oauthError{status: status, code: code, aadsts: aadsts, desc: fmt.Sprintf(format, a...)}
}

// authenticateClient checks a client id and secret and returns the service
// principal to issue a token to.
func (p *Provider) authenticateClient(ctx context.Context, clientID, secret string) (*spRecord, error) {
	app, err := p.appRecordByAppID(ctx, clientID)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, oauthErr(http.StatusBadRequest, "unauthorized_client", 700016,
			"Application with identifier '%s' was not found in the directory '%s'.", clientID, p.tenant)
	}
	if err != nil {
		return nil, err
	}
	sp, err := p.spRecordByAppID(ctx, app.AppID)
	if errdefs.Is(err, errdefs.ErrNotFound) {
		return nil, oauthErr(http.StatusBadRequest, "unauthorized_client", 7000229,
			"The client application %s is missing service principal in the tenant %s.", app.AppID, p.tenant)
	}
	if err != nil {
		return nil, err
	}
	if !sp.AccountEnabled {
		return nil, oauthErr(http.StatusBadRequest, "unauthorized_client", 7000112,
			"Application '%s'(%s) is disabled.", app.AppID, app.DisplayName)
	}
	creds := append(append([]passwordRecord{}, app.Passwords...), sp.Passwords...)
	switch checkSecret(creds, secret, p.now()) {
	case secretOK:
		return sp, nil
	case secretExpired:
		return nil, oauthErr(http.StatusUnauthorized, "invalid_client", 7000222,
			"The provided client secret keys for app '%s' are expired.", app.AppID)
	}
	return nil, oauthErr(http.StatusUnauthorized, "invalid_client", 7000215,
		"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", app.AppID)
}

// IssueToken signs an access token for the service principal of client
// id appID after checking its secret, as the token endpoint does (for
// in-process callers and tests). resource is as Resource takes it; the
// issuer is the ADFS authority's. A refused client is of class
// errdefs.ErrUnauthorized with the OAuth error code (invalid_client…).
func (p *Provider) IssueToken(ctx context.Context, appID, secret, resource string) (*Token, error) {
	aud, ok := p.Resource(resource)
	if !ok {
		return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "invalid_resource", "resource %q is not served here", resource)
	}
	sp, err := p.authenticateClient(ctx, appID, secret)
	if err != nil {
		var oe *oauthError
		if errors.As(err, &oe) {
			return nil, errdefs.WithCode(errdefs.ErrUnauthorized, oe.code, "%s", oe.desc)
		}
		return nil, err
	}
	return p.sign(ctx, sp, aud, p.Authority())
}

// sign makes the token of sp for aud.
func (p *Provider) sign(ctx context.Context, sp *spRecord, aud, iss string) (*Token, error) {
	k, err := p.currentKey(ctx)
	if err != nil {
		return nil, err
	}
	now := p.now()
	exp := now.Add(p.lifetime)
	uti := make([]byte, 16)
	_, _ = rand.Read(uti)
	c := Claims{
		Audience: aud, Issuer: iss, IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: exp.Unix(),
		TenantID: p.tenant, ObjectID: sp.ID, Subject: sp.ID, AppID: sp.AppID, AZP: sp.AppID,
		AppIDACR: "1", IDType: "app", Version: "1.0", UTI: base64.RawURLEncoding.EncodeToString(uti),
		Name: sp.DisplayName,
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("identity: sign: %w", err)
	}
	s, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		return nil, fmt.Errorf("identity: sign: %w", err)
	}
	p.log.Debug("identity: issued a token", "appId", sp.AppID, "oid", sp.ID, "aud", aud, "kid", k.kid)
	return &Token{AccessToken: s, Audience: aud, NotBefore: time.Unix(c.NotBefore, 0), ExpiresOn: time.Unix(c.Expiry, 0)}, nil
}

// ARM's codes of a refused bearer token.
const (
	CodeInvalidToken     = "InvalidAuthenticationToken"
	CodeExpiredToken     = "ExpiredAuthenticationToken"
	CodeInvalidAudience  = "InvalidAuthenticationTokenAudience"
	CodeInvalidTenant    = "InvalidAuthenticationTokenTenant"
	CodeAuthFailed       = "AuthenticationFailed"
	invalidTokenMessage  = "The access token is invalid."
	unknownIdentityMsg   = "Could not find identity for access token."
	armTimeLayout        = "1/2/2006 3:04:05 PM"
	maxBearerTokenLength = 16 << 10
)

func invalidToken(msg string) error {
	return errdefs.WithCode(errdefs.ErrUnauthorized, CodeInvalidToken, "%s", msg)
}

// Verify checks a bearer token and returns its principal. Every failure
// is of class errdefs.ErrUnauthorized with ARM's code:
// ExpiredAuthenticationToken, InvalidAuthenticationTokenAudience,
// InvalidAuthenticationTokenTenant, or InvalidAuthenticationToken (a bad
// signature, an algorithm other than RS256, an unknown key, a malformed
// token, a deleted or disabled principal). Messages never carry the token.
func (p *Provider) Verify(ctx context.Context, bearer string) (*Principal, error) {
	if bearer == "" || len(bearer) > maxBearerTokenLength {
		return nil, invalidToken(invalidTokenMessage)
	}
	tok, err := jwt.ParseSigned(bearer, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil || len(tok.Headers) != 1 {
		return nil, invalidToken(invalidTokenMessage)
	}
	kid := tok.Headers[0].KeyID
	if kid == "" {
		return nil, invalidToken("The access token has no key id ('kid').")
	}
	k, err := p.key(ctx, kid)
	if errdefs.Is(err, errdefs.ErrNotFound) || errdefs.Is(err, errdefs.ErrInvalidArgument) {
		return nil, invalidToken("The access token is signed with an unknown key.")
	}
	if err != nil {
		return nil, err
	}
	var c Claims
	if err := tok.Claims(k.pub, &c); err != nil {
		return nil, invalidToken("The access token's signature is not valid.")
	}
	now := p.now()
	if c.Expiry == 0 {
		return nil, invalidToken(invalidTokenMessage)
	}
	if exp := time.Unix(c.Expiry, 0); now.After(exp.Add(p.skew)) {
		return nil, errdefs.WithCode(errdefs.ErrUnauthorized, CodeExpiredToken,
			"The access token expiry UTC time '%s' is earlier than current UTC time '%s'.",
			exp.UTC().Format(armTimeLayout), now.UTC().Format(armTimeLayout))
	}
	if nbf := time.Unix(c.NotBefore, 0); now.Add(p.skew).Before(nbf) {
		return nil, invalidToken("The access token is not yet valid.")
	}
	if !strings.EqualFold(c.TenantID, p.tenant) {
		return nil, errdefs.WithCode(errdefs.ErrUnauthorized, CodeInvalidTenant,
			"The access token is from the wrong issuer '%s'. It must match the tenant '%s' associated with this server. Please use the authority (URL) '%s' to get the token.",
			c.Issuer, p.tenant, p.Authority())
	}
	issOK := false
	for _, iss := range p.issuers() {
		issOK = issOK || c.Issuer == iss
	}
	if !issOK {
		return nil, invalidToken("The access token is from an unknown issuer.")
	}
	if aud, ok := p.Resource(c.Audience); !ok || aud != c.Audience {
		return nil, errdefs.WithCode(errdefs.ErrUnauthorized, CodeInvalidAudience,
			"The access token has been obtained for wrong audience or resource '%s'. It should exactly match with one of the allowed audiences '%s'.",
			c.Audience, strings.Join(p.Audiences(), "','"))
	}
	if c.IDType != "app" || c.ObjectID == "" || c.AppID == "" {
		return nil, invalidToken(invalidTokenMessage)
	}
	sp, _, err := getRecord[spRecord](ctx, p, kindSPs, c.ObjectID)
	if errdefs.Is(err, errdefs.ErrNotFound) || errdefs.Is(err, errdefs.ErrInvalidArgument) {
		return nil, invalidToken(unknownIdentityMsg)
	}
	if err != nil {
		return nil, err
	}
	if !sp.AccountEnabled || !strings.EqualFold(sp.AppID, c.AppID) {
		return nil, invalidToken(unknownIdentityMsg)
	}
	return &Principal{TenantID: p.tenant, ObjectID: sp.ID, AppID: sp.AppID, DisplayName: sp.DisplayName}, nil
}

// Authenticate verifies the bearer token of a request. A missing or
// malformed Authorization header is AuthenticationFailed, as ARM says it.
func (p *Provider) Authenticate(r *http.Request) (*Principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, errdefs.WithCode(errdefs.ErrUnauthorized, CodeAuthFailed,
			"Authentication failed. The 'Authorization' header is missing.")
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return nil, errdefs.WithCode(errdefs.ErrUnauthorized, CodeAuthFailed,
			"Authentication failed. The 'Authorization' header is provided in an invalid format.")
	}
	return p.Verify(r.Context(), strings.TrimSpace(tok))
}
