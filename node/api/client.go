package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// Endpoint is the peer's API: a unix socket ("unix:///run/musubi/peer.sock"
	// or just its absolute path) or a URL ("https://peer.example:7443").
	Endpoint string
	// Token is the bearer token ("" for none: root on the unix socket).
	Token string
	// CAFile is a PEM bundle trusted for the peer's HTTPS certificate, in
	// addition to the system's.
	CAFile string
	// Timeout bounds each request (default 30 s).
	Timeout time.Duration
}

// Client calls a peer's API. Errors from the peer are *Error.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// maxResponseBytes bounds a response body the client reads.
const maxResponseBytes = 64 << 20

// NewClient checks cfg and returns a Client. It does no I/O.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	c := &Client{token: cfg.Token}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        4,
		IdleConnTimeout:     30 * time.Second,
	}
	ep := cfg.Endpoint
	switch {
	case strings.HasPrefix(ep, "unix://") || strings.HasPrefix(ep, "/"):
		path := strings.TrimPrefix(ep, "unix://")
		if !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("%w: unix socket %q: want an absolute path", ErrConfig, path)
		}
		tr.Proxy = nil
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		c.base = "http://musubi-peer"
	case strings.HasPrefix(ep, "https://") || strings.HasPrefix(ep, "http://"):
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("%w: API address %q: want https://HOST:PORT", ErrConfig, ep)
		}
		c.base = strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/")
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("%w: CA file: %w", ErrConfig, err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil || pool == nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrConfig, cfg.CAFile)
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
	default:
		return nil, fmt.Errorf("%w: API address %q: want a unix socket path or an https:// URL", ErrConfig, ep)
	}
	c.http = &http.Client{Transport: tr, Timeout: cfg.Timeout}
	return c, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// do sends one request; out, when not nil, receives the JSON response.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("api: %s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		e := &Error{}
		if json.Unmarshal(data, e) != nil || e.Message == "" {
			e = &Error{Message: strings.TrimSpace(http.StatusText(resp.StatusCode) + " " + snippet(data))}
		}
		e.Status = resp.StatusCode
		return e
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("api: %s %s: malformed response: %w", method, path, err)
	}
	return nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// IsStatus reports whether err is an API error with the HTTP status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// Status is GET /status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var v Status
	return v, c.do(ctx, http.MethodGet, Prefix+"/status", nil, &v)
}

// Sites is GET /sites.
func (c *Client) Sites(ctx context.Context) (Sites, error) {
	var v Sites
	return v, c.do(ctx, http.MethodGet, Prefix+"/sites", nil, &v)
}

// Topology is GET /topology.
func (c *Client) Topology(ctx context.Context) (Topology, error) {
	var v Topology
	return v, c.do(ctx, http.MethodGet, Prefix+"/topology", nil, &v)
}

// VCs is GET /vcs.
func (c *Client) VCs(ctx context.Context) ([]VC, error) {
	var v VCList
	return v.VCs, c.do(ctx, http.MethodGet, Prefix+"/vcs", nil, &v)
}

// VC is GET /vcs/{vc}.
func (c *Client) VC(ctx context.Context, vc string) (VC, error) {
	var v VC
	return v, c.do(ctx, http.MethodGet, Prefix+"/vcs/"+url.PathEscape(vc), nil, &v)
}

// Reserve is POST /vcs.
func (c *Client) Reserve(ctx context.Context, req ReserveRequest) (VC, error) {
	var v VC
	return v, c.do(ctx, http.MethodPost, Prefix+"/vcs", req, &v)
}

// Cancel is DELETE /vcs/{vc}.
func (c *Client) Cancel(ctx context.Context, vc string) (VC, error) {
	var v VC
	return v, c.do(ctx, http.MethodDelete, Prefix+"/vcs/"+url.PathEscape(vc), nil, &v)
}

// Release is POST /vcs/{vc}/release (zero at: now).
func (c *Client) Release(ctx context.Context, vc string, at time.Time) (VC, error) {
	var v VC
	return v, c.do(ctx, http.MethodPost, Prefix+"/vcs/"+url.PathEscape(vc)+"/release", ReleaseRequest{At: at}, &v)
}

// Nodes is GET /vcs/{vc}/nodes.
func (c *Client) Nodes(ctx context.Context, vc string) (Nodes, error) {
	var v Nodes
	return v, c.do(ctx, http.MethodGet, Prefix+"/vcs/"+url.PathEscape(vc)+"/nodes", nil, &v)
}

// Jobs is GET /vcs/{vc}/jobs.
func (c *Client) Jobs(ctx context.Context, vc string) (Jobs, error) {
	var v Jobs
	return v, c.do(ctx, http.MethodGet, Prefix+"/vcs/"+url.PathEscape(vc)+"/jobs", nil, &v)
}

// Accounts is GET /accounts.
func (c *Client) Accounts(ctx context.Context) ([]AccountView, error) {
	var v Accounts
	return v.Accounts, c.do(ctx, http.MethodGet, Prefix+"/accounts", nil, &v)
}

// AddAccount is POST /accounts.
func (c *Client) AddAccount(ctx context.Context, a Account) (AccountView, error) {
	var v AccountView
	return v, c.do(ctx, http.MethodPost, Prefix+"/accounts", a, &v)
}

// DeleteAccount is DELETE /accounts/{user}.
func (c *Client) DeleteAccount(ctx context.Context, user string) error {
	return c.do(ctx, http.MethodDelete, Prefix+"/accounts/"+url.PathEscape(user), nil, nil)
}

// Ready is GET /readyz: nil when the peer is ready, else an *Error whose
// message lists the problems.
func (c *Client) Ready(ctx context.Context) error {
	var v struct {
		Ready    bool     `json:"ready"`
		Problems []string `json:"problems"`
	}
	err := c.do(ctx, http.MethodGet, "/readyz", nil, &v)
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusServiceUnavailable {
		return e
	}
	return err
}
