package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/store"
)

// heartbeatTTL is the ttl the heartbeat test asks for, and heartbeatSlack
// how much later than ttl after the heartbeat stopped a host may still be
// Alive (a store checks expiry now and then).
const (
	heartbeatTTL   = 2 * time.Second
	heartbeatSlack = 3 * time.Second
)

func newHost(name string) store.Host {
	return store.Host{
		Name:          name,
		AgentURL:      "https://127.0.0.1:7443",
		PublicAddress: "127.0.0.1",
		OSType:        "Linux",
		Zone:          "1",
		Labels:        map[string]string{"rack": "r1"},
		Capacity:      store.Resources{CPU: 8, MemoryGB: 32},
		Allocatable:   store.Resources{CPU: 7, MemoryGB: 30},
		State:         store.HostNotReady,
		JoinedAt:      time.Date(2025, 4, 5, 6, 7, 8, 0, time.UTC),
	}
}

func hostNames(hs []store.Host) string {
	var names []string
	for _, h := range hs {
		names = append(names, h.Name)
	}
	return strings.Join(names, " ")
}

// testHosts: a host's record is put, read (case-folded), listed by name,
// updated atomically, deleted; a host no heartbeat ever kept is not Alive.
func testHosts(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	if list, err := s.ListHosts(ctx); err != nil || list == nil || len(list) != 0 {
		t.Fatalf("ListHosts on an empty store = %#v, %v; want empty non-nil", list, err)
	}
	must(t, s.PutHost(ctx, newHost("Node-B")))
	must(t, s.PutHost(ctx, newHost("node-a")))
	if err := s.PutHost(ctx, newHost("")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("PutHost without a name: err = %v, want ErrInvalidArgument", err)
	}

	got, err := s.GetHost(ctx, "NODE-b")
	must(t, err)
	want := newHost("Node-B")
	if got.Name != "Node-B" || got.AgentURL != want.AgentURL || got.Zone != "1" || got.Labels["rack"] != "r1" ||
		got.Capacity != want.Capacity || got.Allocatable != want.Allocatable || got.State != store.HostNotReady ||
		!got.JoinedAt.Equal(want.JoinedAt) || got.Alive {
		t.Fatalf("GetHost = %+v, want %+v and not Alive", got, want)
	}
	list, err := s.ListHosts(ctx)
	must(t, err)
	if hostNames(list) != "node-a Node-B" || list[0].Alive || list[1].Alive {
		t.Fatalf("ListHosts = %+v; want node-a, Node-B, neither Alive", list)
	}

	// A replacement in another case is the same host (and the record is
	// the new one, name included).
	repl := newHost("node-b")
	repl.PublicAddress = "127.0.0.2"
	must(t, s.PutHost(ctx, repl))
	if got, err := s.GetHost(ctx, "Node-B"); err != nil || got.PublicAddress != "127.0.0.2" {
		t.Fatalf("after a replacement GetHost = %+v, %v", got, err)
	}
	if list, _ := s.ListHosts(ctx); len(list) != 2 {
		t.Fatalf("after a replacement ListHosts = %q, want two hosts", hostNames(list))
	}

	upd, err := s.UpdateHost(ctx, "NODE-A", func(h *store.Host) error {
		h.State, h.Message = store.HostReady, "removed what it no longer owns"
		return nil
	})
	must(t, err)
	if upd.Name != "node-a" || upd.State != store.HostReady || upd.Alive {
		t.Fatalf("UpdateHost returned %+v", upd)
	}
	if got, err := s.GetHost(ctx, "node-a"); err != nil || got.State != store.HostReady || got.Message == "" {
		t.Fatalf("update not stored: %+v, %v", got, err)
	}
	boom := errors.New("boom")
	if _, err := s.UpdateHost(ctx, "node-a", func(h *store.Host) error {
		h.State = store.HostLost
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("UpdateHost with a failing f: err = %v, want f's", err)
	}
	if got, _ := s.GetHost(ctx, "node-a"); got.State != store.HostReady {
		t.Fatalf("a refused update was written: %+v", got)
	}
	_, err = s.UpdateHost(ctx, "ghost", func(*store.Host) error {
		t.Error("f called for a missing host")
		return nil
	})
	wantNotFound(t, err, "ghost")
	_, err = s.GetHost(ctx, "ghost")
	wantNotFound(t, err, "ghost")

	must(t, s.DeleteHost(ctx, "NODE-A"))
	_, err = s.GetHost(ctx, "node-a")
	wantNotFound(t, err, "node-a")
	wantNotFound(t, s.DeleteHost(ctx, "node-a"), "node-a")
	if list, _ := s.ListHosts(ctx); hostNames(list) != "node-b" {
		t.Fatalf("after a delete ListHosts = %q", hostNames(list))
	}
}

// nextChange returns the next change on ch, failing the test if none comes
// by deadline.
func nextChange(t *testing.T, ch <-chan store.Change, deadline time.Time, what string) store.Change {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatalf("waiting for %s: the watch ended", what)
		}
		return c
	case <-time.After(time.Until(deadline)):
		t.Fatalf("%s never heard", what)
		return store.Change{}
	}
}

