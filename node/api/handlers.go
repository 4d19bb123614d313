package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node"
	"github.com/musubi-fabric/musubi/node/admission"
	"github.com/musubi-fabric/musubi/node/reserve"
	"github.com/musubi-fabric/musubi/overlay/topology"
)

var errEOF = io.EOF

type handler func(w http.ResponseWriter, r *http.Request, p Principal)

// methods dispatches on the request method, answering 405 with a JSON
// error and an Allow header otherwise.
func (s *Server) methods(m map[string]handler) http.HandlerFunc {
	allowed := make([]string, 0, len(m))
	for k := range m {
		allowed = append(allowed, k)
	}
	sort.Strings(allowed)
	return func(w http.ResponseWriter, r *http.Request) {
		h, ok := m[r.Method]
		if !ok && r.Method == http.MethodHead {
			h, ok = m[http.MethodGet]
		}
		if !ok {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeError(w, &Error{Status: http.StatusMethodNotAllowed, Message: "method " + r.Method + " not allowed here",
				Hint: "use " + strings.Join(allowed, " or ")})
			return
		}
		s.authed(h)(w, r)
	}
}

func (s *Server) routes() {
	s.mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		probs := s.problems()
		code := http.StatusOK
		if len(probs) > 0 {
			code = http.StatusServiceUnavailable
		}
		body := map[string]any{"ready": len(probs) == 0, "problems": probs}
		if len(probs) > 0 {
			body["error"] = "not ready: " + strings.Join(probs, "; ")
			body["hint"] = "wait for the peer to connect to ZooKeeper and start its subsystems; its log says what it waits for"
		}
		writeJSON(w, code, body)
	})
	if s.cfg.Metrics != nil {
		s.mux.Handle("/metrics", s.cfg.Metrics.Handler())
	}
	s.mux.HandleFunc(Prefix+"/status", s.methods(map[string]handler{"GET": s.getStatus}))
	s.mux.HandleFunc(Prefix+"/sites", s.methods(map[string]handler{"GET": s.getSites}))
	s.mux.HandleFunc(Prefix+"/topology", s.methods(map[string]handler{"GET": s.getTopology}))
	s.mux.HandleFunc(Prefix+"/vcs", s.methods(map[string]handler{"GET": s.listVCs, "POST": s.reserveVC}))
	s.mux.HandleFunc(Prefix+"/vcs/{vc}", s.methods(map[string]handler{"GET": s.getVC, "DELETE": s.cancelVC}))
	s.mux.HandleFunc(Prefix+"/vcs/{vc}/release", s.methods(map[string]handler{"POST": s.releaseVC}))
	s.mux.HandleFunc(Prefix+"/vcs/{vc}/nodes", s.methods(map[string]handler{"GET": s.getNodes}))
	s.mux.HandleFunc(Prefix+"/vcs/{vc}/jobs", s.methods(map[string]handler{"GET": s.getJobs}))
	s.mux.HandleFunc(Prefix+"/accounts", s.methods(map[string]handler{"GET": s.listAccounts, "POST": s.addAccount}))
	s.mux.HandleFunc(Prefix+"/accounts/{user}", s.methods(map[string]handler{"GET": s.getAccount, "DELETE": s.delAccount}))
	s.mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &Error{Status: http.StatusNotFound, Message: "no such API route: " + r.URL.Path,
			Hint: "the routes are under " + Prefix + ": status, sites, topology, vcs, accounts"})
	})
}

// problems lists why the peer is not ready.
func (s *Server) problems() []string {
	probs := s.cfg.Ready()
	if s.cfg.Store() == nil {
		probs = append([]string{"no ZooKeeper session yet"}, probs...)
	}
	return probs
}

// store returns the session or answers 503.
func (s *Server) store(w http.ResponseWriter) (coord.Store, bool) {
	st := s.cfg.Store()
	if st == nil {
		writeError(w, &Error{Status: http.StatusServiceUnavailable, Message: "the peer is not connected to ZooKeeper yet",
			Hint: "retry in a few seconds; if it persists, check the peer's log and its zookeeper.servers"})
		return nil, false
	}
	return st, true
}

