//go:build e2e

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/internal/zktest"
)

// The virtual-screening example and the one-machine demo that runs it
// (make demo), at a tiny size.

// demoSeed is dock.sh's fixed seed; TestLocalDemoScreening checks that the
// script still uses it.
const demoSeed = "42"

// rankRE is a line of the summary job's ranking.
var rankRE = regexp.MustCompile(`^ +(\d+)  (\S+) +(-?\d+\.\d+)  (\S+) +(\S+)$`)

func exampleDir(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "examples", "virtual-screening")
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func needDemo(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the demo builds network namespaces: run as root")
	}
	if _, err := exec.LookPath("ovs-vswitchd"); err != nil {
		t.Skip("Open vSwitch not installed (make deps: openvswitch-switch)")
	}
	if err := zktest.Available(); err != nil {
		t.Skipf("ZooKeeper not installed (make deps): %v", err)
	}
	if _, err := exec.LookPath("vina"); err != nil {
		t.Skip("AutoDock Vina not installed (make deps: autodock-vina)")
	}
}

// demoTmp is the demo's TMPDIR: everything it creates goes there, so the
// test can check that nothing is left. It is 0755 (t.TempDir is 0700) so
// that the job user reaches the demo's work directory.
func demoTmp(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "musubi-e2e-demo-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// syncBuffer is an output buffer the test reads while the demo writes.
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

// startDemo starts `musubi local demo` in its own process group (as a
// terminal would run it) with TMPDIR set.
func startDemo(t *testing.T, tmp string, args ...string) (*exec.Cmd, *syncBuffer, *syncBuffer, chan error) {
	t.Helper()
	cmd := exec.Command(musubiBin, append([]string{"local", "demo", "--example", exampleDir(t)}, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	return cmd, stdout, stderr, done
}

// waitDemo waits for the demo to exit within d and returns its exit code.
func waitDemo(t *testing.T, done chan error, d time.Duration, stdout, stderr *syncBuffer) int {
	t.Helper()
	select {
	case err := <-done:
		done <- err
		return exitCode(err)
	case <-time.After(d):
		t.Fatalf("the demo did not exit within %s\nstdout:\n%s\nstderr:\n%s", d, stdout, stderr)
		return -1
	}
}

// assertNothingLeft checks that no process refers to tmp (command line or
// working directory: agents, ZooKeeper servers, jobs, vina) and that tmp
// is empty.
func assertNothingLeft(t *testing.T, tmp string) {
	t.Helper()
	procs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		cwd, _ := os.Readlink(filepath.Join("/proc", p.Name(), "cwd"))
		if bytes.Contains(cmdline, []byte(tmp)) || strings.HasPrefix(cwd, tmp) {
			t.Errorf("process %d left behind: %s (cwd %s)", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}), cwd)
		}
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && (strings.HasPrefix(f[0], "mlocal-") || strings.HasPrefix(f[0], "musubi-s") && strings.Contains(f[0], "-demo+")) {
				t.Errorf("namespace %s left behind", f[0])
			}
		}
	}
	ents, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left behind in TMPDIR: %s", e.Name())
	}
}

// ranking parses the summary job's ranking from the demo's output.
func ranking(t *testing.T, out string) []rankRow {
	t.Helper()
	i := strings.Index(out, "$ cat rank.o")
	if i < 0 {
		t.Fatalf("no summary job output in:\n%s", out)
	}
	var rows []rankRow
	for _, l := range strings.Split(out[i:], "\n")[1:] {
		if l == "" {
			break
		}
		if m := rankRE.FindStringSubmatch(l); m != nil {
			rows = append(rows, rankRow{ligand: m[2], score: m[3], node: m[4], site: m[5]})
		}
	}
	return rows
}

type rankRow struct{ ligand, score, node, site string }

