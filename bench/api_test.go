package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
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
	// The CLI as a user runs it: `skiff container create` returns once the
	// group runs; `skiff container delete --yes` once it is gone.
	var cliCreate, cliDelete []time.Duration
	env := append(os.Environ(), "SKIFF_ENDPOINT="+s.Endpoint, "SKIFF_DATA_DIR="+s.DataDir)
	skiff := func(args ...string) time.Duration {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("skiff %v: %v %s", args, err, out)
		}
		return time.Since(start)
	}
	for i := 0; i < samples; i++ {
		name := fmt.Sprintf("cli%d", i)
		cliCreate = append(cliCreate, skiff("container", "create", "-g", "bench", "-n", name, "--image", ref,
			"--command-line", "sleep 3600", "--cpu", "0.1", "--memory", "0.1", "-o", "none"))
		// --grace-period 0, as podman rm -f -t 0 (sleep as PID 1 ignores
		// SIGTERM: a grace period would be waited out whole).
		cliDelete = append(cliDelete, skiff("container", "delete", "-g", "bench", "-n", name, "--yes", "--grace-period", "0", "-o", "none"))
	}

	// podman runs on a host without Skiff's groups.
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	if err := s.DeleteResourceGroups(dctx); err != nil {
		b.Logf("delete the benchmark's groups: %v", err)
	}
	cancel()

	pod, podRm := podmanRunRm(b, img, samples)
	ra, rp := percentiles("skiff API", viaAPI), percentiles("podman run -d", pod)
	rc, rd, rpr := percentiles("skiff create", cliCreate), percentiles("skiff delete", cliDelete), percentiles("podman rm -f", podRm)
	fmt.Printf("\n%-44s %10s %10s %7s %s\n", "metric (p50)", "Skiff", "peer", "ratio", "goal (issue 14)")
	row := func(metric string, skiff, peer time.Duration, goal string) {
		fmt.Printf("%-44s %10s %10s %6.2fx %s\n", metric, skiff.Round(100*time.Microsecond), peer.Round(100*time.Microsecond),
			float64(skiff)/float64(peer), goal)
	}
	row("API create→Running vs podman run -d", ra.p50, rp.p50, "≤ 0.35x")
	row("skiff container create vs podman run -d", rc.p50, rp.p50, "≤ 0.5x")
	row("skiff container delete vs podman rm -f", rd.p50, rpr.p50, "≤ 0.5x")
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
	b.ReportMetric(float64(rc.p50)/float64(rp.p50), "cli-create/podman-p50")
	b.ReportMetric(float64(rd.p50)/float64(rpr.p50), "cli-delete/podman-rm-p50")
}
