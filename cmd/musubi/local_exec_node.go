package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/musubi-fabric/musubi/jobqueue/sge"
	"github.com/musubi-fabric/musubi/node/agentapi"
	"github.com/musubi-fabric/musubi/node/config"
	"github.com/musubi-fabric/musubi/node/localfed"
	"github.com/musubi-fabric/musubi/node/provision/vm/netns"
)

// localNode is a netns virtual node of a local federation's site.
type localNode struct {
	VC, Node string
	Site     string
	Netns    string // its network namespace
	Socket   string // its agent's socket (MUSUBI_AGENT_SOCKET)
	Log      string // its agent's log
}

// nodesDir is the netns backend's state directory of site s: the
// provisioner's state directory (its peer config's provision.state_dir)
// plus "nodes", as node/peer wires it.
func nodesDir(s *localfed.Site) (string, error) {
	data, err := os.ReadFile(s.PeerConfig)
	if err != nil {
		return "", err
	}
	c := config.Default()
	if err := json.Unmarshal(data, &c); err != nil {
		return "", fmt.Errorf("%s: %w", s.PeerConfig, err)
	}
	dir := c.Provision.StateDir
	if dir == "" {
		dir = "/var/lib/musubi/provision"
	}
	return filepath.Join(dir, "nodes"), nil
}

// siteNodes lists the netns nodes site s runs (from the backend's state
// directories), optionally of one VC only.
func siteNodes(fed *localfed.State, s *localfed.Site, vc string) ([]localNode, error) {
	dir, err := nodesDir(s)
	if err != nil {
		return nil, err
	}
	pattern := filepath.Join(dir, "*", "*", "state.json")
	if vc != "" {
		pattern = filepath.Join(dir, vc, "*", "state.json")
	}
	files, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	var out []localNode
	for _, f := range files {
		node := filepath.Base(filepath.Dir(f))
		v := filepath.Base(filepath.Dir(filepath.Dir(f)))
		out = append(out, localNode{VC: v, Node: node, Site: s.Name, Netns: fed.NodePrefix(*s) + v + "+" + node,
			Socket: netns.AgentSocketIn(dir, v, node), Log: filepath.Join(netns.NodeDirIn(dir, v, node), "agent.log")})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].VC+"/"+out[i].Node < out[j].VC+"/"+out[j].Node })
	return out, nil
}

// findNode resolves "vc/node", or "node" when one VC of the site has it.
func findNode(fed *localfed.State, s *localfed.Site, name string) (localNode, error) {
	vc, node, qualified := strings.Cut(name, "/")
	if !qualified {
		vc, node = "", name
	}
	all, err := siteNodes(fed, s, vc)
	if err != nil {
		return localNode{}, err
	}
	var match []localNode
	var names []string
	for _, n := range all {
		names = append(names, n.VC+"/"+n.Node)
		if n.Node == node {
			match = append(match, n)
		}
	}
	switch {
	case len(match) == 1:
		return match[0], nil
	case len(match) > 1:
		return localNode{}, fmt.Errorf("several virtual clusters of site %s have a node %s: say which, e.g. %s/%s", s.Name, node, match[0].VC, node)
	case len(names) == 0:
		return localNode{}, fmt.Errorf("site %s runs no virtual node yet (reserve a VC with 'musubi vc reserve', then wait until it is ready)", s.Name)
	}
	return localNode{}, fmt.Errorf("site %s has no node %q; it runs %s", s.Name, name, strings.Join(names, ", "))
}

// execInNode runs argv inside virtual node node of site (`musubi local
// exec <site> <node> -- cmd`): in the node's network namespace, with
// MUSUBI_AGENT_SOCKET naming its agent (so qsub, qstat, ... talk to it)
// and the Grid Engine commands first in PATH. The standard streams and the
// exit status pass through.
func execInNode(ctx context.Context, env *cliEnv, fed *localfed.State, site *localfed.Site, node string, argv []string) int {
	n, err := findNode(fed, site, node)
	if err != nil {
		return fail(env, "local exec", err, "")
	}
	cmd, err := nodeCommand(ctx, fed, n, argv)
	if err != nil {
		return fail(env, "local exec", err, "")
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = env.stdin, env.stdout, env.stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return fail(env, "local exec", err, "")
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode()
	}
	return fail(env, "local exec", err, "")
}

// nodeCommand is argv run in node n: `ip netns exec` into its namespace,
// with its agent's socket and the Grid Engine commands (symlinks to
// musubi-sge in the federation's bin directory) first in PATH.
func nodeCommand(ctx context.Context, fed *localfed.State, n localNode, argv []string) (*exec.Cmd, error) {
	bin, err := sgeBin(fed.Dir)
	if err != nil {
		return nil, err
	}
	var envv []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, agentapi.EnvSocket+"=") {
			envv = append(envv, kv)
		}
	}
	envv = append(envv, "PATH="+bin+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		agentapi.EnvSocket+"="+n.Socket, "MUSUBI_VC="+n.VC, "MUSUBI_NODE="+n.Node)
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Netns}, argv...)...)
	cmd.Env = envv
	return cmd, nil
}

// sgeBin makes (once) dir/bin with qsub, qstat, ... as symlinks to the
// musubi-sge beside this binary (or to this binary), and returns it.
func sgeBin(dir string) (string, error) {
	bin := filepath.Join(dir, "bin")
	self, err := os.Executable()
	if err == nil {
		self, err = filepath.EvalSymlinks(self)
	}
	if err != nil {
		return "", err
	}
	target := self
	if lean := filepath.Join(filepath.Dir(self), leanSGE); isExecutable(lean) {
		target = lean
	}
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", err
	}
	for _, name := range sge.Commands {
		p := filepath.Join(bin, name)
		if cur, err := os.Readlink(p); err == nil && cur == target {
			continue
		}
		_ = os.Remove(p)
		if err := os.Symlink(target, p); err != nil {
			return "", err
		}
	}
	return bin, nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
