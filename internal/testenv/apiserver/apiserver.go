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
	"github.com/skiff-sh/skiff/internal/server"
	"github.com/skiff-sh/skiff/internal/testenv/apiserver/controlplane"
)

// Server is a running API server and the plane it stands on (its store,
// and its fake agent for the hooks: Fail, Hold, Print, …).
type Server struct {
	*controlplane.Plane
	// URL is the server's base URL (http://127.0.0.1:port).
	URL string
	// Token is the admin bearer token, Subscription the default
	// subscription, both made on first start as `skiff server` makes them.
	Token, Subscription string
}

// Start starts a server that stops when the test ends, composed as `skiff
// server` composes it. Its handler is served through the middleware given,
// the first outermost: a test's recorder of what clients send, or the
// injection of a failure the real server cannot be made to produce.
func Start(t testing.TB, middleware ...func(http.Handler) http.Handler) *Server {
	t.Helper()
	p := controlplane.Start(t)
	token, sub, err := server.EnsureIdentity(context.Background(), p.Store, p.Dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Store: p.Store, Host: p.Agent, Token: token, Sealer: p.Sealer})
	// Template deployments run beside the controller, as in `skiff server`.
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { srv.Deployments().Run(ctx); close(ran) }()
	t.Cleanup(func() { stop(); <-ran })
	var h http.Handler = srv
	for i := len(middleware) - 1; i >= 0; i-- {
		h = middleware[i](h)
	}
	// Closed before the plane stops (cleanups run last in first out).
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return &Server{Plane: p, URL: hs.URL, Token: token, Subscription: sub}
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
