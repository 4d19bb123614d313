package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/coord"
)

// Validate checks every field and returns all problems at once (a join of
// *FieldError, each wrapping ErrInvalid), or nil. It does no I/O.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		fe := &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
		if s := settingOf(field); s != nil {
			fe.Flag, fe.Env = "--"+s.flag, s.env
		}
		errs = append(errs, fe)
	}
	if c.Site == "" {
		bad("site", "required: name this site (e.g. --site tokyo)")
	} else if coord.ValidName(c.Site) != nil {
		bad("site", "%q: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", c.Site)
	}
	if c.Root != "" {
		if err := coord.ValidPath(c.Root); err != nil || c.Root == "/" {
			bad("root", "%q: want an absolute ZooKeeper path such as /musubi/test, or leave it empty to use /musubi/<federation>", c.Root)
		}
	} else if coord.ValidName(c.Federation) != nil {
		bad("federation", "%q: use 1-63 letters, digits, '.', '_' or '-'", c.Federation)
	}
	if c.Gateway != "" {
		if a, err := netip.ParseAddr(c.Gateway); err != nil || a.IsUnspecified() || a.Zone() != "" {
			bad("gateway", "%q: want this site's public IP address, e.g. 192.0.2.10", c.Gateway)
		}
	}

	zk := c.ZooKeeper
	if len(zk.Servers) == 0 && zk.Local == "" {
		bad("zookeeper.servers", "required: list the ensemble's servers as host:port (e.g. --zk 10.0.0.1:2181,10.0.0.2:2181)")
	}
	for _, s := range zk.Servers {
		if err := hostPort(s, false); err != nil {
			bad("zookeeper.servers", "%q: %v", s, err)
		}
	}
	if zk.Local != "" {
		if err := hostPort(zk.Local, false); err != nil {
			bad("zookeeper.local", "%q: %v", zk.Local, err)
		}
	}
	if d := zk.SessionTimeout.D(); d < time.Second || d > 5*time.Minute {
		bad("zookeeper.session_timeout", "%v: want 1s to 5m (ZooKeeper clamps it to 2-20 ticks)", d)
	}

	api := c.API
	if api.Listen == "" && api.Socket == "" {
		bad("api.listen", "the API has neither a TCP address nor a unix socket: set api.listen or api.socket")
	}
	tls := api.TLSCert != "" || api.TLSKey != ""
	if (api.TLSCert == "") != (api.TLSKey == "") {
		field := "api.tls_key"
		if api.TLSCert == "" {
			field = "api.tls_cert"
		}
		bad(field, "missing: HTTPS needs both a certificate (--tls-cert) and its key (--tls-key)")
	}
	if api.Listen != "" {
		if err := hostPort(api.Listen, true); err != nil {
			bad("api.listen", "%q: %v", api.Listen, err)
		} else if !tls && !api.InsecureHTTP && !loopback(api.Listen) {
			bad("api.listen", "%q is reachable from other hosts but has no TLS: set api.tls_cert and api.tls_key, listen on 127.0.0.1, or set api.insecure_http to accept plain HTTP", api.Listen)
		}
	}
	if api.Socket != "" && !strings.HasPrefix(api.Socket, "/") {
		bad("api.socket", "%q: want an absolute path such as %s", api.Socket, DefaultSocket)
	}
	if api.MaxBodyBytes < 1<<10 || api.MaxBodyBytes > 64<<20 {
		bad("api.max_body_bytes", "%d: want 1K to 64M", api.MaxBodyBytes)
	}
	if d := c.Metrics.Interval.D(); d < 100*time.Millisecond || d > time.Hour {
		bad("metrics.interval", "%v: want 100ms to 1h", d)
	}

	if ov := c.Overlay; ov.Enabled {
		if c.Gateway == "" {
			bad("gateway", "required with the overlay: the other sites' tunnels end at this address")
		}
		if !strings.HasPrefix(ov.OVSDB, "unix:") && !strings.HasPrefix(ov.OVSDB, "tcp:") {
			bad("overlay.ovsdb", "%q: want unix:PATH or tcp:HOST:PORT (default %s)", ov.OVSDB, DefaultOVSDB)
		}
		if err := hostPort(ov.ControllerListen, true); err != nil {
			bad("overlay.controller_listen", "%q: %v", ov.ControllerListen, err)
		}
		if coord.ValidName(ov.Bridge) != nil || len(ov.Bridge) > 15 {
			bad("overlay.bridge", "%q: want an interface name of at most 15 characters", ov.Bridge)
		}
		if ov.DatapathType != "netdev" && ov.DatapathType != "system" {
			bad("overlay.datapath_type", "%q: want netdev (userspace) or system (kernel module)", ov.DatapathType)
		}
	}

	if pr := c.Provision; pr.Enabled {
		if !c.Overlay.Enabled {
			bad("provision.enabled", "the provisioner attaches nodes to the overlay's bridge: enable the overlay too (overlay.enabled)")
		}
		if len(c.Hosts) == 0 {
			bad("hosts", "required with the provisioner: list this site's compute hosts (name, memory_mib, vcpus)")
		}
		if pr.StateDir != "" && !strings.HasPrefix(pr.StateDir, "/") {
			bad("provision.state_dir", "%q: want an absolute path", pr.StateDir)
		}
		if pr.ImagesDir != "" && !strings.HasPrefix(pr.ImagesDir, "/") {
			bad("provision.images_dir", "%q: want an absolute path", pr.ImagesDir)
		}
		switch pr.Backend {
		case "", "netns", "qemu":
		default:
			bad("provision.backend", "%q: want netns or qemu", pr.Backend)
		}
		switch pr.Accel {
		case "", "auto", "kvm", "tcg":
		default:
			bad("provision.accel", "%q: want auto, kvm or tcg", pr.Accel)
		}
		if pr.Subnet != "" {
			if p, err := netip.ParsePrefix(pr.Subnet); err != nil || !p.Addr().Is4() || p.Bits() > 24 {
				bad("provision.subnet", "%q: want an IPv4 prefix of /24 or wider, e.g. 10.64.0.0/16", pr.Subnet)
			}
		}
		switch pr.VolumeBackend {
		case "", "file", "qcow2", "lvm":
		default:
			bad("provision.volume_backend", "%q: want file, qcow2 or lvm (or leave it empty to choose)", pr.VolumeBackend)
		}
		if len(c.Storage) > 0 {
			if !strings.HasPrefix(pr.Tgt.Socket, "/") {
				bad("provision.tgt.socket", "%q: want the absolute path of tgtd's management socket", pr.Tgt.Socket)
			}
			if err := hostPort(pr.Tgt.Portal, false); err != nil {
				bad("provision.tgt.portal", "%q: %v", pr.Tgt.Portal, err)
			}
		}
		if p := pr.NodePrefix; p != "" && (len(p) > 24 || strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != "") {
			bad("provision.node_prefix", "%q: use at most 24 letters, digits, '-', '_' or '.'", p)
		}
		if pr.Parallel < 0 || pr.Parallel > 64 {
			bad("provision.parallel", "%d: want 0 (default) to 64", pr.Parallel)
		}
	}

	seen := map[string]bool{}
	for i, h := range c.Hosts {
		f := fmt.Sprintf("hosts[%d]", i)
		switch {
		case coord.ValidName(h.Name) != nil || coord.ValidName(coord.TimetableResourceName(coord.ResourceHost, h.Name)) != nil:
			bad(f, "name %q: use 1-58 letters, digits, '.', '_' or '-'", h.Name)
		case seen["h/"+h.Name]:
			bad(f, "host %q is listed twice", h.Name)
		case h.MemoryMiB < 1:
			bad(f, "host %q: memory_mib %d: give the memory available to virtual nodes, in MiB", h.Name, h.MemoryMiB)
		case h.VCPUs < 1:
			bad(f, "host %q: vcpus %d: give the vCPU slots available to virtual nodes", h.Name, h.VCPUs)
		}
		seen["h/"+h.Name] = true
	}
	for i, s := range c.Storage {
		f := fmt.Sprintf("storage[%d]", i)
		switch {
		case coord.ValidName(s.Name) != nil || coord.ValidName(coord.TimetableResourceName(coord.ResourceStorage, s.Name)) != nil:
			bad(f, "name %q: use 1-55 letters, digits, '.', '_' or '-'", s.Name)
		case seen["s/"+s.Name]:
			bad(f, "storage host %q is listed twice", s.Name)
		case s.Bytes < 1:
			bad(f, "storage host %q: bytes %d: give the space available to node volumes", s.Name, s.Bytes)
		}
		seen["s/"+s.Name] = true
	}

	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		bad("log.format", "%q: want json or text", c.Log.Format)
	}
	if d := c.ShutdownTimeout.D(); d <= 0 || d > 10*time.Minute {
		bad("shutdown_timeout", "%v: want more than 0 and at most 10m", d)
	}
	return errors.Join(errs...)
}

// hostPort checks host:port; anyHost allows an empty host (all
// interfaces) and port 0 (any free port).
func hostPort(s string, listen bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want host:port: %v", err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 || (!listen && p == 0) {
		return fmt.Errorf("port %q: want 1-65535", port)
	}
	if host == "" && !listen {
		return fmt.Errorf("missing host")
	}
	return nil
}

// loopback reports whether a listen address is only reachable from this
// host.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
