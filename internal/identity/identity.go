// Package identity is Skiff's identity provider: who is calling.
//
// It keeps a directory of one tenant (applications, their service
// principals and client secrets), issues short-lived RS256 access tokens for
// the OAuth 2.0 client-credentials grant, publishes the signing keys (JWKS),
// and verifies the bearer tokens that the server receives. Its HTTP handler
// (NewHandler) serves what the az CLI, MSAL and azidentity ask of an
// authority: ADFS-style and Entra-style OpenID Connect discovery, the token
// endpoint, ARM's /metadata/endpoints, and the Microsoft Graph v1.0 subset
// that `az ad sp|app` uses.
//
// What a caller may do is not decided here: the handler asks an Allow hook
// (internal/authz's role evaluation, wired by the server).
//
// Everything lives in the store's generic objects, so servers that share a
// store (etcd in a cluster) share tenant, directory and signing keys:
//
//	identity.meta        tenant      {"id"}             the install's one tenant
//	                     signing     {"kid","since"}    the current signing key (CAS on rotation)
//	identity.keys        <kid>       key record         public key, sealed private key, retirement
//	identity.apps        <object id> application        Graph fields, hashed password credentials
//	identity.app-index   <appId>     {"id"}             appId → application object id
//	identity.sps         <object id> service principal  Graph fields, hashed password credentials
//	identity.sp-index    <appId>     {"id"}             appId → service principal (one per app)
//
// Keys of records are lower-case uuids. An index is written before its
// record and deleted after it, so a crash leaves at worst an index that
// points at nothing, which lookups treat as absent.
package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store"
)

// Object kinds in the store (see the package comment).
const (
	kindMeta     = "identity.meta"
	kindKeys     = "identity.keys"
	kindApps     = "identity.apps"
	kindAppIndex = "identity.app-index"
	kindSPs      = "identity.sps"
	kindSPIndex  = "identity.sp-index"

	metaTenant  = "tenant"
	metaSigning = "signing"
)

// Defaults of Config.
const (
	// DefaultTokenLifetime is how long an access token is valid, as Entra's
	// default.
	DefaultTokenLifetime = time.Hour
	// DefaultClockSkew is the leeway for exp and nbf between hosts.
	DefaultClockSkew = 2 * time.Minute
)

// Well-known resource ids accepted as audiences besides the server's own
// URL, so that SDK configurations made for public Azure work unchanged.
var wellKnownAudiences = []string{"https://management.core.windows.net/", "https://management.azure.com/"}

// Config configures a Provider.
type Config struct {
	// Store keeps the tenant, the directory and the signing keys
	// (required).
	Store store.ObjectStore
	// Sealer seals the signing keys' private halves (required).
	Sealer *seal.Sealer
	// BaseURL is the server's external URL, https://HOST:PORT (required).
	// Issuers, the authority, Graph and the audience derive from it.
	BaseURL string
	// ExtraAudiences are further resource ids tokens may be asked for and
	// are accepted with (e.g. the URL under another host name of the same
	// server), each with and without a trailing slash.
	ExtraAudiences []string
	// TokenLifetime is an access token's validity (0: DefaultTokenLifetime).
	TokenLifetime time.Duration
	// RotationPeriod, if > 0, makes Run rotate the signing key when the
	// current one is that old.
	RotationPeriod time.Duration
	// ClockSkew is the leeway for exp and nbf (0: DefaultClockSkew).
	ClockSkew time.Duration
	// Now is the clock (nil: time.Now); tests move it.
	Now func() time.Time
	// Logger receives the provider's messages (nil: discarded). It never
	// receives a secret or a token.
	Logger *slog.Logger
}

// Provider is the identity provider of one server. Several Providers on one
// store (the servers of a cluster) agree on everything. It is safe for
// concurrent use.
type Provider struct {
	st       store.ObjectStore
	sealer   *seal.Sealer
	base     string // without a trailing slash
	tenant   string
	lifetime time.Duration
	rotation time.Duration
	skew     time.Duration
	now      func() time.Time
	log      *slog.Logger

	audiences map[string]string // trimmed, lower-cased scheme and host → "" (membership)

	mu   sync.Mutex
	keys map[string]*signingKey // by kid, as read from the store
}

