package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// createRunning PUTs a group and polls GET until instanceView says Running.
func createRunning(b *testing.B, c *client.Client, name, image string) time.Duration {
	ctx := context.Background()
	cg := &api.ContainerGroup{Location: "local", Properties: api.ContainerGroupProperties{OSType: "Linux", Containers: []api.Container{{
		Name: "app", Properties: api.ContainerProperties{Image: image, Command: []string{"sleep", "3600"},
			Resources: api.ResourceRequirements{Requests: api.ResourceRequests{CPU: 0.1, MemoryInGB: 0.1}}},
	}}}}
	start := time.Now()
	if _, _, err := c.CreateOrUpdateContainerGroup(ctx, "bench", name, cg); err != nil {
		b.Fatalf("PUT %s: %v", name, err)
	}
	for {
		g, err := c.GetContainerGroup(ctx, "bench", name)
		if err != nil {
			b.Fatal(err)
		}
		if iv := g.Properties.InstanceView; iv != nil && iv.State == "Running" {
			return time.Since(start)
		}
		if g.Properties.ProvisioningState == "Failed" {
			b.Fatalf("%s failed: %+v", name, g.Properties)
		}
		if time.Since(start) > time.Minute {
			b.Fatalf("%s not Running after a minute: %+v", name, g.Properties)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func deleteAndWait(b *testing.B, c *client.Client, name string) {
	ctx := context.Background()
	if _, err := c.DeleteContainerGroup(ctx, "bench", name, client.DeleteOptions{}); err != nil {
		b.Fatalf("DELETE %s: %v", name, err)
	}
	for i := 0; i < 600; i++ {
		if _, err := c.GetContainerGroup(ctx, "bench", name); errors.Is(err, client.ErrNotFound) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("%s not deleted", name)
}

// BenchmarkAPICreateToRunning times create→Running through the HTTP API
// (PUT until GET shows instanceView Running) against `podman run -d`, and
// measures sustained creates per second with 10 concurrent clients.
//
// The server is the skiff binary, started as the e2e tests start it, with
// the flags' defaults (runc, the default user namespace mapping). It used
// to run in this process (servercmd.Run); the path measured is the same
// either way (loopback HTTP, store, controller, runtime, shim, runc), and
// a server of its own process is what users run and what leaves the
// benchmark's client out of the server's heap and scheduler.
func BenchmarkAPICreateToRunning(b *testing.B) {
	testenv.RequireRoot(b)
	reg := testenv.StartRegistry(b, testenv.RegistryOptions{})
	img := testenv.BusyboxImage(b, testenv.ImageOptions{Cmd: []string{"sleep", "3600"}})
	ref := testenv.Push(b, reg, "bench/busybox:1", img)
	bin, dir, err := testenv.BuildSkiff()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	s := testenv.StartSkiffServer(b, testenv.SkiffServerOptions{Binary: bin, LogLevel: "error", StopGrace: time.Second})
	c := s.Client
	ctx := context.Background()
	if _, err := c.CreateResourceGroup(ctx, "bench", api.ResourceGroup{Location: "local"}); err != nil {
		b.Fatal(err)
	}
	if _, err := c.PullImage(ctx, "local", client.PullRequest{Image: ref}, nil); err != nil {
		b.Fatalf("pre-pull: %v", err)
	}

	var viaAPI []time.Duration
	for i := 0; i < samples; i++ {
		name := fmt.Sprintf("lat%d", i)
		viaAPI = append(viaAPI, createRunning(b, c, name, ref))
		deleteAndWait(b, c, name)
	}

	const clients, perClient = 10, 5
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perClient; i++ {
				createRunning(b, c, fmt.Sprintf("tp%d-%d", w, i), ref)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	rate := float64(clients*perClient) / elapsed.Seconds()
	// podman runs on a host without Skiff's groups.
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	if err := s.DeleteResourceGroups(dctx); err != nil {
		b.Logf("delete the benchmark's groups: %v", err)
	}
	cancel()

	pod := podmanRun(b, img, samples)
	ra, rp := percentiles("skiff API", viaAPI), percentiles("podman run -d", pod)
	fmt.Printf("\ncreate→Running through the API (PUT until instanceView Running), %d samples, cached image\n", samples)
	fmt.Printf("%-14s %10s %10s\n", "", "p50", "p99")
	for _, r := range []result{ra, rp} {
		fmt.Printf("%-14s %10s %10s\n", r.name, r.p50.Round(100*time.Microsecond), r.p99.Round(100*time.Microsecond))
	}
	fmt.Printf("skiff API/podman  p50 %.2fx  p99 %.2fx\n", float64(ra.p50)/float64(rp.p50), float64(ra.p99)/float64(rp.p99))
	fmt.Printf("sustained: %d groups created to Running by %d concurrent clients in %s = %.1f creates/s\n",
		clients*perClient, clients, elapsed.Round(time.Millisecond), rate)
	b.ReportMetric(float64(ra.p50.Microseconds())/1000, "api-p50-ms")
	b.ReportMetric(float64(ra.p50)/float64(rp.p50), "api/podman-p50")
	b.ReportMetric(rate, "creates/s")
}