// storeError answers a failed store operation.
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case coord.Retryable(err), errors.Is(err, coord.ErrSessionExpired), errors.Is(err, coord.ErrClosed),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, reserve.ErrContention):
		writeError(w, &Error{Status: http.StatusServiceUnavailable, Message: "the coordination service is unavailable: " + err.Error(),
			Hint: "retry shortly; if it persists, check the ZooKeeper ensemble (musubi site status)"})
	case errors.Is(err, context.Canceled):
		writeError(w, &Error{Status: 499, Message: "request cancelled"})
	case errors.Is(err, coord.ErrNoAuth):
		s.log.Error("store refused the peer's credential", "route", r.Pattern, "err", err)
		writeError(w, &Error{Status: http.StatusInternalServerError, Message: "ZooKeeper refused the peer's credential",
			Hint: "check zookeeper.credential_file on this peer: it must hold the federation credential"})
	default:
		s.log.Error("API request failed", "route", r.Pattern, "err", err)
		writeError(w, &Error{Status: http.StatusInternalServerError, Message: err.Error(), Hint: "the peer's log has the details"})
	}
}

func forbidden(w http.ResponseWriter, p Principal, what string) {
	writeError(w, &Error{Status: http.StatusForbidden, Message: fmt.Sprintf("%s %q (role %s) may not %s", principalKind(p), p.Name, p.Role, what),
		Hint: "ask an administrator for a token with the needed role"})
}

func principalKind(p Principal) string {
	if p.Via == "socket" {
		return "socket user"
	}
	return "token"
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request, p Principal) {
	st, ok := s.store(w)
	if !ok {
		return
	}
	fs, err := node.ReadStatus(r.Context(), st)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	rs, err := s.reserver(st, "")
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	recs, err := rs.List(r.Context())
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	counts := map[string]int{}
	for _, rec := range recs {
		if !p.canSeeVC(rec.VC, rec.Owner) {
			continue
		}
		v, err := s.view(r.Context(), st, rec)
		if err != nil {
			s.storeError(w, r, err)
			return
		}
		counts[v.Phase]++
	}
	probs := s.problems()
	writeJSON(w, http.StatusOK, Status{
		Peer:       PeerInfo{Site: s.cfg.Site, Version: s.cfg.Version, Ready: len(probs) == 0, Problems: probs},
		Federation: fs, VCs: counts, Time: s.cfg.Now().UTC(),
	})
}

func (s *Server) getSites(w http.ResponseWriter, r *http.Request, p Principal) {
	st, ok := s.store(w)
	if !ok {
		return
	}
	fs, err := node.ReadStatus(r.Context(), st)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	if fs.Sites == nil {
		fs.Sites = []node.SiteStatus{}
	}
	writeJSON(w, http.StatusOK, Sites{Sites: fs.Sites})
}

func (s *Server) getTopology(w http.ResponseWriter, r *http.Request, p Principal) {
	st, ok := s.store(w)
	if !ok {
		return
	}
	ctx := r.Context()
	fs, err := node.ReadStatus(ctx, st)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	names, _, err := st.Children(ctx, coord.LinksDir)
	if err != nil && !errors.Is(err, coord.ErrNotFound) {
		s.storeError(w, r, err)
		return
	}
	measured := map[string]topology.Link{}
	for _, n := range names {
		data, _, err := st.Get(ctx, coord.Join(coord.LinksDir, n))
		if errors.Is(err, coord.ErrNotFound) {
			continue
		}
		if err != nil {
			s.storeError(w, r, err)
			return
		}
		var l topology.Link
		a, b, perr := coord.ParseLinkName(n)
		if perr != nil || json.Unmarshal(data, &l) != nil {
			continue // malformed: the overlay reports it; the map shows the pair as unmeasured
		}
		measured[coord.LinkName(a, b)] = l
	}
	live := map[string]bool{}
	for _, site := range fs.Sites {
		live[site.Name] = site.Live
	}
	topo := Topology{Sites: fs.Sites, Links: []Link{}}
	if topo.Sites == nil {
		topo.Sites = []node.SiteStatus{}
	}
	for i, a := range fs.Sites {
		for _, b := range fs.Sites[i+1:] {
			name := coord.LinkName(a.Name, b.Name)
			x, y, _ := coord.ParseLinkName(name)
			l := Link{A: x, B: y, Up: live[x] && live[y], CostUS: topology.DefaultCost}
			if m, ok := measured[name]; ok {
				l.Up = m.Up && l.Up
				l.CostUS, l.Updated, l.Measured = m.Cost, m.Updated, true
			}
			topo.Links = append(topo.Links, l)
		}
	}
	writeJSON(w, http.StatusOK, topo)
}

