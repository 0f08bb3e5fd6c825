package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	servercmd "github.com/skiff-sh/skiff/internal/cmd/server"
	"github.com/skiff-sh/skiff/internal/scheduler"
	"github.com/skiff-sh/skiff/internal/seal"
	"github.com/skiff-sh/skiff/internal/store"
	"github.com/skiff-sh/skiff/internal/store/etcdstore"
	"github.com/skiff-sh/skiff/internal/testenv"
	etcdenv "github.com/skiff-sh/skiff/internal/testenv/etcd"
)

// The simulated fleet of BenchmarkPlacement1000Hosts.
const (
	fleetHosts = 1000
	// fleetGroups are PUT by fleetInFlight clients at once, into
	// fleetRGs resource groups (the scheduler spreads each one's groups).
	fleetGroups   = 2000
	fleetInFlight = 32
	fleetRGs      = 20
	// Each host offers fleetHostCPU cores and fleetHostMemGB GB; each
	// group asks for one core and one GB, so the fleet is half full at
	// the end and no host may hold more than fleetHostCPU groups.
	fleetHostCPU   = 4
	fleetHostMemGB = 16
	// fleetTTL is the hosts' heartbeat ttl, the server's --host-lost-after.
	fleetTTL = 5 * time.Second
)

// BenchmarkPlacement1000Hosts measures the control plane of cluster mode
// on a fleet of 1000 simulated hosts: host records written to a real etcd
// through etcdstore, each kept alive by its own heartbeat lease, and no
// agent (no group ever runs). A real server in cluster mode (in this
// process, servercmd.Start with --agent=false) takes fleetGroups PUTs
// from fleetInFlight clients at once; a group counts as placed once its
// store record names a host, as a watch of the store sees it. It reports
// groups accepted per second (first PUT to last answer) and placed per
// second (first PUT to last placement) (goal: 500/s), then the scheduler
// alone placing the same groups on the same hosts (goal: 5000/s).
//
// etcd is internal/testenv/etcd's, which runs with --unsafe-no-fsync: a
// write is acknowledged before it reaches the disk, so the numbers leave
// out etcd's fsync (on a real disk a few ms per batch of writes).
func BenchmarkPlacement1000Hosts(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	etcd := etcdenv.Start(b)
	dataDir := b.TempDir()
	// The server finds the key here and opens what this store wrote.
	sealer, err := seal.LoadOrCreateKey(filepath.Join(dataDir, "seal.key"))
	if err != nil {
		b.Fatal(err)
	}
	st, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: etcd.Endpoints, Sealer: sealer})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	hosts := simulateFleet(ctx, b, st)

	run, err := servercmd.Start(ctx, servercmd.Options{Store: "etcd", EtcdEndpoints: etcd.Endpoints, NoAgent: true,
		DataDir: dataDir, Listen: "127.0.0.1:0", Quiet: true, LogLevel: "error", HostLostAfter: fleetTTL})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		cancel()
		if err := run.Wait(); err != nil && !errors.Is(err, context.Canceled) {
			b.Logf("server: %v", err)
		}
	}()
	// 32 clients at once: keep as many connections open (the default
	// transport keeps 2 and would open and close the rest per request).
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = fleetInFlight
	// RespondAsync: the fleet's fake hosts run nothing, and what is
	// measured is how fast the API accepts and the scheduler places, not a
	// PUT's wait for a group to run (which would hold each client for the
	// server's whole sync window).
	c, err := client.New(client.Options{Endpoint: run.Endpoint, Token: run.Token, Subscription: run.Subscription,
		HTTPClient: &http.Client{Transport: tr}, RespondAsync: true})
	if err != nil {
		b.Fatal(err)
	}
	for i := range fleetRGs {
		if _, err := c.CreateResourceGroup(ctx, fmt.Sprint("fleet", i), api.ResourceGroup{Location: "local"}); err != nil {
			b.Fatal(err)
		}
	}
	w := watchPlacements(ctx, b, st, run.Subscription)
	// One group first, untimed: the server has won its election and its
	// controller has read the fleet once this one is placed.
	if err := putFleetGroup(ctx, c, "fleet0", "warm"); err != nil {
		b.Fatal(err)
	}
	w.wait(b, 1, time.Minute)

	var accepted atomic.Int64
	var lastAccept atomic.Int64 // UnixNano
	errc := make(chan error, fleetInFlight)
	start := time.Now()
	var wg sync.WaitGroup
	for worker := range fleetInFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := worker; i < fleetGroups; i += fleetInFlight {
				if err := putFleetGroup(ctx, c, fmt.Sprint("fleet", i%fleetRGs), fmt.Sprint("g", i)); err != nil {
					errc <- err
					return
				}
				accepted.Add(1)
				lastAccept.Store(time.Now().UnixNano())
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		b.Fatal(err)
	default:
	}
	lastPlaced := w.wait(b, fleetGroups+1, 2*time.Minute)
	acceptSecs := time.Unix(0, lastAccept.Load()).Sub(start).Seconds()
	placeSecs := lastPlaced.Sub(start).Seconds()

	// What a user would notice: every group on a host of the fleet, none
	// over what its host offers.
	perHost := w.perHost()
	most := 0
	for h, n := range perHost {
		if _, ok := hosts[h]; !ok {
			b.Fatalf("a group was placed on %q, which is not a host of the fleet", h)
		}
		if n > fleetHostCPU {
			b.Fatalf("host %s holds %d groups of one core each; it offers %d cores", h, n, fleetHostCPU)
		}
		most = max(most, n)
	}

	schedRate := scheduleFleet(b, hosts)
	fmt.Printf("\nplacement on %d simulated hosts (heartbeat leases, no agents), real etcd (--unsafe-no-fsync), in-process server\n", fleetHosts)
	fmt.Printf("%d groups PUT by %d clients at once: accepted %.0f/s (%.2f s), placed %.0f/s (%.2f s, first PUT to last placement; goal >= 500/s)\n",
		accepted.Load(), fleetInFlight, float64(fleetGroups)/acceptSecs, acceptSecs, float64(fleetGroups)/placeSecs, placeSecs)
	fmt.Printf("groups on %d hosts, at most %d on one\n", len(perHost), most)
	fmt.Printf("scheduler alone on the same fleet and groups: %.0f placements/s (goal >= 5000/s)\n", schedRate)
	testenv.BenchRow(fmt.Sprintf("groups accepted and placed/s, %d simulated hosts", fleetHosts), fmt.Sprintf("%.0f/s", float64(fleetGroups)/placeSecs), "-", 0, ">= 500/s (issue 11)")
	testenv.BenchRow("scheduler alone, placements/s", fmt.Sprintf("%.0f/s", schedRate), "-", 0, ">= 5000/s (issue 11)")
	b.ReportMetric(float64(fleetGroups)/acceptSecs, "accepted/s")
	b.ReportMetric(float64(fleetGroups)/placeSecs, "placed/s")
	b.ReportMetric(schedRate, "scheduler-placements/s")
}

