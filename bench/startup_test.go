// Package bench measures Skiff against its peers, side by side in one run.
//
// BenchmarkCreateToRunning times create→Running of a one-container group on
// an image that is already on the host, three ways:
//   - skiff: runtime.Create until the group's status says Running (image
//     store, overlay rootfs, CNI network namespace + IP, shim, runc);
//   - runc:  `runc run -d` of a prepared bundle, no network (the floor);
//   - podman: `podman run -d` of the same image on podman's bridge network.
//
// It prints p50 and p99 of each and the ratios skiff/runc and skiff/podman.
// Run it with `make bench` (as root).
package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/runtime/cgroup"
	"github.com/skiff-sh/skiff/internal/runtime/shim"
	"github.com/skiff-sh/skiff/internal/testenv"
)

const samples = 30

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "shim" {
		os.Exit(shim.Main(os.Args[2:], cgroup.OOMKilled))
	}
	os.Exit(m.Run())
}

type result struct {
	name     string
	p50, p99 time.Duration
}

func percentiles(name string, d []time.Duration) result {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	p := func(q float64) time.Duration { return d[int(q*float64(len(d)-1)+0.5)] }
	return result{name, p(0.5), p(0.99)}
}

func BenchmarkCreateToRunning(b *testing.B) {
	testenv.RequireRoot(b)
	reg := testenv.StartRegistry(b, testenv.RegistryOptions{})
	img := testenv.BusyboxImage(b, testenv.ImageOptions{Cmd: []string{"sleep", "3600"}})
	ref := testenv.Push(b, reg, "bench/busybox:1", img)
	dataDir := b.TempDir()
	// The supervisor the server runs: skiff-shim beside the skiff binary
	// (the test binary as `shim` would cost its whole init per container).
	bin := skiffBinary(b)

	// Skiff.
	var mu sync.Mutex
	running := map[string]chan struct{}{}
	var h *runtime.Host
	h, err := runtime.Open(context.Background(), runtime.HostOptions{
		DataDir: dataDir, PublicAddress: "127.0.0.1", BridgeName: "skbench0", Subnet: "10.214.0.0/16",
		Logger: benchLogger(), ShimCommand: runtime.DefaultShimCommand(bin), StopGrace: time.Second, IDMap: benchIDMap(b), NetworkPool: 4,
		OnChange: func(id string) {
			mu.Lock()
			ch := running[id]
			mu.Unlock()
			if ch == nil {
				return
			}
			if st, err := h.Status(id); err == nil && st.State == api.GroupRunning {
				mu.Lock()
				if running[id] != nil {
					close(ch)
					running[id] = nil
				}
				mu.Unlock()
			}
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		h.Close()
		_ = h.Network.Destroy(context.Background())
	}()
	if _, err := h.Images.Pull(context.Background(), ref, nil, nil); err != nil {
		b.Fatal(err)
	}
	spec := runtime.GroupSpec{Name: "bench", Properties: api.ContainerGroupProperties{Containers: []api.Container{{
		Name: "app", Properties: api.ContainerProperties{Image: ref,
			Resources: api.ResourceRequirements{Requests: api.ResourceRequests{CPU: 1, MemoryInGB: 0.5}}},
	}}}}
	var skiff []time.Duration
	for i := 0; i < samples; i++ {
		id := "bench" + strconv.Itoa(i)
		ch := make(chan struct{})
		mu.Lock()
		running[id] = ch
		mu.Unlock()
		start := time.Now()
		if err := h.Create(context.Background(), id, spec); err != nil {
			b.Fatal(err)
		}
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			st, _ := h.Status(id)
			b.Fatalf("group %s not Running after 30s: %+v", id, st)
		}
		skiff = append(skiff, time.Since(start))
		if err := h.Delete(context.Background(), id, -1); err != nil {
			b.Fatal(err)
		}
	}

	// Bare runc on the same image.
	bare := runcRun(b, img, samples)

	pod := podmanRun(b, img, samples)

	rs := []result{percentiles("skiff", skiff), percentiles("runc run -d", bare), percentiles("podman run -d", pod)}
	fmt.Printf("\ncreate→Running, %d samples each, image already on the host\n", samples)
	fmt.Printf("%-14s %10s %10s\n", "", "p50", "p99")
	for _, r := range rs {
		fmt.Printf("%-14s %10s %10s\n", r.name, r.p50.Round(100*time.Microsecond), r.p99.Round(100*time.Microsecond))
	}
	ratio := func(a, b time.Duration) float64 { return float64(a) / float64(b) }
	fmt.Printf("skiff/runc    p50 %.2fx  p99 %.2fx\n", ratio(rs[0].p50, rs[1].p50), ratio(rs[0].p99, rs[1].p99))
	fmt.Printf("skiff/podman  p50 %.2fx  p99 %.2fx\n", ratio(rs[0].p50, rs[2].p50), ratio(rs[0].p99, rs[2].p99))
	testenv.BenchRow("runtime create->Running p50 (no API) vs runc run -d", rs[0].p50.Round(100*time.Microsecond).String(),
		rs[1].p50.Round(100*time.Microsecond).String(), ratio(rs[0].p50, rs[1].p50), "-")
	b.ReportMetric(float64(rs[0].p50.Microseconds())/1000, "skiff-p50-ms")
	b.ReportMetric(ratio(rs[0].p50, rs[1].p50), "skiff/runc-p50")
	b.ReportMetric(ratio(rs[0].p50, rs[2].p50), "skiff/podman-p50")
}

// benchLogger logs the runtime's steps at debug level (how long each
// group's prepare and each container's start took) when SKIFF_BENCH_DEBUG
// is set, for profiling what the benchmark measures.
func benchLogger() *slog.Logger {
	if os.Getenv("SKIFF_BENCH_DEBUG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
