package vnode

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// summaryJSON is the part of the kubelet's stats summary the test reads.
type summaryJSON struct {
	Node struct {
		NodeName string `json:"nodeName"`
		CPU      *struct {
			UsageNanoCores *uint64 `json:"usageNanoCores"`
		} `json:"cpu"`
		Memory *struct {
			WorkingSetBytes *uint64 `json:"workingSetBytes"`
		} `json:"memory"`
	} `json:"node"`
	Pods []struct {
		PodRef struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"podRef"`
		Containers []struct {
			Name string `json:"name"`
			CPU  *struct {
				UsageNanoCores       *uint64 `json:"usageNanoCores"`
				UsageCoreNanoSeconds *uint64 `json:"usageCoreNanoSeconds"`
			} `json:"cpu"`
			Memory *struct {
				WorkingSetBytes *uint64 `json:"workingSetBytes"`
			} `json:"memory"`
		} `json:"containers"`
		CPU *struct {
			UsageNanoCores *uint64 `json:"usageNanoCores"`
		} `json:"cpu"`
	} `json:"pods"`
}

// testStats: a pod spinning a shell loop on the virtual node shows its real
// usage through the kubelet API, as `kubectl top` and metrics-server read it:
// the stats summary has more than 0.1 core and a working set for the pod,
// its container and the node, and /metrics/resource has the kubelet's
// resource metric families, whose cumulative CPU grows by more than 0.1
// core-seconds per second.
func testStats(t *testing.T, e *env) {
	const pod = "burner"
	e.apply(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: default
spec:
  nodeName: %s
  containers:
  - name: burn
    image: %s
    command: ["sh", "-c", "while :; do :; done"]
    resources:
      requests: {cpu: "1", memory: 128Mi}
`, pod, nodeName, e.image))
	defer func() {
		if out, err := e.cp.KubectlErr("delete", "pod", pod, "--wait=true", "--timeout=60s"); err != nil {
			t.Errorf("delete pod %s: %v: %s", pod, err, out)
		}
	}()
	e.waitPhase(t, "default", pod, "Running", 90*time.Second)

	const minNanoCores = 100_000_000 // 0.1 core
	e.waitFor(t, 60*time.Second, "the pod's usage in the stats summary", func() (bool, string) {
		out, err := e.kubeletGet("/stats/summary")
		if err != nil {
			return false, err.Error()
		}
		var s summaryJSON
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			return false, err.Error() + ": " + out
		}
		if s.Node.NodeName != nodeName || s.Node.CPU == nil || s.Node.CPU.UsageNanoCores == nil || *s.Node.CPU.UsageNanoCores < minNanoCores ||
			s.Node.Memory == nil || s.Node.Memory.WorkingSetBytes == nil || *s.Node.Memory.WorkingSetBytes == 0 {
			return false, "node figures missing or too low: " + out
		}
		for _, p := range s.Pods {
			if p.PodRef.Name != pod || p.PodRef.Namespace != "default" {
				continue
			}
			if p.CPU == nil || p.CPU.UsageNanoCores == nil || *p.CPU.UsageNanoCores < minNanoCores || len(p.Containers) != 1 {
				return false, "pod figures missing or too low: " + out
			}
			c := p.Containers[0]
			ok := c.Name == "burn" && c.CPU != nil && c.CPU.UsageNanoCores != nil && *c.CPU.UsageNanoCores >= minNanoCores &&
				c.CPU.UsageCoreNanoSeconds != nil && *c.CPU.UsageCoreNanoSeconds > 0 &&
				c.Memory != nil && c.Memory.WorkingSetBytes != nil && *c.Memory.WorkingSetBytes > 0
			return ok, out
		}
		return false, "pod not in the summary: " + out
	})

	scrape := func() (cpu float64, at int64, wss float64, text string) {
		text, err := e.kubeletGet("/metrics/resource")
		if err != nil {
			t.Fatal(err)
		}
		labels := `{container="burn",namespace="default",pod="` + pod + `"}`
		for _, line := range strings.Split(text, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			switch f[0] {
			case "container_cpu_usage_seconds_total" + labels:
				cpu, _ = strconv.ParseFloat(f[1], 64)
				if len(f) == 3 {
					at, _ = strconv.ParseInt(f[2], 10, 64)
				}
			case "container_memory_working_set_bytes" + labels:
				wss, _ = strconv.ParseFloat(f[1], 64)
			}
		}
		return cpu, at, wss, text
	}
	cpu1, at1, _, _ := scrape()
	time.Sleep(3 * time.Second)
	cpu2, at2, wss, text := scrape()
	if at1 == 0 || at2 <= at1 {
		t.Fatalf("container_cpu_usage_seconds_total of %s missing or without a later timestamp (%d, %d):\n%s", pod, at1, at2, text)
	}
	if rate := (cpu2 - cpu1) / (float64(at2-at1) / 1000); rate < 0.1 {
		t.Errorf("container_cpu_usage_seconds_total grew %.3f → %.3f in %d ms: %.3f cores, want > 0.1\n%s", cpu1, cpu2, at2-at1, rate, text)
	}
	if wss <= 0 {
		t.Errorf("container_memory_working_set_bytes of %s = %v, want > 0\n%s", pod, wss, text)
	}
	for _, fam := range []string{"node_cpu_usage_seconds_total", "node_memory_working_set_bytes",
		`pod_cpu_usage_seconds_total{namespace="default",pod="` + pod + `"}`, `pod_memory_working_set_bytes{namespace="default",pod="` + pod + `"}`,
		`container_start_time_seconds{container="burn",namespace="default",pod="` + pod + `"}`} {
		if !strings.Contains(text, "\n"+fam+" ") {
			t.Errorf("/metrics/resource has no %s sample:\n%s", fam, text)
		}
	}
}

// kubeletGet reads path from the virtual node's kubelet API directly, as
// metrics-server does: over TLS to the node's address, verified against the
// cluster CA that signed its serving certificate, with the client
// certificate the API server uses for kubelets. (The API server's node
// proxy refuses loopback node addresses, which is all a test may use.)
func (e *env) kubeletGet(path string) (string, error) {
	cert, err := tls.LoadX509KeyPair(e.cp.KubeletClientCertFile, e.cp.KubeletClientKeyFile)
	if err != nil {
		return "", err
	}
	caPEM, err := os.ReadFile(e.cp.CAFile)
	if err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool}}}
	resp, err := c.Get("https://" + net.JoinHostPort("127.0.0.1", e.kubelet) + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return string(b), nil
}
