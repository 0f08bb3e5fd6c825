package virtualnode

import (
	"context"
	"math"
	"net/url"
	"sort"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
)

// Usage figures come from the Skiff API's Azure Monitor route of each group
// (docs/api.md, "Metrics"): CpuUsage (millicores, a rate the server
// computes), CpuUsageTotal (cumulative CPU seconds, which metrics-server
// turns into its own rates), MemoryUsage (working set) and
// MemoryCgroupUsage (usage with page cache).
const (
	statsMetricNames = "CpuUsage,CpuUsageTotal,MemoryUsage,MemoryCgroupUsage"
	// statsParallel bounds the groups queried at once; statsTimeout bounds
	// a whole summary. A group that fails or is too slow is left out.
	statsParallel = 4
	statsTimeout  = 10 * time.Second
)

// containerUsage is one sample of a container, as the metrics route gives it.
type containerUsage struct {
	Name string
	Time time.Time
	// StartTime is when the current run started (from the pod's status).
	StartTime time.Time
	// NanoCores is the CPU rate; HasRate is false when the server had none.
	NanoCores uint64
	HasRate   bool
	// CPUNanos is the cumulative CPU time of the current run.
	CPUNanos       uint64
	UsageBytes     uint64
	WorkingSetByte uint64
}

// podUsage is one pod and the samples of its running containers.
type podUsage struct {
	Namespace, Name, UID string
	StartTime            time.Time
	Containers           []containerUsage
}

// usageOf turns a metrics answer split by containerName into one sample
// per container, sorted by name. A container with no CpuUsageTotal or
// MemoryUsage point is left out.
func usageOf(r *api.MetricsResponse) []containerUsage {
	byName := map[string]*containerUsage{}
	seen := map[string]map[string]bool{}
	for _, m := range r.Value {
		for _, ts := range m.Timeseries {
			name := ""
			for _, md := range ts.Metadatavalues {
				if md.Name.Value == "containername" {
					name = md.Value
				}
			}
			if name == "" || len(ts.Data) == 0 || ts.Data[len(ts.Data)-1].Average == nil {
				continue
			}
			d := ts.Data[len(ts.Data)-1]
			v := *d.Average
			if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			c := byName[name]
			if c == nil {
				c = &containerUsage{Name: name}
				byName[name] = c
				seen[name] = map[string]bool{}
			}
			if t, err := time.Parse(time.RFC3339Nano, d.TimeStamp); err == nil && t.After(c.Time) {
				c.Time = t
			}
			seen[name][m.Name.Value] = true
			switch m.Name.Value {
			case "CpuUsage":
				c.NanoCores, c.HasRate = uint64(math.Round(v*1e6)), true
			case "CpuUsageTotal":
				c.CPUNanos = uint64(math.Round(v * 1e9))
			case "MemoryUsage":
				c.WorkingSetByte = uint64(v)
			case "MemoryCgroupUsage":
				c.UsageBytes = uint64(v)
			}
		}
	}
	out := make([]containerUsage, 0, len(byName))
	for name, c := range byName {
		if seen[name]["CpuUsageTotal"] && seen[name]["MemoryUsage"] {
			out = append(out, *c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// statsTarget is a pod whose group is read.
type statsTarget struct {
	ns, name, uid, group string
	started              time.Time
	containerStart       map[string]time.Time
}

// collectUsage reads the usage of every pod with a group, statsParallel
// groups at a time. A group that fails is left out (and counted in
// failed); so is one that does not exist or has no running container.
func (p *Provider) collectUsage(ctx context.Context) (pods []podUsage, failed int, err error) {
	ctx, cancel := context.WithTimeout(ctx, statsTimeout)
	defer cancel()
	// Without a subscription Skiff is not reachable: the summary fails
	// rather than leaving every pod out.
	if _, err := p.cfg.Client.Subscription(ctx); err != nil {
		return nil, 0, err
	}
	var targets []statsTarget
	p.mu.Lock()
	for _, t := range p.pods {
		if t.failed || t.deleting || t.group == "" || t.pod == nil {
			continue
		}
		st := statsTarget{ns: t.pod.Namespace, name: t.pod.Name, uid: string(t.pod.UID), group: t.group,
			started: t.started.Time, containerStart: map[string]time.Time{}}
		for _, cs := range append(append([]corev1.ContainerStatus(nil), t.pod.Status.InitContainerStatuses...), t.pod.Status.ContainerStatuses...) {
			if cs.State.Running != nil {
				st.containerStart[cs.Name] = cs.State.Running.StartedAt.Time
			}
		}
		targets = append(targets, st)
	}
	p.mu.Unlock()

	q := url.Values{"metricnames": {statsMetricNames}, "$filter": {"containerName eq '*'"}, "aggregation": {"Average"}}
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, statsParallel)
	)
	for _, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				mu.Lock()
				failed++
				mu.Unlock()
				return
			}
			var cs []containerUsage
			r, err := p.cfg.Client.Metrics(ctx, p.cfg.ResourceGroup, t.group, q)
			if err == nil {
				cs = usageOf(r)
			}
			mu.Lock()
			defer mu.Unlock()
			if errdefs.Is(err, errdefs.ErrNotFound) {
				return // not created yet, or gone: nothing runs
			}
			if err != nil {
				failed++
				p.log.Debug("stats of container group left out", "group", t.group, "err", err)
				return
			}
			if len(cs) == 0 {
				return
			}
			for i := range cs {
				cs[i].StartTime = t.containerStart[cs[i].Name]
			}
			pods = append(pods, podUsage{Namespace: t.ns, Name: t.name, UID: t.uid, StartTime: t.started, Containers: cs})
		}()
	}
	wg.Wait()
	sort.Slice(pods, func(i, j int) bool {
		if pods[i].Namespace != pods[j].Namespace {
			return pods[i].Namespace < pods[j].Namespace
		}
		return pods[i].Name < pods[j].Name
	})
	return pods, failed, nil
}

