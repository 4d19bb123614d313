package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/memstore"
	"github.com/musubi-fabric/musubi/node"
	"github.com/musubi-fabric/musubi/node/admission"
	"github.com/musubi-fabric/musubi/node/api"
	"github.com/musubi-fabric/musubi/node/reserve"
)

// syncBuffer is a bytes.Buffer safe for a command and a test goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cliFixture is an API server on memstore with two sites and tokens.
type cliFixture struct {
	t       *testing.T
	store   coord.Store
	url     string
	vars    map[string]string
	adminTF string
	userTF  string
	keyFile string
}

func writeSecret(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func testKey(t *testing.T) string {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, s := range [][]byte{[]byte("ssh-ed25519"), pub} {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(s)))
		b.Write(s)
	}
	return "ssh-ed25519 " + base64.StdEncoding.EncodeToString(b.Bytes()) + " test@host"
}

func newCLIFixture(t *testing.T) *cliFixture {
	t.Helper()
	ms := memstore.New()
	st := ms.Connect()
	t.Cleanup(func() { _ = st.Close() })
	ctx := context.Background()
	if err := node.InitSchema(ctx, st); err != nil {
		t.Fatal(err)
	}
	rs, _ := reserve.New(reserve.Config{Store: st})
	for _, h := range []admission.Host{{Name: "h1", Site: "s1", MemoryMiB: 8192, VCPUs: 8}, {Name: "h2", Site: "s2", MemoryMiB: 8192, VCPUs: 8}} {
		if err := rs.RegisterHost(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []string{"s1", "s2"} {
		if err := node.RegisterSite(ctx, st, node.SiteRecord{Name: s, ZKServer: s + ":2181"}, node.LiveRecord{Peer: s}); err != nil {
			t.Fatal(err)
		}
	}
	tf := api.TokensFile{Tokens: []api.TokenEntry{
		{Name: "ops", Role: api.RoleAdmin, SHA256: api.HashToken("admin-token")},
		{Name: "bob", Role: api.RoleUser, SHA256: api.HashToken("user-token")},
	}}
	data, _ := json.Marshal(tf)
	auth, err := api.ParseTokens(data)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.NewServer(api.Config{Site: "s1", Version: "test", Store: func() coord.Store { return st }, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	dir := t.TempDir()
	f := &cliFixture{t: t, store: st, url: hs.URL,
		adminTF: writeSecret(t, dir, "admin.token", "admin-token\n"),
		userTF:  writeSecret(t, dir, "user.token", "user-token\n"),
		keyFile: writeSecret(t, dir, "id.pub", testKey(t)+"\n"),
	}
	f.vars = map[string]string{envAPI: hs.URL, envTokenFile: f.adminTF, "HOME": dir}
	return f
}

// run runs musubi with args and returns the exit code and outputs.
func (f *cliFixture) run(args ...string) (int, string, string) {
	f.t.Helper()
	var out, errb syncBuffer
	env := &cliEnv{stdout: &out, stderr: &errb, stdin: strings.NewReader(""), getenv: func(k string) string { return f.vars[k] }}
	code := run(context.Background(), env, append([]string{"musubi"}, args...))
	return code, out.String(), errb.String()
}

func TestCLIReserveListShowCancel(t *testing.T) {
	f := newCLIFixture(t)
	code, out, errs := f.run("vc", "reserve", "v1", "--nodes", "2", "--memory", "2G", "--start", "+1h", "--duration", "3h", "--ssh-key", f.keyFile)
	if code != exitOK || !strings.Contains(out, "Reserved v1: 2 nodes") {
		t.Fatalf("reserve: %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = f.run("vc", "reserve", "big", "--nodes", "1", "--memory", "64G")
	if code != exitFailure || !strings.Contains(errs, "refused: memory") || !strings.Contains(errs, "fewer or smaller") {
		t.Fatalf("refusal: %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = f.run("vc", "reserve", "v2", "--nodes", "1", "--memory", "7G", "--start", "+2h")
	if code != exitFailure || !strings.Contains(errs, "earliest window") {
		t.Fatalf("refusal with an earliest window: %d\n%s%s", code, out, errs)
	}

	code, out, _ = f.run("vc", "list")
	if code != exitOK || !strings.Contains(out, "v1") || !strings.Contains(out, "scheduled") || !strings.Contains(out, "2G") {
		t.Fatalf("list: %d\n%s", code, out)
	}
	code, out, _ = f.run("vc", "list", "--output", "json")
	var l api.VCList
	if code != exitOK || json.Unmarshal([]byte(out), &l) != nil || len(l.VCs) != 1 || l.VCs[0].Owner != "ops" || len(l.VCs[0].Request.SSHKeys) != 1 {
		t.Fatalf("list json: %d\n%s", code, out)
	}
	code, out, _ = f.run("vc", "show", "v1", "-o", "table")
	if code != exitOK || !strings.Contains(out, "frontend") || !strings.Contains(out, "VLAN:") {
		t.Fatalf("show: %d\n%s", code, out)
	}
	code, out, _ = f.run("vc", "nodes", "v1")
	if code != exitOK || !strings.Contains(out, "planned") {
		t.Fatalf("nodes: %d\n%s", code, out)
	}
	code, out, _ = f.run("vc", "jobs", "v1")
	if code != exitOK || !strings.Contains(out, "No active jobs") {
		t.Fatalf("jobs: %d\n%s", code, out)
	}
	code, out, errs = f.run("vc", "cancel", "v1")
	if code != exitOK || !strings.Contains(out, "Cancelled v1") {
		t.Fatalf("cancel: %d\n%s%s", code, out, errs)
	}
	code, out, _ = f.run("vc", "list")
	if code != exitOK || !strings.Contains(out, "No reservations") {
		t.Fatalf("list after cancel: %d\n%s", code, out)
	}
	code, out, _ = f.run("vc", "list", "--all")
	if code != exitOK || !strings.Contains(out, "cancelled") {
		t.Fatalf("list --all: %d\n%s", code, out)
	}
	code, _, errs = f.run("vc", "show", "nothere")
	if code != exitFailure || !strings.Contains(errs, "no reservation named nothere") || !strings.Contains(errs, "musubi vc list") {
		t.Fatalf("show missing: %d\n%s", code, errs)
	}
}

func TestCLIWaitShowsProgress(t *testing.T) {
	f := newCLIFixture(t)
	ctx := context.Background()
	// Play the sites' provisioners: once the reservation exists, report
	// each site ready in turn.
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(10 * time.Second)
		var rec reserve.Record
		for time.Now().Before(deadline) {
			data, _, err := f.store.Get(ctx, coord.ReservationPath("w"))
			if err == nil && json.Unmarshal(data, &rec) == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		for _, site := range rec.Placement.Sites() {
			_ = coord.EnsurePath(ctx, f.store, coord.VCStatusDir("w"))
			_, _ = f.store.Create(ctx, coord.VCStatusPath("w", site), []byte(`{"state":"ready","nodes_ready":1,"nodes":1}`), coord.Persistent, nil)
			time.Sleep(30 * time.Millisecond)
		}
	}()
	code, out, errs := f.run("vc", "reserve", "w", "--nodes", "2", "--memory", "1G", "--policy", "spread", "--wait", "--poll", "10ms", "--wait-timeout", "20s")
	<-done
	if code != exitOK || !strings.Contains(out, "w is ready") {
		t.Fatalf("wait: %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, "2/2 nodes ready  ready") || !strings.Contains(errs, "[####") {
		t.Errorf("no progress shown:\n%s", errs)
	}

	// A site that fails ends the wait with its message.
	f.vars["HOME"] = ""
	go func() {
		for i := 0; i < 500; i++ {
			if ok, _, _ := f.store.Exists(ctx, coord.ReservationPath("w2")); ok {
				_ = coord.EnsurePath(ctx, f.store, coord.VCStatusDir("w2"))
				_, _ = f.store.Create(ctx, coord.VCStatusPath("w2", "s1"), []byte(`{"state":"failed","message":"image missing"}`), coord.Persistent, nil)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	code, _, errs = f.run("vc", "reserve", "w2", "--nodes", "1", "--memory", "1G", "--site", "s1", "--wait", "--poll", "10ms")
	if code != exitFailure || !strings.Contains(errs, "image missing") || !strings.Contains(errs, "musubi vc cancel w2") {
		t.Fatalf("failed wait: %d\n%s", code, errs)
	}
}

func TestCLIAccountsSitesTopologyStatus(t *testing.T) {
	f := newCLIFixture(t)
	code, out, errs := f.run("account", "add", "alice", "--ssh-key", f.keyFile, "--group", "vina,docking")
	if code != exitOK || !strings.Contains(out, "Added alice (uid 10000") {
		t.Fatalf("add: %d %s %s", code, out, errs)
	}
	code, _, errs = f.run("account", "add", "Alice Smith")
	if code != exitFailure || !strings.Contains(errs, "user name") {
		t.Fatalf("bad name: %d %s", code, errs)
	}
	code, out, _ = f.run("account", "list")
	if code != exitOK || !strings.Contains(out, "alice") || !strings.Contains(out, "vina,docking") {
		t.Fatalf("list: %d %s", code, out)
	}
	code, out, _ = f.run("account", "del", "alice")
	if code != exitOK || !strings.Contains(out, "Deleted alice") {
		t.Fatalf("del: %d %s", code, out)
	}
	code, _, errs = f.run("account", "del", "alice")
	if code != exitFailure || !strings.Contains(errs, "no account alice") {
		t.Fatalf("del again: %d %s", code, errs)
	}

	code, out, _ = f.run("site", "list")
	if code != exitOK || !strings.Contains(out, "s1") || !strings.Contains(out, "live") || !strings.Contains(out, "s2:2181") {
		t.Fatalf("site list: %d %s", code, out)
	}
	code, out, _ = f.run("topology")
	if code != exitOK || !strings.Contains(out, "s1~s2") || !strings.Contains(out, "assumed") {
		t.Fatalf("topology: %d %s", code, out)
	}
	code, out, _ = f.run("status", "--output", "json")
	var st api.Status
	if code != exitOK || json.Unmarshal([]byte(out), &st) != nil || len(st.Federation.Sites) != 2 {
		t.Fatalf("status: %d %s", code, out)
	}
	code, out, _ = f.run("status")
	if code != exitOK || !strings.Contains(out, "2 of 2 live") {
		t.Fatalf("status table: %d %s", code, out)
	}
}

func TestCLIAuthErrorsSayWhatToDo(t *testing.T) {
	f := newCLIFixture(t)
	f.vars[envTokenFile] = f.userTF
	code, _, errs := f.run("account", "add", "carl")
	if code != exitFailure || !strings.Contains(errs, "may not add accounts") || !strings.Contains(errs, "role") {
		t.Fatalf("user adding an account: %d %s", code, errs)
	}
	delete(f.vars, envTokenFile)
	code, _, errs = f.run("vc", "list")
	if code != exitFailure || !strings.Contains(errs, "--token-file") {
		t.Fatalf("no token: %d %s", code, errs)
	}
	// An open token file is refused before any request.
	open := filepath.Join(t.TempDir(), "open.token")
	if err := os.WriteFile(open, []byte("admin-token\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = f.run("vc", "list", "--token-file", open)
	if code != exitFailure || !strings.Contains(errs, "chmod 600") || strings.Contains(errs, "admin-token") {
		t.Fatalf("open token file: %d %s", code, errs)
	}
	// No peer at the socket.
	f.vars[envAPI] = filepath.Join(t.TempDir(), "none.sock")
	code, _, errs = f.run("status")
	if code != exitFailure || !strings.Contains(errs, "Is the peer running") {
		t.Fatalf("no peer: %d %s", code, errs)
	}
}

func TestCLIUsage(t *testing.T) {
	f := newCLIFixture(t)
	for _, args := range [][]string{
		{"vc", "--help"}, {"vc", "reserve", "--help"}, {"vc", "list", "-h"}, {"vc", "ssh", "--help"},
		{"account", "--help"}, {"account", "add", "--help"}, {"site", "list", "--help"},
		{"topology", "--help"}, {"status", "--help"}, {"peer", "--help"}, {"peer", "token", "--help"},
	} {
		code, out, errs := f.run(args...)
		if code != exitOK || !strings.Contains(out, "Usage") {
			t.Errorf("%v: %d\n%s%s", args, code, out, errs)
		}
	}
	for _, args := range [][]string{
		{"vc"}, {"vc", "frobnicate"}, {"vc", "show"}, {"vc", "show", "a", "b"},
		{"vc", "reserve", "x", "--memory", "lots"}, {"vc", "reserve", "x", "--start", "tomorrowish"},
		{"vc", "reserve", "x", "--start", "+2h", "--end", "+1h"}, {"account", "add"}, {"status", "extra"},
		{"vc", "list", "--output", "yaml"},
	} {
		code, _, errs := f.run(args...)
		if code == exitOK || errs == "" {
			t.Errorf("%v: accepted (%d)", args, code)
		}
	}
}

func TestCLISSH(t *testing.T) {
	f := newCLIFixture(t)
	ctx := context.Background()
	if code, out, errs := f.run("vc", "reserve", "s", "--nodes", "2", "--memory", "1G", "--start", "now"); code != exitOK {
		t.Fatalf("%s%s", out, errs)
	}
	code, _, errs := f.run("vc", "ssh", "s", "--print")
	if code != exitFailure || !strings.Contains(errs, "no address yet") {
		t.Fatalf("before provisioning: %d %s", code, errs)
	}
	data, _, err := f.store.Get(ctx, coord.ReservationPath("s"))
	if err != nil {
		t.Fatal(err)
	}
	var rec reserve.Record
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	fe := rec.Placement.Nodes[0].Name
	_ = coord.EnsurePath(ctx, f.store, coord.VCNodesDir("s"))
	if _, err := f.store.Create(ctx, coord.VCNodePath("s", fe), []byte(`{"ip":"10.9.0.2"}`), coord.Persistent, nil); err != nil {
		t.Fatal(err)
	}
	code, out, errs := f.run("vc", "ssh", "s", "--user", "alice", "--print", "--", "hostname")
	if code != exitOK || strings.TrimSpace(out) != "ssh alice@10.9.0.2 hostname" {
		t.Fatalf("ssh: %d %q %s", code, out, errs)
	}
	// The command runs the ssh program with the VC's stdio.
	f.vars["MUSUBI_SSH"] = "echo"
	code, out, _ = f.run("vc", "ssh", "s")
	if code != exitOK || strings.TrimSpace(out) != "10.9.0.2" {
		t.Fatalf("exec: %d %q", code, out)
	}
}

func TestPeerTokenAndCheck(t *testing.T) {
	f := newCLIFixture(t)
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "alice.token")
	code, out, errs := f.run("peer", "token", "--name", "alice", "--role", "provider", "--out", tokFile)
	if code != exitOK {
		t.Fatalf("%d %s", code, errs)
	}
	var e api.TokenEntry
	if json.Unmarshal([]byte(out), &e) != nil || e.Name != "alice" || e.Role != api.RoleProvider {
		t.Fatalf("entry: %s", out)
	}
	tok, err := os.ReadFile(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(tokFile); st.Mode().Perm() != 0o600 || api.HashToken(strings.TrimSpace(string(tok))) != e.SHA256 {
		t.Fatalf("token file %v", st.Mode())
	}
	if strings.Contains(out, strings.TrimSpace(string(tok))) {
		t.Error("the token is on stdout with the entry")
	}
	if code, _, _ := f.run("peer", "token", "--name", "x", "--role", "king"); code != exitUsage {
		t.Errorf("bad role: %d", code)
	}

	tf, _ := json.Marshal(api.TokensFile{Tokens: []api.TokenEntry{e}})
	tokens := writeSecret(t, dir, "tokens.json", string(tf))
	f.vars["MUSUBI_TOKENS_FILE"] = tokens
	code, out, errs = f.run("peer", "--check", "--site", "s9", "--zk", "127.0.0.1:2181")
	if code != exitOK || !strings.Contains(out, "site s9 is valid") {
		t.Fatalf("check: %d %s %s", code, out, errs)
	}
	if err := os.Chmod(tokens, 0o640); err != nil {
		t.Fatal(err)
	}
	code, _, errs = f.run("peer", "--check", "--site", "s9", "--zk", "127.0.0.1:2181")
	if code != exitFailure || !strings.Contains(errs, "chmod 600") {
		t.Fatalf("check open tokens: %d %s", code, errs)
	}
	code, _, errs = f.run("peer", "--zk", "nohost")
	if code != exitUsage || !strings.Contains(errs, "site (--site, MUSUBI_SITE): required") || !strings.Contains(errs, `"nohost"`) {
		t.Fatalf("bad config: %d %s", code, errs)
	}
	code, out, _ = f.run("peer", "--example-config")
	if code != exitOK || !strings.Contains(out, `"zookeeper"`) {
		t.Fatalf("example: %d", code)
	}
}
