package api

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/jobqueue"
	"github.com/musubi-fabric/musubi/node/reserve"
)

// readProgress reads vc/<vc>/status/<site> records.
func readProgress(ctx context.Context, st coord.Store, vc string) ([]SiteProgress, error) {
	sites, _, err := st.Children(ctx, coord.VCStatusDir(vc))
	if errors.Is(err, coord.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]SiteProgress, 0, len(sites))
	for _, site := range sites {
		data, _, err := st.Get(ctx, coord.VCStatusPath(vc, site))
		if errors.Is(err, coord.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sp := SiteProgress{Site: site}
		if json.Unmarshal(data, &sp) != nil {
			sp = SiteProgress{Site: site, State: "unknown", Message: "malformed status record"}
		}
		sp.Site = site
		if json.Valid(data) {
			sp.Raw = data
		}
		out = append(out, sp)
	}
	return out, nil
}

// phaseOf derives a VC's phase and node counts from its record and the
// sites' progress records at instant now.
func phaseOf(rec reserve.Record, progress []SiteProgress, now time.Time) (phase string, ready int) {
	switch {
	case rec.State == reserve.Cancelled:
		return PhaseCancelled, 0
	case !now.Before(rec.Window.End):
		return PhaseEnded, 0
	case now.Before(rec.Window.Start):
		return PhaseScheduled, 0
	}
	bySite := map[string]SiteProgress{}
	for _, p := range progress {
		bySite[p.Site] = p
	}
	perSite := map[string]int{}
	for _, n := range rec.Placement.Nodes {
		perSite[n.Site]++
	}
	allReady, failed := len(perSite) > 0, false
	for site, want := range perSite {
		p, ok := bySite[site]
		state := strings.ToLower(p.State)
		switch {
		case !ok:
			allReady = false
		case state == PhaseReady:
			ready += want
		case state == PhaseFailed:
			failed = true
			allReady = false
		default:
			allReady = false
			ready += min(max(p.NodesReady, 0), want)
		}
	}
	switch {
	case failed:
		return PhaseFailed, ready
	case allReady:
		return PhaseReady, ready
	}
	return PhaseProvisioning, ready
}

// view builds the API's view of a reservation; progress records are
// read only while the window is open.
func (s *Server) view(ctx context.Context, st coord.Store, rec reserve.Record) (VC, error) {
	v := VC{Record: rec, NodesTotal: len(rec.Placement.Nodes)}
	now := s.cfg.Now()
	var progress []SiteProgress
	if rec.State != reserve.Cancelled && rec.Window.Contains(now) {
		var err error
		if progress, err = readProgress(ctx, st, rec.VC); err != nil {
			return v, err
		}
	}
	v.Phase, v.NodesReady = phaseOf(rec, progress, now)
	v.Progress = progress
	return v, nil
}

// nodesOf merges a VC's placement with its node records.
func nodesOf(ctx context.Context, st coord.Store, rec reserve.Record) ([]Node, error) {
	names, _, err := st.Children(ctx, coord.VCNodesDir(rec.VC))
	if err != nil && !errors.Is(err, coord.ErrNotFound) {
		return nil, err
	}
	records := map[string]map[string]json.RawMessage{}
	for _, n := range names {
		data, _, err := st.Get(ctx, coord.VCNodePath(rec.VC, n))
		if errors.Is(err, coord.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		m := map[string]json.RawMessage{}
		if json.Unmarshal(data, &m) != nil {
			m = map[string]json.RawMessage{"state": json.RawMessage(`"malformed"`)}
		}
		records[n] = m
	}
	str := func(m map[string]json.RawMessage, k string) string {
		var s string
		if raw, ok := m[k]; ok && json.Unmarshal(raw, &s) == nil {
			return s
		}
		return ""
	}
	var out []Node
	seen := map[string]bool{}
	add := func(n Node) {
		if m, ok := records[n.Name]; ok {
			n.State = str(m, "state")
			if n.State == "" {
				n.State = "attached"
			}
			n.IP, n.MAC, n.Port = str(m, "ip"), str(m, "mac"), str(m, "port")
			if n.Site == "" {
				n.Site = str(m, "site")
			}
			if n.Host == "" {
				n.Host = str(m, "host")
			}
			if raw, ok := m["vlan"]; ok {
				_ = json.Unmarshal(raw, &n.VLAN)
			}
		} else {
			n.State = "planned"
		}
		seen[n.Name] = true
		out = append(out, n)
	}
	for _, pn := range rec.Placement.Nodes {
		add(Node{Name: pn.Name, Host: pn.Host, Site: pn.Site, Storage: pn.Storage, Frontend: pn.Frontend})
	}
	for _, n := range names {
		if !seen[n] {
			add(Node{Name: n})
		}
	}
	return out, nil
}

// jobsOf lists a VC's active jobs.
func jobsOf(ctx context.Context, st coord.Store, vc string) ([]Job, error) {
	q, err := jobqueue.New(jobqueue.Config{Store: st, VC: vc})
	if err != nil {
		return nil, err
	}
	js, err := q.List(ctx, jobqueue.Filter{})
	if errors.Is(err, coord.ErrNotFound) {
		return []Job{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]Job, 0, len(js))
	for _, j := range js {
		v := Job{ID: j.ID, State: j.DisplayState(), Submitted: j.Submitted, Slots: 1}
		if j.Spec != nil {
			v.Name, v.Owner = j.Spec.Name, j.Spec.Submitter.User
			if j.Spec.Array != nil {
				v.Tasks = j.Spec.Array.String()
			}
		}
		slots := 0
		for _, r := range j.Running {
			slots += r.Slots
			if r.Host != "" && !slices.Contains(v.Hosts, r.Host) {
				v.Hosts = append(v.Hosts, r.Host)
			}
		}
		if slots > 0 {
			v.Slots = slots
		} else if j.Spec != nil && j.Spec.PE != nil && j.Spec.PE.Min > 0 {
			v.Slots = j.Spec.PE.Min
		}
		out = append(out, v)
	}
	return out, nil
}
