package network

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
)

// waitPool waits until m has n ready pool entries.
func waitPool(t *testing.T, m *Manager, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for m.PoolReady() != n {
		if time.Now().After(deadline) {
			t.Fatalf("pool has %d ready entries after 20 s, want %d", m.PoolReady(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// crash stops m's pool refill the way a killed process would: its ready
// entries stay on the host.
func crash(m *Manager) {
	m.pool.cancel()
	<-m.pool.done
}

func TestPoolGivesGroupsPreparedAttachments(t *testing.T) {
	cfg := testConfig(t)
	cfg.PoolSize = 2
	m := newManager(t, cfg)
	waitPool(t, m, 2)
	if lc := leaks(t, cfg); !lc.Zero() || lc.Pool != 2 {
		t.Fatalf("CountLeaks with a full pool and no group = %+v, want zero and Pool 2", lc)
	}

	a := setup(t, m, "pooled-a", nil)
	b := setup(t, m, "pooled-b", nil)
	for _, att := range []*Attachment{a, b} {
		if _, ok := m.cfg.readBinding(att.ID); !ok {
			t.Errorf("%s has no pool binding: it did not take a prepared attachment", att.ID)
		}
		if att.NetNSPath != m.cfg.netnsPath(att.ID) || !isNetNS(att.NetNSPath) {
			t.Errorf("%s: netns %q, want a mounted %q", att.ID, att.NetNSPath, m.cfg.netnsPath(att.ID))
		}
	}
	if a.IP.Equal(b.IP) {
		t.Fatalf("two pooled groups share the address %s", a.IP)
	}
	port := freePort(t, "tcp")
	serveTCP(t, b.NetNSPath, port, "b")
	if got, err := tcpAsk(t, a.NetNSPath, fmt.Sprintf("%s:%d", b.IP, port), "hi"); err != nil || got != "b hi" {
		t.Fatalf("pooled group to pooled group: %q, %v", got, err)
	}
	waitPool(t, m, 2) // refilled in the background

	// A group with ports takes no pool entry (portmap runs in its ADD).
	pub := freePort(t, "tcp")
	c := setup(t, m, "ported", []api.Port{{Protocol: "TCP", Port: pub}})
	if _, ok := m.cfg.readBinding("ported"); ok || m.PoolReady() != 2 {
		t.Errorf("a group with ports took a pool entry (ready %d)", m.PoolReady())
	}
	serveTCP(t, c.NetNSPath, pub, "c")
	if got, err := tcpAsk(t, "", fmt.Sprintf("127.0.0.1:%d", pub), "x"); err != nil || got != "c x" {
		t.Fatalf("published port: %q, %v", got, err)
	}
	teardown(t, m, "ported")

	// A new process on the same state adopts the ready entries and the
	// bound ones.
	crash(m)
	m2 := newManager(t, cfg)
	if n := m2.PoolReady(); n != 2 {
		t.Errorf("after a restart the pool has %d ready entries, want the 2 left", n)
	}
	ids, err := m2.Attachments()
	if err != nil || len(ids) != 2 || ids[0] != "pooled-a" || ids[1] != "pooled-b" {
		t.Errorf("Attachments after restart = %v, %v; want the two groups", ids, err)
	}
	got, err := m2.Attachment("pooled-a")
	if err != nil || !got.IP.Equal(a.IP) || got.NetNSPath != a.NetNSPath {
		t.Errorf("Attachment after restart = %+v, %v; want %+v", got, err, a)
	}
	if got, err := tcpAsk(t, a.NetNSPath, fmt.Sprintf("%s:%d", b.IP, port), "again"); err != nil || got != "b again" {
		t.Errorf("after restart: %q, %v", got, err)
	}

	teardown(t, m2, "pooled-a")
	teardown(t, m2, "pooled-b")
	if lc := leaks(t, cfg); !lc.Zero() {
		t.Errorf("CountLeaks after the groups' teardown = %+v, want zero", lc)
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	if lc := leaks(t, cfg); !lc.Zero() || lc.Pool != 0 {
		t.Errorf("CountLeaks after Close = %+v, want nothing, no pool", lc)
	}
	if entries, _ := os.ReadDir(cfg.netnsDir()); len(entries) != 0 {
		t.Errorf("namespace files after Close: %d", len(entries))
	}
}

// A restart drops what it cannot use: entries beyond the size, and one
// whose ADD a crash interrupted (namespace and lease, no cache entry).
func TestPoolRestartDropsBrokenAndExtraEntries(t *testing.T) {
	cfg := testConfig(t)
	cfg.PoolSize = 3
	m := newManager(t, cfg)
	waitPool(t, m, 3)
	crash(m)
	broken := m.pool.ready[0]
	results := filepath.Join(m.cfg.cacheDir(), "results", cfg.NetworkName+"-"+broken+"-"+IfName)
	if err := os.Remove(results); err != nil {
		t.Fatal(err)
	}
	if lc := leaks(t, cfg); lc.Zero() {
		t.Fatalf("an entry without its cache entry is not counted: %+v", lc)
	}

	cfg.PoolSize = 1
	m2 := newManager(t, cfg)
	if n := m2.PoolReady(); n != 1 {
		t.Errorf("pool after restart with size 1: %d ready", n)
	}
	if lc := leaks(t, cfg); !lc.Zero() || lc.Pool != 1 {
		t.Errorf("CountLeaks after restart = %+v, want zero, Pool 1", lc)
	}
	if _, err := os.Stat(m.cfg.netnsPath(broken)); !os.IsNotExist(err) {
		t.Errorf("broken entry's namespace still there: %v", err)
	}
	att := setup(t, m2, "after", nil)
	if _, ok := m2.cfg.readBinding("after"); !ok {
		t.Errorf("the adopted entry was not taken")
	}
	teardown(t, m2, att.ID)
	if err := m2.Destroy(context.Background()); err != nil {
		t.Fatalf("Destroy with a pool: %v", err)
	}
	if lc := leaks(t, cfg); !lc.Zero() || lc.Pool != 0 {
		t.Errorf("CountLeaks after Destroy = %+v", lc)
	}
}

func TestPoolIDIsNotAGroupID(t *testing.T) {
	if err := validateID(poolPrefix + "abc"); err == nil {
		t.Error("a pool id is accepted as a group id")
	}
}

// A teardown removes its guard entry element by element (no listing of the
// guard, which grows with every group): the transaction holds, the tenant's
// chain stays while another veth of it is up and goes with the last.
func TestGuardEntryRemovedWithoutListing(t *testing.T) {
	cfg := testConfig(t)
	m := newManager(t, cfg)
	var entries []guardEntry
	for _, id := range []string{"ga", "gb"} {
		if _, err := m.Setup(context.Background(), id, Request{Tenant: "t1"}); err != nil {
			t.Fatal(err)
		}
		att, err := m.Attachment(id)
		if err != nil {
			t.Fatal(err)
		}
		rt := m.runtimeConf(m.cniID(id), Request{})
		res, err := m.cni.GetNetworkListCachedResult(m.bridgeList, rt)
		if err != nil || res == nil {
			t.Fatalf("cached result of %s: %v", id, err)
		}
		e, err := guardFromResult(id, m.cfg.BridgeName, "t1", res)
		if err != nil || !e.ip.Equal(att.IP) {
			t.Fatalf("guard entry of %s: %+v, %v", id, e, err)
		}
		entries = append(entries, e)
	}
	before := leaks(t, cfg).GuardEntries
	if err := m.removeGuardEntry(context.Background(), entries[0]); err != nil {
		t.Fatalf("removeGuardEntry with the tenant's other veth up: %v", err)
	}
	if after := leaks(t, cfg).GuardEntries; after >= before || m.tenantRefs[tenantChain("t1")] != 1 {
		t.Errorf("guard entries %d -> %d, tenant refs %d", before, after, m.tenantRefs[tenantChain("t1")])
	}
	if err := m.removeGuardEntry(context.Background(), entries[1]); err != nil {
		t.Fatalf("removeGuardEntry of the tenant's last veth: %v", err)
	}
	if n := leaks(t, cfg).GuardEntries; n != 0 {
		t.Errorf("guard entries after both: %d, want 0 (the tenant chain gone too)", n)
	}
	// Again: the transaction holds on elements already gone.
	if err := m.removeGuardEntry(context.Background(), entries[1]); err != nil {
		t.Errorf("removeGuardEntry a second time: %v", err)
	}
	teardown(t, m, "ga")
	teardown(t, m, "gb")
	assertNoLeaks(t, cfg)
}

// Closing while the pool fills (a server stopped right after it started)
// leaves no namespace, lease or veth: the prepare in flight is undone.
func TestPoolCloseWhileFilling(t *testing.T) {
	cfg := testConfig(t)
	cfg.PoolSize = 4
	for i := 0; i < 5; i++ {
		m := newManager(t, cfg)
		time.Sleep(time.Duration(i*15) * time.Millisecond)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if lc := leaks(t, cfg); !lc.Zero() || lc.Pool != 0 {
			t.Fatalf("round %d: CountLeaks after Close = %+v", i, lc)
		}
		if entries, _ := os.ReadDir(cfg.netnsDir()); len(entries) != 0 {
			t.Fatalf("round %d: %d namespace files after Close", i, len(entries))
		}
	}
}

// A release removes the lease of the address libcni's cache names when it
// is the group's, without reading the others; a stale address (its lease
// another's) falls back to reading them all, and never removes another's.
func TestReleaseLeaseByCachedAddress(t *testing.T) {
	cfg := Config{StateDir: t.TempDir(), NetworkName: "skiff-test"}
	m := &Manager{cfg: cfg}
	dir := filepath.Join(cfg.ipamDir(), cfg.NetworkName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	lease := func(ip, owner string) string {
		p := filepath.Join(dir, ip)
		if err := os.WriteFile(p, []byte(owner+"\r\neth0"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b, c := lease("10.9.0.2", "group-a"), lease("10.9.0.3", "group-b"), lease("10.9.0.4", "group-c")
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }

	if err := m.releaseLease("group-a", []net.IP{net.ParseIP("10.9.0.2")}); err != nil {
		t.Fatal(err)
	}
	if exists(a) || !exists(b) || !exists(c) {
		t.Fatalf("after releasing group-a by its address: a %v b %v c %v, want only a gone", exists(a), exists(b), exists(c))
	}
	// The cache names b's address for c: c's own lease goes, b's stays.
	if err := m.releaseLease("group-c", []net.IP{net.ParseIP("10.9.0.3")}); err != nil {
		t.Fatal(err)
	}
	if !exists(b) || exists(c) {
		t.Fatalf("after releasing group-c by a stale address: b %v c %v, want b kept and c gone", exists(b), exists(c))
	}
	if err := m.releaseLease("group-b", nil); err != nil {
		t.Fatal(err)
	}
	if exists(b) {
		t.Fatal("group-b's lease is left after a release without addresses")
	}
}
