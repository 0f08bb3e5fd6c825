package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// The HTTP side. Routes, all under the server's root and unauthenticated
// except Graph's:
//
//	GET  /metadata/endpoints?api-version=2015-01-01      ARM's cloud metadata (Azure Stack's shape)
//	GET  /adfs/.well-known/openid-configuration           ADFS-style discovery (what az's MSAL asks)
//	GET  /adfs/discovery/keys                              JWKS
//	POST /adfs/oauth2/token                                client credentials, v1 resource= or v2 scope=
//	GET  /{tenant}/v2.0/.well-known/openid-configuration  Entra-style discovery (azidentity, MSAL Go)
//	GET  /{tenant}/.well-known/openid-configuration       Entra v1 discovery
//	GET  /{tenant}/discovery/keys, /{tenant}/discovery/v2.0/keys
//	POST /{tenant}/oauth2/token, /{tenant}/oauth2/v2.0/token
//	     /v1.0/…                                           the Graph subset (graph.go), bearer token required
//
// {tenant} is the tenant id, "common" or "organizations"; MSAL's
// authorization endpoints are advertised but answer that only the
// client-credentials grant is served.

// Graph actions the Allow hook is asked about.
const (
	ActionApplicationsRead        = "microsoft.graph/applications/read"
	ActionApplicationsWrite       = "microsoft.graph/applications/write"
	ActionApplicationsDelete      = "microsoft.graph/applications/delete"
	ActionServicePrincipalsRead   = "microsoft.graph/servicePrincipals/read"
	ActionServicePrincipalsWrite  = "microsoft.graph/servicePrincipals/write"
	ActionServicePrincipalsDelete = "microsoft.graph/servicePrincipals/delete"
	ActionDirectoryObjectsRead    = "microsoft.graph/directoryObjects/read"
)

// HandlerOptions wire the handler into the server.
type HandlerOptions struct {
	// Authenticate identifies a Graph caller (nil: the Provider's
	// Authenticate, bearer tokens only). The server's wraps it to accept
	// its admin token as an Admin principal.
	Authenticate func(r *http.Request) (*Principal, error)
	// Allow decides whether a principal may do a Graph action (one of the
	// Action constants); an error refuses with 403 (nil: only Admin
	// principals may use Graph).
	Allow func(ctx context.Context, p *Principal, action string) error
	// Logger receives refused and failed requests (nil: the Provider's).
	Logger *slog.Logger
}

// Handler serves the identity routes.
type Handler struct {
	p     *Provider
	opts  HandlerOptions
	log   *slog.Logger
	graph *graphAPI
}

// NewHandler returns the identity routes of p.
func NewHandler(p *Provider, opts HandlerOptions) *Handler {
	if opts.Authenticate == nil {
		opts.Authenticate = p.Authenticate
	}
	if opts.Allow == nil {
		opts.Allow = func(_ context.Context, pr *Principal, action string) error {
			if pr != nil && pr.Admin {
				return nil
			}
			return errdefs.WithCode(errdefs.ErrForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		}
	}
	log := opts.Logger
	if log == nil {
		log = p.log
	}
	h := &Handler{p: p, opts: opts, log: log}
	h.graph = &graphAPI{p: p, h: h}
	return h
}

// Handles reports whether a request path is one of the identity routes,
// so that the server sends it here before its own authentication.
func Handles(path string) bool {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case path == "/metadata/endpoints":
		return true
	case segs[0] == "adfs" || segs[0] == "v1.0":
		return true
	case len(segs) >= 3:
		switch segs[1] {
		case ".well-known", "v2.0", "discovery", "oauth2":
			return true
		}
	}
	return false
}

