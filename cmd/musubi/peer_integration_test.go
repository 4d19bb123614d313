//go:build integration

package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/internal/zktest"
	"github.com/musubi-fabric/musubi/node/api"
)

// freeAddr returns a loopback address with a port free at the time.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// peerVars is the environment of a peer of site on the ensemble.
func peerVars(t *testing.T, ens *zktest.Ensemble, site string, local int, tokens string) map[string]string {
	return map[string]string{
		"MUSUBI_SITE":        site,
		"MUSUBI_FEDERATION":  "itest",
		"MUSUBI_ZK":          ens.ConnectString(),
		"MUSUBI_ZK_LOCAL":    ens.Addr(local),
		"MUSUBI_API_LISTEN":  freeAddr(t),
		"MUSUBI_API_SOCKET":  filepath.Join(t.TempDir(), "peer.sock"),
		"MUSUBI_TOKENS_FILE": tokens,
		"MUSUBI_HOSTS":       site + "-h1:8G:4," + site + "-h2:8G:4",
		"MUSUBI_LOG_LEVEL":   "warn",
		"MUSUBI_LOG_FORMAT":  "text",
	}
}

// waitReady polls a peer's /readyz until it answers 200.
func waitPeerReady(t *testing.T, endpoint, token string) *api.Client {
	t.Helper()
	c, err := api.NewClient(api.ClientConfig{Endpoint: endpoint, Token: token, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := c.Ready(ctx)
		cancel()
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("peer at %s not ready: %v", endpoint, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Two peers in process on a real 3-server ensemble: a VC reserved through
// one peer's API is listed and cancelled through the other's, by the CLI
// code; then a peer built as a binary stops cleanly on SIGTERM and its
// site goes down at once.
func TestPeersOnEnsemble(t *testing.T) {
	ens := zktest.StartT(t, 3)
	dir := t.TempDir()
	tf, _ := json.Marshal(api.TokensFile{Tokens: []api.TokenEntry{{Name: "ops", Role: api.RoleAdmin, SHA256: api.HashToken("itest-admin")}}})
	tokens := writeSecret(t, dir, "tokens.json", string(tf))
	tokenFile := writeSecret(t, dir, "admin.token", "itest-admin\n")

	type runningPeer struct {
		vars   map[string]string
		cancel context.CancelFunc
		done   chan int
		errs   *syncBuffer
	}
	startPeer := func(site string, local int) *runningPeer {
		rp := &runningPeer{vars: peerVars(t, ens, site, local, tokens), done: make(chan int, 1), errs: &syncBuffer{}}
		ctx, cancel := context.WithCancel(context.Background())
		rp.cancel = cancel
		env := &cliEnv{stdout: &syncBuffer{}, stderr: rp.errs, stdin: strings.NewReader(""), getenv: func(k string) string { return rp.vars[k] }}
		go func() { rp.done <- run(ctx, env, []string{"musubi", "peer"}) }()
		t.Cleanup(func() {
			cancel()
			select {
			case <-rp.done:
			case <-time.After(30 * time.Second):
				t.Errorf("peer %s did not stop", site)
			}
			if t.Failed() {
				t.Logf("peer %s log:\n%s", site, rp.errs.String())
			}
		})
		return rp
	}
	p1 := startPeer("s1", 1)
	p2 := startPeer("s2", 2)
	url1, url2 := "http://"+p1.vars["MUSUBI_API_LISTEN"], "http://"+p2.vars["MUSUBI_API_LISTEN"]
	c1 := waitPeerReady(t, url1, "itest-admin")
	defer c1.Close()
	waitPeerReady(t, url2, "itest-admin").Close()

	cli := func(peerURL string, args ...string) (int, string, string) {
		t.Helper()
		var out, errb syncBuffer
		vars := map[string]string{envAPI: peerURL, envTokenFile: tokenFile}
		env := &cliEnv{stdout: &out, stderr: &errb, stdin: strings.NewReader(""), getenv: func(k string) string { return vars[k] }}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		code := run(ctx, env, append([]string{"musubi"}, args...))
		return code, out.String(), errb.String()
	}

	code, out, errs := cli(url1, "vc", "reserve", "vc1", "--nodes", "3", "--memory", "4G", "--policy", "spread", "--start", "+1h", "--duration", "1h")
	if code != exitOK || !strings.Contains(out, "Reserved vc1: 3 nodes at s1, s2") {
		t.Fatalf("reserve through s1: %d\n%s%s", code, out, errs)
	}
	code, _, errs = cli(url2, "vc", "reserve", "vc2", "--nodes", "5", "--memory", "6G", "--start", "+1h")
	if code != exitFailure || !strings.Contains(errs, "refused: memory") {
		t.Fatalf("over capacity through s2: %d\n%s", code, errs)
	}
	code, out, errs = cli(url2, "vc", "list", "-o", "json")
	var l api.VCList
	if code != exitOK || json.Unmarshal([]byte(out), &l) != nil || len(l.VCs) != 1 || l.VCs[0].VC != "vc1" || l.VCs[0].Owner != "ops" {
		t.Fatalf("list through s2: %d\n%s%s", code, out, errs)
	}
	code, out, errs = cli(url2, "vc", "cancel", "vc1")
	if code != exitOK {
		t.Fatalf("cancel through s2: %d\n%s%s", code, out, errs)
	}
	// s1's ZooKeeper server may lag the write made through s2's by a few
	// milliseconds (followers apply commits asynchronously): wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := c1.VC(context.Background(), "vc1")
		if err == nil && v.Phase == api.PhaseCancelled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("s1 sees %+v %v", v.Phase, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, out, _ = cli(url1, "site", "list")
	if code != exitOK || strings.Count(out, "live") != 2 {
		t.Fatalf("site list: %d\n%s", code, out)
	}

	// A peer as its own process: SIGTERM stops it cleanly and its
	// session closes, so the federation sees the site down at once.
	bin := filepath.Join(dir, "musubi")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	vars := peerVars(t, ens, "s3", 3, tokens)
	cmd := exec.Command(bin, "peer")
	cmd.Env = append(os.Environ(), "MUSUBI_LOG_LEVEL=info")
	for k, v := range vars {
		if k != "MUSUBI_LOG_LEVEL" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	var logb syncBuffer
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	waitPeerReady(t, "http://"+vars["MUSUBI_API_LISTEN"], "itest-admin").Close()
	sites, err := c1.Sites(context.Background())
	if err != nil || len(sites.Sites) != 3 || !sites.Sites[2].Live {
		t.Fatalf("s3 not live: %+v %v", sites, err)
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("peer exited with %v after SIGTERM:\n%s", err, logb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("peer still running 30 s after SIGTERM:\n%s", logb.String())
	}
	stopTook := time.Since(start)
	sites, err = c1.Sites(context.Background())
	if err != nil || len(sites.Sites) != 3 || sites.Sites[2].Live {
		t.Fatalf("s3 still live after a clean stop: %+v %v", sites, err)
	}
	if _, err := os.Stat(vars["MUSUBI_API_SOCKET"]); !os.IsNotExist(err) {
		t.Errorf("socket left after SIGTERM: %v", err)
	}
	if strings.Contains(logb.String(), "itest-admin") {
		t.Error("the peer logged a token")
	}
	if !strings.Contains(logb.String(), "peer stopped") {
		t.Errorf("no clean-stop log line:\n%s", logb.String())
	}
	t.Logf("SIGTERM to exit: %v; %s", stopTook, strconv.Quote(lastLogLine(logb.String())))
}

func lastLogLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
