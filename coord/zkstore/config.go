package zkstore

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/musubi-fabric/musubi/coord"
)

// Sentinel errors of this package; every other failure wraps one of the
// coord sentinels.
var (
	// ErrBadConfig: the Config is invalid.
	ErrBadConfig = errors.New("zkstore: invalid configuration")
	// ErrTooLarge: the request exceeds ZooKeeper's packet limit
	// (jute.maxbuffer, 1 MiB by default); it was not sent.
	ErrTooLarge = errors.New("zkstore: request too large")
	// ErrInvalidACL: the ensemble rejected an ACL (e.g. an empty list or an
	// unknown scheme).
	ErrInvalidACL = errors.New("zkstore: invalid ACL")
	// ErrInvalidMode: a CreateMode outside coord's four modes.
	ErrInvalidMode = errors.New("zkstore: invalid create mode")
)

// Defaults of Config.
const (
	DefaultSessionTimeout   = 10 * time.Second
	DefaultReconnectBackoff = 100 * time.Millisecond
)

// Config configures Open.
type Config struct {
	// Servers are the ensemble's client addresses, host:port, tried in this
	// order (after LocalServer). The order is kept: put nearby servers first.
	// "unix:/absolute/path" names a unix socket that relays to a server
	// (a node without a route to the ensemble, see node/zkrelay).
	Servers []string
	// LocalServer is this site's server, tried first on every (re)connect.
	// Optional; it need not be repeated in Servers.
	LocalServer string
	// Root is the chroot, e.g. coord.FederationRoot("demo"). Open creates it
	// and its missing ancestors with DefaultACL, so the first session to
	// open a new root decides who may use it: create a federation's root
	// deliberately (with the federation credential) before peers and
	// agents with other credentials connect. All paths are relative to
	// it: paths returned by Create and carried by events come back without
	// it. Empty or "/" means no chroot.
	Root string
	// SessionTimeout is the requested session timeout (default 10s). The
	// servers clamp it to 2-20 ticks (4-40 s with a 2 s tick).
	SessionTimeout time.Duration
	// Credentials are digest identities added to the session on connect;
	// the client re-sends them on every reconnect, before any request.
	Credentials []coord.Credential
	// DefaultACL is the ACL of nodes created with a nil ACL, including the
	// Root. When nil: with no Credentials, world:anyone with all
	// permissions; otherwise all permissions for the first credential only
	// (in musubi the shared federation credential), so that a node written
	// by an authenticated peer is never readable by sessions without it.
	// Give it explicitly to share nodes with more identities.
	DefaultACL []coord.ACL
	// ReconnectBackoff is the pause after a full unsuccessful pass over
	// the servers (default 100ms; the library's own is a fixed 1 s). While
	// every server fails, new calls fail at once with coord.ErrUnavailable;
	// a request that was queued just before the outage fails with it after
	// at most SessionTimeout/2 (the library then pauses 1 s once).
	ReconnectBackoff time.Duration
	// Logger receives session changes (info) and the ZooKeeper client's
	// own messages (debug). Nil discards.
	Logger *slog.Logger

	// dialer replaces net.DialTimeout (tests).
	dialer zk.Dialer
}

// resolved is a validated Config with defaults applied.
type resolved struct {
	servers        []string // LocalServer first, no duplicates
	root           string   // "" for no chroot
	sessionTimeout time.Duration
	backoff        time.Duration
	acl            []zk.ACL
	creds          []coord.Credential
	logger         *slog.Logger
	dialer         zk.Dialer
}

func (c Config) resolve() (resolved, error) {
	r := resolved{sessionTimeout: c.SessionTimeout, backoff: c.ReconnectBackoff, logger: c.Logger, dialer: c.dialer}
	seen := map[string]bool{}
	add := func(s string) error {
		if err := validAddr(s); err != nil {
			return err
		}
		if !seen[s] {
			seen[s] = true
			r.servers = append(r.servers, s)
		}
		return nil
	}
	if c.LocalServer != "" {
		if err := add(c.LocalServer); err != nil {
			return r, err
		}
	}
	for _, s := range c.Servers {
		if err := add(s); err != nil {
			return r, err
		}
	}
	if len(r.servers) == 0 {
		return r, fmt.Errorf("%w: no servers", ErrBadConfig)
	}
	if c.Root != "" && c.Root != "/" {
		if err := coord.ValidPath(c.Root); err != nil {
			return r, fmt.Errorf("%w: root: %w", ErrBadConfig, err)
		}
		r.root = c.Root
	}
	switch {
	case r.sessionTimeout == 0:
		r.sessionTimeout = DefaultSessionTimeout
	case r.sessionTimeout < time.Millisecond:
		return r, fmt.Errorf("%w: session timeout %v", ErrBadConfig, c.SessionTimeout)
	}
	switch {
	case r.backoff == 0:
		r.backoff = DefaultReconnectBackoff
	case r.backoff < 0:
		return r, fmt.Errorf("%w: reconnect backoff %v", ErrBadConfig, c.ReconnectBackoff)
	}
	for _, cr := range c.Credentials {
		if err := cr.Validate(); err != nil {
			return r, fmt.Errorf("%w: %w", ErrBadConfig, err)
		}
	}
	r.creds = append(r.creds, c.Credentials...)
	switch {
	case c.DefaultACL != nil:
		if len(c.DefaultACL) == 0 {
			return r, fmt.Errorf("%w: empty default ACL", ErrBadConfig)
		}
		r.acl = toZKACL(c.DefaultACL)
	default:
		r.acl = toZKACL(coord.DefaultACL(c.Credentials))
	}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	if r.dialer == nil {
		r.dialer = dial
	}
	return r, nil
}

// UnixPrefix starts a server address that is a unix socket.
const UnixPrefix = "unix:"

// dial connects to a server: TCP, or a unix socket for a "unix:" address.
func dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	if p, ok := strings.CutPrefix(addr, UnixPrefix); ok {
		return net.DialTimeout("unix", p, timeout)
	}
	return net.DialTimeout(network, addr, timeout)
}

// ValidServer checks a server address of Config.Servers: host:port, or
// unix:/absolute/path. It does no I/O.
func ValidServer(s string) error { return validAddr(s) }

func validAddr(s string) error {
	if p, ok := strings.CutPrefix(s, UnixPrefix); ok {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			return fmt.Errorf("%w: server %q: want unix:/absolute/path", ErrBadConfig, s)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%w: server %q: %w", ErrBadConfig, s, err)
	}
	if p, err := strconv.Atoi(port); host == "" || err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%w: server %q: want host:port", ErrBadConfig, s)
	}
	return nil
}

func toZKACL(acl []coord.ACL) []zk.ACL {
	out := make([]zk.ACL, len(acl))
	for i, a := range acl {
		out[i] = zk.ACL{Perms: a.Perms, Scheme: a.Scheme, ID: a.ID}
	}
	return out
}
