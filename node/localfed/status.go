package localfed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/internal/sitenet"
	sitebootstrap "github.com/musubi-fabric/musubi/site-bootstrap"
)

// Status is a local federation as it is now.
type Status struct {
	Dir        string    `json:"dir"`
	Federation string    `json:"federation"`
	Backend    string    `json:"backend"`
	Phase      string    `json:"phase"`
	Created    time.Time `json:"created"`
	// Transit and HostLink exist?
	Transit       string       `json:"transit_netns"`
	TransitExists bool         `json:"transit_exists"`
	HostLink      string       `json:"host_link"`
	HostRoute     string       `json:"host_route"`
	HostLinkUp    bool         `json:"host_link_exists"`
	WANDelay      string       `json:"wan_delay"`
	DelayApplied  bool         `json:"delay_applied"`
	DelayNote     string       `json:"delay_note,omitempty"`
	TokenFile     string       `json:"token_file"`
	Sites         []SiteStatus `json:"sites"`
	// Members is the ZooKeeper ensemble's membership, as the first site
	// that answers sees it.
	Members []coord.Member `json:"members,omitempty"`
	// Problems lists what is not as Up left it (empty: all is well).
	Problems []string `json:"problems,omitempty"`
}

// SiteStatus is one site as it is now.
type SiteStatus struct {
	Name        string `json:"name"`
	Netns       string `json:"netns"`
	NetnsExists bool   `json:"netns_exists"`
	Addr        string `json:"addr"`
	API         string `json:"api"`
	Socket      string `json:"socket"`
	// ZKMode is the site's ZooKeeper server's role ("" when it does not
	// serve).
	ZKMode string `json:"zk_mode"`
	// Daemons are site bootstrap's checks of the site's daemons.
	Daemons []sitebootstrap.StepStatus `json:"daemons,omitempty"`
	// Members is the ensemble as this site sees it.
	Members []coord.Member `json:"members,omitempty"`
	// PeerPID is the recorded peer process; PeerAlive whether it runs.
	PeerPID   int  `json:"peer_pid"`
	PeerAlive bool `json:"peer_alive"`
	// Ready is the peer's /readyz; Problems its reasons when not ready.
	Ready    bool     `json:"ready"`
	Problems []string `json:"problems,omitempty"`
	// Error is why the site's status could not be read completely.
	Error string `json:"error,omitempty"`
}

// daemonSteps are the site bootstrap checks Status reports as daemons.
var daemonSteps = []string{"zookeeper running", "zookeeper serving", "ensemble member", "open vswitch", "tgtd"}

// ReadStatus reads the federation in dir and checks every site: its
// namespace, its daemons and ensemble membership (`musubi site status`,
// run in the site's namespace with exe), its peer's process and /readyz.
func ReadStatus(ctx context.Context, dir, exe string) (Status, error) {
	st, err := Load(dir)
	if err != nil {
		return Status{}, err
	}
	exe, err = executable(exe)
	if err != nil {
		return Status{}, err
	}
	out := Status{
		Dir: st.Dir, Federation: st.Federation, Backend: st.Backend, Phase: st.Phase, Created: st.Created,
		Transit: st.Transit, TransitExists: st.Transit != "" && sitenet.NetnsExists(st.Transit),
		HostLink: st.HostLink, HostRoute: st.HostRoute, WANDelay: st.WANDelay, DelayApplied: st.DelayApplied,
		DelayNote: st.DelayNote, TokenFile: st.TokenFile,
	}
	if st.HostLink != "" {
		out.HostLinkUp = sitenet.LinkExists(ctx, "", st.HostLink)
	}
	out.Sites = make([]SiteStatus, len(st.Sites))
	var wg sync.WaitGroup
	for i := range st.Sites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out.Sites[i] = siteStatus(ctx, st.Sites[i], exe)
		}()
	}
	wg.Wait()
	out.Problems = problems(st, out)
	for _, s := range out.Sites {
		if len(s.Members) > 0 {
			out.Members = s.Members
			break
		}
	}
	return out, nil
}

func siteStatus(ctx context.Context, s Site, exe string) SiteStatus {
	ss := SiteStatus{Name: s.Name, Netns: s.Netns, NetnsExists: sitenet.NetnsExists(s.Netns), Addr: s.Addr, API: s.API, Socket: s.Socket}
	if s.Peer != nil {
		ss.PeerPID, ss.PeerAlive = s.Peer.PID, s.Peer.alive()
	}
	if !ss.NetnsExists {
		ss.Error = "namespace " + s.Netns + " does not exist"
		return ss
	}
	if ss.PeerAlive {
		hc := httpClient(3 * time.Second)
		ready, probs, err := readyz(ctx, hc, s.API)
		hc.CloseIdleConnections()
		ss.Ready, ss.Problems = ready, probs
		if err != nil {
			ss.Problems = append(ss.Problems, "API: "+err.Error())
		}
	}
	if s.Bootstrap == "" {
		return ss
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, "ip", "netns", "exec", s.Netns, exe, "site", "status", "--state-dir", s.Dir, "--output", "json")
	cmd.Env = childEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run() // exit 1 when a step is not done: the JSON says which
	var bs sitebootstrap.Status
	if err := json.Unmarshal(stdout.Bytes(), &bs); err != nil {
		ss.Error = fmt.Sprintf("musubi site status: %v: %s", runErr, strings.TrimSpace(stderr.String()))
		return ss
	}
	ss.ZKMode, ss.Members = bs.Mode, bs.Members
	for _, step := range bs.Steps {
		for _, d := range daemonSteps {
			if step.Name == d {
				ss.Daemons = append(ss.Daemons, step)
			}
		}
	}
	if len(bs.Errors) > 0 {
		ss.Error = strings.Join(bs.Errors, "; ")
	}
	return ss
}

// problems lists what is not as a finished Up leaves it.
func problems(st State, s Status) []string {
	var p []string
	if st.Phase != PhaseUp {
		p = append(p, fmt.Sprintf("phase %q: 'musubi local up' did not finish (take it down with 'musubi local down --dir %s')", st.Phase, st.Dir))
	}
	if st.Transit != "" && !s.TransitExists {
		p = append(p, "the transit namespace "+st.Transit+" is missing")
	}
	if st.HostLink != "" && !s.HostLinkUp {
		p = append(p, "the host link "+st.HostLink+" is missing: the host cannot reach the sites' APIs")
	}
	for _, ss := range s.Sites {
		switch {
		case !ss.NetnsExists:
			p = append(p, ss.Name+": "+ss.Error)
			continue
		case ss.PeerPID == 0:
			p = append(p, ss.Name+": the peer was not started")
		case !ss.PeerAlive:
			p = append(p, ss.Name+": the peer is not running (see "+st.siteLog(ss.Name)+")")
		case !ss.Ready:
			p = append(p, ss.Name+": the peer is not ready: "+strings.Join(ss.Problems, "; "))
		}
		for _, d := range ss.Daemons {
			if !d.Done {
				p = append(p, fmt.Sprintf("%s: %s: %s%s", ss.Name, d.Name, d.Detail, d.Error))
			}
		}
		if ss.Error != "" {
			p = append(p, ss.Name+": "+ss.Error)
		}
		if len(ss.Members) > 0 && len(ss.Members) != len(st.Sites) {
			p = append(p, fmt.Sprintf("%s sees %d ensemble members, want %d", ss.Name, len(ss.Members), len(st.Sites)))
		}
	}
	return p
}

func (st State) siteLog(name string) string {
	if s, err := st.Site(name); err == nil {
		return s.PeerLog
	}
	return "its peer.log"
}
