//go:build e2e

// Package browser tests the web UI end to end in headless Chromium
// (Debian's chromium, driven by Playwright's playwright-core with
// executablePath set; no browser is downloaded). The page is served by the
// peer's real API server (node/api) with the UI mounted at "/" as the peer
// mounts it, over an in-memory coordination store; a stand-in for the
// sites' lifecycle reconcilers writes the status and node records a real
// peer would write once the window starts, so the VC goes from
// provisioning to ready.
//
// Screenshots are left in test/artifacts/browser/ (or $MUSUBI_ARTIFACTS/browser).
package browser

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/memstore"
	"github.com/musubi-fabric/musubi/jobqueue"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
	"github.com/musubi-fabric/musubi/node"
	"github.com/musubi-fabric/musubi/node/admission"
	"github.com/musubi-fabric/musubi/node/api"
	"github.com/musubi-fabric/musubi/node/reserve"
	"github.com/musubi-fabric/musubi/overlay/topology"
	"github.com/musubi-fabric/musubi/web"
)

// playwrightVersion is the playwright-core release the test installs with
// npm (exact: the registry serves what was tested). It drives the system's
// Chromium over CDP; it downloads no browser.
const playwrightVersion = "1.64.1"

// The VC the test reserves through the form.
const vcName = "webvc"

func TestReserveThroughTheWebUI(t *testing.T) {
	chromium := findChromium(t)
	nodeBin, npmBin := findNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	pwDir := installPlaywright(ctx, t, npmBin)
	arts := artifactDir(t)

	f := newFederation(ctx, t)
	standIn := f.startLifecycleStandIn(ctx, t, vcName)

	profile := filepath.Join(t.TempDir(), "chromium-profile")
	if err := os.Mkdir(profile, 0o700); err != nil {
		t.Fatal(err)
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "ui.mjs")
	cmd := exec.CommandContext(ctx, nodeBin, script)
	cmd.Env = append(os.Environ(),
		"MUSUBI_URL="+f.url,
		"MUSUBI_TOKEN="+f.providerToken,
		"MUSUBI_VC="+vcName,
		"MUSUBI_ARTIFACTS="+arts,
		"CHROMIUM="+chromium,
		"CHROMIUM_PROFILE="+profile,
		"PLAYWRIGHT_DIR="+pwDir,
		"PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1",
	)
	cmd.WaitDelay = 10 * time.Second
	var screenshots []string
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		t.Logf("browser %6.2fs: %s", time.Since(start).Seconds(), line)
		if p, ok := strings.CutPrefix(line, "screenshot: "); ok {
			screenshots = append(screenshots, p)
		}
	}
	err = cmd.Wait()
	if s := strings.TrimSpace(stderr.String()); s != "" {
		t.Logf("browser stderr:\n%s", s)
	}
	if err != nil {
		t.Fatalf("the browser script failed: %v", err)
	}
	if err := standIn.wait(); err != nil {
		t.Fatalf("lifecycle stand-in: %v", err)
	}

	// What the page did, as the store records it.
	rs, err := reserve.New(reserve.Config{Store: f.store})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := rs.Get(ctx, vcName)
	if err != nil {
		t.Fatalf("the reservation the form made: %v", err)
	}
	if rec.Owner != "alice" || len(rec.Placement.Nodes) != 3 || rec.Placement.Policy != admission.Spread || rec.Placement.MemoryMiB != 2048 {
		t.Errorf("reservation %+v: want owner alice, 3 nodes, spread, 2048 MiB", rec)
	}
	if _, err := rs.Get(ctx, "toobig"); !errors.Is(err, reserve.ErrNotFound) {
		t.Errorf("the refused reservation exists: %v", err)
	}

	want := []string{"01-login-refused", "02-overlay", "03-timetable", "04-refused", "05-vcs", "06-jobs", "07-token-rejected"}
	if len(screenshots) != len(want) {
		t.Errorf("%d screenshots, want %d", len(screenshots), len(want))
	}
	for i, p := range screenshots {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 10000 {
			t.Errorf("screenshot %s: not a PNG of a rendered page (%d bytes, %v)", p, len(b), err)
		}
		if i < len(want) && !strings.Contains(filepath.Base(p), want[i]) {
			t.Errorf("screenshot %d is %s, want %s", i, p, want[i])
		}
		fmt.Printf("artifact: %s\n", p)
	}
}

// findChromium returns Debian's chromium or skips.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("MUSUBI_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (Debian package chromium; scripts/deps.sh installs it): the browser test needs it")
	return ""
}

// findNode returns node and npm or skips.
func findNode(t *testing.T) (nodeBin, npmBin string) {
	t.Helper()
	var err error
	if nodeBin, err = exec.LookPath("node"); err != nil {
		t.Skip("node is not installed (Debian package nodejs): the browser test drives Chromium with playwright-core")
	}
	if npmBin, err = exec.LookPath("npm"); err != nil {
		t.Skip("npm is not installed: the browser test installs playwright-core with it")
	}
	return nodeBin, npmBin
}

