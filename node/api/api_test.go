package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/memstore"
	"github.com/musubi-fabric/musubi/jobqueue"
	"github.com/musubi-fabric/musubi/jobqueue/sge"
	"github.com/musubi-fabric/musubi/node"
	"github.com/musubi-fabric/musubi/node/admission"
	"github.com/musubi-fabric/musubi/node/api"
	"github.com/musubi-fabric/musubi/node/metrics"
	"github.com/musubi-fabric/musubi/node/reserve"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Tokens of the test principals.
const (
	adminTok    = "tok-admin"
	aliceTok    = "tok-alice" // provider
	carolTok    = "tok-carol" // provider
	bobTok      = "tok-bob"   // user, granted VC "shared"
	badTok      = "tok-wrong"
	gib         = int64(1) << 30
	hostMemMiB  = 16384
	hostVCPUs   = 8
	testVersion = "test"
)

func tokensJSON() []byte {
	tf := api.TokensFile{Tokens: []api.TokenEntry{
		{Name: "admin", Role: api.RoleAdmin, SHA256: api.HashToken(adminTok)},
		{Name: "alice", Role: api.RoleProvider, SHA256: api.HashToken(aliceTok)},
		{Name: "carol", Role: api.RoleProvider, SHA256: api.HashToken(carolTok)},
		{Name: "bob", Role: api.RoleUser, SHA256: api.HashToken(bobTok), VCs: []string{"shared"}},
	}}
	b, _ := json.Marshal(tf)
	return b
}

// sshKey returns a well-formed ed25519 authorized_keys line.
func sshKey(t testing.TB, comment string) string {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, s := range [][]byte{[]byte("ssh-ed25519"), pub} {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(s)))
		b.Write(s)
	}
	return "ssh-ed25519 " + base64.StdEncoding.EncodeToString(b.Bytes()) + " " + comment
}