func alive(t *testing.T, s store.Store, name string) bool {
	t.Helper()
	h, err := s.GetHost(t.Context(), name)
	must(t, err)
	return h.Alive
}

// testHeartbeat: a heartbeat makes a host Alive (GetHost, ListHosts, a
// HostChange on the watch); when its context ends it returns the context's
// error and the host stays Alive, for about ttl, then is not (another
// HostChange).
func testHeartbeat(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	must(t, s.PutHost(ctx, newHost("Node-1")))
	must(t, s.PutHost(ctx, newHost("node-2")))
	ch := s.Watch(ctx)

	hbCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- s.Heartbeat(hbCtx, "NODE-1", heartbeatTTL) }()

	if c := nextChange(t, ch, time.Now().Add(10*time.Second), "the heartbeat's HostChange"); c != store.HostChangeFor("node-1") {
		t.Fatalf("first change after the heartbeat began = %+v, want %+v", c, store.HostChangeFor("node-1"))
	}
	if !alive(t, s, "node-1") {
		t.Fatal("a host with a running heartbeat is not Alive")
	}
	list, err := s.ListHosts(ctx)
	must(t, err)
	if len(list) != 2 || !list[0].Alive || list[1].Alive {
		t.Fatalf("ListHosts = %+v; want Node-1 Alive, node-2 not", list)
	}
	// Beats go on past one ttl without changing anything.
	time.Sleep(heartbeatTTL + heartbeatTTL/2)
	if !alive(t, s, "node-1") {
		t.Fatal("the host stopped being Alive while its heartbeat ran")
	}
	select {
	case c := <-ch:
		t.Fatalf("a change while the heartbeat ran on: %+v", c)
	default:
	}

	stop()
	stopped := time.Now()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Heartbeat after its context ended = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Heartbeat did not return after its context ended")
	}
	if !alive(t, s, "node-1") {
		t.Fatal("the host stopped being Alive as soon as its heartbeat stopped; it must stay Alive for ttl")
	}
	c := nextChange(t, ch, stopped.Add(heartbeatTTL+heartbeatSlack), "the HostChange of the heartbeat's expiry")
	gone := time.Since(stopped)
	if c != store.HostChangeFor("node-1") {
		t.Fatalf("change after the heartbeat stopped = %+v, want %+v", c, store.HostChangeFor("node-1"))
	}
	if alive(t, s, "node-1") {
		t.Fatalf("the host is still Alive %s after its heartbeat stopped (ttl %s)", gone, heartbeatTTL)
	}
	if gone < heartbeatTTL/3 {
		t.Fatalf("the host stopped being Alive %s after its heartbeat stopped; a heartbeat of ttl %s must keep it for more than %s",
			gone, heartbeatTTL, heartbeatTTL/3)
	}
}
