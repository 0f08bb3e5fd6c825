package image

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// Registries is the host's registry configuration, in the spirit of k3s's
// registries.yaml:
//
//	mirrors:
//	  docker.io:
//	    endpoint: ["http://127.0.0.1:5000", "https://mirror.example"]
//	    disable_origin: true
//	configs:
//	  "127.0.0.1:5000":
//	    auth: {username: u, password: p}
//	    tls: {ca_file: /etc/ca.pem, insecure_skip_verify: false}
//	    plain_http: true
//
// Registry names are normalised ("docker.io" is go-containerregistry's
// "index.docker.io").
type Registries struct {
	Mirrors map[string]Mirror     `json:"mirrors,omitempty"`
	Configs map[string]HostConfig `json:"configs,omitempty"`
}

// Mirror lists the endpoints tried, in order, for a registry.
type Mirror struct {
	// Endpoints are "http://host:port" or "https://host[:port]" URLs.
	Endpoints []string `json:"endpoint,omitempty"`
	// DisableOrigin stops the registry itself from being tried after the
	// mirrors.
	DisableOrigin bool `json:"disable_origin,omitempty"`
}

// HostConfig is how Skiff talks to one registry host (a mirror's or an
// origin's host:port).
type HostConfig struct {
	Auth *HostAuth `json:"auth,omitempty"`
	TLS  *HostTLS  `json:"tls,omitempty"`
	// PlainHTTP talks http instead of https to the host.
	PlainHTTP bool `json:"plain_http,omitempty"`
}

// HostAuth holds server-side credentials for a host. They are never logged
// nor returned.
type HostAuth struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identity_token,omitempty"`
}

// HostTLS configures TLS towards a host.
type HostTLS struct {
	CAFile             string `json:"ca_file,omitempty"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify,omitempty"`
}

// LoadRegistries reads a registries.yaml file. A missing file is an empty
// configuration.
func LoadRegistries(path string) (Registries, error) {
	var r Registries
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("registries config: %w", err)
	}
	if err := yaml.UnmarshalStrict(b, &r); err != nil {
		return r, fmt.Errorf("registries config %s: %w: %w", path, errdefs.ErrInvalidArgument, err)
	}
	return r, nil
}

// AddMirrorFlag merges a "--registry-mirror REGISTRY=URL" value: the URL is
// appended to REGISTRY's endpoints.
func (r *Registries) AddMirrorFlag(v string) error {
	reg, endpoint, ok := strings.Cut(v, "=")
	if !ok || reg == "" || endpoint == "" {
		return fmt.Errorf("registry mirror %q: want REGISTRY=URL: %w", v, errdefs.ErrInvalidArgument)
	}
	if _, _, err := parseEndpoint(endpoint); err != nil {
		return err
	}
	if r.Mirrors == nil {
		r.Mirrors = map[string]Mirror{}
	}
	key := normalizeServer(reg)
	m := r.Mirrors[key]
	for k, v := range r.Mirrors { // merge with a differently spelled key
		if normalizeServer(k) == key && k != key {
			m.Endpoints = append(m.Endpoints, v.Endpoints...)
			m.DisableOrigin = m.DisableOrigin || v.DisableOrigin
			delete(r.Mirrors, k)
		}
	}
	m.Endpoints = append(m.Endpoints, endpoint)
	r.Mirrors[key] = m
	return nil
}