// ServeHTTP routes a request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	segs := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case path == "/metadata/endpoints":
		h.get(w, r, h.metadata)
	case segs[0] == "v1.0":
		h.graph.serve(w, r, segs[1:])
	case segs[0] == "adfs":
		h.serveAuthority(w, r, flavorADFS, segs[1:])
	case len(segs) >= 3:
		if !h.tenantOK(segs[0]) {
			h.oauthError(w, r, oauthErr(http.StatusBadRequest, "invalid_tenant", 90002,
				"Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", segs[0]), false)
			return
		}
		switch {
		case segs[1] == "v2.0" || (segs[1] == "oauth2" && len(segs) > 2 && segs[2] == "v2.0") ||
			(segs[1] == "discovery" && len(segs) > 2 && segs[2] == "v2.0"):
			h.serveAuthority(w, r, flavorV2, stripV2(segs[1:]))
		default:
			h.serveAuthority(w, r, flavorV1, segs[1:])
		}
	default:
		h.oauthError(w, r, oauthErr(http.StatusNotFound, "invalid_request", 90000, "No such endpoint: %s.", path), false)
	}
}

// stripV2 removes the "v2.0" segment of an Entra v2 path.
func stripV2(segs []string) []string {
	out := make([]string, 0, len(segs))
	for _, s := range segs {
		if s != "v2.0" {
			out = append(out, s)
		}
	}
	return out
}

func (h *Handler) tenantOK(t string) bool {
	return strings.EqualFold(t, h.p.tenant) || strings.EqualFold(t, "common") || strings.EqualFold(t, "organizations")
}

// flavor is the kind of authority a path is under.
type flavor int

const (
	flavorADFS flavor = iota // /adfs
	flavorV1                 // /{tenant}
	flavorV2                 // /{tenant}/v2.0, /{tenant}/oauth2/v2.0
)

// endpoints of an authority flavor.
func (h *Handler) endpoints(f flavor) (issuer, prefix, oauth, keys string) {
	b, t := h.p.base, h.p.tenant
	switch f {
	case flavorV1:
		return b + "/" + t + "/", b + "/" + t, b + "/" + t + "/oauth2", b + "/" + t + "/discovery/keys"
	case flavorV2:
		return b + "/" + t + "/v2.0", b + "/" + t, b + "/" + t + "/oauth2/v2.0", b + "/" + t + "/discovery/v2.0/keys"
	}
	return b + "/adfs", b + "/adfs", b + "/adfs/oauth2", b + "/adfs/discovery/keys"
}

func (h *Handler) serveAuthority(w http.ResponseWriter, r *http.Request, f flavor, rest []string) {
	switch strings.Join(rest, "/") {
	case ".well-known/openid-configuration":
		h.get(w, r, func(*http.Request) (any, error) { return h.discovery(f), nil })
	case "discovery/keys":
		h.get(w, r, func(r *http.Request) (any, error) { return h.p.JWKS(r.Context()) })
	case "oauth2/token":
		h.token(w, r, f)
	case "oauth2/authorize", "oauth2/devicecode":
		h.oauthError(w, r, oauthErr(http.StatusBadRequest, "unsupported_response_type", 70000,
			"This authority serves only the client-credentials grant (a service principal's secret at the token endpoint)."), false)
	default:
		h.oauthError(w, r, oauthErr(http.StatusNotFound, "invalid_request", 90000, "No such endpoint: %s.", r.URL.Path), false)
	}
}

