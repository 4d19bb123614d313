package localfed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/musubi-fabric/musubi/internal/sitenet"
)

// Action is one step of taking a federation down. Every action is
// idempotent: a thing already gone is not an error.
type Action struct {
	Kind ActionKind
	// Site is the site the action concerns (StopPeer, StopSite).
	Site string
	// Netns is the namespace (StopNetnsProcs, DeleteNetns).
	Netns string
	// Link is the host interface (DeleteHostLink).
	Link string
	// Path is the file or directory (Remove).
	Path string
}

// ActionKind says what an Action does.
type ActionKind string

// The actions, in the order PlanDown puts them.
const (
	StopPeer       ActionKind = "stop-peer"        // the site's peer process
	StopSite       ActionKind = "stop-site"        // `musubi site stop`: ZooKeeper, OVS, tgtd
	StopNetnsProcs ActionKind = "stop-netns-procs" // whatever still runs in a namespace
	DeleteNetns    ActionKind = "delete-netns"
	DeleteHostLink ActionKind = "delete-host-link" // the host veth (its route goes with it)
	Remove         ActionKind = "remove"           // a file or directory
)

func (a Action) String() string {
	switch a.Kind {
	case StopPeer:
		return "stop the peer of site " + a.Site
	case StopSite:
		return "stop the daemons of site " + a.Site
	case StopNetnsProcs:
		return "stop the processes left in namespace " + a.Netns
	case DeleteNetns:
		return "delete namespace " + a.Netns
	case DeleteHostLink:
		return "delete the host link " + a.Link
	case Remove:
		return "remove " + a.Path
	}
	return string(a.Kind)
}

// Observed is what exists now, as Down finds it.
type Observed struct {
	// Netns are the namespaces that exist.
	Netns []string
	// NodeNetns are existing namespaces with the provisioner's prefix that
	// belong to this federation's sites.
	NodeNetns []string
	// HostLink: the host's veth into the transit exists.
	HostLink bool
}

// PlanDown is the order in which Down removes what st records, given what
// exists: peers first (they use everything else), then each site's
// daemons, the host link (its route goes with it), then the processes left
// in the namespaces and the namespaces themselves (node namespaces, sites,
// transit; their veths go with them), and last the files. It does no I/O.
func PlanDown(st State, obs Observed) []Action {
	var acts []Action
	for i := len(st.Sites) - 1; i >= 0; i-- {
		if s := st.Sites[i]; s.Peer != nil {
			acts = append(acts, Action{Kind: StopPeer, Site: s.Name})
		}
	}
	for i := len(st.Sites) - 1; i >= 0; i-- {
		if s := st.Sites[i]; s.Bootstrap != "" {
			acts = append(acts, Action{Kind: StopSite, Site: s.Name})
		}
	}
	// The host link first: its veth's other end is in the transit, whose
	// destruction the kernel finishes asynchronously.
	if st.HostLink != "" && obs.HostLink {
		acts = append(acts, Action{Kind: DeleteHostLink, Link: st.HostLink})
	}
	gone := func(ns string) {
		if slices.Contains(obs.Netns, ns) {
			acts = append(acts, Action{Kind: StopNetnsProcs, Netns: ns}, Action{Kind: DeleteNetns, Netns: ns})
		}
	}
	for _, ns := range obs.NodeNetns { // found, so they exist
		acts = append(acts, Action{Kind: StopNetnsProcs, Netns: ns}, Action{Kind: DeleteNetns, Netns: ns})
	}
	for i := len(st.Sites) - 1; i >= 0; i-- {
		gone(st.Sites[i].Netns)
	}
	if st.Transit != "" {
		gone(st.Transit)
	}
	if st.CreatedDir {
		return append(acts, Action{Kind: Remove, Path: st.Dir})
	}
	for i := len(st.Sites) - 1; i >= 0; i-- {
		acts = append(acts, Action{Kind: Remove, Path: st.Sites[i].Dir})
	}
	for _, p := range []string{st.TokenFile, st.TokensFile, StatePath(st.Dir)} {
		if p != "" {
			acts = append(acts, Action{Kind: Remove, Path: p})
		}
	}
	return acts
}