func (s *Server) listVCs(w http.ResponseWriter, r *http.Request, p Principal) {
	st, ok := s.store(w)
	if !ok {
		return
	}
	rs, err := s.reserver(st, "")
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	recs, err := rs.List(r.Context())
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	out := VCList{VCs: []VC{}}
	for _, rec := range recs {
		if !p.canSeeVC(rec.VC, rec.Owner) {
			continue
		}
		v, err := s.view(r.Context(), st, rec)
		if err != nil {
			s.storeError(w, r, err)
			return
		}
		out.VCs = append(out.VCs, v)
	}
	writeJSON(w, http.StatusOK, out)
}

// lookup reads a VC's reservation, answering 400/404/503 itself.
// lookupAllowed is the store and the reservation the request names, when
// p is allowed (allowed(p, vc, owner)); otherwise it answers 403 with
// what(rec) as the refused action, and ok is false.
func (s *Server) lookupAllowed(w http.ResponseWriter, r *http.Request, p Principal,
	allowed func(p Principal, vc, owner string) bool, what func(reserve.Record) string) (coord.Store, reserve.Record, bool) {
	st, ok := s.store(w)
	if !ok {
		return nil, reserve.Record{}, false
	}
	rec, ok := s.lookup(w, r, st)
	if !ok {
		return nil, rec, false
	}
	if !allowed(p, rec.VC, rec.Owner) {
		forbidden(w, p, what(rec))
		return nil, rec, false
	}
	return st, rec, true
}

func (s *Server) lookup(w http.ResponseWriter, r *http.Request, st coord.Store) (reserve.Record, bool) {
	vc := r.PathValue("vc")
	if coord.ValidName(vc) != nil {
		writeError(w, &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("bad VC name %q", vc),
			Hint: "VC names are 1-63 letters, digits, '.', '_' or '-'"})
		return reserve.Record{}, false
	}
	rs, err := s.reserver(st, "")
	if err != nil {
		s.storeError(w, r, err)
		return reserve.Record{}, false
	}
	rec, err := rs.Get(r.Context(), vc)
	if errors.Is(err, reserve.ErrNotFound) {
		writeError(w, &Error{Status: http.StatusNotFound, Message: "no reservation named " + vc, Hint: "list them with 'musubi vc list'"})
		return rec, false
	}
	if err != nil {
		s.storeError(w, r, err)
		return rec, false
	}
	return rec, true
}