// discovery is the OpenID Connect discovery document of an authority.
func (h *Handler) discovery(f flavor) map[string]any {
	issuer, _, oauth, keys := h.endpoints(f)
	return map[string]any{
		"issuer":                                issuer,
		"access_token_issuer":                   issuer,
		"authorization_endpoint":                oauth + "/authorize",
		"token_endpoint":                        oauth + "/token",
		"jwks_uri":                              keys,
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic"},
		"grant_types_supported":                 []string{"client_credentials"},
		"response_types_supported":              []string{"token"},
		"response_modes_supported":              []string{"query"},
		"scopes_supported":                      []string{"openid"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"claims_supported":                      []string{"aud", "iss", "iat", "nbf", "exp", "tid", "oid", "sub", "appid", "azp", "idtyp", "ver"},
		"tenant_id":                             h.p.tenant,
	}
}

// metadata is ARM's /metadata/endpoints, as Azure Stack Hub serves it:
// az cloud register reads graphEndpoint, authentication.loginEndpoint and
// authentication.audiences[0].
func (h *Handler) metadata(*http.Request) (any, error) {
	res := h.p.ResourceID()
	return map[string]any{
		"galleryEndpoint": res,
		"graphEndpoint":   res,
		"portalEndpoint":  res,
		"authentication": map[string]any{
			"loginEndpoint": h.p.Authority(),
			"audiences":     []string{res},
		},
	}, nil
}

// get serves a GET (or HEAD) of a JSON document.
func (h *Handler) get(w http.ResponseWriter, r *http.Request, fn func(*http.Request) (any, error)) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.oauthError(w, r, oauthErr(http.StatusMethodNotAllowed, "invalid_request", 900561,
			"The endpoint only accepts GET requests. Received a %s request.", r.Method), false)
		return
	}
	v, err := fn(r)
	if err != nil {
		h.oauthError(w, r, err, false)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

const maxFormBytes = 64 << 10

// oidcScopes are the scopes MSAL adds to every request; a client
// credentials token ignores them.
var oidcScopes = map[string]bool{"openid": true, "profile": true, "offline_access": true, "email": true}

// token is the token endpoint: the client-credentials grant.
func (h *Handler) token(w http.ResponseWriter, r *http.Request, f flavor) {
	basicUser, basicPass, basic := r.BasicAuth()
	fail := func(err error) { h.oauthError(w, r, err, basic) }
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		fail(oauthErr(http.StatusMethodNotAllowed, "invalid_request", 900561,
			"The endpoint only accepts POST, OPTIONS requests. Received a %s request.", r.Method))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		fail(oauthErr(http.StatusBadRequest, "invalid_request", 900144, "The request body must be a form (application/x-www-form-urlencoded) of at most %d bytes.", maxFormBytes))
		return
	}
	form := r.PostForm
	missing := func(name string) *oauthError {
		return oauthErr(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: '%s'.", name)
	}
	switch gt := form.Get("grant_type"); gt {
	case "":
		fail(missing("grant_type"))
		return
	case "client_credentials":
	default:
		fail(oauthErr(http.StatusBadRequest, "unsupported_grant_type", 70003,
			"The app requested an unsupported grant type '%s'. Only 'client_credentials' is served.", gt))
		return
	}
	clientID, secret := form.Get("client_id"), form.Get("client_secret")
	if basic {
		// RFC 6749 2.3.1: the Basic credentials are form-encoded.
		u, err1 := url.QueryUnescape(basicUser)
		pw, err2 := url.QueryUnescape(basicPass)
		if err1 != nil || err2 != nil || (secret != "" && secret != pw) || (clientID != "" && clientID != u) {
			fail(oauthErr(http.StatusBadRequest, "invalid_request", 90014,
				"The client authenticated with more than one method, or its Basic credentials are malformed."))
			return
		}
		clientID, secret = u, pw
	}
	if clientID == "" {
		fail(missing("client_id"))
		return
	}
	if form.Get("client_assertion") != "" {
		fail(oauthErr(http.StatusBadRequest, "invalid_request", 90014,
			"Client assertions (certificates, federated credentials) are not supported here; use a client secret."))
		return
	}
	if secret == "" {
		fail(oauthErr(http.StatusUnauthorized, "invalid_client", 7000218,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'."))
		return
	}
	resource, v1, oe := h.requestedResource(form, f)
	if oe != nil {
		fail(oe)
		return
	}
	aud, ok := h.p.Resource(resource)
	if !ok {
		fail(oauthErr(http.StatusBadRequest, "invalid_resource", 500011,
			"The resource principal named %s was not found in the tenant named %s. This server serves the resources %s.",
			resource, h.p.tenant, strings.Join(h.p.Audiences(), ", ")))
		return
	}
	sp, err := h.p.authenticateClient(r.Context(), clientID, secret)
	if err != nil {
		fail(err)
		return
	}
	issuer, _, _, _ := h.endpoints(f)
	tok, err := h.p.sign(r.Context(), sp, aud, issuer)
	if err != nil {
		fail(err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	secs := int64(tok.ExpiresOn.Sub(h.p.now()).Round(time.Second) / time.Second)
	if v1 {
		// Entra's v1 endpoint sends numbers as strings.
		writeJSON(w, http.StatusOK, map[string]string{
			"token_type":     "Bearer",
			"expires_in":     fmt.Sprint(secs),
			"ext_expires_in": fmt.Sprint(secs),
			"expires_on":     fmt.Sprint(tok.ExpiresOn.Unix()),
			"not_before":     fmt.Sprint(tok.NotBefore.Unix()),
			"resource":       resource,
			"access_token":   tok.AccessToken,
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     secs,
		"ext_expires_in": secs,
		"access_token":   tok.AccessToken,
	})
}

// requestedResource finds the resource of a token request: v2's
// scope=<resource>/.default (az sends "https://host:port//.default" for a
// resource id with a trailing slash: the resource is then
// "https://host:port/"), or v1's resource= (not on a v2 endpoint). v1
// reports a v1 request, answered in v1's shape.
func (h *Handler) requestedResource(form url.Values, f flavor) (resource string, v1 bool, _ *oauthError) {
	if res := form.Get("resource"); res != "" && f != flavorV2 && form.Get("scope") == "" {
		return res, true, nil
	}
	scope := form.Get("scope")
	if scope == "" {
		if f == flavorV2 {
			return "", false, oauthErr(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
		}
		return "", false, oauthErr(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'scope' or 'resource'.")
	}
	var found []string
	for _, s := range strings.Fields(scope) {
		if oidcScopes[strings.ToLower(s)] {
			continue
		}
		res, ok := strings.CutSuffix(s, "/.default")
		if !ok || res == "" {
			return "", false, oauthErr(http.StatusBadRequest, "invalid_scope", 1002012,
				"The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", s)
		}
		found = append(found, res)
	}
	if len(found) != 1 {
		return "", false, oauthErr(http.StatusBadRequest, "invalid_scope", 70011,
			"The provided value for the input parameter 'scope' is not valid: it must name exactly one resource with /.default, not %d.", len(found))
	}
	return found[0], false, nil
}

// oauthError writes an error in OAuth 2.0's JSON shape, with Entra's
// extra fields. A failure that is not the client's is logged and is a
// server_error.
func (h *Handler) oauthError(w http.ResponseWriter, r *http.Request, err error, basic bool) {
	var oe *oauthError
	if !errors.As(err, &oe) {
		status := http.StatusInternalServerError
		if errdefs.Is(err, errdefs.ErrUnavailable) {
			status = http.StatusServiceUnavailable
		}
		h.log.Error("identity: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		oe = oauthErr(status, "server_error", 50000, "The server could not complete the request; see its log.")
		if status == http.StatusServiceUnavailable {
			oe.code = "temporarily_unavailable"
		}
	} else {
		h.log.Debug("identity: request refused", "method", r.Method, "path", r.URL.Path, "status", oe.status, "error", oe.code)
	}
	if oe.status == http.StatusUnauthorized && basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="skiff"`)
	}
	w.Header().Set("Cache-Control", "no-store")
	now := time.Now().UTC()
	trace := uuid.NewString()
	corr := r.Header.Get("client-request-id")
	if _, err := uuid.Parse(corr); err != nil {
		corr = uuid.NewString()
	}
	writeJSON(w, oe.status, map[string]any{
		"error": oe.code,
		"error_description": fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
			oe.aadsts, oe.desc, trace, corr, now.Format("2006-01-02 15:04:05Z")),
		"error_codes":    []int{oe.aadsts},
		"timestamp":      now.Format("2006-01-02 15:04:05Z"),
		"trace_id":       trace,
		"correlation_id": corr,
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}
