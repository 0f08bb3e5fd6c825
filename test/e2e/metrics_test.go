package e2e

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/testenv"
)

// metricsResp is Azure Monitor's answer, as az monitor metrics list reads it.
type metricsResp struct {
	Timespan string `json:"timespan"`
	Interval string `json:"interval"`
	Value    []struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Name struct {
			Value          string `json:"value"`
			LocalizedValue string `json:"localizedValue"`
		} `json:"name"`
		Unit       string `json:"unit"`
		Timeseries []struct {
			Metadatavalues []struct {
				Name  struct{ Value string } `json:"name"`
				Value string                 `json:"value"`
			} `json:"metadatavalues"`
			Data []struct {
				TimeStamp string   `json:"timeStamp"`
				Average   *float64 `json:"average"`
			} `json:"data"`
		} `json:"timeseries"`
	} `json:"value"`
}

// value returns metric's average for container ("" = the group's
// timeseries without dimension); ok is false when there is no data point.
func (m *metricsResp) value(t *testing.T, metric, container string) (float64, bool) {
	t.Helper()
	for _, v := range m.Value {
		if v.Name.Value != metric {
			continue
		}
		for _, ts := range v.Timeseries {
			name := ""
			for _, md := range ts.Metadatavalues {
				if md.Name.Value == "containername" {
					name = md.Value
				}
			}
			if name == container && len(ts.Data) == 1 && ts.Data[0].Average != nil {
				return *ts.Data[0].Average, true
			}
		}
		return 0, false
	}
	t.Fatalf("response has no metric %s: %+v", metric, m)
	return 0, false
}

func (s *server) metrics(rg, group string, q url.Values) (int, []byte) {
	s.t.Helper()
	if q.Get("api-version") == "" {
		q.Set("api-version", "2018-01-01") // what az monitor metrics list sends
	}
	path := "/subscriptions/" + s.Subscription + "/resourceGroups/" + rg + "/providers/Microsoft.ContainerInstance/containerGroups/" + group +
		"/providers/Microsoft.Insights/metrics?" + q.Encode()
	r := s.send("GET", path, nil)
	return r.Status, r.Body
}

func (s *server) mustMetrics(rg, group string, q url.Values) *metricsResp {
	s.t.Helper()
	code, body := s.metrics(rg, group, q)
	if code != 200 {
		s.t.Fatalf("metrics of %s: %d %s", group, code, body)
	}
	var m metricsResp
	if err := json.Unmarshal(body, &m); err != nil {
		s.t.Fatalf("metrics of %s: %v: %s", group, err, body)
	}
	return &m
}