func (s *Server) getVC(w http.ResponseWriter, r *http.Request, p Principal) {
	st, rec, ok := s.lookupAllowed(w, r, p, Principal.canSeeVC, func(rec reserve.Record) string { return "read VC " + rec.VC })
	if !ok {
		return
	}
	v, err := s.view(r.Context(), st, rec)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) reserveVC(w http.ResponseWriter, r *http.Request, p Principal) {
	if !p.canReserve() {
		forbidden(w, p, "reserve VCs")
		return
	}
	var req ReserveRequest
	if !s.decodeBody(w, r, &req, false) {
		return
	}
	owner := p.Name
	if req.Owner != "" && req.Owner != p.Name {
		if !p.isAdmin() {
			forbidden(w, p, "reserve on behalf of "+req.Owner)
			return
		}
		if coord.ValidName(req.Owner) != nil {
			writeError(w, &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("bad owner %q", req.Owner), Hint: "owners are principal names from the tokens file"})
			return
		}
		owner = req.Owner
	}
	for i, k := range req.SSHKeys {
		if err := ValidSSHKey(strings.TrimSpace(k)); err != nil {
			writeError(w, &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("ssh_keys[%d]: %v", i, err), Hint: "send the content of a public key file such as ~/.ssh/id_ed25519.pub"})
			return
		}
		req.SSHKeys[i] = strings.TrimSpace(k)
	}
	st, ok := s.store(w)
	if !ok {
		return
	}
	rs, err := s.reserver(st, owner)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	start := time.Now()
	rec, err := rs.Reserve(r.Context(), req.Request())
	result := "admitted"
	var ref *admission.Refusal
	switch {
	case err == nil:
	case errors.As(err, &ref):
		result = "refused"
	default:
		result = "error"
	}
	if m := s.cfg.Metrics; m != nil {
		m.AdmissionDuration.WithLabelValues(result).Observe(time.Since(start).Seconds())
		switch {
		case err == nil:
			m.ReserveAdmitted.Inc()
		case ref != nil:
			m.ReserveRefused.WithLabelValues(string(ref.Constraint)).Inc()
		}
	}
	switch {
	case err == nil:
		v, verr := s.view(r.Context(), st, rec)
		if verr != nil {
			v = VC{Record: rec, NodesTotal: len(rec.Placement.Nodes), Phase: PhaseScheduled}
		}
		w.Header().Set("Location", Prefix+"/vcs/"+rec.VC)
		writeJSON(w, http.StatusCreated, v)
	case ref != nil:
		hint := "ask for fewer or smaller nodes, other sites, or a later window"
		if ref.Earliest != nil {
			hint = fmt.Sprintf("the earliest window of the same length that fits starts %s (ends %s): retry with that start, or ask for fewer or smaller nodes",
				ref.Earliest.Start.UTC().Format(time.RFC3339), ref.Earliest.End.UTC().Format(time.RFC3339))
		}
		writeError(w, &Error{Status: http.StatusConflict, Message: "refused: " + ref.Reason, Hint: hint, Refusal: ref})
	case errors.Is(err, reserve.ErrVCExists):
		writeError(w, &Error{Status: http.StatusConflict, Message: err.Error(), Hint: "choose another VC name, or cancel and purge the old one"})
	case errors.Is(err, admission.ErrInvalidRequest), errors.Is(err, reserve.ErrInvalid):
		writeError(w, &Error{Status: http.StatusBadRequest, Message: err.Error(), Hint: "fix the request: vc, nodes, memory_mib, vcpus, start and end are required"})
	default:
		s.storeError(w, r, err)
	}
}

