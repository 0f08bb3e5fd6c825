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
	return putRunning(b, c, name, &api.ContainerGroup{Location: "local", Properties: benchGroup(image)})
}

// benchGroup is the group every benchmark creates: one sleeping container.
func benchGroup(image string) api.ContainerGroupProperties {
	return api.ContainerGroupProperties{OSType: "Linux", Containers: []api.Container{{
		Name: "app", Properties: api.ContainerProperties{Image: image, Command: []string{"sleep", "3600"},
			Resources: api.ResourceRequirements{Requests: api.ResourceRequests{CPU: 0.1, MemoryInGB: 0.1}}},
	}}}
}

// putRunning PUTs cg as group name and polls GET until instanceView says
// Running.
func putRunning(b *testing.B, c *client.Client, name string, cg *api.ContainerGroup) time.Duration {
	ctx := context.Background()
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
	bin := skiffBinary(b)
	// 1000 groups of 0.1 CPU and 0.1 GB: more than the machine, as requests
	// (sleeping groups use next to nothing).
	s := testenv.StartSkiffServer(b, testenv.SkiffServerOptions{Binary: bin, LogLevel: "error", StopGrace: time.Second,
		Flags: []string{"--cpu", "200", "--memory", "200"}})
	c := s.Client
	ctx := context.Background()
	if _, err := c.CreateResourceGroup(ctx, "bench", api.ResourceGroup{Location: "local"}); err != nil {
		b.Fatal(err)
	}
	if _, err := c.PullImage(ctx, "local", client.PullRequest{Image: ref}, nil); err != nil {
		b.Fatalf("pre-pull: %v", err)
	}

	serverPid := s.Process().Pid
	memAt0 := privateBytes(b, serverPid)
	var viaAPI []time.Duration
	for i := 0; i < samples; i++ {
		name := fmt.Sprintf("lat%d", i)
		viaAPI = append(viaAPI, createRunning(b, c, name, ref))
		deleteAndWait(b, c, name)
	}
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

	// Sustained creates: 10 clients, 300 groups, each client's next PUT
	// once its last group runs. The memory of the idle groups (the
	// server's growth and the supervisors) is read when 200 are up.
	const clients = 10
	created := 0
	createMany := func(n int) time.Duration {
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < clients; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += clients {
					createRunning(b, c, fmt.Sprintf("tp%d", created+i), ref)
				}
			}()
		}
		wg.Wait()
		created += n
		return time.Since(start)
	}
	elapsed := createMany(200)
	time.Sleep(2 * time.Second) // idle: the creates' garbage collected
	shims := supervisors(s.DataDir)
	memAt200 := privateBytes(b, serverPid) - memAt0
	for _, pid := range shims {
		memAt200 += privateBytes(b, pid)
	}
	elapsed += createMany(100)
	rate := float64(created) / elapsed.Seconds()

	// create→Running with 1000 groups running, against none (viaAPI).
	createMany(1000 - created)
	var at1000 []time.Duration
	for i := 0; i < 10; i++ {
		name := fmt.Sprintf("big%d", i)
		at1000 = append(at1000, createRunning(b, c, name, ref))
		deleteAndWait(b, c, name)
	}

	// The peers run on a host without Skiff's groups: the 1000 go first,
	// 10 deletes at a time without a grace period (sleep as PID 1 ignores
	// SIGTERM; a resource group's delete would wait out each grace).
	names := make(chan string)
	var dwg sync.WaitGroup
	zero := time.Duration(0)
	for w := 0; w < clients; w++ {
		dwg.Go(func() {
			for n := range names {
				if _, err := c.DeleteContainerGroup(ctx, "bench", n, client.DeleteOptions{GracePeriod: &zero}); err != nil {
					b.Errorf("delete %s: %v", n, err)
				}
			}
		})
	}
	for i := 0; i < created; i++ {
		names <- fmt.Sprintf("tp%d", i)
	}
	close(names)
	dwg.Wait()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	if err := s.DeleteResourceGroups(dctx); err != nil {
		b.Logf("delete the benchmark's groups: %v", err)
	}
	cancel()

	bare := runcRun(b, img, samples)
	pod, podRm := podmanRunRm(b, img, samples)
	ra, rp, rr := percentiles("skiff API", viaAPI), percentiles("podman run -d", pod), percentiles("runc run -d", bare)
	rc, rd, rpr := percentiles("skiff create", cliCreate), percentiles("skiff delete", cliDelete), percentiles("podman rm -f", podRm)
	rb := percentiles("skiff API at 1000", at1000)
	ms := func(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }
	ratio := func(a, b time.Duration) float64 { return float64(a) / float64(b) }
	testenv.BenchRow("API create->Running p50 vs runc run -d (no network)", ms(ra.p50), ms(rr.p50), ratio(ra.p50, rr.p50), "<= 1.5x")
	testenv.BenchRow("API create->Running p50 vs podman run -d", ms(ra.p50), ms(rp.p50), ratio(ra.p50, rp.p50), "<= 0.35x")
	testenv.BenchRow("skiff container create p50 vs podman run -d", ms(rc.p50), ms(rp.p50), ratio(rc.p50, rp.p50), "<= 0.5x")
	testenv.BenchRow(fmt.Sprintf("sustained creates/s, %d clients, %d groups", clients, 300), fmt.Sprintf("%.1f/s", rate), "-", 0, ">= 60/s")
	testenv.BenchRow("skiff container delete p50 vs podman rm -f", ms(rd.p50), ms(rpr.p50), ratio(rd.p50, rpr.p50), "<= 0.5x")
	testenv.BenchRow(fmt.Sprintf("private memory per idle group at 200 (%d supervisors)", len(shims)),
		fmt.Sprintf("%.2f MiB", float64(memAt200)/200/(1<<20)), "-", 0, "<= 3 MiB")
	testenv.BenchRow("API create->Running p50, 1000 groups running vs none", ms(rb.p50), ms(ra.p50), ratio(rb.p50, ra.p50), "<= 1.2x")
	fmt.Printf("\ncreate→Running through the API (PUT until instanceView Running), %d samples, cached image\n", samples)
	fmt.Printf("%-18s %10s %10s\n", "", "p50", "p99")
	for _, r := range []result{ra, rb, rr, rp} {
		fmt.Printf("%-18s %10s %10s\n", r.name, ms(r.p50), ms(r.p99))
	}
	b.ReportMetric(float64(ra.p50.Microseconds())/1000, "api-p50-ms")
	b.ReportMetric(ratio(ra.p50, rp.p50), "api/podman-p50")
	b.ReportMetric(ratio(ra.p50, rr.p50), "api/runc-p50")
	b.ReportMetric(rate, "creates/s")
	b.ReportMetric(ratio(rc.p50, rp.p50), "cli-create/podman-p50")
	b.ReportMetric(ratio(rd.p50, rpr.p50), "cli-delete/podman-rm-p50")
	b.ReportMetric(float64(memAt200)/200/(1<<20), "MiB/idle-group")
	b.ReportMetric(ratio(rb.p50, ra.p50), "at1000/at0-p50")
}
