package virtualnode

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/skiff-sh/skiff/api"
)

// An answer of the Skiff metrics route split by containerName, as the
// server writes it: "app" has every metric, "side" no CPU rate yet,
// "gone" no memory point (left out), and a group-level series is ignored.
const monitorAnswer = `{"cost":0,"timespan":"x","interval":"PT1M","value":[
 {"name":{"value":"CpuUsage"},"unit":"Count","timeseries":[
   {"metadatavalues":[{"name":{"value":"containername"},"value":"app"}],"data":[{"timeStamp":"2025-03-01T10:00:01.5Z","average":950.5}]},
   {"metadatavalues":[{"name":{"value":"containername"},"value":"side"}],"data":[]},
   {"metadatavalues":[],"data":[{"timeStamp":"2025-03-01T10:00:01.5Z","average":99999}]}]},
 {"name":{"value":"CpuUsageTotal"},"unit":"Seconds","timeseries":[
   {"metadatavalues":[{"name":{"value":"containername"},"value":"app"}],"data":[{"timeStamp":"2025-03-01T10:00:01.5Z","average":12.25}]},
   {"metadatavalues":[{"name":{"value":"containername"},"value":"side"}],"data":[{"timeStamp":"2025-03-01T10:00:01Z","average":0.5}]},
   {"metadatavalues":[{"name":{"value":"containername"},"value":"gone"}],"data":[{"timeStamp":"2025-03-01T10:00:01Z","average":3}]}]},
 {"name":{"value":"MemoryUsage"},"unit":"Bytes","timeseries":[
   {"metadatavalues":[{"name":{"value":"containername"},"value":"app"}],"data":[{"timeStamp":"2025-03-01T10:00:01.5Z","average":1048576}]},
   {"metadatavalues":[{"name":{"value":"containername"},"value":"side"}],"data":[{"timeStamp":"2025-03-01T10:00:01Z","average":2048}]}]},
 {"name":{"value":"MemoryCgroupUsage"},"unit":"Bytes","timeseries":[
   {"metadatavalues":[{"name":{"value":"containername"},"value":"app"}],"data":[{"timeStamp":"2025-03-01T10:00:01.5Z","average":2097152}]},
   {"metadatavalues":[{"name":{"value":"containername"},"value":"side"}],"data":[{"timeStamp":"2025-03-01T10:00:01Z","average":4096}]}]}
]}`

// parseUsage decodes a metrics answer as the client does and reads the
// usage in it. (That a body which is not JSON is an error of class
// ErrUnavailable is the client's to test.)
func parseUsage(body string) ([]containerUsage, error) {
	var r api.MetricsResponse
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return nil, err
	}
	return usageOf(&r), nil
}

func TestParseUsage(t *testing.T) {
	got, err := parseUsage(monitorAnswer)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "app" || got[1].Name != "side" {
		t.Fatalf("containers = %+v, want app and side", got)
	}
	app, side := got[0], got[1]
	at := time.Date(2025, 3, 1, 10, 0, 1, 500e6, time.UTC)
	if !app.HasRate || app.NanoCores != 950_500_000 || app.CPUNanos != 12_250_000_000 ||
		app.WorkingSetByte != 1<<20 || app.UsageBytes != 2<<20 || !app.Time.Equal(at) {
		t.Errorf("app = %+v", app)
	}
	if side.HasRate || side.CPUNanos != 500_000_000 || side.WorkingSetByte != 2048 || side.UsageBytes != 4096 {
		t.Errorf("side = %+v", side)
	}
}

func testPods(t *testing.T) ([]podUsage, time.Time) {
	t.Helper()
	cs, err := parseUsage(monitorAnswer)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	cs[0].StartTime = start.Add(time.Second)
	other := containerUsage{Name: "db", Time: start.Add(time.Hour), NanoCores: 1_000_000, HasRate: true,
		CPUNanos: 1_000_000_000, WorkingSetByte: 100, UsageBytes: 200, StartTime: start}
	return []podUsage{
		{Namespace: "default", Name: "web", UID: "u1", StartTime: start, Containers: cs},
		{Namespace: "prod", Name: "db", UID: "u2", StartTime: start.Add(time.Minute), Containers: []containerUsage{other}},
	}, start
}