// DownOptions configure Down.
type DownOptions struct {
	// Dir is the federation's directory (default DefaultDir).
	Dir string
	// Exe is the musubi binary that runs `site stop` (default: this
	// process's executable).
	Exe string
	// Out receives progress lines (default: discarded).
	Out func(format string, a ...any)
}

// Down takes the federation in o.Dir down: everything its local.json
// records, in PlanDown's order, and the node namespaces its peers made. It
// reports whether there was a federation. Running it again, or after a
// crashed Up, is safe. When something cannot be removed, local.json keeps
// the federation's record and the error (ErrTeardown) says what is left.
func Down(ctx context.Context, o DownOptions) (bool, error) {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if o.Out == nil {
		o.Out = func(string, ...any) {}
	}
	if _, err := os.Stat(StatePath(o.Dir)); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	l, err := lockDir(o.Dir)
	if err != nil {
		return true, err
	}
	defer l.release()
	st, err := Load(o.Dir)
	if errors.Is(err, ErrNoFederation) {
		return false, nil // a concurrent down finished first
	}
	if err != nil {
		return true, err
	}
	exe, err := executable(o.Exe)
	if err != nil {
		return true, err
	}
	return true, down(ctx, &st, exe, o.Out)
}

func executable(exe string) (string, error) {
	if exe != "" {
		return exe, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("localfed: the musubi binary: %w", err)
	}
	return exe, nil
}

// down executes the plan for st (with the directory's lock held): first
// the processes (peers, then the sites' daemons), then, looking at what
// exists once no provisioner can make a node namespace any more, the rest.
func down(ctx context.Context, st *State, exe string, say func(string, ...any)) error {
	var (
		mu   sync.Mutex // errs and say, for the sites stopped at once
		errs []error
	)
	do := func(a Action) {
		t0 := time.Now()
		detail, err := runAction(ctx, st, exe, a)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			say("  %s: FAILED: %v", a, err)
			errs = append(errs, fmt.Errorf("%s: %w", a, err))
		} else if detail != "-" {
			say("  %s: done in %s%s", a, time.Since(t0).Round(time.Millisecond), paren(detail))
		}
	}
	kind := func(k ActionKind) func(Action) bool { return func(a Action) bool { return a.Kind == k } }
	procs := PlanDown(*st, Observed{})
	for _, a := range filter(procs, kind(StopPeer)) {
		do(a)
	}
	// The sites' daemons stop independently of each other: at once.
	var wg sync.WaitGroup
	for _, a := range filter(procs, kind(StopSite)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			do(a)
		}()
	}
	wg.Wait()
	obs, err := observe(ctx, st)
	if err != nil {
		errs = append(errs, err)
	}
	for _, a := range filter(PlanDown(*st, obs), func(a Action) bool { return a.Kind != StopPeer && a.Kind != StopSite }) {
		if len(errs) > 0 && a.Kind == Remove {
			break // keep the files, and the record of what is left
		}
		do(a)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w (the record in %s is kept: fix the cause and run down again)", ErrTeardown, errors.Join(errs...), StatePath(st.Dir))
	}
	return nil
}

func filter(acts []Action, keep func(Action) bool) []Action {
	var out []Action
	for _, a := range acts {
		if keep(a) {
			out = append(out, a)
		}
	}
	return out
}

// observe finds which of the recorded namespaces exist, the node
// namespaces that belong to the federation, and the host link.
func observe(ctx context.Context, st *State) (Observed, error) {
	names, err := sitenet.ListNetns()
	if err != nil {
		return Observed{}, err
	}
	obs := Observed{Netns: names}
	if st.HostLink != "" {
		obs.HostLink = sitenet.LinkExists(ctx, "", st.HostLink)
	}
	if st.NodeNetnsPrefix == "" {
		return obs, nil
	}
	for _, ns := range names {
		if strings.HasPrefix(ns, st.NodeNetnsPrefix) && ownedNode(ctx, st, ns) {
			obs.NodeNetns = append(obs.NodeNetns, ns)
		}
	}
	return obs, nil
}