// GetStatsSummary reports the CPU and memory use of the node's running pods
// and containers, and the node's as their sums.
func (p *Provider) GetStatsSummary(ctx context.Context) (*statsv1alpha1.Summary, error) {
	pods, _, err := p.collectUsage(ctx)
	if err != nil {
		return nil, err
	}
	return buildSummary(p.cfg.NodeName, pods, time.Now()), nil
}

// GetMetricsResource returns the kubelet's resource metrics (what
// metrics-server scrapes from /metrics/resource) for the node's pods.
func (p *Provider) GetMetricsResource(ctx context.Context) ([]*dto.MetricFamily, error) {
	pods, failed, err := p.collectUsage(ctx)
	if err != nil {
		return nil, err
	}
	return buildMetricFamilies(pods, failed > 0, time.Now()), nil
}

// usageSum adds up samples: CPU rate, cumulative CPU and memory, at the
// latest sample time.
type usageSum struct {
	at                              time.Time
	nanoCores, cpuNanos, usage, wss uint64
	hasRate                         bool
}

func (s *usageSum) add(c containerUsage) {
	s.addSum(usageSum{at: c.Time, nanoCores: c.NanoCores, cpuNanos: c.CPUNanos, usage: c.UsageBytes,
		wss: c.WorkingSetByte, hasRate: c.HasRate})
}

func (s *usageSum) addSum(o usageSum) {
	if o.at.After(s.at) {
		s.at = o.at
	}
	s.cpuNanos += o.cpuNanos
	s.usage += o.usage
	s.wss += o.wss
	if o.hasRate {
		s.nanoCores += o.nanoCores
		s.hasRate = true
	}
}

func (s usageSum) cpu() *statsv1alpha1.CPUStats {
	c := &statsv1alpha1.CPUStats{Time: metav1.NewTime(s.at), UsageCoreNanoSeconds: u64p(s.cpuNanos)}
	if s.hasRate {
		c.UsageNanoCores = u64p(s.nanoCores)
	}
	return c
}

func (s usageSum) memory() *statsv1alpha1.MemoryStats {
	return &statsv1alpha1.MemoryStats{Time: metav1.NewTime(s.at), UsageBytes: u64p(s.usage), WorkingSetBytes: u64p(s.wss)}
}

func u64p(v uint64) *uint64 { return &v }

