package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/node/agentapi"
	"github.com/musubi-fabric/musubi/node/localfed"
)

// The demo on a real one-machine federation: `musubi local up` builds the
// sites as network namespaces (each with its ZooKeeper server, Open
// vSwitch, tgtd and peer, joined by site init/join), the virtual cluster is
// reserved through a peer's API with a node at every site, the sites'
// provisioners build the nodes (network namespaces on the VC's VLAN, an
// iSCSI volume each, the agent reaching ZooKeeper through the peer's
// relay), and the screening is submitted with qsub from inside the node at
// the last site. `musubi local down` removes it all.

// demoVC is the demo's virtual cluster.
const demoVC = "demo"

// federated runs the demo on a `local up` federation in d.fedDir.
func (d *localRun) federated(ctx context.Context) error {
	// Killing a ZooKeeper leader is the --host-only demo's: here the
	// servers are the sites' own daemons.
	d.o.killLeader = false
	o := d.o
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	d.say("bringing up %s as network namespaces behind a transit namespace (musubi local up)", plural(o.sites, "site"))
	res, err := localfed.Up(ctx, localfed.Options{Dir: d.fedDir, Sites: o.sites, WANDelay: o.wanDelay,
		Federation: o.fed, Backend: "netns", Exe: exe, Out: prefixed(d.env.stdout, "    ")})
	if err != nil {
		return err
	}
	d.fed = &res.State
	d.fedUp = true
	d.say("federation up in %s: %s", res.Took.Round(time.Millisecond), d.fedSummary())
	if res.State.DelayNote != "" {
		d.say("WAN delay: %s", res.State.DelayNote)
	}
	if err := d.siteCmd(ctx, d.fed.Sites[len(d.fed.Sites)-1], "musubi", "status"); err != nil {
		return err
	}
	if o.ligands == 0 {
		return nil
	}
	if d.user, err = lookupJobUser(); err != nil {
		return err
	}
	work, err := d.prepareWork(ctx, filepath.Join(d.fedDir, "work"))
	if err != nil {
		return err
	}
	// The application image of the nodes: netns nodes run the host's
	// programs, so their volume is scratch space (a sparse raw disk).
	img := filepath.Join(d.fedDir, "app.img")
	if err := os.WriteFile(img, []byte("musubi demo application image\n"), 0o644); err != nil {
		return err
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		return err
	}
	var sites []string
	for _, s := range d.fed.Sites {
		sites = append(sites, s.Name)
	}
	first := d.fed.Sites[0]
	if err := d.siteCmd(ctx, first, "musubi", "vc", "reserve", demoVC, "--nodes", strconv.Itoa(o.sites),
		"--memory", "256M", "--vcpus", strconv.Itoa(o.slots), "--disk", "64M", "--image", img,
		"--each-site", strings.Join(sites, ","), "--duration", (o.timeout + 10*time.Minute).String(), "--wait"); err != nil {
		d.reserved = true // maybe admitted, then failed waiting
		return err
	}
	d.reserved = true
	if err := d.siteCmd(ctx, first, "musubi", "vc", "nodes", demoVC); err != nil {
		return err
	}
	for i := range d.fed.Sites {
		s := &d.fed.Sites[i]
		nodes, err := siteNodes(d.fed, s, demoVC)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			d.agents = append(d.agents, &demoAgent{node: n.Node, site: s.Name, socket: n.Socket, netns: n.Netns,
				log: n.Log, client: agentapi.NewClient(n.Socket), done: make(chan struct{})})
		}
	}
	if len(d.agents) < o.sites {
		return fmt.Errorf("the sites run %d nodes of %s, want %d", len(d.agents), demoVC, o.sites)
	}
	if err := d.waitRegistered(ctx); err != nil {
		return err
	}
	submitAt := d.agents[len(d.agents)-1]
	d.say("submitting from inside node %s of site %s (its network namespace %s), as %s", submitAt.node, submitAt.site, submitAt.netns, d.user.name)
	return d.submitAndWatch(ctx, submitAt, work)
}

// fedSummary is one line per site: its API and web UI.
func (d *localRun) fedSummary() string {
	var b strings.Builder
	for _, s := range d.fed.Sites {
		fmt.Fprintf(&b, "\n      %s: namespace %s, ZooKeeper, OVS, tgtd and peer; web UI and API %s", s.Name, s.Netns, s.API)
	}
	fmt.Fprintf(&b, "\n      admin token: %s", d.fed.TokenFile)
	return b.String()
}

