package web_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/memstore"
	"github.com/musubi-fabric/musubi/node/api"
	"github.com/musubi-fabric/musubi/web"
)

func get(t *testing.T, h http.Handler, method, p string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, p, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// assetRefs are the src/href references of index.html.
var assetRefs = regexp.MustCompile(`(?:src|href)="([^"#][^"]*)"`)

func TestPageAndItsAssets(t *testing.T) {
	h := web.Handler()
	res := get(t, h, "GET", "/", nil)
	page := body(t, res)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if csp := res.Header.Get("Content-Security-Policy"); csp != web.ContentSecurityPolicy || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	for _, k := range []string{"X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options", "ETag"} {
		if res.Header.Get(k) == "" {
			t.Errorf("no %s header", k)
		}
	}
	for _, want := range []string{`<script type="module" src="js/app.js">`, `id="map"`, `id="gantt"`, `id="reserve-form"`, `id="jobs-table"`, `id="login-form"`, `lang="en"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
	refs := assetRefs.FindAllStringSubmatch(page, -1)
	if len(refs) < 3 {
		t.Fatalf("page references only %d assets", len(refs))
	}
	for _, m := range refs {
		p := "/" + m[1]
		res := get(t, h, "GET", p, nil)
		if res.StatusCode != 200 {
			t.Errorf("GET %s: %d", p, res.StatusCode)
			continue
		}
		if ct, want := res.Header.Get("Content-Type"), types[path.Ext(p)]; ct != want {
			t.Errorf("GET %s: Content-Type %q, want %q", p, ct, want)
		}
	}
	if res := get(t, h, "HEAD", "/style.css", nil); res.StatusCode != 200 || res.ContentLength <= 0 {
		t.Errorf("HEAD /style.css: %d, length %d", res.StatusCode, res.ContentLength)
	}
	if res := get(t, h, "GET", "/index.html", nil); res.StatusCode != 200 {
		t.Errorf("GET /index.html: %d", res.StatusCode)
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	h := web.Handler()
	for _, p := range []string{"/nope", "/js/", "/js/nope.js", "/../web.go", "/static/index.html"} {
		if res := get(t, h, "GET", p, nil); res.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", p, res.StatusCode)
		}
	}
	res := get(t, h, "POST", "/", nil)
	if res.StatusCode != 405 || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d, Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
}

func TestETagRevalidation(t *testing.T) {
	h := web.Handler()
	res := get(t, h, "GET", "/js/app.js", nil)
	etag := res.Header.Get("ETag")
	if etag == "" || res.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, res.Header.Get("Cache-Control"))
	}
	if res := get(t, h, "GET", "/js/app.js", map[string]string{"If-None-Match": etag}); res.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation: %d, want 304", res.StatusCode)
	}
	if other := get(t, h, "GET", "/style.css", nil).Header.Get("ETag"); other == etag {
		t.Errorf("two assets share ETag %s", etag)
	}
}

// staticFiles reads the embedded tree from the source directory.
func staticFiles(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := fs.WalkDir(os.DirFS("static"), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(filepath.Join("static", p))
		out[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The network is closed and the page must work offline: no URL outside
// this origin anywhere in the assets (the SVG namespace is a name, not a
// resource).
func TestNoExternalResources(t *testing.T) {
	url := regexp.MustCompile(`(?i)(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s"'` + "`" + `)]*`)
	h := web.Handler()
	for p, text := range staticFiles(t) {
		for _, m := range url.FindAllString(text, -1) {
			if m == "http://www.w3.org/2000/svg" {
				continue
			}
			t.Errorf("%s refers to %s", p, m)
		}
		if strings.Contains(text, "@import") {
			t.Errorf("%s uses @import", p)
		}
		// Every file of the tree is served.
		if res := get(t, h, "GET", "/"+p, nil); res.StatusCode != 200 {
			t.Errorf("GET /%s: %d", p, res.StatusCode)
		}
	}
}

// Every relative module import resolves to an embedded file.
func TestModuleImportsResolve(t *testing.T) {
	imp := regexp.MustCompile(`(?m)^\s*import\s[^'"]*['"]([^'"]+)['"]`)
	files := staticFiles(t)
	n := 0
	for p, text := range files {
		if path.Ext(p) != ".js" {
			continue
		}
		for _, m := range imp.FindAllStringSubmatch(text, -1) {
			n++
			if !strings.HasPrefix(m[1], "./") {
				t.Errorf("%s imports %q: only relative modules of the UI are allowed", p, m[1])
				continue
			}
			if _, ok := files[path.Join(path.Dir(p), m[1])]; !ok {
				t.Errorf("%s imports %s: no such file", p, m[1])
			}
		}
	}
	if n < 5 {
		t.Errorf("found only %d imports: the pattern is stale", n)
	}
}

// The pure helpers' tests (web/jstest) run under node's test runner.
func TestJavaScriptUnits(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the JavaScript unit tests in web/jstest do not run")
	}
	files, err := filepath.Glob(filepath.Join("jstest", "*.test.mjs"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no JavaScript tests in jstest/ (%v)", err)
	}
	out, err := exec.Command(node, append([]string{"--test"}, files...)...).CombinedOutput()
	t.Logf("node --test %s:\n%s", strings.Join(files, " "), out)
	if err != nil {
		t.Fatalf("JavaScript unit tests failed: %v", err)
	}
}

// The UI mounted on the API server at "/" as node/peer does it: the page
// and the API answer side by side.
func TestMountedOnTheAPIServer(t *testing.T) {
	st := memstore.New().Connect()
	t.Cleanup(func() { _ = st.Close() })
	srv, err := api.NewServer(api.Config{Site: "s1", Store: func() coord.Store { return st }})
	if err != nil {
		t.Fatal(err)
	}
	srv.Mount("/", web.Handler())
	h := srv.Handler()
	if res := get(t, h, "GET", "/", nil); res.StatusCode != 200 || !strings.Contains(body(t, res), "musubi") {
		t.Errorf("GET /: %d", res.StatusCode)
	}
	if res := get(t, h, "GET", "/js/app.js", nil); res.StatusCode != 200 {
		t.Errorf("GET /js/app.js: %d", res.StatusCode)
	}
	if res := get(t, h, "GET", "/api/v1/status", nil); res.StatusCode != 401 {
		t.Errorf("GET /api/v1/status without a token: %d, want 401", res.StatusCode)
	}
	if res := get(t, h, "GET", "/api/v1/nope", nil); res.StatusCode != 404 || !strings.Contains(res.Header.Get("Content-Type"), "json") {
		t.Errorf("GET /api/v1/nope: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if res := get(t, h, "GET", "/healthz", nil); res.StatusCode != 200 {
		t.Errorf("GET /healthz: %d", res.StatusCode)
	}
}
