//go:build e2e

// Package e2e runs the built musubi binary end to end: a real ZooKeeper
// ensemble, agents as separate processes, and the Grid Engine commands as
// the symlinks `musubi install-cli` creates, used the way Grid Engine users
// use them.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/internal/zktest"
)

// musubiBin is the binary under test: $MUSUBI_BIN (make test-e2e passes
// bin/musubi), else built by TestMain.
var musubiBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin := os.Getenv("MUSUBI_BIN")
	if bin != "" && !filepath.IsAbs(bin) {
		if _, err := os.Stat(bin); err != nil {
			bin = filepath.Join(root, bin) // relative to the module root, as make passes it
		}
	}
	if bin == "" {
		dir, err := os.MkdirTemp("", "musubi-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "musubi")
		for _, name := range []string{"musubi", "musubi-sge"} { // as make build does
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), "./cmd/"+name)
			cmd.Dir = root
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintln(os.Stderr, "e2e: building "+name+":", err)
				return 1
			}
		}
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	musubiBin = abs
	return m.Run()
}

// cluster is one federation on this machine: a 3-server ensemble, agents
// as processes of the built binary, a work directory shared by all (the
// nodes share the host's file system) and the q* symlinks.
type cluster struct {
	t      *testing.T
	ens    *zktest.Ensemble
	work   string // 0777: the job user's working directory
	bin    string // qsub, qstat, ... symlinks
	agents map[string]*agentProc
	// cred is the job user's when the test runs as root (nobody), nil
	// otherwise (jobs run as the test's own user).
	cred     *syscall.Credential
	userName string
}

type agentProc struct {
	name, socket, log string
	cmd               *exec.Cmd
	done              chan error
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t, agents: map[string]*agentProc{}}
	c.ens = zktest.StartT(t, 3)
	work, err := os.MkdirTemp("", "musubi-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("MUSUBI_E2E_KEEP") != "" {
			t.Logf("work directory kept: %s", work)
			return
		}
		os.RemoveAll(work)
	})
	if err := os.Chmod(work, 0o777); err != nil {
		t.Fatal(err)
	}
	c.work = work
	c.bin = filepath.Join(work, "bin")
	out, code := c.musubi("install-cli", "--dir", c.bin)
	if code != 0 {
		t.Fatalf("install-cli: exit %d\n%s", code, out)
	}
	// The commands are the lean musubi-sge binary built beside musubi.
	lean := filepath.Join(filepath.Dir(musubiBin), "musubi-sge")
	for _, name := range []string{"qsub", "qstat", "qdel", "qhold", "qrls", "qalter", "qhost", "qacct"} {
		target, err := os.Readlink(filepath.Join(c.bin, name))
		if err != nil || target != lean {
			t.Fatalf("install-cli: %s -> %q, %v; want a symlink to %s", name, target, err, lean)
		}
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	c.userName = u.Username
	if os.Geteuid() == 0 {
		nobody, err := user.Lookup("nobody")
		if err != nil {
			t.Fatalf("running as root needs the user nobody for jobs: %v", err)
		}
		uid, _ := strconv.Atoi(nobody.Uid)
		gid, _ := strconv.Atoi(nobody.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}
		c.userName = nobody.Username
	}
	return c
}