type env struct {
	t     *testing.T
	store coord.Store
	srv   *api.Server
	http  *httptest.Server
	m     *metrics.Metrics
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ms := memstore.New()
	st := ms.Connect()
	t.Cleanup(func() { _ = st.Close() })
	ctx := context.Background()
	if err := node.InitSchema(ctx, st); err != nil {
		t.Fatal(err)
	}
	rs, err := reserve.New(reserve.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []admission.Host{{Name: "h1", Site: "s1", MemoryMiB: hostMemMiB, VCPUs: hostVCPUs}, {Name: "h2", Site: "s2", MemoryMiB: hostMemMiB, VCPUs: hostVCPUs}} {
		if err := rs.RegisterHost(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []string{"s1", "s2", "s3"} {
		if err := node.RegisterSite(ctx, st, node.SiteRecord{Name: s}, node.LiveRecord{Peer: s}); err != nil {
			t.Fatal(err)
		}
	}
	auth, err := api.ParseTokens(tokensJSON())
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(testVersion)
	srv, err := api.NewServer(api.Config{Site: "s1", Version: testVersion, Store: func() coord.Store { return st }, Auth: auth, Metrics: m, MaxBodyBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &env{t: t, store: st, srv: srv, http: hs, m: m}
}

// call sends a request and returns the status and body.
func (e *env) call(method, path, token string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.http.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func decodeErr(t *testing.T, body []byte) api.Error {
	t.Helper()
	var e api.Error
	if err := json.Unmarshal(body, &e); err != nil || e.Message == "" {
		t.Fatalf("not a JSON error: %s", body)
	}
	return e
}

func window(startIn, length time.Duration) (time.Time, time.Time) {
	s := time.Now().Add(startIn).UTC().Truncate(time.Second)
	return s, s.Add(length)
}

func reserveReq(vc string, nodes int, memMiB int64) api.ReserveRequest {
	s, e := window(time.Hour, 2*time.Hour)
	return api.ReserveRequest{VC: vc, Nodes: nodes, MemoryMiB: memMiB, VCPUs: 1, Start: s, End: e, Frontend: true}
}

// mustReserve reserves as token and fails the test unless it is admitted.
func (e *env) mustReserve(token string, req api.ReserveRequest) api.VC {
	e.t.Helper()
	code, body := e.call("POST", "/api/v1/vcs", token, req)
	if code != http.StatusCreated {
		e.t.Fatalf("reserve %s: %d %s", req.VC, code, body)
	}
	var v api.VC
	if err := json.Unmarshal(body, &v); err != nil {
		e.t.Fatal(err)
	}
	return v
}

func TestReserveAdmittedRefusedAndBadInput(t *testing.T) {
	e := newEnv(t)
	v := e.mustReserve(aliceTok, reserveReq("vc1", 2, 4096))
	if v.VC != "vc1" || v.Owner != "alice" || v.Phase != api.PhaseScheduled || v.NodesTotal != 2 || len(v.Placement.Nodes) != 2 || v.State != reserve.Admitted {
		t.Errorf("admitted VC: %+v", v)
	}

	// Refused: more memory per node than any host has.
	code, body := e.call("POST", "/api/v1/vcs", aliceTok, reserveReq("big", 1, 2*hostMemMiB))
	if code != http.StatusConflict {
		t.Fatalf("refusal: %d %s", code, body)
	}
	ae := decodeErr(t, body)
	if ae.Refusal == nil || ae.Refusal.Constraint != admission.ConstraintMemory || !strings.Contains(ae.Message, "memory") || ae.Hint == "" {
		t.Errorf("refusal body: %s", body)
	}
	// Refused for now, but fits after vc1's window: the hint names the
	// earliest window.
	code, body = e.call("POST", "/api/v1/vcs", aliceTok, reserveReq("later", 2, 13000))
	if code != http.StatusConflict {
		t.Fatalf("second refusal: %d %s", code, body)
	}
	ae = decodeErr(t, body)
	if ae.Refusal == nil || ae.Refusal.Earliest == nil || !strings.Contains(ae.Hint, ae.Refusal.Earliest.Start.UTC().Format(time.RFC3339)) {
		t.Errorf("no earliest window in %s", body)
	}

	// Same name again.
	code, body = e.call("POST", "/api/v1/vcs", aliceTok, reserveReq("vc1", 1, 1024))
	if code != http.StatusConflict || !strings.Contains(decodeErr(t, body).Message, "already in use") {
		t.Errorf("duplicate: %d %s", code, body)
	}

	for name, tc := range map[string]struct {
		body string
		code int
	}{
		"not json":       {`{"vc": "x", `, 400},
		"unknown field":  {`{"vc": "x", "nodes": 1, "memory": 5}`, 400},
		"wrong type":     {`{"vc": "x", "nodes": "one"}`, 400},
		"two objects":    {`{"vc": "x"} {"vc": "y"}`, 400},
		"empty":          {``, 400},
		"zero nodes":     {`{"vc": "x", "nodes": 0, "memory_mib": 1, "vcpus": 1, "start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z"}`, 400},
		"bad name":       {`{"vc": "../etc", "nodes": 1, "memory_mib": 1, "vcpus": 1, "start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z"}`, 400},
		"ended window":   {`{"vc": "x", "nodes": 1, "memory_mib": 1, "vcpus": 1, "start": "2001-01-01T00:00:00Z", "end": "2001-01-02T00:00:00Z"}`, 400},
		"bad ssh key":    {`{"vc": "x", "nodes": 1, "memory_mib": 1, "vcpus": 1, "start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z", "ssh_keys": ["ssh-rsa AAAA"]}`, 400},
		"too large body": {`{"vc": "` + strings.Repeat("x", 5000) + `"}`, 413},
	} {
		code, body := e.call("POST", "/api/v1/vcs", aliceTok, tc.body)
		if code != tc.code {
			t.Errorf("%s: %d %s", name, code, body)
			continue
		}
		if ae := decodeErr(t, body); ae.Hint == "" {
			t.Errorf("%s: no hint: %s", name, body)
		}
	}

	if got := testutil.ToFloat64(e.m.ReserveAdmitted); got != 1 {
		t.Errorf("admitted counter %v", got)
	}
	if got := testutil.ToFloat64(e.m.ReserveRefused.WithLabelValues("memory")); got != 2 {
		t.Errorf("refused{memory} counter %v", got)
	}
	if got := testutil.ToFloat64(e.m.APIRequests.WithLabelValues("POST", "/api/v1/vcs", "409")); got != 3 {
		t.Errorf("API 409 counter %v", got)
	}
}

func TestAuthMatrix(t *testing.T) {
	e := newEnv(t)
	e.mustReserve(aliceTok, reserveReq("alices", 1, 1024))
	e.mustReserve(carolTok, reserveReq("carols", 1, 1024))
	e.mustReserve(adminTok, api.ReserveRequest{VC: "bobs", Nodes: 1, MemoryMiB: 1024, VCPUs: 1, Start: time.Now().Add(time.Hour), End: time.Now().Add(2 * time.Hour), Owner: "bob"})
	e.mustReserve(adminTok, reserveReq("shared", 1, 1024))
	newVC := func(name string) api.ReserveRequest { return reserveReq(name, 1, 512) }
	acct := func(user string) api.Account { return api.Account{User: user, SSHKeys: []string{sshKey(t, user)}} }

	type step struct {
		method, path, token string
		body                any
		want                int
	}
	steps := []step{
		// No token, a bad token, a malformed header: 401 everywhere.
		{"GET", "/api/v1/status", "", nil, 401},
		{"GET", "/api/v1/vcs", badTok, nil, 401},
		{"POST", "/api/v1/vcs", "", newVC("x1"), 401},
		{"DELETE", "/api/v1/vcs/alices", badTok, nil, 401},
		{"GET", "/api/v1/accounts", "", nil, 401},

		// Everyone reads the federation.
		{"GET", "/api/v1/status", bobTok, nil, 200},
		{"GET", "/api/v1/sites", bobTok, nil, 200},
		{"GET", "/api/v1/topology", bobTok, nil, 200},

		// Users: read-only, own VCs only.
		{"POST", "/api/v1/vcs", bobTok, newVC("x2"), 403},
		{"GET", "/api/v1/vcs/bobs", bobTok, nil, 200},
		{"GET", "/api/v1/vcs/shared", bobTok, nil, 200},
		{"GET", "/api/v1/vcs/alices", bobTok, nil, 403},
		{"GET", "/api/v1/vcs/bobs/nodes", bobTok, nil, 200},
		{"GET", "/api/v1/vcs/bobs/jobs", bobTok, nil, 200},
		{"GET", "/api/v1/vcs/alices/jobs", bobTok, nil, 403},
		{"DELETE", "/api/v1/vcs/bobs", bobTok, nil, 403},
		{"POST", "/api/v1/vcs/bobs/release", bobTok, nil, 403},
		{"POST", "/api/v1/accounts", bobTok, acct("eve"), 403},
		{"DELETE", "/api/v1/accounts/bob", bobTok, nil, 403},
		{"GET", "/api/v1/accounts/alice", bobTok, nil, 403},

		// Providers: reserve, modify their own, read all reservations.
		{"POST", "/api/v1/vcs", aliceTok, newVC("alices2"), 201},
		{"GET", "/api/v1/vcs/carols", aliceTok, nil, 200},
		{"GET", "/api/v1/vcs/carols/nodes", aliceTok, nil, 403},
		{"DELETE", "/api/v1/vcs/carols", aliceTok, nil, 403},
		{"POST", "/api/v1/vcs/carols/release", aliceTok, nil, 403},
		{"POST", "/api/v1/vcs", aliceTok, api.ReserveRequest{VC: "forbob", Nodes: 1, MemoryMiB: 1, VCPUs: 1, Start: time.Now().Add(time.Hour), End: time.Now().Add(2 * time.Hour), Owner: "bob"}, 403},
		{"DELETE", "/api/v1/vcs/alices2", aliceTok, nil, 200},
		{"POST", "/api/v1/vcs/alices/release", aliceTok, `{}`, 200},
		{"POST", "/api/v1/accounts", aliceTok, acct("eve"), 403},
		{"GET", "/api/v1/accounts", aliceTok, nil, 200},

		// Admins: everything.
		{"POST", "/api/v1/accounts", adminTok, acct("eve"), 201},
		{"GET", "/api/v1/accounts/eve", adminTok, nil, 200},
		{"DELETE", "/api/v1/accounts/eve", adminTok, nil, 204},
		{"GET", "/api/v1/vcs/carols/nodes", adminTok, nil, 200},
		{"DELETE", "/api/v1/vcs/carols", adminTok, nil, 200},

		// Not found, bad names, wrong methods: JSON errors too.
		{"GET", "/api/v1/vcs/nothere", adminTok, nil, 404},
		{"GET", "/api/v1/vcs/bad%20name", adminTok, nil, 400},
		{"DELETE", "/api/v1/accounts/nobody-here", adminTok, nil, 404},
		{"PUT", "/api/v1/vcs", adminTok, nil, 405},
		{"GET", "/api/v1/nothing", adminTok, nil, 404},
	}
	for _, s := range steps {
		code, body := e.call(s.method, s.path, s.token, s.body)
		if code != s.want {
			t.Errorf("%s %s as %q: got %d, want %d: %s", s.method, s.path, s.token, code, s.want, body)
			continue
		}
		if code >= 400 {
			ae := decodeErr(t, body)
			if ae.Hint == "" {
				t.Errorf("%s %s: error without a hint: %s", s.method, s.path, body)
			}
		}
	}

	// A user's list holds only its own VCs; a provider's holds all.
	for tok, want := range map[string]int{bobTok: 2, aliceTok: 5} {
		code, body := e.call("GET", "/api/v1/vcs", tok, nil)
		var l api.VCList
		if code != 200 || json.Unmarshal(body, &l) != nil || len(l.VCs) != want {
			t.Errorf("list as %s: %d VCs, want %d: %s", tok, len(l.VCs), want, body)
		}
	}
	// 401 responses ask for a bearer token.
	req, _ := http.NewRequest("GET", e.http.URL+"/api/v1/status", nil)
	resp, err := e.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("401 without WWW-Authenticate: %v", resp.Header)
	}
}

func TestCancelAndRelease(t *testing.T) {
	e := newEnv(t)
	e.mustReserve(aliceTok, reserveReq("a", 1, 1024))
	code, body := e.call("DELETE", "/api/v1/vcs/a", aliceTok, nil)
	var v api.VC
	if code != 200 || json.Unmarshal(body, &v) != nil || v.State != reserve.Cancelled || v.Phase != api.PhaseCancelled {
		t.Fatalf("cancel: %d %s", code, body)
	}
	code, body = e.call("POST", "/api/v1/vcs/a/release", aliceTok, nil)
	if code != http.StatusConflict {
		t.Errorf("release of a cancelled VC: %d %s", code, body)
	}

	// Release at an instant inside the window shortens it.
	req := reserveReq("b", 1, 1024)
	e.mustReserve(aliceTok, req)
	at := req.Start.Add(30 * time.Minute)
	code, body = e.call("POST", "/api/v1/vcs/b/release", aliceTok, api.ReleaseRequest{At: at})
	if code != 200 || json.Unmarshal(body, &v) != nil || v.State != reserve.Released || !v.Window.End.Equal(at) {
		t.Fatalf("release: %d %s", code, body)
	}
}

func TestNodesAndProgress(t *testing.T) {
	e := newEnv(t)
	s, end := time.Now().Add(-time.Minute).UTC(), time.Now().Add(time.Hour).UTC()
	e.mustReserve(aliceTok, api.ReserveRequest{VC: "run", Nodes: 2, MemoryMiB: 1024, VCPUs: 1, Start: s, End: end, Frontend: true, Policy: "spread"})
	ctx := context.Background()
	code, body := e.call("GET", "/api/v1/vcs/run", aliceTok, nil)
	var v api.VC
	if code != 200 || json.Unmarshal(body, &v) != nil || v.Phase != api.PhaseProvisioning || v.NodesReady != 0 {
		t.Fatalf("before progress: %d %s", code, body)
	}
	sites := v.Placement.Sites()
	if len(sites) != 2 {
		t.Fatalf("spread placement uses %v", sites)
	}
	put := func(p, data string) {
		if err := coord.EnsurePath(ctx, e.store, coord.Parent(p)); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.Create(ctx, p, []byte(data), coord.Persistent, nil); err != nil {
			if _, err := e.store.Set(ctx, p, []byte(data), coord.AnyVersion); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(coord.VCStatusPath("run", sites[0]), `{"state": "ready", "nodes_ready": 1, "nodes": 1}`)
	put(coord.VCStatusPath("run", sites[1]), `{"state": "booting", "nodes_ready": 0, "nodes": 1, "message": "starting VM"}`)
	code, body = e.call("GET", "/api/v1/vcs/run", aliceTok, nil)
	if json.Unmarshal(body, &v) != nil || v.Phase != api.PhaseProvisioning || v.NodesReady != 1 || len(v.Progress) != 2 {
		t.Fatalf("half ready: %d %s", code, body)
	}
	put(coord.VCStatusPath("run", sites[1]), `{"state": "ready", "nodes_ready": 1, "nodes": 1}`)
	code, body = e.call("GET", "/api/v1/vcs/run", aliceTok, nil)
	if json.Unmarshal(body, &v) != nil || v.Phase != api.PhaseReady || v.NodesReady != 2 {
		t.Fatalf("ready: %d %s", code, body)
	}

	fe := v.Placement.Nodes[0].Name
	put(coord.VCNodePath("run", fe), `{"node": "`+fe+`", "vc": "run", "ip": "10.1.0.2", "mac": "02:00:00:00:00:01", "port": "vn-run-0", "vlan": 5}`)
	code, body = e.call("GET", "/api/v1/vcs/run/nodes", aliceTok, nil)
	var ns api.Nodes
	if code != 200 || json.Unmarshal(body, &ns) != nil || len(ns.Nodes) != 2 {
		t.Fatalf("nodes: %d %s", code, body)
	}
	if n := ns.Nodes[0]; n.Name != fe || !n.Frontend || n.IP != "10.1.0.2" || n.State != "attached" || n.VLAN != 5 {
		t.Errorf("frontend node: %+v", n)
	}
	if n := ns.Nodes[1]; n.State != "planned" || n.IP != "" {
		t.Errorf("second node: %+v", n)
	}

	put(coord.VCStatusPath("run", sites[1]), `{"state": "failed", "message": "no image"}`)
	code, body = e.call("GET", "/api/v1/vcs/run", aliceTok, nil)
	if json.Unmarshal(body, &v) != nil || v.Phase != api.PhaseFailed {
		t.Fatalf("failed: %d %s", code, body)
	}

	code, body = e.call("GET", "/api/v1/vcs/run/jobs", aliceTok, nil)
	var js api.Jobs
	if code != 200 || json.Unmarshal(body, &js) != nil || js.Jobs == nil || len(js.Jobs) != 0 {
		t.Errorf("jobs of a VC without any: %d %s", code, body)
	}
}

func TestTopologyAndStatus(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.store.Create(ctx, coord.LinkPath("s1", "s2"), []byte(`{"a":"s1","b":"s2","cost_us":2000,"up":true}`), coord.Persistent, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Create(ctx, coord.LinkPath("s1", "s3"), []byte(`{"a":"s1","b":"s3","cost_us":3000,"up":false}`), coord.Persistent, nil); err != nil {
		t.Fatal(err)
	}
	code, body := e.call("GET", "/api/v1/topology", bobTok, nil)
	var topo api.Topology
	if code != 200 || json.Unmarshal(body, &topo) != nil {
		t.Fatalf("%d %s", code, body)
	}
	if len(topo.Sites) != 3 || len(topo.Links) != 3 {
		t.Fatalf("topology: %s", body)
	}
	want := map[string]api.Link{
		"s1~s2": {A: "s1", B: "s2", Up: true, CostUS: 2000, Measured: true},
		"s1~s3": {A: "s1", B: "s3", Up: false, CostUS: 3000, Measured: true},
		"s2~s3": {A: "s2", B: "s3", Up: true, CostUS: 100000, Measured: false},
	}
	for _, l := range topo.Links {
		l.Updated = time.Time{}
		if w := want[l.A+"~"+l.B]; l != w {
			t.Errorf("link %s~%s: %+v, want %+v", l.A, l.B, l, w)
		}
	}

	e.mustReserve(aliceTok, reserveReq("x", 1, 1024))
	code, body = e.call("GET", "/api/v1/status", aliceTok, nil)
	var st api.Status
	if code != 200 || json.Unmarshal(body, &st) != nil || st.Peer.Site != "s1" || !st.Peer.Ready || len(st.Federation.Sites) != 3 || st.VCs[api.PhaseScheduled] != 1 {
		t.Fatalf("status: %d %s", code, body)
	}
}

func TestAccounts(t *testing.T) {
	e := newEnv(t)
	key := sshKey(t, "alice@laptop")
	hash := "$y$j9T$abcdefghijklmnop$0123456789abcdefghijklmnopqrstuvwxyzABCDE"
	code, body := e.call("POST", "/api/v1/accounts", adminTok, api.Account{User: "alice", SSHKeys: []string{key}, PasswordHash: hash})
	var a api.AccountView
	if code != 201 || json.Unmarshal(body, &a) != nil || a.UID != api.FirstAutoUID || a.GID != a.UID || a.Home != "/home/alice" || a.Shell != api.DefaultShell || !a.HasPassword {
		t.Fatalf("add: %d %s", code, body)
	}
	if strings.Contains(string(body), hash) {
		t.Error("the API returned the password hash")
	}
	code, body = e.call("POST", "/api/v1/accounts", adminTok, api.Account{User: "bob", UID: 20000, Groups: []string{"vina"}})
	if code != 201 || json.Unmarshal(body, &a) != nil || a.UID != 20000 || len(a.SSHKeys) != 0 {
		t.Fatalf("add with uid: %d %s", code, body)
	}
	code, body = e.call("POST", "/api/v1/accounts", adminTok, api.Account{User: "carol"})
	if code != 201 || json.Unmarshal(body, &a) != nil || a.UID != 20001 {
		t.Fatalf("auto uid after 20000: %d %s", code, body)
	}

	for name, tc := range map[string]struct {
		body any
		code int
	}{
		"dup user":       {api.Account{User: "alice"}, 409},
		"dup uid":        {api.Account{User: "dave", UID: 20000}, 409},
		"plain password": {`{"user": "dave", "password": "hunter2"}`, 400},
		"plain as hash":  {api.Account{User: "dave", PasswordHash: "hunter2"}, 400},
		"md5 hash":       {api.Account{User: "dave", PasswordHash: "$1$salt$abcdefghijklmnopqrstuv"}, 400},
		"system user":    {api.Account{User: "root"}, 400},
		"bad name":       {api.Account{User: "Dave Smith"}, 400},
		"low uid":        {api.Account{User: "dave", UID: 10}, 400},
		"bad shell":      {api.Account{User: "dave", Shell: "bash"}, 400},
		"bad home":       {api.Account{User: "dave", Home: "/home/../etc"}, 400},
		"bad key":        {api.Account{User: "dave", SSHKeys: []string{"ssh-ed25519 bm90IGEga2V5"}}, 400},
		"key options":    {api.Account{User: "dave", SSHKeys: []string{`command="sh" ` + key}}, 400},
	} {
		code, body := e.call("POST", "/api/v1/accounts", adminTok, tc.body)
		if code != tc.code {
			t.Errorf("%s: %d %s", name, code, body)
		}
		if strings.Contains(string(body), "hunter2") {
			t.Errorf("%s: the error quotes the password", name)
		}
	}

	code, body = e.call("GET", "/api/v1/accounts", adminTok, nil)
	var l api.Accounts
	if code != 200 || json.Unmarshal(body, &l) != nil || len(l.Accounts) != 3 || strings.Contains(string(body), "password_hash") {
		t.Fatalf("list: %d %s", code, body)
	}
	// The record in the store keeps the hash (agents need it).
	data, _, err := e.store.Get(context.Background(), coord.AccountPath("alice"))
	if err != nil || !strings.Contains(string(data), hash) {
		t.Fatalf("stored record: %s %v", data, err)
	}
	// A user sees only its own account.
	code, body = e.call("GET", "/api/v1/accounts", bobTok, nil)
	if code != 200 || json.Unmarshal(body, &l) != nil || len(l.Accounts) != 1 || l.Accounts[0].User != "bob" {
		t.Fatalf("user's list: %d %s", code, body)
	}
	if code, body := e.call("DELETE", "/api/v1/accounts/carol", adminTok, nil); code != 204 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code, _ := e.call("GET", "/api/v1/accounts/carol", adminTok, nil); code != 404 {
		t.Fatalf("deleted account still there: %d", code)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	var store coord.Store
	problems := []string{"overlay: not started"}
	srv, err := api.NewServer(api.Config{Store: func() coord.Store { return store }, Ready: func() []string { return problems }})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	get := func(p string) (int, string) {
		resp, err := http.Get(hs.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("healthz %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "no ZooKeeper session") || !strings.Contains(body, "overlay: not started") {
		t.Errorf("readyz without store: %d %s", code, body)
	}
	ms := memstore.New()
	store = ms.Connect()
	defer store.Close()
	problems = nil
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("readyz when ready: %d %s", code, body)
	}
	// The API answers 503 (not a panic) while there is no store.
	store = nil
	c, err := api.NewClient(api.ClientConfig{Endpoint: hs.URL, Token: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ready(context.Background()); !api.IsStatus(err, 503) {
		t.Errorf("client Ready: %v", err)
	}
}

// Root on the unix socket is admin without a token.
func TestUnixSocketRootIsAdmin(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the socket grants admin to root callers only")
	}
	e := newEnv(t)
	sock := filepath.Join(t.TempDir(), "peer.sock")
	ln, err := api.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Run(ctx, api.Listeners{Unix: ln}, time.Second) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(sock); !os.IsNotExist(err) {
			t.Errorf("socket left behind: %v", err)
		}
	}()
	c, err := api.NewClient(api.ClientConfig{Endpoint: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.AddAccount(ctx, api.Account{User: "rooty"}); err != nil {
		t.Fatalf("root on the socket: %v", err)
	}
	// A token on the socket counts as that token.
	ct, _ := api.NewClient(api.ClientConfig{Endpoint: sock, Token: bobTok})
	defer ct.Close()
	if _, err := ct.AddAccount(ctx, api.Account{User: "other"}); !api.IsStatus(err, 403) {
		t.Fatalf("user token on the socket: %v", err)
	}
	// A second listener on a live socket is refused.
	if _, err := api.ListenUnix(sock); err == nil || !strings.Contains(err.Error(), "another peer") {
		t.Fatalf("second listen: %v", err)
	}
}

func TestClientRoundTrip(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c, err := api.NewClient(api.ClientConfig{Endpoint: e.http.URL, Token: aliceTok})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.Reserve(ctx, reserveReq("cli", 1, 1024))
	if err != nil || v.VC != "cli" {
		t.Fatalf("reserve: %+v %v", v, err)
	}
	_, err = c.Reserve(ctx, reserveReq("huge", 1, 1<<20))
	var ae *api.Error
	if !api.IsStatus(err, 409) || !asErr(err, &ae) || ae.Refusal == nil || ae.Hint == "" {
		t.Fatalf("refusal through the client: %v", err)
	}
	vcs, err := c.VCs(ctx)
	if err != nil || len(vcs) != 1 {
		t.Fatalf("list: %v %v", vcs, err)
	}
	if _, err := c.Cancel(ctx, "cli"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.VC(ctx, "nope"); !api.IsStatus(err, 404) {
		t.Fatalf("missing VC: %v", err)
	}
	for _, bad := range []string{"ftp://x", "relative/sock", "https://"} {
		if _, err := api.NewClient(api.ClientConfig{Endpoint: bad}); err == nil {
			t.Errorf("endpoint %q accepted", bad)
		}
	}
}

func asErr(err error, target **api.Error) bool {
	e, ok := err.(*api.Error)
	if ok {
		*target = e
	}
	return ok
}

func TestJobsOfAVC(t *testing.T) {
	e := newEnv(t)
	e.mustReserve(aliceTok, reserveReq("jobs", 1, 1024))
	ctx := context.Background()
	q, err := jobqueue.New(jobqueue.Config{Store: e.store, VC: "jobs"})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Init(ctx); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []*sge.JobSpec{
		{Name: "dock", Script: []byte("#!/bin/sh\ntrue\n"), ScriptFile: "dock.sh", Submitter: sge.Submitter{User: "alice"}},
		{Name: "screen", Script: []byte("#!/bin/sh\ntrue\n"), ScriptFile: "screen.sh", Array: &sge.TaskRange{First: 1, Last: 10, Step: 1}, Submitter: sge.Submitter{User: "bob"}},
	} {
		if _, err := q.Submit(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	code, body := e.call("GET", "/api/v1/vcs/jobs/jobs", aliceTok, nil)
	var js api.Jobs
	if code != 200 || json.Unmarshal(body, &js) != nil || len(js.Jobs) != 2 {
		t.Fatalf("jobs: %d %s", code, body)
	}
	if j := js.Jobs[0]; j.Name != "dock" || j.Owner != "alice" || j.State != "qw" || j.Slots != 1 {
		t.Errorf("first job %+v", j)
	}
	if j := js.Jobs[1]; j.Name != "screen" || j.Tasks != "1-10:1" {
		t.Errorf("array job %+v", j)
	}
}
