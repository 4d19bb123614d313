//go:build linux

package executor

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testHost = "testhost"

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newTestRunner(t testing.TB) *Runner {
	return &Runner{
		Hostname: testHost,
		Logger:   slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		SGERoot:  "/var/lib/musubi-sge",
	}
}

// testEnv is a job's directories: home, working directory, spool.
type testEnv struct {
	root, home, work, spool string
}

func newTestEnv(t testing.TB) testEnv {
	t.Helper()
	root := t.TempDir()
	e := testEnv{
		root:  root,
		home:  filepath.Join(root, "home"),
		work:  filepath.Join(root, "work"),
		spool: filepath.Join(root, "spool"),
	}
	for _, d := range []string{e.home, e.work, e.spool} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// request returns a script job of the current user with -cwd in e.work.
func (e testEnv) request(t testing.TB, script string) Request {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return Request{
		JobID:       42,
		JobName:     "test",
		Script:      []byte(script),
		User:        u.Username,
		UID:         uint32(os.Getuid()),
		GID:         uint32(os.Getgid()),
		Home:        e.home,
		SubmitHost:  "submithost",
		SubmitCwd:   e.work,
		SubmitHome:  e.home,
		SubmitPath:  "/usr/local/bin:/usr/bin:/bin",
		SubmitShell: "/bin/bash",
		Workdir:     e.work,
		SpoolDir:    e.spool,
	}
}

// run runs req with a generous timeout against hangs.
func run(t testing.TB, r *Runner, req Request) (Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return r.Run(ctx, req)
}

// mustRun runs req and fails the test if it did not run.
func mustRun(t testing.TB, r *Runner, req Request) Result {
	t.Helper()
	res, err := run(t, r, req)
	if err != nil {
		t.Fatalf("Run: %v (result %+v)", err, res)
	}
	assertSpoolEmpty(t, req.SpoolDir)
	return res
}

func assertSpoolEmpty(t testing.TB, spool string) {
	t.Helper()
	if spool == "" {
		return
	}
	ents, err := os.ReadDir(spool)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("spool directory not cleaned up: %v", names)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// parseEnv parses "KEY=value" lines (as printed by env(1)).
func parseEnv(text string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok && k != "" {
			m[k] = v
		}
	}
	return m
}

func readEnvFile(t testing.TB, path string) map[string]string {
	t.Helper()
	return parseEnv(readFile(t, path))
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] != 'Z'
}