// installPlaywright installs playwright-core@playwrightVersion into a
// cache directory once (later runs reuse it) and returns the directory
// that holds its node_modules.
func installPlaywright(ctx context.Context, t *testing.T, npmBin string) string {
	t.Helper()
	base := os.Getenv("MUSUBI_PLAYWRIGHT_DIR")
	if base == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		base = filepath.Join(cache, "musubi", "playwright-core-"+playwrightVersion)
	}
	if installedVersion(base) == playwrightVersion {
		t.Logf("playwright-core %s: cached in %s", playwrightVersion, base)
		return base
	}
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(base), ".install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "package.json"), []byte(`{"name":"musubi-browser-test","private":true}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, npmBin, "install", "--prefix", tmp, "--no-audit", "--no-fund", "--ignore-scripts",
		"--save-exact", "--loglevel=error", "playwright-core@"+playwrightVersion)
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm install playwright-core@%s: %v\n%s", playwrightVersion, err, out)
	}
	if v := installedVersion(tmp); v != playwrightVersion {
		t.Fatalf("npm installed playwright-core %q, want %s", v, playwrightVersion)
	}
	// Another run may have finished first: keep whichever is there.
	if err := os.Rename(tmp, base); err != nil && installedVersion(base) != playwrightVersion {
		t.Fatalf("install playwright-core into %s: %v", base, err)
	}
	t.Logf("playwright-core %s: installed in %s (%.1fs)", playwrightVersion, base, time.Since(start).Seconds())
	return base
}

func installedVersion(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", "playwright-core", "package.json"))
	if err != nil {
		return ""
	}
	var p struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(b, &p) != nil {
		return ""
	}
	return p.Version
}