// siteCmd runs a command in site s's namespace as `musubi local exec`
// does, showing it and its output.
func (d *localRun) siteCmd(ctx context.Context, s localfed.Site, argv ...string) error {
	fmt.Fprintf(d.env.stdout, "\n$ musubi local exec %s -- %s\n", s.Name, strings.Join(argv, " "))
	var out bytes.Buffer
	w := &out
	code, err := localfed.Exec(ctx, d.fedDir, s.Name, argv, localfed.Stdio{In: bytes.NewReader(nil), Out: multi(d.env.stdout, w), Err: multi(d.env.stderr, w)})
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("%s in %s: exit %d", strings.Join(argv, " "), s.Name, code)
	}
	return nil
}

// nodeArgv is argv run as the job user inside node a's namespace.
func (d *localRun) nodeArgv(a *demoAgent, exe string, args []string) (string, []string) {
	argv := []string{"netns", "exec", a.netns}
	if d.user.cred != nil {
		argv = append(argv, "setpriv", "--reuid="+strconv.Itoa(d.user.uid), "--regid="+strconv.Itoa(d.user.gid), "--clear-groups", "--")
	}
	return "ip", append(append(argv, exe), args...)
}

// prefixed writes each line to w with a prefix.
func prefixed(w interface{ Write([]byte) (int, error) }, prefix string) *linePrefixer {
	return &linePrefixer{w: w, prefix: prefix, bol: true}
}

type linePrefixer struct {
	w      interface{ Write([]byte) (int, error) }
	prefix string
	bol    bool
}

func (l *linePrefixer) Write(p []byte) (int, error) {
	var b bytes.Buffer
	for _, c := range p {
		if l.bol {
			b.WriteString(l.prefix)
		}
		b.WriteByte(c)
		l.bol = c == '\n'
	}
	if _, err := l.w.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

type multiWriter struct {
	a, b interface{ Write([]byte) (int, error) }
}

func multi(a, b interface{ Write([]byte) (int, error) }) *multiWriter { return &multiWriter{a, b} }

func (m *multiWriter) Write(p []byte) (int, error) {
	if _, err := m.a.Write(p); err != nil {
		return 0, err
	}
	return m.b.Write(p)
}

// releaseVC cancels the demo's reservation and waits until every site's
// provisioner has torn its nodes down: the VC's own end, before the
// federation's.
func (d *localRun) releaseVC(ctx context.Context) error {
	if !d.reserved {
		return nil
	}
	d.say("releasing the virtual cluster: every site tears its nodes down")
	if err := d.siteCmd(ctx, d.fed.Sites[0], "musubi", "vc", "cancel", demoVC); err != nil {
		return err
	}
	t0 := time.Now()
	for {
		left := 0
		for i := range d.fed.Sites {
			nodes, err := siteNodes(d.fed, &d.fed.Sites[i], demoVC)
			if err != nil {
				return err
			}
			left += len(nodes)
		}
		if left == 0 {
			d.say("all nodes of %s removed %s after the cancel", demoVC, time.Since(t0).Round(time.Millisecond))
			return nil
		}
		if time.Since(t0) > time.Minute {
			return fmt.Errorf("%d nodes of %s still there a minute after the cancel", left, demoVC)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// fedDown takes the federation down (musubi local down).
func (d *localRun) fedDown(ctx context.Context) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if d.fedUp {
		if err := d.releaseVC(ctx); err != nil {
			// local down removes the nodes all the same.
			fmt.Fprintf(d.env.stderr, "musubi local demo: %v\n", err)
		}
	}
	d.say("taking the federation down (musubi local down)")
	_, err = localfed.Down(ctx, localfed.DownOptions{Dir: d.fedDir, Exe: exe,
		Out: func(format string, a ...any) { fmt.Fprintf(d.env.stdout, "    "+format+"\n", a...) }})
	if err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && (strings.HasPrefix(f[0], localfed.NetnsPrefix) || strings.HasPrefix(f[0], d.fed.NodeNetnsPrefix) && strings.Contains(f[0], "-"+demoVC+"+")) {
				return fmt.Errorf("namespace %s left after local down", f[0])
			}
		}
	}
	return nil
}
