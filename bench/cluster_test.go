package bench

// The cluster mode's benchmarks (issue 11), each against its goal:
//
//   - BenchmarkClusterCreateToRunning: create→Running through the API on a
//     cluster (etcd, a server without an agent, one `skiff agent`) against
//     the embedded mode, interleaved in one run (goal: cluster p50 at most
//     1.5x embedded);
//   - BenchmarkPlacement1000Hosts (placement_test.go): groups accepted and
//     placed per second on a simulated fleet of 1000 hosts, and the
//     scheduler alone on the same fleet (goals: 500/s and 5000/s);
//   - BenchmarkRecoveryAgentKill (recovery_test.go): from an agent's
//     kill -9 to all its groups Running on other hosts (goal: 10 s at p99).

import (
	"context"
	"fmt"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// clusterSamples is how many groups each side of
// BenchmarkClusterCreateToRunning creates.
const clusterSamples = 20

// The hosts' networks of this file's benchmarks, which run one after the
// other: each host of one benchmark has its own, and every benchmark
// removes its bridges at its end.
var benchNets = [...]struct{ bridge, subnet string }{
	{"skbn1", "10.231.0.0/16"},
	{"skbn2", "10.232.0.0/16"},
	{"skbn3", "10.233.0.0/16"},
}

// dist is a sample's distribution (nearest rank).
type dist struct{ p50, p90, p99, max time.Duration }

func distOf(d []time.Duration) dist {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	q := func(p float64) time.Duration { return s[int(p*float64(len(s)-1)+0.5)] }
	return dist{q(0.5), q(0.9), q(0.99), s[len(s)-1]}
}

// ms is d in milliseconds, for b.ReportMetric.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// skiffBinary builds the skiff binary (and skiff-shim beside it) for one
// benchmark.
func skiffBinary(b *testing.B) string {
	b.Helper()
	bin, dir, err := testenv.BuildSkiff()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return bin
}

// benchImage serves a busybox image that sleeps from a loopback registry
// and returns its reference.
func benchImage(b *testing.B) string {
	b.Helper()
	reg := testenv.StartRegistry(b, testenv.RegistryOptions{})
	img := testenv.BusyboxImage(b, testenv.ImageOptions{Cmd: []string{"sleep", "3600"}})
	return testenv.Push(b, reg, "bench/busybox:1", img)
}

// prepare creates the resource group "bench" and pulls ref onto every
// Ready host, so that create→Running never includes a pull.
func prepare(b *testing.B, c *client.Client, ref string) {
	b.Helper()
	ctx := context.Background()
	if _, err := c.CreateResourceGroup(ctx, "bench", api.ResourceGroup{Location: "local"}); err != nil {
		b.Fatal(err)
	}
	if _, err := c.PullImage(ctx, "local", client.PullRequest{Image: ref}, nil); err != nil {
		b.Fatalf("pre-pull: %v", err)
	}
}

// BenchmarkClusterCreateToRunning times create→Running (the PUT until GET
// shows instanceView Running, as BenchmarkAPICreateToRunning does) of the
// same one-container group on the same cached image in the embedded mode
// (`skiff server`, bbolt, the in-process agent) and in cluster mode (a real
// etcd, `skiff server --store etcd --agent=false`, one `skiff agent`).
// Both run at once and the samples alternate between them, so that what
// else the machine does falls on both alike; each group is deleted before
// the next is created. It reports p50 and p90 of each side and the ratio
// cluster/embedded (goal: p50 at most 1.5x).
func BenchmarkClusterCreateToRunning(b *testing.B) {
	testenv.RequireRoot(b)
	ref := benchImage(b)
	bin := skiffBinary(b)
	embedded := testenv.StartSkiffServer(b, testenv.SkiffServerOptions{Binary: bin, LogLevel: "error", StopGrace: time.Second,
		Bridge: benchNets[0].bridge, Subnet: benchNets[0].subnet, RemoveBridge: true})
	cluster := testenv.StartSkiffServer(b, testenv.SkiffServerOptions{Binary: bin, LogLevel: "error", StopGrace: time.Second,
		Bridge: benchNets[1].bridge, Subnet: benchNets[1].subnet, RemoveBridge: true, Cluster: true})
	sides := []*testenv.SkiffServer{embedded, cluster}
	for _, s := range sides {
		prepare(b, s.Client, ref)
	}
	// One group each first: the first create on a host sets up what
	// later ones reuse (the bridge, the first network namespace).
	for _, s := range sides {
		createRunning(b, s.Client, "warm", ref)
		deleteAndWait(b, s.Client, "warm")
	}
	lat := make([][]time.Duration, len(sides))
	for i := range clusterSamples {
		for j, s := range sides {
			name := fmt.Sprintf("lat%d", i)
			lat[j] = append(lat[j], createRunning(b, s.Client, name, ref))
			deleteAndWait(b, s.Client, name)
		}
	}
	e, c := distOf(lat[0]), distOf(lat[1])
	fmt.Printf("\ncreate→Running through the API (PUT until instanceView Running), %d samples each, interleaved, cached image\n", clusterSamples)
	fmt.Printf("%-34s %10s %10s %10s\n", "", "p50", "p90", "max")
	for _, r := range []struct {
		name string
		d    dist
	}{{"embedded (bbolt, in-process agent)", e}, {"cluster (etcd, server + 1 agent)", c}} {
		fmt.Printf("%-34s %10s %10s %10s\n", r.name, r.d.p50.Round(100*time.Microsecond), r.d.p90.Round(100*time.Microsecond), r.d.max.Round(100*time.Microsecond))
	}
	ratio50, ratio90 := float64(c.p50)/float64(e.p50), float64(c.p90)/float64(e.p90)
	fmt.Printf("cluster/embedded  p50 %.2fx  p90 %.2fx  (goal: p50 <= 1.5x)\n", ratio50, ratio90)
	testenv.BenchRow("cluster-mode API create->Running p50 vs embedded", c.p50.Round(100*time.Microsecond).String(),
		e.p50.Round(100*time.Microsecond).String(), ratio50, "<= 1.5x (issue 11)")
	b.ReportMetric(ms(e.p50), "embedded-p50-ms")
	b.ReportMetric(ms(e.p90), "embedded-p90-ms")
	b.ReportMetric(ms(c.p50), "cluster-p50-ms")
	b.ReportMetric(ms(c.p90), "cluster-p90-ms")
	b.ReportMetric(ratio50, "cluster/embedded-p50")
	b.ReportMetric(ratio90, "cluster/embedded-p90")
}
