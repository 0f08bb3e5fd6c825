package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/cli/servercmd"
	"github.com/skiff-sh/skiff/internal/testenv"
)

type apiClient struct {
	endpoint, token, sub string
}

func (c *apiClient) do(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req, _ := http.NewRequest(method, c.endpoint+path+sep+"api-version=2023-05-01", rd)
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data, nil
}

func (c *apiClient) groupPath(name string) string {
	return "/subscriptions/" + c.sub + "/resourceGroups/bench/providers/Microsoft.ContainerInstance/containerGroups/" + name
}

// createRunning PUTs a group and polls GET until instanceView says Running.
func (c *apiClient) createRunning(b *testing.B, name, image string) time.Duration {
	body := map[string]any{"location": "local", "properties": map[string]any{"osType": "Linux", "containers": []any{
		map[string]any{"name": "app", "properties": map[string]any{"image": image, "command": []string{"sleep", "3600"},
			"resources": map[string]any{"requests": map[string]any{"cpu": 0.1, "memoryInGB": 0.1}}}},
	}}}
	start := time.Now()
	code, data, err := c.do("PUT", c.groupPath(name), body)
	if err != nil || code != 201 {
		b.Fatalf("PUT %s: %d %v %s", name, code, err, data)
	}
	for {
		_, data, err := c.do("GET", c.groupPath(name), nil)
		if err != nil {
			b.Fatal(err)
		}
		var cg struct {
			Properties struct {
				ProvisioningState string
				InstanceView      *struct{ State string }
			}
		}
		json.Unmarshal(data, &cg)
		if iv := cg.Properties.InstanceView; iv != nil && iv.State == "Running" {
			return time.Since(start)
		}
		if cg.Properties.ProvisioningState == "Failed" {
			b.Fatalf("%s failed: %s", name, data)
		}
		if time.Since(start) > time.Minute {
			b.Fatalf("%s not Running after a minute: %s", name, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *apiClient) deleteAndWait(b *testing.B, name string) {
	c.do("DELETE", c.groupPath(name), nil)
	for i := 0; i < 600; i++ {
		if code, _, _ := c.do("GET", c.groupPath(name), nil); code == 404 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("%s not deleted", name)
}

// BenchmarkAPICreateToRunning times create→Running through the HTTP API
// (PUT until GET shows instanceView Running) against `podman run -d`, and
// measures sustained creates per second with 10 concurrent clients.
func BenchmarkAPICreateToRunning(b *testing.B) {
	testenv.RequireRoot(b)
	reg := testenv.StartRegistry(b, testenv.RegistryOptions{})
	img := testenv.BusyboxImage(b, testenv.ImageOptions{Cmd: []string{"sleep", "3600"}})
	ref := testenv.Push(b, reg, "bench/busybox:1", img)
	dataDir := b.TempDir()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- servercmd.Run(ctx, servercmd.Options{Listen: addr, DataDir: dataDir, PublicAddress: "127.0.0.1",
			Location: "local", Runtime: "runc", LogLevel: "error", StopGrace: time.Second, UsernsRemap: "default"})
	}()
	stopped := false
	defer func() {
		cancel()
		if !stopped {
			<-done
		}
	}()
	c := &apiClient{endpoint: "http://" + addr}
	for i := 0; ; i++ {
		if resp, err := http.Get(c.endpoint + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-done:
			stopped = true
			b.Fatalf("server stopped: %v", err)
		default:
		}
		if i > 300 {
			b.Fatal("server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	tok, _ := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	c.token = strings.TrimSpace(string(tok))
	var subs struct {
		Value []struct{ SubscriptionID string }
	}
	_, data, _ := c.do("GET", "/subscriptions", nil)
	json.Unmarshal(data, &subs)
	c.sub = subs.Value[0].SubscriptionID
	c.do("PUT", "/subscriptions/"+c.sub+"/resourcegroups/bench", map[string]any{"location": "local"})
	if code, data, _ := c.do("POST", "/subscriptions/"+c.sub+"/providers/Microsoft.ContainerInstance/locations/local/images/pull", map[string]any{"image": ref}); code != 200 {
		b.Fatalf("pre-pull: %d %s", code, data)
	}

	var api []time.Duration
	for i := 0; i < samples; i++ {
		name := fmt.Sprintf("lat%d", i)
		api = append(api, c.createRunning(b, name, ref))
		c.deleteAndWait(b, name)
	}

	const clients, perClient = 10, 5
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perClient; i++ {
				c.createRunning(b, fmt.Sprintf("tp%d-%d", w, i), ref)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	rate := float64(clients*perClient) / elapsed.Seconds()
	c.do("DELETE", "/subscriptions/"+c.sub+"/resourcegroups/bench", nil)
	for i := 0; i < 1200; i++ {
		if code, _, _ := c.do("GET", "/subscriptions/"+c.sub+"/resourcegroups/bench", nil); code == 404 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	pod := podmanRun(b, img, samples)
	ra, rp := percentiles("skiff API", api), percentiles("podman run -d", pod)
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
