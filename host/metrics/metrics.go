package metrics

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dsmil/l7/host/internal/httpserver"
	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the plane's metrics in their own registry.
type Metrics struct {
	Registry *prometheus.Registry

	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	tokens       *prometheus.CounterVec
	promptTokens *prometheus.CounterVec
	inFlight     prometheus.Gauge
	agent        *agentMetrics
}

// Metrics is the router's Observer.
var _ router.Observer = (*Metrics)(nil)

// Plugins is what the plugin collector reads at scrape time.
type Plugins interface {
	Snapshots() []pluginmgr.Snapshot
}

// New creates the metrics; plugins may be nil.
func New(plugins Plugins) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dsmil_l7_requests_total",
			Help: "L7 requests routed, by destination device, profile and final status (ok or the DBE error code).",
		}, []string{"device_id", "profile", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dsmil_l7_latency_seconds",
			Help:    "Time from a request's arrival at the router to its last response frame.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"device_id", "profile"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dsmil_l7_tokens_generated_total",
			Help: "Completion tokens generated, as reported in responses' usage.",
		}, []string{"device_id"}),
		promptTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dsmil_l7_prompt_tokens_total",
			Help: "Prompt tokens processed, as reported in responses' usage.",
		}, []string{"device_id"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dsmil_l7_in_flight",
			Help: "Requests being routed now.",
		}),
	}
	m.agent = newAgentMetrics()
	m.Registry.MustRegister(m.requests, m.latency, m.tokens, m.promptTokens, m.inFlight, m.agent.tasks, m.agent.steps,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if plugins != nil {
		m.Registry.MustRegister(&pluginCollector{p: plugins})
	}
	return m
}

// Started implements router.Observer.
func (m *Metrics) Started() { m.inFlight.Inc() }

// Finished implements router.Observer: one call per request.
func (m *Metrics) Finished(profile string, device uint8, code dbe.Code, d time.Duration, promptTokens, completionTokens int64) {
	m.inFlight.Dec()
	dev := deviceLabel(device)
	status := "ok"
	if code != dbe.CodeUnspecified {
		status = strings.ToLower(code.String())
	}
	m.requests.WithLabelValues(dev, profile, status).Inc()
	m.latency.WithLabelValues(dev, profile).Observe(d.Seconds())
	if completionTokens > 0 {
		m.tokens.WithLabelValues(dev).Add(float64(completionTokens))
	}
	if promptTokens > 0 {
		m.promptTokens.WithLabelValues(dev).Add(float64(promptTokens))
	}
}

var deviceLabels = func() [256]string {
	var l [256]string
	for i := range l {
		l[i] = strconv.Itoa(i)
	}
	return l
}()

func deviceLabel(d uint8) string { return deviceLabels[d] }

// pluginCollector reports plugin state at scrape time.
type pluginCollector struct{ p Plugins }

var (
	memDesc = prometheus.NewDesc("dsmil_l7_memory_used_bytes",
		"Memory used by the plugins of a device (reported by the plugin, or its resident set size).",
		[]string{"device_id"}, nil)
	upDesc = prometheus.NewDesc("dsmil_l7_plugin_up",
		"1 when the plugin instance is running and passed its last health check; accelerator is where it computes, as it reports (cpu, cpu-amx, npu; empty when unknown).",
		[]string{"plugin", "replica", "device_id", "accelerator"}, nil)
	restartsDesc = prometheus.NewDesc("dsmil_l7_plugin_restarts_total",
		"Restarts of the plugin instance since the host started.",
		[]string{"plugin", "replica"}, nil)
)

func (c *pluginCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- memDesc
	ch <- upDesc
	ch <- restartsDesc
}

func (c *pluginCollector) Collect(ch chan<- prometheus.Metric) {
	mem := map[int]uint64{}
	for _, s := range c.p.Snapshots() {
		mem[s.DeviceID] += s.MemoryUsed
		up := 0.0
		if s.Healthy {
			up = 1
		}
		rep := strconv.Itoa(s.Replica)
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up, s.Name, rep, strconv.Itoa(s.DeviceID), s.Accelerator)
		ch <- prometheus.MustNewConstMetric(restartsDesc, prometheus.CounterValue, float64(s.Restarts), s.Name, rep)
	}
	for dev, b := range mem {
		ch <- prometheus.MustNewConstMetric(memDesc, prometheus.GaugeValue, float64(b), strconv.Itoa(dev))
	}
}

// Server serves /metrics.
type Server = httpserver.Server

// Listen binds addr (the caller has checked it is loopback or allowed).
func (m *Metrics) Listen(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	return httpserver.New(ln, mux), nil
}
