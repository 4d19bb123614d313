package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/memstore"
	"github.com/musubi-fabric/musubi/node/metrics"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// exercise gives every vector at least one child, so that Gather returns
// every metric family for the lint.
func exercise(t *testing.T, m *metrics.Metrics) {
	t.Helper()
	srv := memstore.New()
	raw := srv.Connect()
	t.Cleanup(func() { _ = raw.Close() })
	st := m.InstrumentStore(raw)
	ctx := context.Background()
	if _, err := st.Create(ctx, "/a", nil, coord.Persistent, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Get(ctx, "/missing"); !errors.Is(err, coord.ErrNotFound) {
		t.Fatal(err)
	}
	m.SessionEvent(coord.SessionEvent{State: coord.StateConnected})
	m.PeerRegistrations.Inc()
	m.SubsystemReady.WithLabelValues("api").Set(1)
	m.FederationSites.WithLabelValues("live").Set(3)
	m.Reservations.WithLabelValues("admitted").Set(2)
	m.ReserveAdmitted.Inc()
	m.ReserveRefused.WithLabelValues("memory").Inc()
	m.ReserveCancelled.Inc()
	m.ReserveReleased.Inc()
	m.AdmissionDuration.WithLabelValues("admitted").Observe(0.01)
	m.APIRequests.WithLabelValues("GET", "/api/v1/vcs", "200").Inc()
	m.APIDuration.WithLabelValues("/api/v1/vcs").Observe(0.001)
}

// The metric names follow Prometheus's conventions (promlint) and ours:
// every metric of musubi is musubi_<subsystem>_...
func TestMetricNamesLint(t *testing.T) {
	m := metrics.New("test")
	exercise(t, m)
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	ours := 0
	for _, mf := range mfs {
		name := mf.GetName()
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue
		}
		ours++
		if !strings.HasPrefix(name, "musubi_") {
			t.Errorf("metric %s is not under musubi_", name)
			continue
		}
		if rest := strings.TrimPrefix(name, "musubi_"); rest != "build_info" && !strings.Contains(rest, "_") {
			t.Errorf("metric %s has no subsystem part (musubi_<subsystem>_<name>)", name)
		}
		if mf.GetHelp() == "" {
			t.Errorf("metric %s has no help", name)
		}
	}
	if ours < 16 {
		t.Errorf("only %d musubi metrics gathered", ours)
	}
}

// Registries are private: two sets of metrics coexist in one process.
func TestRegistriesArePrivate(t *testing.T) {
	a, b := metrics.New("a"), metrics.New("b")
	a.ReserveAdmitted.Inc()
	if got := testutil.ToFloat64(b.ReserveAdmitted); got != 0 {
		t.Fatalf("metrics are shared: %v", got)
	}
}

func TestStoreWrapperMeasures(t *testing.T) {
	m := metrics.New("test")
	exercise(t, m)
	if n := testutil.CollectAndCount(m.CoordOpDuration); n != 2 {
		t.Errorf("op duration series: %d, want create and get", n)
	}
	if got := testutil.ToFloat64(m.CoordOpErrors.WithLabelValues("get", "not_found")); got != 1 {
		t.Errorf("get not_found errors: %v", got)
	}
	if got := testutil.ToFloat64(m.CoordConnected); got != 1 {
		t.Errorf("connected: %v", got)
	}
	m.SessionEvent(coord.SessionEvent{State: coord.StateDisconnected})
	if got := testutil.ToFloat64(m.CoordConnected); got != 0 {
		t.Errorf("connected after disconnect: %v", got)
	}
}

func TestHandlerServesExposition(t *testing.T) {
	m := metrics.New("v9")
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `musubi_build_info{version="v9"} 1`) {
		t.Fatalf("%d\n%s", resp.StatusCode, body)
	}
}
