package server

import (
	"context"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/hostapi"
	"github.com/skiff-sh/skiff/internal/store"
)

// Azure Monitor's metrics of a container group
// (`az monitor metrics list --resource ID --metric CpuUsage`):
//
//	GET {containerGroupId}/providers/Microsoft.Insights/metrics
//	    ?metricnames=CpuUsage,MemoryUsage&aggregation=Average&$filter=containerName eq '*'
//
// Each answer is one fresh sample of the group's cgroups (docs/api.md).
const insightsSuffix = "/providers/microsoft.insights/metrics"

// Metric names: ACI's, and Skiff's extensions.
const (
	// MetricCPUUsage is ACI's CPU use in millicores (unit "Count"),
	// averaged since the previous sample of the container.
	MetricCPUUsage = "CpuUsage"
	// MetricMemoryUsage is ACI's memory use in bytes: the working set
	// (cgroup usage minus inactive file cache), as `kubectl top` shows it.
	MetricMemoryUsage = "MemoryUsage"
	// MetricCPUUsageTotal (extension) is the cumulative CPU time of the
	// container's current run in seconds (a counter; it starts at zero when
	// the container restarts).
	MetricCPUUsageTotal = "CpuUsageTotal"
	// MetricMemoryCgroupUsage (extension) is the cgroup's memory use in
	// bytes, page cache included.
	MetricMemoryCgroupUsage = "MemoryCgroupUsage"
)

type metricDef struct {
	name, localized, unit, description string
}

var metricDefs = []metricDef{
	{MetricCPUUsage, "CPU Usage", "Count", "CPU usage on all cores in millicores."},
	{MetricMemoryUsage, "Memory Usage", "Bytes", "Total memory usage in bytes (working set)."},
	{MetricCPUUsageTotal, "CPU Usage Total", "Seconds", "Skiff extension: cumulative CPU time of the current run in seconds."},
	{MetricMemoryCgroupUsage, "Memory Cgroup Usage", "Bytes", "Skiff extension: cgroup memory usage in bytes, page cache included."},
}

// monitorAPIVersions are the api-versions of Microsoft.Insights/metrics
// that clients send (the az CLI sends 2018-01-01, older than any
// Microsoft.ContainerInstance version).
var monitorAPIVersions = map[string]bool{
	"2016-09-01": true, "2017-05-01-preview": true, "2018-01-01": true, "2019-07-01": true,
	"2021-05-01": true, "2023-10-01": true, "2024-02-01": true,
}

// checkAPIVersion accepts Azure Monitor's api-versions on the metrics route,
// Microsoft.Authorization's on the role routes, and the ARM range
// everywhere.
func checkAPIVersion(pattern, v string) error {
	if strings.HasSuffix(pattern, insightsSuffix) && monitorAPIVersions[strings.ToLower(v)] {
		return nil
	}
	if roleAPIVersionOK(pattern, v) || deploymentAPIVersionOK(pattern, v) {
		return nil
	}
	if isStoragePattern(pattern) { // Microsoft.Storage's own range
		return api.CheckStorageAPIVersion(v)
	}
	if isStandbyPoolPattern(pattern) {
		return api.CheckStandbyPoolAPIVersion(v)
	}
	return api.CheckAPIVersion(v)
}

// CPU rates need two samples of the cumulative counter. The server keeps the
// last sample of each container; a query whose previous sample is missing,
// too recent, too old or from an earlier run takes a second sample
// cpuRateWindow after the first.
const (
	cpuRateWindow   = 500 * time.Millisecond
	cpuRateMinAge   = 250 * time.Millisecond
	cpuRateMaxAge   = 2 * time.Minute
	cpuSampleMaxAge = 10 * time.Minute
)

type cpuSample struct {
	at, start time.Time
	nanos     uint64
}

// cpuSamples holds the last CPU sample per container ("runtimeID/name").
type cpuSamples struct {
	mu   sync.Mutex
	last map[string]cpuSample
}

func (c *cpuSamples) rate(key string, cur hostapi.ContainerStats) (float64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev, ok := c.last[key]
	if !ok {
		return 0, false
	}
	return cpuRate(prev, cur)
}

// cpuRate is the CPU use between two samples in millicores; ok is false when
// they are not from the same run or too close or far apart.
func cpuRate(prev cpuSample, cur hostapi.ContainerStats) (float64, bool) {
	age := cur.Time.Sub(prev.at)
	if age < cpuRateMinAge || age > cpuRateMaxAge || !prev.start.Equal(cur.StartTime) || cur.CPUNanos < prev.nanos {
		return 0, false
	}
	return float64(cur.CPUNanos-prev.nanos) / float64(age.Nanoseconds()) * 1000, true
}