// TestMetricsCPUAndMemory: Azure Monitor's metrics of container groups come
// from the real cgroups: a group spinning a shell loop shows close to a core
// in CpuUsage (millicores), an idle one close to nothing; memory and the
// cumulative CPU extension are there; bad metric names and missing groups
// get ARM error envelopes.
func TestMetricsCPUAndMemory(t *testing.T) {
	s := startServer(t)
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})
	rgPath := "/subscriptions/" + s.Subscription + "/resourcegroups/metrics"
	if r := s.send("PUT", rgPath, `{"location":"local"}`); r.Status != 201 {
		t.Fatalf("rg: %d %s", r.Status, r)
	}
	cgPath := "/subscriptions/" + s.Subscription + "/resourceGroups/metrics/providers/Microsoft.ContainerInstance/containerGroups/"
	burn := groupBody(image, func(p map[string]any) {
		container0(p)["command"] = []string{"sh", "-c", "while :; do :; done"}
		delete(container0(p), "ports")
	})
	idle := groupBody(image, func(p map[string]any) { delete(container0(p), "ports") })
	for name, body := range map[string]any{"burn": burn, "idle": idle} {
		if r := s.send("PUT", cgPath+name, body); r.Status != 201 {
			t.Fatalf("create %s: %d %s", name, r.Status, r)
		}
	}
	s.waitRunning("metrics", "burn")
	s.waitRunning("metrics", "idle")

	perContainer := url.Values{"metricnames": {"CpuUsage,MemoryUsage,CpuUsageTotal"}, "$filter": {"containerName eq '*'"},
		"aggregation": {"Average"}, "interval": {"PT1M"}}
	// The first query has no earlier sample and takes two; the second
	// uses the sample the first kept.
	for round := 1; round <= 2; round++ {
		start := time.Now()
		b := s.mustMetrics("metrics", "burn", perContainer)
		took := time.Since(start)
		i := s.mustMetrics("metrics", "idle", perContainer)
		busy, ok := b.value(t, "CpuUsage", "app")
		if !ok || busy < 500 {
			t.Errorf("round %d: CpuUsage of the spinning container = %v millicores (data: %v), want > 500", round, busy, ok)
		}
		quiet, ok := i.value(t, "CpuUsage", "app")
		if !ok || quiet > 100 {
			t.Errorf("round %d: CpuUsage of the sleeping container = %v millicores (data: %v), want < 100", round, quiet, ok)
		}
		t.Logf("round %d: CpuUsage spinning %.0f, sleeping %.1f millicores (first query took %v)", round, busy, quiet, took)
		if mem, ok := b.value(t, "MemoryUsage", "app"); !ok || mem <= 0 {
			t.Errorf("round %d: MemoryUsage = %v (data: %v), want > 0", round, mem, ok)
		}
		if cum, ok := b.value(t, "CpuUsageTotal", "app"); !ok || cum <= 0.1 {
			t.Errorf("round %d: CpuUsageTotal = %v s (data: %v), want > 0.1", round, cum, ok)
		}
		if round == 2 && took > 400*time.Millisecond {
			t.Errorf("second query took %v: the kept sample was not used", took)
		}
		if v := b.Value[0]; v.Type != "Microsoft.Insights/metrics" || v.Unit != "Count" || v.Name.LocalizedValue == "" ||
			v.ID != "/subscriptions/"+s.Subscription+"/resourceGroups/metrics/providers/Microsoft.ContainerInstance/containerGroups/burn/providers/Microsoft.Insights/metrics/CpuUsage" {
			t.Errorf("CpuUsage metric header = %+v", v)
		}
		if b.Value[1].Unit != "Bytes" || b.Value[2].Unit != "Seconds" {
			t.Errorf("units = %s, %s; want Bytes, Seconds", b.Value[1].Unit, b.Value[2].Unit)
		}
		time.Sleep(time.Second)
	}

	// The CLI, in az's grammar.
	id := "/subscriptions/" + s.Subscription + "/resourceGroups/metrics/providers/Microsoft.ContainerInstance/containerGroups/burn"
	var cli metricsResp
	if err := json.Unmarshal([]byte(s.mustSkiff("monitor", "metrics", "list", "--resource", id, "--metric", "CpuUsage")), &cli); err != nil {
		t.Fatal(err)
	}
	if v, ok := cli.value(t, "CpuUsage", ""); !ok || v < 500 {
		t.Errorf("skiff monitor metrics list: CpuUsage = %v (data: %v), want > 500", v, ok)
	}
	table := s.mustSkiff("monitor", "metrics", "list", "-g", "metrics", "--resource", "burn", "--metrics", "CpuUsage", "MemoryUsage", "--dimension", "containerName", "-o", "table")
	if !strings.Contains(table, "CPU Usage") || !strings.Contains(table, "Memory Usage") || !strings.Contains(table, "app") {
		t.Errorf("table output:\n%s", table)
	}
	if _, errOut, code := s.skiff("monitor", "metrics", "list", "--resource", id, "--metric", "Bogus"); code != 2 || !strings.Contains(errOut, "InvalidMetricName") {
		t.Errorf("bad metric through the CLI: exit %d, %s", code, errOut)
	}

	// Without a filter: one timeseries without dimension, the group's sum.
	// MemoryUsage alone needs no CPU rate: no second sample.
	start := time.Now()
	g := s.mustMetrics("metrics", "burn", url.Values{"metricnames": {"MemoryUsage"}})
	if mem, ok := g.value(t, "MemoryUsage", ""); !ok || mem <= 0 || time.Since(start) > 400*time.Millisecond {
		t.Errorf("group MemoryUsage = %v (data: %v) in %v", mem, ok, time.Since(start))
	}
	if g.Interval != "PT1M" || g.Timespan == "" {
		t.Errorf("interval %q timespan %q", g.Interval, g.Timespan)
	}

	// A stopped group has no data points.
	if r := s.send("POST", cgPath+"idle/stop", nil); r.Status != 204 {
		t.Fatalf("stop: %d %s", r.Status, r)
	}
	if stopped := s.mustMetrics("metrics", "idle", perContainer); len(stopped.Value) != 3 || len(stopped.Value[0].Timeseries) != 0 {
		t.Errorf("stopped group: %+v, want three metrics without timeseries", stopped)
	}

	errCases := []struct {
		name, group string
		q           url.Values
		status      int
		code        string
	}{
		{"unknown metric", "burn", url.Values{"metricnames": {"CpuUsage,DiskIOPS"}}, 400, "InvalidMetricName"},
		{"unknown aggregation", "burn", url.Values{"metricnames": {"CpuUsage"}, "aggregation": {"Median"}}, 400, "InvalidAggregation"},
		{"missing group", "nosuch", url.Values{"metricnames": {"CpuUsage"}}, 404, "ResourceNotFound"},
		{"old api-version", "burn", url.Values{"metricnames": {"CpuUsage"}, "api-version": {"2015-01-01"}}, 400, "InvalidApiVersionParameter"},
	}
	for _, c := range errCases {
		code, body := s.metrics("metrics", c.group, c.q)
		var env struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		json.Unmarshal(body, &env)
		if code != c.status || env.Error.Code != c.code || env.Error.Message == "" {
			t.Errorf("%s: %d %s, want %d with code %s", c.name, code, body, c.status, c.code)
		}
	}
}