func (s *Server) cancelVC(w http.ResponseWriter, r *http.Request, p Principal) {
	st, rec, ok := s.lookupAllowed(w, r, p, Principal.canModifyVC, func(rec reserve.Record) string {
		return "cancel VC " + rec.VC + " (owned by " + ownerName(rec.Owner) + ")"
	})
	if !ok {
		return
	}
	was := rec.State
	rs, err := s.reserver(st, "")
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	rec, err = rs.Cancel(r.Context(), rec.VC)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	if m := s.cfg.Metrics; m != nil && was != reserve.Cancelled {
		m.ReserveCancelled.Inc()
	}
	v, err := s.view(r.Context(), st, rec)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func ownerName(o string) string {
	if o == "" {
		return "nobody"
	}
	return o
}

func (s *Server) releaseVC(w http.ResponseWriter, r *http.Request, p Principal) {
	st, rec, ok := s.lookupAllowed(w, r, p, Principal.canModifyVC, func(rec reserve.Record) string {
		return "release VC " + rec.VC + " (owned by " + ownerName(rec.Owner) + ")"
	})
	if !ok {
		return
	}
	var req ReleaseRequest
	if !s.decodeBody(w, r, &req, true) {
		return
	}
	at := req.At
	if at.IsZero() {
		at = s.cfg.Now()
	}
	rs, err := s.reserver(st, "")
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	rec, err = rs.Release(r.Context(), rec.VC, at)
	if errors.Is(err, reserve.ErrCancelled) {
		writeError(w, &Error{Status: http.StatusConflict, Message: err.Error(), Hint: "a cancelled VC has nothing left to release"})
		return
	}
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	if m := s.cfg.Metrics; m != nil {
		m.ReserveReleased.Inc()
	}
	v, err := s.view(r.Context(), st, rec)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) getNodes(w http.ResponseWriter, r *http.Request, p Principal) {
	st, rec, ok := s.lookupAllowed(w, r, p, Principal.canSeeVCDetail, func(rec reserve.Record) string { return "see the nodes of VC " + rec.VC })
	if !ok {
		return
	}
	nodes, err := nodesOf(r.Context(), st, rec)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	if nodes == nil {
		nodes = []Node{}
	}
	writeJSON(w, http.StatusOK, Nodes{VC: rec.VC, Nodes: nodes})
}

func (s *Server) getJobs(w http.ResponseWriter, r *http.Request, p Principal) {
	st, rec, ok := s.lookupAllowed(w, r, p, Principal.canSeeVCDetail, func(rec reserve.Record) string { return "see the jobs of VC " + rec.VC })
	if !ok {
		return
	}
	jobs, err := jobsOf(r.Context(), st, rec.VC)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, Jobs{VC: rec.VC, Jobs: jobs})
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request, p Principal) {
	st, ok := s.store(w)
	if !ok {
		return
	}
	as, err := ListAccounts(r.Context(), st)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	out := Accounts{Accounts: []AccountView{}}
	for _, a := range as {
		if p.canSeeAccount(a.User) {
			out.Accounts = append(out.Accounts, a.View())
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getAccount(w http.ResponseWriter, r *http.Request, p Principal) {
	user := r.PathValue("user")
	if !p.canSeeAccount(user) {
		forbidden(w, p, "read account "+user)
		return
	}
	st, ok := s.store(w)
	if !ok {
		return
	}
	a, err := GetAccount(r.Context(), st, user)
	if errors.Is(err, ErrNoAccount) {
		writeError(w, &Error{Status: http.StatusNotFound, Message: "no account " + user, Hint: "list them with 'musubi account list'"})
		return
	}
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.View())
}

func (s *Server) addAccount(w http.ResponseWriter, r *http.Request, p Principal) {
	if !p.canWriteAccounts() {
		forbidden(w, p, "add accounts")
		return
	}
	var a Account
	if !s.decodeBody(w, r, &a, false) {
		return
	}
	if !a.Created.IsZero() {
		a.Created = time.Time{}
	}
	st, ok := s.store(w)
	if !ok {
		return
	}
	got, err := CreateAccount(r.Context(), st, a, s.cfg.Now())
	switch {
	case err == nil:
		w.Header().Set("Location", Prefix+"/accounts/"+got.User)
		writeJSON(w, http.StatusCreated, got.View())
	case errors.Is(err, ErrAccountExists):
		writeError(w, &Error{Status: http.StatusConflict, Message: err.Error(), Hint: "choose another name or uid, or delete the old account first"})
	case errors.Is(err, ErrAccount):
		writeError(w, &Error{Status: http.StatusBadRequest, Message: err.Error(), Hint: "fix the account fields and retry"})
	default:
		s.storeError(w, r, err)
	}
}

func (s *Server) delAccount(w http.ResponseWriter, r *http.Request, p Principal) {
	if !p.canWriteAccounts() {
		forbidden(w, p, "delete accounts")
		return
	}
	st, ok := s.store(w)
	if !ok {
		return
	}
	user := r.PathValue("user")
	err := DeleteAccount(r.Context(), st, user)
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, ErrNoAccount):
		writeError(w, &Error{Status: http.StatusNotFound, Message: "no account " + user, Hint: "list them with 'musubi account list'"})
	default:
		s.storeError(w, r, err)
	}
}

// reserver returns the Reserver recording owner (one per owner, so that
// each keeps its read cache), made for the current store.
func (s *Server) reserver(st coord.Store, owner string) (*reserve.Reserver, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.rstore != st || len(s.reservers) > 1024 {
		s.reservers = map[string]*reserve.Reserver{}
		s.rstore = st
	}
	if r, ok := s.reservers[owner]; ok {
		return r, nil
	}
	r, err := reserve.New(reserve.Config{Store: st, Logger: s.log.With("subsystem", "reserve"), Admission: s.cfg.Admission, Owner: owner, Now: s.cfg.Now})
	if err != nil {
		return nil, err
	}
	s.reservers[owner] = r
	return r, nil
}