func (c *cpuSamples) store(id string, st *hostapi.GroupStats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[string]cpuSample{}
	}
	now := time.Now()
	for k, s := range c.last {
		if now.Sub(s.at) > cpuSampleMaxAge {
			delete(c.last, k)
		}
	}
	for _, cs := range st.Containers {
		c.last[id+"/"+cs.Name] = cpuSample{at: cs.Time, start: cs.StartTime, nanos: cs.CPUNanos}
	}
}

var containerFilter = regexp.MustCompile(`(?i)containername\s+eq\s+'([^']*)'`)

// metricsQuery is a parsed metrics request.
type metricsQuery struct {
	metrics      []metricDef
	aggregations []string // lower case
	split        bool     // one api.TimeSeries per container
	containers   map[string]bool
	timespan     string
	interval     string
}

func parseMetricsQuery(r *http.Request) (*metricsQuery, error) {
	qv := r.URL.Query()
	mq := &metricsQuery{timespan: qv.Get("timespan"), interval: qv.Get("interval"), containers: map[string]bool{}}
	names := qv.Get("metricnames")
	if names == "" {
		names = MetricCPUUsage
	}
	var valid []string
	for _, d := range metricDefs {
		valid = append(valid, d.name)
	}
	for _, n := range strings.Split(names, ",") {
		n = strings.TrimSpace(n)
		found := false
		for _, d := range metricDefs {
			if strings.EqualFold(d.name, n) {
				mq.metrics = append(mq.metrics, d)
				found = true
				break
			}
		}
		if !found {
			return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidMetricName",
				"Failed to find metric configuration for provider: Microsoft.ContainerInstance, resource type: containerGroups, metric: %s. Valid metrics: %s",
				n, strings.Join(valid, ","))
		}
	}
	aggs := qv.Get("aggregation")
	if aggs == "" {
		aggs = "Average"
	}
	for _, a := range strings.Split(aggs, ",") {
		a = strings.ToLower(strings.TrimSpace(a))
		switch a {
		case "average", "minimum", "maximum", "total", "count":
			mq.aggregations = append(mq.aggregations, a)
		default:
			return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidAggregation",
				"The aggregation '%s' is not supported. Supported: Average, Minimum, Maximum, Total, Count.", a)
		}
	}
	if f := strings.TrimSpace(qv.Get("$filter")); f != "" {
		m := containerFilter.FindAllStringSubmatch(f, -1)
		if len(m) == 0 {
			return nil, errdefs.WithCode(errdefs.ErrInvalidArgument, "InvalidFilter",
				"The $filter '%s' is not supported: container groups have one dimension, containerName (e.g. containerName eq '*').", f)
		}
		mq.split = true
		for _, x := range m {
			mq.containers[x[1]] = true
		}
	}
	return mq, nil
}

func (mq *metricsQuery) wants(name string) bool {
	for _, d := range mq.metrics {
		if d.name == name {
			return true
		}
	}
	return false
}

func (mq *metricsQuery) selects(container string) bool {
	return !mq.split || mq.containers["*"] || mq.containers[container]
}

func (s *Server) containerGroupMetrics(w http.ResponseWriter, r *http.Request, p params) error {
	ctx := r.Context()
	cg, err := s.containerGroup(ctx, p)
	if err != nil {
		return err
	}
	mq, err := parseMetricsQuery(r)
	if err != nil {
		return err
	}
	samples, rates, err := s.sampleMetrics(ctx, cg, mq.wants(MetricCPUUsage))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, buildMetrics(cg, mq, samples, rates, time.Now()))
	return nil
}