// parseEndpoint turns a mirror URL into a host and whether it is plain
// http.
func parseEndpoint(endpoint string) (host string, plain bool, err error) {
	if !strings.Contains(endpoint, "://") {
		endpoint = "https://" + endpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") ||
		(u.Path != "" && u.Path != "/" && u.Path != "/v2" && u.Path != "/v2/") {
		return "", false, fmt.Errorf("registry endpoint %q: want http(s)://host[:port]: %w", endpoint, errdefs.ErrInvalidArgument)
	}
	return u.Host, u.Scheme == "http", nil
}

// endpoint is one place an image is tried.
type endpoint struct {
	registry  name.Registry
	repo      name.Repository // ref's repository on this endpoint
	mirror    bool
	transport http.RoundTripper
	auth      *HostAuth // server-side credentials, if configured
}

// registryState is the resolved form of Registries.
type registryState struct {
	mirrors map[string][]string // normalised registry → mirror hosts
	noOrig  map[string]bool
	plain   map[string]bool
	hosts   map[string]HostConfig
	trans   map[string]http.RoundTripper // hosts with their own TLS settings
}

// SetRegistries replaces the store's registry configuration (mirrors,
// per-host TLS, plain http and server-side credentials). Pulls started
// afterwards use it.
func (s *Store) SetRegistries(r Registries) error {
	st := &registryState{
		mirrors: map[string][]string{}, noOrig: map[string]bool{}, plain: map[string]bool{},
		hosts: map[string]HostConfig{}, trans: map[string]http.RoundTripper{},
	}
	for reg, m := range r.Mirrors {
		key := normalizeServer(reg)
		for _, e := range m.Endpoints {
			host, plain, err := parseEndpoint(e)
			if err != nil {
				return fmt.Errorf("mirror of %s: %w", reg, err)
			}
			st.mirrors[key] = append(st.mirrors[key], host)
			if plain {
				st.plain[host] = true
			}
		}
		if m.DisableOrigin {
			if len(st.mirrors[key]) == 0 {
				return fmt.Errorf("registry %s: disable_origin without mirror endpoints: %w", reg, errdefs.ErrInvalidArgument)
			}
			st.noOrig[key] = true
		}
	}
	for host, hc := range r.Configs {
		key := normalizeServer(host)
		st.hosts[key] = hc
		if hc.PlainHTTP {
			st.plain[key] = true
		}
		if hc.TLS != nil {
			cfg := &tls.Config{InsecureSkipVerify: hc.TLS.InsecureSkipVerify} //nolint:gosec // the operator asked for it
			if hc.TLS.CAFile != "" {
				pem, err := os.ReadFile(hc.TLS.CAFile)
				if err != nil {
					return fmt.Errorf("registry %s: ca_file: %w", host, err)
				}
				pool, err := x509.SystemCertPool()
				if err != nil {
					pool = x509.NewCertPool()
				}
				if !pool.AppendCertsFromPEM(pem) {
					return fmt.Errorf("registry %s: ca_file %s holds no certificate: %w", host, hc.TLS.CAFile, errdefs.ErrInvalidArgument)
				}
				cfg.RootCAs = pool
			}
			st.trans[key] = newTransportTLS(s.opts.DialTimeout, s.opts.ResponseTimeout, cfg)
		}
	}
	s.regMu.Lock()
	s.reg = st
	s.regMu.Unlock()
	return nil
}

// endpoints lists where ref's repository is tried: its mirrors in order,
// then its registry unless the origin is disabled.
func (s *Store) endpoints(ref name.Reference) ([]endpoint, error) {
	s.regMu.RLock()
	st := s.reg
	s.regMu.RUnlock()
	origin := ref.Context().Registry
	key := origin.RegistryStr()
	mk := func(host string, mirror bool) (endpoint, error) {
		var opts []name.Option
		if st != nil && st.plain[host] {
			opts = append(opts, name.Insecure)
		}
		repo := ref.Context()
		if mirror || len(opts) > 0 {
			// The repository path as the origin spells it (with docker.io's
			// "library/"), on the endpoint's host.
			r, err := name.NewRepository(host+"/"+ref.Context().RepositoryStr(), opts...)
			if err != nil {
				return endpoint{}, fmt.Errorf("registry endpoint %s: %w: %w", host, errdefs.ErrInvalidArgument, err)
			}
			repo = r
		}
		e := endpoint{registry: repo.Registry, repo: repo, mirror: mirror, transport: s.transport}
		if st != nil {
			if t, ok := st.trans[host]; ok {
				e.transport = t
			}
			if hc, ok := st.hosts[host]; ok {
				e.auth = hc.Auth
			}
		}
		return e, nil
	}
	var out []endpoint
	if st != nil {
		for _, h := range st.mirrors[key] {
			e, err := mk(h, true)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		if st.noOrig[key] {
			return out, nil
		}
	}
	e, err := mk(key, false)
	if err != nil {
		return nil, err
	}
	return append(out, e), nil
}

// hostAuthenticator turns configured credentials into an authenticator.
func hostAuthenticator(a *HostAuth) authn.Authenticator {
	return authn.FromConfig(authn.AuthConfig{Username: a.Username, Password: a.Password, Auth: a.Auth, IdentityToken: a.IdentityToken})
}
