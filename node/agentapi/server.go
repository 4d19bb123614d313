package agentapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/jobqueue"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

// maxBody bounds a request body (a batch of job specifications with their
// scripts).
const maxBody = 256 << 20

// ServerConfig configures a Server.
type ServerConfig struct {
	// Backend does the work; required.
	Backend Backend
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// LookupUser and LookupGroup name a caller's uid and gid; nil means
	// the host's user database (os/user). A caller whose uid has no name
	// is refused, as Grid Engine refuses unknown users.
	LookupUser  func(uid uint32) (string, error)
	LookupGroup func(gid uint32) (string, error)
}

// Server serves the agent API on a unix socket.
type Server struct {
	cfg ServerConfig
	log *slog.Logger
	mux *http.ServeMux

	mu    sync.Mutex
	names map[string]cachedName
}

type cachedName struct {
	name string
	at   time.Time
}

// nameTTL is how long a looked-up user or group name is reused.
const nameTTL = time.Minute

type callerKey struct{}

type callerInfo struct {
	c   Caller
	err error
}

// NewServer returns a server for cfg.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("agentapi: ServerConfig.Backend is nil")
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), names: map[string]cachedName{}}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	b := cfg.Backend
	s.mux.Handle("POST "+pathWhoami, handle(s, func(_ context.Context, c Caller, _ struct{}) (Caller, error) { return c, nil }))
	s.mux.Handle("POST "+pathSubmit, handle(s, func(ctx context.Context, c Caller, r SubmitRequest) (SubmitResponse, error) {
		for i, sp := range r.Specs {
			if sp == nil {
				return SubmitResponse{}, &Error{Kind: KindInvalid, Message: fmt.Sprintf("job %d of the request is empty", i+1)}
			}
		}
		ids, err := b.Submit(ctx, c, r.Specs)
		return SubmitResponse{IDs: ids}, err
	}))
	s.mux.Handle("POST "+pathWait, handle(s, func(ctx context.Context, c Caller, r WaitRequest) (WaitResponse, error) {
		res, err := b.Wait(ctx, c, r.ID)
		return WaitResponse{Results: res}, err
	}))
	s.mux.Handle("POST "+pathJobs, handle(s, func(ctx context.Context, c Caller, r JobsRequest) (JobsResponse, error) {
		jobs, err := b.Jobs(ctx, c, r.Users)
		return JobsResponse{Jobs: jobs}, err
	}))
	s.mux.Handle("POST "+pathDetails, handle(s, func(ctx context.Context, c Caller, r DetailsRequest) (DetailsResponse, error) {
		return b.Details(ctx, c, r.Refs)
	}))
	s.mux.Handle("POST "+pathDelete, handle(s, func(ctx context.Context, c Caller, r DeleteRequest) (DeleteResponse, error) {
		res, err := b.Delete(ctx, c, r)
		return DeleteResponse{Results: res}, err
	}))
	s.mux.Handle("POST "+pathHold, handle(s, func(ctx context.Context, c Caller, r HoldRequest) (Output, error) {
		return b.Hold(ctx, c, r)
	}))
	s.mux.Handle("POST "+pathAlter, handle(s, func(ctx context.Context, c Caller, r AlterRequest) (Output, error) {
		if r.Request == nil {
			return Output{}, &Error{Kind: KindInvalid, Message: "no qalter request"}
		}
		return b.Alter(ctx, c, r.Request)
	}))
	s.mux.Handle("POST "+pathAccounting, handle(s, func(ctx context.Context, c Caller, r AccountingRequest) (AccountingResponse, error) {
		jobs, err := b.Accounting(ctx, c, r.Job)
		return AccountingResponse{Jobs: jobs}, err
	}))
	s.mux.Handle("POST "+pathHosts, handle(s, func(ctx context.Context, c Caller, r HostsRequest) (HostsResponse, error) {
		return b.Hosts(ctx, c, r.Jobs)
	}))
	return s, nil
}

// Listen creates the agent's socket at path: its directory is created
// (mode 0755) if missing, a stale socket left by a dead agent is removed,
// and the socket is made connectable by every local user (mode 0666; the
// server identifies callers by their credentials). It fails if another
// agent answers on path.
func Listen(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("agentapi: empty socket path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("agentapi: socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("agentapi: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("agentapi: %s is in use by a running agent", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("agentapi: remove stale socket: %w", err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("agentapi: listen: %w", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		l.Close()
		return nil, fmt.Errorf("agentapi: socket mode: %w", err)
	}
	return l, nil
}

// Serve answers requests on l until ctx ends, then closes l and returns
// once every request handler has returned (handlers see ctx's
// cancellation, so long waits end). It returns nil after ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	hs := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ConnContext:       s.connContext,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("agentapi: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		s.log.Warn("closing API connections", "err", err)
		hs.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("agentapi: serve: %w", err)
	}
	return nil
}