// musubi runs the binary as the test's user (not as the job user).
func (c *cluster) musubi(args ...string) (string, int) {
	cmd := exec.Command(musubiBin, args...)
	out, err := cmd.CombinedOutput()
	return string(out), exitCode(err)
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// startAgent starts `musubi agent` for a node, as a separate process, and
// waits until the node is an execution host.
func (c *cluster) startAgent(name string, slots int) *agentProc {
	t := c.t
	t.Helper()
	dir := filepath.Join(c.work, "nodes", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(c.work, "nodes"), 0o755); err != nil {
		t.Fatal(err)
	}
	a := &agentProc{name: name, socket: filepath.Join(dir, "agent.sock"), log: filepath.Join(dir, "agent.log"), done: make(chan error, 1)}
	logf, err := os.Create(a.log)
	if err != nil {
		t.Fatal(err)
	}
	a.cmd = exec.Command(musubiBin, "agent",
		"--zk", strings.Join(c.ens.Servers(), ","), "--federation", "e2e", "--vc", "vc1",
		"--node", name, "--slots", strconv.Itoa(slots), "--memory", "4G",
		"--spool", filepath.Join(dir, "spool"), "--socket", a.socket, "--session-timeout", "4s")
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	if err := a.cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	go func() {
		a.done <- a.cmd.Wait()
		logf.Close()
	}()
	c.agents[name] = a
	t.Cleanup(func() {
		c.stopAgent(a)
		if t.Failed() {
			b, _ := os.ReadFile(a.log)
			t.Logf("agent %s log:\n%s", name, tail(string(b), 60))
		}
	})
	c.eventually(20*time.Second, "agent "+name+" registered", func() bool {
		select {
		case err := <-a.done:
			a.done <- err
			b, _ := os.ReadFile(a.log)
			t.Fatalf("agent %s exited: %v\n%s", name, err, b)
		default:
		}
		r := c.q(a, "qhost")
		return r.code == 0 && strings.Contains(r.stdout, "\n"+name+" ")
	})
	return a
}

// stopAgent sends SIGTERM and expects a clean exit.
func (c *cluster) stopAgent(a *agentProc) {
	if a.cmd.ProcessState != nil || a.cmd.Process == nil {
		return
	}
	select {
	case err := <-a.done:
		a.done <- err
		return
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.done:
		a.done <- err
		if err != nil {
			c.t.Errorf("agent %s exited after SIGTERM: %v", a.name, err)
		}
	case <-time.After(30 * time.Second):
		_ = a.cmd.Process.Kill()
		c.t.Errorf("agent %s did not stop within 30 s of SIGTERM", a.name)
		<-a.done
	}
}

// result is a finished command.
type result struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%sstderr:\n%s", r.code, r.stdout, r.stderr)
}

// q runs a Grid Engine command (or any program found in the job user's
// PATH) as the job user, in the work directory, talking to agent a.
func (c *cluster) q(a *agentProc, prog string, args ...string) result {
	return c.qIn(a, c.work, nil, prog, args...)
}

func (c *cluster) qIn(a *agentProc, dir string, stdin []byte, prog string, args ...string) result {
	c.t.Helper()
	path := prog
	if !strings.Contains(prog, "/") {
		if _, err := os.Lstat(filepath.Join(c.bin, prog)); err == nil {
			path = filepath.Join(c.bin, prog)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	cmd.Env = c.env(a)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	t0 := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), code: exitCode(err), took: time.Since(t0)}
	if r.code < 0 {
		c.t.Fatalf("%s %v: %v", prog, args, err)
	}
	return r
}

// env is the job user's login environment with the agent's socket.
func (c *cluster) env(a *agentProc) []string {
	return []string{
		"PATH=" + c.bin + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + c.work,
		"USER=" + c.userName, "LOGNAME=" + c.userName,
		"SHELL=/bin/sh", "LANG=C",
		"MUSUBI_AGENT_SOCKET=" + a.socket,
	}
}

// write creates a file in the work directory, readable by the job user.
func (c *cluster) write(name, content string, mode os.FileMode) string {
	c.t.Helper()
	p := filepath.Join(c.work, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *cluster) read(name string) string {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.work, name))
	if err != nil {
		c.t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

// eventually polls cond until it holds or d passes.
func (c *cluster) eventually(d time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGone waits until qstat no longer lists job id.
func (c *cluster) waitGone(a *agentProc, id string, d time.Duration) {
	c.t.Helper()
	c.eventually(d, "job "+id+" to finish", func() bool {
		r := c.q(a, "qstat", "-u", "*")
		if r.code != 0 {
			c.t.Fatalf("qstat: %s", r)
		}
		return !hasJob(r.stdout, id)
	})
}

// hasJob reports whether a qstat listing has a row of job id.
func hasJob(listing, id string) bool {
	for _, l := range strings.Split(listing, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == id {
			return true
		}
	}
	return false
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