// ownedNode reports whether node namespace ns belongs to the federation:
// one of its veths ends in a site namespace of the federation, or one of
// its processes names the federation's directory.
func ownedNode(ctx context.Context, st *State, ns string) bool {
	if peers, err := sitenet.LinkNetns(ctx, ns); err == nil {
		for _, p := range peers {
			if st.ownsNetns(p) {
				return true
			}
		}
	}
	pids, err := sitenet.NetnsPIDs(ns)
	if err != nil {
		return false
	}
	for _, pid := range pids {
		if mentions(pid, st.Dir) {
			return true
		}
	}
	return false
}

// peerGrace is how long a peer has to stop after SIGTERM (its shutdown
// timeout is 10 s by default).
const peerGrace = 15 * time.Second

// runAction performs one action; detail is "-" when there was nothing to
// do (nothing is printed then).
func runAction(ctx context.Context, st *State, exe string, a Action) (string, error) {
	switch a.Kind {
	case StopPeer:
		s, err := st.Site(a.Site)
		if err != nil {
			return "", err
		}
		return stopPeer(ctx, s)
	case StopSite:
		s, err := st.Site(a.Site)
		if err != nil {
			return "", err
		}
		return stopSite(ctx, s, exe)
	case StopNetnsProcs:
		n, err := stopNetnsProcs(ctx, a.Netns, 5*time.Second)
		if n == 0 && err == nil {
			return "-", nil
		}
		return fmt.Sprintf("%d processes", n), err
	case DeleteNetns:
		return "", sitenet.DeleteNetns(ctx, a.Netns)
	case DeleteHostLink:
		return "route " + st.HostRoute + " removed with it", sitenet.DeleteLink(ctx, "", a.Link)
	case Remove:
		if _, err := os.Lstat(a.Path); errors.Is(err, os.ErrNotExist) {
			return "-", nil
		}
		return "", os.RemoveAll(a.Path)
	}
	return "", fmt.Errorf("localfed: unknown action %q", a.Kind)
}

// stopPeer stops the site's peer: the recorded process, and any process
// whose command line runs a peer on the site's configuration (a peer that
// started but was not recorded, after a crash).
func stopPeer(ctx context.Context, s *Site) (string, error) {
	var stopped []string
	var errs []error
	if p := s.Peer; p != nil && p.PID > 0 {
		ok, err := stopPID(ctx, p.PID, p.Start, peerGrace)
		errs = append(errs, err)
		if ok {
			stopped = append(stopped, fmt.Sprintf("pid %d", p.PID))
		}
	}
	for _, pid := range pidsMatching(" peer ", " --config "+s.PeerConfig+" ") {
		start, err := sitenet.ProcStart(pid)
		if err != nil {
			continue
		}
		ok, err := stopPID(ctx, pid, start, peerGrace)
		errs = append(errs, err)
		if ok {
			stopped = append(stopped, fmt.Sprintf("pid %d (unrecorded)", pid))
		}
	}
	if len(stopped) == 0 {
		return "-", errors.Join(errs...)
	}
	return strings.Join(stopped, ", "), errors.Join(errs...)
}

// stopSite stops the site's ZooKeeper, Open vSwitch and tgtd with `musubi
// site stop` (they run under their pid files; the command works from any
// namespace).
func stopSite(ctx context.Context, s *Site, exe string) (string, error) {
	// A bootstrap a crashed Up left running would start daemons behind
	// our back: it goes first.
	var errs []error
	for _, verb := range []string{" site init ", " site join "} {
		for _, pid := range pidsMatching(verb, " --state-dir "+s.Dir+" ") {
			if start, err := sitenet.ProcStart(pid); err == nil {
				_, err := stopPID(ctx, pid, start, 5*time.Second)
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "site.json")); errors.Is(err, os.ErrNotExist) {
		return "-", nil // never bootstrapped far enough to have daemons
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, exe, "site", "stop", "--state-dir", s.Dir)
	cmd.Env = childEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("musubi site stop --state-dir %s: %w\n%s", s.Dir, err, strings.TrimSpace(string(out)))
	}
	return "", nil
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}