// buildSummary is the stats summary of pods; the node's figures are the
// sums of its pods', its start time the earliest pod's (or now).
func buildSummary(node string, pods []podUsage, now time.Time) *statsv1alpha1.Summary {
	nodeStart := now
	var total usageSum
	total.at = now
	s := &statsv1alpha1.Summary{Pods: []statsv1alpha1.PodStats{}}
	for _, pu := range pods {
		var sum usageSum
		ps := statsv1alpha1.PodStats{
			PodRef:    statsv1alpha1.PodReference{Name: pu.Name, Namespace: pu.Namespace, UID: pu.UID},
			StartTime: metav1.NewTime(pu.StartTime), Containers: []statsv1alpha1.ContainerStats{},
		}
		for _, c := range pu.Containers {
			var one usageSum
			one.add(c)
			sum.add(c)
			ps.Containers = append(ps.Containers, statsv1alpha1.ContainerStats{
				Name: c.Name, StartTime: metav1.NewTime(c.StartTime), CPU: one.cpu(), Memory: one.memory(),
			})
		}
		ps.CPU, ps.Memory = sum.cpu(), sum.memory()
		total.addSum(sum)
		if !pu.StartTime.IsZero() && pu.StartTime.Before(nodeStart) {
			nodeStart = pu.StartTime
		}
		s.Pods = append(s.Pods, ps)
	}
	total.hasRate = true // the node's rate is the sum, 0 without pods
	s.Node = statsv1alpha1.NodeStats{NodeName: node, StartTime: metav1.NewTime(nodeStart), CPU: total.cpu(), Memory: total.memory()}
	return s
}

// The kubelet's resource metrics (pkg/kubelet/metrics/collectors/resource_metrics.go).
func buildMetricFamilies(pods []podUsage, scrapeError bool, now time.Time) []*dto.MetricFamily {
	counter, gauge := dto.MetricType_COUNTER, dto.MetricType_GAUGE
	family := func(name, help string, typ dto.MetricType) *dto.MetricFamily {
		return &dto.MetricFamily{Name: &name, Help: &help, Type: &typ, Metric: []*dto.Metric{}}
	}
	label := func(kv ...string) []*dto.LabelPair {
		var out []*dto.LabelPair
		for i := 0; i+1 < len(kv); i += 2 {
			n, v := kv[i], kv[i+1]
			out = append(out, &dto.LabelPair{Name: &n, Value: &v})
		}
		return out
	}
	sample := func(f *dto.MetricFamily, labels []*dto.LabelPair, v float64, at time.Time) {
		m := &dto.Metric{Label: labels}
		if !at.IsZero() {
			ms := at.UnixMilli()
			m.TimestampMs = &ms
		}
		if f.GetType() == dto.MetricType_COUNTER {
			m.Counter = &dto.Counter{Value: &v}
		} else {
			m.Gauge = &dto.Gauge{Value: &v}
		}
		f.Metric = append(f.Metric, m)
	}
	nodeCPU := family("node_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the node in core-seconds", counter)
	nodeMem := family("node_memory_working_set_bytes", "[STABLE] Current working set of the node in bytes", gauge)
	podCPU := family("pod_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the pod in core-seconds", counter)
	podMem := family("pod_memory_working_set_bytes", "[STABLE] Current working set of the pod in bytes", gauge)
	ctrCPU := family("container_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the container in core-seconds", counter)
	ctrMem := family("container_memory_working_set_bytes", "[STABLE] Current working set of the container in bytes", gauge)
	ctrStart := family("container_start_time_seconds", "[STABLE] Start time of the container since unix epoch in seconds", gauge)
	scrape := family("scrape_error", "[ALPHA] 1 if there was an error while getting container metrics, 0 otherwise", gauge)

	var total usageSum
	total.at = now
	for _, pu := range pods {
		var sum usageSum
		for _, c := range pu.Containers {
			sum.add(c)
			l := label("container", c.Name, "namespace", pu.Namespace, "pod", pu.Name)
			sample(ctrCPU, l, float64(c.CPUNanos)/1e9, c.Time)
			sample(ctrMem, l, float64(c.WorkingSetByte), c.Time)
			if !c.StartTime.IsZero() {
				sample(ctrStart, l, float64(c.StartTime.UnixNano())/1e9, time.Time{})
			}
		}
		l := label("namespace", pu.Namespace, "pod", pu.Name)
		sample(podCPU, l, float64(sum.cpuNanos)/1e9, sum.at)
		sample(podMem, l, float64(sum.wss), sum.at)
		total.addSum(sum)
	}
	sample(nodeCPU, nil, float64(total.cpuNanos)/1e9, total.at)
	sample(nodeMem, nil, float64(total.wss), total.at)
	v := 0.0
	if scrapeError {
		v = 1
	}
	sample(scrape, nil, v, time.Time{})
	return []*dto.MetricFamily{ctrCPU, ctrMem, ctrStart, nodeCPU, nodeMem, podCPU, podMem, scrape}
}
