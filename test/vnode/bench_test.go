package vnode

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/testenv"
)

// benchReplicas is the size of the Deployment BenchmarkDeployment100 rolls out.
const benchReplicas = 100

// BenchmarkDeployment100 measures how fast the virtual node brings up a
// Deployment of 100 replicas through a real control plane and a real Skiff
// server, with the image already in Skiff's cache: from `kubectl apply` until
// the Deployment reports 100 Ready replicas. Per pod it reports creation→Running
// (metadata.creationTimestamp to the container's state.running.startedAt) and
// creation→Ready (to the Ready condition's lastTransitionTime); both ends of
// those come from the API server with one-second resolution.
func BenchmarkDeployment100(b *testing.B) {
	e := setup(b)

	// Pre-pull: one pod with the image, so the rollout runs from Skiff's cache.
	e.apply(b, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: warm
  namespace: default
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: %s
    command: ["sleep", "3600"]
`, nodeName, e.image))
	e.waitPhase(b, "default", "warm", "Running", 120*time.Second)
	e.cp.Kubectl(b, "delete", "pod", "warm", "--wait=true", "--timeout=60s")
	e.waitFor(b, 60*time.Second, "warm-up group removed", func() (bool, string) {
		_, code := e.getGroup("default", "warm")
		return code == 404, fmt.Sprint(code)
	})

	manifest := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: bench100
  namespace: default
spec:
  replicas: %d
  selector:
    matchLabels:
      app: bench100
  template:
    metadata:
      labels:
        app: bench100
    spec:
      nodeSelector:
        type: virtual-kubelet
      tolerations:
      - key: virtual-kubelet.io/provider
        operator: Exists
        effect: NoSchedule
      terminationGracePeriodSeconds: 5
      containers:
      - name: app
        image: %s
        command: ["sleep", "3600"]
        resources:
          requests:
            cpu: 10m
            memory: 16Mi
`, benchReplicas, e.image)

	countGroups := func() int {
		list, _ := e.skiff.Client.ListContainerGroups(b.Context(), resourceGroup)
		n := 0
		for _, g := range list {
			if strings.HasPrefix(g.Tags["k8s-pod"], "bench100-") {
				n++
			}
		}
		return n
	}
	want := fmt.Sprintf("%d/%d", benchReplicas, benchReplicas)

	var total time.Duration
	var running, ready []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StartTimer()
		start := time.Now()
		if i == 0 {
			e.apply(b, manifest)
		} else {
			e.cp.Kubectl(b, "scale", "deployment", "bench100", fmt.Sprintf("--replicas=%d", benchReplicas))
		}
		e.waitFor(b, 12*time.Minute, want+" ready replicas", func() (bool, string) {
			out, err := e.cp.KubectlErr("get", "deployment", "bench100", "-o", "jsonpath={.status.readyReplicas}/{.status.replicas}")
			if err != nil {
				return false, err.Error()
			}
			return strings.TrimSpace(out) == want, out
		})
		total = time.Since(start)
		b.StopTimer()

		running, ready = podLatencies(b, e)
		if n := countGroups(); n != benchReplicas {
			b.Fatalf("%d container groups for %d Ready replicas", n, benchReplicas)
		}

		// Cleanup: scale to 0 and wait until every pod and group is gone.
		e.cp.Kubectl(b, "scale", "deployment", "bench100", "--replicas=0")
		e.waitFor(b, 6*time.Minute, "no bench100 pods and no bench100 groups", func() (bool, string) {
			out, _ := e.cp.KubectlErr("get", "pods", "-l", "app=bench100", "-o", "name")
			n := countGroups()
			return strings.TrimSpace(out) == "" && n == 0, fmt.Sprintf("pods %d groups %d", len(strings.Fields(out)), n)
		})
	}
	e.cp.Kubectl(b, "delete", "deployment", "bench100", "--wait=true")

	pps := float64(benchReplicas) / total.Seconds()
	fmt.Printf("BenchmarkDeployment100: %d replicas Ready in %s (%.2f pods/s)\n", benchReplicas, total.Round(time.Millisecond), pps)
	testenv.BenchRow(fmt.Sprintf("%d-replica Deployment on the virtual node, apply->all Ready", benchReplicas), total.Round(time.Millisecond).String(), "-", 0, "<= 10s")
	fmt.Printf("  creation→Running (creationTimestamp→state.running.startedAt, 1s resolution): p50 %s p99 %s max %s\n",
		pct(running, 0.50), pct(running, 0.99), pct(running, 1))
	fmt.Printf("  creation→Ready (creationTimestamp→Ready lastTransitionTime, 1s resolution): p50 %s p99 %s max %s\n",
		pct(ready, 0.50), pct(ready, 0.99), pct(ready, 1))
	b.ReportMetric(total.Seconds(), "total-s")
	b.ReportMetric(pps, "pods/s")
	b.ReportMetric(float64(pct(running, 0.50).Milliseconds()), "p50-running-ms")
	b.ReportMetric(float64(pct(running, 0.99).Milliseconds()), "p99-running-ms")
	b.ReportMetric(float64(pct(ready, 0.50).Milliseconds()), "p50-ready-ms")
	b.ReportMetric(float64(pct(ready, 0.99).Milliseconds()), "p99-ready-ms")
}