// New opens the identity provider on cfg.Store, creating the tenant and a
// first signing key if the store has none.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.Store == nil || cfg.Sealer == nil {
		return nil, fmt.Errorf("identity: a store and a sealer are required: %w", errdefs.ErrInvalidArgument)
	}
	base, err := normalizeBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	p := &Provider{
		st:       cfg.Store,
		sealer:   cfg.Sealer,
		base:     base,
		lifetime: cfg.TokenLifetime,
		rotation: cfg.RotationPeriod,
		skew:     cfg.ClockSkew,
		now:      cfg.Now,
		log:      cfg.Logger,
		keys:     map[string]*signingKey{},
	}
	if p.lifetime <= 0 {
		p.lifetime = DefaultTokenLifetime
	}
	if p.skew <= 0 {
		p.skew = DefaultClockSkew
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.audiences = map[string]string{}
	for _, a := range append(append([]string{base}, cfg.ExtraAudiences...), wellKnownAudiences...) {
		k, err := audienceKey(a)
		if err != nil {
			return nil, fmt.Errorf("identity: audience %q: %w", a, err)
		}
		p.audiences[k] = ""
	}
	if p.tenant, err = p.ensureTenant(ctx); err != nil {
		return nil, err
	}
	if _, err := p.currentKey(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// normalizeBaseURL checks an https URL without path, query or fragment and
// returns it without a trailing slash.
func normalizeBaseURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("identity: base URL %q: want https://HOST[:PORT]: %w", raw, errdefs.ErrInvalidArgument)
	}
	return "https://" + strings.ToLower(u.Host), nil
}

// audienceKey is the form in which resource ids are compared: scheme and
// host lower-cased, no trailing slash.
func audienceKey(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("not a URL: %w", errdefs.ErrInvalidArgument)
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	return strings.TrimRight(u.String(), "/"), nil
}

// ensureTenant returns the install's tenant id, creating it on first use.
// Two servers starting at once agree: the create is conditional.
func (p *Provider) ensureTenant(ctx context.Context) (string, error) {
	var t struct {
		ID string `json:"id"`
	}
	for range 3 {
		o, err := p.st.GetObject(ctx, kindMeta, metaTenant)
		if err == nil {
			if err := json.Unmarshal(o.Value, &t); err != nil || t.ID == "" {
				return "", fmt.Errorf("identity: stored tenant is damaged: %w", errdefs.ErrUnavailable)
			}
			return t.ID, nil
		}
		if !errdefs.Is(err, errdefs.ErrNotFound) {
			return "", fmt.Errorf("identity: tenant: %w", err)
		}
		t.ID = uuid.NewString()
		raw, _ := json.Marshal(t)
		_, err = p.st.PutObject(ctx, kindMeta, metaTenant, raw, 0)
		if err == nil {
			p.log.Info("identity: created the tenant", "tenant", t.ID)
			return t.ID, nil
		}
		if !errdefs.Is(err, errdefs.ErrConflict) {
			return "", fmt.Errorf("identity: tenant: %w", err)
		}
	}
	return "", fmt.Errorf("identity: tenant: the store keeps changing: %w", errdefs.ErrUnavailable)
}

// TenantID is the install's tenant.
func (p *Provider) TenantID() string { return p.tenant }

// BaseURL is the server's external URL, without a trailing slash.
func (p *Provider) BaseURL() string { return p.base }

// Authority is the ADFS-style authority the az CLI logs in with
// (BaseURL + "/adfs").
func (p *Provider) Authority() string { return p.base + "/adfs" }

// ResourceID is the resource id of the server's APIs (ARM and Graph): the
// base URL with a trailing slash, as /metadata/endpoints advertises it.
func (p *Provider) ResourceID() string { return p.base + "/" }

// Principal is a verified caller.
type Principal struct {
	TenantID string
	// ObjectID is the service principal's object id (the token's oid):
	// what role assignments name.
	ObjectID string
	// AppID is the application (client) id.
	AppID       string
	DisplayName string
	// Admin marks a caller of the server's admin token, which is no
	// service principal.
	Admin bool
}

// AdminPrincipal is the principal of a caller with the server's admin
// token, in the install's tenant.
func (p *Provider) AdminPrincipal() *Principal {
	return &Principal{TenantID: p.tenant, DisplayName: "admin token", Admin: true}
}

// String describes the principal for audit logs. A Principal carries no
// secret, so nothing is redacted.
func (pr *Principal) String() string {
	if pr == nil {
		return "anonymous"
	}
	if pr.Admin {
		return fmt.Sprintf("admin (tenant=%s)", pr.TenantID)
	}
	return fmt.Sprintf("servicePrincipal %q (oid=%s appId=%s tenant=%s)", pr.DisplayName, pr.ObjectID, pr.AppID, pr.TenantID)
}

// LogValue makes a Principal a structured slog group.
func (pr *Principal) LogValue() slog.Value {
	if pr == nil {
		return slog.StringValue("anonymous")
	}
	if pr.Admin {
		return slog.GroupValue(slog.Bool("admin", true), slog.String("tenant", pr.TenantID))
	}
	return slog.GroupValue(slog.String("oid", pr.ObjectID), slog.String("appId", pr.AppID),
		slog.String("name", pr.DisplayName), slog.String("tenant", pr.TenantID))
}
