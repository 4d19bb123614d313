package peer_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/memstore"
	"github.com/musubi-fabric/musubi/coord/zkstore"
	"github.com/musubi-fabric/musubi/node"
	"github.com/musubi-fabric/musubi/node/api"
	"github.com/musubi-fabric/musubi/node/config"
	"github.com/musubi-fabric/musubi/node/peer"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func baseConfig(t *testing.T) config.Config {
	c := config.Default()
	c.Site = "s1"
	c.ZooKeeper.Servers = []string{"127.0.0.1:2181"} // not dialled: memstore
	c.ZooKeeper.Local = "127.0.0.1:2181"
	c.API.Listen = "127.0.0.1:0"
	c.API.Socket = filepath.Join(t.TempDir(), "peer.sock")
	c.Metrics.Interval = config.Duration(100 * time.Millisecond)
	c.Hosts = []config.Host{{Name: "s1-h1", MemoryMiB: 8192, VCPUs: 4}}
	c.Storage = []config.StorageHost{{Name: "s1-st1", Bytes: 1 << 40}}
	return c
}

type running struct {
	p     *peer.Peer
	ms    *memstore.Server
	store atomic.Pointer[memstore.Store]
	stop  context.CancelFunc
	done  chan error
	url   string
}

func start(t *testing.T, cfg config.Config, plugins ...peer.Plugin) *running {
	t.Helper()
	r := &running{ms: memstore.New(), done: make(chan error, 1)}
	p, err := peer.New(cfg, peer.Options{
		Logger:  slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Version: "test", Plugins: plugins,
		OpenStore: func(ctx context.Context, zc zkstore.Config) (coord.Store, error) {
			if zc.Root != cfg.Chroot() {
				t.Errorf("chroot %q, want %q", zc.Root, cfg.Chroot())
			}
			st := r.ms.Connect()
			r.store.Store(st)
			return st, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.p = p
	if a := p.APIAddr(); a != nil {
		r.url = "http://" + a.String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() { r.done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

func (r *running) shutdown(t *testing.T) error {
	t.Helper()
	r.stop()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("the peer did not stop")
		return nil
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPeerRunsRegistersAndShutsDown(t *testing.T) {
	cfg := baseConfig(t)
	r := start(t, cfg)
	if code, _ := get(t, r.url+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	eventually(t, "readiness", func() bool { code, _ := get(t, r.url+"/readyz"); return code == 200 })

	obs := r.ms.Connect()
	defer obs.Close()
	ctx := context.Background()
	fs, err := node.ReadStatus(ctx, obs)
	if err != nil || len(fs.Sites) != 1 || !fs.Sites[0].Live || fs.Sites[0].ZKServer != "127.0.0.1:2181" || fs.Sites[0].Peer.Version != "test" {
		t.Fatalf("status %+v %v", fs, err)
	}
	data, _, err := obs.Get(ctx, coord.SitePath("s1"))
	if err != nil || !strings.Contains(string(data), `"hosts"`) {
		t.Fatalf("site record %s %v", data, err)
	}
	if ok, _, err := obs.Exists(ctx, coord.TimetableHostPath("s1-h1")); !ok || err != nil {
		t.Fatalf("host not in the timetable: %v", err)
	}
	if ok, _, err := obs.Exists(ctx, coord.TimetableStoragePath("s1-st1")); !ok || err != nil {
		t.Fatalf("storage host not in the timetable: %v", err)
	}

	// The API works over the unix socket (as root) and reaches the store.
	if os.Geteuid() == 0 {
		c, err := api.NewClient(api.ClientConfig{Endpoint: cfg.API.Socket})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now().Add(time.Hour)
		v, err := c.Reserve(ctx, api.ReserveRequest{VC: "v", Nodes: 1, MemoryMiB: 1024, VCPUs: 1, Start: start, End: start.Add(time.Hour)})
		if err != nil || v.Placement.Nodes[0].Host != "s1-h1" || v.Owner != "root" {
			t.Fatalf("reserve through the socket: %+v %v", v, err)
		}
	}
	// Metrics are served with the peer's counters.
	eventually(t, "federation gauge", func() bool {
		_, body := get(t, r.url+"/metrics")
		return strings.Contains(body, `musubi_federation_sites{state="live"} 1`)
	})
	_, body := get(t, r.url+"/metrics")
	for _, want := range []string{"musubi_peer_registrations_total 1", `musubi_peer_subsystem_ready{subsystem="coordination"} 1`, "musubi_coord_op_duration_seconds_bucket", "musubi_coord_session_connected 1"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	if err := r.shutdown(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Clean shutdown: the session is closed (live/ is gone at once), the
	// socket removed, the API closed.
	if ok, _, err := obs.Exists(ctx, coord.LivePath("s1")); ok || err != nil {
		t.Errorf("live/s1 after shutdown: %v %v", ok, err)
	}
	if _, err := os.Stat(cfg.API.Socket); !os.IsNotExist(err) {
		t.Errorf("socket after shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(r.url, "http://"), time.Second); err == nil {
		t.Error("the API still accepts connections")
	}
}

func TestReRegistersAfterExpiry(t *testing.T) {
	r := start(t, baseConfig(t))
	eventually(t, "readiness", func() bool { code, _ := get(t, r.url+"/readyz"); return code == 200 })
	obs := r.ms.Connect()
	defer obs.Close()
	ctx := context.Background()
	st := r.store.Load()
	before := st.SessionID()
	st.Expire()
	eventually(t, "live/ on the new session", func() bool {
		ok, stat, err := obs.Exists(ctx, coord.LivePath("s1"))
		return err == nil && ok && stat.EphemeralOwner == st.SessionID() && st.SessionID() != before
	})
	_, body := get(t, r.url+"/metrics")
	if !strings.Contains(body, "musubi_peer_registrations_total 2") || !strings.Contains(body, `musubi_coord_session_events_total{state="expired"} 1`) {
		t.Errorf("metrics after expiry:\n%s", grep(body, "musubi_peer_registrations_total", "session_events"))
	}
	// The site record keeps its first join time.
	data, _, err := obs.Get(ctx, coord.SitePath("s1"))
	if err != nil {
		t.Fatal(err)
	}
	var rec node.SiteRecord
	if json.Unmarshal(data, &rec) != nil || rec.Joined.IsZero() {
		t.Fatalf("site record %s", data)
	}
}

func grep(body string, keys ...string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		for _, k := range keys {
			if strings.Contains(l, k) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}

// Plugins start once the session exists and take part in readiness.
func TestPluginsAndReadiness(t *testing.T) {
	gate := make(chan struct{})
	var gotStore atomic.Bool
	r := start(t, baseConfig(t), peer.Plugin{Name: "provisioner", Run: func(ctx context.Context, env peer.Env) error {
		gotStore.Store(env.Store != nil && env.Config.Site == "s1")
		select {
		case <-gate:
		case <-ctx.Done():
			return nil
		}
		env.Ready(true)
		<-ctx.Done()
		return nil
	}})
	eventually(t, "coordination ready", func() bool {
		_, body := get(t, r.url+"/readyz")
		return !strings.Contains(body, "coordination") && !strings.Contains(body, "reservations")
	})
	code, body := get(t, r.url+"/readyz")
	if code != 503 || !strings.Contains(body, "provisioner: not ready") {
		t.Fatalf("readyz while the plugin starts: %d %s", code, body)
	}
	close(gate)
	eventually(t, "readiness", func() bool { code, _ := get(t, r.url+"/readyz"); return code == 200 })
	if !gotStore.Load() {
		t.Error("the plugin did not get the store and config")
	}
}

// A failing subsystem stops the peer with its error.
func TestFailingPluginStopsPeer(t *testing.T) {
	boom := errors.New("boom")
	r := start(t, baseConfig(t), peer.Plugin{Name: "bad", Run: func(ctx context.Context, env peer.Env) error { return boom }})
	select {
	case err := <-r.done:
		r.done <- err
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "bad") {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the peer kept running")
	}
}

func TestSetupErrorsBeforeAnythingRuns(t *testing.T) {
	dir := t.TempDir()
	openTokens := filepath.Join(dir, "tokens.json")
	if err := os.WriteFile(openTokens, []byte(`{"tokens": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	badCred := filepath.Join(dir, "cred")
	if err := os.WriteFile(badCred, []byte("no-colon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for name, tc := range map[string]struct {
		edit func(*config.Config)
		want string
	}{
		"tokens readable by others": {func(c *config.Config) { c.API.TokensFile = openTokens }, "chmod 600"},
		"bad credential":            {func(c *config.Config) { c.ZooKeeper.CredentialFile = badCred }, "user:password"},
		"port taken":                {func(c *config.Config) { c.API.Listen = busy.Addr().String() }, "api.listen"},
		"missing certificate":       {func(c *config.Config) { c.API.TLSCert, c.API.TLSKey = filepath.Join(dir, "c"), filepath.Join(dir, "k") }, "TLS"},
		"socket dir missing":        {func(c *config.Config) { c.API.Socket = filepath.Join(dir, "no", "sock") }, "api.socket"},
	} {
		cfg := baseConfig(t)
		tc.edit(&cfg)
		_, err := peer.New(cfg, peer.Options{})
		if !errors.Is(err, peer.ErrSetup) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
	cfg := baseConfig(t)
	cfg.Site = ""
	if _, err := peer.New(cfg, peer.Options{}); !errors.Is(err, config.ErrInvalid) {
		t.Errorf("invalid config accepted: %v", err)
	}
	// A failed New leaves no listener behind.
	cfg = baseConfig(t)
	cfg.API.Listen = "127.0.0.1:0"
	cfg.API.TokensFile = openTokens
	if _, err := peer.New(cfg, peer.Options{}); err == nil {
		t.Fatal("accepted")
	}
	if _, err := os.Stat(cfg.API.Socket); !os.IsNotExist(err) {
		t.Errorf("socket created before the failure: %v", err)
	}
}

// With the overlay enabled but no Open vSwitch, the peer runs: the
// overlay subsystem keeps retrying and is reported not ready, everything
// else works, and the peer still stops cleanly.
func TestOverlayWithoutOVSIsNotReady(t *testing.T) {
	cfg := baseConfig(t)
	cfg.Gateway = "192.0.2.1"
	cfg.Overlay.Enabled = true
	cfg.Overlay.OVSDB = "unix:" + filepath.Join(t.TempDir(), "no-db.sock")
	cfg.Overlay.ControllerListen = "127.0.0.1:0"
	cfg.Overlay.Probe = false
	r := start(t, cfg)
	eventually(t, "everything but the overlay ready", func() bool {
		code, body := get(t, r.url+"/readyz")
		return code == 503 && strings.Contains(body, "overlay: not ready") && !strings.Contains(body, "coordination") && !strings.Contains(body, "reservations")
	})
	if code, _ := get(t, r.url+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if err := r.shutdown(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "musubi-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "peer.crt"), filepath.Join(dir, "peer.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// With a certificate the TCP API speaks HTTPS only; a client trusting
// the certificate authenticates with a token.
func TestHTTPSAndTokens(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig(t)
	cfg.API.TLSCert, cfg.API.TLSKey = writeCert(t, dir)
	tf, _ := json.Marshal(api.TokensFile{Tokens: []api.TokenEntry{{Name: "ops", Role: api.RoleAdmin, SHA256: api.HashToken("tls-token")}}})
	cfg.API.TokensFile = filepath.Join(dir, "tokens.json")
	if err := os.WriteFile(cfg.API.TokensFile, tf, 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, cfg)
	httpsURL := "https://" + strings.TrimPrefix(r.url, "http://")
	c, err := api.NewClient(api.ClientConfig{Endpoint: httpsURL, Token: "tls-token", CAFile: cfg.API.TLSCert})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	eventually(t, "readiness over HTTPS", func() bool { return c.Ready(ctx) == nil })
	if _, err := c.AddAccount(ctx, api.Account{User: "tlsuser"}); err != nil {
		t.Fatalf("admin over HTTPS: %v", err)
	}
	bad, _ := api.NewClient(api.ClientConfig{Endpoint: httpsURL, Token: "wrong", CAFile: cfg.API.TLSCert})
	defer bad.Close()
	if _, err := bad.Accounts(ctx); !api.IsStatus(err, 401) {
		t.Fatalf("bad token over HTTPS: %v", err)
	}
	// Without trusting the certificate the client refuses the server;
	// plain HTTP gets no API answer.
	untrusting, _ := api.NewClient(api.ClientConfig{Endpoint: httpsURL, Token: "tls-token"})
	defer untrusting.Close()
	if _, err := untrusting.Accounts(ctx); err == nil || api.IsStatus(err, 200) {
		t.Fatalf("an unknown certificate was accepted: %v", err)
	}
	plain, _ := api.NewClient(api.ClientConfig{Endpoint: r.url, Token: "tls-token"})
	defer plain.Close()
	if _, err := plain.Accounts(ctx); err == nil {
		t.Fatal("plain HTTP answered on the HTTPS listener")
	}
}
