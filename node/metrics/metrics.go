// Package metrics holds the peer's Prometheus metrics: a private registry
// (nothing is registered globally, nothing happens at init), the metrics of
// every subsystem under musubi_<subsystem>_..., an HTTP handler for the
// registry, and a coord.Store wrapper that measures every ZooKeeper
// operation.
//
// Metrics:
//
//	musubi_build_info{version}                         1
//	musubi_coord_op_duration_seconds{op}               histogram of store operations
//	musubi_coord_op_errors_total{op,error}             failed store operations by cause
//	musubi_coord_session_events_total{state}           session state changes
//	musubi_coord_session_connected                     1 while the session is connected
//	musubi_peer_registrations_total                    site registrations (start, after expiry)
//	musubi_peer_subsystem_ready{subsystem}             1 when the subsystem is ready
//	musubi_federation_sites{state}                     sites by live/down, as last read
//	musubi_reserve_reservations{state}                 reservations by state, as last read
//	musubi_reserve_admitted_total                      admissions through this peer
//	musubi_reserve_refused_total{constraint}           refusals by binding constraint
//	musubi_reserve_cancelled_total                     cancellations through this peer
//	musubi_reserve_released_total                      early releases through this peer
//	musubi_reserve_admission_duration_seconds{result}  time to an admission decision
//	musubi_api_requests_total{method,route,code}       API requests
//	musubi_api_request_duration_seconds{route}         API latency
//
// plus the Go runtime's and the process's standard collectors.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every musubi metric.
const Namespace = "musubi"

// Metrics is the set of metrics of one peer, registered on its own
// registry. Create it with New.
type Metrics struct {
	reg *prometheus.Registry

	BuildInfo *prometheus.GaugeVec

	CoordOpDuration    *prometheus.HistogramVec
	CoordOpErrors      *prometheus.CounterVec
	CoordSessionEvents *prometheus.CounterVec
	CoordConnected     prometheus.Gauge

	PeerRegistrations prometheus.Counter
	SubsystemReady    *prometheus.GaugeVec

	FederationSites *prometheus.GaugeVec
	Reservations    *prometheus.GaugeVec

	ReserveAdmitted   prometheus.Counter
	ReserveRefused    *prometheus.CounterVec
	ReserveCancelled  prometheus.Counter
	ReserveReleased   prometheus.Counter
	AdmissionDuration *prometheus.HistogramVec

	APIRequests *prometheus.CounterVec
	APIDuration *prometheus.HistogramVec
}

// New creates the metrics on a new private registry, with the Go runtime
// and process collectors. version labels musubi_build_info.
func New(version string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "build_info", Help: "Always 1; the version label is musubi's version.",
		}, []string{"version"}),
		CoordOpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "coord", Name: "op_duration_seconds",
			Help:    "Duration of coordination store (ZooKeeper) operations.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"op"}),
		CoordOpErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "coord", Name: "op_errors_total",
			Help: "Coordination store operations that failed, by operation and cause.",
		}, []string{"op", "error"}),
		CoordSessionEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "coord", Name: "session_events_total",
			Help: "ZooKeeper session state changes, by new state.",
		}, []string{"state"}),
		CoordConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "coord", Name: "session_connected",
			Help: "1 while the peer's ZooKeeper session is connected, else 0.",
		}),
		PeerRegistrations: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "peer", Name: "registrations_total",
			Help: "Registrations of this site (sites/ and the ephemeral live/), at start and after session expiry.",
		}),
		SubsystemReady: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "peer", Name: "subsystem_ready",
			Help: "1 when the peer subsystem is ready, else 0.",
		}, []string{"subsystem"}),
		FederationSites: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "federation", Name: "sites",
			Help: "Sites of the federation by state (live: its peer holds a session), as last read.",
		}, []string{"state"}),
		Reservations: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "reserve", Name: "reservations",
			Help: "Reservations of the federation by state, as last read.",
		}, []string{"state"}),
		ReserveAdmitted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "reserve", Name: "admitted_total",
			Help: "Reservations admitted through this peer.",
		}),
		ReserveRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "reserve", Name: "refused_total",
			Help: "Reservations refused through this peer, by binding constraint.",
		}, []string{"constraint"}),
		ReserveCancelled: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "reserve", Name: "cancelled_total",
			Help: "Reservations cancelled through this peer.",
		}),
		ReserveReleased: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "reserve", Name: "released_total",
			Help: "Reservations released early through this peer.",
		}),
		AdmissionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "reserve", Name: "admission_duration_seconds",
			Help:    "Time from a reservation request to its decision (admitted, refused or error).",
			Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"result"}),
		APIRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "api", Name: "requests_total",
			Help: "API requests by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		APIDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "api", Name: "request_duration_seconds",
			Help:    "API request latency by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.BuildInfo,
		m.CoordOpDuration, m.CoordOpErrors, m.CoordSessionEvents, m.CoordConnected,
		m.PeerRegistrations, m.SubsystemReady,
		m.FederationSites, m.Reservations,
		m.ReserveAdmitted, m.ReserveRefused, m.ReserveCancelled, m.ReserveReleased, m.AdmissionDuration,
		m.APIRequests, m.APIDuration,
	)
	m.BuildInfo.WithLabelValues(version).Set(1)
	return m
}

// Registry is the private registry holding every metric.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
