package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	accepted prometheus.Counter
	handler  http.Handler
}

func newMetrics(s *Server) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_http_requests_total", Help: "HTTP requests by method, route and status code.",
		}, []string{"method", "route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "skiff_http_request_duration_seconds", Help: "HTTP request latency.", Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "skiff_container_group_puts_accepted_total", Help: "Accepted container group PUTs.",
		}),
	}
	groups := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "skiff_container_groups", Help: "Container groups known to the host runtime.",
	}, func() float64 {
		if s.cfg.Host == nil {
			return 0 // a cluster's servers hold no groups; each agent counts its own
		}
		return float64(s.cfg.Host.GroupCount())
	})
	reg.MustRegister(m.requests, m.latency, m.accepted, groups,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m
}

// observe counts a request. The labels take few values whatever clients
// send, so that /metrics stays small: route is a pattern of the route table
// (or one of a few fixed names: "unmatched", "unauthorized", ...), method
// one of the HTTP methods the API knows or "other".
func (m *metrics) observe(method, route string, code int, d time.Duration) {
	method = methodLabel(method)
	m.requests.WithLabelValues(method, route, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(method, route).Observe(d.Seconds())
}

func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return method
	}
	return "other"
}
