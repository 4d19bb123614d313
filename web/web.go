// Package web is musubi's web UI: plain HTML, CSS and JavaScript modules
// (no build step) embedded in the binary and served by every peer next to
// its API. The page signs in with an API token (kept in the tab's session
// storage and sent as a bearer token) and polls the peer's /api/v1 routes:
// the overlay map of sites and links, the virtual clusters and their
// nodes, the reservation timetable as a Gantt chart with a form to
// reserve, and the jobs of each virtual cluster.
//
// The page loads nothing from elsewhere: its Content-Security-Policy
// allows only this origin.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every asset: scripts, styles,
// images and API calls from this origin only, no framing, no plug-ins.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type asset struct {
	data  []byte
	ctype string
	etag  string
}

type handler struct {
	assets map[string]asset // by URL path ("/", "/js/app.js")
}

// Handler serves the UI: "/" is the page, and its assets are under their
// own paths ("/style.css", "/js/app.js"); any other path is 404. Mount it
// at "/" beside the API (the page calls the API at "api/v1/..." relative
// to itself), or under a prefix with http.StripPrefix. Only GET and HEAD
// are allowed. Assets are revalidated by ETag on every load, so a new
// binary's UI is picked up at once.
func Handler() http.Handler {
	h := &handler{assets: map[string]asset{}}
	// The embedded tree is part of the binary: a failure to read it is
	// impossible in practice, and would leave that file 404.
	_ = fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		data, err := static.ReadFile(p)
		if err != nil {
			return nil
		}
		sum := sha256.Sum256(data)
		a := asset{data: data, ctype: contentType(p), etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		rel := strings.TrimPrefix(p, "static")
		h.assets[rel] = a
		if rel == "/index.html" {
			h.assets["/"] = a
		}
		return nil
	})
	return h
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".json":
		return "application/json"
	}
	return "application/octet-stream"
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	a, ok := h.assets[r.URL.Path]
	if !ok {
		http.Error(w, "not found: the web UI is at /", http.StatusNotFound)
		return
	}
	hdr.Set("Content-Type", a.ctype)
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", a.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.data))
}