// podLatencies returns, for every bench100 pod, creation→running and
// creation→Ready as the API server recorded them.
func podLatencies(b *testing.B, e *env) (running, ready []time.Duration) {
	b.Helper()
	out := e.cp.Kubectl(b, "get", "pods", "-l", "app=bench100", "-o", "json")
	var list struct {
		Items []struct {
			Metadata struct {
				Name              string    `json:"name"`
				CreationTimestamp time.Time `json:"creationTimestamp"`
			} `json:"metadata"`
			Status struct {
				ContainerStatuses []struct {
					State struct {
						Running *struct {
							StartedAt time.Time `json:"startedAt"`
						} `json:"running"`
					} `json:"state"`
				} `json:"containerStatuses"`
				Conditions []struct {
					Type               string    `json:"type"`
					Status             string    `json:"status"`
					LastTransitionTime time.Time `json:"lastTransitionTime"`
				} `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		b.Fatal(err)
	}
	if len(list.Items) != benchReplicas {
		phases, _ := e.cp.KubectlErr("get", "pods", "-l", "app=bench100", "--no-headers", "-o",
			"custom-columns=NAME:.metadata.name,PHASE:.status.phase,REASON:.status.reason,MSG:.status.message,DEL:.metadata.deletionTimestamp")
		warnings, _ := e.cp.KubectlErr("get", "events", "--field-selector", "type=Warning", "-o",
			`jsonpath={range .items[*]}{.involvedObject.name} {.reason}: {.message}{"\n"}{end}`)
		b.Fatalf("%d bench100 pods, want %d:\n%s\nwarnings:\n%s", len(list.Items), benchReplicas, phases, warnings)
	}
	for _, p := range list.Items {
		cs := p.Status.ContainerStatuses
		if len(cs) != 1 || cs[0].State.Running == nil || cs[0].State.Running.StartedAt.IsZero() {
			b.Fatalf("pod %s: container not running with a start time: %+v", p.Metadata.Name, cs)
		}
		running = append(running, cs[0].State.Running.StartedAt.Sub(p.Metadata.CreationTimestamp))
		found := false
		for _, c := range p.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				ready = append(ready, c.LastTransitionTime.Sub(p.Metadata.CreationTimestamp))
				found = true
			}
		}
		if !found {
			b.Fatalf("pod %s: no Ready=True condition", p.Metadata.Name)
		}
	}
	return running, ready
}

// pct returns the p-th quantile (nearest rank) of ds.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(p*float64(len(s)))) - 1
	if i < 0 {
		i = 0
	}
	return s[i]
}
