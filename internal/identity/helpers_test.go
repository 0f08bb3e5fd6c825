package identity

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store"
)

// clock is a test clock that only moves when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a provider on a real bbolt store, served over TLS.
type env struct {
	t      *testing.T
	ctx    context.Context
	st     *store.Bolt
	dbPath string
	sealer *seal.Sealer
	clock  *clock
	p      *Provider
	srv    *httptest.Server
	client *http.Client
	base   string

	// allow is the Graph Allow hook's answer; nil allows.
	mu      sync.Mutex
	allow   func(pr *Principal, action string) error
	actions []string
}

const adminToken = "test-admin-token"

func newSealer(t *testing.T) *seal.Sealer {
	t.Helper()
	key := make([]byte, seal.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	s, err := seal.New(key, "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func openStore(t *testing.T, path string, s *seal.Sealer) *store.Bolt {
	t.Helper()
	st, err := store.OpenBolt(path, store.BoltOptions{Sealer: s})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// newEnv starts a provider and its handler; cfg's Store, Sealer, BaseURL
// and Now are filled in.
func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), clock: &clock{t: time.Now().Truncate(time.Second)}}
	e.sealer = newSealer(t)
	e.dbPath = filepath.Join(t.TempDir(), "db")
	e.st = openStore(t, e.dbPath, e.sealer)
	t.Cleanup(func() { e.st.Close() })

	var h http.Handler = http.NotFoundHandler()
	e.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(e.srv.Close)
	e.client = e.srv.Client()
	e.base = e.srv.URL

	cfg.Store, cfg.Sealer, cfg.BaseURL, cfg.Now = e.st, e.sealer, e.base, e.clock.Now
	p, err := New(e.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.p = p
	h = NewHandler(p, HandlerOptions{
		Authenticate: func(r *http.Request) (*Principal, error) {
			if r.Header.Get("Authorization") == "Bearer "+adminToken {
				return p.AdminPrincipal(), nil
			}
			return p.Authenticate(r)
		},
		Allow: func(_ context.Context, pr *Principal, action string) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.actions = append(e.actions, action)
			if e.allow != nil {
				return e.allow(pr, action)
			}
			return nil
		},
	})
	return e
}

// newSP makes a service principal with a secret through the Go API.
func (e *env) newSP(name string) *Credentials {
	e.t.Helper()
	c, err := e.p.CreateServicePrincipalWithSecret(e.ctx, name, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// reply is an HTTP response read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("status %d, body %q: %v", r.status, r.body, err)
	}
	return m
}

func (e *env) do(req *http.Request) reply {
	e.t.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// form posts a form to path.
func (e *env) form(path string, v url.Values) reply {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.base+path, strings.NewReader(v.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.do(req)
}

// call sends a JSON request with a bearer token ("" none).
func (e *env) call(method, path, token string, body any) reply {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = strings.NewReader(string(raw))
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.do(req)
}

// clientCredentials is az's token request body (MSAL Python 1.21 through
// an /adfs authority).
func clientCredentials(id, secret, scope string) url.Values {
	return url.Values{
		"client_id": {id}, "client_secret": {secret}, "grant_type": {"client_credentials"},
		"client_info": {"1"}, "claims": {`{"access_token":{"xms_cc":{"values":["CP1"]}}}`},
		"scope": {scope},
	}
}

// token gets an access token for the ARM resource as az does.
func (e *env) token(c *Credentials) string {
	e.t.Helper()
	rep := e.form("/adfs/oauth2/token", clientCredentials(c.AppID, c.Password, e.base+"//.default"))
	if rep.status != http.StatusOK {
		e.t.Fatalf("token: status %d: %s", rep.status, rep.body)
	}
	tok, _ := rep.json(e.t)["access_token"].(string)
	if tok == "" {
		e.t.Fatalf("token: no access_token in %s", rep.body)
	}
	return tok
}