// artifactDir is where the screenshots go, emptied of an earlier run's.
func artifactDir(t *testing.T) string {
	t.Helper()
	root := os.Getenv("MUSUBI_ARTIFACTS")
	if root == "" {
		_, file, _, _ := runtime.Caller(0)
		root = filepath.Join(filepath.Dir(file), "..", "artifacts")
	}
	dir, err := filepath.Abs(filepath.Join(root, "browser"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	for _, p := range old {
		_ = os.Remove(p)
	}
	return dir
}

// federation is three sites in one in-memory store, and the API server
// with the web UI mounted, as a peer of site osaka serves it.
type federation struct {
	store         coord.Store
	url           string
	providerToken string
	vcsGets       atomic.Int64 // GET /api/v1/vcs requests served
}

func newFederation(ctx context.Context, t *testing.T) *federation {
	t.Helper()
	st := memstore.New().Connect()
	t.Cleanup(func() { _ = st.Close() })
	if err := node.InitSchema(ctx, st); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sites := map[string]string{"osaka": "192.0.2.10", "sendai": "192.0.2.30", "tokyo": "192.0.2.20"}
	for name, gw := range sites {
		if err := node.RegisterSite(ctx, st, node.SiteRecord{Name: name, Gateway: gw, Joined: now.Add(-48 * time.Hour)},
			node.LiveRecord{Peer: name + "-gw", Since: now.Add(-time.Hour), Version: "e2e"}); err != nil {
			t.Fatal(err)
		}
	}
	// Links as the overlay measures them: osaka-tokyo and osaka-sendai
	// up, sendai-tokyo down.
	for _, l := range []topology.Link{
		{A: "osaka", B: "tokyo", Cost: 1200, Up: true, Updated: now},
		{A: "osaka", B: "sendai", Cost: 8300, Up: true, Updated: now},
		{A: "sendai", B: "tokyo", Cost: 4500, Up: false, Updated: now},
	} {
		data, _ := json.Marshal(l)
		if _, err := st.Create(ctx, coord.LinkPath(l.A, l.B), data, coord.Persistent, nil); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := reserve.New(reserve.Config{Store: st, Owner: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []admission.Host{
		{Name: "osaka-h1", Site: "osaka", MemoryMiB: 8192, VCPUs: 8},
		{Name: "osaka-h2", Site: "osaka", MemoryMiB: 8192, VCPUs: 8},
		{Name: "tokyo-h1", Site: "tokyo", MemoryMiB: 8192, VCPUs: 8},
		{Name: "sendai-h1", Site: "sendai", MemoryMiB: 8192, VCPUs: 8},
	} {
		if err := rs.RegisterHost(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	// An earlier reservation later today, so the timetable has more
	// than the one the test makes.
	later := now.Truncate(time.Hour).Add(3 * time.Hour)
	if _, err := rs.Reserve(ctx, admission.Request{VC: "batch", Nodes: 2, MemoryMiB: 4096, VCPUs: 4,
		Window: admission.Window{Start: later, End: later.Add(5 * time.Hour)}, Policy: admission.Pack}); err != nil {
		t.Fatal(err)
	}

	f := &federation{store: st, providerToken: api.NewToken()}
	tf, _ := json.Marshal(api.TokensFile{Tokens: []api.TokenEntry{
		{Name: "alice", Role: api.RoleProvider, SHA256: api.HashToken(f.providerToken)},
	}})
	auth, err := api.ParseTokens(tf)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.NewServer(api.Config{
		Site: "osaka", Version: "e2e", Store: func() coord.Store { return st }, Auth: auth,
		Logger: slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Mount("/", web.Handler())
	h := srv.Handler()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == api.Prefix+"/vcs" {
			f.vcsGets.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	f.url = hs.URL + "/"
	return f
}

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(b []byte) (int, error) {
	w.t.Logf("api: %s", bytes.TrimSpace(b))
	return len(b), nil
}

// standIn plays the sites' lifecycle reconcilers for one VC.
type standIn struct {
	done chan struct{}
	err  error
}

func (s *standIn) wait() error {
	<-s.done
	return s.err
}

// startLifecycleStandIn waits for the VC's reservation, then writes what
// the sites' reconcilers write while they build it: each site's status
// "building", and, once the page has polled the VC list twice more (it
// has had the chance to show the VC provisioning), the node records and
// "ready". Then it submits two jobs to the VC's queue, as users on its
// nodes would. It ends when that is done or ctx ends; the test waits for
// it.
func (f *federation) startLifecycleStandIn(ctx context.Context, t *testing.T, vc string) *standIn {
	s := &standIn{done: make(chan struct{})}
	ctx, cancel := context.WithCancel(ctx)
	var once sync.Once
	stop := func() { once.Do(cancel) }
	t.Cleanup(func() { stop(); <-s.done })
	go func() {
		defer close(s.done)
		defer stop()
		s.err = f.lifecycle(ctx, t, vc)
	}()
	return s
}

// poll calls cond every 50 ms until it is true, it fails, or ctx ends.
func poll(ctx context.Context, what string, cond func() (bool, error)) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
}

func (f *federation) lifecycle(ctx context.Context, t *testing.T, vc string) error {
	rs, err := reserve.New(reserve.Config{Store: f.store})
	if err != nil {
		return err
	}
	var rec reserve.Record
	if err := poll(ctx, "the reservation of "+vc, func() (bool, error) {
		r, err := rs.Get(ctx, vc)
		if errors.Is(err, reserve.ErrNotFound) {
			return false, nil
		}
		rec = r
		return err == nil, err
	}); err != nil {
		return err
	}
	perSite := map[string]int{}
	for _, n := range rec.Placement.Nodes {
		perSite[n.Site]++
	}
	put := func(p string, v any) error {
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if err := coord.EnsurePath(ctx, f.store, coord.Parent(p)); err != nil {
			return err
		}
		_, err = f.store.Create(ctx, p, data, coord.Persistent, nil)
		if errors.Is(err, coord.ErrExists) {
			_, err = f.store.Set(ctx, p, data, coord.AnyVersion)
		}
		return err
	}
	for site, n := range perSite {
		if err := put(coord.VCStatusPath(vc, site), api.SiteProgress{Site: site, State: "building", Nodes: n, Message: "creating VLAN ports and nodes", Updated: time.Now()}); err != nil {
			return err
		}
	}
	t.Logf("stand-in: %s building at %d sites", vc, len(perSite))
	seen := f.vcsGets.Load()
	if err := poll(ctx, "the page to poll the VC list", func() (bool, error) { return f.vcsGets.Load() >= seen+2, nil }); err != nil {
		return err
	}
	for i, n := range rec.Placement.Nodes {
		rec := map[string]any{"state": "running", "ip": fmt.Sprintf("10.%d.0.%d", rec.Placement.VLAN%250, 10+i),
			"mac": fmt.Sprintf("52:54:00:%02x:00:%02x", rec.Placement.VLAN%256, i), "port": fmt.Sprintf("mv%d-%s", rec.Placement.VLAN, n.Name),
			"vlan": rec.Placement.VLAN, "site": n.Site, "host": n.Host}
		if err := put(coord.VCNodePath(vc, n.Name), rec); err != nil {
			return err
		}
	}
	for site, n := range perSite {
		if err := put(coord.VCStatusPath(vc, site), api.SiteProgress{Site: site, State: "ready", Nodes: n, NodesReady: n, Updated: time.Now()}); err != nil {
			return err
		}
	}
	t.Logf("stand-in: %s ready", vc)
	q, err := jobqueue.New(jobqueue.Config{Store: f.store, VC: vc})
	if err != nil {
		return err
	}
	if err := q.Init(ctx); err != nil {
		return err
	}
	for _, spec := range []*sge.JobSpec{
		{Name: "dock", Script: []byte("#!/bin/sh\nvina --config dock.conf\n"), ScriptFile: "dock.sh", Submitter: sge.Submitter{User: "alice"}},
		{Name: "screen", Script: []byte("#!/bin/sh\ntrue\n"), ScriptFile: "screen.sh", Array: &sge.TaskRange{First: 1, Last: 100, Step: 1}, Submitter: sge.Submitter{User: "alice"}},
	} {
		if _, err := q.Submit(ctx, spec); err != nil {
			return err
		}
	}
	t.Logf("stand-in: two jobs submitted to %s", vc)
	return nil
}
