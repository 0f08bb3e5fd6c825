// Package apiserver starts Skiff's API server inside a test: the real
// server (internal/server) on a loopback httptest listener, on top of
// apiserver/controlplane (the real controller on a bbolt store in the test's
// temporary directory, with the fake host agent behind them).
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
	"testing"

	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/agent/fakeagent"
	"github.com/skiff-sh/skiff/internal/server"
	"github.com/skiff-sh/skiff/internal/store"
	"github.com/skiff-sh/skiff/internal/testenv/apiserver/controlplane"
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
	p := controlplane.Start(t)
	token, sub, err := server.EnsureIdentity(context.Background(), p.Store, p.Dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Store: p.Store, Host: p.Agent, Token: token}
	if o.config != nil {
		o.config(&cfg)
	}
	var h http.Handler = server.New(cfg)
	if o.wrap != nil {
		h = o.wrap(h)
	}
	// Closed before the plane stops (cleanups run last in first out).
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return &Server{URL: hs.URL, Token: token, Subscription: sub, Agent: p.Agent, Store: p.Store}
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