// sampleMetrics samples the group; with withRate, it also returns each
// container's CPU rate in millicores (see cpuSamples). A group that is
// not running has no samples.
func (s *Server) sampleMetrics(ctx context.Context, cg *store.ContainerGroup, withRate bool) ([]hostapi.ContainerStats, map[string]float64, error) {
	id := cg.RuntimeID
	host, err := s.hostOf(ctx, cg)
	if errdefs.Is(err, errdefs.ErrConflict) {
		return nil, nil, nil // not placed yet: no samples
	}
	if err != nil {
		return nil, nil, err
	}
	st, err := host.Stats(ctx, id)
	if errdefs.Is(err, errdefs.ErrNotFound) || errdefs.Is(err, errdefs.ErrConflict) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	rates := map[string]float64{}
	if withRate {
		missing := false
		for _, cs := range st.Containers {
			if v, ok := s.cpu.rate(id+"/"+cs.Name, cs); ok {
				rates[cs.Name] = v
			} else {
				missing = true
			}
		}
		if missing {
			s.cpu.store(id, st)
			select {
			case <-time.After(cpuRateWindow):
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
			next, err := host.Stats(ctx, id)
			if errdefs.Is(err, errdefs.ErrNotFound) || errdefs.Is(err, errdefs.ErrConflict) {
				return nil, nil, nil
			}
			if err != nil {
				return nil, nil, err
			}
			st = next
			rates = map[string]float64{}
			for _, cs := range st.Containers {
				if v, ok := s.cpu.rate(id+"/"+cs.Name, cs); ok {
					rates[cs.Name] = v
				}
			}
		}
	}
	s.cpu.store(id, st)
	return st.Containers, rates, nil
}

// buildMetrics renders the samples in Azure Monitor's shape: without a
// containerName filter one api.TimeSeries with the group's sums, with one a
// api.TimeSeries per selected container.
func buildMetrics(cg *store.ContainerGroup, mq *metricsQuery, samples []hostapi.ContainerStats, rates map[string]float64, now time.Time) *api.MetricsResponse {
	resID := api.ResourceID(cg.Subscription, cg.ResourceGroup, cg.Resource.Name)
	interval := mq.interval
	if interval == "" {
		interval = "PT1M"
	}
	timespan := mq.timespan
	if timespan == "" {
		timespan = now.Add(-time.Minute).UTC().Format(time.RFC3339) + "/" + now.UTC().Format(time.RFC3339)
	}
	out := &api.MetricsResponse{Timespan: timespan, Interval: interval, Namespace: api.ResourceType,
		ResourceRegion: cg.Resource.Location, Value: []api.Metric{}}
	var sel []hostapi.ContainerStats
	for _, cs := range samples {
		if mq.selects(cs.Name) {
			sel = append(sel, cs)
		}
	}
	sort.Slice(sel, func(i, j int) bool { return sel[i].Name < sel[j].Name })
	for _, d := range mq.metrics {
		mv := api.Metric{
			ID: resID + "/providers/Microsoft.Insights/metrics/" + d.name, Type: "Microsoft.Insights/metrics",
			Name: api.LocalizableString{Value: d.name, LocalizedValue: d.localized}, DisplayDescription: d.description,
			Unit: d.unit, Timeseries: []api.TimeSeries{}, ErrorCode: "Success",
		}
		value := func(cs hostapi.ContainerStats) (float64, bool) {
			switch d.name {
			case MetricCPUUsage:
				v, ok := rates[cs.Name]
				return v, ok
			case MetricMemoryUsage:
				return float64(cs.MemoryWorkingSetBytes), true
			case MetricCPUUsageTotal:
				return float64(cs.CPUNanos) / 1e9, true
			case MetricMemoryCgroupUsage:
				return float64(cs.MemoryUsageBytes), true
			}
			return 0, false
		}
		if mq.split {
			for _, cs := range sel {
				ts := api.TimeSeries{Metadatavalues: []api.MetadataValue{{Name: api.LocalizableString{Value: "containername", LocalizedValue: "containername"}, Value: cs.Name}}, Data: []api.MetricPoint{}}
				if v, ok := value(cs); ok {
					ts.Data = append(ts.Data, point(cs.Time, v, mq.aggregations))
				}
				mv.Timeseries = append(mv.Timeseries, ts)
			}
		} else if len(sel) > 0 {
			sum, have := 0.0, false
			at := sel[0].Time
			for _, cs := range sel {
				if v, ok := value(cs); ok {
					sum, have = sum+v, true
					if cs.Time.After(at) {
						at = cs.Time
					}
				}
			}
			ts := api.TimeSeries{Metadatavalues: []api.MetadataValue{}, Data: []api.MetricPoint{}}
			if have {
				ts.Data = append(ts.Data, point(at, sum, mq.aggregations))
			}
			mv.Timeseries = append(mv.Timeseries, ts)
		}
		out.Value = append(out.Value, mv)
	}
	return out
}

// point is one sample: every aggregation of a single value is the value
// (count is 1).
func point(at time.Time, v float64, aggs []string) api.MetricPoint {
	p := api.MetricPoint{TimeStamp: at.UTC().Format(time.RFC3339Nano)}
	one := 1.0
	for _, a := range aggs {
		val := v
		switch a {
		case "average":
			p.Average = &val
		case "minimum":
			p.Minimum = &val
		case "maximum":
			p.Maximum = &val
		case "total":
			p.Total = &val
		case "count":
			p.Count = &one
		}
	}
	return p
}
