// Package controlplane starts, inside a test, what Skiff's API server
// stands on: a bbolt store in the test's temporary directory, the real
// controller, and the fake host agent (internal/agent/fakeagent) as the
// one host. It does not import the server, so that internal/server's own
// tests can use it; package apiserver puts the server on top.
package controlplane

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/skiff-sh/skiff/internal/agent/fakeagent"
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store"
)

// Plane is a running store, controller and fake agent.
type Plane struct {
	// Dir is the data directory the store is in.
	Dir   string
	Store store.Store
	// Agent is the fake host agent, for its hooks (Fail, Hold, Print, …).
	Agent *fakeagent.Agent
	// Sealer is the store's seal key.
	Sealer *seal.Sealer
}

// Start starts a plane that stops when the test ends, composed as
// `skiff server` composes it, with the fake agent as the host.
func Start(t testing.TB) *Plane {
	t.Helper()
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
	// Cleanups run last in first out: the agent and the controller stop
	// before the store closes.
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	agent := fakeagent.Start(ctx, st)
	if err := controller.New(controller.Config{Store: st, Host: fakeagent.Name}).Start(ctx); err != nil {
		t.Fatal(err)
	}
	return &Plane{Dir: dir, Store: st, Agent: agent, Sealer: sealer}
}
