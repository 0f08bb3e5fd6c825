package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// Authentication. A client sends one of:
//   - Options.Token, a fixed bearer token (the server's admin token);
//   - a token of Options.Credentials, a TokenSource: ServicePrincipal
//     (built in, client credentials against the server's identity
//     provider) or any other, such as an azidentity credential through
//     the azcred package:
//
//	c, err := client.New(client.Options{Endpoint: "https://skiff.example:7443", CAFile: ca,
//		Credentials: &client.ServicePrincipal{AppID: id, Secret: secret, Tenant: tenant}})
//
// A token that cannot be had fails the request with an *APIError of class
// ErrUnauthorized.

// TokenSource hands out bearer tokens for the server at endpoint (its
// base URL, without a trailing slash). It caches and refreshes them
// itself; it is called for every request.
type TokenSource interface {
	Token(ctx context.Context, hc *http.Client, endpoint string) (string, error)
}

// ServicePrincipal is a TokenSource that signs in with a service
// principal's client credentials: POST {endpoint}/adfs/oauth2/token
// (grant_type=client_credentials, scope={endpoint}/.default). The token
// is kept until a minute before it expires.
type ServicePrincipal struct {
	AppID  string
	Secret string
	// Tenant is the directory's tenant id; empty lets the server find it
	// from AppID.
	Tenant string

	mu      sync.Mutex
	token   string
	expires time.Time
	forURL  string
}

// refreshMargin is how long before its expiry a token is replaced.
const refreshMargin = time.Minute

// Token returns a cached token, or asks the identity provider for one.
func (sp *ServicePrincipal) Token(ctx context.Context, hc *http.Client, endpoint string) (string, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.token != "" && sp.forURL == endpoint && time.Now().Add(refreshMargin).Before(sp.expires) {
		return sp.token, nil
	}
	tokenURL := endpoint + "/adfs/oauth2/token"
	if sp.Tenant != "" {
		tokenURL = endpoint + "/" + url.PathEscape(sp.Tenant) + "/oauth2/v2.0/token"
	}
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {sp.AppID},
		"client_secret": {sp.Secret},
		"scope":         {endpoint + "/.default"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", errdefs.WithCode(errdefs.ErrInvalidArgument, "", "token request: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var tr struct {
		AccessToken string          `json:"access_token"`
		ExpiresIn   json.Number     `json:"expires_in"`
		Error       string          `json:"error"`
		Description string          `json:"error_description"`
		Codes       json.RawMessage `json:"error_codes"`
	}
	_ = json.Unmarshal(b, &tr)
	if resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
		status := resp.StatusCode
		if status < 500 {
			status = http.StatusUnauthorized
		}
		code, msg := tr.Error, tr.Description
		if code == "" {
			code = "InvalidAuthenticationToken"
		}
		if msg == "" {
			msg = "the identity provider at " + tokenURL + " returned " + resp.Status
		}
		if i := strings.IndexAny(msg, "\r\n"); i >= 0 {
			msg = msg[:i]
		}
		return "", &APIError{StatusCode: status, Code: code, Message: "sign-in of service principal " + sp.AppID + " failed: " + msg}
	}
	secs, _ := tr.ExpiresIn.Int64()
	if secs <= 0 {
		secs = 300
	}
	sp.token, sp.forURL, sp.expires = tr.AccessToken, endpoint, time.Now().Add(time.Duration(secs)*time.Second)
	return sp.token, nil
}

// bearer returns the token a request is sent with ("" for none).
func (c *Client) bearer(ctx context.Context) (string, error) {
	if c.creds == nil {
		return c.token, nil
	}
	t, err := c.creds.Token(ctx, c.hc, c.Endpoint())
	if err != nil {
		if _, ok := err.(*APIError); ok {
			return "", err
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", c.transportError(ctx, err)
	}
	return t, nil
}