func TestBuildSummary(t *testing.T) {
	pods, start := testPods(t)
	now := start.Add(2 * time.Hour)
	s := buildSummary("vn", pods, now)
	if s.Node.NodeName != "vn" || !s.Node.StartTime.Time.Equal(start) {
		t.Errorf("node = %s started %v", s.Node.NodeName, s.Node.StartTime)
	}
	if got := *s.Node.CPU.UsageNanoCores; got != 950_500_000+1_000_000 {
		t.Errorf("node nanocores = %d", got)
	}
	if got := *s.Node.CPU.UsageCoreNanoSeconds; got != 12_250_000_000+500_000_000+1_000_000_000 {
		t.Errorf("node core-nanoseconds = %d", got)
	}
	if *s.Node.Memory.WorkingSetBytes != 1<<20+2048+100 || *s.Node.Memory.UsageBytes != 2<<20+4096+200 {
		t.Errorf("node memory = %d / %d", *s.Node.Memory.WorkingSetBytes, *s.Node.Memory.UsageBytes)
	}
	if len(s.Pods) != 2 {
		t.Fatalf("pods = %+v", s.Pods)
	}
	web := s.Pods[0]
	if web.PodRef.Name != "web" || web.PodRef.Namespace != "default" || web.PodRef.UID != "u1" || len(web.Containers) != 2 {
		t.Fatalf("pod web = %+v", web)
	}
	// The pod's rate sums what is known (side has none yet).
	if *web.CPU.UsageNanoCores != 950_500_000 || *web.CPU.UsageCoreNanoSeconds != 12_750_000_000 || *web.Memory.WorkingSetBytes != 1<<20+2048 {
		t.Errorf("pod web cpu %d/%d memory %d", *web.CPU.UsageNanoCores, *web.CPU.UsageCoreNanoSeconds, *web.Memory.WorkingSetBytes)
	}
	app, side := web.Containers[0], web.Containers[1]
	if app.Name != "app" || *app.CPU.UsageNanoCores != 950_500_000 || *app.Memory.UsageBytes != 2<<20 ||
		!app.CPU.Time.Time.Equal(time.Date(2025, 3, 1, 10, 0, 1, 500e6, time.UTC)) || !app.StartTime.Time.Equal(start.Add(time.Second)) {
		t.Errorf("container app = %+v cpu %+v", app, app.CPU)
	}
	if side.CPU.UsageNanoCores != nil || *side.CPU.UsageCoreNanoSeconds != 500_000_000 {
		t.Errorf("container side cpu = %+v, want no rate and 0.5 s", side.CPU)
	}
	empty := buildSummary("vn", nil, now)
	if len(empty.Pods) != 0 || *empty.Node.CPU.UsageNanoCores != 0 || !empty.Node.StartTime.Time.Equal(now) {
		t.Errorf("summary without pods = %+v", empty)
	}
}

func TestBuildMetricFamilies(t *testing.T) {
	pods, _ := testPods(t)
	var b bytes.Buffer
	for _, f := range buildMetricFamilies(pods, false, time.Now()) {
		if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
			t.Fatalf("family %s: %v", f.GetName(), err)
		}
	}
	text := b.String()
	at := strconv.FormatInt(time.Date(2025, 3, 1, 10, 0, 1, 500e6, time.UTC).UnixMilli(), 10)
	want := []string{
		"# TYPE container_cpu_usage_seconds_total counter",
		`container_cpu_usage_seconds_total{container="app",namespace="default",pod="web"} 12.25 ` + at,
		`container_cpu_usage_seconds_total{container="db",namespace="prod",pod="db"} 1 `,
		"# TYPE container_memory_working_set_bytes gauge",
		`container_memory_working_set_bytes{container="app",namespace="default",pod="web"} 1.048576e+06 ` + at,
		`container_start_time_seconds{container="app",namespace="default",pod="web"} 1.740819601e+09`,
		`pod_cpu_usage_seconds_total{namespace="default",pod="web"} 12.75 `,
		`pod_memory_working_set_bytes{namespace="prod",pod="db"} 100 `,
		"# TYPE node_cpu_usage_seconds_total counter",
		"node_cpu_usage_seconds_total 13.75 ",
		"node_memory_working_set_bytes 1.050724e+06 ",
		"scrape_error 0",
	}
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("metrics lack %q:\n%s", w, text)
		}
	}
	// side has no start time in the pod status: no start-time sample.
	if strings.Contains(text, `container_start_time_seconds{container="side"`) {
		t.Errorf("start time of a container without one:\n%s", text)
	}
	var failed bytes.Buffer
	for _, f := range buildMetricFamilies(nil, true, time.Now()) {
		expfmt.MetricFamilyToText(&failed, f)
	}
	if !strings.Contains(failed.String(), "scrape_error 1") || !strings.Contains(failed.String(), "node_cpu_usage_seconds_total 0 ") {
		t.Errorf("metrics of a failed scrape:\n%s", failed.String())
	}
}