// simulateFleet writes the fleet's host records, Ready, and keeps each
// alive with a heartbeat of its own until ctx ends. It returns once every
// host reads Alive, with the records by name.
func simulateFleet(ctx context.Context, b *testing.B, st *etcdstore.Store) map[string]store.Host {
	b.Helper()
	now := time.Now().UTC()
	hosts := make(map[string]store.Host, fleetHosts)
	for i := range fleetHosts {
		res := store.Resources{CPU: fleetHostCPU, MemoryGB: fleetHostMemGB}
		h := store.Host{Name: fmt.Sprintf("sim-%04d", i), OSType: "Linux", Zone: fmt.Sprint(1 + i%3),
			PublicAddress: "127.0.0.1", Capacity: res, Allocatable: res, State: store.HostReady, JoinedAt: now, UpdatedAt: now}
		hosts[h.Name] = h
	}
	names := make(chan string)
	errc := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range names {
				if err := st.PutHost(ctx, hosts[name]); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	for name := range hosts {
		names <- name
		// An agent's heartbeat: begun again when its lease is lost, until
		// the benchmark ends.
		go func() {
			for ctx.Err() == nil {
				if err := st.Heartbeat(ctx, name, fleetTTL); err != nil && ctx.Err() == nil {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	close(names)
	wg.Wait()
	select {
	case err := <-errc:
		b.Fatalf("write the fleet's hosts: %v", err)
	default:
	}
	deadline := time.Now().Add(time.Minute)
	for {
		list, err := st.ListHosts(ctx)
		alive := 0
		for _, h := range list {
			if h.Alive {
				alive++
			}
		}
		if err == nil && alive == fleetHosts {
			return hosts
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d simulated hosts alive after a minute (%v)", alive, fleetHosts, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// putFleetGroup PUTs a one-container group of one core and one GB.
func putFleetGroup(ctx context.Context, c *client.Client, rg, name string) error {
	cg := &api.ContainerGroup{Location: "local", Properties: api.ContainerGroupProperties{OSType: "Linux", Containers: []api.Container{{
		Name: "app", Properties: api.ContainerProperties{Image: "busybox", Command: []string{"sleep", "3600"},
			Resources: api.ResourceRequirements{Requests: api.ResourceRequests{CPU: 1, MemoryInGB: 1}}},
	}}}}
	if _, _, err := c.CreateOrUpdateContainerGroup(ctx, rg, name, cg); err != nil {
		return fmt.Errorf("PUT %s/%s: %w", rg, name, err)
	}
	return nil
}

// placements follows the groups of a subscription through a watch of the
// store: each change of a group not yet placed is read (by a few readers
// at once) until the record names its host.
type placements struct {
	mu     sync.Mutex
	placed map[string]string // group key → host
	last   time.Time         // when the newest placement was seen
	cond   *sync.Cond
}

func watchPlacements(ctx context.Context, b *testing.B, st *etcdstore.Store, sub string) *placements {
	p := &placements{placed: map[string]string{}}
	p.cond = sync.NewCond(&p.mu)
	sub = strings.ToLower(sub) // as changes name it
	changes := st.Watch(ctx)
	reads := make(chan store.Change, fleetGroups*4)
	go func() {
		for ch := range changes {
			if ch.Kind != store.ContainerGroupChange || ch.Subscription != sub {
				continue
			}
			p.mu.Lock()
			_, done := p.placed[ch.ResourceGroup+"/"+ch.Name]
			p.mu.Unlock()
			if !done {
				reads <- ch
			}
		}
		close(reads)
	}()
	for range 4 {
		go func() {
			for ch := range reads {
				cg, err := st.GetContainerGroup(ctx, ch.Subscription, ch.ResourceGroup, ch.Name)
				if err != nil || cg.Host == "" {
					continue // not placed yet: its placement is a change of its own
				}
				p.mu.Lock()
				if _, ok := p.placed[ch.ResourceGroup+"/"+ch.Name]; !ok {
					p.placed[ch.ResourceGroup+"/"+ch.Name] = cg.Host
					p.last = time.Now()
					p.cond.Broadcast()
				}
				p.mu.Unlock()
			}
		}()
	}
	return p
}

// wait waits until n groups are placed and returns when the last was.
func (p *placements) wait(b *testing.B, n int, timeout time.Duration) time.Time {
	b.Helper()
	timer := time.AfterFunc(timeout, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(timeout)
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.placed) < n {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d groups placed after %s", len(p.placed), n, timeout)
		}
		p.cond.Wait()
	}
	return p.last
}

// perHost counts the placed groups of each host.
func (p *placements) perHost() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := map[string]int{}
	for _, h := range p.placed {
		n[h]++
	}
	return n
}

// scheduleFleet places the benchmark's groups on the fleet with the
// scheduler alone, as the controller's does, fleetGroups at a time and
// over again (each round on an empty fleet) for at least a second, and
// returns the placements per second.
func scheduleFleet(b *testing.B, hosts map[string]store.Host) float64 {
	b.Helper()
	s := scheduler.New()
	for _, h := range hosts {
		h.Alive = true
		s.SetHost(h)
	}
	reqs := make([]scheduler.Request, fleetGroups)
	for i := range reqs {
		rg := fmt.Sprint("fleet", i%fleetRGs)
		reqs[i] = scheduler.Request{Key: scheduler.KeyOf("sub", rg, fmt.Sprint("g", i)), ResourceGroup: "sub/" + rg, CPU: 1, MemoryGB: 1, OSType: "Linux"}
	}
	n := 0
	start := time.Now()
	for time.Since(start) < time.Second {
		for _, r := range reqs {
			if _, err := s.Schedule(r); err != nil {
				b.Fatalf("schedule %s: %v", r.Key, err)
			}
		}
		for _, r := range reqs {
			s.Unassign(r.Key)
		}
		n += len(reqs)
	}
	// The unassigns are timed too: they are a small part of a round.
	return float64(n) / time.Since(start).Seconds()
}