// directVina docks a ligand by hand: the same receptor, box, seed and
// options as dock.sh, vina run directly.
func directVina(t *testing.T, ex, dir, ligand string, exhaustiveness int) string {
	t.Helper()
	receptor := filepath.Join(dir, "receptor.pdbqt")
	if _, err := os.Stat(receptor); err != nil {
		gz, err := exec.Command("gzip", "-dc", "/usr/share/doc/autodock-vina/test-data/protein.pdbqt.gz").Output()
		if err != nil {
			t.Fatalf("receptor: %v", err)
		}
		if err := os.WriteFile(receptor, gz, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, ligand+".out.pdbqt")
	cmd := exec.Command("vina", "--receptor", receptor, "--ligand", filepath.Join(ex, "ligands", ligand+".pdbqt"),
		"--config", filepath.Join(ex, "box.conf"), "--exhaustiveness", strconv.Itoa(exhaustiveness),
		"--seed", demoSeed, "--cpu", "1", "--verbosity", "0", "--out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("vina %s: %v\n%s", ligand, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 4 && f[0] == "REMARK" && f[1] == "VINA" && f[2] == "RESULT:" {
			return f[3]
		}
	}
	t.Fatalf("no VINA RESULT in %s", out)
	return ""
}

// TestLocalDemoScreening runs `musubi local demo` at a tiny size (2
// ligands, exhaustiveness 1): `local up` with three namespaced sites, a VC
// reserved with a node at each, the array job submitted with qsub from
// inside the node at site 3, the -hold_jid summary job ranking the
// results, then cancel and `local down`. The ranking lists both ligands with the scores vina gives when
// run by hand with the same inputs and seed, and the demo leaves nothing
// behind.
func TestLocalDemoScreening(t *testing.T) {
	needDemo(t)
	ex := exampleDir(t)
	script, err := os.ReadFile(filepath.Join(ex, "dock.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(script), "SEED=${SEED:-"+demoSeed+"}") {
		t.Fatalf("dock.sh no longer defaults to seed %s; update demoSeed", demoSeed)
	}
	tmp := demoTmp(t)
	t0 := time.Now()
	_, stdout, stderr, done := startDemo(t, tmp, "--ligands", "2", "--exhaustiveness", "1")
	code := waitDemo(t, done, 5*time.Minute, stdout, stderr)
	out := stdout.String()
	if code != 0 {
		t.Fatalf("musubi local demo: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	t.Logf("demo took %s", time.Since(t0).Round(time.Millisecond))
	for _, want := range []string{
		"$ qsub -t 1-2 -v EXHAUSTIVENESS=1 dock.sh\nYour job-array ",
		"$ qsub rank.sh\nYour job ",
		"==> each of the 2 dock tasks ran exactly once",
		"==> done: nothing left running",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	// A real federation: three namespaced sites, a VC with a node at
	// each, the jobs submitted from inside the node at site 3.
	for _, want := range []string{
		"$ musubi local exec s1 -- musubi vc reserve demo --nodes 3 ",
		"demo is ready",
		"==> submitting from inside node node2 of site s3 (its network namespace musubi-s3-demo+node2)",
		"==> all nodes of demo removed ",
		"==> taking the federation down (musubi local down)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	for _, node := range []string{"node0", "node1", "node2"} {
		if !regexp.MustCompile(`(?m)^` + node + ` +lx-amd64 `).MatchString(out) {
			t.Errorf("qhost in the demo output does not list %s:\n%s", node, out)
		}
	}
	rows := ranking(t, out)
	if len(rows) != 2 {
		t.Fatalf("the ranking has %d rows, want 2:\n%s", len(rows), out)
	}
	got := map[string]rankRow{}
	for _, r := range rows {
		got[r.ligand] = r
		if want := map[string]string{"s1": "node0", "s2": "node1", "s3": "node2"}[r.site]; r.node != want {
			t.Errorf("ranking row %+v: not a node of the demo's VC at its site", r)
		}
	}
	if a, b := mustFloat(t, rows[0].score), mustFloat(t, rows[1].score); a > b {
		t.Errorf("ranking not by affinity (lowest first): %+v", rows)
	}
	vdir := t.TempDir()
	for _, lig := range []string{"caffeine", "paracetamol"} {
		r, ok := got[lig]
		if !ok {
			t.Errorf("the ranking lacks %s: %+v", lig, rows)
			continue
		}
		if want := directVina(t, ex, vdir, lig, 1); r.score != want {
			t.Errorf("%s: the demo's score %s, vina run directly with seed %s gives %s", lig, r.score, demoSeed, want)
		} else {
			t.Logf("%s: %s kcal/mol on %s, same as vina run directly", lig, r.score, r.node)
		}
	}
	assertNothingLeft(t, tmp)
}

func mustFloat(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestLocalDemoInterrupt interrupts the demo the way Ctrl-C does (SIGINT
// to its process group) after the ZooKeeper leader was killed and restarted
// while jobs ran: it stops everything, exits 130 and leaves nothing behind.
func TestLocalDemoInterrupt(t *testing.T) {
	needDemo(t)
	tmp := demoTmp(t)
	cmd, stdout, stderr, done := startDemo(t, tmp, "--host-only", "--ligands", "8", "--exhaustiveness", "1")
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(stdout.String(), "==> restarted server ") {
		select {
		case err := <-done:
			t.Fatalf("the demo exited (%v) before the leader was killed during docking\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader kill during docking within 3 minutes\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out := stdout.String()
	if !regexp.MustCompile(`==> writes accepted again after \S+; every session survived`).MatchString(out) {
		t.Errorf("no recovery message after the leader kill:\n%s", out)
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := waitDemo(t, done, time.Minute, stdout, stderr)
	if code != 130 {
		t.Errorf("exit code %d after SIGINT, want 130\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout.String(), "==> done: nothing left running") ||
		!strings.Contains(stderr.String(), "interrupted; everything it started was stopped") {
		t.Errorf("no clean teardown after SIGINT:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	assertNothingLeft(t, tmp)
}

// TestLocalDemoJobFailure runs the demo with a copy of the example whose
// docking fails for one ligand: the demo says which task failed, exits 1
// and still leaves nothing behind.
func TestLocalDemoJobFailure(t *testing.T) {
	needDemo(t)
	ex := t.TempDir()
	if out, err := exec.Command("cp", "-r", exampleDir(t)+"/.", ex).CombinedOutput(); err != nil {
		t.Fatalf("copy the example: %v\n%s", err, out)
	}
	script, err := os.ReadFile(filepath.Join(ex, "dock.sh"))
	if err != nil {
		t.Fatal(err)
	}
	const line = "site=${MUSUBI_SITE:-${HOSTNAME%%-*}}\n"
	broken := strings.Replace(string(script), line,
		line+"[ \"$ligand\" != caffeine ] || { echo \"dock: broken on purpose\" >&2; exit 3; }\n", 1)
	if broken == string(script) {
		t.Fatal("dock.sh changed: cannot break it for caffeine")
	}
	if err := os.WriteFile(filepath.Join(ex, "dock.sh"), []byte(broken), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := demoTmp(t)
	cmd := exec.Command(musubiBin, "local", "demo", "--host-only", "--example", ex, "--ligands", "2", "--exhaustiveness", "1", "--kill-leader=false")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if code := exitCode(err); code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	for _, want := range []string{"the screening failed", "task 2 on site", ": done, exit 3; dock.o1.2 ends: \"dock: broken on purpose\"", "the summary job 2 did not finish with exit 0"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, &stderr)
		}
	}
	if strings.Contains(stderr.String(), "'s agent log:") {
		t.Errorf("agent logs dumped for a job's failure:\n%s", &stderr)
	}
	if !strings.Contains(stdout.String(), "rank: no result for caffeine") || !strings.Contains(stdout.String(), "==> done: nothing left running") {
		t.Errorf("stdout:\n%s", &stdout)
	}
	assertNothingLeft(t, tmp)
}