// connContext identifies the caller of a new connection.
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	pid, uid, gid, err := peerCred(c)
	info := callerInfo{err: err}
	if err == nil {
		info.c = Caller{PID: pid, UID: uid, GID: gid}
		info.c.User, info.err = s.lookup("u", uid, s.cfg.LookupUser, lookupUser)
		if info.err == nil {
			var gerr error
			info.c.Group, gerr = s.lookup("g", gid, s.cfg.LookupGroup, lookupGroup)
			if gerr != nil {
				info.c.Group = strconv.FormatUint(uint64(gid), 10)
			}
		}
	}
	return context.WithValue(ctx, callerKey{}, info)
}

func (s *Server) lookup(kind string, id uint32, f, def func(uint32) (string, error)) (string, error) {
	key := kind + strconv.FormatUint(uint64(id), 10)
	s.mu.Lock()
	if n, ok := s.names[key]; ok && time.Since(n.at) < nameTTL {
		s.mu.Unlock()
		return n.name, nil
	}
	s.mu.Unlock()
	if f == nil {
		f = def
	}
	name, err := f(id)
	if err != nil {
		return "", err
	}
	if name == "" {
		return "", fmt.Errorf("agentapi: id %d has an empty name", id)
	}
	s.mu.Lock()
	s.names[key] = cachedName{name: name, at: time.Now()}
	s.mu.Unlock()
	return name, nil
}

func lookupUser(uid uint32) (string, error) {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return "", err
	}
	return u.Username, nil
}

func lookupGroup(gid uint32) (string, error) {
	g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10))
	if err != nil {
		return "", err
	}
	return g.Name, nil
}

// handle adapts a typed backend call to an HTTP handler: it checks the
// caller, decodes the JSON request, and encodes the answer or the error.
func handle[Req, Resp any](s *Server, f func(context.Context, Caller, Req) (Resp, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info, _ := r.Context().Value(callerKey{}).(callerInfo)
		if info.err != nil || (info.c == Caller{}) {
			msg := "cannot identify the caller"
			if info.err != nil {
				msg += ": " + info.err.Error()
			}
			writeError(w, &Error{Kind: KindPermission, Message: msg})
			return
		}
		var req Req
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
		if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			writeError(w, &Error{Kind: KindInvalid, Message: "decode request: " + err.Error()})
			return
		}
		resp, err := f(r.Context(), info.c, req)
		if err != nil {
			e := toError(err)
			if e.Kind == KindInternal {
				s.log.Warn("request failed", "path", r.URL.Path, "user", info.c.User, "err", err)
			}
			writeError(w, e)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(resp); err != nil {
			s.log.Debug("writing response", "path", r.URL.Path, "err", err)
		}
	})
}

// toError classifies a backend error for the wire.
func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	out := &Error{Kind: KindInternal, Message: err.Error()}
	var se *sge.Error
	if errors.As(err, &se) {
		out.SGE = se
		out.Kind = KindInvalid
	}
	switch {
	case errors.Is(err, jobqueue.ErrNoSuchJob), errors.Is(err, jobqueue.ErrFinished):
		out.Kind = KindNotFound
	case errors.Is(err, jobqueue.ErrPermission):
		out.Kind = KindPermission
	case errors.Is(err, jobqueue.ErrInvalidSpec), errors.Is(err, jobqueue.ErrIllegalTransition):
		out.Kind = KindInvalid
	case coord.Retryable(err), errors.Is(err, coord.ErrSessionExpired), errors.Is(err, coord.ErrClosed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		out.Kind = KindUnavailable
	}
	return out
}

func writeError(w http.ResponseWriter, e *Error) {
	code := http.StatusInternalServerError
	switch e.Kind {
	case KindInvalid:
		code = http.StatusBadRequest
	case KindPermission:
		code = http.StatusForbidden
	case KindNotFound:
		code = http.StatusNotFound
	case KindUnavailable:
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(errorBody{Kind: e.Kind, Message: e.Message, SGE: e.SGE})
}
