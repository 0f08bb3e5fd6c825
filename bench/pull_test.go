package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/runtime/image"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// pullSamples is how many cold pulls each side makes.
const pullSamples = 3

// BenchmarkPull times a cold pull of a 5-layer image of about 100 MiB of
// incompressible data from a loopback docker-registry: Skiff's image store
// (download, verify, unpack; 3 layers at once) against `podman pull
// --tls-verify=false` of the same image in the same run. Then two groups
// are created on the image through the host runtime, behind a proxy that
// counts the registry's bytes: the second must download zero bytes.
func BenchmarkPull(b *testing.B) {
	testenv.RequireRoot(b)
	if _, err := exec.LookPath("podman"); err != nil {
		b.Fatalf("podman not found: %v", err)
	}
	reg := testenv.StartRegistry(b, testenv.RegistryOptions{})
	var layers []testenv.LayerSpec
	for i := 0; i < 4; i++ {
		buf := make([]byte, 26<<20)
		if _, err := rand.Read(buf); err != nil {
			b.Fatal(err)
		}
		layers = append(layers, testenv.LayerSpec{Files: map[string]string{"/data/" + strconv.Itoa(i): string(buf)}})
	}
	img := testenv.BusyboxImage(b, testenv.ImageOptions{Cmd: []string{"sleep", "3600"}, Layers: layers})
	ls, _ := img.Layers()
	var total int64
	for _, l := range ls {
		n, _ := l.Size()
		total += n
	}
	if len(ls) != 5 || total < 100<<20 {
		b.Fatalf("bench image: %d layers, %d bytes; want 5 and >= 100 MiB", len(ls), total)
	}
	ref := testenv.Push(b, reg, "bench/big:1", img)

	var skiff, pod []time.Duration
	for i := 0; i < pullSamples; i++ {
		s, err := image.NewStore(b.TempDir(), image.Options{DockerConfigPath: "/nonexistent"})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := s.Pull(context.Background(), ref, nil, nil); err != nil {
			b.Fatal(err)
		}
		skiff = append(skiff, time.Since(start))

		exec.Command("podman", "rmi", "-f", ref).Run()
		start = time.Now()
		if out, err := exec.Command("podman", "pull", "-q", "--tls-verify=false", ref).CombinedOutput(); err != nil {
			b.Fatalf("podman pull: %v %s", err, out)
		}
		pod = append(pod, time.Since(start))
		exec.Command("podman", "rmi", "-f", ref).Run()
	}
	rs := []result{percentiles("skiff", skiff), percentiles("podman pull", pod)}
	fmt.Printf("\ncold pull of %d layers, %.1f MiB compressed, %d samples each, loopback registry\n", len(ls), float64(total)/(1<<20), pullSamples)
	fmt.Printf("%-14s %10s %10s\n", "", "p50", "max")
	for _, r := range rs {
		fmt.Printf("%-14s %10s %10s\n", r.name, r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond))
	}
	ratio := float64(rs[0].p50) / float64(rs[1].p50)
	fmt.Printf("skiff/podman  p50 %.2fx\n", ratio)
	testenv.BenchRow("cold pull p50 vs podman pull", rs[0].p50.Round(time.Millisecond).String(), rs[1].p50.Round(time.Millisecond).String(), ratio, "-")
	b.ReportMetric(float64(rs[0].p50.Milliseconds()), "skiff-pull-p50-ms")
	b.ReportMetric(ratio, "skiff/podman-pull-p50")

	first, second := groupsBytes(b, reg.Addr, ref)
	fmt.Printf("registry bytes: first group %d, second group on the same image %d\n", first, second)
	if first < total || second != 0 {
		b.Errorf("first group downloaded %d bytes (image %d), second %d; want the image once, then zero", first, total, second)
	}
	b.ReportMetric(float64(second), "second-group-bytes")
}

// groupsBytes creates two groups on ref (through a byte-counting proxy in
// front of the registry) one after the other and returns the bytes the
// registry sent for each.
func groupsBytes(b *testing.B, regAddr, ref string) (first, second int64) {
	target, _ := url.Parse("http://" + regAddr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var n atomic.Int64
	proxy.ModifyResponse = func(r *http.Response) error {
		r.Body = &countingBody{ReadCloser: r.Body, n: &n}
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: proxy}
	go srv.Serve(l)
	defer srv.Close()
	ref = l.Addr().String() + ref[len(regAddr):]

	exe, _ := os.Executable()
	h, err := runtime.Open(context.Background(), runtime.HostOptions{
		DataDir: b.TempDir(), PublicAddress: "127.0.0.1", BridgeName: "skbpull0", Subnet: "10.217.0.0/16",
		ShimCommand: []string{exe, "shim"}, StopGrace: time.Second, IDMap: benchIDMap(b),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		h.Close()
		_ = h.Network.Destroy(context.Background())
	}()
	spec := runtime.GroupSpec{Name: "pull", Properties: api.ContainerGroupProperties{Containers: []api.Container{{
		Name: "app", Properties: api.ContainerProperties{Image: ref,
			Resources: api.ResourceRequirements{Requests: api.ResourceRequests{CPU: 1, MemoryInGB: 0.5}}},
	}}}}
	run := func(id string) int64 {
		before := n.Load()
		if err := h.Create(context.Background(), id, spec); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(120 * time.Second)
		for {
			st, err := h.Status(id)
			if err == nil && st.State == api.GroupRunning {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("group %s not Running: %+v %v", id, st, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		return n.Load() - before
	}
	first = run("pull1")
	second = run("pull2")
	for _, id := range []string{"pull1", "pull2"} {
		if err := h.Delete(context.Background(), id, -1); err != nil {
			b.Error(err)
		}
	}
	return first, second
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	k, err := c.ReadCloser.Read(p)
	c.n.Add(int64(k))
	return k, err
}
