package etcdstore_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store"
	"github.com/skiff-sh/skiff/internal/store/etcdstore"
	"github.com/skiff-sh/skiff/internal/store/storetest"
	etcdenv "github.com/skiff-sh/skiff/internal/testenv/etcd"
)

// TestSuite runs the shared store suite on one real etcd; each subtest has
// a prefix of its own, and a reopen in the same subtest finds its data.
func TestSuite(t *testing.T) {
	e := etcdenv.Start(t)
	sealer := newSealer(t)
	var n atomic.Int64
	var prefixes sync.Map // *testing.T → prefix
	storetest.RunSuite(t, func(t *testing.T) store.Store {
		p, ok := prefixes.Load(t)
		if !ok {
			p, _ = prefixes.LoadOrStore(t, fmt.Sprintf("/skiff-test/%d/", n.Add(1)))
		}
		return open(t, e.Endpoints, p.(string), sealer)
	})
}

func newSealer(t testing.TB) *seal.Sealer {
	t.Helper()
	key := make([]byte, seal.KeySize)
	rand.Read(key)
	s, err := seal.New(key, "test key")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// open opens a store and closes it when the test ends.
func open(t *testing.T, endpoints []string, prefix string, sealer *seal.Sealer) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.Open(t.Context(), etcdstore.Options{Endpoints: endpoints, Prefix: prefix, Sealer: sealer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// rawClient is a plain etcd client, to look at or change etcd behind the
// store's back.
func rawClient(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// startWithRG starts an etcd and opens a store on prefix holding resource
// group sub/rg.
func startWithRG(t *testing.T, prefix string) (*etcdenv.Etcd, *etcdstore.Store) {
	t.Helper()
	e := etcdenv.Start(t)
	s := open(t, e.Endpoints, prefix, newSealer(t))
	if _, err := s.PutResourceGroup(t.Context(), store.ResourceGroup{Subscription: "sub", Name: "rg"}); err != nil {
		t.Fatal(err)
	}
	return e, s
}

// putGroup puts a bare container group in subscription "sub".
func putGroup(ctx context.Context, s store.Store, rg, name string) error {
	cg := store.ContainerGroup{Subscription: "sub", ResourceGroup: rg}
	cg.Resource.Name = name
	_, err := s.PutContainerGroup(ctx, cg)
	return err
}

// waitFor reads ch until want comes (other changes are skipped), failing
// the test after d.
func waitFor(t *testing.T, ch <-chan store.Change, want store.Change, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case c, ok := <-ch:
			if !ok {
				t.Fatalf("the watch ended before %+v", want)
			}
			if c == want {
				return
			}
		case <-deadline:
			t.Fatalf("%+v not heard within %s", want, d)
		}
	}
}

// TestEtcdRestart: a store keeps working across a crash and restart of
// etcd, and a watch begun before the crash, or while etcd was down, hears
// what is written after.
func TestEtcdRestart(t *testing.T) {
	e := etcdenv.Start(t)
	s, err := etcdstore.Open(t.Context(), etcdstore.Options{Endpoints: e.Endpoints, Sealer: newSealer(t), DialTimeout: time.Second})
	must(t, err)
	defer s.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := s.PutResourceGroup(ctx, store.ResourceGroup{Subscription: "sub", Name: "rg"}); err != nil {
		t.Fatal(err)
	}
	ch := s.Watch(ctx)

	e.Kill()
	// A watch begun while etcd is down does not wait for it.
	began := time.Now()
	chDown := s.Watch(ctx)
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("Watch while etcd is down took %s (DialTimeout 1s)", took)
	}
	// While etcd is down a call gives up when its context ends.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	began = time.Now()
	_, err = s.GetResourceGroup(short, "sub", "rg")
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetResourceGroup while etcd is down = %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("GetResourceGroup while etcd is down took %s with a 300ms context", took)
	}

	e.Restart(t)
	if err := putGroup(ctx, s, "rg", "after"); err != nil {
		t.Fatalf("write after the restart: %v", err)
	}
	waitFor(t, ch, store.GroupChange("sub", "rg", "after"), 30*time.Second)
	waitFor(t, chDown, store.GroupChange("sub", "rg", "after"), 30*time.Second)
	cg, err := s.GetContainerGroup(ctx, "sub", "RG", "AFTER")
	if err != nil || cg.Generation != 1 {
		t.Fatalf("read after the restart = %+v, %v", cg, err)
	}
	// And again: the watch goes on after the first change.
	if _, err := s.UpdateContainerGroup(ctx, "sub", "rg", "after", func(cg *store.ContainerGroup) error {
		cg.Host = "node-1"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, store.GroupChange("sub", "rg", "after"), 30*time.Second)
}

// TestTwoStores: two stores on one prefix (two servers of a cluster) see
// each other's writes at once; neither's read-modify-write loses the
// other's, or acts on a record the other deleted.
func TestTwoStores(t *testing.T) {
	e := etcdenv.Start(t)
	sealer := newSealer(t)
	a := open(t, e.Endpoints, "/two/", sealer)
	b := open(t, e.Endpoints, "/two/", sealer)
	ctx := t.Context()
	if _, err := a.PutResourceGroup(ctx, store.ResourceGroup{Subscription: "sub", Name: "rg"}); err != nil {
		t.Fatal(err)
	}
	must(t, putGroup(ctx, a, "rg", "web"))
	count := func(s store.Store) error {
		_, err := s.UpdateContainerGroup(ctx, "sub", "rg", "web", func(cg *store.ContainerGroup) error {
			n, _ := strconv.Atoi(cg.Resource.Tags["n"])
			cg.Resource.Tags = map[string]string{"n": strconv.Itoa(n + 1)}
			return nil
		})
		return err
	}
	// In turns: each update starts from what the other wrote last.
	for range 5 {
		must(t, count(a))
		must(t, count(b))
	}
	// At once.
	var wg sync.WaitGroup
	for _, s := range []store.Store{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				if err := count(s); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for _, s := range []store.Store{a, b} {
		cg, err := s.GetContainerGroup(ctx, "sub", "rg", "web")
		must(t, err)
		if cg.Resource.Tags["n"] != "110" {
			t.Fatalf("after 110 increments from two stores the counter reads %s: updates were lost", cg.Resource.Tags["n"])
		}
	}

	// b deletes what a just wrote: a's update finds it gone, a's put
	// creates it anew.
	must(t, b.DeleteContainerGroup(ctx, "sub", "rg", "web"))
	if _, err := a.UpdateContainerGroup(ctx, "sub", "rg", "web", func(*store.ContainerGroup) error { return nil }); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("update of a group the other store deleted = %v, want ErrNotFound", err)
	}
	cg, created, err := a.CreateOrUpdateContainerGroup(ctx, "sub", "rg", "web", func(old *store.ContainerGroup) (*store.ContainerGroup, error) {
		if old != nil {
			t.Errorf("old = %+v after the other store deleted it", old)
		}
		cg := store.ContainerGroup{}
		cg.Resource.Name = "web"
		return &cg, nil
	})
	if err != nil || !created || cg.Generation != 1 {
		t.Fatalf("put after the other store's delete: created=%v generation %d, %v; want a new group", created, cg.Generation, err)
	}
	// b marks the resource group Deleting: a takes no group into it.
	if _, err := b.UpdateResourceGroup(ctx, "sub", "rg", func(rg *store.ResourceGroup) error {
		rg.ProvisioningState = store.ResourceGroupDeleting
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_, _, err = a.CreateOrUpdateContainerGroup(ctx, "sub", "rg", "other", func(*store.ContainerGroup) (*store.ContainerGroup, error) {
		cg := store.ContainerGroup{}
		cg.Resource.Name = "other"
		return &cg, nil
	})
	if errdefs.CodeOf(err) != "ResourceGroupBeingDeleted" {
		t.Fatalf("put into a resource group the other store marked Deleting = %v, want ResourceGroupBeingDeleted", err)
	}
	// a deletes the group, b the resource group: b sees the group gone.
	must(t, a.DeleteContainerGroup(ctx, "sub", "rg", "web"))
	must(t, b.DeleteResourceGroup(ctx, "sub", "rg"))
}

// TestWrongSealKey: a prefix sealed with one key refuses another at Open,
// with the seal error, and the refused Open writes nothing; a prefix of a
// newer schema is refused too.
func TestWrongSealKey(t *testing.T) {
	e := etcdenv.Start(t)
	s := open(t, e.Endpoints, "/sealed/", newSealer(t))
	if err := s.PutMeta(t.Context(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	must(t, s.Close())

	raw := rawClient(t, e.Endpoints)
	before, err := raw.Get(t.Context(), "/sealed/", clientv3.WithPrefix())
	must(t, err)
	_, err = etcdstore.Open(t.Context(), etcdstore.Options{Endpoints: e.Endpoints, Prefix: "/sealed/", Sealer: newSealer(t)})
	if !errors.Is(err, seal.ErrWrongKey) || !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Fatalf("Open with another seal key = %v, want seal.ErrWrongKey (ErrUnauthorized)", err)
	}
	after, err := raw.Get(t.Context(), "/sealed/", clientv3.WithPrefix())
	must(t, err)
	if after.Header.Revision != before.Header.Revision {
		t.Fatalf("the refused Open wrote: etcd's revision went from %d to %d", before.Header.Revision, after.Header.Revision)
	}

	// Another prefix is another store: any key opens it.
	open(t, e.Endpoints, "/other/", newSealer(t))

	// A prefix a newer Skiff wrote is refused, not misread.
	if _, err := raw.Put(t.Context(), "/newer/meta/schemaVersion", strconv.Itoa(etcdstore.SchemaVersion+1)); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Put(t.Context(), "/newer/meta/sealCheck", "\"skiff-sealed:v1:whatever\""); err != nil {
		t.Fatal(err)
	}
	_, err = etcdstore.Open(t.Context(), etcdstore.Options{Endpoints: e.Endpoints, Prefix: "/newer", Sealer: newSealer(t)})
	if !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("Open of a newer schema = %v, want ErrConflict", err)
	}
}

// TestSealedAtRest: etcd holds a container group's secrets sealed; the
// store reads them back plain.
func TestSealedAtRest(t *testing.T) {
	e, s := startWithRG(t, "/at-rest/")
	ctx := t.Context()
	cg := store.ContainerGroup{Subscription: "sub", ResourceGroup: "rg"}
	cg.Resource.Name = "web"
	p := &cg.Resource.Properties
	p.Containers = []api.Container{{Name: "app", Properties: api.ContainerProperties{
		Image:                "127.0.0.1:5000/busybox:latest",
		EnvironmentVariables: []api.EnvironmentVariable{{Name: "TOKEN", SecureValue: "plain-secure-value"}},
	}}}
	p.ImageRegistryCredentials = []api.ImageRegistryCredential{{Server: "127.0.0.1:5000", Username: "u", Password: "plain-registry-password"}}
	if _, err := s.PutContainerGroup(ctx, cg); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateContainerGroup(ctx, "sub", "rg", "web", func(cg *store.ContainerGroup) error {
		cg.Host = "node-1"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	raw, err := rawClient(t, e.Endpoints).Get(ctx, "/at-rest/containergroups/", clientv3.WithPrefix())
	must(t, err)
	if len(raw.Kvs) != 1 {
		t.Fatalf("%d container group keys in etcd, want 1", len(raw.Kvs))
	}
	v := string(raw.Kvs[0].Value)
	for _, plain := range []string{"plain-secure-value", "plain-registry-password"} {
		if strings.Contains(v, plain) {
			t.Fatalf("etcd holds %q in clear: %s", plain, v)
		}
	}
	if !strings.Contains(v, "skiff-sealed:") {
		t.Fatalf("etcd's record holds no sealed value: %s", v)
	}
	got, err := s.GetContainerGroup(ctx, "sub", "rg", "web")
	must(t, err)
	if got.Resource.Properties.Containers[0].Properties.EnvironmentVariables[0].SecureValue != "plain-secure-value" ||
		got.Resource.Properties.ImageRegistryCredentials[0].Password != "plain-registry-password" {
		t.Fatalf("read back: %+v", got.Resource.Properties)
	}
}

// TestTooLarge: a record over etcd's request limit (or the client's) is
// refused as too large, a client's error, not as etcd being unavailable.
func TestTooLarge(t *testing.T) {
	_, s := startWithRG(t, "")
	ctx := t.Context()
	for _, size := range []int{1600 << 10, 3 << 20} { // etcd's limit is 1.5 MiB, the client's 2 MiB
		cg := store.ContainerGroup{Subscription: "sub", ResourceGroup: "rg"}
		cg.Resource.Name = "big"
		cg.Resource.Properties.Volumes = []api.Volume{{Name: "v", Secret: map[string]string{"blob": strings.Repeat("A", size)}}}
		if _, err := s.PutContainerGroup(ctx, cg); !errors.Is(err, errdefs.ErrTooLarge) {
			t.Fatalf("a %d-byte group: err = %v, want ErrTooLarge", size, err)
		}
	}
	if _, err := s.GetContainerGroup(ctx, "sub", "rg", "big"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a refused group was stored: %v", err)
	}
}

// TestUnreachable: Open of an etcd that is not there fails within its
// DialTimeout as ErrUnavailable.
func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	endpoint := "http://127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close() // nothing listens there now
	began := time.Now()
	_, err = etcdstore.Open(t.Context(), etcdstore.Options{Endpoints: []string{endpoint}, Sealer: newSealer(t), DialTimeout: 500 * time.Millisecond})
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Open of %s = %v, want ErrUnavailable", endpoint, err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("Open of an unreachable etcd took %s with a 500ms DialTimeout", took)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestWatchResyncAfterCompaction: a watch cut off from etcd while others
// write, delete and compact resumes with a change for every record,
// deleted ones included, and then goes on live.
func TestWatchResyncAfterCompaction(t *testing.T) {
	e := etcdenv.Start(t)
	sealer := newSealer(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	writer := open(t, e.Endpoints, "/resync/", sealer)
	if _, err := writer.PutResourceGroup(ctx, store.ResourceGroup{Subscription: "sub", Name: "rg"}); err != nil {
		t.Fatal(err)
	}
	must(t, putGroup(ctx, writer, "rg", "doomed"))
	must(t, writer.PutHost(ctx, store.Host{Name: "node-1"}))

	p := newProxy(t, e.Endpoints[0])
	watcher := open(t, []string{p.url()}, "/resync/", sealer)
	ch := watcher.Watch(ctx)
	must(t, putGroup(ctx, writer, "rg", "live"))
	waitFor(t, ch, store.GroupChange("sub", "rg", "live"), 30*time.Second)

	p.cut()
	must(t, putGroup(ctx, writer, "rg", "during"))
	must(t, writer.DeleteContainerGroup(ctx, "sub", "rg", "doomed"))
	must(t, writer.PutOperation(ctx, store.Operation{ID: "Op-1", Subscription: "Sub", Status: "InProgress"}))
	raw := rawClient(t, e.Endpoints)
	now, err := raw.Get(ctx, "/resync/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	must(t, err)
	if _, err := raw.Compact(ctx, now.Header.Revision); err != nil {
		t.Fatal(err)
	}
	p.restore()

	want := map[store.Change]bool{
		store.GroupChange("sub", "rg", "during"): true,
		store.GroupChange("sub", "rg", "doomed"): true, // deleted meanwhile: heard, so that a watcher reads it gone
		store.GroupChange("sub", "rg", "live"):   true,
		store.RGChange("sub", "rg"):              true,
		store.HostChangeFor("node-1"):            true,
		store.OpChange("sub", "Op-1"):            true,
	}
	deadline := time.After(30 * time.Second)
	for len(want) > 0 {
		select {
		case c, ok := <-ch:
			if !ok {
				t.Fatal("the watch ended")
			}
			delete(want, c)
		case <-deadline:
			t.Fatalf("after the compaction the watch never reported %v", want)
		}
	}
	must(t, putGroup(ctx, writer, "rg", "after"))
	waitFor(t, ch, store.GroupChange("sub", "rg", "after"), 30*time.Second)
}

// proxy forwards TCP connections on 127.0.0.1 to an etcd endpoint; cut
// drops every connection and refuses new ones until restore, as a network
// partition would.
type proxy struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

func newProxy(t *testing.T, endpoint string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p := &proxy{l: l, target: strings.TrimPrefix(endpoint, "http://"), conns: map[net.Conn]bool{}}
	t.Cleanup(func() {
		l.Close()
		p.cut()
	})
	go p.serve()
	return p
}

func (p *proxy) url() string { return "http://" + p.l.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

// track adds c to the live connections; false (and c closed) while cut.
func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *proxy) forward(c net.Conn) {
	if !p.track(c) {
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(up) {
		c.Close()
		return
	}
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *proxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// BenchmarkCreateAndPlace measures what the server and the controller do
// for each new group, from 32 goroutines: a create (compare-and-swap on the
// group and its resource group) and a placement (an update), against one
// etcd.
func BenchmarkCreateAndPlace(b *testing.B) {
	e := etcdenv.Start(b)
	s, err := etcdstore.Open(b.Context(), etcdstore.Options{Endpoints: e.Endpoints, Sealer: newSealer(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := b.Context()
	if _, err := s.PutResourceGroup(ctx, store.ResourceGroup{Subscription: "sub", Name: "rg"}); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.SetParallelism(32 / max(1, runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			name := "cg-" + strconv.FormatInt(n.Add(1), 10)
			_, _, err := s.CreateOrUpdateContainerGroup(ctx, "sub", "rg", name, func(old *store.ContainerGroup) (*store.ContainerGroup, error) {
				cg := store.ContainerGroup{Subscription: "sub", ResourceGroup: "rg"}
				cg.Resource.Name = name
				return &cg, nil
			})
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := s.UpdateContainerGroup(ctx, "sub", "rg", name, func(cg *store.ContainerGroup) error {
				cg.Host = "node-1"
				return nil
			}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "groups/s")
}
