package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/admission"
	"github.com/musubi-fabric/musubi/node/metrics"
	"github.com/musubi-fabric/musubi/node/reserve"
)

// Config configures a Server.
type Config struct {
	// Site is the peer's site; Version its musubi version.
	Site, Version string
	// Store returns the peer's coordination session, or nil while there
	// is none yet (requests then get 503).
	Store func() coord.Store
	// Auth checks bearer tokens (nil: no token is valid).
	Auth *Authenticator
	// Metrics, if set, counts requests and serves /metrics.
	Metrics *metrics.Metrics
	// Ready reports the peer's readiness for /readyz and the status
	// (nil: ready). Each string is a problem.
	Ready func() []string
	// Admission tunes admission decisions.
	Admission admission.Options
	// MaxBodyBytes bounds request bodies (default 1 MiB).
	MaxBodyBytes int64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives request errors (default: discard). Request bodies
	// and tokens are never logged.
	Logger *slog.Logger
}

// Server is the peer's REST API. Create it with NewServer; serve its
// Handler on any listener, or run it with Run.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
	h   http.Handler

	rmu       sync.Mutex
	reservers map[string]*reserve.Reserver // by owner
	rstore    coord.Store                  // the store they were made for
}

// NewServer checks cfg and returns a Server. It does no I/O.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("%w: no Store", ErrConfig)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Ready == nil {
		cfg.Ready = func() []string { return nil }
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), reservers: map[string]*reserve.Reserver{}}
	s.routes()
	s.h = s.instrument(s.mux)
	return s, nil
}

// Handler is the API's HTTP handler (every route, /healthz, /readyz and
// /metrics).
func (s *Server) Handler() http.Handler { return s.h }

// Mount adds a handler for a pattern outside the API (the web UI). It
// must be called before the Server serves.
func (s *Server) Mount(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// authed wraps an API handler: it identifies the principal (token, or
// root on the unix socket) or answers 401.
func (s *Server) authed(h func(w http.ResponseWriter, r *http.Request, p Principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var p Principal
		tok, present := bearer(r)
		switch {
		case present:
			var ok bool
			if p, ok = s.cfg.Auth.Check(tok); !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="musubi"`)
				writeError(w, &Error{Status: http.StatusUnauthorized, Message: "invalid token",
					Hint: "check the token file given with --token-file (or MUSUBI_TOKEN_FILE); ask the site administrator for a new token"})
				return
			}
		case socketRoot(r.Context()):
			p = Principal{Name: "root", Role: RoleAdmin, Via: "socket"}
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="musubi"`)
			writeError(w, &Error{Status: http.StatusUnauthorized, Message: "authentication required",
				Hint: "send 'Authorization: Bearer <token>' (the CLI: --token-file FILE), or use the peer's unix socket as root"})
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)), p)
	}
}

// statusWriter records the status code for the request metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// instrument recovers from panics (a bug must not take the peer down) and
// counts every request by route pattern and status.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("API handler panicked", "method", r.Method, "route", r.Pattern, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if sw.code == 0 {
					writeError(sw, &Error{Status: http.StatusInternalServerError, Message: "internal error", Hint: "this is a bug in musubi; the peer's log has the details"})
				}
			}
			if s.cfg.Metrics != nil {
				route := r.Pattern
				if route == "" {
					route = "unmatched"
				}
				code := sw.code
				if code == 0 {
					code = http.StatusOK
				}
				s.cfg.Metrics.APIRequests.WithLabelValues(r.Method, route, strconv.Itoa(code)).Inc()
				s.cfg.Metrics.APIDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// writeJSON writes v with the status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeError writes an Error as JSON.
func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Status, e)
}

// decodeBody decodes a JSON request body strictly, bounded by
// MaxBodyBytes; it writes the 400 or 413 itself and returns false.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any, optional bool) bool {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if optional && errors.Is(err, errEOF) {
		return true
	}
	if err == nil {
		if dec.More() {
			err = errors.New("unexpected data after the JSON object")
		} else if _, terr := dec.Token(); terr == nil {
			err = errors.New("unexpected data after the JSON object")
		}
	}
	if err == nil {
		return true
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeError(w, &Error{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("request body larger than %d bytes", mbe.Limit),
			Hint: "send a smaller request"})
		return false
	}
	writeError(w, &Error{Status: http.StatusBadRequest, Message: "malformed JSON body: " + err.Error(),
		Hint: "send one JSON object with the documented fields (see 'musubi help' or the API documentation)"})
	return false
}

// Listeners are where Run serves.
type Listeners struct {
	// TCP, if set, serves HTTPS when TLS is set, else HTTP.
	TCP net.Listener
	TLS *tls.Config
	// Unix, if set, is the local socket; connections are identified by
	// their peer credentials.
	Unix net.Listener
}

// Run serves on the listeners until ctx ends, then shuts down gracefully
// within grace (open requests finish, then connections close) and
// returns. It closes the listeners.
func (s *Server) Run(ctx context.Context, ls Listeners, grace time.Duration) error {
	var servers []*http.Server
	serve := func(ln net.Listener, tlsCfg *tls.Config, connCtx func(context.Context, net.Conn) context.Context) *http.Server {
		hs := &http.Server{
			Handler:           s.h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       time.Minute,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			TLSConfig:         tlsCfg,
			ConnContext:       connCtx,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
			BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		}
		servers = append(servers, hs)
		return hs
	}
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	start := func(hs *http.Server, ln net.Listener, useTLS bool) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if useTLS {
				err = hs.ServeTLS(ln, "", "")
			} else {
				err = hs.Serve(ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("api: serve %s: %w", ln.Addr(), err)
			}
		}()
	}
	if ls.TCP != nil {
		start(serve(ls.TCP, ls.TLS, nil), ls.TCP, ls.TLS != nil)
	}
	if ls.Unix != nil {
		start(serve(ls.Unix, nil, withPeerCred), ls.Unix, false)
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	for _, hs := range servers {
		if serr := hs.Shutdown(sctx); serr != nil {
			_ = hs.Close()
		}
	}
	wg.Wait()
	return err
}

// ListenUnix opens the API's unix socket at path, mode 0660. A socket
// file left by a dead peer is replaced; a live one (something answers)
// is an error.
func ListenUnix(path string) (net.Listener, error) {
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("api: %s exists and is not a socket: remove it or choose another api.socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("api: %s: another peer is serving on this socket: stop it first", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("api: remove stale socket %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api: listen on %s: %w (does its directory exist?)", path, err)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(true)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api: chmod %s: %w", path, err)
	}
	return ln, nil
}

// TLSConfig loads a certificate and key for the HTTPS listener.
func TLSConfig(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("api: TLS certificate %s / key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

type peerCredKey struct{}

// withPeerCred attaches the unix connection's peer uid to its context.
func withPeerCred(ctx context.Context, c net.Conn) context.Context {
	uid, err := peerUID(c)
	if err != nil {
		return ctx
	}
	return context.WithValue(ctx, peerCredKey{}, uid)
}

// socketRoot reports whether the request came over the unix socket from
// a process running as root.
func socketRoot(ctx context.Context) bool {
	uid, ok := ctx.Value(peerCredKey{}).(uint32)
	return ok && uid == 0
}
