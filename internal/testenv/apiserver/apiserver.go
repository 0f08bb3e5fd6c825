// Package apiserver starts Skiff's API server inside a test: the real
// server (internal/server) and controller on a bbolt store in the test's
// temporary directory, with the fake host agent (internal/agent/fakeagent)
// behind them, on a loopback httptest listener.
//
// In-process, with a fake agent, because the tests that use it are about
// the API as a client sees it — the CLI's grammar, output and exit codes,
// the requests it sends — not about running containers: the groups they
// create name images on registries that a real runtime would pull from the
// network. The real `skiff server` with the real agent and runc is
// testenv.StartSkiffServer's.
package apiserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/agent/fakeagent"
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/server"
	"github.com/skiff-sh/skiff/internal/store"
)

// Server is a running API server.
type Server struct {
	// URL is the server's base URL (http://127.0.0.1:port).
	URL string
	// Token is the admin bearer token, Subscription the default
	// subscription, both made on first start as `skiff server` makes them.
	Token, Subscription string
	// Agent is the fake host agent, for its hooks (Fail, Hold, Print, …).
	Agent *fakeagent.Agent
	// Store is the server's store, for tests that seed or read records.
	Store store.Store
}

// Option changes how Start composes the server.
type Option func(*options)

type options struct {
	config func(*server.Config)
	wrap   func(http.Handler) http.Handler
}

// WithConfig lets mutate change the server's configuration.
func WithConfig(mutate func(*server.Config)) Option {
	return func(o *options) { o.config = mutate }
}

// WithHandler serves the server's handler through wrap: a test's
// middleware that records what clients send, or injects a failure the
// real server cannot be made to produce.
func WithHandler(wrap func(http.Handler) http.Handler) Option {
	return func(o *options) { o.wrap = wrap }
}

// Start starts a server that stops when the test ends. It composes the
// parts as `skiff server` does, with the fake agent as the host.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	dir := t.TempDir()
	sealer, err := seal.LoadOrCreateKey(filepath.Join(dir, seal.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenBolt(filepath.Join(dir, "skiff.db"), store.BoltOptions{Sealer: sealer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	token, sub, err := server.EnsureIdentity(context.Background(), st, dir)
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last in first out: the agent and the controller stop
	// before the store closes, and the listener before both.
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	agent := fakeagent.Start(ctx, st)
	if err := controller.New(controller.Config{Store: st, Host: fakeagent.Name}).Start(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Store: st, Host: agent, Token: token}
	if o.config != nil {
		o.config(&cfg)
	}
	var h http.Handler = server.New(cfg)
	if o.wrap != nil {
		h = o.wrap(h)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return &Server{URL: hs.URL, Token: token, Subscription: sub, Agent: agent, Store: st}
}

// Client returns a client of the server with its admin token and default
// subscription.
func (s *Server) Client(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{Endpoint: s.URL, Token: s.Token, Subscription: s.Subscription})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
